import CSQLite
import Dispatch
import VigilCore

/// Copies the write-ahead log into the database file on a thread of its own,
/// so that no commit of the daemon ever does it.
///
/// SQLite's default is that the commit which takes the log past 1,000 pages
/// copies it back. A reader's snapshot — `vigil backtest` reading a full
/// journal for seconds — holds that copy back; when the reader lets go, the
/// next commit copied everything written meanwhile and synced the database
/// file: a commit of 100–250 ms, once a backtest, in the middle of the
/// daemon's latency budget. The daemon's store switches the automatic copy
/// off on its connection and runs one of these instead: a passive
/// checkpoint every `interval` takes no lock writers wait for, and copies
/// what no reader still needs (all of it, once the readers have gone).
public final class WALCheckpointer: @unchecked Sendable {
    // @unchecked: `db` is used only on `queue` (the timer's handler), and the
    // counters are read and written there too (`stats` hops onto it).
    private let db: Database
    private let queue: DispatchQueue
    private let timer: DispatchSourceTimer
    private var runs = 0
    private var last: (log: Int, copied: Int) = (0, 0)

    /// Opens its own connection to `path` and starts.
    public init(path: String, sync: Database.Sync, interval: Millis = 200) throws(SQLiteError) {
        db = try Database(path: path, sync: sync)
        queue = DispatchQueue(label: "vigil.wal-checkpoint", qos: .utility)
        timer = DispatchSource.makeTimerSource(queue: queue)
        timer.schedule(deadline: .now() + .milliseconds(Int(interval)), repeating: .milliseconds(Int(interval)))
        timer.setEventHandler { [weak self] in self?.checkpoint() }
        timer.resume()
    }

    deinit {
        timer.cancel()
        // A handler under way finishes before the connection goes.
        queue.sync {}
    }

    /// One passive checkpoint. Busy (another checkpoint runs) or failing (a
    /// full disk) it copies nothing now, and the next try comes `interval` later.
    private func checkpoint() {
        var log: Int32 = 0
        var copied: Int32 = 0
        let rc = sqlite3_wal_checkpoint_v2(db.handle, nil, SQLITE_CHECKPOINT_PASSIVE, &log, &copied)
        runs += 1
        if rc == SQLITE_OK { last = (Int(log), Int(copied)) }
    }

    /// Checkpoints run so far; after the last one that ran, the frames in
    /// the log and how many of them are in the database file.
    public var stats: (runs: Int, logFrames: Int, copiedFrames: Int) { queue.sync { (runs, last.log, last.copied) } }
}

extension Database {
    /// Whether a commit that takes the log past 1,000 pages copies it back
    /// itself (SQLite's default). Off where a `WALCheckpointer` does it.
    public func setAutomaticCheckpoints(_ on: Bool) throws(SQLiteError) {
        try execute("PRAGMA wal_autocheckpoint=\(on ? 1000 : 0)")
    }
}

import CSQLite
import Dispatch
import Synchronization
import VigilCore

/// Copies the write-ahead log back into the database file on a thread of
/// its own, so that no commit of the connections it serves ever does.
///
/// SQLite's default is that the commit which leaves the log at 1,000 pages
/// or more copies it back (and syncs the database file) before it returns.
/// A reader's snapshot — `vigil backtest` reading a full journal for
/// seconds — holds that copy back, and when the reader let go the next
/// commit copied everything written meanwhile: a commit of 100–250 ms, once
/// a backtest, in the middle of the daemon's latency budget. A connection
/// this serves (`serve`) tells it instead, through SQLite's WAL hook, how
/// large the log is after each commit; at 1,000 pages or more it runs a
/// passive checkpoint on its own connection and queue — the same moments
/// as SQLite's own, the same syncs, no lock a writer waits for — at most one
/// at a time and at most one every `spacing` (while a reader holds the log,
/// every commit would ask again).
public final class WALCheckpointer: @unchecked Sendable {
    // @unchecked: `db`, `runs` and `last` are used only on `queue`; `pending`
    // and `lastRun` are atomics.
    private let db: Database
    private let queue: DispatchQueue
    private let pending = Atomic<Bool>(false)
    private let lastRun = Atomic<UInt64>(0)
    private let spacingNanos: UInt64
    private var runs = 0
    private var last: (log: Int, copied: Int) = (0, 0)
    /// The log's size, in pages, that asks for a checkpoint (SQLite's default).
    public static let pages: Int32 = 1000

    /// Opens its own connection to `path`.
    public init(path: String, sync: Database.Sync, spacing: Millis = 100) throws(SQLiteError) {
        db = try Database(path: path, sync: sync)
        queue = DispatchQueue(label: "vigil.wal-checkpoint", qos: .utility)
        spacingNanos = UInt64(spacing) * 1_000_000
    }

    /// Takes over copying the log back from `connection`: its commits no
    /// longer do it, they tell this checkpointer. The connection keeps the
    /// checkpointer for as long as it is open.
    public func serve(_ connection: Database) {
        connection.walHookOwner = self
        sqlite3_wal_hook(
            connection.handle,
            { context, _, _, pages in
                // The connection holds its checkpointer (`walHookOwner`): the pointer is valid while it is open.
                Unmanaged<WALCheckpointer>.fromOpaque(context!).takeUnretainedValue().committed(pages: pages)
                return SQLITE_OK
            }, Unmanaged.passUnretained(self).toOpaque())
    }

    /// After a commit of a served connection, with the log's size in pages.
    func committed(pages: Int32) {
        guard pages >= WALCheckpointer.pages, !pending.exchange(true, ordering: .acquiringAndReleasing) else { return }
        let due = lastRun.load(ordering: .relaxed) &+ spacingNanos
        let now = DispatchTime.now().uptimeNanoseconds
        queue.asyncAfter(deadline: DispatchTime(uptimeNanoseconds: max(now, due))) { [self] in
            pending.store(false, ordering: .releasing)
            checkpoint()
            lastRun.store(DispatchTime.now().uptimeNanoseconds, ordering: .relaxed)
        }
    }

    /// One passive checkpoint. Busy (another checkpoint runs) or failing (a
    /// full disk) it copies nothing now; the next commit asks again.
    private func checkpoint() {
        var log: Int32 = 0
        var copied: Int32 = 0
        let rc = sqlite3_wal_checkpoint_v2(db.handle, nil, SQLITE_CHECKPOINT_PASSIVE, &log, &copied)
        runs += 1
        if rc == SQLITE_OK { last = (Int(log), Int(copied)) }
    }

    /// Checkpoints run so far; after the last one that ran, the pages in the
    /// log and how many of them are in the database file (the log's frames:
    /// a page written twice is two).
    public var stats: (runs: Int, logPages: Int, copiedPages: Int) { queue.sync { (runs, last.log, last.copied) } }
}

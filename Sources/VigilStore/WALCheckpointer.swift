import Foundation

/// Copies the state database's WAL into the database file on a thread of its
/// own. The connections that commit (ingestion, delivery) have automatic
/// checkpoints off, so a commit — and the PUBACKs waiting for it — never pays
/// for copying pages and syncing the database file; that happens here, once a
/// second at most, beside them. The WAL still stays small: a checkpoint that
/// copied everything lets the next commit start the WAL from its beginning.
public final class WALCheckpointer: @unchecked Sendable {
    // @unchecked: `db` is used only by the one thread in `run`; `stopped` is guarded by `lock`.
    let db: Database
    let lock = NSCondition()
    var stopped = false

    /// Opens its own connection with the sync level of the committing ones (a
    /// checkpoint syncs the database file before the WAL may be reused).
    public init(path: String, sync: Database.Sync) throws(SQLiteError) {
        db = try Database(path: path, sync: sync)
    }

    /// Checkpoints every `interval` until `stop()`, on the calling thread (a
    /// thread of its own: never the async executors); `onError` hears about
    /// each failed attempt (a full disk: the next attempt may succeed).
    public func run(interval: TimeInterval = 1, onError: (SQLiteError) -> Void) {
        while true {
            lock.lock()
            if !stopped { _ = lock.wait(until: Date().addingTimeInterval(interval)) }
            let stop = stopped
            lock.unlock()
            if stop { return }
            do { try db.checkpointPassive() } catch { onError(error) }
        }
    }

    public func stop() {
        lock.lock(); stopped = true; lock.signal(); lock.unlock()
    }
}

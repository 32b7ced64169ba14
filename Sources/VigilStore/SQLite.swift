import CSQLite
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// An SQLite error: what failed, with the library's own message.
public struct SQLiteError: Error, Sendable, CustomStringConvertible {
    public let code: Int32
    public let message: String
    public let context: String

    public var description: String { "\(context): \(message) (SQLite code \(code))" }

    public init(code: Int32, message: String, context: String = "") {
        self.code = code; self.message = message; self.context = context
    }

    /// The database is locked by another connection (busy timeout exhausted).
    public var isBusy: Bool { code == SQLITE_BUSY || code == SQLITE_LOCKED }

    /// The disk (or the file system's quota) is full.
    public var isDiskFull: Bool { code & 0xFF == SQLITE_FULL }

    /// The file is not a database, or is damaged.
    public var isNotADatabase: Bool { code & 0xFF == SQLITE_NOTADB || code & 0xFF == SQLITE_CORRUPT }
}

/// A connection to one SQLite file. Not thread-safe: each stage owns its own.
public final class Database {
    let handle: OpaquePointer
    public let path: String
    /// The WAL's size at this connection's last checkpoint (see `walHook`).
    let pacer = CheckpointPacer()

    /// How a commit reaches the disk (SQLite's `synchronous` in WAL mode).
    public enum Sync: String, Sendable {
        /// Every commit is on disk before it returns: a power cut loses nothing committed.
        case full
        /// Commits survive a crash of the process, not a power cut.
        case normal
    }

    /// Whether the connection's commits checkpoint the WAL once it is
    /// configured (`walHook`). A helper connection beside one that commits
    /// often (the journal's trims beside the ingestion's batches) leaves them
    /// to that one: its commits never run a checkpoint (nor SQLite's
    /// automatic one), so they never wait for the syncs a checkpoint makes.
    public let checkpoints: Bool

    /// Opens (creating if needed) a database file in WAL mode. `sync: nil`
    /// opens it as it is, without changing anything in the file.
    /// `checkpoints`: see the property.
    public init(path: String, readOnly: Bool = false, sync: Sync? = .normal, checkpoints: Bool = true) throws(SQLiteError) {
        var db: OpaquePointer?
        let flags = readOnly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
        let rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX, nil)
        guard rc == SQLITE_OK, let db else {
            let msg = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            if let db { sqlite3_close(db) }
            throw SQLiteError(code: rc, message: msg, context: "open \(path)")
        }
        handle = db
        self.path = path
        self.checkpoints = checkpoints
        sqlite3_busy_handler(db, Database.busyHandler, nil)
        sqlite3_extended_result_codes(db, 1)
        if !readOnly, let sync { try configure(sync: sync) }
    }

    /// WAL mode and the sync level. With WAL, NORMAL syncs at checkpoints: a
    /// commit survives a process crash (SIGKILL); FULL syncs the WAL at every
    /// commit, so a commit also survives power loss. A WAL that outgrew
    /// `walSizeLimit` is cut back to it when it starts over.
    public func configure(sync: Sync) throws(SQLiteError) {
        try execute("PRAGMA journal_mode=WAL")
        try execute("PRAGMA synchronous=\(sync == .full ? "FULL" : "NORMAL")")
        try execute("PRAGMA journal_size_limit=\(Database.walSizeLimit)")
        // Debian builds SQLite with secure_delete on: every deleted row's page
        // would be written again (zeroed), so trimming the journal would cost
        // as much WAL as the rows it frees — on a full disk, space it does not have.
        try execute("PRAGMA secure_delete=FAST")
        if checkpoints {
            sqlite3_wal_hook(handle, Database.walHook, Unmanaged.passUnretained(pacer).toOpaque())
        } else {
            sqlite3_wal_hook(handle, nil, nil)  // SQLite's automatic checkpoint is a WAL hook too
        }
    }

    /// The WAL's size kept when it starts over (SQLite's `journal_size_limit`).
    /// Between checkpoints the WAL holds some 4 MiB; while a backtest or an
    /// export reads, it grows to 10–20 MiB. Cutting it back after each such
    /// growth would free blocks that the next commits allocate again, and on a
    /// file system mounted with `discard` each cut sends the disk a TRIM that
    /// the committing thread waits for, inside the commit (with a limit below
    /// that growth: one every few seconds while backtests run). Below this limit the
    /// WAL's blocks are written over instead; above it, a burst gives back
    /// what it took.
    public static let walSizeLimit = 64 << 20

    /// WAL frames between two checkpoints of a connection (SQLite's default: 1,000).
    public static let checkpointFrames: Int32 = 1000

    /// Checkpoints the connections of this process ran (`vigil_wal_checkpoints_total`).
    public static let checkpointsRun = Atomic<Int>(0)

    /// After a commit: a passive checkpoint once the WAL has grown by
    /// `checkpointFrames` since this connection's last one. SQLite's own hook
    /// checkpoints after every commit while the WAL holds 1,000 frames or
    /// more — and while a reader (a backtest, an export) keeps the WAL from
    /// starting over, that is every commit: a copy and two fsyncs each time,
    /// on the ingestion thread among others. Here the next try comes
    /// `checkpointFrames` later whatever this one did: one that copied
    /// everything lets the next writer start the WAL over (and the count
    /// starts again); one the readers cut short, or that found another
    /// connection checkpointing, is simply tried again then. Only
    /// checkpoints that ran are counted.
    static let walHook: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, Int32) -> Int32 = {
        context, db, name, frames in
        guard let context else { return SQLITE_OK }
        let pacer = Unmanaged<CheckpointPacer>.fromOpaque(context).takeUnretainedValue()
        if frames < pacer.frames { pacer.nextAt = min(pacer.nextAt, Database.checkpointFrames) }  // the WAL started over
        pacer.frames = frames
        guard frames >= pacer.nextAt else { return SQLITE_OK }
        pacer.nextAt = frames + Database.checkpointFrames
        if sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nil, nil) == SQLITE_OK {
            pacer.checkpoints += 1
            Database.checkpointsRun.add(1, ordering: .relaxed)
        }
        return SQLITE_OK
    }

    /// Copies the WAL into the database and truncates it to nothing (after a
    /// full disk: vigil's own files must not fill it again).
    public func truncateWAL() throws(SQLiteError) {
        try execute("PRAGMA wal_checkpoint(TRUNCATE)")
    }

    deinit { sqlite3_close_v2(handle) }

    /// Tries of the busy handler: 20 of 0.1 ms, then 1 ms each — 5 s in all.
    static let busyTries: Int32 = 20 + 4_998

    /// Waits for another connection's write lock in short steps. SQLite's own
    /// timeout handler sleeps 1, 2, 5, 10, … and then 100 ms between tries, so
    /// a writer that lost the lock a few times to the ingestion thread's
    /// back-to-back commits slept up to 100 ms after the lock was free again
    /// (BEGINs waiting 80 ms to 1.4 s were measured beside a backtest, each
    /// for a lock held a few milliseconds). Polling every 0.1 ms, then every
    /// millisecond, a waiter takes the lock within a millisecond of its release.
    static let busyHandler: @convention(c) (UnsafeMutableRawPointer?, Int32) -> Int32 = { _, tries in
        guard tries < Database.busyTries else { return 0 }
        usleep(tries < 20 ? 100 : 1000)
        return 1
    }

    public static var libraryVersion: String { String(cString: sqlite3_libversion()) }

    func error(_ rc: Int32, _ context: String) -> SQLiteError {
        SQLiteError(code: rc, message: String(cString: sqlite3_errmsg(handle)), context: context)
    }

    /// Runs one or more statements without results.
    public func execute(_ sql: String) throws(SQLiteError) {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let msg = err.map { String(cString: $0) } ?? "error"
            sqlite3_free(err)
            throw SQLiteError(code: rc, message: msg, context: String(sql.prefix(60)))
        }
    }

    public func prepare(_ sql: String) throws(SQLiteError) -> Statement {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw error(rc, "prepare \(sql.prefix(60))") }
        return Statement(stmt, db: self, sql: sql)
    }

    /// Runs `body` in one transaction (BEGIN IMMEDIATE … COMMIT), rolling back on error.
    @discardableResult
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let v = try body()
            try execute("COMMIT")
            return v
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    public var changes: Int { Int(sqlite3_changes(handle)) }
    public var lastInsertRowID: Int64 { sqlite3_last_insert_rowid(handle) }
}

/// A connection's checkpoint bookkeeping, reached from SQLite's WAL hook. It
/// is touched only inside that connection's commits, on the thread using it.
final class CheckpointPacer {
    /// The WAL's frames after this connection's last commit.
    var frames: Int32 = 0
    /// The WAL's frames at which this connection checkpoints next.
    var nextAt = Database.checkpointFrames
    /// Checkpoints this connection ran (each copied what the readers allowed).
    var checkpoints = 0
}

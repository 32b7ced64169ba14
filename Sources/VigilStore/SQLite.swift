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

    /// Opens (creating if needed) a database file in WAL mode. `sync: nil`
    /// opens it as it is, without changing anything in the file.
    public init(path: String, readOnly: Bool = false, sync: Sync? = .normal) throws(SQLiteError) {
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
        sqlite3_busy_handler(db, Database.busyHandler, nil)
        sqlite3_extended_result_codes(db, 1)
        if !readOnly, let sync { try configure(sync: sync) }
    }

    /// WAL mode and the sync level. With WAL, NORMAL syncs at checkpoints: a
    /// commit survives a process crash (SIGKILL); FULL syncs the WAL at every
    /// commit, so a commit also survives power loss. The WAL file is cut back
    /// to 8 MiB after each checkpoint, so a burst does not keep its disk space.
    public func configure(sync: Sync) throws(SQLiteError) {
        try execute("PRAGMA journal_mode=WAL")
        try execute("PRAGMA synchronous=\(sync == .full ? "FULL" : "NORMAL")")
        try execute("PRAGMA journal_size_limit=8388608")
        // Debian builds SQLite with secure_delete on: every deleted row's page
        // would be written again (zeroed), so trimming the journal would cost
        // as much WAL as the rows it frees — on a full disk, space it does not have.
        try execute("PRAGMA secure_delete=FAST")
        sqlite3_wal_hook(handle, Database.walHook, Unmanaged.passUnretained(pacer).toOpaque())
    }

    /// WAL frames between two checkpoints of a connection (SQLite's default: 1,000).
    public static let checkpointFrames: Int32 = 1000

    /// Checkpoints the connections of this process ran (`vigil_wal_checkpoints_total`).
    public static let checkpointsRun = Atomic<Int>(0)

    /// After a commit: a passive checkpoint once the WAL has grown by
    /// `checkpointFrames` since this connection's last one. SQLite's own hook
    /// checkpoints after every commit while the WAL holds 1,000 frames or
    /// more — and while a reader (a backtest, an export) keeps the WAL from
    /// starting over, that is every commit: a copy and two fsyncs each time,
    /// on the ingestion thread among others. Here a checkpoint that copied
    /// everything lets the next writer start the WAL over, and the count
    /// starts again; one the readers cut short, or that found another
    /// connection checkpointing, is tried again `retryFrames` later.
    static let walHook: @convention(c) (UnsafeMutableRawPointer?, OpaquePointer?, UnsafePointer<CChar>?, Int32) -> Int32 = {
        context, db, name, frames in
        guard let context else { return SQLITE_OK }
        let pacer = Unmanaged<CheckpointPacer>.fromOpaque(context).takeUnretainedValue()
        if frames < pacer.frames { pacer.nextAt = min(pacer.nextAt, Database.checkpointFrames) }  // the WAL started over
        pacer.frames = frames
        guard frames >= pacer.nextAt else { return SQLITE_OK }
        var log: Int32 = 0, copied: Int32 = 0
        let rc = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, &log, &copied)
        let complete = rc == SQLITE_OK && copied >= log
        pacer.nextAt = frames + (complete ? Database.checkpointFrames : Database.retryFrames)
        if rc == SQLITE_OK {
            pacer.checkpoints += 1
            Database.checkpointsRun.add(1, ordering: .relaxed)
        }
        return SQLITE_OK
    }

    /// WAL frames after a checkpoint that could not copy everything, before the next try.
    public static let retryFrames: Int32 = 1000

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

/// A prepared statement, reused across executions.
public final class Statement {
    let stmt: OpaquePointer
    unowned let db: Database
    let sql: String

    init(_ stmt: OpaquePointer, db: Database, sql: String) { self.stmt = stmt; self.db = db; self.sql = sql }
    deinit { sqlite3_finalize(stmt) }

    /// SQLite copies bound text and blobs at once (SQLITE_TRANSIENT).
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    public enum Value {
        case null
        case int(Int64)
        case double(Double)
        case text(String)
        /// Text given as UTF-8 bytes (no String in between).
        case utf8([UInt8])
        case blob([UInt8])
    }

    /// Binds the parameters; every use binds all of them, so old bindings need no clearing.
    public func bind(_ values: [Value]) throws(SQLiteError) { try bind(values[...]) }

    public func bind(_ values: ArraySlice<Value>) throws(SQLiteError) {
        sqlite3_reset(stmt)
        for (i, v) in zip(values.indices, values) {
            let idx = Int32(i - values.startIndex + 1)
            let rc: Int32
            switch v {
            case .null: rc = sqlite3_bind_null(stmt, idx)
            case .int(let x): rc = sqlite3_bind_int64(stmt, idx, x)
            case .double(let x): rc = sqlite3_bind_double(stmt, idx, x)
            case .text(let s):
                var s = s
                rc = s.withUTF8 { u in
                    guard let p = u.baseAddress, u.count > 0 else { return sqlite3_bind_text(stmt, idx, "", 0, Statement.transient) }
                    return sqlite3_bind_text(stmt, idx, UnsafeRawPointer(p).assumingMemoryBound(to: CChar.self), Int32(u.count), Statement.transient)
                }
            case .utf8(let b):
                rc = b.withUnsafeBytes {
                    sqlite3_bind_text(stmt, idx, $0.baseAddress?.assumingMemoryBound(to: CChar.self), Int32($0.count), Statement.transient)
                }
            case .blob(let b):
                rc = b.withUnsafeBytes { sqlite3_bind_blob(stmt, idx, $0.baseAddress, Int32($0.count), Statement.transient) }
            }
            if rc != SQLITE_OK { throw db.error(rc, "bind \(sql.prefix(60))") }
        }
    }

    /// Executes a statement that returns no rows.
    public func run(_ values: Value...) throws(SQLiteError) { try run(values) }

    public func run(_ values: [Value]) throws(SQLiteError) { try run(values[...]) }

    public func run(_ values: ArraySlice<Value>) throws(SQLiteError) {
        try bind(values)
        let rc = sqlite3_step(stmt)
        sqlite3_reset(stmt)
        if rc != SQLITE_DONE && rc != SQLITE_ROW { throw db.error(rc, "run \(sql.prefix(60))") }
    }

    /// Executes a query, calling `row` for each result row.
    public func query(_ values: [Value], _ row: (Row) throws -> Void) throws {
        try bind(values)
        defer { sqlite3_reset(stmt) }
        while true {
            let rc = sqlite3_step(stmt)
            if rc == SQLITE_DONE { return }
            if rc != SQLITE_ROW { throw db.error(rc, "query \(sql.prefix(60))") }
            try row(Row(stmt: stmt))
        }
    }

    public func query(_ values: Value...) throws -> [Row.Materialized] {
        var out: [Row.Materialized] = []
        try query(values) { out.append($0.materialize()) }
        return out
    }

    public func scalarInt(_ values: Value...) throws -> Int64? {
        var v: Int64?
        try query(values) { row in v = row.isNull(0) ? nil : row.int(0) }
        return v
    }
}

/// A result row; valid only inside the query callback.
public struct Row {
    let stmt: OpaquePointer

    public var columnCount: Int { Int(sqlite3_column_count(stmt)) }
    public func isNull(_ i: Int) -> Bool { sqlite3_column_type(stmt, Int32(i)) == SQLITE_NULL }
    public func int(_ i: Int) -> Int64 { sqlite3_column_int64(stmt, Int32(i)) }
    public func double(_ i: Int) -> Double { sqlite3_column_double(stmt, Int32(i)) }
    public func text(_ i: Int) -> String {
        guard let p = sqlite3_column_text(stmt, Int32(i)) else { return "" }
        let n = Int(sqlite3_column_bytes(stmt, Int32(i)))
        return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }
    public func optionalText(_ i: Int) -> String? { isNull(i) ? nil : text(i) }
    public func blob(_ i: Int) -> [UInt8] {
        let n = Int(sqlite3_column_bytes(stmt, Int32(i)))
        guard n > 0, let p = sqlite3_column_blob(stmt, Int32(i)) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }

    /// A copy that outlives the callback.
    public struct Materialized: Sendable {
        public var values: [String?]
        public var ints: [Int64?]
        public func text(_ i: Int) -> String { values[i] ?? "" }
        public func int(_ i: Int) -> Int64 { ints[i] ?? 0 }
    }

    public func materialize() -> Materialized {
        var v: [String?] = [], n: [Int64?] = []
        for i in 0..<columnCount {
            if isNull(i) {
                v.append(nil); n.append(nil)
            } else {
                let type = sqlite3_column_type(stmt, Int32(i))
                v.append(text(i))
                n.append(type == SQLITE_INTEGER ? int(i) : (type == SQLITE_FLOAT ? Int64(double(i)) : nil))
            }
        }
        return Materialized(values: v, ints: n)
    }
}

/// An INSERT of many rows in one statement: executing one statement for a
/// batch costs far less than one per row. One prepared statement per row
/// count, made on first use; larger inputs go in chunks of `maxRows`.
public final class MultiRowInsert {
    let db: Database
    let head: String
    let row: String
    let parametersPerRow: Int
    let maxRows: Int
    var statements: [Int: Statement] = [:]

    /// `head` is `INSERT … VALUES`, `row` one row's tuple with `?` for each parameter: `(?,0,?,?)`.
    public init(db: Database, head: String, row: String, maxRows: Int = 64) {
        self.db = db
        self.head = head
        self.row = row
        parametersPerRow = row.filter { $0 == "?" }.count
        self.maxRows = maxRows
    }

    /// Inserts the rows whose parameters `values` holds, `parametersPerRow` after another.
    public func run(_ values: [Statement.Value]) throws(SQLiteError) {
        let chunk = maxRows * parametersPerRow
        var start = 0
        while start < values.count {
            let end = min(values.count, start + chunk)
            try statement(rows: (end - start) / parametersPerRow).run(values[start..<end])
            start = end
        }
    }

    func statement(rows: Int) throws(SQLiteError) -> Statement {
        if let s = statements[rows] { return s }
        let s = try db.prepare(head + " " + Array(repeating: row, count: rows).joined(separator: ","))
        statements[rows] = s
        return s
    }
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

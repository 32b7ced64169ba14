import CSQLite

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

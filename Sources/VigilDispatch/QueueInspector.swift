import VigilCore
import VigilStore

/// What `vigil queue` reads and changes in the state database; safe while the
/// daemon runs (SQLite WAL: readers never block the writer, short writes wait).
public final class QueueInspector {
    let db: Database

    public init(path: String, readOnly: Bool) throws {
        db = try Database(path: path, readOnly: readOnly)
    }

    public struct SinkCounts: Sendable { public var sink: String; public var pending = 0, delivered = 0, dead = 0 }

    public func stats() throws -> [SinkCounts] {
        var out: [String: SinkCounts] = [:]
        try db.prepare("SELECT sink, state, count(*) FROM deliveries GROUP BY sink, state").query([]) { row in
            let sink = row.text(0)
            var c = out[sink] ?? SinkCounts(sink: sink)
            switch row.int(1) {
            case 0: c.pending = Int(row.int(2))
            case 1: c.delivered = Int(row.int(2))
            default: c.dead = Int(row.int(2))
            }
            out[sink] = c
        }
        return out.values.sorted { $0.sink < $1.sink }
    }

    public struct Entry: Sendable {
        public var seq: Int64
        public var eventID: String
        public var incidentID: String
        public var sink: String
        public var state: String
        public var attempts: Int
        public var nextAt: Millis
        public var lastError: String?
        public var updatedAt: Millis?
        public var type: String
        public var rule: String
        public var severity: Severity
        public var createdAt: Millis
    }

    static let entryColumns = """
        d.seq, e.event_id, e.incident_id, d.sink, d.state, d.attempts, d.next_at, d.last_error, d.updated_at,
        e.type, e.rule, e.severity, e.created_at
        """

    func entry(_ r: Row) -> Entry {
        Entry(
            seq: r.int(0), eventID: r.text(1), incidentID: r.text(2), sink: r.text(3),
            state: EventQueue.DeliveryState(rawValue: r.int(4))?.name ?? "?", attempts: Int(r.int(5)), nextAt: r.int(6),
            lastError: r.optionalText(7), updatedAt: r.isNull(8) ? nil : r.int(8), type: r.text(9), rule: r.text(10),
            severity: Severity(rawValue: Int(r.int(11))) ?? .info, createdAt: r.int(12))
    }

    /// Deliveries in dispatch order, optionally of one sink and state.
    public func list(sink: String?, state: EventQueue.DeliveryState?, limit: Int, _ each: (Entry) -> Void) throws {
        var sql = "SELECT \(QueueInspector.entryColumns) FROM deliveries d JOIN events e ON e.seq = d.seq WHERE 1=1"
        var args: [Statement.Value] = []
        if let sink { sql += " AND d.sink = ?"; args.append(.text(sink)) }
        if let state { sql += " AND d.state = ?"; args.append(.int(state.rawValue)) }
        sql += " ORDER BY d.sink, d.state, d.severity DESC, d.seq LIMIT ?"
        args.append(.int(Int64(limit)))
        try db.prepare(sql).query(args) { each(entry($0)) }
    }

    /// One event: its JSON and its delivery state for every sink.
    public func show(eventID: String) throws -> (body: String, deliveries: [Entry])? {
        var body: String?
        try db.prepare("SELECT body FROM events WHERE event_id = ?").query([.text(eventID)]) { body = $0.text(0) }
        guard let body else { return nil }
        var deliveries: [Entry] = []
        try db.prepare("SELECT \(QueueInspector.entryColumns) FROM deliveries d JOIN events e ON e.seq = d.seq WHERE e.event_id = ? ORDER BY d.sink")
            .query([.text(eventID)]) { deliveries.append(entry($0)) }
        return (body, deliveries)
    }

    /// Puts dead deliveries back in the queue (all of them, or those of the given events).
    public func retry(eventIDs: [String]?) throws -> Int {
        try db.transaction {
            if let ids = eventIDs {
                var n = 0
                let stmt = try db.prepare(
                    "UPDATE deliveries SET state = 0, next_at = 0, attempts = 0, last_error = NULL WHERE state = 2 AND seq = (SELECT seq FROM events WHERE event_id = ?)"
                )
                for id in ids { try stmt.run(.text(id)); n += db.changes }
                return n
            }
            try db.execute("UPDATE deliveries SET state = 0, next_at = 0, attempts = 0, last_error = NULL WHERE state = 2")
            return db.changes
        }
    }

    /// Drops delivered history older than `age`; events left without deliveries go too.
    public func purge(olderThan age: Millis, now: Millis) throws -> (deliveries: Int, events: Int) {
        try db.transaction {
            try db.prepare("DELETE FROM deliveries WHERE state = 1 AND updated_at < ?").run(.int(now - age))
            let d = db.changes
            try db.prepare("DELETE FROM events WHERE created_at < ? AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.seq = events.seq)").run(.int(now - age))
            return (d, db.changes)
        }
    }
}

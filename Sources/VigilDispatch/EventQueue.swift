import VigilCore
import VigilStore

/// The durable outbox in the state database: each event is written once, with
/// one delivery row per sink that accepts it. Each sink moves its own rows, so
/// a dead sink never delays another. Nothing here loads the queue into memory.
public final class EventQueue {
    public enum DeliveryState: Int64, Sendable, CaseIterable {
        case pending = 0, delivered = 1, dead = 2
        public var name: String {
            switch self {
            case .pending: return "pending"
            case .delivered: return "delivered"
            case .dead: return "dead"
            }
        }
    }

    /// What a sink needs to know to route an event.
    public struct SinkRoute: Sendable {
        public var name: String
        public var routes: [String]
        public var minSeverity: Severity
        public init(name: String, routes: [String], minSeverity: Severity) {
            self.name = name; self.routes = routes; self.minSeverity = minSeverity
        }
        public func accepts(_ e: IncidentEvent) -> Bool {
            e.severity >= minSeverity && routes.contains { $0 == "*" || $0 == e.route }
        }
    }

    /// One event waiting for one sink.
    public struct Pending: Sendable {
        public var seq: Int64
        public var eventID: String
        public var incidentID: String
        public var body: String
        public var attempts: Int
        public var createdAt: Millis
    }

    public let db: Database
    let insertEvent: Statement
    let insertDelivery: Statement

    public static let schema = """
        CREATE TABLE IF NOT EXISTS events(
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            event_id TEXT NOT NULL UNIQUE,
            incident_id TEXT NOT NULL,
            type TEXT NOT NULL,
            rule TEXT NOT NULL,
            severity INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            body TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS deliveries(
            sink TEXT NOT NULL,
            seq INTEGER NOT NULL,
            state INTEGER NOT NULL DEFAULT 0,
            severity INTEGER NOT NULL,
            incident_id TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_at INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            updated_at INTEGER,
            PRIMARY KEY(sink, seq)) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS deliveries_order ON deliveries(sink, state, severity DESC, seq);
        CREATE INDEX IF NOT EXISTS deliveries_incident ON deliveries(sink, incident_id, state, seq);
        CREATE INDEX IF NOT EXISTS events_incident ON events(incident_id);
        """

    public init(db: Database) throws(SQLiteError) {
        self.db = db
        try db.execute(EventQueue.schema)
        insertEvent = try db.prepare(
            "INSERT OR IGNORE INTO events(event_id, incident_id, type, rule, severity, created_at, body) VALUES(?,?,?,?,?,?,?)")
        insertDelivery = try db.prepare(
            "INSERT OR IGNORE INTO deliveries(sink, seq, state, severity, incident_id, next_at) VALUES(?,?,0,?,?,0)")
    }

    /// Writes events inside the caller's transaction. An event whose id is
    /// already queued is skipped: re-evaluation after a crash enqueues nothing twice.
    /// Returns, per sink, how many deliveries were added.
    @discardableResult
    public func enqueue(_ events: [IncidentEvent], sinks: [SinkRoute], now: Millis) throws(SQLiteError) -> [String: Int] {
        var added: [String: Int] = [:]
        for e in events {
            try insertEvent.run(.text(e.eventID), .text(e.incidentID), .text(e.type.rawValue), .text(e.rule),
                                .int(Int64(e.severity.rawValue)), .int(now), .text(e.jsonLine()))
            guard db.changes == 1 else { continue }
            let seq = db.lastInsertRowID
            for s in sinks where s.accepts(e) {
                try insertDelivery.run(.text(s.name), .int(seq), .int(Int64(e.severity.rawValue)), .text(e.incidentID))
                added[s.name, default: 0] += 1
            }
        }
        return added
    }

    /// Pending deliveries per sink (for the backpressure gauge at start).
    public func pendingCounts() throws -> [String: Int] {
        var out: [String: Int] = [:]
        try db.prepare("SELECT sink, count(*) FROM deliveries WHERE state = 0 GROUP BY sink").query([]) { row in
            out[row.text(0)] = Int(row.int(1))
        }
        return out
    }
}

/// One sink's view of the queue: its next batch, and marking what it delivered.
public final class SinkCursor {
    let db: Database
    public let sink: String
    let next: Statement
    let markDelivered: Statement
    let markRetry: Statement
    let markDead: Statement
    let nextDue: Statement

    public init(db: Database, sink: String) throws(SQLiteError) {
        self.db = db
        self.sink = sink
        // Severity first, then FIFO; an incident's events share its severity, so
        // they stay in order. An incident with an earlier event still waiting
        // (backing off) is skipped until that one is through.
        next = try db.prepare("""
            SELECT d.seq, e.event_id, e.incident_id, e.body, d.attempts, e.created_at
            FROM deliveries d JOIN events e ON e.seq = d.seq
            WHERE d.sink = ?1 AND d.state = 0 AND d.next_at <= ?2
              AND NOT EXISTS (SELECT 1 FROM deliveries p
                              WHERE p.sink = ?1 AND p.state = 0 AND p.incident_id = d.incident_id AND p.seq < d.seq)
            ORDER BY d.severity DESC, d.seq ASC
            LIMIT ?3
            """)
        markDelivered = try db.prepare("UPDATE deliveries SET state = 1, attempts = attempts + 1, updated_at = ?3, last_error = NULL WHERE sink = ?1 AND seq = ?2")
        markRetry = try db.prepare("UPDATE deliveries SET attempts = attempts + 1, next_at = ?3, last_error = ?4, updated_at = ?5 WHERE sink = ?1 AND seq = ?2")
        markDead = try db.prepare("UPDATE deliveries SET state = 2, attempts = attempts + 1, last_error = ?3, updated_at = ?4 WHERE sink = ?1 AND seq = ?2")
        // Only an incident's first waiting event can be due: the others wait behind it.
        nextDue = try db.prepare("""
            SELECT min(d.next_at) FROM deliveries d
            WHERE d.sink = ?1 AND d.state = 0
              AND NOT EXISTS (SELECT 1 FROM deliveries p
                              WHERE p.sink = ?1 AND p.state = 0 AND p.incident_id = d.incident_id AND p.seq < d.seq)
            """)
    }

    public func nextBatch(now: Millis, limit: Int) throws -> [EventQueue.Pending] {
        var out: [EventQueue.Pending] = []
        try next.query([.text(sink), .int(now), .int(Int64(limit))]) { row in
            out.append(EventQueue.Pending(seq: row.int(0), eventID: row.text(1), incidentID: row.text(2), body: row.text(3),
                                          attempts: Int(row.int(4)), createdAt: row.int(5)))
        }
        return out
    }

    /// The earliest time a pending delivery of this sink may be tried, if any.
    public func earliestDue() throws -> Millis? { try nextDue.scalarInt(.text(sink)) }

    public func pendingCount() throws -> Int {
        Int(try db.prepare("SELECT count(*) FROM deliveries WHERE sink = ? AND state = 0").scalarInt(.text(sink)) ?? 0)
    }

    public func delivered(_ seqs: [Int64], now: Millis) throws {
        try db.transaction {
            for s in seqs { try markDelivered.run(.text(sink), .int(s), .int(now)) }
        }
    }

    public func retry(_ seq: Int64, at: Millis, error: String, now: Millis) throws {
        try markRetry.run(.text(sink), .int(seq), .int(at), .text(error), .int(now))
    }

    public func dead(_ seq: Int64, error: String, now: Millis) throws {
        try markDead.run(.text(sink), .int(seq), .text(error), .int(now))
    }
}

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
        public var severity: Int64
        public var eventID: String
        public var incidentID: String
        public var body: String
        public var attempts: Int
        public var createdAt: Millis
    }

    public let db: Database
    let insertEvent: Statement
    /// An event's delivery rows for all its sinks, in one statement.
    let insertDeliveries: MultiRowInsert

    /// The outbox of an open state database (migrated to this build's schema first).
    public init(db: Database) throws {
        self.db = db
        try StateSchema.migrate(db)
        insertEvent = try db.prepare(
            "INSERT OR IGNORE INTO events(event_id, incident_id, type, rule, severity, created_at, body) VALUES(?,?,?,?,?,?,?)")
        insertDeliveries = MultiRowInsert(
            db: db, head: "INSERT OR IGNORE INTO deliveries(sink, state, severity, seq, incident) VALUES",
            row: "(?,0,?,?,?)")
    }

    /// Writes events inside the caller's transaction. An event whose id is
    /// already queued is skipped: re-evaluation after a crash enqueues nothing twice.
    /// Returns, per sink, how many deliveries were added.
    @discardableResult
    public func enqueue(_ events: [IncidentEvent], sinks: [SinkRoute], now: Millis) throws(SQLiteError) -> [String: Int] {
        var added: [String: Int] = [:]
        var w = JSONWriter(capacity: 1024)
        for e in events {
            w.reset()
            e.write(to: &w)
            let severity = Int64(e.severity.rawValue)
            try insertEvent.run(
                .text(e.eventID), .text(e.incidentID), .text(e.type.rawValue), .text(e.rule),
                .int(severity), .int(now), .utf8(w.bytes))
            guard db.changes == 1 else { continue }
            let seq = db.lastInsertRowID
            let incident = StateSchema.incidentKey(e.incidentID)
            var values: [Statement.Value] = []
            values.reserveCapacity(4 * sinks.count)
            for s in sinks where s.accepts(e) {
                values.append(.text(s.name)); values.append(.int(severity)); values.append(.int(seq)); values.append(.int(incident))
                added[s.name, default: 0] += 1
            }
            try insertDeliveries.run(values)
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
public final class SinkCursor: @unchecked Sendable {
    // @unchecked: a cursor's connection and statements are used by one call
    // at a time — its sink's worker awaits each call on the sink's lane.
    let db: Database
    public let sink: String
    let next: Statement
    let event: Statement
    let markDelivered: Statement
    let markRetry: Statement
    let markDead: Statement

    public init(db: Database, sink: String) throws(SQLiteError) {
        self.db = db
        self.sink = sink
        // Pending deliveries in the order the sink takes them: severity first, then FIFO.
        next = try db.prepare("SELECT seq, incident, next_at, attempts, severity FROM deliveries WHERE sink = ?1 AND state = 0 ORDER BY severity DESC, seq")
        event = try db.prepare("SELECT event_id, incident_id, body, created_at FROM events WHERE seq = ?")
        markDelivered = try db.prepare(
            "UPDATE deliveries SET state = 1, attempts = attempts + 1, updated_at = ?4, last_error = NULL WHERE sink = ?1 AND state = 0 AND severity = ?2 AND seq = ?3"
        )
        markRetry = try db.prepare(
            "UPDATE deliveries SET attempts = attempts + 1, next_at = ?4, last_error = ?5, updated_at = ?6 WHERE sink = ?1 AND state = 0 AND severity = ?2 AND seq = ?3"
        )
        markDead = try db.prepare(
            "UPDATE deliveries SET state = 2, attempts = attempts + 1, last_error = ?4, updated_at = ?5 WHERE sink = ?1 AND state = 0 AND severity = ?2 AND seq = ?3"
        )
    }

    /// Walks the pending deliveries in order. An incident's events share its
    /// severity, so they come in seq order: only the first waiting event of
    /// each incident may go (one per batch), and one still backing off holds
    /// back the rest of its incident.
    func walk(_ body: (_ seq: Int64, _ nextAt: Millis, _ attempts: Int, _ severity: Int64) -> Bool) throws {
        var seen = Set<Int64>()
        var stop = false
        try next.query([.text(sink)]) { row in
            guard !stop, seen.insert(row.int(1)).inserted else { return }
            stop = !body(row.int(0), row.int(2), Int(row.int(3)), row.int(4))
        }
    }

    public func nextBatch(now: Millis, limit: Int) throws -> [EventQueue.Pending] {
        var chosen: [(Int64, Int, Int64)] = []
        try walk { seq, nextAt, attempts, severity in
            if nextAt <= now { chosen.append((seq, attempts, severity)) }
            return chosen.count < limit
        }
        var out: [EventQueue.Pending] = []
        out.reserveCapacity(chosen.count)
        for (seq, attempts, severity) in chosen {
            try event.query([.int(seq)]) { row in
                out.append(
                    EventQueue.Pending(
                        seq: seq, severity: severity, eventID: row.text(0), incidentID: row.text(1), body: row.text(2),
                        attempts: attempts, createdAt: row.int(3)))
            }
        }
        return out
    }

    /// The earliest time a pending delivery of this sink may be tried, if any.
    public func earliestDue() throws -> Millis? {
        var due: Millis?
        try walk { _, nextAt, _, _ in
            due = min(due ?? nextAt, nextAt)
            return true
        }
        return due
    }

    public func pendingCount() throws -> Int {
        Int(try db.prepare("SELECT count(*) FROM deliveries WHERE sink = ? AND state = 0").scalarInt(.text(sink)) ?? 0)
    }

    public func delivered(_ batch: [EventQueue.Pending], now: Millis) throws {
        try db.transaction {
            for p in batch { try markDelivered.run(.text(sink), .int(p.severity), .int(p.seq), .int(now)) }
        }
    }

    public func retry(_ p: EventQueue.Pending, at: Millis, error: String, now: Millis) throws {
        try markRetry.run(.text(sink), .int(p.severity), .int(p.seq), .int(at), .text(error), .int(now))
    }

    public func dead(_ p: EventQueue.Pending, error: String, now: Millis) throws {
        try markDead.run(.text(sink), .int(p.severity), .int(p.seq), .text(error), .int(now))
    }
}

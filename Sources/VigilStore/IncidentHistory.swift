import VigilCore

/// Incidents as the duty desk sees them: every open incident and the
/// resolved ones of the last `history`, each with its events. Written in the
/// same transaction as the events themselves, so it is never behind the queue.
public enum IncidentHistory {
    // The tables: StateSchema.history.

    /// One incident as `vigil incidents` and the API show it.
    public struct Incident: Sendable {
        public var id: String
        public var rule: String
        public var severity: Severity
        public var route: String
        public var feed: String
        public var channel: String?
        public var community: String?
        public var location: String?
        public var title: String
        public var openedAt: Millis
        public var resolvedAt: Millis?
        public var acknowledgedAt: Millis?
        public var acknowledgedBy: String?
        public var note: String?
        public var updatedAt: Millis

        public var isOpen: Bool { resolvedAt == nil }
    }

    /// Filters of `vigil incidents` and `GET /api/v1/incidents`.
    public struct Query: Sendable {
        public enum State: String, Sendable { case open, resolved, all }
        public var state = State.open
        public var community: String?
        public var feed: String?
        public var rule: String?
        public var severity: Severity?
        public var since: Millis?
        public var limit = 1000

        public init() {}
    }

    /// Writes the incidents of `events` inside the caller's transaction.
    public static func record(_ events: [IncidentEvent], in db: Database, statements: inout Statements?) throws {
        guard !events.isEmpty else { return }
        if statements == nil { statements = try Statements(db) }
        let s = statements!
        for e in events {
            let body = e.jsonLine()
            if e.type == .opened {
                try s.insert.run(
                    .text(e.incidentID), .text(e.rule), .int(Int64(e.severity.rawValue)), .text(e.route), .text(e.feed),
                    e.channel.map { .text($0) } ?? .null,
                    (e.channelInfo["community_name"]?.stringValue ?? e.channelInfo["community"]?.stringValue).map { .text($0) } ?? .null,
                    e.channelInfo["location"]?.stringValue.map { .text($0) } ?? .null,
                    .text(e.title), .int(e.openedAt), .int(e.at), .text(body))
            } else {
                try s.update.run(
                    e.resolvedAt.map { .int($0) } ?? .null, e.acknowledgedAt.map { .int($0) } ?? .null,
                    e.acknowledgedBy.map { .text($0) } ?? .null, e.type == .acknowledged ? (e.note.map { .text($0) } ?? .null) : .null,
                    .int(e.type == .acknowledged ? 1 : 0), .int(e.at), .text(body), .text(e.incidentID))
            }
            try s.event.run(.text(e.incidentID), .text(e.eventID), .int(e.at), .text(body))
        }
    }

    public struct Statements {
        let insert, update, event: Statement
        init(_ db: Database) throws {
            insert = try db.prepare(
                """
                INSERT OR IGNORE INTO incidents(id, rule, severity, route, feed, channel, community, location, title, opened_at,
                                                updated_at, last_event) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)
                """)
            update = try db.prepare(
                """
                UPDATE incidents SET resolved_at = coalesce(?1, resolved_at), acknowledged_at = coalesce(?2, acknowledged_at),
                    acknowledged_by = coalesce(?3, acknowledged_by), note = CASE WHEN ?5 = 1 THEN ?4 ELSE note END,
                    updated_at = ?6, last_event = ?7 WHERE id = ?8
                """)
            // `ord`: the incident's events are written in the order they happened;
            // two in the same millisecond keep it (their ids, partly a digest, do not).
            event = try db.prepare(IncidentHistory.insertEvent)
        }
    }

    /// An event of an incident, numbered after the incident's last one
    /// (`incident_events_ord` finds that number without reading the others).
    static let insertEvent = """
        INSERT OR IGNORE INTO incident_events(incident_id, event_id, at, body, ord)
        VALUES(?1, ?2, ?3, ?4, (SELECT coalesce(max(ord), 0) + 1 FROM incident_events WHERE incident_id = ?1))
        """

    /// Drops resolved incidents (and their events) resolved before `before`.
    public static func trim(in db: Database, before: Millis) throws -> Int {
        var removed = 0
        try db.transaction {
            try db.prepare("DELETE FROM incident_events WHERE incident_id IN (SELECT id FROM incidents WHERE resolved_at < ?)").run(.int(before))
            try db.prepare("DELETE FROM incidents WHERE resolved_at < ?").run(.int(before))
            removed = db.changes
        }
        return removed
    }

    /// Incidents matching `q`, newest first.
    public static func list(_ q: Query, in db: Database) throws -> [Incident] {
        var sql =
            "SELECT id, rule, severity, route, feed, channel, community, location, title, opened_at, resolved_at, acknowledged_at, acknowledged_by, note, updated_at FROM incidents WHERE 1 = 1"
        var values: [Statement.Value] = []
        switch q.state {
        case .open: sql += " AND resolved_at IS NULL"
        case .resolved: sql += " AND resolved_at IS NOT NULL"
        case .all: break
        }
        if let c = q.community {
            // The community as shown (the registry's name) or its code (`community` column).
            sql += " AND (community = ? OR json_extract(last_event, '$.channel_info.community') = ?)"
            values.append(.text(c)); values.append(.text(c))
        }
        if let f = q.feed { sql += " AND feed = ?"; values.append(.text(f)) }
        if let r = q.rule { sql += " AND rule = ?"; values.append(.text(r)) }
        if let s = q.severity { sql += " AND severity = ?"; values.append(.int(Int64(s.rawValue))) }
        if let t = q.since { sql += " AND opened_at >= ?"; values.append(.int(t)) }
        sql += " ORDER BY opened_at DESC, id"
        sql += " LIMIT ?"
        values.append(.int(Int64(max(1, q.limit))))
        var out: [Incident] = []
        try db.prepare(sql).query(values) { out.append(incident($0)) }
        return out
    }

    /// One incident with its events in the order they happened, or nil.
    public static func get(_ id: String, in db: Database) throws -> (Incident, [String])? {
        var found: Incident?
        try db.prepare(
            "SELECT id, rule, severity, route, feed, channel, community, location, title, opened_at, resolved_at, acknowledged_at, acknowledged_by, note, updated_at FROM incidents WHERE id = ?"
        )
        .query([.text(id)]) { found = incident($0) }
        guard let found else { return nil }
        var events: [String] = []
        // Rows from before `ord` (null) come first, by time.
        try db.prepare("SELECT body FROM incident_events WHERE incident_id = ? ORDER BY coalesce(ord, 0), at, event_id").query([.text(id)]) {
            events.append($0.text(0))
        }
        return (found, events)
    }

    static func incident(_ r: Row) -> Incident {
        Incident(
            id: r.text(0), rule: r.text(1), severity: Severity(rawValue: Int(r.int(2))) ?? .major, route: r.text(3), feed: r.text(4),
            channel: r.optionalText(5), community: r.optionalText(6), location: r.optionalText(7), title: r.text(8),
            openedAt: r.int(9), resolvedAt: r.isNull(10) ? nil : r.int(10), acknowledgedAt: r.isNull(11) ? nil : r.int(11),
            acknowledgedBy: r.optionalText(12), note: r.optionalText(13), updatedAt: r.int(14))
    }
}

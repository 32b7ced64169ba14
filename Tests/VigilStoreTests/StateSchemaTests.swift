import Foundation
import Testing
import VigilCore
@testable import VigilStore
import VigilTestSupport

@Suite struct StateSchemaTests {
    func scratch() throws -> (String, String) {
        let dir = try makeWorkDir()
        return (dir, dir + "/vigil.db")
    }

    func version(_ db: Database) throws -> Int64 { try db.prepare("PRAGMA user_version").scalarInt() ?? -1 }

    func tables(_ db: Database) throws -> Set<String> {
        var out = Set<String>()
        try db.prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'index') AND name NOT LIKE 'sqlite_%'").query([]) {
            out.insert($0.text(0))
        }
        return out
    }

    @Test func aNewFileGetsEveryTableAndTheNewestVersion() throws {
        let (dir, path) = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = try StateSchema.open(path: path, sync: .normal)
        #expect(try version(db) == StateSchema.version)
        #expect(try tables(db).isSuperset(of: StateSchema.tables.union(["journal_time", "incidents_newest"])))
        #expect(try db.prepare("PRAGMA application_id").scalarInt() == Database.vigilApplicationID)
    }

    @Test func aCurrentFileIsNotWrittenAgain() throws {
        let (dir, path) = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = try StateSchema.open(path: path, sync: .normal)
        // Read-only: any write the migrator tried would throw.
        let db = try Database(path: path, readOnly: true)
        try StateSchema.migrate(db)
        #expect(try version(db) == StateSchema.version)
    }

    /// A file of a build from before files were stamped: the first outbox
    /// layout, a journal without kind and judged_at, the old incident index.
    @Test func anUnstampedFileOfAnEarlierBuildIsBroughtForwardKeepingItsRows() throws {
        let (dir, path) = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let old = try Database(path: path, sync: nil)
            try old.execute(
                """
                CREATE TABLE events(seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, incident_id TEXT NOT NULL, type TEXT NOT NULL,
                    rule TEXT NOT NULL, severity INTEGER NOT NULL, created_at INTEGER NOT NULL, body TEXT NOT NULL);
                CREATE TABLE deliveries(sink TEXT NOT NULL, seq INTEGER NOT NULL, state INTEGER NOT NULL, severity INTEGER NOT NULL,
                    incident_id TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL DEFAULT 0, last_error TEXT,
                    updated_at INTEGER, PRIMARY KEY(sink, seq));
                CREATE INDEX deliveries_order ON deliveries(sink, state, severity, seq);
                CREATE TABLE journal(seq INTEGER PRIMARY KEY AUTOINCREMENT, received_at INTEGER NOT NULL, mid INTEGER NOT NULL,
                    topic TEXT NOT NULL, payload BLOB NOT NULL);
                CREATE TABLE incidents(id TEXT PRIMARY KEY, rule TEXT NOT NULL, severity INTEGER NOT NULL, route TEXT NOT NULL,
                    feed TEXT NOT NULL, channel TEXT, community TEXT, location TEXT, title TEXT NOT NULL, opened_at INTEGER NOT NULL,
                    resolved_at INTEGER, acknowledged_at INTEGER, acknowledged_by TEXT, note TEXT, updated_at INTEGER NOT NULL,
                    last_event TEXT NOT NULL);
                CREATE INDEX incidents_open ON incidents(resolved_at);
                INSERT INTO events VALUES(1, 'e1', 'i1', 'opened', 'r', 3, 10, '{}');
                INSERT INTO deliveries VALUES('file', 1, 0, 3, 'i1', 2, 0, 'HTTP 503', 11);
                INSERT INTO journal(received_at, mid, topic, payload) VALUES(5, 7, 't', x'7b7d');
                """)
        }
        let db = try StateSchema.open(path: path, sync: .normal)
        #expect(try version(db) == StateSchema.version)
        let row = try db.prepare("SELECT sink, state, severity, seq, incident, attempts, last_error FROM deliveries").query()
        #expect(row.count == 1)
        #expect(row.first?.text(0) == "file" && row.first?.int(5) == 2 && row.first?.text(6) == "HTTP 503")
        #expect(row.first?.int(4) == StateSchema.incidentKey("i1"))
        #expect(try db.prepare("SELECT kind, judged_at IS NULL FROM journal").query().first?.int(1) == 1)
        let names = try tables(db)
        #expect(names.contains("incidents_newest") && !names.contains("incidents_open") && !names.contains("deliveries_v1"))
    }

    @Test func aFileOfANewerBuildIsRefusedUntouched() throws {
        let (dir, path) = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let db = try StateSchema.open(path: path, sync: .normal)
            try db.execute("PRAGMA user_version=\(StateSchema.version + 1)")
        }
        #expect(throws: StateFileError.self) { _ = try StateSchema.open(path: path, sync: .normal) }
        let db = try Database(path: path, readOnly: true)
        #expect(try version(db) == StateSchema.version + 1)
    }

    func incidentEvent(_ id: String, _ type: IncidentEventType, at: Millis) -> IncidentEvent {
        IncidentEvent(
            eventID: id, type: type, incidentID: "i1", rule: "r", severity: .critical, route: "fire_safety", feed: "fire_alarm",
            channel: "fa-1", key: JSONObject([("channel", "fa-1")]), title: "t", labels: JSONObject(), channelInfo: JSONObject(),
            startedAt: 5, openedAt: 5, resolvedAt: type == .resolved ? at : nil, at: at, count: 1, reading: nil)
    }

    func eventTypes(_ db: Database) throws -> [String] {
        try IncidentHistory.get("i1", in: db)?.1.map { body in
            guard case .string(let t)? = try JSONParser.parse(body).objectValue?["type"] else { return "?" }
            return t
        } ?? []
    }

    /// Two events of one incident in the same millisecond (a clearing reading
    /// right after a matching one) come back in the order they happened, not
    /// in the order of their ids.
    @Test func anIncidentsEventsComeBackInTheOrderTheyHappened() throws {
        let (dir, path) = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let db = try StateSchema.open(path: path, sync: .normal)
        var statements: IncidentHistory.Statements?
        try db.transaction {
            try IncidentHistory.record([incidentEvent("0005-b", .opened, at: 5), incidentEvent("0009-z", .updated, at: 9)], in: db, statements: &statements)
        }
        try db.transaction { try IncidentHistory.record([incidentEvent("0009-a", .resolved, at: 9)], in: db, statements: &statements) }
        #expect(try eventTypes(db) == ["incident.opened", "incident.updated", "incident.resolved"])
        // The last number comes from the index, not from reading the incident's every event.
        var plan: [String] = []
        try db.prepare("EXPLAIN QUERY PLAN " + IncidentHistory.insertEvent).query([.text("i1"), .text("e"), .int(1), .text("{}")]) {
            plan.append($0.text(3))
        }
        #expect(plan.contains { $0.contains("incident_events_ord") }, "\(plan)")
    }

    /// A file of the build before `ord`: its events keep their order (by
    /// time), and those written after the upgrade follow them in theirs.
    @Test func eventsWrittenBeforeTheirOrderWasKeptComeFirstByTime() throws {
        let (dir, path) = try scratch()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let old = try StateSchema.open(path: path, sync: .normal)
            try old.execute(
                """
                DROP INDEX incident_events_ord;
                ALTER TABLE incident_events DROP COLUMN ord;
                PRAGMA user_version = 2;
                INSERT INTO incident_events(incident_id, event_id, at, body) VALUES('i1', '0007', 7, '{"type":"incident.updated"}');
                INSERT INTO incident_events(incident_id, event_id, at, body) VALUES('i1', '0005', 5, '{"type":"incident.opened"}');
                INSERT INTO incidents(id, rule, severity, route, feed, title, opened_at, updated_at, last_event)
                VALUES('i1', 'r', 4, 'fire_safety', 'fire_alarm', 't', 5, 7, '{}');
                """)
        }
        let db = try StateSchema.open(path: path, sync: .normal)
        #expect(try version(db) == StateSchema.version)
        var statements: IncidentHistory.Statements?
        try db.transaction {
            try IncidentHistory.record([incidentEvent("0009-z", .updated, at: 9), incidentEvent("0009-a", .resolved, at: 9)], in: db, statements: &statements)
        }
        #expect(try eventTypes(db) == ["incident.opened", "incident.updated", "incident.updated", "incident.resolved"])
    }
}

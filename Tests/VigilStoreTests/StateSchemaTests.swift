import Foundation
import Testing
import VigilStore
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
}

/// Every table of the state database, and the one migrator that brings a
/// file to the schema this build writes.
///
/// The file says its schema in `PRAGMA user_version`; migration N takes a file
/// at N-1 to N, each in one transaction, and nothing runs when the file is
/// current (a start on a full disk needs no write). A file from before vigil
/// stamped its files is at 0 and runs them all. A file at a version newer than
/// `version` is refused, untouched (`claimState`).
public enum StateSchema {
    /// A step from `version - 1` to `version`.
    struct Migration: Sendable {
        let version: Int64
        let summary: String
        let apply: @Sendable (Database) throws -> Void
    }

    static let migrations: [Migration] = [
        Migration(
            version: 1, summary: "every table",
            apply: { db in
                try db.execute(outbox + journal + history)
            }),
        Migration(
            version: 2, summary: "the layouts of earlier builds brought forward",
            apply: { db in
                try rekeyDeliveries(db)
                try addJournalColumns(db)
                try db.execute(
                    """
                    DROP INDEX IF EXISTS incidents_open;
                    CREATE INDEX IF NOT EXISTS incidents_newest ON incidents(resolved_at, opened_at DESC, id);
                    """)
            }),
        Migration(
            version: 3, summary: "an incident's events numbered in the order they happened",
            apply: { db in
                // The index finds an incident's last number at once: a rule that
                // updates every second writes tens of thousands of events a day.
                try db.execute(
                    """
                    ALTER TABLE incident_events ADD COLUMN ord INTEGER;
                    CREATE INDEX IF NOT EXISTS incident_events_ord ON incident_events(incident_id, ord);
                    """)
            }),
    ]

    /// The schema this build writes.
    public static var version: Int64 { migrations.last!.version }

    /// Tables a state database may hold; a file with others is not vigil's.
    public static let tables: Set<String> = [
        "events", "deliveries", "dead_letters", "journal", "checkpoint", "daemon_state",
        "incidents", "incident_events",
    ]

    /// Opens the state database for writing: a new file, or one of vigil's at
    /// a schema this build knows (anything else is refused, untouched), in WAL
    /// mode with the given durability, migrated to `version`.
    public static func open(path: String, sync: Database.Sync) throws -> Database {
        let db: Database
        do {
            db = try Database(path: path, sync: nil)
        } catch {
            throw StateFileError("cannot open the state database \(path): \(error.message)")
        }
        _ = try db.claimState(knownTables: tables, newest: version)
        try db.configure(sync: sync)
        try migrate(db)
        return db
    }

    /// Brings an open database to `version`. Safe from several connections at
    /// once: the version is read again inside the migration's transaction.
    public static func migrate(_ db: Database) throws {
        let found = try db.claimState(knownTables: tables, newest: version)
        guard found < version else { return }
        try db.transaction {
            let now = try db.prepare("PRAGMA user_version").scalarInt() ?? 0
            for m in migrations where m.version > now { try m.apply(db) }
            try db.stampState(version: version)
        }
    }

    /// The durable outbox. `events` holds each event once. `deliveries` is one
    /// row per (sink, event), keyed in the order a sink takes them — state,
    /// then severity (highest first), then FIFO — so a sink's next batch is a
    /// walk along the key and an insert touches one B-tree. `incident` groups
    /// an incident's deliveries (`incidentKey`) for keeping its events in order.
    static let outbox = """
        CREATE TABLE IF NOT EXISTS events(
            seq INTEGER PRIMARY KEY,
            event_id TEXT NOT NULL UNIQUE,
            incident_id TEXT NOT NULL,
            type TEXT NOT NULL,
            rule TEXT NOT NULL,
            severity INTEGER NOT NULL,
            created_at INTEGER NOT NULL,
            body TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS deliveries(
            sink TEXT NOT NULL,
            state INTEGER NOT NULL,
            severity INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            incident INTEGER NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            next_at INTEGER NOT NULL DEFAULT 0,
            last_error TEXT,
            updated_at INTEGER,
            PRIMARY KEY(sink, state, severity DESC, seq)) WITHOUT ROWID;

        """

    /// What ingestion keeps: the journal of messages, broker marks and
    /// acknowledgements (`kind`; `judged_at` is the clock time a late reading
    /// was judged at), the engine's checkpoint, dead letters and small
    /// daemon state (the outage clock, the journal limit after a full disk).
    static let journal = """
        CREATE TABLE IF NOT EXISTS dead_letters(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            received_at INTEGER NOT NULL,
            topic TEXT NOT NULL,
            reason TEXT NOT NULL,
            detail TEXT NOT NULL,
            payload BLOB);
        CREATE TABLE IF NOT EXISTS journal(
            seq INTEGER PRIMARY KEY AUTOINCREMENT,
            received_at INTEGER NOT NULL,
            mid INTEGER NOT NULL,
            topic TEXT NOT NULL,
            payload BLOB NOT NULL,
            kind INTEGER NOT NULL DEFAULT 0,
            judged_at INTEGER);
        CREATE INDEX IF NOT EXISTS journal_time ON journal(received_at);
        CREATE TABLE IF NOT EXISTS checkpoint(
            id INTEGER PRIMARY KEY CHECK (id = 1),
            journal_seq INTEGER NOT NULL,
            at INTEGER NOT NULL,
            state BLOB NOT NULL);
        CREATE TABLE IF NOT EXISTS daemon_state(
            name TEXT PRIMARY KEY,
            value BLOB NOT NULL);

        """

    /// Incidents as the duty desk sees them, each with its events. (Migration
    /// 3 adds `ord` to `incident_events`: an event's place among its
    /// incident's, 1, 2, …; null in rows written before it.)
    static let history = """
        CREATE TABLE IF NOT EXISTS incidents(
            id TEXT PRIMARY KEY,
            rule TEXT NOT NULL,
            severity INTEGER NOT NULL,
            route TEXT NOT NULL,
            feed TEXT NOT NULL,
            channel TEXT,
            community TEXT,
            location TEXT,
            title TEXT NOT NULL,
            opened_at INTEGER NOT NULL,
            resolved_at INTEGER,
            acknowledged_at INTEGER,
            acknowledged_by TEXT,
            note TEXT,
            updated_at INTEGER NOT NULL,
            last_event TEXT NOT NULL);
        CREATE INDEX IF NOT EXISTS incidents_newest ON incidents(resolved_at, opened_at DESC, id);
        CREATE TABLE IF NOT EXISTS incident_events(
            incident_id TEXT NOT NULL,
            event_id TEXT NOT NULL,
            at INTEGER NOT NULL,
            body TEXT NOT NULL,
            PRIMARY KEY(incident_id, event_id)) WITHOUT ROWID;
        """

    /// The grouping key of an incident's deliveries: FNV-1a, 64 bits. Two
    /// incidents sharing a key would only make one wait for the other.
    public static func incidentKey(_ id: String) -> Int64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in id.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return Int64(bitPattern: h)
    }
}

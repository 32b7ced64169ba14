/// Migration 2: the layouts earlier builds wrote, brought to this one. Those
/// builds created their tables at every start, so a file stamped 1 (or not
/// stamped) may hold any of them; this is the one place that looks at
/// columns to tell them apart.
extension StateSchema {
    /// The first outbox keyed deliveries by sink and seq with separate order
    /// and incident indexes: re-key them, keeping every row.
    static func rekeyDeliveries(_ db: Database) throws {
        let hasOld = try db.prepare("SELECT count(*) FROM pragma_table_info('deliveries') WHERE name = 'incident_id'").scalarInt() ?? 0
        guard hasOld > 0 else { return }
        try db.execute(
            """
            DROP INDEX IF EXISTS events_incident;
            DROP INDEX IF EXISTS deliveries_order;
            DROP INDEX IF EXISTS deliveries_incident;
            ALTER TABLE deliveries RENAME TO deliveries_v1;
            """)
        try db.execute(outbox)
        let insert = try db.prepare(
            """
            INSERT INTO deliveries(sink, state, severity, seq, incident, attempts, next_at, last_error, updated_at)
            VALUES(?,?,?,?,?,?,?,?,?)
            """)
        try db.prepare("SELECT sink, state, severity, seq, incident_id, attempts, next_at, last_error, updated_at FROM deliveries_v1")
            .query([]) { r in
                try insert.run(
                    .text(r.text(0)), .int(r.int(1)), .int(r.int(2)), .int(r.int(3)), .int(incidentKey(r.text(4))),
                    .int(r.int(5)), .int(r.int(6)), r.isNull(7) ? .null : .text(r.text(7)), r.isNull(8) ? .null : .int(r.int(8)))
            }
        try db.execute("DROP TABLE deliveries_v1")
    }

    /// Journals of earlier builds held messages only: no `kind`, no `judged_at`.
    static func addJournalColumns(_ db: Database) throws {
        var columns = Set<String>()
        try db.prepare("PRAGMA table_info(journal)").query([]) { columns.insert($0.text(1)) }
        if !columns.contains("kind") { try db.execute("ALTER TABLE journal ADD COLUMN kind INTEGER NOT NULL DEFAULT 0") }
        if !columns.contains("judged_at") { try db.execute("ALTER TABLE journal ADD COLUMN judged_at INTEGER") }
    }
}

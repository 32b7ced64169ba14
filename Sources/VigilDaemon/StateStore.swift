import VigilCore
import VigilDispatch
import VigilStore

/// The state database as the evaluation stage writes it: incident events into
/// the outbox and dead letters, in one transaction per batch of readings.
final class StateStore {
    let db: Database
    let queue: EventQueue
    let insertDeadLetter: Statement
    let insertJournal: MultiRowInsert
    let writeCheckpoint: Statement
    let selectJournalRow: Statement
    /// Approximate bytes of journal rows, for `journal.max_size`.
    var journalBytes: Int64 = 0
    let trimDeadLetters: Statement
    let sinks: [EventQueue.SinkRoute]
    var deadLettersSinceTrim = 0
    static let maxDeadLetters = 10_000

    init(path: String, sinks: [EventQueue.SinkRoute]) throws {
        db = try Database(path: path)
        queue = try EventQueue(db: db)
        try db.execute("""
            CREATE TABLE IF NOT EXISTS dead_letters(
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                received_at INTEGER NOT NULL,
                topic TEXT NOT NULL,
                reason TEXT NOT NULL,
                detail TEXT NOT NULL,
                payload BLOB);
            """)
        try db.execute("""
            CREATE TABLE IF NOT EXISTS journal(
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                received_at INTEGER NOT NULL,
                mid INTEGER NOT NULL,
                topic TEXT NOT NULL,
                payload BLOB NOT NULL);
            CREATE INDEX IF NOT EXISTS journal_time ON journal(received_at);
            CREATE TABLE IF NOT EXISTS checkpoint(
                id INTEGER PRIMARY KEY CHECK (id = 1),
                journal_seq INTEGER NOT NULL,
                at INTEGER NOT NULL,
                state BLOB NOT NULL);
            """)
        insertJournal = MultiRowInsert(db: db, head: "INSERT INTO journal(received_at, mid, topic, payload) VALUES", row: "(?,?,?,?)")
        writeCheckpoint = try db.prepare("INSERT OR REPLACE INTO checkpoint(id, journal_seq, at, state) VALUES(1,?,?,?)")
        selectJournalRow = try db.prepare("SELECT topic, payload FROM journal WHERE seq = ?")
        insertDeadLetter = try db.prepare("INSERT INTO dead_letters(received_at, topic, reason, detail, payload) VALUES(?,?,?,?,?)")
        trimDeadLetters = try db.prepare("DELETE FROM dead_letters WHERE id <= (SELECT max(id) FROM dead_letters) - ?")
        self.sinks = sinks
    }

    /// A journaled message, as recovery reads it back.
    struct JournalEntry {
        var receivedAt: Millis
        var topic: String
        var payload: [UInt8]
    }

    /// Commits one batch — the messages read, the events they produced, the
    /// dead letters and, when due, the engine's checkpoint — in one
    /// transaction. Returns the deliveries added per sink.
    func commit(messages: [(receivedAt: Millis, mid: Int32, topic: String, payload: [UInt8])], events: [IncidentEvent],
                deadLetters: [DeadLetter], checkpoint: [UInt8]?, now: Millis) throws -> [String: Int] {
        if messages.isEmpty && events.isEmpty && deadLetters.isEmpty && checkpoint == nil { return [:] }
        return try db.transaction {
            var values: [Statement.Value] = []
            values.reserveCapacity(4 * messages.count)
            for m in messages {
                values.append(.int(m.receivedAt)); values.append(.int(Int64(m.mid))); values.append(.text(m.topic)); values.append(.blob(m.payload))
                journalBytes += Int64(m.payload.count + m.topic.utf8.count + 32)
            }
            try insertJournal.run(values)
            if let checkpoint {
                let seq = try db.prepare("SELECT coalesce(max(seq), 0) FROM journal").scalarInt() ?? 0
                try writeCheckpoint.run(.int(seq), .int(now), .blob(checkpoint))
            }
            for d in deadLetters {
                // Dead letters are kept bounded: the oldest go first.
                try insertDeadLetter.run(.int(d.receivedAt), .text(d.topic), .text(d.reason.rawValue), .text(d.detail),
                                         .blob(Array(d.payload.prefix(65_536))))
            }
            deadLettersSinceTrim += deadLetters.count
            if deadLettersSinceTrim >= 1000 {
                try trimDeadLetters.run(.int(Int64(StateStore.maxDeadLetters)))
                deadLettersSinceTrim = 0
            }
            return try queue.enqueue(events, sinks: sinks, now: now)
        }
    }
}

extension StateStore {
    /// The last checkpoint: the engine state and the journal position it includes.
    func loadCheckpoint() throws -> (journalSeq: Int64, state: [UInt8])? {
        var out: (Int64, [UInt8])?
        try db.prepare("SELECT journal_seq, state FROM checkpoint WHERE id = 1").query([]) { out = ($0.int(0), $0.blob(1)) }
        return out
    }

    /// Journal rows after `seq`, in order.
    func journal(after seq: Int64, _ each: (JournalEntry) throws -> Void) throws {
        try db.prepare("SELECT received_at, topic, payload FROM journal WHERE seq > ? ORDER BY seq").query([.int(seq)]) { r in
            try each(JournalEntry(receivedAt: r.int(0), topic: r.text(1), payload: r.blob(2)))
        }
    }

    /// The packet ids of the last `n` journaled QoS 1 messages, with their
    /// journal positions (the later one where an id repeats).
    func recentPacketIDs(last n: Int) throws -> [Int32: Int64] {
        var out: [Int32: Int64] = [:]
        out.reserveCapacity(n)
        try db.prepare("SELECT seq, mid FROM journal ORDER BY seq DESC LIMIT ?").query([.int(Int64(n))]) { r in
            let mid = Int32(truncatingIfNeeded: r.int(1))
            if mid != 0, out[mid] == nil { out[mid] = r.int(0) }
        }
        return out
    }

    /// Whether the journal row `seq` holds exactly this topic and payload.
    func journalRow(_ seq: Int64, is topic: String, _ payload: [UInt8]) throws -> Bool {
        var same = false
        try selectJournalRow.query([.int(seq)]) { r in same = r.text(0) == topic && r.blob(1) == payload }
        return same
    }

    func measureJournal() throws {
        journalBytes = try db.prepare("SELECT coalesce(sum(length(payload) + length(topic) + 32), 0) FROM journal").scalarInt() ?? 0
    }

    /// Drops journal rows older than `retention`, and the oldest while over
    /// `maxSize`, never rows the last checkpoint does not include.
    func trimJournal(retention: Millis, maxSize: Int64, now: Millis) throws -> Int {
        guard let (seq, _) = try loadCheckpoint() else { return 0 }
        var removed = 0
        try db.transaction {
            try db.prepare("DELETE FROM journal WHERE seq <= ? AND received_at < ?").run(.int(seq), .int(now - retention))
            removed += db.changes
        }
        while journalBytes > maxSize {
            var freed: Int64 = 0
            var n = 0
            try db.transaction {
                try db.prepare("DELETE FROM journal WHERE seq IN (SELECT seq FROM journal WHERE seq <= ? ORDER BY seq LIMIT 10000) RETURNING length(payload) + length(topic) + 32")
                    .query([.int(seq)]) { freed += $0.int(0); n += 1 }
            }
            if n == 0 { break }
            journalBytes -= freed
            removed += n
        }
        if removed > 0 { try measureJournal() }
        return removed
    }
}

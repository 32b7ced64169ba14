import VigilConfig
import VigilCore
import VigilDispatch
import VigilStore

/// The state database as the evaluation stage writes it: incident events into
/// the outbox and dead letters, in one transaction per batch of readings.
final class StateStore {
    let db: Database
    /// The journal's trims commit through a connection of their own that
    /// does not wait for the disk (`synchronous=NORMAL`) and leaves the WAL's
    /// checkpoints to `db`. A trim that a power cut undoes only brings back
    /// rows the next trim drops again, and the WAL is written in order: the
    /// next batch's synced commit takes the trim's frames to disk with its
    /// own. So a trim makes no sync of its own (but for the WAL header's, when
    /// its commit is the one that starts the WAL over) and seldom waits out
    /// one of the disk's stalls with readings behind it. (Same thread as
    /// `db`, one transaction at a time.)
    let trimDB: Database
    /// `trimByAge` and `trimBySize` on `trimDB`, prepared once: a full journal trims every 10 ms.
    let trimOld, trimOver: Statement
    let queue: EventQueue
    let insertDeadLetter: Statement
    let insertJournal: MultiRowInsert
    let writeCheckpoint: Statement
    let selectJournalRow: Statement
    let writeState: Statement
    let deleteState: Statement
    /// Approximate bytes of journal rows, for `journal.max_size`.
    var journalBytes: Int64 = 0
    let trimDeadLetters: Statement
    let sinks: [EventQueue.SinkRoute]
    var deadLettersSinceTrim = 0
    var historyStatements: IncidentHistory.Statements?
    static let maxDeadLetters = 10_000

    /// Opens the state database (`StateSchema.open`: a new file, or one of
    /// vigil's at a schema this build knows, migrated; anything else is refused, untouched).
    init(path: String, sinks: [EventQueue.SinkRoute], sync: VigilConfig.JournalSync = .full) throws {
        db = try StateSchema.open(path: path, sync: sync == .full ? .full : .normal)
        trimDB = try Database(path: path, sync: .normal, checkpoints: false)
        trimOld = try trimDB.prepare(StateStore.trimByAge)
        trimOver = try trimDB.prepare(StateStore.trimBySize)
        queue = try EventQueue(db: db)
        insertJournal = MultiRowInsert(
            db: db, head: "INSERT INTO journal(received_at, kind, mid, topic, payload, judged_at) VALUES",
            row: "(?,?,?,?,?,?)")
        writeCheckpoint = try db.prepare("INSERT OR REPLACE INTO checkpoint(id, journal_seq, at, state) VALUES(1,?,?,?)")
        selectJournalRow = try db.prepare("SELECT topic, payload FROM journal WHERE seq = ?")
        writeState = try db.prepare("INSERT OR REPLACE INTO daemon_state(name, value) VALUES(?,?)")
        deleteState = try db.prepare("DELETE FROM daemon_state WHERE name = ?")
        insertDeadLetter = try db.prepare("INSERT INTO dead_letters(received_at, topic, reason, detail, payload) VALUES(?,?,?,?,?)")
        trimDeadLetters = try db.prepare("DELETE FROM dead_letters WHERE id <= (SELECT max(id) FROM dead_letters) - ?")
        self.sinks = sinks
    }

    typealias JournalEntry = VigilIngest.JournalEntry

    /// Commits one batch — the records taken, the events they produced, the
    /// dead letters and, when due, the engine's checkpoint — in one
    /// transaction. Returns the deliveries added per sink.
    func commit(
        journal: [JournalEntry], events: [IncidentEvent], deadLetters: [DeadLetter], checkpoint: [UInt8]?,
        state: [(name: String, value: [UInt8]?)] = [], now: Millis
    ) throws -> [String: Int] {
        if journal.isEmpty && events.isEmpty && deadLetters.isEmpty && checkpoint == nil && state.isEmpty { return [:] }
        var size: Int64 = 0
        for m in journal { size += Int64(m.payload.count + m.topic.utf8.count + 32) }
        let added = try db.transaction {
            var values: [Statement.Value] = []
            values.reserveCapacity(6 * journal.count)
            for m in journal {
                values.append(.int(m.receivedAt)); values.append(.int(m.kind.rawValue)); values.append(.int(Int64(m.mid)))
                values.append(.text(m.topic)); values.append(.blob(m.payload)); values.append(m.judgedAt.map { .int($0) } ?? .null)
            }
            try insertJournal.run(values)
            for (name, value) in state {
                if let value { try writeState.run(.text(name), .blob(value)) } else { try deleteState.run(.text(name)) }
            }
            if let checkpoint {
                let seq = try db.prepare("SELECT coalesce(max(seq), 0) FROM journal").scalarInt() ?? 0
                try writeCheckpoint.run(.int(seq), .int(now), .blob(checkpoint))
            }
            for d in deadLetters {
                // Dead letters are kept bounded: the oldest go first.
                try insertDeadLetter.run(
                    .int(d.receivedAt), .text(d.topic), .text(d.reason.rawValue), .text(d.detail),
                    .blob(Array(d.payload.prefix(65_536))))
            }
            deadLettersSinceTrim += deadLetters.count
            if deadLettersSinceTrim >= 1000 {
                try trimDeadLetters.run(.int(Int64(StateStore.maxDeadLetters)))
                deadLettersSinceTrim = 0
            }
            try IncidentHistory.record(events, in: db, statements: &historyStatements)
            return try queue.enqueue(events, sinks: sinks, now: now)
        }
        // Counted once the transaction commits (a failed one is retried).
        journalBytes += size
        return added
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
        try db.prepare("SELECT received_at, kind, mid, topic, payload, judged_at FROM journal WHERE seq > ? ORDER BY seq").query([.int(seq)]) { r in
            try each(
                JournalEntry(
                    receivedAt: r.int(0), kind: JournalEntry.Kind(rawValue: r.int(1)) ?? .message,
                    mid: Int32(truncatingIfNeeded: r.int(2)), topic: r.text(3), payload: r.blob(4),
                    judgedAt: r.isNull(5) ? nil : r.int(5)))
        }
    }

    /// The last journal row's arrival time and kind, if the journal holds any.
    func lastJournalRecord() throws -> (receivedAt: Millis, kind: JournalEntry.Kind)? {
        var out: (Millis, JournalEntry.Kind)?
        try db.prepare("SELECT received_at, kind FROM journal ORDER BY seq DESC LIMIT 1").query([]) {
            out = ($0.int(0), JournalEntry.Kind(rawValue: $0.int(1)) ?? .message)
        }
        return out
    }

    /// A value the daemon keeps beside the engine's checkpoint.
    func state(_ name: String) throws -> [UInt8]? {
        var out: [UInt8]?
        try db.prepare("SELECT value FROM daemon_state WHERE name = ?").query([.text(name)]) { out = $0.blob(0) }
        return out
    }

    /// The packet ids of the last `n` journaled QoS 1 messages, with their
    /// journal positions (the later one where an id repeats).
    func recentPacketIDs(last n: Int) throws -> [Int32: Int64] {
        var out: [Int32: Int64] = [:]
        out.reserveCapacity(n)
        try db.prepare("SELECT seq, mid FROM journal WHERE kind = 0 ORDER BY seq DESC LIMIT ?").query([.int(Int64(n))]) { r in
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

    /// The journal rows past retention (?2) and behind the checkpoint (?1), oldest first, at most ?3.
    static let trimByAge =
        "DELETE FROM journal WHERE seq IN (SELECT seq FROM journal WHERE received_at < ?2 AND seq <= ?1 ORDER BY received_at LIMIT ?3)"
        + " RETURNING length(payload) + length(topic) + 32"

    /// The oldest journal rows behind the checkpoint (?1), at most ?2.
    static let trimBySize =
        "DELETE FROM journal WHERE seq IN (SELECT seq FROM journal WHERE seq <= ?1 ORDER BY seq LIMIT ?2)"
        + " RETURNING length(payload) + length(topic) + 32"

    /// Rows a trim deletes in one transaction: about 2 ms of the ingestion
    /// thread (a delete and its unsynced commit). 4,000 took about 10 ms: a reading
    /// that arrived meanwhile waited that long, and with a journal at its
    /// limit (a minute of traffic shed every minute: 30 such waits a minute at
    /// 2,000 msg/s) those waits were in the p99 of incidents.
    public static let trimChunk = 500

    /// Drops journal rows older than `retention`, then the oldest while over
    /// `maxSize`, never rows the last checkpoint does not include — at most
    /// `limit` rows, in one short transaction: a trim runs on the ingestion
    /// thread, and a journal at its limit sheds a minute of traffic every
    /// minute, so one long delete would hold every reading behind it. The
    /// size is kept by subtracting what is deleted (never by scanning the
    /// journal). Returns the rows removed and whether rows to drop are left.
    func trimJournal(retention: Millis, maxSize: Int64, now: Millis, limit: Int = StateStore.trimChunk) throws -> (removed: Int, more: Bool) {
        guard let (seq, _) = try loadCheckpoint() else { return (0, false) }
        var removed = 0
        var freed: Int64 = 0
        let bytes = journalBytes
        try trimDB.transaction {
            // Rows past retention found by their time (`journal_time`): walked
            // in `seq` order, a journal within retention was read row by row
            // to the checkpoint, all of it, every minute — most of a second
            // for a full journal, on the ingestion thread.
            try trimOld.query([.int(seq), .int(now - retention), .int(Int64(limit))]) {
                freed += $0.int(0)
                removed += 1
            }
            guard removed < limit, bytes - freed > maxSize else { return }
            try trimOver.query([.int(seq), .int(Int64(limit - removed))]) {
                freed += $0.int(0)
                removed += 1
            }
        }
        journalBytes = max(0, bytes - freed)
        return (removed, removed >= limit)
    }
}

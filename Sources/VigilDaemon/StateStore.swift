import VigilCore
import VigilDispatch
import VigilStore

/// The state database as the evaluation stage writes it: incident events into
/// the outbox and dead letters, in one transaction per batch of readings.
final class StateStore {
    let db: Database
    let queue: EventQueue
    let insertDeadLetter: Statement
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
        insertDeadLetter = try db.prepare("INSERT INTO dead_letters(received_at, topic, reason, detail, payload) VALUES(?,?,?,?,?)")
        trimDeadLetters = try db.prepare("DELETE FROM dead_letters WHERE id <= (SELECT max(id) FROM dead_letters) - ?")
        self.sinks = sinks
    }

    /// Commits one batch; returns the deliveries added per sink.
    func commit(events: [IncidentEvent], deadLetters: [DeadLetter], now: Millis) throws -> [String: Int] {
        if events.isEmpty && deadLetters.isEmpty { return [:] }
        return try db.transaction {
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

import Foundation
import Testing
import VigilCore
@testable import VigilIngest
import VigilTestSupport

/// A journal row of message `n` (topic `t/n`, payload `{"n":n}`) received at `t`.
func message(_ n: Int, at t: Millis) -> JournalEntry {
    JournalEntry(receivedAt: t, kind: .message, mid: Int32(n), topic: "t/\(n)", payload: Array("{\"n\":\(n)}".utf8))
}

/// A state store in a folder of its own, removed after `body`; the database's path beside it.
func withJournalStore(_ body: (StateStore, String) throws -> Void) throws {
    let dir = try makeWorkDir()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = dir + "/vigil.db"
    try body(try StateStore(path: path, sinks: [], sync: .normal), path)
}

@Suite struct JournalReaderTests {
    /// Short read transactions that together are the journal as it was at the
    /// start: rows appended while it is read are not part of it.
    @Test func theJournalIsReadInChunksAsItWasAtTheStart() throws {
        try withJournalStore { store, path in
            _ = try store.commit(journal: (0..<10).map { message($0, at: 1000 + Millis($0)) }, events: [], deadLetters: [], checkpoint: nil, now: 2000)
            var reader = JournalReader(stateDatabase: path)
            reader.chunk = 3
            var seen: [String] = []
            try reader.forEach(since: nil) { e in
                seen.append(e.topic)
                if seen.count == 2 {
                    _ = try store.commit(journal: [message(99, at: 1005)], events: [], deadLetters: [], checkpoint: nil, now: 2001)
                }
            }
            #expect(seen == (0..<10).map { "t/\($0)" })
            var window: [String] = []
            try reader.forEach(since: 1004, until: 1008) { window.append($0.topic) }
            // In journal order, the row appended during the first read included now.
            #expect(window == ["t/4", "t/5", "t/6", "t/7", "t/99"])
        }
    }

    /// The reader's work on a row happens after its chunk's read transaction
    /// ended: the daemon's checkpoint meanwhile copies everything, its own
    /// latest commit included (a reader inside a transaction would hold back
    /// the frames committed after its snapshot).
    @Test func rowsAreHandedOnOutsideTheReadTransaction() throws {
        try withJournalStore { store, path in
            _ = try store.commit(journal: (0..<6).map { message($0, at: 1000 + Millis($0)) }, events: [], deadLetters: [], checkpoint: nil, now: 2000)
            var reader = JournalReader(stateDatabase: path)
            reader.chunk = 4
            var checkpoints: [(log: Int64, copied: Int64)] = []
            try reader.forEach(since: nil) { e in
                _ = try store.commit(journal: [message(100 + Int(e.mid), at: 3000)], events: [], deadLetters: [], checkpoint: nil, now: 3000)
                try store.db.prepare("PRAGMA wal_checkpoint(PASSIVE)").query([]) { checkpoints.append(($0.int(1), $0.int(2))) }
            }
            #expect(checkpoints.count == 6)
            for c in checkpoints { #expect(c.log > 0 && c.copied == c.log, "\(c.copied) of \(c.log) WAL frames copied") }
        }
    }
}

@Suite struct JournalTrimTests {
    /// The rows past retention are found by their time, never by reading the
    /// journal row by row (a full journal within retention took most of a
    /// second every minute); they go oldest first, only behind the checkpoint.
    @Test func rowsPastRetentionAreFoundByTheirTime() throws {
        try withJournalStore { store, _ in
            var plan: [String] = []
            try store.db.prepare("EXPLAIN QUERY PLAN " + StateStore.trimByAge).query([.int(1), .int(2), .int(3)]) { plan.append($0.text(3)) }
            // The rows chosen through the time index; each then deleted by its key (rowid=?), none walked by range.
            #expect(plan.contains { $0.contains("INDEX journal_time (received_at<?)") })
            #expect(!plan.contains { $0.contains("rowid<") || $0.hasPrefix("SCAN journal") })
            _ = try store.commit(journal: (0..<10).map { message($0, at: 1000 + Millis($0)) }, events: [], deadLetters: [], checkpoint: [1], now: 2000)
            _ = try store.commit(journal: (10..<12).map { message($0, at: 1000 + Millis($0)) }, events: [], deadLetters: [], checkpoint: nil, now: 2000)
            // Older than 1,006: rows 0–5, three at a time; rows 10 and 11 are not behind the checkpoint.
            #expect(try store.trimJournal(retention: 100, maxSize: .max, now: 1106, limit: 3) == (3, true))
            #expect(try store.trimJournal(retention: 100, maxSize: .max, now: 1106, limit: 3) == (3, true))
            #expect(try store.trimJournal(retention: 100, maxSize: .max, now: 1106, limit: 3) == (0, false))
            var left: [Int64] = []
            try store.db.prepare("SELECT mid FROM journal ORDER BY seq").query([]) { left.append($0.int(0)) }
            #expect(left == [6, 7, 8, 9, 10, 11])
            #expect(try store.trimJournal(retention: 0, maxSize: .max, now: 5000, limit: 100) == (4, false))
        }
    }

    /// A trim takes `trimChunk` rows a transaction, whether by age or by size:
    /// a short wait for the readings behind it, however far behind it is.
    @Test func aTrimTakesAChunkAtATime() throws {
        try withJournalStore { store, _ in
            let n = StateStore.trimChunk * 2 + 7
            _ = try store.commit(journal: (0..<n).map { message($0, at: 1000 + Millis($0)) }, events: [], deadLetters: [], checkpoint: [1], now: 2000)
            #expect(try store.trimJournal(retention: 1, maxSize: .max, now: 1_000_000) == (StateStore.trimChunk, true))
            #expect(try store.trimJournal(retention: 1, maxSize: 0, now: 0) == (StateStore.trimChunk, true))
            #expect(try store.trimJournal(retention: 1, maxSize: .max, now: 1_000_000) == (7, false))
            #expect(try store.db.prepare("SELECT count(*) FROM journal").scalarInt() == 0)
        }
    }

    /// A trim commits without a sync of its own (a power cut that undoes one
    /// only brings rows back for the next) and runs no checkpoint; the
    /// batches' commits stay synced.
    @Test func trimsDoNotWaitForTheDiskButBatchesDo() throws {
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let store = try StateStore(path: dir + "/vigil.db", sinks: [], sync: .full)
            #expect(try store.db.prepare("PRAGMA synchronous").scalarInt() == 2)  // FULL
            #expect(try store.trimDB.prepare("PRAGMA synchronous").scalarInt() == 1)  // NORMAL
            // Nor does it checkpoint (two syncs): the batches' connection does.
            #expect(store.db.checkpoints && !store.trimDB.checkpoints)
            _ = try store.commit(journal: (0..<3).map { message($0, at: 1000 + Millis($0)) }, events: [], deadLetters: [], checkpoint: [1], now: 2000)
            #expect(try store.trimJournal(retention: 1, maxSize: .max, now: 1_000_000) == (3, false))
            _ = try store.commit(journal: [message(3, at: 5000)], events: [], deadLetters: [], checkpoint: nil, now: 5000)
            var left: [Int64] = []
            try store.db.prepare("SELECT mid FROM journal ORDER BY seq").query([]) { left.append($0.int(0)) }
            #expect(left == [3])
            #expect(try store.db.prepare("PRAGMA synchronous").scalarInt() == 2)
        }
    }
}

import Foundation
import Testing
import VigilCore
@testable import VigilIngest

@Suite struct JournalReaderTests {
    func message(_ n: Int, at t: Millis) -> JournalEntry {
        JournalEntry(receivedAt: t, kind: .message, mid: Int32(n), topic: "t/\(n)", payload: Array("{\"n\":\(n)}".utf8))
    }

    /// Short read transactions that together are the journal as it was at the
    /// start: rows appended while it is read are not part of it.
    @Test func theJournalIsReadInChunksAsItWasAtTheStart() throws {
        let dir = NSTemporaryDirectory() + "vigil-journal-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try StateStore(path: dir + "/vigil.db", sinks: [], sync: .normal)
        _ = try store.commit(journal: (0..<10).map { message($0, at: 1000 + Millis($0)) }, events: [], deadLetters: [], checkpoint: nil, now: 2000)
        var reader = JournalReader(stateDatabase: dir + "/vigil.db")
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

import Foundation
import Testing
import VigilCore
import VigilStore
@testable import VigilDispatch

func event(_ id: String, incident: String, _ type: IncidentEventType = .opened, severity: Severity = .major, route: String = "fire_safety") -> IncidentEvent {
    IncidentEvent(eventID: id, type: type, incidentID: incident, rule: "r", severity: severity, route: route, feed: "fire_alarm",
                  channel: "fa-1", key: JSONObject([("channel", "fa-1")]), title: "t", labels: JSONObject(), channelInfo: JSONObject(),
                  startedAt: 0, openedAt: 0, resolvedAt: nil, at: 0, count: 1, reading: nil)
}

func scratchDatabase() throws -> (Database, String) {
    let dir = NSTemporaryDirectory() + "vigil-q-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return (try Database(path: dir + "/vigil.db"), dir)
}

@Suite struct EventQueueTests {
    let all = [EventQueue.SinkRoute(name: "file", routes: ["*"], minSeverity: .info)]

    @Test func anEventIsWrittenOnceWhateverTheRetries() throws {
        let (db, dir) = try scratchDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let q = try EventQueue(db: db)
        let e = event("e1", incident: "i1")
        let first = try db.transaction { try q.enqueue([e], sinks: all, now: 1) }
        let again = try db.transaction { try q.enqueue([e, e], sinks: all, now: 2) }
        #expect(first == ["file": 1])
        #expect(again == [:])
        #expect(try q.pendingCounts() == ["file": 1])
    }

    @Test func higherSeverityFirstThenFIFO() throws {
        let (db, dir) = try scratchDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let q = try EventQueue(db: db)
        try db.transaction {
            try q.enqueue([event("minor-1", incident: "a", severity: .minor), event("crit-1", incident: "b", severity: .critical),
                           event("major-1", incident: "c"), event("crit-2", incident: "d", severity: .critical)], sinks: all, now: 0)
        }
        let cursor = try SinkCursor(db: db, sink: "file")
        #expect(try cursor.nextBatch(now: 0, limit: 10).map(\.eventID) == ["crit-1", "crit-2", "major-1", "minor-1"])
    }

    @Test func anIncidentsLaterEventsWaitForItsEarlierOnes() throws {
        let (db, dir) = try scratchDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let q = try EventQueue(db: db)
        try db.transaction {
            try q.enqueue([event("open", incident: "x"), event("other", incident: "y"),
                           event("update", incident: "x", .updated), event("resolve", incident: "x", .resolved)], sinks: all, now: 0)
        }
        let cursor = try SinkCursor(db: db, sink: "file")
        let batch = try cursor.nextBatch(now: 0, limit: 10)
        #expect(batch.map(\.eventID) == ["open", "other"])
        // "open" backs off: nothing of incident x may pass it.
        try cursor.retry(batch[0].seq, at: 5000, error: "503", now: 0)
        try cursor.delivered([batch[1].seq], now: 0)
        #expect(try cursor.nextBatch(now: 100, limit: 10).isEmpty)
        #expect(try cursor.earliestDue() == 5000)
        let later = try cursor.nextBatch(now: 5000, limit: 10)
        #expect(later.map(\.eventID) == ["open"])
        #expect(later[0].attempts == 1)
        try cursor.delivered([later[0].seq], now: 5000)
        #expect(try cursor.nextBatch(now: 5000, limit: 10).map(\.eventID) == ["update"])
    }

    @Test func eachSinkHasItsOwnStateAndFilters() throws {
        let (db, dir) = try scratchDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let q = try EventQueue(db: db)
        let sinks = [
            EventQueue.SinkRoute(name: "file", routes: ["*"], minSeverity: .info),
            EventQueue.SinkRoute(name: "fire", routes: ["fire_safety"], minSeverity: .major),
        ]
        let added = try db.transaction {
            try q.enqueue([event("a", incident: "1", severity: .critical), event("b", incident: "2", severity: .minor),
                           event("c", incident: "3", route: "maintenance")], sinks: sinks, now: 0)
        }
        #expect(added == ["file": 3, "fire": 1])
        let fire = try SinkCursor(db: db, sink: "fire")
        let file = try SinkCursor(db: db, sink: "file")
        let fb = try fire.nextBatch(now: 0, limit: 10)
        try fire.dead(fb[0].seq, error: "400", now: 0)  // a dead sink …
        #expect(try file.nextBatch(now: 0, limit: 10).count == 3)  // … delays no other
        #expect(try q.pendingCounts() == ["file": 3])
    }

    @Test func fileSinkAppendsLinesAndConfirms() async throws {
        let (db, dir) = try scratchDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = db
        let sink = FileSink(name: "file", path: dir + "/out/incidents.jsonl")
        try FileManager.default.createDirectory(atPath: dir + "/out", withIntermediateDirectories: true)
        let batch = [EventQueue.Pending(seq: 1, eventID: "e", incidentID: "i", body: #"{"a":1}"#, attempts: 0, createdAt: 0),
                     EventQueue.Pending(seq: 2, eventID: "f", incidentID: "i", body: #"{"b":2}"#, attempts: 0, createdAt: 0)]
        let outcomes = await sink.deliver(batch)
        #expect(outcomes.count == 2)
        if case .delivered = outcomes[0] {} else { Issue.record("not delivered") }
        #expect(try String(contentsOfFile: dir + "/out/incidents.jsonl", encoding: .utf8) == "{\"a\":1}\n{\"b\":2}\n")
        let missing = await FileSink(name: "x", path: dir + "/no/such/dir/f").deliver(batch)
        if case .retry = missing[0] {} else { Issue.record("an unwritable file must be retried") }
    }
}

@Suite struct RetryPolicyTests {
    @Test func fullJitterStaysBetweenInitialAndTheCappedExponential() {
        let p = RetryPolicy(initial: 1000, max: 300_000, maxAge: 86_400_000)
        for attempts in 0..<30 {
            for _ in 0..<50 {
                let d = p.delay(afterAttempts: attempts)
                #expect(d >= 1000)
                #expect(d <= min(300_000, 1000 << min(attempts, 20)))
            }
        }
        #expect(p.delay(afterAttempts: 0, retryAfter: 2000) >= 2000)
        #expect(p.delay(afterAttempts: 5) { $0.upperBound } == 32_000)
        #expect(p.delay(afterAttempts: 60) { $0.upperBound } == 300_000)
    }
}

import Foundation
import Testing
import VigilCore
import VigilStore
@testable import VigilDispatch
import VigilTestSupport

func event(_ id: String, incident: String, _ type: IncidentEventType = .opened, severity: Severity = .major, route: String = "fire_safety") -> IncidentEvent {
    IncidentEvent(
        eventID: id, type: type, incidentID: incident, rule: "r", severity: severity, route: route, feed: "fire_alarm",
        channel: "fa-1", key: JSONObject([("channel", "fa-1")]), title: "t", labels: JSONObject(), channelInfo: JSONObject(),
        startedAt: 0, openedAt: 0, resolvedAt: nil, at: 0, count: 1, reading: nil)
}

func scratchDatabase() throws -> (Database, String) {
    let dir = try makeWorkDir()
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
            try q.enqueue(
                [
                    event("minor-1", incident: "a", severity: .minor), event("crit-1", incident: "b", severity: .critical),
                    event("major-1", incident: "c"), event("crit-2", incident: "d", severity: .critical),
                ], sinks: all, now: 0)
        }
        let cursor = try SinkCursor(db: db, sink: "file")
        #expect(try cursor.nextBatch(now: 0, limit: 10).map(\.eventID) == ["crit-1", "crit-2", "major-1", "minor-1"])
    }

    @Test func anIncidentsLaterEventsWaitForItsEarlierOnes() throws {
        let (db, dir) = try scratchDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let q = try EventQueue(db: db)
        try db.transaction {
            try q.enqueue(
                [
                    event("open", incident: "x"), event("other", incident: "y"),
                    event("update", incident: "x", .updated), event("resolve", incident: "x", .resolved),
                ], sinks: all, now: 0)
        }
        let cursor = try SinkCursor(db: db, sink: "file")
        let batch = try cursor.nextBatch(now: 0, limit: 10)
        #expect(batch.map(\.eventID) == ["open", "other"])
        // "open" backs off: nothing of incident x may pass it.
        try cursor.retry(batch[0], at: 5000, error: "503", now: 0)
        try cursor.delivered([batch[1]], now: 0)
        #expect(try cursor.nextBatch(now: 100, limit: 10).isEmpty)
        #expect(try cursor.earliestDue() == 5000)
        let later = try cursor.nextBatch(now: 5000, limit: 10)
        #expect(later.map(\.eventID) == ["open"])
        #expect(later[0].attempts == 1)
        try cursor.delivered([later[0]], now: 5000)
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
            try q.enqueue(
                [
                    event("a", incident: "1", severity: .critical), event("b", incident: "2", severity: .minor),
                    event("c", incident: "3", route: "maintenance"),
                ], sinks: sinks, now: 0)
        }
        #expect(added == ["file": 3, "fire": 1])
        let fire = try SinkCursor(db: db, sink: "fire")
        let file = try SinkCursor(db: db, sink: "file")
        let fb = try fire.nextBatch(now: 0, limit: 10)
        try fire.dead(fb[0], error: "400", now: 0)  // a dead sink …
        #expect(try file.nextBatch(now: 0, limit: 10).count == 3)  // … delays no other
        #expect(try q.pendingCounts() == ["file": 3])
    }

    /// A queue written by vigil 0.2 (deliveries keyed by sink and seq, with
    /// order and incident indexes) opens with every row kept and in order.
    @Test func aVersion1QueueIsMigrated() throws {
        let (db, dir) = try scratchDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try db.execute(
            """
            CREATE TABLE events(seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE, incident_id TEXT NOT NULL,
                type TEXT NOT NULL, rule TEXT NOT NULL, severity INTEGER NOT NULL, created_at INTEGER NOT NULL, body TEXT NOT NULL);
            CREATE TABLE deliveries(sink TEXT NOT NULL, seq INTEGER NOT NULL, state INTEGER NOT NULL DEFAULT 0, severity INTEGER NOT NULL,
                incident_id TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL DEFAULT 0, last_error TEXT,
                updated_at INTEGER, PRIMARY KEY(sink, seq)) WITHOUT ROWID;
            CREATE INDEX deliveries_order ON deliveries(sink, state, severity DESC, seq);
            CREATE INDEX deliveries_incident ON deliveries(sink, incident_id, state, seq);
            CREATE INDEX events_incident ON events(incident_id);
            INSERT INTO events VALUES(1, 'a-open', 'a', 'incident.opened', 'r', 2, 10, '{"n":1}');
            INSERT INTO events VALUES(2, 'a-resolve', 'a', 'incident.resolved', 'r', 2, 11, '{"n":2}');
            INSERT INTO events VALUES(3, 'b-open', 'b', 'incident.opened', 'r', 3, 12, '{"n":3}');
            INSERT INTO events VALUES(4, 'c-open', 'c', 'incident.opened', 'r', 1, 13, '{"n":4}');
            INSERT INTO deliveries VALUES('file', 1, 0, 2, 'a', 2, 0, '503', 9);
            INSERT INTO deliveries VALUES('file', 2, 0, 2, 'a', 0, 0, NULL, NULL);
            INSERT INTO deliveries VALUES('file', 3, 0, 3, 'b', 0, 0, NULL, NULL);
            INSERT INTO deliveries VALUES('file', 4, 2, 1, 'c', 5, 0, '400', 9);
            """)
        let q = try EventQueue(db: db)
        #expect(try q.pendingCounts() == ["file": 3])
        let cursor = try SinkCursor(db: db, sink: "file")
        let batch = try cursor.nextBatch(now: 0, limit: 10)
        #expect(batch.map(\.eventID) == ["b-open", "a-open"])
        #expect(batch.map(\.attempts) == [0, 2])
        try cursor.delivered(batch, now: 20)
        #expect(try cursor.nextBatch(now: 20, limit: 10).map(\.body) == [#"{"n":2}"#])
        #expect(try db.prepare("SELECT count(*) FROM deliveries WHERE state = 2 AND last_error = '400'").scalarInt() == 1)
        #expect(try db.prepare("SELECT count(*) FROM sqlite_master WHERE name IN ('deliveries_v1', 'deliveries_incident', 'events_incident')").scalarInt() == 0)
        // Opening again changes nothing.
        _ = try EventQueue(db: db)
        #expect(try q.pendingCounts() == ["file": 1])
    }

    @Test func fileSinkAppendsLinesAndConfirms() async throws {
        let (db, dir) = try scratchDatabase()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = db
        let sink = FileSink(name: "file", path: dir + "/out/incidents.jsonl")
        try FileManager.default.createDirectory(atPath: dir + "/out", withIntermediateDirectories: true)
        let batch = [
            EventQueue.Pending(seq: 1, severity: 3, eventID: "e", incidentID: "i", body: #"{"a":1}"#, attempts: 0, createdAt: 0),
            EventQueue.Pending(seq: 2, severity: 3, eventID: "f", incidentID: "i", body: #"{"b":2}"#, attempts: 0, createdAt: 0),
        ]
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

@Suite struct DoorbellTests {
    /// A worker that waits in a loop must sleep between rings: a timer left
    /// over from an earlier wait must not wake the next one (that turned an
    /// idle dispatcher into a busy loop). Only lower bounds on time: a busy
    /// machine can make waits longer, never shorter.
    @Test func anIdleWorkerSleepsAfterARing() async {
        let bell = Doorbell()
        bell.ring()
        await bell.wait(timeoutMs: 1000)  // returns at once: rung before
        let start = ContinuousClock.now
        for _ in 0..<3 { await bell.wait(timeoutMs: 100) }
        #expect(ContinuousClock.now - start >= .milliseconds(290))
    }

    @Test(.timeLimit(.minutes(1))) func aRingWakesAWaiterAndIsRememberedOnce() async {
        let bell = Doorbell()
        async let waited: Void = bell.wait(timeoutMs: 600_000)
        try? await Task.sleep(for: .milliseconds(50))
        bell.ring()
        await waited  // woken by the ring, not the ten-minute timeout
        bell.ring(); bell.ring()
        await bell.wait(timeoutMs: 600_000)  // the remembered ring
        let second = ContinuousClock.now
        await bell.wait(timeoutMs: 100)  // nothing remembered: the timeout
        #expect(ContinuousClock.now - second >= .milliseconds(90))
    }
}

import Foundation
import Testing
import VigilCore
import VigilDaemon
import VigilIngest
import VigilRules
import VigilStore
import VigilTestSupport

@Suite(.serialized) struct DurabilityTests {
    func setUp(_ rules: String, broker: TestBroker? = nil) throws -> (TestBroker, String, String, String) {
        let broker = try broker ?? TestBroker()
        let dir = try makeWorkDir()
        let p = "t" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: dir + "/rules", withIntermediateDirectories: true)
        try rules.write(toFile: dir + "/rules/r.yaml", atomically: true, encoding: .utf8)
        let config = try writeConfig(dir: dir, broker: broker, prefix: p, rules: dir + "/rules/*.yaml")
        return (broker, dir, p, config)
    }

    func opened(_ dir: String) -> [IncidentEvent] {
        readLines(dir + "/incidents.jsonl").compactMap(IncidentEvent.decode).filter { $0.type == .opened }
    }

    @Test func aForTimerStartedBeforeASigkillFiresAtItsOriginalTime() throws {
        let (broker, dir, p, config) = try setUp("rules:\n  - { name: hot, feed: charging_pile, when: t >= 65, for: 3s }\n")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var vigil = try VigilProcess(config: config, workDir: dir)
        try vigil.waitForLog("subscriptions active")
        try broker.publish(topic: "\(p)/estate/C001/charging_pile/cp-0001/telemetry", payload: #"{"t":70}"#)
        usleep(2_300_000)  // past the 2 s checkpoint, before the 3 s timer
        kill(vigil.process.processIdentifier, SIGKILL)
        vigil.process.waitUntilExit()
        usleep(300_000)
        vigil = try VigilProcess(config: config, workDir: dir)
        try vigil.waitForLog("state restored")
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline, opened(dir).isEmpty { usleep(50_000) }
        let events = opened(dir)
        #expect(events.count == 1, "\(events.count) openings")
        if let e = events.first {
            #expect(e.openedAt - e.startedAt == 3000, "opened \(e.openedAt - e.startedAt) ms after the run began")
            #expect(e.reading?.payload["t"] == 70)
        }
        #expect(vigil.stop().0 == 0)
    }

    @Test func fiveSigkillsDuringAQoS1StreamLoseNothingAndDuplicateNothing() throws {
        let rules = """
            rules:
              - { name: alarm, feed: fire_alarm, when: event == "alarm", severity: critical }
              - { name: hot, feed: charging_pile, when: t >= 65, for: 2s, clear_when: t < 55 }
            """
        let (broker, dir, p, config) = try setUp(rules)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let n = 20_000
        var messages: [(topic: String, payload: String)] = []
        for i in 0..<n {
            if i % 100 == 0 {
                messages.append(("\(p)/estate/C001/fire_alarm/fz-\(i / 100)/event", #"{"event":"alarm","n":\#(i)}"#))
            } else {
                messages.append(("\(p)/estate/C001/charging_pile/cp-\(i % 97)/telemetry", #"{"t":\#(40 + i % 20),"n":\#(i)}"#))
            }
        }
        var vigil = try VigilProcess(config: config, workDir: dir)
        try vigil.waitForLog("subscriptions active")
        let done = StopFlag()
        let all = messages
        let publisher = Thread {
            try? publishAll(broker: broker, messages: all)
            done.set()
        }
        publisher.start()
        for _ in 0..<5 {
            usleep(UInt32.random(in: 200_000...900_000))
            kill(vigil.process.processIdentifier, SIGKILL)
            vigil.process.waitUntilExit()
            vigil = try VigilProcess(config: config, workDir: dir)
            try vigil.waitForLog("subscriptions active", timeout: 20)
        }
        // Let the stream finish and the journal catch up.
        var journaled: [Int: Int] = [:]
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            if done.isSet {
                journaled = try journalCounts(dir + "/state/vigil.db")
                if journaled.count == n { break }
            }
            usleep(200_000)
        }
        usleep(500_000)
        journaled = try journalCounts(dir + "/state/vigil.db")
        #expect(journaled.count == n, "\(journaled.count) of \(n) messages journaled")
        let twice = journaled.filter { $0.value > 1 }
        #expect(twice.isEmpty, "\(twice.count) messages journaled more than once, e.g. \(twice.first.map { "n=\($0.key) ×\($0.value)" } ?? "")")
        // Every alarm channel opened exactly one incident; a repeat carries the same ids.
        let alarms = opened(dir).filter { $0.rule == "alarm" }
        let byChannel = Dictionary(grouping: alarms, by: { $0.channel ?? "" })
        #expect(byChannel.count == n / 100, "\(byChannel.count) alarm incidents")
        for (c, events) in byChannel {
            #expect(Set(events.map(\.incidentID)).count == 1, "\(c) opened \(Set(events.map(\.incidentID)).count) incidents")
            #expect(Set(events.map(\.eventID)).count == 1)
        }
        #expect(vigil.stop().0 == 0)
    }

    /// The broker may hold far more than the last batch unacknowledged: when it
    /// had not read the PUBACKs of earlier batches before the connection died.
    /// Here none of 20,000 PUBACKs reaches it; after a SIGKILL and restart it
    /// sends all 20,000 again, and each is recognised as already journaled.
    @Test func messagesWhoseAcknowledgementsWereLostAreNotJournaledTwice() throws {
        let broker = try TestBroker(extraConfig: "max_inflight_messages 0\n")
        let relay = try AckDroppingRelay(to: broker.port)
        defer { relay.stop() }
        let (_, dir, p, config) = try setUp(
            "rules:\n  - { name: alarm, feed: fire_alarm, when: event == \"alarm\", severity: critical }\n",
            broker: broker)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let text = try String(contentsOfFile: config, encoding: .utf8)
        try text.replacingOccurrences(of: broker.url, with: relay.url).write(toFile: config, atomically: true, encoding: .utf8)
        let n = 20_000
        let messages = (0..<n).map { i in
            i % 100 == 0
                ? ("\(p)/estate/C001/fire_alarm/fz-\(i / 100)/event", #"{"event":"alarm","n":\#(i)}"#)
                : ("\(p)/estate/C001/charging_pile/cp-\(i % 97)/telemetry", #"{"t":40,"n":\#(i)}"#)
        }
        var vigil = try VigilProcess(config: config, workDir: dir)
        try vigil.waitForLog("subscriptions active")
        relay.dropUpstream(true)
        try publishAll(broker: broker, messages: messages)
        var journaled: [Int: Int] = [:]
        var deadline = Date().addingTimeInterval(30)
        while Date() < deadline, journaled.count < n {
            usleep(100_000)
            journaled = try journalCounts(dir + "/state/vigil.db")
        }
        #expect(journaled.count == n, "\(journaled.count) of \(n) journaled before the crash")
        kill(vigil.process.processIdentifier, SIGKILL)
        vigil.process.waitUntilExit()
        relay.dropUpstream(false)
        vigil = try VigilProcess(config: config, workDir: dir)
        try vigil.waitForLog("redelivered messages skipped", timeout: 30)
        #expect(
            vigil.log.contains("msg=\"redelivered messages skipped\" count=\(n)"), "\(vigil.log.split(separator: "\n").filter { $0.contains("redelivered") })")
        // Whatever else arrives is new: the next message ends the filter and is journaled.
        try broker.publish(topic: "\(p)/estate/C001/charging_pile/cp-0001/telemetry", payload: #"{"t":41,"n":\#(n)}"#)
        deadline = Date().addingTimeInterval(10)
        while Date() < deadline, journaled.count <= n {
            usleep(100_000)
            journaled = try journalCounts(dir + "/state/vigil.db")
        }
        #expect(journaled.count == n + 1)
        let twice = journaled.filter { $0.value > 1 }
        #expect(twice.isEmpty, "\(twice.count) messages journaled more than once")
        let alarms = opened(dir).filter { $0.rule == "alarm" }
        #expect(alarms.count == n / 100, "\(alarms.count) alarm openings")
        #expect(vigil.stop().0 == 0)
    }
}

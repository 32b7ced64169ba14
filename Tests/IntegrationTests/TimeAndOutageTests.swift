import Foundation
import Testing
import VigilCore
import VigilMQTT
import VigilStore
import VigilTestSupport

/// SPEC §4 "Time" against a real broker: outages are blind time, not
/// silence; a backlog is judged at the devices' own times; nothing published
/// while vigil is away is lost, on MQTT 3.1.1 or 5.
@Suite(.serialized) struct TimeAndOutageTests {
    func prefix() -> String { "t" + UUID().uuidString.prefix(8).lowercased() }

    func setUp(_ rules: String, broker: TestBroker, extra: String = "", extraBroker: String = "") throws -> (dir: String, prefix: String, config: String) {
        let dir = try makeWorkDir()
        let p = prefix()
        try FileManager.default.createDirectory(atPath: dir + "/rules", withIntermediateDirectories: true)
        try rules.write(toFile: dir + "/rules/r.yaml", atomically: true, encoding: .utf8)
        let config = try writeConfig(dir: dir, broker: broker, prefix: p, extra: extra, rules: dir + "/rules/*.yaml", broker: extraBroker)
        return (dir, p, config)
    }

    func events(_ dir: String) -> [IncidentEvent] { readLines(dir + "/incidents.jsonl").compactMap(IncidentEvent.decode) }

    func waitFor(_ what: String, timeout: TimeInterval, _ cond: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try cond() { return }
            usleep(100_000)
        }
        throw TestFailure("timed out waiting for \(what)")
    }

    // MARK: - Outage storm

    @Test func aBrokerOutageOpensNoSilenceIncidentsAndOneBrokerIncident() throws {
        let broker = try TestBroker(privateBroker: true)
        let rules = "rules:\n  - { name: silent, feed: \"*\", absent_for: 20s, severity: minor }\n"
        let (dir, p, config) = try setUp(rules, broker: broker, extraBroker: "blind_incident_after: 5s")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let channels = registryChannels()
        #expect(channels.count == 1311)
        let quiet = channels[0].channel
        let vigil = try VigilProcess(config: config, workDir: dir)
        try vigil.waitForLog("subscriptions active")
        // Every channel sends a heartbeat every 5 s, through the outage; `quiet` stops after the first round.
        let publisher = try HeartbeatPublisher(
            broker: broker,
            messages: channels.map { c in
                (c.channel, "\(p)/estate/\(c.community)/\(c.feed)/\(c.channel)/status", #"{"status":"online"}"#)
            }, every: 5, quiet: quiet)
        publisher.start()
        defer { publisher.stop() }
        usleep(12_000_000)
        broker.stopNow()
        let outageStart = Date()
        usleep(30_000_000)
        try broker.launch()
        try waitFor("vigil to reconnect", timeout: 15) { vigil.log.components(separatedBy: "msg=\"broker connected\"").count >= 3 }
        let reconnected = Date()
        // The quiet channel had ~10 s of connected silence before the outage: it opens ~10 s after the reconnection.
        try waitFor("the quiet channel's silence", timeout: 30) { events(dir).contains { $0.rule == "silent" } }
        usleep(6_000_000)
        #expect(vigil.stop().0 == 0)
        let all = events(dir)
        let silent = all.filter { $0.rule == "silent" && $0.type == .opened }
        #expect(silent.map { $0.channel ?? "" } == [quiet], "\(silent.count) silence incidents: \(silent.prefix(5).map { $0.channel ?? "" })")
        if let s = silent.first {
            let opened = Date(timeIntervalSince1970: Double(s.openedAt) / 1000)
            #expect(opened > reconnected, "opened before the reconnection")
            #expect(opened.timeIntervalSince(outageStart) > 30)
        }
        let outage = all.filter { $0.rule == "vigil_broker_unreachable" }
        #expect(outage.map(\.type) == [.opened, .resolved], "\(outage.map(\.type))")
        #expect(outage.first?.key["broker"] == .string(broker.url))
        #expect(outage.first?.severity == .major)
        #expect(Set(outage.map(\.incidentID)).count == 1)
    }

    // MARK: - Backlog

    @Test func aBacklogIsJudgedAtDeviceTimeAndReplaysToTheSameEvents() throws {
        let broker = try TestBroker()
        let rules = """
            rules:
              - { name: burst, feed: smart_gate, when: result == "denied", count: 3, within: 3s, clear_after: 30s }
              - { name: hot, feed: charging_pile, when: t >= 65, for: 4s, clear_when: t < 55 }
            """
        let (dir, p, config) = try setUp(rules, broker: broker, extra: "readings: { late_after: 1s }")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var vigil = try VigilProcess(config: config, workDir: dir)
        try vigil.waitForLog("subscriptions active")
        #expect(vigil.stop().0 == 0)
        // While vigil is away: five denied accesses 2.5 s apart (no 3 within 3 s), and a pile heating for 10 s.
        var firstHot: Millis = 0
        for i in 0..<5 {
            let ts = Time.now()
            if i == 0 { firstHot = ts }
            try broker.publish(topic: "\(p)/estate/C001/smart_gate/sg-0001/event", payload: #"{"ts":\#(ts),"result":"denied"}"#)
            try broker.publish(topic: "\(p)/estate/C001/charging_pile/cp-0001/telemetry", payload: #"{"ts":\#(ts),"t":\#(70 + i)}"#)
            if i < 4 { usleep(2_500_000) }
        }
        vigil = try VigilProcess(config: config, workDir: dir)
        try waitFor("the backlog", timeout: 20) { (try journalMessages(dir + "/state/vigil.db")) >= 10 }
        try broker.publish(topic: "\(p)/estate/C001/charging_pile/cp-0001/telemetry", payload: #"{"t":50}"#)
        try waitFor("the pile to cool", timeout: 10) { events(dir).contains { $0.type == .resolved } }
        #expect(vigil.stop().0 == 0)
        let live = events(dir)
        #expect(!live.contains { $0.rule == "burst" }, "a burst that never happened")
        let hot = live.filter { $0.rule == "hot" }
        #expect(hot.map(\.type) == [.opened, .resolved])
        if let opened = hot.first {
            #expect(opened.startedAt == firstHot && opened.openedAt == firstHot + 4000, "opened \(opened.openedAt - firstHot) ms after the first reading")
        }
        try expectReplayAgrees(dir: dir, config: config, live: live)
    }

    @Test func aSigkillInTheMiddleOfABacklogDrainChangesNoId() throws {
        let broker = try TestBroker()
        let rules = """
            rules:
              - { name: alarm, feed: fire_alarm, when: event == "alarm", clear_when: event == "reset", severity: critical }
              - { name: burst, feed: smart_gate, when: result == "denied", count: 3, within: 200ms, clear_after: 1s }
              - { name: hot, feed: charging_pile, when: t >= 65, for: 300ms, clear_when: t < 55 }
            """
        let (dir, p, config) = try setUp(rules, broker: broker, extra: "readings: { late_after: 1s }")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var vigil = try VigilProcess(config: config, workDir: dir)
        try vigil.waitForLog("subscriptions active")
        #expect(vigil.stop().0 == 0)
        let n = 20_000
        let base = Time.now()
        let messages: [(topic: String, payload: String)] = (0..<n).map { i in
            let ts = base + Millis(i / 10)  // 2 s of device time
            switch i % 10 {
            case 0: return ("\(p)/estate/C001/fire_alarm/fa-\(i % 50)/event", #"{"ts":\#(ts),"event":"\#(i % 400 < 200 ? "alarm" : "reset")","n":\#(i)}"#)
            case 1, 2: return ("\(p)/estate/C001/smart_gate/sg-\(i % 7)/event", #"{"ts":\#(ts),"result":"\#(i % 3 == 0 ? "granted" : "denied")","n":\#(i)}"#)
            default: return ("\(p)/estate/C001/charging_pile/cp-\(i % 13)/telemetry", #"{"ts":\#(ts),"t":\#(50 + i % 23),"n":\#(i)}"#)
            }
        }
        try publishAll(broker: broker, messages: messages)
        vigil = try VigilProcess(config: config, workDir: dir)
        try waitFor("the drain to begin", timeout: 20) { (try journalMessages(dir + "/state/vigil.db")) >= 2000 }
        kill(vigil.process.processIdentifier, SIGKILL)
        vigil.process.waitUntilExit()
        #expect(try journalMessages(dir + "/state/vigil.db") < n, "the drain finished before the kill")
        vigil = try VigilProcess(config: config, workDir: dir)
        try waitFor("the whole backlog", timeout: 60) { (try journalCounts(dir + "/state/vigil.db")).count == n }
        usleep(2_000_000)
        #expect(vigil.stop().0 == 0)
        let counts = try journalCounts(dir + "/state/vigil.db")
        #expect(counts.count == n && counts.values.allSatisfy { $0 == 1 })
        var seen = Set<String>()
        let live = events(dir).filter { seen.insert($0.eventID).inserted }
        #expect(live.contains { $0.rule == "alarm" } && live.contains { $0.rule == "hot" } && live.contains { $0.rule == "burst" })
        try expectReplayAgrees(dir: dir, config: config, live: live)
    }

    /// The journal, exported as recorded messages and replayed, gives exactly the events the daemon delivered.
    func expectReplayAgrees(dir: String, config: String, live: [IncidentEvent]) throws {
        let recording = dir + "/journal.jsonl"
        let (exported, _, exportErr) = try runVigil(["journal", "export", "--config", config, "--output", recording])
        #expect(exported == 0, "\(exportErr)")
        let (status, out, err) = try runVigil(["replay", "--config", config, "--input", recording])
        #expect(status == 0, "\(err)")
        let replayed = out.split(separator: "\n").map(String.init)
        let delivered = live.map { $0.jsonLine() }
        #expect(replayed.sorted() == delivered.sorted(), "replay: \(replayed.count) events, daemon: \(delivered.count)")
        // Per incident, the same order.
        let byIncident = Dictionary(grouping: replayed.compactMap(IncidentEvent.decode), by: \.incidentID)
        for (id, es) in Dictionary(grouping: live, by: \.incidentID) {
            #expect(byIncident[id]?.map(\.eventID) == es.map(\.eventID))
        }
    }

    // MARK: - Sessions while vigil is away

    @Test(arguments: ["3.1.1", "5"])
    func nothingPublishedWhileVigilIsAwayIsLost(protocolVersion: String) throws {
        let broker = try TestBroker()
        let (dir, p, config) = try setUp(
            "rules:\n  - { name: alarm, feed: fire_alarm, when: event == \"alarm\" }\n", broker: broker,
            extraBroker: "protocol: \"\(protocolVersion)\"")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var vigil = try VigilProcess(config: config, workDir: dir)
        try vigil.waitForLog("subscriptions active")
        #expect(vigil.stop().0 == 0)
        let n = 1000
        try publishAll(
            broker: broker,
            messages: (0..<n).map { i in
                ("\(p)/estate/C001/fire_alarm/fa-\(i % 40)/event", #"{"event":"\#(i % 10 == 0 ? "alarm" : "heartbeat")","n":\#(i)}"#)
            })
        vigil = try VigilProcess(config: config, workDir: dir)
        try waitFor("\(n) readings", timeout: 30) { (try journalCounts(dir + "/state/vigil.db")).count == n }
        usleep(500_000)
        #expect(vigil.stop().0 == 0)
        let counts = try journalCounts(dir + "/state/vigil.db")
        #expect(counts.count == n, "\(counts.count) of \(n) evaluated on MQTT \(protocolVersion)")
        #expect(counts.values.allSatisfy { $0 == 1 })
        #expect(vigil.log.contains("msg=\"state restored\""))
    }
}

/// Message rows in a state database's journal.
func journalMessages(_ path: String) throws -> Int {
    let db = try Database(path: path, readOnly: true)
    return Int(try db.prepare("SELECT count(*) FROM journal WHERE kind = 0").scalarInt() ?? 0)
}

/// The channels of the shipped registry.
func registryChannels() -> [(channel: String, feed: String, community: String)] {
    let lines = readLines(repoRoot + "/fixtures/channels.csv")
    let header = lines[0].split(separator: ",").map(String.init)
    let c = header.firstIndex(of: "channel")!, f = header.firstIndex(of: "feed")!, m = header.firstIndex(of: "community")!
    return lines.dropFirst().map { line in
        let cols = line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        return (cols[c], cols[f], cols[m])
    }
}

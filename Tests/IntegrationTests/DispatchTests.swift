import Foundation
import Testing
import VigilCore
import VigilIngest
import VigilRules
import VigilTestSupport

/// A test's own rules: a fire alarm that updates on every matching reading.
let dispatchRules = """
    rules:
      - name: fire_alarm_active
        feed: fire_alarm
        when: event == "alarm"
        clear_when: event == "reset"
        severity: critical
        route: fire_safety
        update_every: 0s
    """

func runVigilQueue(_ args: [String], config: String) throws -> (Int32, String) {
    let (status, out, err) = try runVigil(["queue"] + args + ["--config", config])
    return (status, out + err)
}

@Suite(.serialized) struct DispatchTests {
    struct Setup {
        let broker: TestBroker
        let dir: String
        let prefix: String
        let config: String
        let receiver: WebhookReceiver
    }

    func setUp(webhook: String = "", dispatch: String = "", secret: String? = nil) throws -> Setup {
        let broker = try TestBroker()
        let dir = try makeWorkDir()
        let prefix = "t" + UUID().uuidString.prefix(8).lowercased()
        let receiver = try WebhookReceiver()
        try FileManager.default.createDirectory(atPath: dir + "/rules", withIntermediateDirectories: true)
        try dispatchRules.write(toFile: dir + "/rules/fire.yaml", atomically: true, encoding: .utf8)
        var secretLine = ""
        if let secret {
            try secret.write(toFile: dir + "/webhook.secret", atomically: true, encoding: .utf8)
            secretLine = ", secret_file: \(dir)/webhook.secret"
        }
        let config = try writeConfig(
            dir: dir, broker: broker, prefix: prefix, rules: dir + "/rules/*.yaml",
            dispatch: """
                dispatch:
                  \(dispatch)
                  retry: { initial: 100ms, max: 400ms, max_age: 1h }
                  sinks:
                    - { name: log, type: log }
                    - { name: file, type: file, path: \(dir)/incidents.jsonl }
                    - { name: platform, type: webhook, url: \(receiver.url), timeout: 5s, concurrency: 4\(secretLine)\(webhook) }
                """)
        return Setup(broker: broker, dir: dir, prefix: prefix, config: config, receiver: receiver)
    }

    func alarm(_ s: Setup, _ channel: String, _ event: String = "alarm") throws {
        try s.broker.publish(topic: "\(s.prefix)/estate/C001/fire_alarm/\(channel)/event", payload: #"{"event":"\#(event)"}"#)
    }

    func waitFor(_ what: String, timeout: TimeInterval = 10, _ cond: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if try cond() { return }
            usleep(20_000)
        }
        throw TestFailure("timed out waiting for \(what)")
    }

    @Test func retriesOn503ThenDeliversSignedOnce() throws {
        let secretKey = (0..<24).map { _ in UInt8.random(in: 0...255) }
        let s = try setUp(secret: "whsec_" + Base64.encode(secretKey))
        defer { try? FileManager.default.removeItem(atPath: s.dir) }
        s.receiver.script([.init(status: 503), .init(status: 503), .init(status: 200)])
        let vigil = try VigilProcess(config: s.config, workDir: s.dir)
        try vigil.waitForLog("subscriptions active")
        try alarm(s, "fa-0001")
        try waitFor("three attempts") { s.receiver.requests.count >= 3 }
        usleep(500_000)
        let reqs = s.receiver.requests
        #expect(reqs.count == 3, "\(reqs.count) requests")
        let ids = Set(reqs.map { $0.headers["webhook-id"] ?? "" })
        #expect(ids.count == 1)  // the same event each time
        for r in reqs {
            #expect(r.headers["content-type"] == "application/json")
            let id = try #require(r.headers["webhook-id"]), ts = try #require(r.headers["webhook-timestamp"])
            #expect(abs((Int64(ts) ?? 0) - Time.now() / 1000) < 30)
            let expected = "v1," + Base64.encode(referenceHMAC(key: secretKey, message: Array("\(id).\(ts).\(r.body)".utf8)))
            #expect(r.headers["webhook-signature"] == expected)
            #expect(r.body.contains(#""event_id":"\#(id)""#))
        }
        let (_, stats) = try runVigilQueue(["stats", "--json"], config: s.config)
        #expect(stats.contains(#"{"sink":"platform","pending":0,"delivered":1,"dead":0}"#), "\(stats)")
        #expect(vigil.stop().0 == 0)
    }

    @Test func honoursRetryAfterAndSendsA400ToTheDeadLetters() throws {
        let s = try setUp()
        defer { try? FileManager.default.removeItem(atPath: s.dir) }
        s.receiver.script([.init(status: 429, headers: ["Retry-After": "2"]), .init(status: 400)])
        let vigil = try VigilProcess(config: s.config, workDir: s.dir)
        try vigil.waitForLog("subscriptions active")
        try alarm(s, "fa-0002")
        try waitFor("two attempts") { s.receiver.requests.count >= 2 }
        let reqs = s.receiver.requests
        let gap = reqs[1].at.timeIntervalSince(reqs[0].at)
        #expect(gap >= 1.95, "retried after \(gap)s despite Retry-After: 2")
        try vigil.waitForLog("msg=\"delivery dead\"")
        var (_, stats) = try runVigilQueue(["stats", "--json"], config: s.config)
        #expect(stats.contains(#""sink":"platform","pending":0,"delivered":0,"dead":1"#), "\(stats)")
        let (_, list) = try runVigilQueue(["list", "--state", "dead"], config: s.config)
        #expect(list.contains("platform dead attempts=2"), "\(list)")
        let eventID = String(list.split(separator: " ")[0])
        let (_, shown) = try runVigilQueue(["show", eventID], config: s.config)
        #expect(shown.contains("platform: dead, 2 attempts") && shown.contains("error: HTTP 400"), "\(shown)")

        s.receiver.script([.init(status: 200)])  // the platform is fixed
        let (code, out) = try runVigilQueue(["retry", "--all-dead"], config: s.config)
        #expect(code == 0 && out.contains("re-queued 1"), "\(out)")
        try waitFor("redelivery") { s.receiver.requests.count >= 3 }
        usleep(300_000)
        (_, stats) = try runVigilQueue(["stats", "--json"], config: s.config)
        #expect(stats.contains(#""sink":"platform","pending":0,"delivered":1,"dead":0"#), "\(stats)")
        #expect(vigil.stop().0 == 0)
    }

    @Test func anIncidentsEventsArriveInOrderWithConcurrency() throws {
        let s = try setUp()
        defer { try? FileManager.default.removeItem(atPath: s.dir) }
        s.receiver.randomDelay(0...0.05)
        let vigil = try VigilProcess(config: s.config, workDir: s.dir)
        try vigil.waitForLog("subscriptions active")
        let channels = (1...12).map { "fa-\(100 + $0)" }
        var messages: [(topic: String, payload: String)] = []
        for c in channels { messages.append(("\(s.prefix)/estate/C001/fire_alarm/\(c)/event", #"{"event":"alarm"}"#)) }
        for c in channels { messages.append(("\(s.prefix)/estate/C001/fire_alarm/\(c)/event", #"{"event":"alarm"}"#)) }
        for c in channels { messages.append(("\(s.prefix)/estate/C001/fire_alarm/\(c)/event", #"{"event":"reset"}"#)) }
        try publishAll(broker: s.broker, messages: messages)
        try waitFor("36 deliveries", timeout: 20) { s.receiver.requests.count >= 36 }
        var seen: [String: [String]] = [:]
        for r in s.receiver.requests {
            guard let e = IncidentEvent.decode(r.body) else { continue }
            seen[e.incidentID, default: []].append(e.type.shortName)
        }
        #expect(seen.count == 12)
        for (_, types) in seen { #expect(types == ["opened", "updated", "resolved"], "\(types)") }
        #expect(vigil.stop().0 == 0)
    }

    @Test func aFailingWebhookDoesNotDelayTheFileSink() throws {
        let s = try setUp()
        defer { try? FileManager.default.removeItem(atPath: s.dir) }
        s.receiver.script([.init(status: 500)])
        let vigil = try VigilProcess(config: s.config, workDir: s.dir)
        try vigil.waitForLog("subscriptions active")
        for i in 0..<5 { try alarm(s, "fa-20\(i)") }
        let sent = Date()
        try waitFor("five incidents in the file sink", timeout: 5) {
            readLines(s.dir + "/incidents.jsonl").filter { $0.contains("incident.opened") }.count == 5
        }
        #expect(Date().timeIntervalSince(sent) < 2)
        // Meanwhile the webhook keeps trying, on its own.
        try waitFor("the webhook's attempts") { s.receiver.requests.count >= 5 }
        #expect(vigil.stop().0 == 0)
    }

    @Test func maxPendingStopsConsumptionUntilTheReceiverRecovers() throws {
        let s = try setUp(webhook: "", dispatch: "max_pending: 20")
        defer { try? FileManager.default.removeItem(atPath: s.dir) }
        s.receiver.script([.init(status: 503)])  // blocked: nothing gets through
        let vigil = try VigilProcess(config: s.config, workDir: s.dir)
        try vigil.waitForLog("subscriptions active")
        let n = 200
        let messages = (0..<n).map { ("\(s.prefix)/estate/C001/fire_alarm/fb-\($0)/event", #"{"event":"alarm"}"#) }
        // A first burst fills the queue (it may overshoot by that one batch) …
        try publishAll(broker: s.broker, messages: Array(messages.prefix(40)))
        try waitFor("a full queue") { s.receiver.requests.count >= 20 }
        usleep(500_000)
        // … so the rest must wait at the broker.
        try publishAll(broker: s.broker, messages: Array(messages.dropFirst(40)))
        usleep(1_500_000)
        let (_, stats) = try runVigilQueue(["stats", "--json"], config: s.config)
        guard case .array(let rows)? = try? JSONParser.parse(stats), let platform = rows.first(where: { $0["sink"] == "platform" }),
            case .number(let pending) = platform["pending"]
        else { Issue.record("stats: \(stats)"); return }
        // At most one batch over the bound; the rest waits at the broker.
        #expect(pending >= 20 && pending <= 40, "pending \(pending)")
        #expect(pending < Double(n))
        let rss1 = residentKiB(vigil.process.processIdentifier)
        usleep(1_000_000)
        let rss2 = residentKiB(vigil.process.processIdentifier)
        #expect(rss2 < rss1 + 4096, "RSS grew from \(rss1) to \(rss2) KiB while blocked")
        s.receiver.script([.init(status: 200)])
        try waitFor("every incident delivered", timeout: 30) {
            Set(s.receiver.requests.filter { $0.body.contains("incident.opened") }.compactMap { IncidentEvent.decode($0.body)?.channel }).count == n
        }
        #expect(vigil.stop().0 == 0)
    }

    @Test func sigkillDuringDeliveryLosesNothing() throws {
        let s = try setUp()
        defer { try? FileManager.default.removeItem(atPath: s.dir) }
        s.receiver.randomDelay(0.05...0.2)
        var vigil = try VigilProcess(config: s.config, workDir: s.dir)
        try vigil.waitForLog("subscriptions active")
        let n = 60
        try publishAll(broker: s.broker, messages: (0..<n).map { ("\(s.prefix)/estate/C001/fire_alarm/fk-\($0)/event", #"{"event":"alarm"}"#) })
        try waitFor("some deliveries") { s.receiver.requests.count >= 5 }
        kill(vigil.process.processIdentifier, SIGKILL)
        vigil.process.waitUntilExit()
        vigil = try VigilProcess(config: s.config, workDir: s.dir)
        try waitFor("every incident delivered after restart", timeout: 30) {
            Set(s.receiver.requests.compactMap { IncidentEvent.decode($0.body)?.channel }).count == n
        }
        // Duplicates are allowed only as the same event.
        var idsByChannel: [String: Set<String>] = [:]
        for r in s.receiver.requests { if let e = IncidentEvent.decode(r.body), let c = e.channel { idsByChannel[c, default: []].insert(e.eventID) } }
        for (c, ids) in idsByChannel { #expect(ids.count == 1, "\(c) delivered as \(ids.count) different events") }
        #expect(vigil.stop().0 == 0)
    }
}

func residentKiB(_ pid: Int32) -> Int {
    guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
        let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
    else { return 0 }
    return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
}

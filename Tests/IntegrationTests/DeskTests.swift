import Foundation
import Testing
import VigilCore
import VigilTestSupport

/// The duty desk (SPEC §1 `vigil incidents` / `vigil ack`, §7 acknowledgement
/// and reminders, §9 HTTP API) against a running daemon and a real broker.
@Suite(.serialized) struct DeskTests {
    struct Desk {
        let broker: TestBroker
        let dir: String
        let prefix: String
        let config: String
        let http: Int
        let token: String
    }

    func setUp(rules: String? = nil) throws -> Desk {
        let broker = try TestBroker()
        let dir = try makeWorkDir()
        let p = "t" + UUID().uuidString.prefix(8).lowercased()
        let http = try freePort()
        let token = "desk-" + UUID().uuidString
        try token.write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        var rulesGlob: String?
        if let rules {
            try FileManager.default.createDirectory(atPath: dir + "/rules", withIntermediateDirectories: true)
            try rules.write(toFile: dir + "/rules/r.yaml", atomically: true, encoding: .utf8)
            rulesGlob = dir + "/rules/*.yaml"
        }
        let config = try writeConfig(
            dir: dir, broker: broker, prefix: p, extra: "timezone: Asia/Shanghai\n", rules: rulesGlob,
            http: "127.0.0.1:\(http), token_file: \(dir)/token")
        return Desk(broker: broker, dir: dir, prefix: p, config: config, http: http, token: token)
    }

    func alarm(_ d: Desk, _ channel: String, community: String = "C003", _ event: String = "alarm") throws {
        try d.broker.publish(topic: "\(d.prefix)/estate/\(community)/fire_alarm/\(channel)/event", payload: #"{"event":"\#(event)","zone":"Z1"}"#)
    }

    func api(_ d: Desk, _ path: String) throws -> (Int, JSONValue) {
        let (code, body) = try httpGet(port: d.http, path: path)
        return (code, (try? JSONParser.parse(body)) ?? .null)
    }

    func events(_ d: Desk) -> [IncidentEvent] { readLines(d.dir + "/incidents.jsonl").compactMap(IncidentEvent.decode) }

    func waitFor(_ what: String, timeout: TimeInterval = 10, _ cond: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if (try? cond()) == true { return }
            usleep(100_000)
        }
        throw TestFailure("timed out waiting for \(what)")
    }

    @Test func theAPIFiltersShowsOneIncidentAndRefusesWhatItShould() throws {
        let d = try setUp()
        defer { try? FileManager.default.removeItem(atPath: d.dir) }
        let vigil = try VigilProcess(config: d.config, workDir: d.dir)
        try vigil.waitForLog("subscriptions active")
        try alarm(d, "fa-0003")  // 恒大绿洲
        try alarm(d, "fa-0001", community: "C001")  // 君正长河华府
        try d.broker.publish(topic: "\(d.prefix)/estate/C004/falling_object/fo-0004/event", payload: #"{"event":"falling_object","confidence":0.9}"#)
        try waitFor("three open incidents") { try api(d, "/api/v1/incidents").1["count"] == 3 }

        func ids(_ path: String) throws -> [String] {
            guard case .array(let list) = try api(d, path).1["incidents"] else { return [] }
            return list.compactMap { $0["id"].stringValue }
        }
        let all = try ids("/api/v1/incidents?state=open")
        #expect(all.count == 3)
        let community = "%E6%81%92%E5%A4%A7%E7%BB%BF%E6%B4%B2"  // 恒大绿洲
        #expect(try ids("/api/v1/incidents?community=\(community)").count == 1)
        #expect(try ids("/api/v1/incidents?community=C003").count == 1)  // the registry's code finds it too
        // Newest first.
        if case .array(let list) = try api(d, "/api/v1/incidents").1["incidents"] {
            let opened = list.compactMap { $0["opened_at"].stringValue }
            #expect(opened.count == 3 && opened == opened.sorted(by: >), "\(opened)")
        } else {
            Issue.record("no incidents")
        }
        #expect(try ids("/api/v1/incidents?feed=fire_alarm").count == 2)
        #expect(try ids("/api/v1/incidents?rule=falling_object").count == 1)
        #expect(try ids("/api/v1/incidents?severity=critical&limit=2").count == 2)
        #expect(try ids("/api/v1/incidents?severity=major").isEmpty)  // exactly this severity
        #expect(try api(d, "/api/v1/incidents?state=maybe").0 == 400)
        let fire = try #require(events(d).first { $0.channel == "fa-0003" && $0.type == .opened })
        let (code, one) = try api(d, "/api/v1/incidents/\(fire.incidentID)")
        #expect(code == 200 && one["community"] == "恒大绿洲" && one["state"] == "open")
        if case .array(let evs) = one["events"] { #expect(evs.first?["type"] == "incident.opened") } else { Issue.record("no events") }
        #expect(try api(d, "/api/v1/incidents/nope").0 == 404)
        let (statusCode, status) = try api(d, "/api/v1/status")
        #expect(statusCode == 200 && status["broker"]["connected"] == .bool(true))
        #expect(status["open_incidents"]["by_community"]["恒大绿洲"] == 1)
        #expect(status["open_incidents"]["by_severity"]["critical"] == 3)

        // POST needs the token even on loopback; then 200, 200 again (no event), 404, 409.
        func ack(_ id: String, token: String?, body: String = #"{"by":"王五","note":"on my way"}"#) throws -> (Int, JSONValue) {
            let (c, b) = try httpPost(port: d.http, path: "/api/v1/incidents/\(id)/ack", body: body, token: token)
            return (c, (try? JSONParser.parse(b)) ?? .null)
        }
        #expect(try ack(fire.incidentID, token: nil).0 == 401)
        #expect(try ack(fire.incidentID, token: "bogus-token-4711").0 == 401)
        let first = try ack(fire.incidentID, token: d.token)
        #expect(first.0 == 200 && first.1["result"] == "acknowledged" && first.1["acknowledged_by"] == "王五", "\(first)")
        #expect(try ack(fire.incidentID, token: d.token).1["result"] == "already acknowledged")
        #expect(try ack(fire.incidentID, token: d.token, body: "{}").0 == 400)
        #expect(try ack("no-such-incident", token: d.token).0 == 404)
        try alarm(d, "fa-0001", community: "C001", "reset")
        let juncheng = try #require(events(d).first { $0.channel == "fa-0001" && $0.type == .opened })
        try waitFor("the reset") { try api(d, "/api/v1/incidents/\(juncheng.incidentID)").1["state"] == "resolved" }
        #expect(try ack(juncheng.incidentID, token: d.token).0 == 409)
        try waitFor("the acknowledged event in the file sink") { events(d).contains { $0.type == .acknowledged } }
        let acked = try #require(events(d).first { $0.type == .acknowledged })
        #expect(acked.incidentID == fire.incidentID && acked.note == "on my way" && acked.acknowledgedBy == "王五")
        #expect(events(d).filter { $0.type == .acknowledged }.count == 1)

        // vigil incidents, while the daemon runs and after it stopped; vigil ack through the API.
        let (s1, out1, _) = try runVigil(["incidents", "--config", d.config, "--json"])
        #expect(s1 == 0 && (try? JSONParser.parse(out1))?.arrayValue?.count == 2, "\(out1)")
        let (s2, _, e2) = try runVigil(["ack", "no-such-incident", "--by", "王五", "--config", d.config])
        #expect(s2 == 1 && e2.contains("no incident"), "\(e2)")
        let falling = try #require(events(d).first { $0.rule == "falling_object" })
        let (s3, out3, e3) = try runVigil(["ack", falling.incidentID, "--by", "赵六", "--note", "cordoned off", "--config", d.config])
        #expect(s3 == 0 && out3.contains("acknowledged"), "\(e3)")
        #expect(vigil.stop().0 == 0)
        let (s4, out4, _) = try runVigil(["incidents", "--config", d.config, "--state", "all", "--json"])
        let listed = (try? JSONParser.parse(out4))?.arrayValue ?? []
        #expect(s4 == 0 && listed.count == 3)
        #expect(listed.first { $0["id"] == .string(falling.incidentID) }?["acknowledged_by"] == "赵六")
        let (s5, table, _) = try runVigil(["incidents", "--config", d.config, "--community", "恒大绿洲"])
        #expect(s5 == 0 && table.contains("fire_alarm_active") && table.contains("acknowledged by 王五"), "\(table)")
        #expect(!vigil.log.contains(d.token) && !vigil.log.contains("bogus-token-4711"))
        #expect(vigil.log.contains("http request refused: missing or wrong bearer token"))
    }

    @Test func anAcknowledgementStopsRemindersAndSurvivesASigkill() throws {
        let d = try setUp(
            rules: """
                rules:
                  - { name: fire, feed: fire_alarm, when: event == "alarm", clear_when: event == "reset", severity: critical, remind_every: 1s }
                """)
        defer { try? FileManager.default.removeItem(atPath: d.dir) }
        var vigil = try VigilProcess(config: d.config, workDir: d.dir)
        try vigil.waitForLog("subscriptions active")
        try alarm(d, "fa-0003")
        try waitFor("two reminders") { events(d).filter { $0.type == .reminded }.count >= 2 }
        let id = try #require(events(d).first { $0.type == .opened }?.incidentID)
        let (status, _, err) = try runVigil(["ack", id, "--by", "张三", "--config", d.config])
        #expect(status == 0, "\(err)")
        try waitFor("the acknowledged event") { events(d).contains { $0.type == .acknowledged } }
        usleep(300_000)
        let reminders = events(d).filter { $0.type == .reminded }.count
        kill(vigil.process.processIdentifier, SIGKILL)
        vigil.process.waitUntilExit()
        vigil = try VigilProcess(config: d.config, workDir: d.dir)
        try vigil.waitForLog("state restored")
        usleep(3_500_000)
        #expect(events(d).filter { $0.type == .reminded }.count == reminders, "reminders went on after the acknowledgement")
        let (_, out, _) = try runVigil(["incidents", "--config", d.config, "--json"])
        #expect((try? JSONParser.parse(out))?.arrayValue?.first?["acknowledged_by"] == "张三", "\(out)")
        #expect(vigil.stop().0 == 0)
    }
}

extension DeskTests {
    /// Every metric the shipped Grafana dashboard queries is exposed by a running daemon.
    @Test func theGrafanaDashboardQueriesOnlyMetricsTheDaemonExposes() throws {
        let d = try setUp()
        defer { try? FileManager.default.removeItem(atPath: d.dir) }
        let vigil = try VigilProcess(config: d.config, workDir: d.dir)
        try vigil.waitForLog("subscriptions active")
        try alarm(d, "fa-0003")
        try waitFor("the incident") { events(d).contains { $0.type == .opened } }
        let (code, body) = try httpGet(port: d.http, path: "/metrics")
        #expect(code == 200)
        let exposed = Set(
            body.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap { line in
                line.split(whereSeparator: { $0 == "{" || $0 == " " }).first.map(String.init)
            })
        let dashboard = try String(contentsOfFile: repoRoot + "/contrib/grafana/vigil.json", encoding: .utf8)
        guard case .object(let root)? = try? JSONParser.parse(dashboard), case .array(let panels)? = root["panels"] else {
            Issue.record("contrib/grafana/vigil.json is not a dashboard"); return
        }
        var queried = Set<String>()
        for panel in panels {
            guard case .array(let targets) = panel["targets"] else { continue }
            for t in targets {
                guard let expr = t["expr"].stringValue else { continue }
                let regex = try Regex(#"\b((?:vigil|process)_[a-z_]+)\b"#)
                for m in expr.matches(of: regex) { queried.insert(String(expr[m.range])) }
            }
        }
        #expect(queried.count >= 12, "\(queried)")
        for name in queried.sorted() { #expect(exposed.contains(name), "the dashboard queries \(name), /metrics has no such series") }
        // Histograms, build info and process metrics are there.
        #expect(body.contains("vigil_commit_seconds_bucket{le=\"0.0005\"}"))
        #expect(body.contains("vigil_build_info{version=\"\(VigilVersion.current)\""))
        #expect(body.contains("vigil_open_incidents_by_severity{severity=\"critical\"} 1"))
        #expect(vigil.stop().0 == 0)
    }
}

/// A plain HTTP POST to 127.0.0.1: (status, body).
func httpPost(port: Int, path: String, body: String, token: String? = nil) throws -> (Int, String) {
    let bytes = Array(body.utf8)
    return try httpRequest(
        port: port, head: "POST \(path) HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: \(bytes.count)\r\n",
        body: bytes, token: token)
}

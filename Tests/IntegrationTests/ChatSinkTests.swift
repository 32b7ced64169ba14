import Foundation
import Testing
import VigilCore
import VigilTestSupport

/// The chat sinks (SPEC §8) against fake DingTalk, WeCom and Feishu robots
/// (`Tests/FakeRobots/fake_robots.py`) that check each signature with
/// Python's own hmac, the way the vendors document it.
@Suite(.serialized) struct ChatSinkTests {
    @Test func dutyGroupRobotsGetSignedChineseCardsAndAVendorErrorIsRetried() throws {
        let broker = try TestBroker()
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let dingSecret = "SEC" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        let feishuSecret = "fs-" + UUID().uuidString.prefix(12)
        let wecomKey = UUID().uuidString.lowercased()
        let robotPort = try freePort()
        let log = dir + "/robots.jsonl"
        let robots = Process()
        robots.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        robots.arguments = [repoRoot + "/Tests/FakeRobots/fake_robots.py", String(robotPort), log, dingSecret, wecomKey, feishuSecret, "2"]
        try robots.run()
        defer { kill(robots.processIdentifier, SIGKILL); robots.waitUntilExit() }
        for _ in 0..<50 where !isListening(robotPort) { usleep(100_000) }
        try dingSecret.write(toFile: dir + "/ding.secret", atomically: true, encoding: .utf8)
        try feishuSecret.write(toFile: dir + "/feishu.secret", atomically: true, encoding: .utf8)
        try "wrong-secret".write(toFile: dir + "/wrong.secret", atomically: true, encoding: .utf8)
        let base = "http://127.0.0.1:\(robotPort)"
        let http = try freePort()
        let p = "t" + UUID().uuidString.prefix(8).lowercased()
        let config = try writeConfig(
            dir: dir, broker: broker, prefix: p, extra: "timezone: Asia/Shanghai\n", http: "127.0.0.1:\(http)",
            dispatch: """
                dispatch:
                  retry: { initial: 200ms, max: 1s }
                  sinks:
                    - { name: file, type: file, path: \(dir)/incidents.jsonl }
                    - { name: ding, type: dingtalk, url: "\(base)/dingtalk/robot/send?access_token=tok", secret_file: \(dir)/ding.secret }
                    - { name: wecom, type: wecom, url: "\(base)/wecom/cgi-bin/webhook/send?key=\(wecomKey)" }
                    - { name: feishu, type: feishu, url: "\(base)/feishu/open-apis/bot/v2/hook/x", secret_file: \(dir)/feishu.secret }
                    - { name: feishu-wrong, type: feishu, url: "\(base)/feishu/open-apis/bot/v2/hook/y", secret_file: \(dir)/wrong.secret, min_severity: critical }
                """)
        let vigil = try VigilProcess(config: config, workDir: dir)
        try vigil.waitForLog("subscriptions active")
        // fa-0001 is a fire panel of 君正长河华府 in the shipped registry.
        try broker.publish(topic: "\(p)/estate/C001/fire_alarm/fa-0001/event", payload: #"{"event":"alarm","zone":"3F"}"#)
        let deadline = Date().addingTimeInterval(20)
        var accepted: [String: [String: Any]] = [:]
        while Date() < deadline && accepted.count < 3 {
            usleep(200_000)
            for line in readLines(log) {
                guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                    o["ok"] as? Bool == true, let vendor = o["vendor"] as? String, let body = o["body"] as? [String: Any]
                else { continue }
                accepted[vendor] = body
            }
        }
        #expect(Set(accepted.keys) == ["dingtalk", "wecom", "feishu"], "robots that accepted: \(accepted.keys); log: \(readLines(log))")
        let opened = try #require(readLines(dir + "/incidents.jsonl").compactMap(IncidentEvent.decode).first { $0.type == .opened })
        // Asia/Shanghai is UTC+8.
        let local = ChatTime.local(opened.at, hours: 8)
        let ding = (accepted["dingtalk"]?["markdown"] as? [String: Any])?["text"] as? String ?? ""
        let wecom = (accepted["wecom"]?["markdown"] as? [String: Any])?["content"] as? String ?? ""
        let feishuCard = accepted["feishu"]?["card"] as? [String: Any]
        let feishu = ((feishuCard?["elements"] as? [[String: Any]])?.first?["content"] as? String) ?? ""
        for (vendor, text) in [("dingtalk", ding), ("wecom", wecom), ("feishu", feishu)] {
            for label in ["级别", "标题", "小区", "位置", "时间", "编号"] { #expect(text.contains(label), "\(vendor): no \(label) in\n\(text)") }
            #expect(text.contains("君正长河华府"), "\(vendor)")
            #expect(text.contains(local), "\(vendor): no local time \(local) in\n\(text)")
            #expect(text.contains(opened.incidentID), "\(vendor)")
            #expect(text.contains("紧急"), "\(vendor): severity")
        }
        // DingTalk said "send too fast" twice: retried, then delivered once.
        let dingAttempts = readLines(log).filter { $0.contains("\"vendor\": \"dingtalk\"") }
        #expect(dingAttempts.filter { $0.contains("\"why\": \"busy\"") }.count == 2)
        usleep(1_500_000)
        let samples = try metricSamples(port: http)
        #expect(samples["vigil_deliveries_total{sink=\"ding\",outcome=\"retried\"}"] == 2)
        #expect(samples["vigil_deliveries_total{sink=\"ding\",outcome=\"delivered\"}"] == 1)
        // A robot that refuses the signature (code 19021) never counts as delivered.
        #expect((samples["vigil_deliveries_total{sink=\"feishu-wrong\",outcome=\"retried\"}"] ?? 0) >= 1)
        #expect(samples["vigil_deliveries_total{sink=\"feishu-wrong\",outcome=\"delivered\"}"] == 0)
        #expect(readLines(log).contains { $0.contains("\"vendor\": \"feishu\"") && $0.contains("\"why\": \"sign\"") })
        #expect(vigil.stop().0 == 0)
        #expect(!vigil.log.contains(dingSecret) && !vigil.log.contains(feishuSecret) && !vigil.log.contains(wecomKey))
    }

    @Test func checkRejectsAChatSinkWithoutItsURLAndASignedWeCom() throws {
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = dir + "/vigil.yaml"
        try """
        dispatch:
          sinks:
            - { name: a, type: dingtalk }
            - { name: b, type: wecom, url: "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", secret_file: s }
            - { name: c, type: feishu, url: "https://open.feishu.cn/x", language: fr }
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let (status, out, _) = try runVigil(["check", "--config", config])
        #expect(status == 1)
        #expect(out.contains("\(config):3:7: error: dingtalk sink 'a' needs a url"), "\(out)")
        #expect(out.contains("\(config):4:") && out.contains("a WeCom group robot is not signed"), "\(out)")
        #expect(out.contains("\(config):5:") && out.contains("language must be zh or en"), "\(out)")
    }
}

/// Local wall time for a test, computed without vigil's code.
enum ChatTime {
    static func local(_ t: Millis, hours: Int) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(secondsFromGMT: hours * 3600)
        f.dateFormat = "yyyy-MM-dd HH:mm:ss"
        return f.string(from: Date(timeIntervalSince1970: Double(t) / 1000))
    }
}

import Foundation
import Testing
import VigilTestSupport

@Suite(.serialized) struct OperationsTests {
    func prefix() -> String { "t" + UUID().uuidString.prefix(8).lowercased() }

    /// A daemon that reports to a notify socket of the test's, with a 2 s watchdog.
    func notifiedDaemon(_ env: [String: String]) throws -> (TestBroker, String, NotifyReceiver, VigilProcess) {
        let broker = try TestBroker()
        let dir = try makeWorkDir()
        let notify = try NotifyReceiver(dir: dir)
        let config = try writeConfig(dir: dir, broker: broker, prefix: prefix())
        let vigil = try VigilProcess(
            config: config, workDir: dir,
            environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "2000000"].merging(env) { $1 })
        return (broker, dir, notify, vigil)
    }

    @Test func notifiesReadyStatusWatchdogAndStopping() throws {
        let (broker, dir, notify, vigil) = try notifiedDaemon(["JOURNAL_STREAM": "8:12345"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = broker
        notify.collect(for: 4.5)
        let ready = try #require(notify.times(of: "READY=1").first, "no READY=1: \(notify.messages)")
        #expect(notify.messages.first?.text.contains("READY=1") == true)
        #expect(!notify.times(of: "STATUS=").isEmpty)
        let pings = notify.times(of: "WATCHDOG=1").filter { $0 > ready }
        #expect(pings.count >= 3, "pings: \(pings.count)")
        for (a, b) in zip(pings, pings.dropFirst()) {
            let gap = b - a
            #expect(gap > 0.5 && gap < 1.6, "watchdog gap \(gap)s (WATCHDOG_USEC=2s)")
        }
        let (status, took) = vigil.stop()
        notify.collect(for: 0.3)
        #expect(status == 0)
        #expect(took < 10)
        #expect(!notify.times(of: "STOPPING=1").isEmpty)
        // Under journald: every line starts with its priority and carries no timestamp.
        let lines = vigil.log.split(separator: "\n").map(String.init)
        #expect(!lines.isEmpty)
        for line in lines {
            #expect(line.range(of: #"^<[0-7]>"#, options: .regularExpression) != nil, "\(line)")
            #expect(!line.contains("ts="), "\(line)")
        }
    }

    /// Under journald an incident line takes the priority of its severity, so
    /// `journalctl -p warning` shows fire alarms (critical) and forced gates (major).
    @Test func incidentLinesTakeThePriorityOfTheirSeverity() throws {
        let broker = try TestBroker()
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = prefix()
        let config = try writeConfig(dir: dir, broker: broker, prefix: p, rules: repoRoot + "/config/rules.d/*.yaml")
        let vigil = try VigilProcess(config: config, workDir: dir, environment: ["JOURNAL_STREAM": "8:12345"])
        try vigil.waitForLog("subscriptions active")
        try broker.publish(topic: "\(p)/estate/C001/fire_alarm/fa-0001/event", payload: #"{"event":"alarm","zone":"Z1"}"#)
        try broker.publish(topic: "\(p)/estate/C005/smart_gate/sg-0005/event", payload: #"{"event":"door_forced"}"#)
        try broker.publish(topic: "\(p)/estate/C001/charging_pile/cp-0001/status", payload: #"{"status":"offline"}"#)
        try vigil.waitForLog("rule=device_offline")
        try vigil.waitForLog("rule=gate_forced_open")
        try vigil.waitForLog("rule=fire_alarm_active")
        #expect(vigil.stop().0 == 0)
        func priority(_ rule: String) -> String? {
            vigil.log.split(separator: "\n").first { $0.contains("msg=\"incident opened\"") && $0.contains("rule=\(rule) ") }.map { String($0.prefix(3)) }
        }
        #expect(priority("fire_alarm_active") == "<2>")  // critical
        #expect(priority("gate_forced_open") == "<4>")  // major
        #expect(priority("device_offline") == "<5>")  // minor
    }

    /// `systemctl reload vigil` runs the unit's ExecReload lines in order: a rejected
    /// rule set fails the first (vigil check), so the daemon is never signalled.
    @Test func theUnitsReloadChecksBeforeItSignals() throws {
        let unit = try String(contentsOfFile: repoRoot + "/systemd/vigil.service", encoding: .utf8)
        let reload = unit.split(separator: "\n").filter { $0.hasPrefix("ExecReload=") }.map { String($0.dropFirst("ExecReload=".count)) }
        #expect(
            reload.count == 2 && reload[0].hasPrefix("/usr/bin/vigil check --config /etc/vigil/vigil.yaml")
                && reload[1] == "/bin/kill -HUP $MAINPID", "\(reload)")
        let broker = try TestBroker()
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/rules", withIntermediateDirectories: true)
        try "rules:\n  - { name: a, feed: fire_alarm, when: event == \"alarm\" }\n".write(toFile: dir + "/rules/r.yaml", atomically: true, encoding: .utf8)
        let config = try writeConfig(dir: dir, broker: broker, prefix: prefix(), rules: dir + "/rules/*.yaml")
        let vigil = try VigilProcess(config: config, workDir: dir)
        try vigil.waitForLog("subscriptions active")
        /// What systemd does: each line in turn, stopping at the first that fails.
        func systemctlReload() throws -> Bool {
            for line in reload {
                let command = line.replacingOccurrences(of: "/usr/bin/vigil", with: vigilBinary())
                    .replacingOccurrences(of: "/etc/vigil/vigil.yaml", with: config)
                    .replacingOccurrences(of: "$MAINPID", with: String(vigil.process.processIdentifier))
                let p = Process()
                p.executableURL = URL(fileURLWithPath: "/bin/sh")
                p.arguments = ["-c", command]
                p.standardOutput = FileHandle.nullDevice
                p.standardError = FileHandle.nullDevice
                try p.run()
                p.waitUntilExit()
                if p.terminationStatus != 0 { return false }
            }
            return true
        }
        try "rules:\n  - { name: a, feed: fire_alarm, when: event == }\n".write(toFile: dir + "/rules/r.yaml", atomically: true, encoding: .utf8)
        #expect(try systemctlReload() == false)
        usleep(500_000)
        #expect(!vigil.log.contains("RELOADING") && !vigil.log.contains("reload rejected"), "the daemon was signalled")
        try "rules:\n  - { name: b, feed: fire_alarm, when: event == \"alarm\" }\n".write(toFile: dir + "/rules/r.yaml", atomically: true, encoding: .utf8)
        #expect(try systemctlReload())
        try vigil.waitForLog("msg=reloaded")
        #expect(vigil.stop().0 == 0)
    }

    @Test func aWedgedStageStopsTheWatchdog() throws {
        let (broker, dir, notify, vigil) = try notifiedDaemon(["VIGIL_TEST_WEDGE": "ingest"])
        defer { try? FileManager.default.removeItem(atPath: dir) }
        _ = broker
        notify.collect(for: 6)
        let ready = try #require(notify.times(of: "READY=1").first)
        let late = notify.times(of: "WATCHDOG=1").filter { $0 - ready > 3.5 }
        #expect(late.isEmpty, "WATCHDOG=1 kept coming while ingestion was wedged")
        #expect(vigil.log.contains("watchdog: not pinging systemd"))
        _ = vigil.stop()
    }

    @Test func reloadRejectsABrokenSetAndActivatesANewRule() throws {
        let broker = try TestBroker()
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = prefix()
        try FileManager.default.createDirectory(atPath: dir + "/rules", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: repoRoot + "/config/rules.d/10-fire.yaml", toPath: dir + "/rules/10-fire.yaml")
        let config = try writeConfig(dir: dir, broker: broker, prefix: p, rules: dir + "/rules/*.yaml")
        let vigil = try VigilProcess(config: config, workDir: dir)
        try vigil.waitForLog("subscriptions active")

        try "rules:\n  - name: broken\n    when: temperature_c >\n".write(toFile: dir + "/rules/50-broken.yaml", atomically: true, encoding: .utf8)
        kill(vigil.process.processIdentifier, SIGHUP)
        try vigil.waitForLog("reload rejected: the running rules stay")
        #expect(vigil.log.contains("50-broken.yaml:3:26: error: when: the expression ends too early"))
        try broker.publish(topic: "\(p)/estate/C001/fire_alarm/fa-0001/event", payload: #"{"event":"alarm"}"#)
        try vigil.waitForLog("msg=\"incident opened\" rule=fire_alarm_active")

        try FileManager.default.removeItem(atPath: dir + "/rules/50-broken.yaml")
        try "rules:\n  - { name: pile_hot_now, feed: charging_pile, when: temperature_c >= 80, severity: critical }\n"
            .write(toFile: dir + "/rules/50-new.yaml", atomically: true, encoding: .utf8)
        kill(vigil.process.processIdentifier, SIGHUP)
        try vigil.waitForLog("msg=reloaded")
        #expect(vigil.log.contains("kept_state=2"))  // the two fire rules did not change
        try broker.publish(topic: "\(p)/estate/C001/charging_pile/cp-0001/telemetry", payload: #"{"temperature_c":85}"#)
        try vigil.waitForLog("msg=\"incident opened\" rule=pile_hot_now")
        // The open fire alarm kept its state: a reset resolves the same incident.
        try broker.publish(topic: "\(p)/estate/C001/fire_alarm/fa-0001/event", payload: #"{"event":"reset"}"#)
        try vigil.waitForLog("msg=\"incident resolved\" rule=fire_alarm_active")
        #expect(vigil.stop().0 == 0)
    }

    @Test func sigtermUnderLoadExitsCleanlyAndLosesNothing() throws {
        let broker = try TestBroker()
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = prefix()
        let config = try writeConfig(dir: dir, broker: broker, prefix: p)
        let n = 2000
        let messages = (0..<n).map { i in (topic: "\(p)/estate/C001/fire_alarm/fx-\(i)/event", payload: #"{"event":"alarm"}"#) }
        var vigil = try VigilProcess(config: config, workDir: dir)
        try vigil.waitForLog("subscriptions active")
        let publisher = Thread { try? publishAll(broker: broker, messages: messages) }
        publisher.start()
        usleep(300_000)
        let (status, took) = vigil.stop()
        #expect(status == 0)
        #expect(took < 10, "stop took \(took)s")
        // The rest waits at the broker for the persistent session.
        vigil = try VigilProcess(config: config, workDir: dir)
        try vigil.waitForLog("subscriptions active", timeout: 20)
        let deadline = Date().addingTimeInterval(30)
        var channels = Set<String>()
        while Date() < deadline {
            channels = Set(
                readLines(dir + "/incidents.jsonl").compactMap { line -> String? in
                    guard line.contains("\"incident.opened\""), let r = line.range(of: #""channel":"fx-[0-9]+""#, options: .regularExpression) else {
                        return nil
                    }
                    return String(line[r])
                })
            if channels.count == n { break }
            usleep(100_000)
        }
        #expect(channels.count == n, "\(channels.count) of \(n) alarms became incidents")
        #expect(vigil.stop().0 == 0)
    }

    @Test func secretsNeverReachTheLog() throws {
        let secret = "s3cr3t-Pa55-\(UUID().uuidString.prefix(6))"
        let broker = try TestBroker(privateBroker: true, user: ("vigil", "the-right-one"))
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try secret.write(toFile: dir + "/password", atomically: true, encoding: .utf8)
        let p = prefix()
        let config = try writeConfig(
            dir: dir, broker: broker, prefix: p,
            broker: "username: vigil\n  password_file: \(dir)/password")
        let vigil = try VigilProcess(config: config, workDir: dir, environment: ["JOURNAL_STREAM": ""])
        try vigil.waitForLog("broker refused the connection")
        try vigil.waitForLog("retry_in=400ms")  // the backoff doubles: 200ms, 400ms, …
        // Another error path: a reload that fails.
        try FileManager.default.createDirectory(atPath: dir + "/extra", withIntermediateDirectories: true)
        kill(vigil.process.processIdentifier, SIGHUP)
        usleep(500_000)
        _ = vigil.stop()
        let log = vigil.log
        #expect(log.contains("reason=\"not authorised\"") || log.contains("not authorised"), "\(log)")
        #expect(!log.contains(secret))
        // Every line is logfmt.
        for line in log.split(separator: "\n") {
            let fields = parseLogfmt(String(line))
            #expect(fields?["level"] != nil && fields?["msg"] != nil, "not logfmt: \(line)")
        }
    }

    @Test func metricsParseAndHealthFlipsWhenTheBrokerGoes() throws {
        let broker = try TestBroker(privateBroker: true)
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = prefix()
        let port = try freePort()
        let config = try writeConfig(dir: dir, broker: broker, prefix: p, http: "127.0.0.1:\(port)")
        let vigil = try VigilProcess(config: config, workDir: dir)
        try vigil.waitForLog("subscriptions active")
        try broker.publish(topic: "\(p)/estate/C001/fire_alarm/fa-0001/event", payload: #"{"event":"alarm"}"#)
        try broker.publish(topic: "\(p)/estate/C001/fire_alarm/fa-0001/event", payload: "nope")
        try vigil.waitForLog("reason=invalid_json")
        usleep(300_000)
        let (code, body) = try httpGet(port: port, path: "/metrics")
        #expect(code == 200)
        for line in body.split(separator: "\n") where !line.hasPrefix("#") {
            let m = line.range(of: #"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? -?[0-9.e+-]+$"#, options: .regularExpression)
            #expect(m != nil, "not Prometheus text: \(line)")
        }
        let samples = try metricSamples(port: port)
        for family in [
            "vigil_messages_received_total", "vigil_dead_letters_total", "vigil_readings_evaluated_total",
            "vigil_incident_events_total", "vigil_queue_pending", "vigil_deliveries_total",
            "vigil_evaluation_lag_seconds", "vigil_broker_connected",
        ] {
            #expect(body.contains("# TYPE \(family) "), "missing \(family)")
        }
        #expect(samples["vigil_messages_received_total{feed=\"fire_alarm\"}"] == 2)
        #expect(samples["vigil_dead_letters_total{reason=\"invalid_json\"}"] == 1)
        #expect(samples["vigil_readings_evaluated_total"] == 1)
        #expect(samples["vigil_incident_events_total{rule=\"fire_alarm_active\",type=\"incident.opened\"}"] == 1)
        #expect(samples["vigil_broker_connected"] == 1)
        // The two messages were committed moments ago, by the wall clock.
        let last = try #require(samples["vigil_last_message_received_timestamp_seconds"])
        #expect(abs(last - Date().timeIntervalSince1970) < 60)
        #expect(try httpGet(port: port, path: "/healthz").0 == 200)
        #expect(try httpGet(port: port, path: "/nope").0 == 404)

        broker.stopNow()
        let deadline = Date().addingTimeInterval(10)
        var health = (0, "")
        while Date() < deadline {
            health = try httpGet(port: port, path: "/healthz")
            if health.0 == 503 { break }
            usleep(100_000)
        }
        #expect(health.0 == 503)
        #expect(health.1.contains("\"reason\":\"broker unreachable\""))
        #expect(try httpGet(port: port, path: "/metrics").1.contains("vigil_broker_connected 0"))
        #expect(vigil.stop().0 == 0)
    }
}

import Foundation
import Testing
import VigilCore
import VigilDaemon
import VigilIngest
import VigilRules
import VigilSimulate
import VigilTestSupport

@Suite(.serialized) struct SimulateTests {
    /// vigil over the fixture registry with a file sink and `/metrics`, once it is connected to `broker`.
    func startDaemon(broker: TestBroker, dir: String, clientID: String, rules: String) throws -> (vigil: VigilProcess, config: String, http: Int, ready: Bool) {
        let http = try freePort()
        let config = dir + "/vigil.yaml"
        try """
        broker: { url: "\(broker.url)", client_id: \(clientID), keepalive: 10s }
        channels: \(repoRoot)/fixtures/channels.csv
        rules: ["\(rules)"]
        state_dir: \(dir)/state
        http: { listen: "127.0.0.1:\(http)" }
        dispatch:
          sinks:
            - { name: file, type: file, path: \(dir)/incidents.jsonl }
        log: { level: warning }
        """.write(toFile: config, atomically: true, encoding: .utf8)
        let vigil = try VigilProcess(config: config, workDir: dir)
        var ready = false
        for _ in 0..<100 where !ready {
            ready = ((try? metricSamples(port: http))?["vigil_broker_connected"] ?? 0) == 1
            if !ready { usleep(100_000) }
        }
        return (vigil, config, http, ready)
    }

    /// `vigil simulate` as a child process; its stderr goes to a file.
    func simulate(_ args: [String], dir: String) throws -> (Process, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: vigilBinary())
        p.arguments = ["simulate"] + args
        let err = dir + "/simulate.err"
        _ = FileManager.default.createFile(atPath: err, contents: nil)
        p.standardError = FileHandle(forWritingAtPath: err)
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        return (p, err)
    }

    /// The issue's end-to-end check: a minute of simulated traffic over the full
    /// registry with every kind of anomaly, through a real broker and the daemon
    /// on the shipped rules (the silence window shortened to fit a minute):
    /// every anomaly becomes its incident, and no incident opens without one.
    @Test(.timeLimit(.minutes(4))) func aSimulatedMinuteOverTheFullRegistry() throws {
        let broker = try TestBroker(privateBroker: true)
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/rules", withIntermediateDirectories: true)
        for f in FileGlob.expand([repoRoot + "/config/rules.d/*.yaml"]) {
            let text = try String(contentsOfFile: f, encoding: .utf8).replacingOccurrences(of: "absent_for: 10m", with: "absent_for: 40s")
            try text.write(toFile: dir + "/rules/" + (f as NSString).lastPathComponent, atomically: true, encoding: .utf8)
        }
        let (vigil, _, http, ready) = try startDaemon(broker: broker, dir: dir, clientID: "vigil-e2e", rules: "\(dir)/rules/*.yaml")
        #expect(ready)
        usleep(300_000)  // subscriptions follow the CONNACK

        let began = Date()
        let (sim, errPath) = try simulate(
            [
                "--broker", broker.url, "--channels", repoRoot + "/fixtures/channels.csv",
                "--rate", "400", "--duration", "60s", "--anomalies", "all=2", "--silence", "45s",
                "--seed", "5", "--manifest", dir + "/manifest.jsonl",
            ], dir: dir)
        #expect(waitForExit(sim, seconds: 90))
        let elapsed = Date().timeIntervalSince(began)
        #expect(sim.terminationStatus == 0, "\(readLines(errPath))")
        // 24,000 messages over 60 s: the rate held within 5 %.
        #expect(readLines(errPath).contains { $0.hasPrefix("vigil simulate: sent 24000 messages") }, "\(readLines(errPath))")
        #expect(elapsed > 57 && elapsed < 66, "took \(elapsed) s")

        // Everything published reaches the daemon.
        var received = 0.0
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            received = try metricSamples(port: http).filter { $0.key.hasPrefix("vigil_messages_received_total{") }.values.reduce(0, +)
            if received >= 24_000 { break }
            usleep(200_000)
        }
        #expect(received == 24_000)
        usleep(1_000_000)  // the file sink's last batch
        let samples = try metricSamples(port: http)
        #expect(vigil.stop().0 == 0)

        let manifest = readLines(dir + "/manifest.jsonl").compactMap(ManifestEntry.parse(line:))
        let events = readLines(dir + "/incidents.jsonl").compactMap(IncidentEvent.decode)
        #expect(Set(manifest.map(\.anomaly)) == Set(AnomalyKind.allCases), "\(Set(manifest.map(\.anomaly)))")
        let check = ManifestCheck(manifest: manifest, opened: ManifestCheck.opened(events), tolerance: 1000)
        #expect(check.passed, "\(check.report(events: events))")
        #expect(check.detected.count >= 15)
        for (reason, n) in check.deadLettersExpected {
            #expect(samples["vigil_dead_letters_total{reason=\"\(reason)\"}"] == Double(n), "\(reason)")
        }
    }

    /// Determinism end to end: a daemon run under `vigil simulate` (anomalies on), then
    /// `vigil journal export` of that period replayed with the same rules gives exactly the
    /// events the daemon delivered — same ids, same order per incident. And `vigil backtest`
    /// of a changed rule set shows what the change would have done on that traffic.
    @Test(.timeLimit(.minutes(3))) func theExportedJournalReplaysToTheDeliveredEventsAndBacktestsARuleChange() throws {
        let broker = try TestBroker(privateBroker: true)
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (vigil, config, http, _) = try startDaemon(broker: broker, dir: dir, clientID: "vigil-det", rules: "\(repoRoot)/config/rules.d/[1-5]*.yaml")
        usleep(300_000)
        let (sim, errPath) = try simulate(
            [
                "--broker", broker.url, "--channels", repoRoot + "/fixtures/channels.csv",
                "--rate", "400", "--duration", "20s", "--anomalies", "all=12", "--seed", "11",
            ], dir: dir)
        #expect(waitForExit(sim, seconds: 40))
        #expect(sim.terminationStatus == 0, "\(readLines(errPath))")
        var received = 0.0
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            received = try metricSamples(port: http).filter { $0.key.hasPrefix("vigil_messages_received_total{") }.values.reduce(0, +)
            if received >= 8000 { break }
            usleep(200_000)
        }
        usleep(1_500_000)
        #expect(vigil.stop().0 == 0)
        let delivered = readLines(dir + "/incidents.jsonl")
        #expect(delivered.count > 15, "only \(delivered.count) events")

        let (exportStatus, recording, exportErr) = try runVigil(["journal", "export", "--config", config])
        #expect(exportStatus == 0, "\(exportErr)")
        #expect(recording.split(separator: "\n").count >= 8000)
        let (replayStatus, replayed, replayErr) = try runVigil(["replay", "--config", config], stdin: recording)
        #expect(replayStatus == 0, "\(replayErr)")
        let replayedLines = replayed.split(separator: "\n").map(String.init)
        #expect(replayedLines.sorted() == delivered.sorted(), "replay: \(replayedLines.count) events, delivered: \(delivered.count)")
        let byIncident = Dictionary(grouping: replayedLines.compactMap(IncidentEvent.decode), by: \.incidentID)
        for (id, es) in Dictionary(grouping: delivered.compactMap(IncidentEvent.decode), by: \.incidentID) {
            #expect(byIncident[id]?.map(\.eventID) == es.map(\.eventID), "incident \(id)")
        }
        // --since/--until bound the export.
        let first = try #require(recording.split(separator: "\n").first.flatMap { Record.parse(line: String($0)) }?.ts)
        let (_, tail, _) = try runVigil(["journal", "export", "--config", config, "--since", Time.format(first + 10_000)])
        #expect(tail.split(separator: "\n").allSatisfy { (Record.parse(line: String($0))?.ts ?? 0) >= first + 10_000 })
        #expect(tail.split(separator: "\n").count < recording.split(separator: "\n").count)

        // Backtest: the same rules without the fire-alarm file, the forced-gate rule now critical.
        try FileManager.default.createDirectory(atPath: dir + "/new", withIntermediateDirectories: true)
        for f in FileGlob.expand([repoRoot + "/config/rules.d/[2-5]*.yaml"]) {
            let text = try String(contentsOfFile: f, encoding: .utf8)
                .replacingOccurrences(
                    of: "when: event == \"door_forced\"\n    clear_after: 10m\n    severity: major",
                    with: "when: event == \"door_forced\"\n    clear_after: 10m\n    severity: critical")
            try text.write(toFile: dir + "/new/" + (f as NSString).lastPathComponent, atomically: true, encoding: .utf8)
        }
        let (btStatus, btOut, btErr) = try runVigil(["backtest", "--config", config, "--rules", dir + "/new/*.yaml", "--json"])
        #expect(btStatus == 0, "\(btErr)")
        guard case .object(let report)? = try? JSONParser.parse(btOut), case .array(let rules)? = report["rules"],
            case .array(let onlyConfigured)? = report["only_configured"], case .array(let onlyNew)? = report["only_new"]
        else {
            Issue.record("backtest --json: \(btOut.prefix(300))"); return
        }
        let opened = Dictionary(grouping: delivered.compactMap(IncidentEvent.decode).filter { $0.type == .opened }, by: \.rule)
        func row(_ rule: String) -> JSONObject? { rules.compactMap(\.objectValue).first { $0["rule"] == .string(rule) } }
        // The configured side agrees with what the daemon did.
        for (rule, events) in opened {
            #expect(row(rule)?["configured"]?["opened"].numberValue == Double(events.count), "\(rule)")
        }
        let fire = opened["fire_alarm_active"]?.count ?? 0
        #expect(fire > 0)
        #expect(row("fire_alarm_active")?["new"]?["opened"].numberValue == 0)
        // Only the configured set opened the fire alarms; the forced gates are the same incidents under
        // both sets (ids do not depend on severity).
        #expect(onlyConfigured.compactMap { $0["rule"].stringValue }.filter { $0 == "fire_alarm_active" }.count == fire)
        #expect(onlyConfigured.allSatisfy { $0["rule"] == "fire_alarm_active" || $0["rule"] == "fire_panel_fault" })
        #expect(onlyNew.isEmpty)
        // Every rule of both sets has its row, those that opened nothing under either included.
        let configuredRules = try #require(Setup.load(configPath: config).0).ruleSet.rules.map(\.name)
        let silent = configuredRules.filter { opened[$0] == nil }
        #expect(!silent.isEmpty)
        for rule in configuredRules { #expect(row(rule) != nil, "no row for \(rule)") }
        for rule in silent { #expect(row(rule)?["configured"]?["opened"].numberValue == 0) }
        // The fire-alarm rules are not in the new set, and say so.
        #expect(row("fire_alarm_active")?["only_in"] == .string("configured"))
        #expect(row("gate_forced_open") != nil && row("gate_forced_open")?["only_in"] == nil)
    }

    @Test func rejectsBadUsage() throws {
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for args in [
            ["--rate", "100"], ["--broker", "mqtt://127.0.0.1:1", "--anomalies", "meteor"],
            ["--output", dir + "/x.jsonl"], ["--broker", "mqtt://127.0.0.1:1", "--qos", "2"],
        ] {
            let (p, err) = try simulate(args, dir: dir)
            p.waitUntilExit()
            #expect(p.terminationStatus == 2, "\(args): \(readLines(err))")
        }
    }
}

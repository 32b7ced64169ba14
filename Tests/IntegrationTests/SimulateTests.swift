import Foundation
import Testing
import VigilCore
import VigilDaemon
import VigilSimulate

@Suite(.serialized) struct SimulateTests {
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

    /// The end-to-end check: a minute of simulated traffic over the full
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
        let http = try freePort()
        let config = dir + "/vigil.yaml"
        try """
        broker: { url: "\(broker.url)", client_id: vigil-e2e, keepalive: 10s }
        channels: \(repoRoot)/fixtures/channels.csv
        rules: ["\(dir)/rules/*.yaml"]
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
        #expect(ready)
        usleep(300_000)  // subscriptions follow the CONNACK

        let began = Date()
        let (sim, errPath) = try simulate(["--broker", broker.url, "--channels", repoRoot + "/fixtures/channels.csv",
                                           "--rate", "400", "--duration", "60s", "--anomalies", "all=2", "--silence", "45s",
                                           "--seed", "5", "--manifest", dir + "/manifest.jsonl"], dir: dir)
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

    @Test func rejectsBadUsage() throws {
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for args in [["--rate", "100"], ["--broker", "mqtt://127.0.0.1:1", "--anomalies", "meteor"],
                     ["--output", dir + "/x.jsonl"], ["--broker", "mqtt://127.0.0.1:1", "--qos", "2"]] {
            let (p, err) = try simulate(args, dir: dir)
            p.waitUntilExit()
            #expect(p.terminationStatus == 2, "\(args): \(readLines(err))")
        }
    }
}

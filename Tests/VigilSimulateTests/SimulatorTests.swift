import Foundation
import Testing
import VigilConfig
import VigilCore
import VigilIngest
import VigilRules
@testable import VigilSimulate
import VigilTestSupport

let repoRoot = #filePath.replacingOccurrences(of: "/Tests/VigilSimulateTests/SimulatorTests.swift", with: "")

func shippedChannels() throws -> [SimChannel] {
    let text = try String(contentsOfFile: repoRoot + "/config/channels.csv", encoding: .utf8)
    let (registry, diags) = ChannelRegistry.parse(text, path: "channels.csv", knownFeeds: nil)
    #expect(diags.isEmpty)
    return SimChannel.from(registry)
}

/// Runs `n` steps and returns the recording (SPEC §5 lines) and the manifest.
func simulate(
    _ channels: [SimChannel], rate: Double, steps n: Int, seed: UInt64 = 1, anomalies: String = "none",
    silence: Millis = 660_000
) throws -> (lines: [String], manifest: [ManifestEntry], sim: Simulator) {
    let plan = try AnomalyPlan.parse(anomalies).get()
    let end = Simulator.defaultStart + Millis(Double(n) * 1000 / rate)
    var sim = try Simulator(channels: channels, options: .init(rate: rate, seed: seed, plan: plan, silence: silence, end: end))
    var lines: [String] = []
    var manifest: [ManifestEntry] = []
    lines.reserveCapacity(n)
    for _ in 0..<n {
        let step = sim.next()
        lines.append(step.message.recordedLine(ts: step.at))
        manifest += step.started
    }
    return (lines, manifest, sim)
}

/// Replays recorded lines through the shipped configuration and rules.
func replayShipped(_ lines: [String], until: String = "1s", config: String = repoRoot + "/config/vigil.yaml") throws -> ([IncidentEvent], Replayer.Stats) {
    let dir = try makeWorkDir()
    defer { try? FileManager.default.removeItem(atPath: dir) }
    let path = dir + "/recorded.jsonl"
    try (lines.joined(separator: "\n") + "\n").write(toFile: path, atomically: false, encoding: .utf8)
    let (setup, diags) = Setup.load(configPath: config)
    #expect(diags.isEmpty, "\(diags)")
    var replayer = Replayer(setup: try #require(setup))
    let fd = open(path, O_RDONLY)
    defer { close(fd) }
    var events: [IncidentEvent] = []
    let stats = try replayer.run(inputFD: fd, until: Replayer.Until.parse(until)) { events.append($0) }
    return (events, stats)
}

@Suite struct AnomalyPlanTests {
    @Test func parsesKindsRatesAndAll() throws {
        #expect(try AnomalyPlan.parse("none").get().perMinute.isEmpty)
        let all = try AnomalyPlan.parse("all").get()
        #expect(all.perMinute.count == AnomalyKind.allCases.count && all.perMinute.values.allSatisfy { $0 == 1 })
        let mixed = try AnomalyPlan.parse("overheat=3, fire_alarm,all=0.5").get()
        #expect(mixed.perMinute[.overheat] == 3 && mixed.perMinute[.fireAlarm] == 1 && mixed.perMinute[.silent] == 0.5)
        let two = try AnomalyPlan.parse("ebike,falling_object").get()
        #expect(two.perMinute.keys.sorted { $0.rawValue < $1.rawValue } == [.ebike, .fallingObject])
    }

    @Test(arguments: ["overheated", "overheat=fast", "overheat=0", "fire_alarm=-1"])
    func rejectsBadSpecs(_ spec: String) {
        guard case .failure(let e) = AnomalyPlan.parse(spec) else { Issue.record("\(spec) parsed"); return }
        #expect(e.description.hasPrefix("--anomalies: "))
    }

    @Test func manifestLinesRoundTrip() {
        let e = ManifestEntry(at: 1_795_852_800_123, channel: "云泉-cp-1", feed: "charging_pile", anomaly: .overheat)
        #expect(
            e.jsonLine
                == #"{"at":"2026-11-28T08:00:00.123Z","channel":"云泉-cp-1","feed":"charging_pile","anomaly":"overheat","expect":"charging_pile_overheat"}"#)
        #expect(ManifestEntry.parse(line: e.jsonLine) == e)
        let m = ManifestEntry(at: 0, channel: "x", feed: "smart_gate", anomaly: .malformed, reason: "not_object")
        #expect(ManifestEntry.parse(line: m.jsonLine) == m)
        #expect(m.jsonLine.contains(#""expect":"dead_letter","reason":"not_object""#))
    }
}

@Suite struct SimulatorTests {
    @Test func sameSeedSameStreamOtherSeedOtherStream() throws {
        let channels = try shippedChannels()
        let a = try simulate(channels, rate: 500, steps: 20_000, seed: 7, anomalies: "all=4")
        let b = try simulate(channels, rate: 500, steps: 20_000, seed: 7, anomalies: "all=4")
        let c = try simulate(channels, rate: 500, steps: 20_000, seed: 8, anomalies: "all=4")
        #expect(a.lines == b.lines)
        #expect(a.manifest == b.manifest)
        #expect(a.lines != c.lines)
        #expect(!a.manifest.isEmpty)
    }

    @Test func everyChannelSpeaksAndPilesMostOften() throws {
        let channels = try shippedChannels()
        let run = try simulate(channels, rate: 1000, steps: 60_000)
        var perChannel: [String: Int] = [:]
        var statuses = 0
        for line in run.lines {
            let topic = try #require(try JSONParser.parse(line)["topic"].stringValue)
            let parts = topic.split(separator: "/")
            perChannel[String(parts[3]), default: 0] += 1
            if parts[4] == "status" { statuses += 1 }
        }
        #expect(perChannel.count == channels.count)
        let piles = channels.filter { $0.feed == "charging_pile" }.map { perChannel[$0.id] ?? 0 }
        let panels = channels.filter { $0.feed == "fire_alarm" }.map { perChannel[$0.id] ?? 0 }
        let meanPile = Double(piles.reduce(0, +)) / Double(piles.count)
        let meanPanel = Double(panels.reduce(0, +)) / Double(panels.count)
        #expect(meanPile > 2.5 * meanPanel && meanPile < 3.5 * meanPanel, "piles \(meanPile), panels \(meanPanel)")
        #expect(statuses > 0 && statuses < run.lines.count / 100)
    }

    @Test func gatesPeakInTheMorningAndQuietAtNight() {
        let morning = Double(Simulator.defaultStart) + 30 * 60_000  // 08:00 Asia/Shanghai
        let noon = morning + 4 * 3_600_000
        let night = morning + 18 * 3_600_000  // 02:00
        #expect(Simulator.gateFactor(at: morning) > Simulator.gateFactor(at: noon))
        #expect(Simulator.gateFactor(at: night) < Simulator.gateFactor(at: noon))
    }

    /// Ordinary traffic opens nothing under the shipped rules: every incident in
    /// a simulation must come from an injected anomaly.
    @Test func baselineTrafficOpensNoIncident() throws {
        let channels = try shippedChannels()
        // 25 virtual minutes at 150 msg/s: past every window of the shipped rules.
        let run = try simulate(channels, rate: 150, steps: 225_000, seed: 3)
        let (events, stats) = try replayShipped(run.lines)
        #expect(events.isEmpty, "\(events.prefix(3).map { $0.jsonLine() })")
        #expect(stats.deadLetters.isEmpty)
        #expect(stats.readings == 225_000)
    }

    /// Every kind of anomaly, over the full registry, through the shipped
    /// rules: each becomes its incident, and nothing else opens.
    @Test func everyAnomalyBecomesItsIncident() throws {
        let channels = try shippedChannels()
        // 30 virtual minutes: long enough for 11-minute silences.
        let run = try simulate(channels, rate: 200, steps: 360_000, seed: 11, anomalies: "all=1")
        let kinds = Set(run.manifest.map(\.anomaly))
        #expect(kinds == Set(AnomalyKind.allCases), "missing: \(Set(AnomalyKind.allCases).subtracting(kinds))")
        let (events, stats) = try replayShipped(run.lines)
        let check = ManifestCheck(manifest: run.manifest, opened: ManifestCheck.opened(events), tolerance: 0)
        #expect(check.passed, "\(check.report(events: events))")
        #expect(check.detected.count == run.manifest.filter { $0.anomaly != .malformed }.count)
        var expectedDead: [String: Int] = [:]
        for e in run.manifest where e.anomaly == .malformed { expectedDead[e.reason!, default: 0] += 1 }
        let dead = Dictionary(uniqueKeysWithValues: stats.deadLetters.map { ($0.key.rawValue, $0.value) })
        #expect(dead == expectedDead)
        // Incidents open when the rules say: immediately for events, after `for` for thresholds.
        for (entry, opened) in check.detected {
            let delay = opened.openedAt - entry.at
            switch entry.anomaly {
            case .overheat: #expect(delay == 30_000)
            case .overcurrent: #expect(delay == 10_000)
            case .fireAlarm, .panelFault, .ebike, .fallingObject, .doorForced, .doorHeld, .offline: #expect(delay == 0)
            case .deniedBurst: #expect(delay > 0 && delay <= 40_000)
            case .silent: #expect(delay > 0 && delay <= 600_000)
            case .malformed: Issue.record("a malformed message matched an incident")
            }
        }
    }

    @Test func anomaliesThatCannotPlayOutBeforeTheEndAreNotStarted() throws {
        let channels = try shippedChannels()
        // One minute: a silence of 11 minutes cannot fit.
        let run = try simulate(channels, rate: 200, steps: 12_000, anomalies: "silent=5,fire_alarm=5")
        #expect(!run.manifest.contains { $0.anomaly == .silent })
        #expect(run.manifest.contains { $0.anomaly == .fireAlarm })
        #expect((run.sim.skipped[.silent] ?? 0) > 0)
    }

    @Test func theCheckReportsMissedAndUnexplained() {
        let m = [
            ManifestEntry(at: 1000, channel: "fa-1", feed: "fire_alarm", anomaly: .fireAlarm),
            ManifestEntry(at: 2000, channel: "cp-1", feed: "charging_pile", anomaly: .overheat),
        ]
        let opened = [
            ManifestCheck.Opened(rule: "fire_alarm_active", channel: "fa-1", openedAt: 1000),
            ManifestCheck.Opened(rule: "falling_object", channel: "fo-1", openedAt: 1500),
        ]
        let check = ManifestCheck(manifest: m, opened: opened)
        #expect(!check.passed)
        #expect(check.detected.count == 1)
        #expect(check.missed.map(\.channel) == ["cp-1"])
        #expect(check.unexplained.map(\.rule) == ["falling_object"])
        // An incident that opened before its anomaly does not count for it.
        let early = ManifestCheck(manifest: [m[0]], opened: [.init(rule: "fire_alarm_active", channel: "fa-1", openedAt: -5000)])
        #expect(early.missed.count == 1 && early.unexplained.count == 1)
    }
}

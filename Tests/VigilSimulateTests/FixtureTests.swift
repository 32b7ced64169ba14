import Foundation
import Testing
import VigilConfig
import VigilCore
import VigilIngest
import VigilRules
import VigilSimulate

/// fixtures/<feed>/: a recorded stream per feed (made by scripts/gen-fixtures),
/// the anomalies in it, and the incident events expected from it.
@Suite struct FixtureTests {
    static let feeds = ["charging_pile", "smart_gate", "fire_alarm", "elevator_ebike", "falling_object"]

    @Test(arguments: feeds) func replayGivesTheExpectedIncidents(_ feed: String) throws {
        let dir = repoRoot + "/fixtures/" + feed
        let recording = try String(contentsOfFile: dir + "/recording.jsonl", encoding: .utf8).split(separator: "\n").map(String.init)
        let expected = try String(contentsOfFile: dir + "/expected.jsonl", encoding: .utf8).split(separator: "\n").map(String.init)
        let manifest = try String(contentsOfFile: dir + "/manifest.jsonl", encoding: .utf8).split(separator: "\n")
            .compactMap { ManifestEntry.parse(line: String($0)) }
        #expect(recording.count == 3600)
        #expect(manifest.contains { $0.anomaly == .malformed })
        #expect(manifest.contains { $0.anomaly != .malformed && $0.anomaly != .offline })

        let (events, stats) = try replayShipped(recording, until: "0s", config: dir + "/vigil.yaml")
        // Byte for byte what the file says, in order.
        #expect(events.map { $0.jsonLine() } == expected)
        // And what the file says is right: each anomaly its incident, nothing else.
        let check = ManifestCheck(manifest: manifest, opened: ManifestCheck.opened(events), tolerance: 0)
        #expect(check.passed, "\(check.report(events: events))")
        let dead = Dictionary(uniqueKeysWithValues: stats.deadLetters.map { ($0.key.rawValue, $0.value) })
        #expect(dead == check.deadLettersExpected)
        #expect(Set(events.map(\.feed)).isSubset(of: [feed]))
    }
}

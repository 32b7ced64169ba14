import Foundation
import Testing
import VigilCore
@testable import VigilRules

@Suite struct CheckpointTests {
    let rules = """
        rules:
          - { name: hot, feed: charging_pile, when: t >= 65, for: 30s, clear_when: t < 55, update_every: 0s }
          - { name: burst, feed: smart_gate, when: result == "denied", count: 3, within: 1m }
          - { name: silent, feed: fire_alarm, absent_for: 5m }
          - { name: spike, feed: charging_pile, when: t >= 90, clear_after: 2m, title: "{{channel}} {{t}}" }
        """
    let channels = """
        channel,feed,building
        cp-1,charging_pile,B1
        cp-2,charging_pile,B2
        sg-1,smart_gate,G
        fa-1,fire_alarm,B1
        fa-2,fire_alarm,B2
        """

    /// A scripted stream: (offset, topic, payload).
    func stream() -> [(String, String, JSONValue)] {
        var s: [(String, String, JSONValue)] = []
        var rng = FuzzTests.RNG(state: 5)
        for i in 0..<400 {
            let at = "\(i * 3)s"
            switch i % 4 {
            case 0: s.append((at, "estate/C1/charging_pile/cp-\(1 + i % 2)/telemetry", ["t": .number(Double(Int.random(in: 40...95, using: &rng)))]))
            case 1: s.append((at, "estate/C1/smart_gate/sg-1/event", ["result": Bool.random(using: &rng) ? "denied" : "granted"]))
            case 2 where i % 40 == 2: s.append((at, "estate/C1/fire_alarm/fa-1/event", ["event": "heartbeat"]))
            default: s.append((at, "estate/C1/charging_pile/cp-2/telemetry", ["t": .number(Double(Int.random(in: 50...70, using: &rng)))]))
            }
        }
        return s
    }

    @Test func aRestoredEngineCarriesOnExactlyAsTheOriginal() throws {
        let input = stream()
        for cut in [37, 150, 299] {
            var original = try Harness(rules, channels: channels)
            for (at, topic, p) in input { original.send(at, topic, p) }
            original.advance("30m")

            var first = try Harness(rules, channels: channels)
            for (at, topic, p) in input.prefix(cut) { first.send(at, topic, p) }
            let bytes = first.engine.checkpoint()
            guard let (restored, kept) = RuleEngine.restore(bytes, ruleSet: first.engine.ruleSet, registry: first.engine.registry) else {
                Issue.record("checkpoint did not restore"); return
            }
            #expect(kept.count == 4)
            #expect(restored.checkpoint() == bytes)  // a round trip changes nothing
            var second = first
            second.engine = restored
            second.events = first.events
            for (at, topic, p) in input.dropFirst(cut) { second.send(at, topic, p) }
            second.advance("30m")
            #expect(second.events == original.events, "cut at \(cut): \(second.events.count) vs \(original.events.count) events")
        }
    }

    /// A reload may reorder or drop registry rows: a pending run opens with
    /// its channel's columns from the new registry, not another row's.
    @Test func aReloadedRegistryGivesAPendingRunItsOwnChannelsColumns() throws {
        var h = try Harness(rules, channels: channels)
        h.send("0s", "estate/C1/charging_pile/cp-2/telemetry", ["t": 70])  // `hot` runs for 30 s
        let reordered = "channel,feed,building\ncp-2,charging_pile,B2\ncp-1,charging_pile,B1\nsg-1,smart_gate,G\nfa-1,fire_alarm,B1\n"
        let (reg, diags) = ChannelRegistry.parse(reordered, path: "c", knownFeeds: nil)
        #expect(diags.isEmpty)
        var (next, kept) = h.engine.reloaded(ruleSet: h.engine.ruleSet, registry: reg)
        #expect(kept.contains("hot"))
        var events: [IncidentEvent] = []
        next.advance(to: h.t0 + 31_000, into: &events)
        let opened = try #require(events.first { $0.rule == "hot" && $0.type == .opened })
        #expect(opened.channel == "cp-2")
        #expect(opened.channelInfo["building"] == "B2")
    }

    @Test func aChangedRuleStartsAfreshTheOthersKeepTheirState() throws {
        var h = try Harness(rules, channels: channels)
        h.send("0s", "estate/C1/charging_pile/cp-1/telemetry", ["t": 70])
        let bytes = h.engine.checkpoint()
        let (changed, _, _) = loadRules(["r.yaml": rules.replacingOccurrences(of: "for: 30s", with: "for: 45s")])
        var reg = ChannelRegistry()
        (reg, _) = ChannelRegistry.parse(channels, path: "c", knownFeeds: nil)
        let (restored, kept) = try #require(RuleEngine.restore(bytes, ruleSet: changed, registry: reg))
        #expect(!kept.contains("hot"))
        #expect(kept.contains("silent"))
        #expect(restored.activeKeys == 0)
        #expect(RuleEngine.restore(Array("nonsense".utf8), ruleSet: changed, registry: reg) == nil)
    }
}

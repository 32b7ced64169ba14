import Foundation
import Testing
import VigilCore
@testable import VigilRules

let overheat = """
    rules:
      - name: charging_pile_overheat
        feed: charging_pile
        when: temperature_c >= 65
        for: 30s
        clear_when: temperature_c < 55
        severity: critical
        title: "Charging pile {{channel}} at {{temperature_c}} °C ({{channel.location}})"
        labels: { hazard: fire }
    """

let piles = """
    channel,feed,community,building,location,route
    cp-0001,charging_pile,C001,B3,B3 bike shed,fire_safety
    cp-0002,charging_pile,C001,B3,B3 bike shed east,
    cp-0003,charging_pile,C001,B4,B4 bike shed,
    fa-0001,fire_alarm,C001,B3,B3 panel,fire_safety
    fa-0002,fire_alarm,C001,B9,B9 panel,fire_safety
    sg-0001,smart_gate,C017,G,North gate,access_control
    """

@Suite struct ThresholdRuleTests {
    @Test func theSpecExample() throws {
        var h = try Harness(overheat, channels: piles)
        h.pile("0s", ["temperature_c": 70])
        h.pile("20s", ["temperature_c": 71])
        h.pile("60s", ["temperature_c": 50])
        h.advance("2m")
        #expect(h.summary == ["30s opened charging_pile_overheat cp-0001 2", "1m resolved charging_pile_overheat cp-0001 2"])
        let opened = h.events[0]
        #expect(h.offset(opened.startedAt) == "0s")
        #expect(h.offset(opened.openedAt) == "30s")
        #expect(opened.title == "Charging pile cp-0001 at 71 °C (B3 bike shed)")
        #expect(opened.reading?.payload["temperature_c"] == 71)
        #expect(opened.severity == .critical)
        #expect(opened.route == "fire_safety")
        #expect(opened.labels["hazard"] == "fire")
        #expect(opened.channelInfo["building"] == "B3")
        #expect(opened.key == JSONObject([("channel", "cp-0001")]))
        let resolved = h.events[1]
        #expect(resolved.incidentID == opened.incidentID)
        #expect(h.offset(resolved.resolvedAt) == "1m")
        #expect(resolved.reading?.payload["temperature_c"] == 50)
        #expect(resolved.title == opened.title)  // rendered once, carried unchanged
    }

    /// A registry channel's `[channel]` key, built once with the engine, is
    /// the key's JSON text, escapes and all.
    @Test func registryChannelKeysAreTheirJSONText() {
        let csv = "channel,feed\ncp-1,charging_pile\n\"we\"\"ird\\id\",charging_pile\n云泉-1,charging_pile\n"
        let (reg, diags) = ChannelRegistry.parse(csv, path: "t.csv", knownFeeds: nil)
        #expect(diags.isEmpty && reg.count == 3)
        let engine = RuleEngine(ruleSet: RuleSet(), registry: reg)
        #expect(engine.registryChannelKeys.map(\.1) == [#"{"channel":"cp-1"}"#, #"{"channel":"we\"ird\\id"}"#, #"{"channel":"云泉-1"}"#])
        for (key, text) in engine.registryChannelKeys { #expect(text == JSONWriter.encode(.object(key))) }
    }

    /// A key known to have no state is skipped while its readings cannot
    /// start one, and starts one on the first that can.
    @Test func aKeyKnownToHaveNoStateStillStartsOne() throws {
        var h = try Harness(overheat, channels: piles)
        let rule = 0, second = h.engine.registry.lookup("cp-0002")!
        h.pile("0s", "cp-0001", ["temperature_c": 70])  // the rule has state now
        h.pile("1s", "cp-0002", ["temperature_c": 50])  // looked up: none
        #expect(h.engine.knownStateless(rule, channel: second))
        h.pile("2s", "cp-0002", ["temperature_c": 50])  // skipped
        h.pile("3s", "cp-0002", ["temperature_c": 70])  // starts a run
        #expect(!h.engine.knownStateless(rule, channel: second))
        h.pile("50s", "cp-0002", ["temperature_c": 50])
        h.advance("2m")
        #expect(
            h.summary == [
                "30s opened charging_pile_overheat cp-0001 1", "33s opened charging_pile_overheat cp-0002 1",
                "50s resolved charging_pile_overheat cp-0002 1",
            ])
        // A restored engine knows nothing, and judges alike.
        let (restored, _) = try #require(RuleEngine.restore(h.engine.checkpoint(), ruleSet: h.engine.ruleSet, registry: h.engine.registry))
        #expect(restored.keyFacts.allSatisfy { $0 == 0 })
    }

    @Test func opensAtExactlyStartPlusForWithoutAReading() throws {
        var h = try Harness(overheat, channels: piles)
        h.pile("0s", ["temperature_c": 70])
        h.advance("29999ms")
        #expect(h.events.isEmpty)
        h.advance("30s")
        #expect(h.summary == ["30s opened charging_pile_overheat cp-0001 1"])
    }

    @Test func aReadingAtTheTimerInstantComesAfterIt() throws {
        var h = try Harness(overheat, channels: piles)
        h.pile("0s", ["temperature_c": 70])
        h.pile("30s", ["temperature_c": 40])  // due timer fires first, then this clears
        #expect(h.summary == ["30s opened charging_pile_overheat cp-0001 1", "30s resolved charging_pile_overheat cp-0001 1"])
    }

    @Test func aFalseReadingBreaksTheRunAndNullDoesNot() throws {
        var h = try Harness(overheat, channels: piles)
        h.pile("0s", ["temperature_c": 70])
        h.pile("10s", ["temperature_c": 60])  // false: run broken
        h.pile("15s", ["temperature_c": 66])  // new run from 15s
        h.pile("20s", ["status": "online"])  // null: ignored
        h.advance("44s")
        #expect(h.events.isEmpty)
        h.advance("45s")
        #expect(h.summary == ["45s opened charging_pile_overheat cp-0001 1"])
        #expect(h.offset(h.events[0].startedAt) == "15s")
    }

    @Test func hysteresisBandNeitherOpensNorClears() throws {
        var h = try Harness(overheat, channels: piles)
        h.pile("0s", ["temperature_c": 70])
        h.advance("30s")
        h.pile("40s", ["temperature_c": 60])  // between 55 and 65
        h.advance("10m")
        #expect(h.summary == ["30s opened charging_pile_overheat cp-0001 1"])
    }

    @Test func keysAreIndependent() throws {
        var h = try Harness(overheat, channels: piles)
        h.pile("0s", "cp-0001", ["temperature_c": 70])
        h.pile("5s", "cp-0002", ["temperature_c": 70])
        h.advance("1m")
        #expect(h.summary == ["30s opened charging_pile_overheat cp-0001 1", "35s opened charging_pile_overheat cp-0002 1"])
        #expect(h.events[1].route == "default")  // cp-0002 has an empty route column
    }

    @Test func clearForResolvesAtTheRunStartPlusClearFor() throws {
        var h = try Harness(
            """
            rules:
              - { name: hot, feed: charging_pile, when: t > 50, clear_when: t < 40, clear_for: 1m }
            """)
        h.pile("0s", ["t": 60])
        h.pile("10s", ["t": 30])  // clear run starts
        h.pile("20s", ["t": 45])  // false clear_when: run broken
        h.pile("30s", ["t": 35])  // run starts again
        h.pile("40s", ["x": 1])  // null: ignored
        h.pile("50s", ["t": 20])
        h.advance("5m")
        #expect(h.summary == ["0s opened hot cp-0001 1", "1m30s resolved hot cp-0001 1"])
        #expect(h.events[1].reading?.payload["t"] == 35)  // the reading that began the run
    }

    /// A key with an open incident and no clear run is skipped by readings
    /// that cannot change it; one that can (a true `clear_when`, or a false
    /// one while a clear run is under way) still reaches it.
    @Test func aQuietOpenKeyIsSkippedOnlyByReadingsThatCannotChangeIt() throws {
        var h = try Harness(
            """
            rules:
              - { name: hot, feed: charging_pile, when: t > 50, clear_when: t < 40, clear_for: 1m }
            """, channels: piles)
        let rule = 0, pile = h.engine.registry.lookup("cp-0001")!
        h.pile("0s", "cp-0001", ["t": 60])
        #expect(h.engine.knownQuietOpen(rule, channel: pile))
        h.pile("5s", "cp-0001", ["t": 45])  // neither condition true: skipped
        h.pile("6s", "cp-0001", ["x": 1])  // both unknown: skipped
        #expect(h.engine.knownQuietOpen(rule, channel: pile))
        h.pile("10s", "cp-0001", ["t": 30])  // clear run starts: no longer quiet
        #expect(!h.engine.knownQuietOpen(rule, channel: pile))
        h.pile("20s", "cp-0001", ["t": 45])  // false clear_when: run broken, quiet again
        #expect(h.engine.knownQuietOpen(rule, channel: pile))
        h.pile("30s", "cp-0001", ["t": 35])  // run starts again
        h.pile("40s", "cp-0001", ["t": 20])
        h.advance("5m")
        #expect(h.summary == ["0s opened hot cp-0001 1", "1m30s resolved hot cp-0001 1"])
        #expect(h.events[1].reading?.payload["t"] == 35)
        // Resolved by its timer, the key is stateless; a stale fact skips
        // only readings that change nothing, and a true `when` opens anew.
        h.pile("6m", "cp-0001", ["t": 45])
        h.pile("7m", "cp-0001", ["t": 70])
        h.pile("8m", "cp-0001", ["t": 30])
        h.advance("10m")
        #expect(h.summary.suffix(2) == ["7m opened hot cp-0001 1", "9m resolved hot cp-0001 1"])
    }

    /// A pending `for` run is broken by a false `when` on a registry channel's key.
    @Test func aPendingRunIsBrokenByAFalseWhen() throws {
        var h = try Harness(overheat, channels: piles)
        for pile in ["cp-0001", "cp-0002"] { h.pile("0s", pile, ["temperature_c": 70]) }
        for pile in ["cp-0001", "cp-0002"] { h.pile("10s", pile, ["x": 1]) }  // unknown: the run goes on
        h.pile("20s", "cp-0001", ["temperature_c": 60])  // false: broken
        h.advance("2m")
        #expect(h.summary == ["30s opened charging_pile_overheat cp-0002 1"])
    }

    @Test func clearForAndClearAfterDueTogetherResolveOnceWithNullReading() throws {
        var h = try Harness(
            """
            rules:
              - { name: hot, feed: charging_pile, when: t > 50, clear_when: t < 40, clear_for: 1m, clear_after: 1m30s }
            """)
        h.pile("0s", ["t": 60])
        h.pile("30s", ["t": 30])
        h.advance("5m")
        #expect(h.summary == ["0s opened hot cp-0001 1", "1m30s resolved hot cp-0001 1"])
        #expect(h.events[1].reading == nil)
    }

    @Test func clearAfterOnlyIgnoresWeakerDetections() throws {
        var h = try Harness(
            """
            rules:
              - { name: falling, feed: falling_object, when: confidence >= 0.6, clear_after: 15m, severity: critical }
            """)
        let topic = "estate/C1/falling_object/fo-1/event"
        h.send("0s", topic, ["confidence": 0.9])
        h.send("5m", topic, ["confidence": 0.2])  // weaker: does not close
        h.send("10m", topic, ["confidence": 0.7])  // matches: clear_after counts from here
        h.advance("24m59s")
        #expect(h.summary == ["0s opened falling fo-1 1", "10m updated falling fo-1 2"])
        h.advance("25m")
        #expect(h.summary.last == "25m resolved falling fo-1 2")
        #expect(h.events.last?.reading == nil)
    }

    @Test func updateEveryLimitsUpdates() throws {
        var h = try Harness(
            """
            rules:
              - { name: a, feed: charging_pile, when: t > 50, update_every: 0s }
              - { name: b, feed: charging_pile, when: t > 50 }
            """)
        h.pile("0s", ["t": 60])
        h.pile("1s", ["t": 61])
        h.pile("2m", ["t": 62])
        h.pile("5m", ["t": 63])
        h.pile("5m1s", ["t": 64])
        #expect(
            h.summary == [
                "0s opened a cp-0001 1", "0s opened b cp-0001 1",
                "1s updated a cp-0001 2", "2m updated a cp-0001 3", "5m updated a cp-0001 4", "5m updated b cp-0001 4",
                "5m1s updated a cp-0001 5",
            ])
    }

    @Test func aClearingReadingDoesNotUpdateAndStateStartsAfresh() throws {
        var h = try Harness(
            """
            rules:
              - { name: a, feed: charging_pile, when: t > 50, clear_when: t > 90, update_every: 0s }
            """)
        h.pile("0s", ["t": 60])
        h.pile("1s", ["t": 95])  // clears (and would match when): no update
        h.pile("2s", ["t": 60])  // a new incident
        #expect(h.summary == ["0s opened a cp-0001 1", "1s resolved a cp-0001 1", "2s opened a cp-0001 1"])
        #expect(h.events[0].incidentID != h.events[2].incidentID)
    }

    @Test func keyObjectsNameTheirFieldsAsWritten() throws {
        var h = try Harness(
            """
            rules:
              - { name: b, feed: charging_pile, when: t > 50, key: [channel.building] }
            """, channels: piles)
        h.pile("0s", "cp-0001", ["t": 60])
        h.pile("1s", "cp-0002", ["t": 60])  // same building: same incident
        h.pile("2s", "cp-0003", ["t": 60])  // B4
        #expect(h.events.map { JSONValue.object($0.key).description } == [#"{"channel.building":"B3"}"#, #"{"channel.building":"B4"}"#])
        #expect(h.events[0].channel == "cp-0001")
    }
}

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
        h.pile("10s", ["temperature_c": 60])   // false: run broken
        h.pile("15s", ["temperature_c": 66])   // new run from 15s
        h.pile("20s", ["status": "online"])     // null: ignored
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
        var h = try Harness("""
        rules:
          - { name: hot, feed: charging_pile, when: t > 50, clear_when: t < 40, clear_for: 1m }
        """)
        h.pile("0s", ["t": 60])
        h.pile("10s", ["t": 30])   // clear run starts
        h.pile("20s", ["t": 45])   // false clear_when: run broken
        h.pile("30s", ["t": 35])   // run starts again
        h.pile("40s", ["x": 1])    // null: ignored
        h.pile("50s", ["t": 20])
        h.advance("5m")
        #expect(h.summary == ["0s opened hot cp-0001 1", "1m30s resolved hot cp-0001 1"])
        #expect(h.events[1].reading?.payload["t"] == 35)  // the reading that began the run
    }

    @Test func clearForAndClearAfterDueTogetherResolveOnceWithNullReading() throws {
        var h = try Harness("""
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
        var h = try Harness("""
        rules:
          - { name: falling, feed: falling_object, when: confidence >= 0.6, clear_after: 15m, severity: critical }
        """)
        let topic = "estate/C1/falling_object/fo-1/event"
        h.send("0s", topic, ["confidence": 0.9])
        h.send("5m", topic, ["confidence": 0.2])   // weaker: does not close
        h.send("10m", topic, ["confidence": 0.7])  // matches: clear_after counts from here
        h.advance("24m59s")
        #expect(h.summary == ["0s opened falling fo-1 1", "10m updated falling fo-1 2"])
        h.advance("25m")
        #expect(h.summary.last == "25m resolved falling fo-1 2")
        #expect(h.events.last?.reading == nil)
    }

    @Test func updateEveryLimitsUpdates() throws {
        var h = try Harness("""
        rules:
          - { name: a, feed: charging_pile, when: t > 50, update_every: 0s }
          - { name: b, feed: charging_pile, when: t > 50 }
        """)
        h.pile("0s", ["t": 60])
        h.pile("1s", ["t": 61])
        h.pile("2m", ["t": 62])
        h.pile("5m", ["t": 63])
        h.pile("5m1s", ["t": 64])
        #expect(h.summary == [
            "0s opened a cp-0001 1", "0s opened b cp-0001 1",
            "1s updated a cp-0001 2", "2m updated a cp-0001 3", "5m updated a cp-0001 4", "5m updated b cp-0001 4",
            "5m1s updated a cp-0001 5",
        ])
    }

    @Test func aClearingReadingDoesNotUpdateAndStateStartsAfresh() throws {
        var h = try Harness("""
        rules:
          - { name: a, feed: charging_pile, when: t > 50, clear_when: t > 90, update_every: 0s }
        """)
        h.pile("0s", ["t": 60])
        h.pile("1s", ["t": 95])    // clears (and would match when): no update
        h.pile("2s", ["t": 60])    // a new incident
        #expect(h.summary == ["0s opened a cp-0001 1", "1s resolved a cp-0001 1", "2s opened a cp-0001 1"])
        #expect(h.events[0].incidentID != h.events[2].incidentID)
    }

    @Test func keyObjectsNameTheirFieldsAsWritten() throws {
        var h = try Harness("""
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

@Suite struct CountRuleTests {
    let burst = """
    rules:
      - name: gate_denied_burst
        feed: smart_gate
        when: result == "denied"
        count: 5
        within: 2m
        clear_after: 10m
    """

    func gate(_ h: inout Harness, _ at: String, _ result: String) {
        h.send(at, "estate/C017/smart_gate/sg-0001/event", ["event": "access", "result": .string(result)])
    }

    @Test func opensOnTheFifthWithinTheWindow() throws {
        var h = try Harness(burst, channels: piles)
        for s in ["0s", "10s", "20s", "30s"] { gate(&h, s, "denied") }
        gate(&h, "35s", "granted")   // non-matching: ignored
        #expect(h.events.isEmpty)
        gate(&h, "40s", "denied")
        #expect(h.summary == ["40s opened gate_denied_burst sg-0001 5"])
        #expect(h.offset(h.events[0].startedAt) == "0s")
        #expect(h.events[0].route == "access_control")
    }

    @Test func windowsAreHalfOpen() throws {
        var h = try Harness(burst, channels: piles)
        for s in ["0s", "30s", "60s", "90s"] { gate(&h, s, "denied") }
        gate(&h, "2m", "denied")   // the 0s reading is exactly 2m old: it has left
        #expect(h.events.isEmpty)
        gate(&h, "2m1s", "denied")
        #expect(h.summary == ["2m1s opened gate_denied_burst sg-0001 5"])
        #expect(h.offset(h.events[0].startedAt) == "30s")
    }

    @Test func grantedDoesNotResolveClearAfterDoes() throws {
        var h = try Harness(burst, channels: piles)
        for s in ["0s", "1s", "2s", "3s", "4s"] { gate(&h, s, "denied") }
        gate(&h, "1m", "granted")
        gate(&h, "5m", "denied")    // 4m56s after the opening: counted, no update yet (update_every 5m)
        gate(&h, "6m", "denied")
        h.advance("15m59s")
        #expect(h.summary == ["4s opened gate_denied_burst sg-0001 5", "6m updated gate_denied_burst sg-0001 7"])
        h.advance("16m")
        #expect(h.summary.last == "16m resolved gate_denied_burst sg-0001 7")
    }

    @Test func clearAfterDefaultsToWithin() throws {
        var h = try Harness("""
        rules:
          - { name: c, feed: smart_gate, when: result == "denied", count: 2, within: 1m }
        """)
        gate(&h, "0s", "denied")
        gate(&h, "10s", "denied")
        h.advance("5m")
        #expect(h.summary == ["10s opened c sg-0001 2", "1m10s resolved c sg-0001 2"])
    }

    @Test func memoryFollowsActiveKeys() throws {
        var h = try Harness(burst)
        for i in 0..<500 { h.send("\(i)ms", "estate/C1/smart_gate/sg-\(i)/event", ["result": "denied"]) }
        #expect(h.engine.activeKeys == 500)
        h.advance("3m")  // every window has emptied
        #expect(h.engine.activeKeys == 0)
    }
}

@Suite struct AbsenceRuleTests {
    let silent = """
    rules:
      - name: channel_silent
        feed: ["fire_alarm", "smart_gate"]
        absent_for: 10m
        severity: minor
        title: "No data from {{channel}} ({{channel.location}})"
    """

    @Test func opensAfterSilenceFromStartAndResolvesOnTheNextReading() throws {
        var h = try Harness(silent, channels: piles)
        h.send("9m", "estate/C001/fire_alarm/fa-0001/event", ["event": "heartbeat"])
        h.advance("10m")
        #expect(h.summary == ["10m opened channel_silent fa-0002 0", "10m opened channel_silent sg-0001 0"])
        let opened = h.events[0]
        #expect(opened.reading == nil)
        #expect(h.offset(opened.startedAt) == "0s")
        #expect(opened.title == "No data from fa-0002 (B9 panel)")
        #expect(opened.feed == "fire_alarm")
        h.advance("19m")
        #expect(h.summary.count == 3)
        #expect(h.summary[2] == "19m opened channel_silent fa-0001 0")
        #expect(h.offset(h.events[2].startedAt) == "9m")
        h.send("20m", "estate/C001/fire_alarm/fa-0002/status", ["status": "online"])
        #expect(h.summary.last == "20m resolved channel_silent fa-0002 1")
        #expect(h.events.last?.reading?.topic == "estate/C001/fire_alarm/fa-0002/status")
    }

    @Test func whenFiltersWhatCountsAsSeen() throws {
        var h = try Harness("""
        rules:
          - { name: no_heartbeat, feed: fire_alarm, when: event == "heartbeat", absent_for: 1m }
        """, channels: piles)
        h.send("30s", "estate/C001/fire_alarm/fa-0001/event", ["event": "fault"])   // does not count
        h.send("40s", "estate/C001/fire_alarm/fa-0002/event", ["event": "heartbeat"])
        h.advance("1m")
        #expect(h.summary == ["1m opened no_heartbeat fa-0001 0"])
    }

    @Test func unregisteredChannelsAreNotWatched() throws {
        var h = try Harness(silent)
        h.send("0s", "estate/C1/fire_alarm/fa-x/event", ["event": "heartbeat"])
        h.advance("1h")
        #expect(h.events.isEmpty)
    }
}

@Suite struct SuppressionTests {
    @Test func inhibitSilencesTargetsInTheSameBuildingOnly() throws {
        var h = try Harness("""
        rules:
          - { name: fire_alarm_active, feed: fire_alarm, when: event == "alarm", clear_when: event == "reset", severity: critical }
          - { name: charging_pile_hot, feed: charging_pile, when: t > 60 }
        inhibit:
          - { source: fire_alarm_active, target: "charging_pile_*", equal: [channel.building] }
        """, channels: piles)
        h.send("0s", "estate/C001/fire_alarm/fa-0001/event", ["event": "alarm"])   // B3
        h.pile("1s", "cp-0001", ["t": 70])   // B3: inhibited
        h.pile("2s", "cp-0003", ["t": 70])   // B4: opens
        h.send("3s", "estate/C001/fire_alarm/fa-0001/event", ["event": "reset"])
        h.pile("4s", "cp-0001", ["t": 70])   // source resolved: opens
        #expect(h.summary == ["0s opened fire_alarm_active fa-0001 1", "2s opened charging_pile_hot cp-0003 1",
                              "3s resolved fire_alarm_active fa-0001 1", "4s opened charging_pile_hot cp-0001 1"])
        #expect(h.engine.suppressedOpenings == 1)
        #expect(h.engine.suppressions.first?.reason == "inhibited by fire_alarm_active")
    }

    @Test func aMissingEqualFieldNeverInhibits() throws {
        var h = try Harness("""
        rules:
          - { name: src, feed: fire_alarm, when: event == "alarm" }
          - { name: tgt, feed: charging_pile, when: t > 60 }
        inhibit:
          - { source: src, target: tgt, equal: [channel.building] }
        """)
        h.send("0s", "estate/C1/fire_alarm/fa-9/event", ["event": "alarm"])
        h.pile("1s", "cp-9", ["t": 70])
        #expect(h.summary == ["0s opened src fa-9 1", "1s opened tgt cp-9 1"])
    }

    @Test func maintenanceScheduleInShanghaiWithARangePastMidnight() throws {
        var h = try Harness("""
        rules:
          - { name: denied, feed: smart_gate, when: result == "denied", update_every: 0s }
        maintenance:
          - name: gate firmware night
            match: channel.community == "C017"
            schedule: "Mon-Fri 23:00-02:00"
            timezone: Asia/Shanghai
        """, channels: piles, start: "2026-11-30T14:30:00Z")  // Monday 22:30 in Shanghai
        let gate = "estate/C017/smart_gate/sg-0001/event"
        h.send("0s", gate, ["result": "denied"])       // Mon 22:30: opens
        h.send("1s", gate, ["result": "granted"])   // not(when): resolves
        #expect(h.summary == ["0s opened denied sg-0001 1", "1s resolved denied sg-0001 1"])
        var h2 = try Harness("""
        rules:
          - { name: denied, feed: smart_gate, when: result == "denied" }
        maintenance:
          - { name: n, match: channel.community == "C017", schedule: "Mon-Fri 23:00-02:00", timezone: Asia/Shanghai }
        """, channels: piles, start: "2026-11-30T15:30:00Z")  // Mon 23:30
        h2.send("0s", gate, ["result": "denied"])                    // suppressed
        h2.send("1h", gate, ["result": "denied"])                    // Tue 00:30: still in Monday's window
        h2.send("2h30m", gate, ["result": "denied"])                 // Tue 02:00: window over (half-open)
        #expect(h2.summary == ["2h30m opened denied sg-0001 1"])
        #expect(h2.engine.suppressedOpenings == 2)
    }

    @Test func scheduleHandlesDaylightSaving() throws {
        let tz = TimeZone(identifier: "Europe/Berlin")!
        let s = try Schedule.parse("daily 02:30-03:30", timeZone: tz).get()
        // 2026-03-29: clocks jump 02:00 → 03:00 in Berlin; 01:45 UTC is 03:45 CEST: outside.
        #expect(!s.covers(Time.parse("2026-03-29T01:45:00Z")!))
        // 01:15 UTC is 03:15 CEST: inside.
        #expect(s.covers(Time.parse("2026-03-29T01:15:00Z")!))
        // In winter 02:45 CET is 01:45 UTC.
        #expect(s.covers(Time.parse("2026-01-10T01:45:00Z")!))
        #expect(!s.covers(Time.parse("2026-01-10T02:45:00Z")!))
        let weekend = try Schedule.parse("Sat,Sun 00:00-24:00", timeZone: TimeZone(identifier: "UTC")!).get()
        #expect(weekend.covers(Time.parse("2026-11-28T23:59:59Z")!))   // Saturday
        #expect(!weekend.covers(Time.parse("2026-11-30T00:00:00Z")!))  // Monday
    }

    @Test func fromUntilWindowsAndSuppressedAbsenceRecountsSilence() throws {
        var h = try Harness("""
        rules:
          - { name: silent, feed: fire_alarm, absent_for: 10m }
        maintenance:
          - { name: works, match: channel == "fa-0001", from: "2026-01-01T00:05:00Z", until: "2026-01-01T00:15:00Z" }
        """, channels: piles)
        h.advance("30m")
        // fa-0001's opening at 10m fell in the window: silence counted again from 10m.
        #expect(h.summary == ["10m opened silent fa-0002 0", "20m opened silent fa-0001 0"])
        #expect(h.offset(h.events[1].startedAt) == "10m")
    }
}

@Suite struct OrderingAndIdentityTests {
    @Test func idsAreDeterministicAndDistinct() throws {
        func run() throws -> [IncidentEvent] {
            var h = try Harness(overheat, channels: piles)
            h.pile("0s", ["temperature_c": 70])
            h.pile("40s", ["temperature_c": 40])
            h.pile("50s", ["temperature_c": 70])
            h.advance("2m")
            return h.events
        }
        let a = try run(), b = try run()
        #expect(a == b)
        #expect(Set(a.map(\.eventID)).count == a.count)
        #expect(a[0].incidentID != a[2].incidentID)
        #expect(a[0].incidentID.count == 32)
    }

    @Test func sameInstantFollowsRuleOrderThenKeyText() throws {
        var h = try Harness("""
        rules:
          - { name: z_first, feed: charging_pile, when: t > 1, for: 10s }
          - { name: a_second, feed: charging_pile, when: t > 1, for: 10s }
        """)
        h.pile("0s", "cp-b", ["t": 5])
        h.pile("0s", "cp-a", ["t": 5])
        h.advance("10s")
        #expect(h.summary == ["10s opened z_first cp-a 1", "10s opened z_first cp-b 1", "10s opened a_second cp-a 1", "10s opened a_second cp-b 1"])
    }

    @Test func filesLoadInLexicalOrder() throws {
        let (set, diags, _) = loadRules([
            "b.yaml": "rules:\n  - { name: from_b, when: x }\n",
            "a.yaml": "rules:\n  - { name: from_a, when: x }\n  - { name: from_a2, when: x }\n",
        ])
        #expect(diags.isEmpty)
        #expect(set.rules.map(\.name) == ["from_a", "from_a2", "from_b"])
    }
}

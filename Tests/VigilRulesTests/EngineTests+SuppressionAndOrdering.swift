// Engine tests: inhibits and maintenance windows, and the order and identity of events.

import Foundation
import Testing
import VigilCore
@testable import VigilRules

@Suite struct SuppressionTests {
    @Test func inhibitSilencesTargetsInTheSameBuildingOnly() throws {
        var h = try Harness(
            """
            rules:
              - { name: fire_alarm_active, feed: fire_alarm, when: event == "alarm", clear_when: event == "reset", severity: critical }
              - { name: charging_pile_hot, feed: charging_pile, when: t > 60 }
            inhibit:
              - { source: fire_alarm_active, target: "charging_pile_*", equal: [channel.building] }
            """, channels: piles)
        h.send("0s", "estate/C001/fire_alarm/fa-0001/event", ["event": "alarm"])  // B3
        h.pile("1s", "cp-0001", ["t": 70])  // B3: inhibited
        h.pile("2s", "cp-0003", ["t": 70])  // B4: opens
        h.send("3s", "estate/C001/fire_alarm/fa-0001/event", ["event": "reset"])
        h.pile("4s", "cp-0001", ["t": 70])  // source resolved: opens
        #expect(
            h.summary == [
                "0s opened fire_alarm_active fa-0001 1", "2s opened charging_pile_hot cp-0003 1",
                "3s resolved fire_alarm_active fa-0001 1", "4s opened charging_pile_hot cp-0001 1",
            ])
        #expect(h.engine.suppressedOpenings == 1)
        #expect(h.engine.suppressions.first?.reason == "inhibited by fire_alarm_active")
    }

    /// A rule that inhibits itself: its second key opens nothing while the
    /// first key's incident is open in the same building. The opening is
    /// decided with the second key's state in hand (its count window), so the
    /// rule's other keys must still be in sight.
    @Test func aRuleThatInhibitsItselfSeesItsOtherKeys() throws {
        var h = try Harness(
            """
            rules:
              - { name: hot_twice, feed: charging_pile, when: t > 60, count: 2, within: 1m, clear_after: 10m }
            inhibit:
              - { source: hot_twice, target: hot_twice, equal: [channel.building] }
            """, channels: piles)
        h.pile("0s", "cp-0001", ["t": 70])
        h.pile("1s", "cp-0001", ["t": 70])  // B3: opens
        h.pile("2s", "cp-0002", ["t": 70])
        h.pile("3s", "cp-0002", ["t": 70])  // B3 too: inhibited by cp-0001's incident
        h.pile("4s", "cp-0003", ["t": 70])
        h.pile("5s", "cp-0003", ["t": 70])  // B4: opens
        #expect(h.summary == ["1s opened hot_twice cp-0001 2", "5s opened hot_twice cp-0003 2"])
        #expect(h.engine.suppressedOpenings == 1)
    }

    @Test func aMissingEqualFieldNeverInhibits() throws {
        var h = try Harness(
            """
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
        var h = try Harness(
            """
            rules:
              - { name: denied, feed: smart_gate, when: result == "denied", update_every: 0s }
            maintenance:
              - name: gate firmware night
                match: channel.community == "C017"
                schedule: "Mon-Fri 23:00-02:00"
                timezone: Asia/Shanghai
            """, channels: piles, start: "2026-11-30T14:30:00Z")  // Monday 22:30 in Shanghai
        let gate = "estate/C017/smart_gate/sg-0001/event"
        h.send("0s", gate, ["result": "denied"])  // Mon 22:30: opens
        h.send("1s", gate, ["result": "granted"])  // not(when): resolves
        #expect(h.summary == ["0s opened denied sg-0001 1", "1s resolved denied sg-0001 1"])
        var h2 = try Harness(
            """
            rules:
              - { name: denied, feed: smart_gate, when: result == "denied" }
            maintenance:
              - { name: n, match: channel.community == "C017", schedule: "Mon-Fri 23:00-02:00", timezone: Asia/Shanghai }
            """, channels: piles, start: "2026-11-30T15:30:00Z")  // Mon 23:30
        h2.send("0s", gate, ["result": "denied"])  // suppressed
        h2.send("1h", gate, ["result": "denied"])  // Tue 00:30: still in Monday's window
        h2.send("2h30m", gate, ["result": "denied"])  // Tue 02:00: window over (half-open)
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
        #expect(weekend.covers(Time.parse("2026-11-28T23:59:59Z")!))  // Saturday
        #expect(!weekend.covers(Time.parse("2026-11-30T00:00:00Z")!))  // Monday
    }

    @Test func fromUntilWindowsAndSuppressedAbsenceRecountsSilence() throws {
        var h = try Harness(
            """
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
        var h = try Harness(
            """
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

// Engine tests: count rules and absence rules.

import Foundation
import Testing
import VigilCore
@testable import VigilRules

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
        gate(&h, "35s", "granted")  // non-matching: ignored
        #expect(h.events.isEmpty)
        gate(&h, "40s", "denied")
        #expect(h.summary == ["40s opened gate_denied_burst sg-0001 5"])
        #expect(h.offset(h.events[0].startedAt) == "0s")
        #expect(h.events[0].route == "access_control")
    }

    @Test func windowsAreHalfOpen() throws {
        var h = try Harness(burst, channels: piles)
        for s in ["0s", "30s", "60s", "90s"] { gate(&h, s, "denied") }
        gate(&h, "2m", "denied")  // the 0s reading is exactly 2m old: it has left
        #expect(h.events.isEmpty)
        gate(&h, "2m1s", "denied")
        #expect(h.summary == ["2m1s opened gate_denied_burst sg-0001 5"])
        #expect(h.offset(h.events[0].startedAt) == "30s")
    }

    @Test func grantedDoesNotResolveClearAfterDoes() throws {
        var h = try Harness(burst, channels: piles)
        for s in ["0s", "1s", "2s", "3s", "4s"] { gate(&h, s, "denied") }
        gate(&h, "1m", "granted")
        gate(&h, "5m", "denied")  // 4m56s after the opening: counted, no update yet (update_every 5m)
        gate(&h, "6m", "denied")
        h.advance("15m59s")
        #expect(h.summary == ["4s opened gate_denied_burst sg-0001 5", "6m updated gate_denied_burst sg-0001 7"])
        h.advance("16m")
        #expect(h.summary.last == "16m resolved gate_denied_burst sg-0001 7")
    }

    @Test func clearAfterDefaultsToWithin() throws {
        var h = try Harness(
            """
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
        var h = try Harness(
            """
            rules:
              - { name: no_heartbeat, feed: fire_alarm, when: event == "heartbeat", absent_for: 1m }
            """, channels: piles)
        h.send("30s", "estate/C001/fire_alarm/fa-0001/event", ["event": "fault"])  // does not count
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

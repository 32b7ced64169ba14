import Testing
import VigilCore
@testable import VigilRules

/// The clock rules of SPEC §4 on a manual clock: each step gives an arrival
/// time and the engine's clock, and checks where the clock goes.
@Suite struct TimelineTests {
    let s: Millis = 1000
    func timeline() -> Timeline { Timeline(lateAfter: 10 * 1000, maxDelay: 3600 * 1000) }

    @Test func aTimelyReadingMovesTheClockToItsArrival() {
        var t = timeline()
        #expect(t.take(.reading(deviceTime: nil), arrival: 100 * s, clock: 90 * s) == 100 * s)
        #expect(t.take(.reading(deviceTime: 95 * s), arrival: 101 * s, clock: 100 * s) == 101 * s)  // 6 s old: not late
        #expect(!t.held)
    }

    @Test func aDeviceTimeAheadOfArrivalIsTimely() {
        var t = timeline()
        #expect(t.take(.reading(deviceTime: 500 * s), arrival: 100 * s, clock: 90 * s) == 100 * s)
        #expect(!t.held)
    }

    @Test func aLateReadingIsJudgedAtItsDeviceTimeAndHoldsTheClock() {
        var t = timeline()
        _ = t.take(.reading(deviceTime: nil), arrival: 100 * s, clock: 0)
        _ = t.take(.lost, arrival: 101 * s, clock: 100 * s)
        _ = t.take(.connected, arrival: 299 * s, clock: 101 * s)
        // The broker's backlog: device times 20 s, 50 s after the clock, arriving at 300 s.
        #expect(t.take(.reading(deviceTime: 120 * s), arrival: 300 * s, clock: 100 * s) == 120 * s)
        #expect(t.held)
        #expect(t.take(.reading(deviceTime: 150 * s), arrival: 300 * s, clock: 120 * s) == 150 * s)
        // Older than the clock: judged at the clock, which never goes back.
        #expect(t.take(.reading(deviceTime: 130 * s), arrival: 300 * s, clock: 150 * s) == 150 * s)
        // The next timely reading catches up.
        #expect(t.take(.reading(deviceTime: 299 * s), arrival: 301 * s, clock: 150 * s) == 301 * s)
        #expect(!t.held)
    }

    @Test func aReadingOlderThanMaxDelayHasAWrongClockAndIsTimely() {
        var t = timeline()
        #expect(t.take(.reading(deviceTime: 0), arrival: 7200 * s, clock: 7000 * s) == 7200 * s)
        #expect(!t.held)
        #expect(t.isLate(deviceTime: 7200 * s - 3600 * s, arrival: 7200 * s))  // exactly max_delay: still late
        #expect(!t.isLate(deviceTime: 7200 * s - 10 * s, arrival: 7200 * s))  // exactly late_after: timely
    }

    @Test func whileHeldDeadLettersAndAcknowledgementsDoNotMoveTheClock() {
        var t = timeline()
        _ = t.take(.reading(deviceTime: 50 * s), arrival: 300 * s, clock: 0)
        #expect(t.take(.other, arrival: 301 * s, clock: 50 * s) == nil)
        #expect(t.held)
        var free = timeline()
        #expect(free.take(.other, arrival: 301 * s, clock: 50 * s) == 301 * s)
    }

    @Test func idlenessCatchesTheClockUp() {
        var t = timeline()
        _ = t.take(.reading(deviceTime: 50 * s), arrival: 300 * s, clock: 0)
        // A late reading arriving 10 s after the previous record: the clock first moves to its arrival.
        #expect(t.take(.reading(deviceTime: 60 * s), arrival: 310 * s, clock: 50 * s) == 310 * s)
        #expect(t.held)
        // The daemon between records: the wall clock takes over once nothing arrived for late_after.
        let early = t.followsWall(315 * s), idle = t.followsWall(320 * s)
        #expect(!early && idle)
        #expect(!t.held)
    }

    @Test func theClockStandsStillWhileBlindAndWaitsForTheBacklogAfter() {
        var t = timeline()
        _ = t.take(.reading(deviceTime: nil), arrival: 100 * s, clock: 0)
        #expect(t.take(.lost, arrival: 110 * s, clock: 100 * s) == 110 * s)
        #expect(t.blind)
        #expect(t.take(.other, arrival: 200 * s, clock: 110 * s) == nil)  // an acknowledgement while blind
        let follows = t.followsWall(10_000 * s)
        #expect(!follows)
        // `connected` does not move the clock, however long the outage.
        #expect(t.take(.connected, arrival: 900 * s, clock: 110 * s) == nil)
        #expect(!t.blind && t.held)
        // The backlog plays out in device time, a dead letter in it moves nothing.
        #expect(t.take(.reading(deviceTime: 300 * s), arrival: 900 * s, clock: 110 * s) == 300 * s)
        #expect(t.take(.other, arrival: 900 * s, clock: 300 * s) == nil)
        #expect(t.take(.reading(deviceTime: 899 * s), arrival: 901 * s, clock: 300 * s) == 901 * s)
    }

    @Test func deviceTimesParseAsTheSpecSays() {
        #expect(DeviceTime.parse(.number(1_795_852_800_000)) == 1_795_852_800_000)
        #expect(DeviceTime.parse(.number(1.5)) == nil)
        #expect(DeviceTime.parse(.string("2026-11-28T08:00:00.123456Z")) == Time.parse("2026-11-28T08:00:00.123Z"))
        #expect(DeviceTime.parse(.string("2026-11-28T16:00:00+08:00")) == Time.parse("2026-11-28T08:00:00Z"))
        #expect(DeviceTime.parse(.string("2026-11-28 08:00")) == nil)
        #expect(DeviceTime.parse(.string("2026-11-28T08:00:00")) == nil)  // no offset
        #expect(DeviceTime.parse(.bool(true)) == nil)
        let path = DeviceTime.Path("meta.sent_at")!
        #expect(path.time(in: JSONObject([("meta", .object(JSONObject([("sent_at", .number(5))])))])) == 5)
        #expect(DeviceTime.Path("payload.samples[1].t")?.steps == [.key("samples"), .index(1), .key("t")])
        #expect(DeviceTime.Path("a..b") == nil)
    }
}

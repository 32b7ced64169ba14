import Testing
import VigilConfig
import VigilCore
import VigilIngest
@testable import VigilRules

/// An evaluator fed like `vigil replay`: records at offsets from a start time.
struct Feed {
    var evaluator: Evaluator
    var events: [IncidentEvent] = []
    let t0: Millis
    let dir: TempDir

    init(_ rules: String, channels: String, lateAfter: String = "10s") throws {
        let (set, diags, dir) = loadRules(["rules.yaml": rules])
        if !diags.isEmpty { throw Diagnostics(diags) }
        let (registry, d) = ChannelRegistry.parse(channels, path: "channels.csv", knownFeeds: standardFeeds)
        if !d.isEmpty { throw Diagnostics(d) }
        self.dir = dir
        t0 = Time.parse("2026-01-01T00:00:00Z")!
        let decoder = ReadingDecoder(subscriptions: standardSubscriptions, registry: registry, unknownChannels: .accept, limits: .init())
        evaluator = Evaluator(
            engine: RuleEngine(ruleSet: set, registry: registry), decoder: decoder,
            timeline: Timeline(lateAfter: Harness.offset(lateAfter)), deviceTime: DeviceTime.Path("ts"))
        evaluator.engine.start(at: t0)
    }

    func at(_ s: String) -> Millis { t0 + Harness.offset(s) }

    mutating func send(_ at: String, _ topic: String, _ payload: JSONValue) {
        var bytes = Array(payload.description.utf8)
        _ = bytes.withUnsafeMutableBufferPointer { evaluator.message(topic: topic, payload: UnsafeBufferPointer($0), arrival: self.at(at), into: &events) }
    }

    mutating func mark(_ at: String, _ mark: BrokerMark) { evaluator.mark(mark, arrival: self.at(at), into: &events) }

    mutating func ack(_ at: String, _ id: String, by: String, note: String? = nil) -> RuleEngine.AcknowledgeResult {
        evaluator.acknowledge(Acknowledgement(incidentID: id, by: by, note: note), arrival: self.at(at), into: &events)
    }

    mutating func advance(_ to: String) { evaluator.engine.advance(to: at(to), into: &events) }

    var summary: [String] {
        events.map { "\(Units.formatDuration($0.at - t0)) \($0.type.shortName) \($0.rule) \($0.channel ?? "-")" }
    }
}

let silence = """
    rules:
      - name: silent
        feed: fire_alarm
        absent_for: 20s
        severity: minor
    """

let panels = """
    channel,feed,community
    fa-03,fire_alarm,C001
    fa-01,fire_alarm,C001
    fa-02,fire_alarm,C001
    """

@Suite struct BlindTimeTests {
    func heartbeat(_ f: inout Feed, _ at: String, _ channel: String) {
        f.send(at, "estate/C001/fire_alarm/\(channel)/event", ["event": "heartbeat"])
    }

    @Test func anOutageIsNotSilenceButAQuietChannelStillOpensInConnectedTime() throws {
        var f = try Feed(silence, channels: panels)
        for t in stride(from: 0, through: 10, by: 5) {
            for c in ["fa-01", "fa-02"] { heartbeat(&f, "\(t)s", c) }
            if t == 0 { heartbeat(&f, "2s", "fa-03") }  // fa-03 goes quiet here
        }
        f.mark("12s", .lost)
        f.advance("50s")  // blind: the clock stands still
        #expect(f.events.isEmpty)
        f.mark("60s", .connected)
        for t in stride(from: 61, through: 100, by: 5) {
            for c in ["fa-01", "fa-02"] { heartbeat(&f, "\(t)s", c) }
        }
        // fa-03: 10 s of silence before the outage, 10 s after it.
        #expect(f.summary == ["1m10s opened silent fa-03"])
        #expect(f.events[0].startedAt == f.at("2s"))
    }

    @Test func silencesDueTogetherOpenInTheOrderOfTheirKeys() throws {
        var f = try Feed(silence, channels: panels)
        f.advance("30s")
        #expect(f.summary == ["20s opened silent fa-01", "20s opened silent fa-02", "20s opened silent fa-03"])
        var g = try Feed(silence, channels: panels)
        for c in ["fa-03", "fa-02", "fa-01"] { heartbeat(&g, "5s", c) }
        g.advance("30s")
        #expect(g.summary == ["25s opened silent fa-01", "25s opened silent fa-02", "25s opened silent fa-03"])
    }

    @Test func blindStateSurvivesACheckpoint() throws {
        var f = try Feed(silence, channels: panels)
        heartbeat(&f, "2s", "fa-01")
        f.mark("5s", .lost)
        var timeline = Timeline(lateAfter: 10_000)
        let bytes = f.evaluator.engine.checkpoint(timeline: f.evaluator.timeline)
        let (restored, _) = try #require(
            RuleEngine.restore(
                bytes, ruleSet: f.evaluator.engine.ruleSet,
                registry: f.evaluator.engine.registry, timeline: &timeline))
        #expect(restored.isBlind && timeline.blind)
        #expect(restored.checkpoint(timeline: timeline) == bytes)
        f.evaluator.engine = restored
        f.evaluator.timeline = timeline
        f.mark("35s", .connected)
        f.advance("60s")
        // fa-02, fa-03 were last seen at 0 s, fa-01 at 2 s; 5 s of connected silence before the outage.
        #expect(f.summary == ["50s opened silent fa-02", "50s opened silent fa-03", "52s opened silent fa-01"])
    }
}

let alarm = """
    rules:
      - name: fire
        feed: fire_alarm
        when: event == "alarm"
        clear_when: event == "reset"
        severity: critical
        remind_every: 5m
      - name: debris
        feed: fire_alarm
        when: event == "fault"
        clear_after: 10m
        remind_every: 5m
    """

@Suite struct AcknowledgementTests {
    func alarmAt(_ f: inout Feed, _ at: String, _ event: String) {
        f.send(at, "estate/C001/fire_alarm/fa-01/event", ["event": .string(event)])
    }

    @Test func remindersStopWhenAcknowledged() throws {
        var f = try Feed(alarm, channels: panels)
        alarmAt(&f, "0s", "alarm")
        f.advance("11m")
        let id = f.events[0].incidentID
        #expect(f.ack("12m", id, by: "张三", note: "on my way") == .acknowledged)
        #expect(f.ack("13m", id, by: "李四") == .already)
        f.advance("20m")
        alarmAt(&f, "21m", "reset")
        #expect(
            f.summary == [
                "0s opened fire fa-01", "5m reminded fire fa-01", "10m reminded fire fa-01",
                "12m acknowledged fire fa-01", "21m resolved fire fa-01",
            ])
        #expect(f.events[1].reminder == 1 && f.events[2].reminder == 2)
        let acked = f.events[3]
        #expect(acked.note == "on my way" && acked.acknowledgedBy == "张三" && acked.acknowledgedAt == f.at("12m"))
        #expect(acked.reading == nil)
        #expect(f.events[4].acknowledgedBy == "张三")
        #expect(f.events[0].acknowledgedAt == nil)
        #expect(acked.jsonLine().contains(#""note":"on my way""#))
        #expect(!f.events[0].jsonLine().contains(#""note""#) && !f.events[0].jsonLine().contains(#""reminder""#))
        #expect(f.ack("22m", id, by: "张三") == .notOpen)
        #expect(f.ack("22m", "no-such-incident", by: "张三") == .notOpen)
    }

    @Test func noReminderAtTheInstantTheIncidentResolves() throws {
        var f = try Feed(alarm, channels: panels)
        alarmAt(&f, "0s", "fault")
        f.advance("30m")
        #expect(f.summary == ["0s opened debris fa-01", "5m reminded debris fa-01", "10m resolved debris fa-01"])
    }

    @Test func anAcknowledgementSurvivesACheckpoint() throws {
        var f = try Feed(alarm, channels: panels)
        alarmAt(&f, "0s", "alarm")
        #expect(f.ack("1m", f.events[0].incidentID, by: "王五") == .acknowledged)
        var timeline = Timeline()
        let (restored, _) = try #require(
            RuleEngine.restore(
                f.evaluator.engine.checkpoint(), ruleSet: f.evaluator.engine.ruleSet,
                registry: f.evaluator.engine.registry, timeline: &timeline))
        f.evaluator.engine = restored
        f.advance("20m")
        alarmAt(&f, "21m", "reset")
        #expect(f.summary == ["0s opened fire fa-01", "1m acknowledged fire fa-01", "21m resolved fire fa-01"])
        #expect(f.events.last?.acknowledgedBy == "王五")
    }
}

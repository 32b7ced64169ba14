import VigilCore

/// What arrives — messages, broker marks, acknowledgements — through the
/// clock rules (`Timeline`) into the engine. The daemon, crash recovery,
/// `vigil replay` and `vigil test` all evaluate through this one type, so
/// the same records give the same events, byte for byte.
public struct Evaluator: Sendable {
    public var engine: RuleEngine
    public var timeline: Timeline
    public var decoder: ReadingDecoder
    /// Where a payload carries the device's own time (`readings.device_time`).
    public let deviceTime: DeviceTime.Path?

    public init(engine: RuleEngine, decoder: ReadingDecoder, timeline: Timeline, deviceTime: DeviceTime.Path?) {
        self.engine = engine
        self.decoder = decoder
        self.timeline = timeline
        self.deviceTime = deviceTime
    }

    /// What became of a message.
    public enum Taken {
        /// A reading of `feed`, evaluated at clock time `at` (its device time
        /// when it was late); `deviceTime`: the time the payload carries, when
        /// it carries one. (The feed, not the reading: a caller counts it, and
        /// a reading is a dozen references to copy for every message.)
        case reading(feed: String, at: Millis, deviceTime: Millis?)
        case dead(DeadLetter)
    }

    /// A live or journaled message arriving at `arrival`. `judgedAt`, when
    /// given, is the time the daemon judged it at (recovery reads it from the journal).
    public mutating func message(
        topic: String, payload: UnsafeBufferPointer<UInt8>, arrival: Millis, judgedAt: Millis? = nil,
        into out: inout [IncidentEvent]
    ) -> Taken {
        take(decoder.decode(topic: topic, payload: payload, at: arrival), arrival: arrival, judgedAt: judgedAt, into: &out)
    }

    /// A message of a recording.
    public mutating func message(_ record: RecordedMessage, into out: inout [IncidentEvent]) -> Taken {
        take(decoder.decode(record: record), arrival: record.ts, judgedAt: nil, into: &out)
    }

    mutating func take(
        _ decoded: Result<Reading, DeadLetter>, arrival: Millis, judgedAt: Millis?,
        into out: inout [IncidentEvent]
    ) -> Taken {
        if !engine.started { engine.start(at: arrival) }
        switch decoded {
        case .success(let reading):
            let device = deviceTime?.time(in: reading.payload)
            let t = timeline.take(.reading(deviceTime: device), arrival: arrival, clock: engine.now) ?? engine.now
            engine.process(reading, at: judgedAt ?? t, into: &out)
            return .reading(feed: reading.feed, at: engine.now, deviceTime: device)
        case .failure(let dead):
            if let t = timeline.take(.other, arrival: arrival, clock: engine.now) { engine.advance(to: t, into: &out) }
            return .dead(dead)
        }
    }

    /// The broker connection was lost, or is back (SPEC §4, blind time).
    public mutating func mark(_ mark: BrokerMark, arrival: Millis, into out: inout [IncidentEvent]) {
        if !engine.started { engine.start(at: arrival) }
        switch mark {
        case .lost:
            if let t = timeline.take(.lost, arrival: arrival, clock: engine.now) { engine.advance(to: t, into: &out) }
            engine.brokerLost(at: arrival)
        case .connected:
            _ = timeline.take(.connected, arrival: arrival, clock: engine.now)
            engine.brokerConnected(at: arrival)
        }
    }

    /// A person's acknowledgement arriving at `arrival`.
    public mutating func acknowledge(_ ack: Acknowledgement, arrival: Millis, into out: inout [IncidentEvent]) -> RuleEngine.AcknowledgeResult {
        if !engine.started { engine.start(at: arrival) }
        if let t = timeline.take(.other, arrival: arrival, clock: engine.now) { engine.advance(to: t, into: &out) }
        return engine.acknowledge(ack, into: &out)
    }

    /// An acknowledgement of the open incident of `rule` for `channel` (rule
    /// tests name incidents so); `.notOpen` when there is none.
    public mutating func acknowledge(
        rule: String, channel: String, by: String, note: String?, arrival: Millis,
        into out: inout [IncidentEvent]
    ) -> RuleEngine.AcknowledgeResult {
        if !engine.started { engine.start(at: arrival) }
        if let t = timeline.take(.other, arrival: arrival, clock: engine.now) { engine.advance(to: t, into: &out) }
        guard let id = engine.openIncidentID(rule: rule, channel: channel) else { return .notOpen }
        return engine.acknowledge(Acknowledgement(incidentID: id, by: by, note: note), into: &out)
    }

    /// The daemon between records: while the clock follows the wall clock,
    /// the timers due by `wall` fire (at their due times).
    public mutating func follow(wall: Millis, into out: inout [IncidentEvent]) {
        guard engine.started, !engine.isBlind, timeline.followsWall(wall) else { return }
        while let due = engine.nextDeadline(), due <= wall { engine.advance(to: due, into: &out) }
    }

    /// Whether a message may come now (not between a `lost` and its `connected`).
    public var isBlind: Bool { timeline.blind }
}

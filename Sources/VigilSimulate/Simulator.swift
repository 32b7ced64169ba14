import Foundation
import VigilCore

/// A channel the simulator publishes for.
public struct SimChannel: Sendable {
    public var id: String
    public var feed: String
    public var community: String

    public init(id: String, feed: String, community: String) {
        self.id = id; self.feed = feed; self.community = community
    }

    /// The channels of a registry, optionally only those of some feeds.
    public static func from(_ registry: ChannelRegistry, feeds: Set<String>? = nil) -> [SimChannel] {
        registry.channels.compactMap { ch in
            guard feeds?.contains(ch.feed) ?? true else { return nil }
            return SimChannel(id: ch.id, feed: ch.feed, community: ch.info["community"]?.stringValue ?? "C000")
        }
    }
}

/// One message to publish.
public struct SimMessage: Sendable {
    public enum Body: Sendable {
        /// The members of a JSON object, without braces; the device's `ts` goes first.
        case fields(String)
        /// Bytes that are not a JSON object, and the dead-letter reason they should get.
        case raw([UInt8], reason: String)
    }

    public var topic: String
    public var body: Body

    /// The payload as published, stamped with the device time `ts`.
    public func payload(ts: Millis) -> [UInt8] {
        switch body {
        case .fields(let f): Array("{\"ts\":\(ts),\(f)}".utf8)
        case .raw(let b, _): b
        }
    }

    /// The message as a recorded line (SPEC §5).
    public func recordedLine(ts: Millis) -> String {
        let topicJSON = JSONValue.string(topic).description
        switch body {
        case .fields(let f):
            return "{\"ts\":\(ts),\"topic\":\(topicJSON),\"payload\":{\"ts\":\(ts),\(f)}}"
        case .raw(let b, _):
            if let text = String(validating: b, as: UTF8.self) {
                return "{\"ts\":\(ts),\"topic\":\(topicJSON),\"payload_text\":\(JSONValue.string(text).description)}"
            }
            return "{\"ts\":\(ts),\"topic\":\(topicJSON),\"payload_base64\":\"\(Data(b).base64EncodedString())\"}"
        }
    }
}

/// One step of the stream: the message, its virtual time, and the anomalies
/// that began with it.
public struct SimStep: Sendable {
    public var at: Millis
    public var message: SimMessage
    public var started: [ManifestEntry]
}

/// Realistic traffic for a set of channels at a fixed total rate, with
/// anomalies injected on a plan. Pure and deterministic: step k happens at
/// virtual time `start + k / rate`, and everything it does depends only on the
/// seed and k, so a live run and a recording with the same seed carry the same
/// messages in the same order.
public struct Simulator: Sendable {
    public struct Options: Sendable {
        public var rate: Double
        public var seed: UInt64
        public var plan: AnomalyPlan
        /// How long a `silent` anomaly keeps its channel quiet.
        public var silence: Millis
        /// Virtual start; its time of day (Asia/Shanghai) shapes the gates' peaks.
        public var start: Millis
        /// Virtual end, when known: anomalies that could not play out before it are not started.
        public var end: Millis?

        public init(
            rate: Double, seed: UInt64, plan: AnomalyPlan, silence: Millis = 660_000,
            start: Millis = Simulator.defaultStart, end: Millis? = nil
        ) {
            self.rate = rate; self.seed = seed; self.plan = plan; self.silence = silence; self.start = start; self.end = end
        }
    }

    /// 2026-11-28 07:30 in Asia/Shanghai: the morning peak at the gates.
    public static let defaultStart: Millis = 1_795_822_200_000
    /// A channel that carried an anomaly takes no other for this long after it
    /// played out (longer than any shipped rule's window or clear_after), so
    /// each anomaly opens its own incident.
    static let cooldown: Double = 31 * 60_000

    enum Action: Sendable {
        case telemetry, alarm, reset, fault, faultCleared, ebike, fallingObject
        case denied, forced, held, doorClosed, offline, online
        case malformed(Int)
    }

    struct Urgent: Sendable {
        var due: Double
        var seq: Int
        var channel: Int
        var action: Action
    }

    /// What the simulator remembers about a channel.
    struct State: Sendable {
        var busyUntil: Double = 0
        var silentUntil: Double = 0
        var last: Double = 0
        // charging pile
        var temperature = 30.0
        var current = 0.0
        var charging = false
        var sessionMinutes = 0.0
        var sessionLength = 0.0
        var idleUntil = 0.0
        var hotStart = 0.0
        var hotUntil = 0.0
        var overUntil = 0.0
        // smart gate
        var denied: [Double] = []
        var doorOpen = false
        // elevator
        var elevator = 1
    }

    public let channels: [SimChannel]
    public let options: Options
    public private(set) var sent = 0
    public private(set) var injected = 0
    /// Anomalies the plan asked for that could not be placed (no free channel, or too close to the end).
    public private(set) var skipped: [AnomalyKind: Int] = [:]

    var rng: SimRandom
    var states: [State]
    var heap = MinHeap<Due>()
    var urgent: [Urgent] = []
    var urgentSeq = 0
    var nextAnomaly: [(kind: AnomalyKind, at: Double, interval: Double)] = []
    var pools: [AnomalyKind: [Int]] = [:]
    let baseWeight: Double

    public init(channels: [SimChannel], options: Options) throws(SimulateError) {
        guard !channels.isEmpty else { throw SimulateError("no channels to simulate") }
        guard options.rate > 0, options.rate.isFinite else { throw SimulateError("--rate must be a positive number of messages per second") }
        self.channels = channels
        self.options = options
        rng = SimRandom(seed: options.seed)
        states = Array(repeating: State(), count: channels.count)
        baseWeight = channels.reduce(0) { $0 + Simulator.weight(feed: $1.feed) }
        let start = Double(options.start)
        for i in channels.indices {
            let period = period(of: i, at: start)
            heap.push(Due(at: start + rng.unit() * period, channel: i))
            states[i].last = start
            states[i].elevator = 1 + rng.below(4)
            if channels[i].feed == "charging_pile" {
                states[i].charging = rng.chance(0.5)
                states[i].sessionLength = rng.uniform(45, 420)
                states[i].sessionMinutes = states[i].charging ? rng.uniform(0, states[i].sessionLength * 0.8) : 0
                states[i].current = states[i].charging ? rng.uniform(10, 15) : 0
                states[i].temperature = states[i].charging ? rng.uniform(36, 42) : rng.uniform(20, 27)
                states[i].idleUntil = start + rng.uniform(0, 30) * 60_000
            }
        }
        for (n, kind) in AnomalyKind.allCases.enumerated() {
            guard let perMinute = options.plan.perMinute[kind] else { continue }
            let pool = channels.indices.filter { kind.feeds?.contains(channels[$0].feed) ?? true }
            guard !pool.isEmpty else { continue }
            pools[kind] = pool
            nextAnomaly.append((kind, start + 2000 + Double(n) * 700, 60_000 / perMinute))
        }
    }

    /// Relative message rate of a channel of a feed: charging piles report telemetry most often.
    static func weight(feed: String) -> Double {
        switch feed {
        case "charging_pile": 3
        case "smart_gate": 1.5
        default: 1
        }
    }

    /// Gates follow the day: peaks at 07:00-09:00 and 17:30-19:30, quiet at night (Asia/Shanghai).
    static func gateFactor(at t: Double) -> Double {
        let minute = Int((t / 60_000 + 8 * 60).truncatingRemainder(dividingBy: 1440))
        switch minute {
        case 420..<540, 1050..<1170: return 2.5
        case 1380..., 0..<360: return 0.3
        default: return 1
        }
    }

    func period(of i: Int, at t: Double) -> Double {
        var w = Simulator.weight(feed: channels[i].feed)
        if channels[i].feed == "smart_gate" { w *= Simulator.gateFactor(at: t) }
        return 1000 * baseWeight / (options.rate * w)
    }

    /// The next message.
    public mutating func next() -> SimStep {
        let now = Double(options.start) + Double(sent) * 1000 / options.rate
        sent += 1
        var started: [ManifestEntry] = []
        startAnomalies(now: now, into: &started)
        if let u = urgent.first, u.due <= now {
            urgent.removeFirst()
            return SimStep(at: Millis(now), message: message(for: u.action, channel: u.channel, now: now), started: started)
        }
        while true {
            // The heap always holds every channel, so it is never empty here.
            guard let due = heap.pop() else { preconditionFailure("the schedule holds every channel") }
            let i = due.channel
            heap.push(Due(at: due.at + period(of: i, at: due.at) * rng.uniform(0.9, 1.1), channel: i))
            if states[i].silentUntil > now { continue }
            return SimStep(at: Millis(now), message: normal(i, now: now), started: started)
        }
    }

    // MARK: anomalies

    mutating func startAnomalies(now: Double, into started: inout [ManifestEntry]) {
        for n in nextAnomaly.indices where nextAnomaly[n].at <= now {
            let kind = nextAnomaly[n].kind
            nextAnomaly[n].at += nextAnomaly[n].interval * rng.uniform(0.8, 1.2)
            if let end = options.end, now + margin(kind) > Double(end) {
                skipped[kind, default: 0] += 1
                continue
            }
            guard let i = freeChannel(for: kind, now: now) else {
                skipped[kind, default: 0] += 1
                continue
            }
            var entry = ManifestEntry(at: Millis(now), channel: channels[i].id, feed: channels[i].feed, anomaly: kind)
            let activeFor = begin(kind, on: i, now: now, reason: &entry.reason)
            if kind != .malformed { states[i].busyUntil = now + activeFor + Simulator.cooldown }
            injected += 1
            started.append(entry)
        }
    }
}

/// When a channel's next message is due; ties by channel index keep the order deterministic.
struct Due: Comparable, Sendable {
    var at: Double
    var channel: Int
    static func < (a: Due, b: Due) -> Bool { (a.at, a.channel) < (b.at, b.channel) }
}

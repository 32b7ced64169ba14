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

        public init(rate: Double, seed: UInt64, plan: AnomalyPlan, silence: Millis = 660_000,
                    start: Millis = Simulator.defaultStart, end: Millis? = nil) {
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

    /// How long before the end an anomaly must start to become an incident in time.
    func margin(_ kind: AnomalyKind) -> Double {
        switch kind {
        case .overheat: 40_000
        case .overcurrent: 15_000
        case .deniedBurst: 50_000
        case .silent: Double(options.silence)
        default: 2000
        }
    }

    mutating func freeChannel(for kind: AnomalyKind, now: Double) -> Int? {
        guard let pool = pools[kind] else { return nil }
        func free(_ i: Int) -> Bool { kind == .malformed || (states[i].busyUntil <= now && states[i].silentUntil <= now) }
        for _ in 0..<16 {
            let i = pool[rng.below(pool.count)]
            if free(i) { return i }
        }
        let from = rng.below(pool.count)
        for k in 0..<pool.count where free(pool[(from + k) % pool.count]) { return pool[(from + k) % pool.count] }
        return nil
    }

    mutating func schedule(_ action: Action, on i: Int, at due: Double) {
        let u = Urgent(due: due, seq: urgentSeq, channel: i, action: action)
        urgentSeq += 1
        let pos = urgent.firstIndex { ($0.due, $0.seq) > (u.due, u.seq) } ?? urgent.count
        urgent.insert(u, at: pos)
    }

    /// Sets the anomaly going; returns how long it stays active.
    mutating func begin(_ kind: AnomalyKind, on i: Int, now: Double, reason: inout String?) -> Double {
        switch kind {
        case .overheat:
            states[i].hotStart = now
            states[i].hotUntil = now + 45_000
            schedule(.telemetry, on: i, at: now)
            return 90_000
        case .overcurrent:
            states[i].overUntil = now + 20_000
            schedule(.telemetry, on: i, at: now)
            return 20_000
        case .fireAlarm:
            return episode(.alarm, then: .reset, after: 20_000..<40_000, on: i, now: now)
        case .panelFault:
            return episode(.fault, then: .faultCleared, after: 30_000..<60_000, on: i, now: now)
        case .ebike:
            schedule(.ebike, on: i, at: now)
            return 0
        case .fallingObject:
            schedule(.fallingObject, on: i, at: now)
            return 0
        case .deniedBurst:
            var t = now
            for _ in 0..<6 {
                schedule(.denied, on: i, at: t)
                t += rng.uniform(4000, 8000)
            }
            return t - now
        case .doorForced:
            schedule(.forced, on: i, at: now)
            return 0
        case .doorHeld:
            return episode(.held, then: .doorClosed, after: 20_000..<40_000, on: i, now: now)
        case .offline:
            let back = episode(.offline, then: .online, after: 20_000..<30_000, on: i, now: now)
            states[i].silentUntil = now + back
            return back
        case .silent:
            states[i].silentUntil = now + Double(options.silence)
            return Double(options.silence)
        case .malformed:
            let variant = rng.below(Simulator.malformedReasons.count)
            reason = Simulator.malformedReasons[variant]
            schedule(.malformed(variant), on: i, at: now)
            return 0
        }
    }

    /// An anomaly that starts now and ends with a second message a random time later; returns that time.
    mutating func episode(_ first: Action, then last: Action, after: Range<Double>, on i: Int, now: Double) -> Double {
        let end = rng.uniform(after.lowerBound, after.upperBound)
        schedule(first, on: i, at: now)
        schedule(last, on: i, at: now + end)
        return end
    }

    /// The malformed payloads' dead-letter reasons, by variant.
    static let malformedReasons = ["invalid_json", "not_object", "invalid_utf8", "too_deep"]

    // MARK: messages

    func topic(_ i: Int, _ leaf: String) -> String {
        "estate/\(channels[i].community)/\(channels[i].feed)/\(channels[i].id)/\(leaf)"
    }

    func eventTopic(_ i: Int) -> String { topic(i, channels[i].feed == "charging_pile" ? "telemetry" : "event") }

    mutating func message(for action: Action, channel i: Int, now: Double) -> SimMessage {
        let fields: String
        switch action {
        case .telemetry: return pile(i, now: now)
        case .alarm:
            fields = "\"event\":\"alarm\",\"zone\":\"Z\(1 + rng.below(8))\",\"detector\":\"\(rng.pick(["smoke", "heat", "manual_call_point"]))\""
        case .reset: fields = "\"event\":\"reset\""
        case .fault:
            fields = "\"event\":\"fault\",\"zone\":\"Z\(1 + rng.below(8))\",\"fault\":\"\(rng.pick(["loop open", "battery low", "earth fault", "detector missing"]))\""
        case .faultCleared: fields = "\"event\":\"fault_cleared\""
        case .ebike:
            fields = "\"event\":\"ebike_detected\",\"confidence\":\(fixed(rng.uniform(0.82, 0.97), 2)),\"elevator\":\"E\(states[i].elevator)\",\"floor\":1"
        case .fallingObject:
            fields = "\"event\":\"falling_object\",\"confidence\":\(fixed(rng.uniform(0.70, 0.95), 2)),\"floor_estimate\":\(3 + rng.below(28))"
        case .denied: fields = "\"event\":\"access\",\"result\":\"denied\",\"method\":\"\(rng.pick(["card", "face", "qr"]))\""
        case .forced: fields = "\"event\":\"door_forced\""
        case .held: fields = "\"event\":\"door_held_open\",\"held_s\":\(150 + rng.below(151))"
        case .doorClosed: fields = "\"event\":\"door_closed\""
        case .offline: return SimMessage(topic: topic(i, "status"), body: .fields("\"status\":\"offline\""))
        case .online: return SimMessage(topic: topic(i, "status"), body: .fields("\"status\":\"online\""))
        case .malformed(let variant):
            let bytes: [UInt8]
            switch variant {
            case 0: bytes = Array("{\"event\":\"heartbeat\",\"zo".utf8)
            case 1: bytes = Array("[1,2,3]".utf8)
            case 2: bytes = Array("{\"event\":\"".utf8) + [0xFF, 0xFE] + Array("\"}".utf8)
            default: bytes = Array(String(repeating: "{\"a\":", count: 40).utf8) + Array("1".utf8) + Array(repeating: UInt8(ascii: "}"), count: 40)
            }
            return SimMessage(topic: eventTopic(i), body: .raw(bytes, reason: Simulator.malformedReasons[variant]))
        }
        return SimMessage(topic: eventTopic(i), body: .fields(fields))
    }

    /// A channel's own traffic.
    mutating func normal(_ i: Int, now: Double) -> SimMessage {
        if rng.chance(0.004) {
            // Devices announce themselves now and then (reconnects, LWT-style status).
            return SimMessage(topic: topic(i, "status"), body: .fields("\"status\":\"online\""))
        }
        switch channels[i].feed {
        case "charging_pile": return pile(i, now: now)
        case "smart_gate": return gate(i, now: now)
        case "fire_alarm":
            return SimMessage(topic: eventTopic(i), body: .fields(
                "\"event\":\"heartbeat\",\"panel\":\"normal\",\"battery_v\":\(fixed(rng.uniform(26.8, 27.6), 1))"))
        case "elevator_ebike":
            // Pushchairs and scooters: detections the cameras are unsure of.
            if rng.chance(0.03) {
                return SimMessage(topic: eventTopic(i), body: .fields(
                    "\"event\":\"ebike_detected\",\"confidence\":\(fixed(rng.uniform(0.30, 0.58), 2)),\"elevator\":\"E\(states[i].elevator)\",\"floor\":\(1 + rng.below(3))"))
            }
            return SimMessage(topic: eventTopic(i), body: .fields(
                "\"event\":\"heartbeat\",\"elevator\":\"E\(states[i].elevator)\",\"floor\":\(1 + rng.below(30)),\"occupancy\":\(rng.below(7))"))
        case "falling_object":
            // Birds and leaves.
            if rng.chance(0.005) {
                return SimMessage(topic: eventTopic(i), body: .fields(
                    "\"event\":\"falling_object\",\"confidence\":\(fixed(rng.uniform(0.20, 0.50), 2)),\"floor_estimate\":\(3 + rng.below(28))"))
            }
            return SimMessage(topic: eventTopic(i), body: .fields("\"event\":\"heartbeat\",\"lens\":\"clear\""))
        default:
            return SimMessage(topic: topic(i, "status"), body: .fields("\"status\":\"online\""))
        }
    }

    /// Pile telemetry: a charge session's lifecycle; current follows the
    /// session, temperature follows current with a two-minute time constant.
    mutating func pile(_ i: Int, now: Double) -> SimMessage {
        var s = states[i]
        let dt = max(0, now - s.last)
        s.last = now
        if s.charging {
            s.sessionMinutes += dt / 60_000
            if s.sessionMinutes >= s.sessionLength {
                s.charging = false
                s.idleUntil = now + rng.uniform(5, 90) * 60_000
            }
        } else if now >= s.idleUntil {
            s.charging = true
            s.sessionMinutes = 0
            s.sessionLength = rng.uniform(45, 420)
            s.current = rng.uniform(10, 15)
        }
        if s.charging {
            s.current = min(16, max(8, s.current + rng.uniform(-0.4, 0.4)))
            // The last fifth of a session tapers off.
            if s.sessionMinutes > s.sessionLength * 0.8 { s.current *= 0.98 }
        } else {
            s.current = 0
        }
        var current = s.current
        if now < s.overUntil { current = rng.uniform(36, 42) }
        let ambient = 22 + 4 * sin((now / 3_600_000 + 8) * .pi / 12)
        let target = ambient + current * 1.2
        if now < s.hotUntil {
            s.temperature = 66 + 14 * (now - s.hotStart) / 45_000 + rng.uniform(0, 0.5)
        } else {
            let tau = s.temperature > 50 ? 20_000.0 : 120_000.0
            s.temperature += (target - s.temperature) * (1 - exp(-dt / tau)) + rng.uniform(-0.3, 0.3)
        }
        states[i] = s
        let voltage = rng.uniform(214, 232)
        let session = s.charging ? "charging" : "idle"
        return SimMessage(topic: eventTopic(i), body: .fields(
            "\"voltage_v\":\(fixed(voltage, 1)),\"current_a\":\(fixed(current, 1)),\"temperature_c\":\(fixed(s.temperature, 1)),"
                + "\"power_kw\":\(fixed(voltage * current / 1000, 2)),\"session\":\"\(session)\",\"session_minutes\":\(Int(s.sessionMinutes))"))
    }

    /// Gate events: accesses (some denied, never five within two minutes on
    /// their own), doors held briefly and closed.
    mutating func gate(_ i: Int, now: Double) -> SimMessage {
        if states[i].doorOpen {
            states[i].doorOpen = false
            return SimMessage(topic: eventTopic(i), body: .fields("\"event\":\"door_closed\""))
        }
        let r = rng.unit()
        if r < 0.9 {
            states[i].denied.removeAll { now - $0 >= 150_000 }
            var result = "granted"
            if rng.chance(0.12), states[i].denied.count < 2 {
                result = "denied"
                states[i].denied.append(now)
            }
            let method = r < 0.45 ? "face" : r < 0.77 ? "card" : "qr"
            return SimMessage(topic: eventTopic(i), body: .fields("\"event\":\"access\",\"result\":\"\(result)\",\"method\":\"\(method)\""))
        }
        states[i].doorOpen = true
        return SimMessage(topic: eventTopic(i), body: .fields("\"event\":\"door_held_open\",\"held_s\":\(15 + rng.below(76))"))
    }
}

/// `x` with `digits` decimals and no trailing noise.
func fixed(_ x: Double, _ digits: Int) -> String {
    let scale = digits == 1 ? 10.0 : 100.0
    let v = (x * scale).rounded() / scale
    if v == v.rounded() { return String(Int(v)) }
    return String(v)
}

/// When a channel's next message is due; ties by channel index keep the order deterministic.
struct Due: Comparable, Sendable {
    var at: Double
    var channel: Int
    static func < (a: Due, b: Due) -> Bool { (a.at, a.channel) < (b.at, b.channel) }
}

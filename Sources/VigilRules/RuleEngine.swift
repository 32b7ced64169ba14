import CPrefetch
import Crypto
import VigilCore

/// The rule engine: a pure state machine. It takes readings and time and
/// returns incident events; it has no clock of its own and does no I/O, so
/// `replay`, `test` and `run` drive the same code from a file, a test or the broker.
public struct RuleEngine: Sendable {
    /// Why an opening did not happen.
    public struct Suppression: Sendable {
        public var rule: String
        public var key: String
        public var at: Millis
        public var reason: String
    }

    public let ruleSet: RuleSet
    public let registry: ChannelRegistry
    let rules: [Rule]
    /// Rules keyed by the default `[channel]`: their key text is computed once per reading.
    let channelKeyed: [Bool]
    /// `{"channel": id}` and its JSON text for every registry channel, built once.
    let registryChannelKeys: [(JSONObject, String)]

    var states: [[String: KeyState]]
    /// Rules keyed by `[channel]`: what is known of each registry channel's
    /// key, channel by channel, a byte for every rule (one reading's bytes
    /// share a cache line). Set right after a lookup, from what it found; a
    /// new or restored engine knows nothing (all 0). A reading that cannot
    /// change a key's state then skips the key and its lookup:
    /// - `stateless`: the key has no state; a reading whose `when` is not
    ///   true starts none. (A rule with state for a few keys does not hash
    ///   the key of every other channel's every reading.)
    /// - `quietOpen`: the key's state was an open incident with no clear run
    ///   (`clear_for`) under way. A reading for which neither `when` nor
    ///   `clear_when` is true changes nothing there, nor if a timer has since
    ///   resolved the incident (the key is stateless then): only such a
    ///   reading, or one of those, can start a run. (A channel with an open
    ///   incident sends its heartbeats on, every one of them otherwise a
    ///   lookup.)
    var keyFacts: [UInt8]
    static let stateless: UInt8 = 1
    static let quietOpen: UInt8 = 2

    @inline(__always)
    func knownStateless(_ r: Int, channel: Int) -> Bool { keyFacts[channel &* rules.count &+ r] & RuleEngine.stateless != 0 }

    @inline(__always)
    func knownQuietOpen(_ r: Int, channel: Int) -> Bool { keyFacts[channel &* rules.count &+ r] & RuleEngine.quietOpen != 0 }

    @inline(__always)
    mutating func setKeyFacts(_ r: Int, channel: Int, _ facts: UInt8) { keyFacts[channel &* rules.count &+ r] = facts }

    var ordinals: [[String: Int]]
    var heap = TimerHeap()
    var absence: [AbsenceTracker]
    var absenceRules: [Int] = []
    /// `absent_for` of each rule in `absenceRules`, in the same order.
    var absenceDurations: [Millis] = []
    /// The rules of each feed. A district has a handful of feeds with short
    /// (inline) names: comparing those is cheaper than hashing one.
    var feedRules: [(feed: String, rules: [Int])] = []
    var wildcardRules: [Int] = []
    var inhibitsByTarget: [[Int]]
    var inhibitSource: [Int]

    /// Blind time (SPEC §4): since when the broker connection is lost, the
    /// blind time already behind the clock, and outages ahead of it (a backlog
    /// that plays out in device time can be behind the outage it came from).
    var blindSince: Millis?
    var blindBefore: Millis = 0
    var blindAhead: [(start: Millis, end: Millis)] = []

    public private(set) var now: Millis = .min
    public private(set) var started = false
    public internal(set) var suppressedOpenings = 0
    /// Suppressed openings since the caller last drained them (for debug logging).
    public var suppressions: [Suppression] = []

    public init(ruleSet: RuleSet, registry: ChannelRegistry) {
        self.ruleSet = ruleSet
        self.registry = registry
        self.rules = ruleSet.rules
        self.channelKeyed = ruleSet.rules.map { $0.key.count == 1 && $0.key[0].name == "channel" }
        self.registryChannelKeys = registry.channels.map { ch in
            let key = JSONObject([("channel", .string(ch.id))])
            return (key, JSONWriter.encode(.object(key)))
        }
        let n = ruleSet.rules.count
        states = Array(repeating: [:], count: n)
        keyFacts = Array(repeating: 0, count: registry.count * n)
        ordinals = Array(repeating: [:], count: n)
        absence = Array(repeating: AbsenceTracker(), count: n)
        inhibitsByTarget = Array(repeating: [], count: n)
        inhibitSource = []
        for (i, inh) in ruleSet.inhibits.enumerated() {
            inhibitSource.append(ruleSet.rules.firstIndex { $0.name == inh.source } ?? -1)
            for (r, rule) in ruleSet.rules.enumerated() where inh.targets(rule.name) { inhibitsByTarget[r].append(i) }
        }
        var feeds = Set<String>()
        for (r, rule) in ruleSet.rules.enumerated() {
            if let f = rule.feeds { feeds.formUnion(f) } else { wildcardRules.append(r) }
            if case .absence(let d) = rule.kind {
                absenceRules.append(r)
                absenceDurations.append(d)
            }
        }
        for ch in registry.channels { feeds.insert(ch.feed) }
        feedRules = feeds.sorted().map { ($0, RuleEngine.rules(for: $0, ruleSet.rules)) }
    }

    /// The rules a reading of `feed` goes to.
    @inline(__always)
    func rules(forFeed feed: String) -> [Int] {
        for entry in feedRules where entry.feed == feed { return entry.rules }
        return wildcardRules
    }

    static func rules(for feed: String, _ rules: [Rule]) -> [Int] {
        rules.indices.filter { rules[$0].applies(toFeed: feed) }
    }

    /// Starts the clock: absence rules count silence from here.
    public mutating func start(at t: Millis) {
        guard !started else { return }
        started = true
        now = t
        for r in absenceRules {
            let rule = rules[r]
            let watched = registry.channels.indices.filter { rule.applies(toFeed: registry.channels[$0].feed) }
            // A `[channel]` key is one a channel; a shared key's count is not known before.
            var tracker = AbsenceTracker(registrySize: registry.count, watching: watched.count, keys: channelKeyed[r] ? watched.count : 0)
            for i in watched {
                let ch = registry.channels[i]
                // A `[channel]` key is the engine's own, built once for every rule.
                let (key, text) = channelKeyed[r] ? registryChannelKeys[i] : keyOf(rule, EvalContext(channel: ch))
                tracker.add(registryIndex: i, key: key, keyText: text)
            }
            for s in tracker.channel.indices { tracker.see(s, at: t, connected: connectedTime(t)); tracker.append(s) }
            absence[r] = tracker
        }
    }

    // MARK: - Input

    /// Evaluates one reading at its arrival time, after every timer due by then.
    public mutating func process(_ reading: Reading, into out: inout [IncidentEvent]) {
        process(reading, at: reading.receivedAt, into: &out)
    }

    /// Evaluates one reading at clock time `at` (a late reading: its device
    /// time), after every timer due by then. Its `receivedAt` stays its arrival.
    public mutating func process(_ reading: Reading, at time: Millis, into out: inout [IncidentEvent]) {
        advance(to: time, into: &out)
        let t = now
        let ctx = EvalContext(reading: reading, registry: registry)
        var keys = KeyCache(registryIndex: reading.channelIndex)
        let applicable = rules(forFeed: reading.feed)
        for r in applicable {
            switch rules[r].kind {
            case .threshold(let hold): processThreshold(r, hold: hold, reading, ctx, t, &keys, &out)
            case .count(let n, let within): processCount(r, n: n, within: within, reading, ctx, t, &keys, &out)
            case .absence: processAbsence(r, reading, ctx, t, &out)
            }
        }
    }

    /// Starts loading what readings of these registry channels (-1: none)
    /// will touch: each one's row of key facts, then its node in
    /// every absence rule's list. Replay calls it a batch of records ahead
    /// (`ReadingDecoder.prefetch`); only a hint, nothing observable changes.
    public func prefetch(channels: UnsafeBufferPointer<Int>) {
        let n = rules.count
        keyFacts.withUnsafeBufferPointer { flags in
            for c in channels where c >= 0 && c &* n < flags.count { vigil_prefetch(flags.baseAddress! + c &* n) }
        }
        for r in absenceRules {
            absence[r].slotOf.withUnsafeBufferPointer { slotOf in
                for c in channels where c >= 0 && c < slotOf.count { vigil_prefetch(slotOf.baseAddress! + c) }
                absence[r].nodes.withUnsafeBufferPointer { nodes in
                    for c in channels where c >= 0 && c < slotOf.count && slotOf[c] >= 0 { vigil_prefetch(nodes.baseAddress! + slotOf[c]) }
                }
            }
        }
    }

    /// Moves the clock to `t`, firing every timer due at or before it, in order.
    /// While blind (a `lost` mark without its `connected`) the clock stands still.
    public mutating func advance(to t: Millis, into out: inout [IncidentEvent]) {
        if !started { start(at: t) }
        if blindSince != nil { return }
        while t >= timersLowerBound(), let next = nextTimer(), next.due <= t {
            if next.absence {
                fireAbsence(next.rule, at: next.due, &out)
            } else {
                heap.pop()
                fire(next.rule, next.key, at: next.due, &out)
            }
        }
        if t > now { now = t }
        if !blindAhead.isEmpty { foldBlindTime() }
    }

    /// The next instant a timer is due, if any (the daemon sleeps until then).
    public mutating func nextDeadline() -> Millis? { nextTimer()?.due }

    /// The number of keys with state (pending runs, windows, open incidents).
    public var activeKeys: Int { states.reduce(0) { $0 + $1.count } }

    /// Open incidents across all rules.
    public var openIncidents: Int {
        var n = 0
        for s in states { for (_, v) in s where v.incident != nil { n += 1 } }
        for a in absence { n += a.openCount }
        return n
    }

    /// Whether a heap entry is still wanted: the key's armed deadline, or the
    /// next reminder of an open absence incident.
    /// Fields in place, never a copy of a key's state or of a tracker: this
    /// runs whenever a timer is due, stale entries included.
    func isLive(_ e: TimerEntry) -> Bool {
        let rule = rules[e.rule]
        if rule.isAbsence {
            return absence[e.rule].slots(key: e.key).contains { absence[e.rule][open: $0]?.nextReminder(rule) == e.due }
        }
        guard let i = states[e.rule].index(forKey: e.key) else { return false }
        return states[e.rule].values[i].armed == e.due
    }

    mutating func nextTimer() -> (due: Millis, rule: Int, key: String, absence: Bool)? {
        while let top = heap.top {
            if isLive(top) { break }
            heap.pop()
        }
        var best: (due: Millis, rule: Int, key: String, absence: Bool)?
        if let top = heap.top { best = (top.due, top.rule, top.key, false) }
        if blindSince != nil { return best }  // silence does not count while blind
        for (i, r) in absenceRules.enumerated() {
            // Fields, not a copy of the tracker: this runs for every reading.
            let head = absence[r].head
            guard head >= 0 else { continue }
            let due = clockTime(connected: absence[r].seenConnected(head) + absenceDurations[i])
            if let b = best {
                if due > b.due || (due == b.due && (r > b.rule || (r == b.rule && !absence[r].keyText[head].utf8.lexicographicallyPrecedes(b.key.utf8)))) {
                    continue
                }
            }
            best = (due, r, absence[r].keyText[head], true)
        }
        return best
    }

    /// No timer is due before this (a stale heap entry only makes it earlier):
    /// a reading before it needs no search for timers.
    func timersLowerBound() -> Millis {
        var bound = heap.top?.due ?? .max
        if blindSince != nil { return bound }
        for (i, r) in absenceRules.enumerated() {
            let head = absence[r].head
            if head >= 0 { bound = min(bound, clockTime(connected: absence[r].seenConnected(head) + absenceDurations[i])) }
        }
        return bound
    }
}

/// Keys already computed for the reading being evaluated.
struct KeyCache {
    /// A registry channel's `[channel]` key was built with the engine; it is
    /// looked up only when a rule needs the key (most readings change no state).
    var registryIndex: Int?
    var channel: (JSONObject, String)?
}

/// Deterministic ids: the same inputs give the same ids on every run and after a crash.
public enum IDs {
    public static func incident(rule: String, keyText: String, openedAt: Millis, ordinal: Int) -> String {
        digest("incident\u{0}\(rule)\u{0}\(keyText)\u{0}\(openedAt)\u{0}\(ordinal)")
    }

    /// 32 hex digits: the event time (milliseconds, 12 digits) then 20 of the
    /// digest. Ids that grow with time keep the queue's unique index appending
    /// at its end instead of writing all over it, and sort by time.
    public static func event(incidentID: String, type: IncidentEventType, at: Millis, ordinal: Int) -> String {
        let time = String(UInt64(bitPattern: at) & 0xFFFF_FFFF_FFFF, radix: 16)
        let hash = digest("event\u{0}\(incidentID)\u{0}\(type.rawValue)\u{0}\(at)\u{0}\(ordinal)")
        return String(repeating: "0", count: 12 - time.count) + time + hash.prefix(20)
    }

    static func digest(_ s: String) -> String {
        String(Hex.encode(SHA256.hash(data: Array(s.utf8))).prefix(32))
    }
}

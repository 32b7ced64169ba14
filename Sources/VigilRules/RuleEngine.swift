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
    var ordinals: [[String: Int]]
    var heap = TimerHeap()
    var absence: [AbsenceTracker]
    var absenceRules: [Int] = []
    /// `absent_for` of each rule in `absenceRules`, in the same order.
    var absenceDurations: [Millis] = []
    var rulesByFeed: [String: [Int]] = [:]
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
        for f in feeds { rulesByFeed[f] = RuleEngine.rules(for: f, ruleSet.rules) }
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
            var tracker = AbsenceTracker(registrySize: registry.count)
            for (i, ch) in registry.channels.enumerated() where rule.applies(toFeed: ch.feed) {
                let (key, text) = keyOf(rule, EvalContext(channel: ch))
                tracker.add(registryIndex: i, key: key, keyText: text)
            }
            for s in tracker.channel.indices { tracker.lastSeen[s] = t; tracker.seenConnected[s] = connectedTime(t); tracker.append(s) }
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
        var keys = KeyCache(channel: reading.channelIndex.map { registryChannelKeys[$0] })
        let applicable = rulesByFeed[reading.feed] ?? wildcardRules
        for r in applicable {
            switch rules[r].kind {
            case .threshold(let hold): processThreshold(r, hold: hold, reading, ctx, t, &keys, &out)
            case .count(let n, let within): processCount(r, n: n, within: within, reading, ctx, t, &keys, &out)
            case .absence: processAbsence(r, reading, ctx, t, &out)
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
        for a in absence { for o in a.open where o != nil { n += 1 } }
        return n
    }

    /// Whether a heap entry is still wanted: the key's armed deadline, or the
    /// next reminder of an open absence incident.
    func isLive(_ e: TimerEntry) -> Bool {
        if rules[e.rule].isAbsence {
            let t = absence[e.rule]
            return t.slotsByKey[e.key]?.contains { t.open[$0]?.nextReminder(rules[e.rule]) == e.due } ?? false
        }
        return states[e.rule][e.key]?.armed == e.due
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
            let due = clockTime(connected: absence[r].seenConnected[head] + absenceDurations[i])
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
            if head >= 0 { bound = min(bound, clockTime(connected: absence[r].seenConnected[head] + absenceDurations[i])) }
        }
        return bound
    }

    // MARK: - Blind time

    /// The broker connection was lost at `t`: the clock stands still until
    /// `brokerConnected`, and silence does not count meanwhile.
    public mutating func brokerLost(at t: Millis) {
        if !started { start(at: t) }
        guard blindSince == nil else { return }
        blindSince = max(t, now)
    }

    /// The connection is back at `t`. The clock does not move; the outage is
    /// left out of every absence rule's silence.
    public mutating func brokerConnected(at t: Millis) {
        guard let s = blindSince else { return }
        blindSince = nil
        if t > s { blindAhead.append((s, t)) }
    }

    /// Between `brokerLost` and `brokerConnected`.
    public var isBlind: Bool { blindSince != nil }

    /// Connected time at clock time `t`: `t` less the blind time before it.
    func connectedTime(_ t: Millis) -> Millis {
        var k = t - blindBefore
        for (s, e) in blindAhead where t > s { k -= min(t, e) - s }
        return k
    }

    /// The earliest clock time whose connected time is `k`.
    func clockTime(connected k: Millis) -> Millis {
        var t = k + blindBefore
        for (s, e) in blindAhead where t > s { t += e - s }
        return t
    }

    mutating func foldBlindTime() {
        while let first = blindAhead.first, first.end <= now {
            blindBefore += first.end - first.start
            blindAhead.removeFirst()
        }
    }

    // MARK: - Threshold

    mutating func processThreshold(_ r: Int, hold: Millis, _ reading: Reading, _ ctx: EvalContext, _ t: Millis,
                                    _ keys: inout KeyCache, _ out: inout [IncidentEvent]) {
        let rule = rules[r]
        let when = rule.when?.truth(ctx)
        // Nothing pending or open anywhere: only a true `when` matters.
        if states[r].isEmpty, when != true { return }
        // A reading on which every condition is unknown changes nothing.
        if when == nil, rule.clearWhen?.truth(ctx) == nil { return }
        let (key, keyText) = keyFor(r, ctx, &keys)
        var st = states[r].removeValue(forKey: keyText) ?? KeyState(key: key)
        if st.incident != nil {
            guard handleOpen(r, &st, keyText, reading, ctx, t, &out) else { return }
            states[r][keyText] = st
            return
        }
        switch when {
        case nil:
            if st.runStart == nil { return }
        case false?:
            return  // the run is broken: the key starts afresh
        case true?:
            if st.runStart == nil {
                st.runStart = t
                st.runCount = 1
            } else {
                st.runCount += 1
            }
            st.runReading = reading
            if hold == 0 {
                guard open(r, keyText, &st, startedAt: t, at: t, count: st.runCount, reading: reading, &out) else { return }
            }
        }
        rearm(r, keyText, &st)
        states[r][keyText] = st
    }

    // MARK: - Count

    mutating func processCount(_ r: Int, n: Int, within: Millis, _ reading: Reading, _ ctx: EvalContext, _ t: Millis,
                                _ keys: inout KeyCache, _ out: inout [IncidentEvent]) {
        let rule = rules[r]
        let when = rule.when?.truth(ctx)
        if states[r].isEmpty, when != true { return }
        // Only a matching reading or a clear condition can change a count rule's state.
        if when != true, rule.clearWhen?.truth(ctx) == nil { return }
        let (key, keyText) = keyFor(r, ctx, &keys)
        var st = states[r].removeValue(forKey: keyText) ?? KeyState(key: key)
        if st.incident != nil {
            guard handleOpen(r, &st, keyText, reading, ctx, t, &out) else { return }
            states[r][keyText] = st
            return
        }
        if when == true {
            st.window.removeAll { t - $0 >= within }
            st.window.append(t)
            if st.window.count >= n {
                let started = st.window[0]
                let count = st.window.count
                st.window.removeAll()
                guard open(r, keyText, &st, startedAt: started, at: t, count: count, reading: reading, &out) else { return }
            }
        }
        if st.window.isEmpty && st.incident == nil { return }
        rearm(r, keyText, &st)
        states[r][keyText] = st
    }

    // MARK: - Open incidents (threshold and count)

    /// A reading for a key with an open incident: clear it, or update it.
    /// Returns false when the incident resolved and the key's state is gone.
    mutating func handleOpen(_ r: Int, _ st: inout KeyState, _ keyText: String, _ reading: Reading, _ ctx: EvalContext, _ t: Millis,
                             _ out: inout [IncidentEvent]) -> Bool {
        let rule = rules[r]
        guard var inc = st.incident.take() else { return true }
        if let clear = rule.clearWhen {
            switch clear.truth(ctx) {
            case true?:
                if rule.clearFor == 0 {
                    resolve(r, &inc, at: t, reading: ReadingSnapshot(reading), &out)
                    return false
                }
                if inc.clearRunStart == nil {
                    inc.clearRunStart = t
                    inc.clearRunReading = ReadingSnapshot(reading)
                }
            case false?:
                inc.clearRunStart = nil
                inc.clearRunReading = nil
            case nil:
                break
            }
        }
        if rule.when?.truth(ctx) == true {
            inc.count += 1
            inc.lastMatchAt = t
            inc.lastReading = ReadingSnapshot(reading)
            if t - inc.lastEmittedAt >= rule.updateEvery {
                emit(r, .updated, &inc, at: t, reading: inc.lastReading, &out)
            }
        }
        st.incident = inc
        rearm(r, keyText, &st)
        return true
    }

    // MARK: - Absence

    mutating func processAbsence(_ r: Int, _ reading: Reading, _ ctx: EvalContext, _ t: Millis, _ out: inout [IncidentEvent]) {
        guard let idx = reading.channelIndex else { return }
        let slot = absence[r].slotOf[idx]
        guard slot >= 0 else { return }
        if let w = rules[r].when, w.truth(ctx) != true { return }
        if var inc = absence[r].open[slot] {
            inc.count = 1
            resolve(r, &inc, at: t, reading: ReadingSnapshot(reading), &out)
            absence[r].open[slot] = nil
        }
        absence[r].lastSeen[slot] = t
        absence[r].seenConnected[slot] = connectedTime(t)
        absence[r].append(slot)
    }

    /// The silences of rule `r` due at `t`: every channel at the head of the
    /// list seen at the same instant falls silent now, in the order of their keys' JSON text.
    mutating func fireAbsence(_ r: Int, at t: Millis, _ out: inout [IncidentEvent]) {
        let seen = absence[r].seenConnected[absence[r].head]
        var run: [Int] = []
        while absence[r].head >= 0, absence[r].seenConnected[absence[r].head] == seen {
            let slot = absence[r].head
            absence[r].unlink(slot)
            run.append(slot)
        }
        if run.count > 1 { run.sort { absence[r].keyText[$0].utf8.lexicographicallyPrecedes(absence[r].keyText[$1].utf8) } }
        for slot in run { openSilence(r, slot, at: t, &out) }
    }

    mutating func openSilence(_ r: Int, _ slot: Int, at t: Millis, _ out: inout [IncidentEvent]) {
        let ch = registry[absence[r].channel[slot]]
        let ctx = EvalContext(channel: ch)
        let keyText = absence[r].keyText[slot]
        if let reason = suppression(r, ctx, at: t) {
            noteSuppressed(r, keyText, t, reason)
            absence[r].lastSeen[slot] = t
            absence[r].seenConnected[slot] = connectedTime(t)
            absence[r].append(slot)
            return
        }
        var inc = makeIncident(r, keyText: keyText, key: absence[r].key[slot], ctx: ctx, startedAt: absence[r].lastSeen[slot],
                               openedAt: t, count: 0, reading: nil)
        emit(r, .opened, &inc, at: t, reading: nil, &out)
        absence[r].open[slot] = inc
        if let next = inc.nextReminder(rules[r]) { heap.push(TimerEntry(due: next, rule: r, key: keyText)) }
    }

    // MARK: - Timers

    /// A timer of a threshold or count key fired at `t` (or an absence incident's reminder).
    mutating func fire(_ r: Int, _ keyText: String, at t: Millis, _ out: inout [IncidentEvent]) {
        let rule = rules[r]
        if rule.isAbsence {
            for slot in absence[r].slotsByKey[keyText] ?? [] {
                guard var inc = absence[r].open[slot], let due = inc.nextReminder(rule), due <= t else { continue }
                remind(r, &inc, at: t, &out)
                absence[r].open[slot] = inc
                if let next = inc.nextReminder(rule) { heap.push(TimerEntry(due: next, rule: r, key: keyText)) }
            }
            return
        }
        guard var st = states[r].removeValue(forKey: keyText) else { return }
        st.armed = nil
        if var inc = st.incident {
            if let after = rule.clearAfter, inc.lastMatchAt + after <= t {
                resolve(r, &inc, at: t, reading: nil, &out)
                return
            }
            if let runStart = inc.clearRunStart, rule.clearFor > 0, runStart + rule.clearFor <= t {
                resolve(r, &inc, at: t, reading: inc.clearRunReading, &out)
                return
            }
            // A reminder due at the instant the incident resolves is not sent: resolution comes first.
            if let due = inc.nextReminder(rule), due <= t {
                remind(r, &inc, at: t, &out)
                st.incident = inc
            }
        } else {
            switch rule.kind {
            case .threshold(let hold):
                if let start = st.runStart, hold > 0, start + hold <= t, let reading = st.runReading {
                    guard open(r, keyText, &st, startedAt: start, at: start + hold, count: st.runCount, reading: reading, &out) else { return }
                }
            case .count(_, let within):
                st.window.removeAll { t - $0 >= within }
                if st.window.isEmpty { return }
            case .absence:
                break
            }
        }
        rearm(r, keyText, &st)
        states[r][keyText] = st
    }

    /// Makes sure the key's earliest deadline has a heap entry.
    mutating func rearm(_ r: Int, _ keyText: String, _ st: inout KeyState) {
        let rule = rules[r]
        var due: Millis?
        func consider(_ d: Millis) { if due == nil || d < due! { due = d } }
        if let inc = st.incident {
            if let after = rule.clearAfter { consider(inc.lastMatchAt + after) }
            if let runStart = inc.clearRunStart, rule.clearFor > 0 { consider(runStart + rule.clearFor) }
            if let remind = inc.nextReminder(rule) { consider(remind) }
        } else {
            switch rule.kind {
            case .threshold(let hold): if let s = st.runStart, hold > 0 { consider(s + hold) }
            case .count(_, let within): if let first = st.window.first { consider(first + within) }
            case .absence: break
            }
        }
        guard let d = due else { return }
        if let armed = st.armed, armed <= d { return }  // an earlier entry will fire and re-arm
        st.armed = d
        heap.push(TimerEntry(due: d, rule: r, key: keyText))
    }


    // MARK: - Opening, updating, resolving

    /// Opens an incident unless suppressed. Returns false when suppressed (the
    /// key's state must then be dropped: it starts afresh).
    mutating func open(_ r: Int, _ keyText: String, _ st: inout KeyState, startedAt: Millis, at t: Millis, count: Int,
                       reading: Reading, _ out: inout [IncidentEvent]) -> Bool {
        let ctx = EvalContext(reading: reading, registry: registry)
        if let reason = suppression(r, ctx, at: t) {
            noteSuppressed(r, keyText, t, reason)
            return false
        }
        var inc = makeIncident(r, keyText: keyText, key: st.key, ctx: ctx, startedAt: startedAt, openedAt: t, count: count,
                               reading: ReadingSnapshot(reading))
        emit(r, .opened, &inc, at: t, reading: inc.lastReading, &out)
        st.incident = inc
        st.runStart = nil
        st.runReading = nil
        st.runCount = 0
        st.window.removeAll()
        return true
    }

    mutating func makeIncident(_ r: Int, keyText: String, key: JSONObject, ctx: EvalContext, startedAt: Millis, openedAt: Millis,
                               count: Int, reading: ReadingSnapshot?) -> OpenIncident {
        let rule = rules[r]
        let ordinal = (ordinals[r][keyText] ?? 0) + 1
        ordinals[r][keyText] = ordinal
        let incidentID = IDs.incident(rule: rule.name, keyText: keyText, openedAt: openedAt, ordinal: ordinal)
        var route = rule.route ?? "default"
        if rule.route == nil, case .string(let s)? = ctx.channelInfo?["route"], !s.isEmpty { route = s }
        let title = rule.title?.render(ctx) ?? rule.description ?? rule.name
        var labels = JSONObject()
        for (name, t) in rule.labels { labels.appendUnique(name, .string(t.render(ctx))) }
        return OpenIncident(incidentID: incidentID, nextEventOrdinal: 0, startedAt: startedAt, openedAt: openedAt, count: count,
                            lastEmittedAt: openedAt, lastMatchAt: openedAt, feed: ctx.feed, channel: ctx.channelID,
                            channelInfo: ctx.channelInfo ?? JSONObject(), route: route, title: title, labels: labels, key: key,
                            lastReading: reading, clearRunStart: nil, clearRunReading: nil)
    }

    mutating func resolve(_ r: Int, _ inc: inout OpenIncident, at t: Millis, reading: ReadingSnapshot?, _ out: inout [IncidentEvent]) {
        emit(r, .resolved, &inc, at: t, reading: reading, &out, resolvedAt: t)
    }

    /// Heap entries for the reminders of rule `r`'s open absence incidents (after a restore or reload).
    mutating func armAbsenceReminders(_ r: Int) {
        for slot in absence[r].open.indices {
            if let due = absence[r].open[slot]?.nextReminder(rules[r]) {
                heap.push(TimerEntry(due: due, rule: r, key: absence[r].keyText[slot]))
            }
        }
    }

    mutating func remind(_ r: Int, _ inc: inout OpenIncident, at t: Millis, _ out: inout [IncidentEvent]) {
        inc.reminders += 1
        emit(r, .reminded, &inc, at: t, reading: nil, &out)
    }

    mutating func emit(_ r: Int, _ type: IncidentEventType, _ inc: inout OpenIncident, at t: Millis, reading: ReadingSnapshot?,
                       _ out: inout [IncidentEvent], resolvedAt: Millis? = nil, note: String? = nil) {
        let rule = rules[r]
        let eventID = IDs.event(incidentID: inc.incidentID, type: type, at: t, ordinal: inc.nextEventOrdinal)
        inc.nextEventOrdinal += 1
        // Acknowledgements and reminders do not restart `update_every`.
        if type != .acknowledged && type != .reminded { inc.lastEmittedAt = t }
        out.append(IncidentEvent(eventID: eventID, type: type, incidentID: inc.incidentID, rule: rule.name,
                                 severity: rule.severity, route: inc.route, feed: inc.feed, channel: inc.channel, key: inc.key,
                                 title: inc.title, labels: inc.labels, channelInfo: inc.channelInfo, startedAt: inc.startedAt,
                                 openedAt: inc.openedAt, resolvedAt: resolvedAt, at: t, count: inc.count, reading: reading,
                                 acknowledgedAt: inc.acknowledgedAt, acknowledgedBy: inc.acknowledgedBy,
                                 reminder: type == .reminded ? inc.reminders : nil, note: note))
    }

    // MARK: - Acknowledgement

    public enum AcknowledgeResult: Sendable, Equatable {
        /// Acknowledged now: `incident.acknowledged` was emitted.
        case acknowledged
        /// Already acknowledged: nothing changes.
        case already
        /// No open incident has this id (unknown, or resolved).
        case notOpen
    }

    /// A person acknowledges an open incident at the current clock time:
    /// `incident.acknowledged`, and its reminders stop.
    public mutating func acknowledge(_ a: Acknowledgement, into out: inout [IncidentEvent]) -> AcknowledgeResult {
        let t = now
        for r in rules.indices {
            if rules[r].isAbsence {
                for slot in absence[r].open.indices {
                    guard var inc = absence[r].open[slot], inc.incidentID == a.incidentID else { continue }
                    if inc.acknowledgedAt != nil { return .already }
                    inc.acknowledgedAt = t
                    inc.acknowledgedBy = a.by
                    emit(r, .acknowledged, &inc, at: t, reading: nil, &out, note: a.note)
                    absence[r].open[slot] = inc
                    return .acknowledged
                }
            } else {
                for (keyText, st) in states[r] {
                    guard var inc = st.incident, inc.incidentID == a.incidentID else { continue }
                    if inc.acknowledgedAt != nil { return .already }
                    inc.acknowledgedAt = t
                    inc.acknowledgedBy = a.by
                    emit(r, .acknowledged, &inc, at: t, reading: nil, &out, note: a.note)
                    states[r][keyText]?.incident = inc
                    return .acknowledged
                }
            }
        }
        return .notOpen
    }

    /// The id of the open incident of `rule` for `channel`, if there is one (rule tests name incidents so).
    public func openIncidentID(rule: String, channel: String) -> String? {
        guard let r = rules.firstIndex(where: { $0.name == rule }) else { return nil }
        if rules[r].isAbsence {
            for case let inc? in absence[r].open where inc.channel == channel { return inc.incidentID }
            return nil
        }
        let matching = states[r].filter { $0.value.incident?.channel == channel }
        return matching.min { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }?.value.incident?.incidentID
    }

    // MARK: - Suppression

    /// Why an opening of rule `r` at `t` for this channel must not happen, or nil.
    func suppression(_ r: Int, _ ctx: EvalContext, at t: Millis) -> String? {
        for mw in ruleSet.maintenance where mw.covers(t) {
            if mw.match == nil || mw.match!.truth(ctx) == true { return "maintenance '\(mw.name)'" }
        }
        for i in inhibitsByTarget[r] {
            let inh = ruleSet.inhibits[i]
            let s = inhibitSource[i]
            guard s >= 0 else { continue }
            let targetValues = inh.equal.map { $0.expression.evaluate(ctx) }
            func matches(_ inc: OpenIncident) -> Bool {
                let sctx = EvalContext(payload: nil, topic: nil, captures: [], channelID: inc.channel,
                                       channelInfo: inc.channelInfo, feed: inc.feed)
                for (j, f) in inh.equal.enumerated() {
                    // A field missing on either side never matches: an inhibit must not silence by accident.
                    let a = f.expression.evaluate(sctx), b = targetValues[j]
                    if a.isNull || b.isNull || a != b { return false }
                }
                return true
            }
            for (_, st) in states[s] { if let inc = st.incident, matches(inc) { return "inhibited by \(inh.source)" } }
            for case let inc? in absence[s].open where matches(inc) { return "inhibited by \(inh.source)" }
        }
        return nil
    }

    mutating func noteSuppressed(_ r: Int, _ keyText: String, _ t: Millis, _ reason: String) {
        suppressedOpenings += 1
        if suppressions.count < 10_000 {
            suppressions.append(Suppression(rule: rules[r].name, key: keyText, at: t, reason: reason))
        }
    }

    // MARK: - Keys

    /// The key of a reading for rule `r`; the common `[channel]` key is built once per reading.
    func keyFor(_ r: Int, _ ctx: EvalContext, _ cache: inout KeyCache) -> (JSONObject, String) {
        guard channelKeyed[r] else { return keyOf(rules[r], ctx) }
        if let k = cache.channel { return k }
        let k = keyOf(rules[r], ctx)
        cache.channel = k
        return k
    }

    func keyOf(_ rule: Rule, _ ctx: EvalContext) -> (JSONObject, String) {
        var key = JSONObject()
        for f in rule.key { key.appendUnique(f.name, f.expression.evaluate(ctx)) }
        return (key, JSONWriter.encode(.object(key)))
    }
}

/// Keys already computed for the reading being evaluated.
struct KeyCache {
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

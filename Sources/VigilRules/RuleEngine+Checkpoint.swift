import VigilCore

/// The engine's state as JSON, so that a restart carries on as if there had
/// been no crash: running `for` timers, count windows, open incidents,
/// ordinals and the last-seen times of absence rules.
extension RuleEngine {
    public func checkpoint(timeline: Timeline? = nil) -> [UInt8] {
        var root = JSONObject()
        root.appendUnique("v", 1)
        root.appendUnique("now", .number(Double(now)))
        root.appendUnique("suppressed", .number(Double(suppressedOpenings)))
        if let b = blindSince { root.appendUnique("blind_since", .number(Double(b))) }
        root.appendUnique("blind_before", .number(Double(blindBefore)))
        root.appendUnique("blind_ahead", .array(blindAhead.map { .array([.number(Double($0.start)), .number(Double($0.end))]) }))
        if let timeline {
            var o = JSONObject()
            o.appendUnique("held", .bool(timeline.held))
            o.appendUnique("blind", .bool(timeline.blind))
            if let a = timeline.lastArrival { o.appendUnique("last", .number(Double(a))) }
            root.appendUnique("timeline", .object(o))
        }
        var rulesOut: [JSONValue] = []
        for (r, rule) in rules.enumerated() {
            var o = JSONObject()
            o.appendUnique("name", .string(rule.name))
            o.appendUnique("fp", .string(rule.fingerprint))
            var ords = JSONObject()
            for (k, n) in ordinals[r].sorted(by: { $0.key < $1.key }) { ords.appendUnique(k, .number(Double(n))) }
            o.appendUnique("ordinals", .object(ords))
            if rule.isAbsence {
                let t = absence[r]
                var slots: [JSONValue] = []
                for s in t.channel.indices {
                    var so = JSONObject()
                    so.appendUnique("c", .string(registry.channels[t.channel[s]].id))
                    so.appendUnique("seen", .number(Double(t.nodes[s].lastSeen)))
                    if t.nodes[s].seenConnected != t.nodes[s].lastSeen { so.appendUnique("k", .number(Double(t.nodes[s].seenConnected))) }
                    if let inc = t[open: s] { so.appendUnique("inc", Self.encode(inc)) }
                    slots.append(.object(so))
                }
                o.appendUnique("absence", .array(slots))
            } else {
                var sts: [JSONValue] = []
                for (k, st) in states[r].sorted(by: { $0.key < $1.key }) {
                    var so = JSONObject()
                    so.appendUnique("k", .string(k))
                    so.appendUnique("key", .object(st.key))
                    if let rs = st.runStart { so.appendUnique("rs", .number(Double(rs))) }
                    if st.runCount > 0 { so.appendUnique("rc", .number(Double(st.runCount))) }
                    if let rr = st.runReading { so.appendUnique("rr", Self.encode(rr)) }
                    if !st.window.isEmpty { so.appendUnique("w", .array(st.window.map { .number(Double($0)) })) }
                    if let inc = st.incident { so.appendUnique("inc", Self.encode(inc)) }
                    sts.append(.object(so))
                }
                o.appendUnique("states", .array(sts))
            }
            rulesOut.append(.object(o))
        }
        root.appendUnique("rules", .array(rulesOut))
        var w = JSONWriter(capacity: 1 << 14)
        w.write(.object(root))
        return w.bytes
    }

    /// An engine for this rule set and registry with the checkpointed state of
    /// every rule whose definition is unchanged; nil if the bytes are not a checkpoint.
    public static func restore(_ bytes: [UInt8], ruleSet: RuleSet, registry: ChannelRegistry, timeline: inout Timeline) -> (engine: RuleEngine, kept: [String])?
    {
        guard case .object(let root)? = try? JSONParser.parse(bytes, maxDepth: 10_000), root["v"] == 1,
            let now = root["now"]?.numberValue, case .array(let savedRules)? = root["rules"]
        else { return nil }
        var e = RuleEngine(ruleSet: ruleSet, registry: registry)
        e.blindBefore = Millis(root["blind_before"]?.numberValue ?? 0)
        if case .array(let ahead)? = root["blind_ahead"] {
            for case .array(let pair) in ahead where pair.count == 2 {
                if let s = pair[0].numberValue, let t = pair[1].numberValue { e.blindAhead.append((Millis(s), Millis(t))) }
            }
        }
        e.start(at: Millis(now))
        e.blindSince = root["blind_since"]?.numberValue.map { Millis($0) }
        if case .object(let t)? = root["timeline"] {
            timeline.restore(
                held: t["held"] == .bool(true), blind: t["blind"] == .bool(true),
                lastArrival: t["last"]?.numberValue.map { Millis($0) })
        }
        e.suppressedOpenings = Int(root["suppressed"]?.numberValue ?? 0)
        var kept: [String] = []
        for case .object(let saved) in savedRules {
            guard let name = saved["name"]?.stringValue, let fp = saved["fp"]?.stringValue,
                let r = e.rules.firstIndex(where: { $0.name == name && $0.fingerprint == fp })
            else { continue }
            kept.append(name)
            if case .object(let ords)? = saved["ordinals"] {
                for (k, v) in ords.members { if let n = v.numberValue { e.ordinals[r][k] = Int(n) } }
            }
            if e.rules[r].isAbsence {
                guard case .array(let slots)? = saved["absence"] else { continue }
                var t = e.absence[r]
                for s in t.channel.indices { t.unlink(s) }
                var seen: [String: (Millis, Millis, OpenIncident?)] = [:]
                for case .object(let so) in slots {
                    if let c = so["c"]?.stringValue, let at = so["seen"]?.numberValue {
                        seen[c] = (Millis(at), so["k"]?.numberValue.map { Millis($0) } ?? Millis(at), so["inc"].flatMap(decodeIncident))
                    }
                }
                var order: [(Millis, Int)] = []
                for s in t.channel.indices {
                    if let (at, k, inc) = seen[registry.channels[t.channel[s]].id] { t.see(s, at: at, connected: k); t[open: s] = inc }
                    if t[open: s] == nil { order.append((t.seenConnected(s), s)) }
                }
                order.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
                for (_, s) in order { t.append(s) }
                e.absence[r] = t
                e.armAbsenceReminders(r)
            } else {
                guard case .array(let sts)? = saved["states"] else { continue }
                for case .object(let so) in sts {
                    guard let k = so["k"]?.stringValue, case .object(let key)? = so["key"] else { continue }
                    var st = KeyState(key: key)
                    st.runStart = so["rs"]?.numberValue.map { Millis($0) }
                    st.runCount = Int(so["rc"]?.numberValue ?? 0)
                    st.runReading = so["rr"].flatMap { decodeReading($0, registry: registry) }
                    if case .array(let w)? = so["w"] { st.window = w.compactMap { $0.numberValue.map { Millis($0) } } }
                    st.incident = so["inc"].flatMap(decodeIncident)
                    e.rearm(r, k, &st)
                    e.states[r][k] = st
                }
            }
        }
        return (e, kept)
    }

    /// `restore` for callers that keep no timeline (tests, tools).
    public static func restore(_ bytes: [UInt8], ruleSet: RuleSet, registry: ChannelRegistry) -> (engine: RuleEngine, kept: [String])? {
        var timeline = Timeline()
        return restore(bytes, ruleSet: ruleSet, registry: registry, timeline: &timeline)
    }

    static func encode(_ r: Reading) -> JSONValue {
        var o = JSONObject()
        o.appendUnique("topic", .string(r.topic))
        o.appendUnique("feed", .string(r.feed))
        if let c = r.channel { o.appendUnique("channel", .string(c)) }
        o.appendUnique("cap", .array(r.captures.map { .array([.string($0.name), .string($0.value)]) }))
        o.appendUnique("p", .object(r.payload))
        o.appendUnique("at", .number(Double(r.receivedAt)))
        return .object(o)
    }

    static func decodeReading(_ v: JSONValue, registry: ChannelRegistry) -> Reading? {
        guard case .object(let o) = v, let topic = o["topic"]?.stringValue, let feed = o["feed"]?.stringValue,
            case .object(let p)? = o["p"], let at = o["at"]?.numberValue
        else { return nil }
        var caps: [(name: String, value: String)] = []
        if case .array(let cs)? = o["cap"] {
            for case .array(let pair) in cs where pair.count == 2 {
                if let n = pair[0].stringValue, let v = pair[1].stringValue { caps.append((n, v)) }
            }
        }
        let channel = o["channel"]?.stringValue
        return Reading(
            topic: topic, feed: feed, channel: channel, captures: caps, payload: p, receivedAt: Millis(at),
            channelIndex: channel.flatMap { registry.lookup($0) })
    }

    static func encode(_ s: ReadingSnapshot?) -> JSONValue {
        guard let s else { return .null }
        return ["topic": .string(s.topic), "at": .number(Double(s.receivedAt)), "p": .object(s.payload)]
    }

    static func decodeSnapshot(_ v: JSONValue?) -> ReadingSnapshot? {
        guard case .object(let o)? = v, let topic = o["topic"]?.stringValue, let at = o["at"]?.numberValue, case .object(let p)? = o["p"] else { return nil }
        return ReadingSnapshot(topic: topic, receivedAt: Millis(at), payload: p)
    }

    static func encode(_ i: OpenIncident) -> JSONValue {
        var o = JSONObject()
        o.appendUnique("id", .string(i.incidentID))
        o.appendUnique("next", .number(Double(i.nextEventOrdinal)))
        o.appendUnique("started", .number(Double(i.startedAt)))
        o.appendUnique("opened", .number(Double(i.openedAt)))
        o.appendUnique("count", .number(Double(i.count)))
        o.appendUnique("emitted", .number(Double(i.lastEmittedAt)))
        o.appendUnique("matched", .number(Double(i.lastMatchAt)))
        o.appendUnique("feed", .string(i.feed))
        if let c = i.channel { o.appendUnique("channel", .string(c)) }
        o.appendUnique("info", .object(i.channelInfo))
        o.appendUnique("route", .string(i.route))
        o.appendUnique("title", .string(i.title))
        o.appendUnique("labels", .object(i.labels))
        o.appendUnique("key", .object(i.key))
        o.appendUnique("last", encode(i.lastReading))
        if let c = i.clearRunStart { o.appendUnique("crs", .number(Double(c))) }
        o.appendUnique("crr", encode(i.clearRunReading))
        if let a = i.acknowledgedAt { o.appendUnique("ack_at", .number(Double(a))) }
        if let b = i.acknowledgedBy { o.appendUnique("ack_by", .string(b)) }
        if i.reminders > 0 { o.appendUnique("reminders", .number(Double(i.reminders))) }
        return .object(o)
    }

    static func decodeIncident(_ v: JSONValue) -> OpenIncident? {
        guard case .object(let o) = v, let id = o["id"]?.stringValue, let next = o["next"]?.numberValue,
            let started = o["started"]?.numberValue, let opened = o["opened"]?.numberValue, let count = o["count"]?.numberValue,
            let emitted = o["emitted"]?.numberValue, let matched = o["matched"]?.numberValue, let feed = o["feed"]?.stringValue,
            let route = o["route"]?.stringValue, let title = o["title"]?.stringValue
        else { return nil }
        return OpenIncident(
            incidentID: id, nextEventOrdinal: Int(next), startedAt: Millis(started), openedAt: Millis(opened),
            count: Int(count), lastEmittedAt: Millis(emitted), lastMatchAt: Millis(matched), feed: feed,
            channel: o["channel"]?.stringValue, channelInfo: o["info"]?.objectValue ?? JSONObject(), route: route,
            title: title, labels: o["labels"]?.objectValue ?? JSONObject(), key: o["key"]?.objectValue ?? JSONObject(),
            lastReading: decodeSnapshot(o["last"]), clearRunStart: o["crs"]?.numberValue.map { Millis($0) },
            clearRunReading: decodeSnapshot(o["crr"]), acknowledgedAt: o["ack_at"]?.numberValue.map { Millis($0) },
            acknowledgedBy: o["ack_by"]?.stringValue, reminders: Int(o["reminders"]?.numberValue ?? 0))
    }
}

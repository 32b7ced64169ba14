import CPrefetch

/// Turns (topic, payload bytes, arrival time) into a reading or a dead letter,
/// by the rules of the subscriptions, the registry and the payload limits.
/// `run`, `replay` and `vigil test` all decode through this one type.
public struct ReadingDecoder: TopicStrings, Sendable {
    public enum UnknownChannels: String, Sendable { case accept, reject }

    public struct Limits: Sendable {
        public var maxPayload: Int
        public var maxDepth: Int
        public init(maxPayload: Int = 64 * 1024, maxDepth: Int = 32) {
            self.maxPayload = maxPayload; self.maxDepth = maxDepth
        }
    }

    public let subscriptions: [Subscription]
    public let knownFeeds: Set<String>
    public let registry: ChannelRegistry
    public let unknownChannels: UnknownChannels
    public let limits: Limits
    public typealias Route = Result<TopicRoute, DeadLetterReason>

    public init(subscriptions: [Subscription], registry: ChannelRegistry, unknownChannels: UnknownChannels, limits: Limits) {
        self.subscriptions = subscriptions
        self.registry = registry
        self.unknownChannels = unknownChannels
        self.limits = limits
        let slots = TopicInterner.slots(forChannels: registry.count)
        routes = TopicTable(slots: slots)
        byIdentity = Array(repeating: -1, count: slots / 2)
        var feeds = Set<String>()
        for s in subscriptions { if case .literal(let f) = s.feed { feeds.insert(f) } }
        self.knownFeeds = feeds
    }

    /// The feeds named literally by the subscriptions.
    public static func knownFeeds(_ subscriptions: [Subscription]) -> Set<String> {
        var feeds = Set<String>()
        for s in subscriptions { if case .literal(let f) = s.feed { feeds.insert(f) } }
        return feeds
    }

    /// The topics seen, with their routes: a fleet of devices repeats the same
    /// few thousand topics, so a topic's route is worked out once.
    var routes: TopicTable<KnownTopic>

    /// A topic's route, and what `prefetch` needs to reach ahead of time
    /// without touching the route: its object's address and its channel.
    struct KnownTopic: Sendable {
        var route: Route
        /// The addresses of the route object (0 for a dead letter's route)
        /// and of the topic's bytes (0 when they are inline in the `String`):
        /// only ever prefetch hints, read without a retain (which would wait
        /// for the very load the hint is meant to start).
        var object: UInt
        var bytes: UInt
        /// The channel's registry index, -1 when none.
        var channel: Int

        init(_ route: Route, topic: String) {
            self.route = route
            // A native string's bytes stay where they are for as long as the entry holds it.
            bytes = topic.utf8.count <= 15 ? 0 : topic.utf8.withContiguousStorageIfAvailable { UInt(bitPattern: $0.baseAddress) } ?? 0
            switch route {
            case .success(let r):
                object = UInt(bitPattern: Unmanaged.passUnretained(r).toOpaque())
                channel = r.channelIndex ?? -1
            case .failure:
                object = 0
                channel = -1
            }
        }
    }

    /// A payload's member names and short values, made once.
    var shortStrings = ShortStrings()

    /// Each payload object is parsed into this one; once the reading before
    /// is gone, its storage serves the next (no allocation a message).
    var scratch = JSONObject()

    /// The entry of the topic `string(_:)` returned last: replay interns a
    /// record's topic here and decodes the record next, so the route is found
    /// with the topic, in one lookup.
    var lastInterned = -1

    /// The topic whose UTF-8 bytes are `bytes` as a `String`, the one made
    /// before when the topic was seen before; its route is ready for the
    /// decoding that follows. `bytes` must be valid UTF-8.
    public mutating func string(_ bytes: UnsafeRawBufferPointer) -> String {
        lastInterned = entry(bytes, nil)
        return routes.entries[lastInterned].topic
    }

    /// The entry last found for a topic `String`, by the string's two words
    /// (for a topic longer than 15 bytes, its storage's address): the MQTT
    /// client hands over the same `String` for the same topic again and
    /// again (`TopicInterner`), and the table keeps the one it was first
    /// given. Only a hint, -1 when none: an entry counts only when its topic
    /// is that very string (bit for bit; the table holds it, so it is alive
    /// and its address is no other string's).
    var byIdentity: [Int32]

    /// Where a topic goes, from the table when it was seen before.
    public mutating func cachedRoute(topic: String) -> Route {
        if routes.entries.indices.contains(lastInterned), routes.entries[lastInterned].topic.isBitwiseIdentical(to: topic) {
            return routes.entries[lastInterned].value.route
        }
        let (w0, w1) = unsafeBitCast(topic, to: (UInt64, UInt64).self)
        let slot = Int(truncatingIfNeeded: ((w0 ^ w1) &* 0x9E37_79B9_7F4A_7C15) >> 40) & (byIdentity.count - 1)
        let hinted = Int(byIdentity[slot])
        if hinted >= 0, hinted < routes.entries.count, routes.entries[hinted].topic.isBitwiseIdentical(to: topic) {
            return routes.entries[hinted].value.route
        }
        var t = topic
        let e = t.withUTF8 { entry(UnsafeRawBufferPointer($0), topic) }  // may add to the table: look after
        byIdentity[slot] = Int32(truncatingIfNeeded: e)
        return routes.entries[e].value.route
    }

    /// The table's entry for a topic's bytes, added when new (`topic`: the
    /// bytes as a `String`, when the caller has one).
    mutating func entry(_ bytes: UnsafeRawBufferPointer, _ topic: String?) -> Int {
        let hash = FastHash.hash(bytes)
        let (found, slot) = routes.find(bytes, hash: hash)
        if let found { return found }
        let t = topic ?? String(decoding: bytes, as: UTF8.self)
        return routes.insert(t, KnownTopic(route(topic: t), topic: t), hash: hash, slot: slot)
    }

    /// Whether `prefetch` pays: the table of routes has outgrown the
    /// processor's nearer caches (below this, a lookup finds it all there
    /// and looking ahead only adds work).
    public var worthPrefetching: Bool { routes.entries.count >= 16_384 }

    /// Starts loading what decoding these topics will read: the table's
    /// slots, then their entries, then the topics' bytes and route objects,
    /// each step for all of them at once. One record at a time waits for
    /// each of these in turn, and a 100,000-channel table lies far outside
    /// the processor's cache; replay, which has the next records at hand,
    /// asks for them a batch ahead. Only hints: nothing observable changes.
    /// `channels[i]`: the registry index the route of `topics[i]` most
    /// likely has (-1: none or not known), for `RuleEngine.prefetch`.
    public func prefetch(topics: UnsafeBufferPointer<UnsafeRawBufferPointer>, channels: UnsafeMutableBufferPointer<Int>) {
        withUnsafeTemporaryAllocation(of: UInt64.self, capacity: topics.count) { hashes in
            for i in topics.indices {
                hashes[i] = FastHash.hash(topics[i])
                routes.prefetchSlot(hashes[i])
            }
            // `channels` holds the entries' indices until their channels replace them.
            for i in topics.indices { channels[i] = routes.prefetchEntry(hashes[i]) ?? -1 }
            routes.entries.withUnsafeBufferPointer { entries in
                for i in topics.indices where channels[i] >= 0 {
                    let e = channels[i]
                    // The fields alone: a copy of the topic or the route would retain it.
                    if let bytes = UnsafeRawPointer(bitPattern: entries[e].value.bytes) {
                        vigil_prefetch(bytes - 32)  // the string object's header, which `string(_:)`'s retain writes
                        vigil_prefetch(bytes)
                        vigil_prefetch(bytes + topics[i].count - 1)  // a topic may end on the next cache line
                    }
                    if let object = UnsafeRawPointer(bitPattern: entries[e].value.object) { vigil_prefetch(object) }
                    channels[i] = entries[e].value.channel
                }
            }
        }
    }

    /// Where a topic goes: feed, channel and captures, or why it goes nowhere.
    public func route(topic: String) -> Route {
        // An ASCII topic (nearly every one) is split on its bytes: there every
        // byte is a character. A split by `Character` walks grapheme clusters,
        // most of a new topic's cost; it stays for the rest, where a `/` and a
        // combining mark after it are one character.
        let levels =
            topic.utf8.allSatisfy { $0 < 0x80 }
            ? topic.utf8.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).map { Substring($0) }
            : topic.split(separator: "/", omittingEmptySubsequences: false)
        for sub in subscriptions {
            guard let captures = sub.pattern.match(levels) else { continue }
            var channel: String?
            for c in captures where c.name == "channel" { channel = c.value }
            let feed: String
            switch sub.feed {
            case .literal(let f): feed = f
            case .capture(let name):
                guard let v = captures.first(where: { $0.name == name })?.value, knownFeeds.contains(v) else {
                    return .failure(.unknownFeed)
                }
                feed = v
            }
            let index = channel.flatMap { registry.lookup($0) }
            if index == nil && unknownChannels == .reject { return .failure(.unknownChannel) }
            return .success(TopicRoute(feed: feed, channel: channel, captures: captures, channelIndex: index))
        }
        return .failure(.noSubscription)
    }

    /// Decodes a live message.
    public mutating func decode(topic: String, payload: UnsafeBufferPointer<UInt8>, at: Millis) -> Result<Reading, DeadLetter> {
        func dead(_ r: DeadLetterReason, _ detail: String) -> Result<Reading, DeadLetter> {
            .failure(DeadLetter(topic: topic, reason: r, detail: detail, payload: Array(payload), receivedAt: at))
        }
        let routed: TopicRoute
        switch cachedRoute(topic: topic) {
        case .success(let r): routed = r
        case .failure(let reason): return dead(reason, ReadingDecoder.explain(reason, topic: topic))
        }
        if payload.count > limits.maxPayload {
            return dead(.tooLarge, "payload of \(payload.count) bytes exceeds max_payload \(limits.maxPayload)")
        }
        let value: JSONValue
        do {
            let maxDepth = limits.maxDepth
            value = try withUnsafeMutablePointer(to: &shortStrings) { strings throws(JSONError) in
                try withUnsafeMutablePointer(to: &scratch) { scratch throws(JSONError) in
                    try JSONParser.parse(payload, maxDepth: maxDepth, strings: strings, scratch: scratch)
                }
            }
        } catch {
            switch error {
            case .invalidUTF8: return dead(.invalidUTF8, error.description)
            case .invalidJSON: return dead(.invalidJSON, error.description)
            case .tooDeep: return dead(.tooDeep, "JSON nested deeper than max_json_depth \(limits.maxDepth)")
            }
        }
        guard case .object(let obj) = value else { return dead(.notObject, "payload is a \(value.typeName), not an object") }
        return .success(Reading(topic: topic, route: routed, payload: obj, receivedAt: at))
    }

    public mutating func decode(topic: String, payload: [UInt8], at: Millis) -> Result<Reading, DeadLetter> {
        payload.withUnsafeBufferPointer { decode(topic: topic, payload: $0, at: at) }
    }

    /// Decodes a recorded message whose payload the record parser already parsed.
    public mutating func decode(record: RecordedMessage) -> Result<Reading, DeadLetter> {
        switch record.payload {
        case .bytes(let b):
            return decode(topic: record.topic, payload: b, at: record.ts)
        case .parsed(let value, let size, let depth):
            func dead(_ r: DeadLetterReason, _ detail: String) -> Result<Reading, DeadLetter> {
                .failure(DeadLetter(topic: record.topic, reason: r, detail: detail, payload: Array(value.description.utf8), receivedAt: record.ts))
            }
            let routed: TopicRoute
            switch cachedRoute(topic: record.topic) {
            case .success(let r): routed = r
            case .failure(let reason): return dead(reason, ReadingDecoder.explain(reason, topic: record.topic))
            }
            if size > limits.maxPayload { return dead(.tooLarge, "payload of \(size) bytes exceeds max_payload \(limits.maxPayload)") }
            if depth > limits.maxDepth { return dead(.tooDeep, "JSON nested deeper than max_json_depth \(limits.maxDepth)") }
            guard case .object(let obj) = value else { return dead(.notObject, "payload is a \(value.typeName), not an object") }
            return .success(Reading(topic: record.topic, route: routed, payload: obj, receivedAt: record.ts))
        }
    }

    static func explain(_ reason: DeadLetterReason, topic: String) -> String {
        switch reason {
        case .noSubscription: return "topic matches no subscription"
        case .unknownChannel: return "channel is not in the registry (unknown_channels: reject)"
        case .unknownFeed: return "the topic names a feed no subscription declares"
        default: return reason.rawValue
        }
    }
}

extension JSONValue {
    /// Nesting depth: a scalar is 0, `{}` is 1.
    public var depth: Int {
        switch self {
        case .array(let a): return 1 + (a.map(\.depth).max() ?? 0)
        case .object(let o): return 1 + (o.members.map(\.value.depth).max() ?? 0)
        default: return 0
        }
    }
}

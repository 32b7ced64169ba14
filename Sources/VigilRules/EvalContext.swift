import VigilCore

/// What an expression can see: the reading (payload, topic, captures), the
/// channel (id and registry columns) and the feed. Absence rules and
/// maintenance windows evaluate against a channel without a reading.
public struct EvalContext {
    public var payload: JSONObject?
    public var topic: String?
    /// Feed, channel id and captures (a reading's route, shared, not copied).
    public var route: TopicRoute
    /// The registry columns of the channel, when it is registered.
    public var channelInfo: JSONObject? {
        get {
            if let storedInfo { return storedInfo }
            guard let channels, let i = route.channelIndex else { return nil }
            return channels[i].info
        }
        set { storedInfo = newValue; channels = nil }
    }
    var storedInfo: JSONObject?
    /// A reading's context looks its channel's columns up only when asked:
    /// most readings are judged by their payload alone, and the registry's
    /// array is in the cache where one channel's columns seldom are.
    var channels: [Channel]?

    public var captures: [(name: String, value: String)] { route.captures }
    public var channelID: String? { route.channel }
    public var feed: String { route.feed }

    public init(
        payload: JSONObject?, topic: String?, captures: [(name: String, value: String)], channelID: String?,
        channelInfo: JSONObject?, feed: String
    ) {
        self.payload = payload; self.topic = topic; self.storedInfo = channelInfo
        route = TopicRoute(feed: feed, channel: channelID, captures: captures, channelIndex: nil)
    }

    public init(reading: Reading, registry: ChannelRegistry) {
        payload = reading.payload; topic = reading.topic; route = reading.route
        channels = registry.channels
    }

    public init(channel: Channel) {
        self.init(payload: nil, topic: nil, captures: [], channelID: channel.id, channelInfo: channel.info, feed: channel.feed)
    }

    @inline(__always)
    func lookup(_ ref: NameRef) -> JSONValue {
        var v: JSONValue
        var steps = ref.path[...]
        switch ref.root {
        case .payload:
            guard let payload else { return .null }
            guard case .key(let first)? = steps.first else { return .object(payload) }
            v = payload[first] ?? .null
            steps = steps.dropFirst()
        case .channelID: v = channelID.map(JSONValue.string) ?? .null
        case .channelColumn(let c): v = channelInfo?[c] ?? .null
        case .topic: v = topic.map(JSONValue.string) ?? .null
        case .topicCapture(let name):
            v = .null
            for c in captures where c.name == name { v = .string(c.value); break }
        case .feed: v = .string(feed)
        }
        for step in steps {
            switch step {
            case .key(let k): v = v[k]
            case .index(let i): v = v[i]
            }
            if v.isNull { return .null }
        }
        return v
    }
}

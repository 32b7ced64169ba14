import VigilCore

/// What an expression can see: the reading (payload, topic, captures), the
/// channel (id and registry columns) and the feed. Absence rules and
/// maintenance windows evaluate against a channel without a reading.
public struct EvalContext {
    public var payload: JSONObject?
    public var topic: String?
    public var captures: [(name: String, value: String)]
    public var channelID: String?
    public var channelInfo: JSONObject?
    public var feed: String

    public init(payload: JSONObject?, topic: String?, captures: [(name: String, value: String)], channelID: String?,
                channelInfo: JSONObject?, feed: String) {
        self.payload = payload; self.topic = topic; self.captures = captures
        self.channelID = channelID; self.channelInfo = channelInfo; self.feed = feed
    }

    public init(reading: Reading, registry: ChannelRegistry) {
        self.init(payload: reading.payload, topic: reading.topic, captures: reading.captures, channelID: reading.channel,
                  channelInfo: reading.channelIndex.map { registry.channels[$0].info }, feed: reading.feed)
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

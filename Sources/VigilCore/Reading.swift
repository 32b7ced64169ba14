/// One message that matched a subscription and decoded to a JSON object.
public struct Reading: Sendable {
    public var topic: String
    public var feed: String
    /// The `{channel}` capture, when the subscription has one.
    public var channel: String?
    /// `{name}` captures of the topic, in pattern order.
    public var captures: [(name: String, value: String)]
    public var payload: JSONObject
    /// Arrival time (the daemon's clock; in replay, the record's `ts`).
    public var receivedAt: Millis
    /// Index into the channel registry, when the channel is registered.
    public var channelIndex: Int?

    public init(topic: String, feed: String, channel: String?, captures: [(name: String, value: String)],
                payload: JSONObject, receivedAt: Millis, channelIndex: Int?) {
        self.topic = topic; self.feed = feed; self.channel = channel; self.captures = captures
        self.payload = payload; self.receivedAt = receivedAt; self.channelIndex = channelIndex
    }

    public func capture(_ name: String) -> String? {
        for c in captures where c.name == name { return c.value }
        return nil
    }
}

/// Why a message did not become a reading.
public enum DeadLetterReason: String, Sendable, CaseIterable, Error {
    case invalidUTF8 = "invalid_utf8"
    case invalidJSON = "invalid_json"
    case notObject = "not_object"
    case tooLarge = "too_large"
    case tooDeep = "too_deep"
    case noSubscription = "no_subscription"
    case unknownChannel = "unknown_channel"
    case unknownFeed = "unknown_feed"
}

/// A message that did not become a reading, with why.
public struct DeadLetter: Sendable, Error {
    public var topic: String
    public var reason: DeadLetterReason
    public var detail: String
    public var payload: [UInt8]
    public var receivedAt: Millis

    public init(topic: String, reason: DeadLetterReason, detail: String, payload: [UInt8], receivedAt: Millis) {
        self.topic = topic; self.reason = reason; self.detail = detail; self.payload = payload; self.receivedAt = receivedAt
    }
}

/// Where a topic goes: its feed, channel and captures. A device sends on the
/// same topic again and again, so one route is shared by all its readings.
public final class TopicRoute: Sendable {
    public let feed: String
    /// The `{channel}` capture, when the subscription has one.
    public let channel: String?
    /// `{name}` captures of the topic, in pattern order.
    public let captures: [(name: String, value: String)]
    /// Index into the channel registry, when the channel is registered.
    public let channelIndex: Int?

    public init(feed: String, channel: String?, captures: [(name: String, value: String)], channelIndex: Int?) {
        self.feed = feed; self.channel = channel; self.captures = captures; self.channelIndex = channelIndex
    }
}

/// One message that matched a subscription and decoded to a JSON object.
public struct Reading: Sendable {
    public var topic: String
    public let route: TopicRoute
    public var payload: JSONObject
    /// Arrival time (the daemon's clock; in replay, the record's `ts`).
    public var receivedAt: Millis

    public var feed: String { route.feed }
    /// The `{channel}` capture, when the subscription has one.
    public var channel: String? { route.channel }
    /// `{name}` captures of the topic, in pattern order.
    public var captures: [(name: String, value: String)] { route.captures }
    /// Index into the channel registry, when the channel is registered.
    public var channelIndex: Int? { route.channelIndex }

    public init(topic: String, route: TopicRoute, payload: JSONObject, receivedAt: Millis) {
        self.topic = topic; self.route = route; self.payload = payload; self.receivedAt = receivedAt
    }

    public init(
        topic: String, feed: String, channel: String?, captures: [(name: String, value: String)],
        payload: JSONObject, receivedAt: Millis, channelIndex: Int?
    ) {
        self.init(
            topic: topic, route: TopicRoute(feed: feed, channel: channel, captures: captures, channelIndex: channelIndex),
            payload: payload, receivedAt: receivedAt)
    }

    public func capture(_ name: String) -> String? {
        for c in route.captures where c.name == name { return c.value }
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

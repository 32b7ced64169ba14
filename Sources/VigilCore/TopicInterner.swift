#if canImport(Glibc)
import Glibc
#endif

/// Turns a topic's bytes into a `String`, the same one for the same topic
/// where it can: the MQTT client's interner, and the decoder (replay).
public protocol TopicStrings {
    /// `bytes` must be valid UTF-8.
    mutating func string(_ bytes: UnsafeRawBufferPointer) -> String
}

/// A new `String` every time.
public struct FreshTopics: TopicStrings {
    public init() {}
    public mutating func string(_ bytes: UnsafeRawBufferPointer) -> String { String(decoding: bytes, as: UTF8.self) }
}

/// The topics of recent messages, by their bytes. A fleet of devices sends on
/// the same few thousand topics again and again, so a message's topic is
/// almost always a `String` made before: one hash and one comparison of the
/// bytes instead of an allocation and a UTF-8 check for every message. The
/// MQTT client interns what libmosquitto hands it; replay interns the topics
/// of its records.
public struct TopicInterner: TopicStrings, Sendable {
    var strings: [String?]
    let mask: Int

    /// `slots`, a power of two: far more than the topics expected (a few per
    /// channel, `slots(forChannels:)`), so two topics seldom share one.
    public init(slots: Int = 1 << 16) {
        precondition(slots > 0 && slots & (slots - 1) == 0, "slots must be a power of two")
        strings = Array(repeating: nil, count: slots)
        mask = slots - 1
    }

    /// Sixteen slots a channel (a channel has a few topics), from 4,096 to 524,288.
    public static func slots(forChannels n: Int) -> Int {
        var s = 1 << 12
        while s < n * 16 && s < 1 << 19 { s <<= 1 }
        return s
    }

    /// The topic as a `String`; `bytes` must be valid UTF-8.
    public mutating func string(_ bytes: UnsafeRawBufferPointer) -> String {
        let i = FastHash.slot(bytes, mask: mask)
        if let known = strings[i], known.hasUTF8(bytes) { return known }
        let made = String(decoding: bytes, as: UTF8.self)
        strings[i] = made
        return made
    }

    /// A C string of libmosquitto's (it has checked that it is UTF-8).
    public mutating func string(_ topic: UnsafePointer<CChar>) -> String {
        string(UnsafeRawBufferPointer(start: topic, count: strlen(topic)))
    }
}

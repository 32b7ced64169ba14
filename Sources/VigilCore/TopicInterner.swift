#if canImport(Glibc)
import Glibc
#endif

/// The topics of recent messages, by their bytes. A fleet of devices sends on
/// the same few thousand topics again and again, so a message's topic is
/// almost always a `String` made before: one hash and one comparison of the
/// bytes instead of an allocation and a UTF-8 check for every message. The
/// MQTT client interns what libmosquitto hands it; replay interns the topics
/// of its records.
public struct TopicInterner: Sendable {
    /// Far more slots than a district has topics (a few per channel), so two
    /// topics seldom share one.
    static let slots = 1 << 16
    var strings: [String?] = Array(repeating: nil, count: TopicInterner.slots)

    public init() {}

    /// The topic as a `String`; `bytes` must be valid UTF-8.
    public mutating func string(_ bytes: UnsafeRawBufferPointer) -> String {
        let i = Int(truncatingIfNeeded: FastHash.hash(bytes) >> 48) & (TopicInterner.slots - 1)
        if var known = strings[i], known.utf8.count == bytes.count {
            let same = bytes.isEmpty || known.withUTF8 { memcmp($0.baseAddress!, bytes.baseAddress!, bytes.count) == 0 }
            if same { return known }
        }
        let made = String(decoding: bytes, as: UTF8.self)
        strings[i] = made
        return made
    }

    /// A C string of libmosquitto's (it has checked that it is UTF-8).
    public mutating func string(_ topic: UnsafePointer<CChar>) -> String {
        string(UnsafeRawBufferPointer(start: topic, count: strlen(topic)))
    }
}

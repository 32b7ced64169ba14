import VigilCore
#if canImport(Glibc)
import Glibc
#endif

/// The topics of recent messages, by their bytes. A fleet of devices sends on
/// the same few thousand topics again and again, so a message's topic is
/// almost always a `String` made before: one hash and one comparison of the
/// bytes instead of an allocation and a UTF-8 check for every message.
struct TopicInterner {
    static let slots = 4096
    var strings: [String?] = Array(repeating: nil, count: TopicInterner.slots)

    /// The topic as a `String` (libmosquitto has checked it is UTF-8).
    mutating func string(_ topic: UnsafePointer<CChar>) -> String {
        let bytes = UnsafeRawBufferPointer(start: topic, count: strlen(topic))
        let i = Int(truncatingIfNeeded: FastHash.hash(bytes) >> 52) & (TopicInterner.slots - 1)
        if var known = strings[i], known.utf8.count == bytes.count {
            let same = bytes.isEmpty || known.withUTF8 { memcmp($0.baseAddress!, bytes.baseAddress!, bytes.count) == 0 }
            if same { return known }
        }
        let made = String(decoding: bytes, as: UTF8.self)
        strings[i] = made
        return made
    }
}

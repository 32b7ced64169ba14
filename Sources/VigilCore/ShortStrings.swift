#if canImport(Glibc)
import Glibc
#endif

/// The short strings a parse makes again and again — a payload's member
/// names, `"event":"heartbeat"`, `"session":"idle"` — found by their bytes.
/// A device fleet sends the same few dozen of them in every message; making
/// each anew checks its UTF-8 and builds it for every message. Up to 15
/// bytes (the length Swift keeps inside the `String` itself, so a hit copies
/// two words and counts no reference). One entry a slot: two strings that
/// share a slot take turns, and a miss makes the string as before.
public struct ShortStrings: Sendable {
    struct Entry: Sendable {
        /// The bytes, zero-padded, the length in the top byte of `high`.
        var low: UInt64 = 0
        var high: UInt64 = 0
        var string = ""
    }

    static let longest = 15
    var entries: [Entry]

    public init() { entries = Array(repeating: Entry(), count: 256) }

    /// The string of `count` (at most `longest`) bytes of valid UTF-8 at
    /// `bytes`, where `room` bytes (at least `count`) may be read.
    @inline(__always)
    mutating func string(_ bytes: UnsafePointer<UInt8>, count: Int, room: Int) -> String {
        let low = ShortStrings.word(bytes, count: min(count, 8), room: room)
        var high = count > 8 ? ShortStrings.word(bytes + 8, count: count - 8, room: room - 8) : 0
        high |= UInt64(truncatingIfNeeded: count) << 56
        let slot = Int(truncatingIfNeeded: ((low &* 0x9E37_79B9_7F4A_7C15) ^ (high &* 0xC2B2_AE3D_27D4_EB4F)) >> 56)
        if entries[slot].low == low && entries[slot].high == high { return entries[slot].string }
        let s = String(decoding: UnsafeBufferPointer(start: bytes, count: count), as: UTF8.self)
        entries[slot] = Entry(low: low, high: high, string: s)
        return s
    }

    /// The first `count` (0...8) bytes at `bytes` as a little-endian word,
    /// zero above them: one load where eight bytes may be read (`room`),
    /// else a copy of the bytes alone.
    @inline(__always)
    static func word(_ bytes: UnsafePointer<UInt8>, count: Int, room: Int) -> UInt64 {
        if room >= 8 {
            let w = UInt64(littleEndian: UnsafeRawPointer(bytes).loadUnaligned(as: UInt64.self))
            return count == 8 ? w : w & ((1 &<< UInt64(count &* 8)) &- 1)
        }
        var w: UInt64 = 0
        memcpy(&w, bytes, count)
        return UInt64(littleEndian: w)
    }
}

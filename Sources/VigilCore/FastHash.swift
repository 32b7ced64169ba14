/// A quick 64-bit hash of bytes, eight at a time (FxHash's mixing step). For
/// in-memory caches keyed by data vigil itself sees (topics), where SipHash's
/// protection against chosen collisions buys nothing and costs a lot per message.
public enum FastHash {
    @inline(__always)
    static func mix(_ h: UInt64, _ word: UInt64) -> UInt64 {
        (((h << 5) | (h >> 59)) ^ word) &* 0x517C_C1B7_2722_0A95
    }

    /// Every input bit reaches the high bits, which the caches take their slot from.
    @inline(__always)
    static func finish(_ h: UInt64) -> UInt64 {
        var x = h ^ (h >> 33)
        x = x &* 0xFF51_AFD7_ED55_8CCD
        return x ^ (x >> 33)
    }

    /// A cache slot for `bytes` in a table of `mask + 1` slots (a power of two).
    @inline(__always)
    public static func slot(_ bytes: UnsafeRawBufferPointer, mask: Int) -> Int {
        Int(truncatingIfNeeded: hash(bytes) >> 32) & mask
    }

    public static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        var h: UInt64 = UInt64(bytes.count)
        var i = 0
        let n = bytes.count
        while i + 8 <= n {
            h = mix(h, bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
            i += 8
        }
        if i < n {
            var tail: UInt64 = 0
            var shift: UInt64 = 0
            while i < n {
                tail |= UInt64(bytes[i]) << shift
                shift += 8
                i += 1
            }
            h = mix(h, tail)
        }
        return finish(h)
    }
}

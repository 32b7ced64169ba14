/// Lower-case hexadecimal digits of bytes (digests in ids and fingerprints).
public enum Hex {
    public static func encode<S: Sequence<UInt8>>(_ bytes: S) -> String {
        let digits: StaticString = "0123456789abcdef"
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        digits.withUTF8Buffer { d in
            for b in bytes { out.append(d[Int(b >> 4)]); out.append(d[Int(b & 0xF)]) }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

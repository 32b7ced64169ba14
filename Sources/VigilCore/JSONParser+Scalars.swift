// JSONParser: strings (escapes, surrogates) and numbers.

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension JSONParser {
    /// At a string without escapes or control characters: its bytes, and the
    /// parser moves past it. Otherwise nil, and the parser stays where it is.
    mutating func plainString() -> UnsafeRawBufferPointer? {
        guard pos < end, base[pos] == UInt8(ascii: "\"") else { return nil }
        var i = pos + 1
        while i < end {
            let c = base[i]
            if c == UInt8(ascii: "\"") {
                let bytes = UnsafeRawBufferPointer(start: base + pos + 1, count: i - pos - 1)
                pos = i + 1
                return bytes
            }
            if c == UInt8(ascii: "\\") || c < 0x20 { return nil }
            i += 1
        }
        return nil
    }

    mutating func parseString() throws(JSONError) -> String {
        pos += 1  // opening quote
        let start = pos
        // Fast path: no escapes.
        while pos < end {
            let c = base[pos]
            if c == UInt8(ascii: "\"") {
                let n = pos - start
                pos += 1
                if let strings, n <= ShortStrings.longest { return strings.pointee.string(base + start, count: n, room: end - start) }
                return String(decoding: UnsafeBufferPointer(start: base + start, count: n), as: UTF8.self)
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw fail("control character in string") }
            pos += 1
        }
        guard pos < end else { throw fail("unterminated string") }
        var bytes = [UInt8](UnsafeBufferPointer(start: base + start, count: pos - start))
        while pos < end {
            let c = base[pos]
            if c == UInt8(ascii: "\"") {
                pos += 1
                return String(decoding: bytes, as: UTF8.self)
            }
            if c < 0x20 { throw fail("control character in string") }
            if c != UInt8(ascii: "\\") { bytes.append(c); pos += 1; continue }
            pos += 1
            guard pos < end else { throw fail("unterminated string") }
            let e = base[pos]
            pos += 1
            switch e {
            case UInt8(ascii: "\""): bytes.append(0x22)
            case UInt8(ascii: "\\"): bytes.append(0x5C)
            case UInt8(ascii: "/"): bytes.append(0x2F)
            case UInt8(ascii: "b"): bytes.append(0x08)
            case UInt8(ascii: "f"): bytes.append(0x0C)
            case UInt8(ascii: "n"): bytes.append(0x0A)
            case UInt8(ascii: "r"): bytes.append(0x0D)
            case UInt8(ascii: "t"): bytes.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try parseHex4()
                if scalar >= 0xD800 && scalar < 0xDC00 {
                    // A high surrogate must be followed by an escaped low surrogate.
                    guard end - pos >= 6, base[pos] == UInt8(ascii: "\\"), base[pos + 1] == UInt8(ascii: "u") else {
                        throw fail("unpaired surrogate")
                    }
                    pos += 2
                    let low = try parseHex4()
                    guard low >= 0xDC00 && low < 0xE000 else { throw fail("unpaired surrogate") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if scalar >= 0xDC00 && scalar < 0xE000 {
                    throw fail("unpaired surrogate")
                }
                guard let u = Unicode.Scalar(scalar) else { throw fail("invalid escape") }
                bytes.append(contentsOf: UTF8.encode(u)!)
            default:
                pos -= 1
                throw fail("invalid escape")
            }
        }
        throw fail("unterminated string")
    }

    mutating func parseHex4() throws(JSONError) -> UInt32 {
        guard end - pos >= 4 else { throw fail("invalid \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = base[pos]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - 48)
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - 87)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - 55)
            default: throw fail("invalid \\u escape")
            }
            v = v << 4 | d
            pos += 1
        }
        return v
    }

    mutating func parseNumber() throws(JSONError) -> Double {
        let start = pos
        var negative = false
        if base[pos] == UInt8(ascii: "-") { negative = true; pos += 1 }
        guard pos < end, isDigit(base[pos]) else { throw fail("invalid number") }
        var mantissa: UInt64 = 0
        var digits = 0
        if base[pos] == UInt8(ascii: "0") {
            pos += 1
            if pos < end && isDigit(base[pos]) { throw fail("leading zero in number") }
        } else {
            while pos < end && isDigit(base[pos]) {
                mantissa = mantissa &* 10 &+ UInt64(base[pos] - 48)
                digits += 1; pos += 1
            }
        }
        var fractionDigits = 0
        if pos < end && base[pos] == UInt8(ascii: ".") {
            pos += 1
            guard pos < end, isDigit(base[pos]) else { throw fail("invalid number") }
            while pos < end && isDigit(base[pos]) {
                mantissa = mantissa &* 10 &+ UInt64(base[pos] - 48)
                digits += 1; fractionDigits += 1; pos += 1
            }
        }
        var hasExponent = false
        if pos < end && (base[pos] == UInt8(ascii: "e") || base[pos] == UInt8(ascii: "E")) {
            hasExponent = true
            pos += 1
            if pos < end && (base[pos] == UInt8(ascii: "+") || base[pos] == UInt8(ascii: "-")) { pos += 1 }
            guard pos < end, isDigit(base[pos]) else { throw fail("invalid number") }
            while pos < end && isDigit(base[pos]) { pos += 1 }
        }
        // Exact fast path: a mantissa below 2^53 divided by an exact power of ten
        // rounds correctly. Everything else goes to strtod.
        if !hasExponent && digits <= 15 && fractionDigits <= 22 {
            var v = Double(mantissa)
            if fractionDigits > 0 { v /= JSONParser.powersOfTen[fractionDigits] }
            return negative ? -v : v
        }
        var text = [CChar](repeating: 0, count: pos - start + 1)
        for i in 0..<(pos - start) { text[i] = CChar(bitPattern: base[start + i]) }
        return strtod(text, nil)
    }

    static let powersOfTen: [Double] = (0...22).map { e in
        var v = 1.0
        for _ in 0..<e { v *= 10 }
        return v
    }

    @inline(__always) func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }
}

/// Compact JSON text, written by hand so the output is byte-for-byte
/// deterministic (member order kept, shortest number forms).
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    public var string: String { String(decoding: bytes, as: UTF8.self) }

    /// Empties the buffer, keeping its capacity.
    public mutating func reset() { bytes.removeAll(keepingCapacity: true) }

    public mutating func raw(_ s: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    public mutating func raw(_ s: String) { bytes.append(contentsOf: s.utf8) }

    public mutating func write(_ value: JSONValue) {
        switch value {
        case .null: raw("null")
        case .bool(let b): b ? raw("true") : raw("false")
        case .number(let d): raw(JSONWriter.format(d))
        case .string(let s): writeString(s)
        case .array(let a):
            bytes.append(UInt8(ascii: "["))
            for (i, v) in a.enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                write(v)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let o):
            bytes.append(UInt8(ascii: "{"))
            var first = true
            for (k, v) in o.members {
                if !first { bytes.append(UInt8(ascii: ",")) }
                first = false
                writeString(k)
                bytes.append(UInt8(ascii: ":"))
                write(v)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }

    public mutating func writeString(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        var s = s
        // Runs of bytes that need no escaping are copied whole.
        s.withUTF8 { u in
            var runStart = 0
            for i in 0..<u.count {
                let c = u[i]
                guard c < 0x20 || c == 0x22 || c == 0x5C else { continue }
                if runStart < i { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: u[runStart..<i])) }
                runStart = i + 1
                switch c {
                case 0x22: raw("\\\"")
                case 0x5C: raw("\\\\")
                case 0x0A: raw("\\n")
                case 0x0D: raw("\\r")
                case 0x09: raw("\\t")
                case 0x08: raw("\\b")
                case 0x0C: raw("\\f")
                default:
                    raw("\\u00")
                    bytes.append(JSONWriter.hex[Int(c >> 4)])
                    bytes.append(JSONWriter.hex[Int(c & 0xF)])
                }
            }
            if runStart < u.count { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: u[runStart...])) }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// A time as a JSON string in RFC 3339 form.
    public mutating func writeTime(_ ms: Millis) {
        bytes.append(UInt8(ascii: "\""))
        Time.append(ms, to: &bytes)
        bytes.append(UInt8(ascii: "\""))
    }

    /// An integer in decimal.
    public mutating func writeInt(_ n: Int) {
        if n < 0 { bytes.append(UInt8(ascii: "-")) }
        var x = n.magnitude
        var digits:
            (
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
            ) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat { d[19 - count] = UInt8(48 + x % 10); x /= 10; count += 1 } while x > 0
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: d[(20 - count)...]))
        }
    }

    /// `"key":` for object builders.
    public mutating func key(_ k: StaticString, first: Bool = false) {
        if !first { bytes.append(UInt8(ascii: ",")) }
        bytes.append(UInt8(ascii: "\""))
        raw(k)
        raw("\":")
    }

    static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// The shortest text that reads back as the same number: `71`, `70.5`, `1e-07`.
    /// JSON has no NaN or infinity; they become `null`.
    public static func format(_ d: Double) -> String {
        if !d.isFinite { return "null" }
        if d == d.rounded(.towardZero) && abs(d) < 1e15 {
            if d == 0 { return "0" }
            return String(Int64(d))
        }
        return "\(d)"
    }

    public static func encode(_ value: JSONValue) -> String {
        var w = JSONWriter()
        w.write(value)
        return w.string
    }
}

extension JSONValue: CustomStringConvertible {
    public var description: String { JSONWriter.encode(self) }
}

/// One line of a recording (replay input, test input, journal export):
/// `{"ts": …, "topic": "…", "payload": {…}}`, or `payload_text` /
/// `payload_base64` for payloads that are not JSON.
public struct RecordedMessage: Sendable {
    public enum Payload: Sendable {
        /// Raw bytes, decoded like a live message.
        case bytes([UInt8])
        /// Already parsed from the record (`payload`), with its size in bytes.
        case parsed(JSONValue, size: Int, depth: Int)
    }

    public var ts: Millis
    public var topic: String
    public var payload: Payload

    public init(ts: Millis, topic: String, payload: Payload) {
        self.ts = ts; self.topic = topic; self.payload = payload
    }

    /// Parses one line. Errors are messages without position; the caller adds the line number.
    public static func parse(line: UnsafeBufferPointer<UInt8>, maxDepth: Int) -> Result<RecordedMessage, UnitError> {
        if let bad = UTF8Validation.firstInvalidByte(line) {
            return .failure(UnitError("invalid UTF-8 at byte \(bad) (use payload_base64 for binary payloads)"))
        }
        var p = JSONParser(line, maxDepth: 10_000)
        var ts: Millis?
        var topic: String?
        var payload: Payload?
        do {
            p.skipWhitespace()
            guard !p.atEnd, p.current == UInt8(ascii: "{") else { return .failure(UnitError("a record must be a JSON object")) }
            p.pos += 1
            p.skipWhitespace()
            if !p.atEnd && p.current == UInt8(ascii: "}") { p.pos += 1 } else {
                while true {
                    p.skipWhitespace()
                    guard !p.atEnd, p.current == UInt8(ascii: "\"") else { throw p.fail("expected a member name") }
                    let key = try p.parseString()
                    p.skipWhitespace()
                    guard !p.atEnd, p.current == UInt8(ascii: ":") else { throw p.fail("expected ':'") }
                    p.pos += 1
                    p.skipWhitespace()
                    let start = p.pos
                    p.deepest = 0
                    let value = try p.parseValue(depth: 1)
                    switch key {
                    case "ts":
                        switch value {
                        case .number(let d) where d == d.rounded() && d.magnitude < 1e16: ts = Millis(d)
                        case .string(let s):
                            guard let t = Time.parse(s) else { return .failure(UnitError("ts '\(s)' is not an RFC 3339 time")) }
                            ts = t
                        default: return .failure(UnitError("ts must be milliseconds since the epoch or an RFC 3339 time"))
                        }
                    case "topic":
                        guard case .string(let s) = value else { return .failure(UnitError("topic must be a string")) }
                        topic = s
                    case "payload":
                        payload = .parsed(value, size: p.pos - start, depth: p.deepest)
                    case "payload_text":
                        guard case .string(let s) = value else { return .failure(UnitError("payload_text must be a string")) }
                        payload = .bytes(Array(s.utf8))
                    case "payload_base64":
                        guard case .string(let s) = value, let b = Base64.decode(s) else {
                            return .failure(UnitError("payload_base64 must be a base64 string"))
                        }
                        payload = .bytes(b)
                    default:
                        break  // other fields (qos, retain, …) are kept by recorders; replay does not need them
                    }
                    p.skipWhitespace()
                    guard !p.atEnd else { throw p.fail("unexpected end of record") }
                    let c = p.current
                    p.pos += 1
                    if c == UInt8(ascii: ",") { continue }
                    if c == UInt8(ascii: "}") { break }
                    p.pos -= 1
                    throw p.fail("expected ',' or '}'")
                }
            }
            p.skipWhitespace()
            if !p.atEnd { throw p.fail("unexpected bytes after the record") }
        } catch {
            return .failure(UnitError("invalid JSON: \(error)"))
        }
        guard let ts else { return .failure(UnitError("the record has no ts")) }
        guard let topic else { return .failure(UnitError("the record has no topic")) }
        guard let payload else { return .failure(UnitError("the record has no payload, payload_text or payload_base64")) }
        return .success(RecordedMessage(ts: ts, topic: topic, payload: payload))
    }
}

/// Standard base64 (RFC 4648), padding optional.
public enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func decode(_ text: String) -> [UInt8]? {
        var table = [Int8](repeating: -1, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = Int8(i) }
        var out: [UInt8] = []
        var acc: UInt32 = 0
        var bits = 0
        for c in text.utf8 {
            if c == UInt8(ascii: "=") { break }
            if c == 0x0A || c == 0x0D { continue }
            let v = table[Int(c)]
            if v < 0 { return nil }
            acc = acc << 6 | UInt32(v)
            bits += 6
            if bits >= 8 { bits -= 8; out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits))) }
        }
        return out
    }

    public static func encode(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            let b0 = UInt32(bytes[i])
            let b1 = i + 1 < bytes.count ? UInt32(bytes[i + 1]) : 0
            let b2 = i + 2 < bytes.count ? UInt32(bytes[i + 2]) : 0
            let n = b0 << 16 | b1 << 8 | b2
            out.append(alphabet[Int(n >> 18 & 63)])
            out.append(alphabet[Int(n >> 12 & 63)])
            out.append(i + 1 < bytes.count ? alphabet[Int(n >> 6 & 63)] : UInt8(ascii: "="))
            out.append(i + 2 < bytes.count ? alphabet[Int(n & 63)] : UInt8(ascii: "="))
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A broker mark (SPEC §4, blind time): the connection was lost, or is back.
public enum BrokerMark: String, Sendable, Equatable {
    case lost, connected
}

/// A person's acknowledgement of an open incident (SPEC §7), an input like a reading.
public struct Acknowledgement: Sendable, Equatable {
    public var incidentID: String
    public var by: String
    public var note: String?

    public init(incidentID: String, by: String, note: String?) {
        self.incidentID = incidentID; self.by = by; self.note = note
    }
}

/// One line of a recording (replay input, journal export): a message, a
/// broker mark or an acknowledgement, each with its arrival time `ts`.
public enum Record: Sendable {
    case message(RecordedMessage)
    case mark(ts: Millis, BrokerMark)
    case ack(ts: Millis, Acknowledgement)

    public var ts: Millis {
        switch self {
        case .message(let m): return m.ts
        case .mark(let ts, _), .ack(let ts, _): return ts
        }
    }

    /// Parses one line. Errors are messages without position; the caller adds the line number.
    public static func parse(line: UnsafeBufferPointer<UInt8>, maxDepth: Int) -> Result<Record, UnitError> {
        var topics = FreshTopics()
        return parse(line: line, maxDepth: maxDepth, topics: &topics)
    }

    /// Parses one line, its topic through `topics` (replay: a recording
    /// repeats a few thousand topics), the payload's short strings through
    /// `strings` when given. A payload object is parsed into `scratch` when
    /// given, and the record holds a copy of it: one record after another,
    /// the payloads share one storage (once the record before is gone).
    public static func parse<Topics: TopicStrings>(
        line: UnsafeBufferPointer<UInt8>, maxDepth: Int, topics: inout Topics, strings: UnsafeMutablePointer<ShortStrings>? = nil,
        scratch: UnsafeMutablePointer<JSONObject>? = nil
    ) -> Result<Record, UnitError> {
        if let bad = UTF8Validation.firstInvalidByte(line) {
            return .failure(UnitError("invalid UTF-8 at byte \(bad) (use payload_base64 for binary payloads)"))
        }
        var p = JSONParser(line, maxDepth: 10_000)
        p.strings = strings
        var ts: Millis?
        var topic: String?
        var payload: RecordedMessage.Payload?
        var mark: BrokerMark?
        var ack: String?
        var by: String?
        var note: String?
        do {
            p.skipWhitespace()
            guard !p.atEnd, p.current == UInt8(ascii: "{") else { return .failure(UnitError("a record must be a JSON object")) }
            p.pos += 1
            p.skipWhitespace()
            if !p.atEnd && p.current == UInt8(ascii: "}") {
                p.pos += 1
            } else {
                while true {
                    p.skipWhitespace()
                    guard !p.atEnd, p.current == UInt8(ascii: "\"") else { throw p.fail("expected a member name") }
                    // A member name without escapes is matched by its bytes: no string is made for it.
                    let key = try p.plainString().map(Field.init) ?? Field(try p.parseString())
                    p.skipWhitespace()
                    guard !p.atEnd, p.current == UInt8(ascii: ":") else { throw p.fail("expected ':'") }
                    p.pos += 1
                    p.skipWhitespace()
                    if key == .topic, let bytes = p.plainString() {
                        // The line is valid UTF-8 (checked above), and so are these bytes.
                        topic = topics.string(bytes)
                    } else if key == .payload, let scratch, !p.atEnd, p.current == UInt8(ascii: "{") {
                        let start = p.pos
                        p.deepest = 0
                        try p.parseObject(depth: 1, into: &scratch.pointee)
                        payload = .parsed(.object(scratch.pointee), size: p.pos - start, depth: p.deepest)
                    } else {
                        let start = p.pos
                        p.deepest = 0
                        let value = try p.parseValue(depth: 1)
                        switch key {
                        case .ts:
                            switch value {
                            case .number(let d) where d == d.rounded() && d.magnitude < 1e16: ts = Millis(d)
                            case .string(let s):
                                guard let t = Time.parse(s) else { return .failure(UnitError("ts '\(s)' is not an RFC 3339 time")) }
                                ts = t
                            default: return .failure(UnitError("ts must be milliseconds since the epoch or an RFC 3339 time"))
                            }
                        case .topic:
                            guard case .string(let s) = value else { return .failure(UnitError("topic must be a string")) }
                            topic = s
                        case .payload:
                            payload = .parsed(value, size: p.pos - start, depth: p.deepest)
                        case .payloadText:
                            guard case .string(let s) = value else { return .failure(UnitError("payload_text must be a string")) }
                            payload = .bytes(Array(s.utf8))
                        case .payloadBase64:
                            guard case .string(let s) = value, let b = Base64.decode(s) else {
                                return .failure(UnitError("payload_base64 must be a base64 string"))
                            }
                            payload = .bytes(b)
                        case .broker:
                            guard case .string(let s) = value, let m = BrokerMark(rawValue: s) else {
                                return .failure(UnitError("broker must be \"lost\" or \"connected\""))
                            }
                            mark = m
                        case .ack:
                            guard case .string(let s) = value, !s.isEmpty else { return .failure(UnitError("ack must be an incident id")) }
                            ack = s
                        case .by:
                            guard case .string(let s) = value else { return .failure(UnitError("by must be a string")) }
                            by = s
                        case .note:
                            switch value {
                            case .string(let s): note = s
                            case .null: note = nil
                            default: return .failure(UnitError("note must be a string or null"))
                            }
                        default:
                            break  // other fields (qos, retain, …) are kept by recorders; replay does not need them
                        }
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
        let kinds = (topic != nil || payload != nil ? 1 : 0) + (mark != nil ? 1 : 0) + (ack != nil ? 1 : 0)
        if kinds > 1 { return .failure(UnitError("a record is a message (topic), a broker mark (broker) or an acknowledgement (ack), not several")) }
        if let mark { return .success(.mark(ts: ts, mark)) }
        if let ack {
            guard let by, !by.isEmpty else { return .failure(UnitError("an acknowledgement needs by (who acknowledged)")) }
            return .success(.ack(ts: ts, Acknowledgement(incidentID: ack, by: by, note: note)))
        }
        guard let topic else { return .failure(UnitError("the record has no topic")) }
        guard let payload else { return .failure(UnitError("the record has no payload, payload_text or payload_base64")) }
        return .success(.message(RecordedMessage(ts: ts, topic: topic, payload: payload)))
    }
}

extension Record {
    /// The bytes of a line's topic, found without parsing the line: the
    /// string after the first `"topic":"` (as recorders write it), when it
    /// has no escapes. A hint for looking ahead (`ReadingDecoder.prefetch`),
    /// never a parse: an unusual line just gets no hint. `guess`: where the
    /// member began in the line before, looked at first (a recorder's lines
    /// have it at the same place); updated.
    public static func likelyTopic(in line: UnsafeBufferPointer<UInt8>, guess: inout Int) -> UnsafeRawBufferPointer? {
        // `"topic":` as one little-endian word, then the value's opening quote.
        let marker: UInt64 = 0x3A22_6369_706F_7422
        let bytes = UnsafeRawBufferPointer(line)
        func isMarker(_ i: Int) -> Bool {
            i >= 0 && i + 9 <= bytes.count && bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self) == marker && bytes[i + 8] == 0x22
        }
        var at = guess
        if !isMarker(at) {
            at = 0
            while at + 9 <= bytes.count && !isMarker(at) { at += 1 }
            if at + 9 > bytes.count { return nil }
            guess = at
        }
        let start = at + 9
        var end = start
        while end < bytes.count {
            let c = bytes[end]
            if c == 0x22 { return UnsafeRawBufferPointer(rebasing: bytes[start..<end]) }
            if c == 0x5C { return nil }
            end += 1
        }
        return nil
    }
}

extension Record {
    /// The members of a record line, by name; `other` for those replay does not read.
    enum Field: String, CaseIterable {
        case ts, topic, payload, payloadText = "payload_text", payloadBase64 = "payload_base64", broker, ack, by, note
        case other = ""

        static let names: [(bytes: [UInt8], field: Field)] = allCases.filter { $0 != .other }.map { (Array($0.rawValue.utf8), $0) }

        /// A member name as its bytes in the line: the three of every
        /// message record by their first byte and length, the rest by name.
        init(_ bytes: UnsafeRawBufferPointer) {
            switch (bytes.count, bytes.first) {
            case (2, UInt8(ascii: "t")?) where bytes[1] == UInt8(ascii: "s"): self = .ts; return
            case (5, UInt8(ascii: "t")?) where Field.equal(bytes, "topic"): self = .topic; return
            case (7, UInt8(ascii: "p")?) where Field.equal(bytes, "payload"): self = .payload; return
            default: break
            }
            for (name, field) in Field.names where name.count == bytes.count && name.withUnsafeBytes({ $0.elementsEqual(bytes) }) {
                self = field
                return
            }
            self = .other
        }

        @inline(__always)
        static func equal(_ bytes: UnsafeRawBufferPointer, _ name: StaticString) -> Bool {
            name.utf8CodeUnitCount == bytes.count && memcmp(name.utf8Start, bytes.baseAddress!, bytes.count) == 0
        }

        /// A member name that had escapes.
        init(_ name: String) { self = Field(rawValue: name) ?? .other }
    }
}

/// A recorded message: `{"ts": …, "topic": "…", "payload": {…}}`, or
/// `payload_text` / `payload_base64` for payloads that are not JSON.
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

    /// Parses one line that must be a message record.
    public static func parse(line: UnsafeBufferPointer<UInt8>, maxDepth: Int) -> Result<RecordedMessage, UnitError> {
        switch Record.parse(line: line, maxDepth: maxDepth) {
        case .success(.message(let m)): return .success(m)
        case .success: return .failure(UnitError("expected a message record (ts, topic, payload)"))
        case .failure(let e): return .failure(e)
        }
    }

    /// The payload's bytes as a live message carries them.
    public var payloadBytes: [UInt8] {
        switch payload {
        case .bytes(let b): return b
        case .parsed(let v, _, _): return Array(v.description.utf8)
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Why bytes are not an acceptable JSON document. The cases are the dead-letter
/// reasons of the payload checks.
public enum JSONError: Error, Equatable, Sendable, CustomStringConvertible {
    case invalidUTF8(offset: Int)
    case invalidJSON(offset: Int, message: String)
    case tooDeep(limit: Int)

    public var description: String {
        switch self {
        case .invalidUTF8(let o): return "invalid UTF-8 at byte \(o)"
        case .invalidJSON(let o, let m): return "\(m) at byte \(o)"
        case .tooDeep(let l): return "nesting deeper than \(l)"
        }
    }
}

/// A strict RFC 8259 parser over bytes. It is the hot path of ingestion and
/// replay, so it reads bytes directly and allocates only the values it returns.
public struct JSONParser: ~Copyable {
    @usableFromInline let base: UnsafePointer<UInt8>
    @usableFromInline let end: Int
    @usableFromInline var pos: Int = 0
    let maxDepth: Int
    /// The deepest nesting seen so far (`{}` is 1).
    var deepest = 0
    /// Where short strings without escapes come from, when the caller keeps them.
    var strings: UnsafeMutablePointer<ShortStrings>?

    init(_ buffer: UnsafeBufferPointer<UInt8>, maxDepth: Int) {
        // An empty buffer has no base address; point at a static byte instead.
        self.base = buffer.baseAddress ?? JSONParser.emptyBase
        self.end = buffer.count
        self.maxDepth = maxDepth
    }

    nonisolated(unsafe) private static let emptyStorage: UnsafeMutablePointer<UInt8> = {
        let p = UnsafeMutablePointer<UInt8>.allocate(capacity: 1); p.pointee = 0; return p
    }()
    private static var emptyBase: UnsafePointer<UInt8> { UnsafePointer(emptyStorage) }

    /// Parses one complete document. Trailing bytes other than white space
    /// are an error. A document that is an object is parsed into `scratch`
    /// when given (see `parseObject(depth:into:)`), and the value returned
    /// holds a copy of it.
    public static func parse(
        _ bytes: UnsafeBufferPointer<UInt8>, maxDepth: Int = 512, strings: UnsafeMutablePointer<ShortStrings>? = nil,
        scratch: UnsafeMutablePointer<JSONObject>? = nil
    ) throws(JSONError) -> JSONValue {
        if let bad = UTF8Validation.firstInvalidByte(bytes) { throw .invalidUTF8(offset: bad) }
        var p = JSONParser(bytes, maxDepth: maxDepth)
        p.strings = strings
        p.skipWhitespace()
        let v: JSONValue
        if let scratch, !p.atEnd, p.current == UInt8(ascii: "{") {
            try p.parseObject(depth: 1, into: &scratch.pointee)
            v = .object(scratch.pointee)
        } else {
            v = try p.parseValue(depth: 1)
        }
        p.skipWhitespace()
        if p.pos != p.end { throw .invalidJSON(offset: p.pos, message: "unexpected bytes after the value") }
        return v
    }

    public static func parse(_ bytes: [UInt8], maxDepth: Int = 512) throws(JSONError) -> JSONValue {
        do {
            return try bytes.withUnsafeBufferPointer { buf in try parse(buf, maxDepth: maxDepth) }
        } catch let e as JSONError { throw e } catch { throw .invalidJSON(offset: 0, message: "\(error)") }
    }

    public static func parse(_ text: String, maxDepth: Int = 512) throws(JSONError) -> JSONValue {
        var t = text
        do {
            return try t.withUTF8 { buf in try parse(buf, maxDepth: maxDepth) }
        } catch let e as JSONError { throw e } catch { throw .invalidJSON(offset: 0, message: "\(error)") }
    }

    // MARK: - Internals (shared with RecordParser)

    @inline(__always) var current: UInt8 { base[pos] }
    @inline(__always) var atEnd: Bool { pos >= end }

    @inline(__always) mutating func skipWhitespace() {
        while pos < end {
            let c = base[pos]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { pos += 1 } else { return }
        }
    }

    func fail(_ message: String) -> JSONError { .invalidJSON(offset: pos, message: message) }

    mutating func parseValue(depth: Int) throws(JSONError) -> JSONValue {
        guard pos < end else { throw fail("unexpected end of input") }
        switch base[pos] {
        case UInt8(ascii: "{"): return .object(try parseObject(depth: depth))
        case UInt8(ascii: "["): return try parseArray(depth: depth)
        case UInt8(ascii: "\""): return .string(try parseString())
        case UInt8(ascii: "t"): try expectWord("true"); return .bool(true)
        case UInt8(ascii: "f"): try expectWord("false"); return .bool(false)
        case UInt8(ascii: "n"): try expectWord("null"); return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try parseNumber())
        default: throw fail("unexpected character")
        }
    }

    mutating func expectWord(_ word: StaticString) throws(JSONError) {
        let n = word.utf8CodeUnitCount
        guard end - pos >= n else { throw fail("unexpected end of input") }
        let w = word.utf8Start
        for i in 0..<n where base[pos + i] != w[i] { throw fail("invalid literal") }
        pos += n
    }

    mutating func parseObject(depth: Int) throws(JSONError) -> JSONObject {
        if depth > maxDepth { throw .tooDeep(limit: maxDepth) }
        if pos + 1 < end && base[pos + 1] == UInt8(ascii: "}") {
            if depth > deepest { deepest = depth }
            pos += 2
            return JSONObject()
        }
        // A device's reading has a handful of fields.
        var obj = JSONObject(reservingCapacity: 8)
        try parseObject(depth: depth, into: &obj)
        return obj
    }

    /// Parses an object into `obj`, emptied first. A caller that parses one
    /// payload after another into the same value reuses its storage when
    /// nothing else holds it any more: no allocation a payload.
    mutating func parseObject(depth: Int, into obj: inout JSONObject) throws(JSONError) {
        if depth > maxDepth { throw .tooDeep(limit: maxDepth) }
        if depth > deepest { deepest = depth }
        obj.removeAll(keepingCapacity: true)
        pos += 1
        skipWhitespace()
        if pos < end && base[pos] == UInt8(ascii: "}") { pos += 1; return }
        while true {
            skipWhitespace()
            guard pos < end, base[pos] == UInt8(ascii: "\"") else { throw fail("expected a member name") }
            let key = try parseString()
            skipWhitespace()
            guard pos < end, base[pos] == UInt8(ascii: ":") else { throw fail("expected ':'") }
            pos += 1
            skipWhitespace()
            let value = try parseValue(depth: depth + 1)
            obj[key] = value  // a repeated name keeps its last value
            skipWhitespace()
            guard pos < end else { throw fail("unexpected end of input") }
            let c = base[pos]
            pos += 1
            if c == UInt8(ascii: ",") { continue }
            if c == UInt8(ascii: "}") { return }
            pos -= 1
            throw fail("expected ',' or '}'")
        }
    }

    mutating func parseArray(depth: Int) throws(JSONError) -> JSONValue {
        if depth > maxDepth { throw .tooDeep(limit: maxDepth) }
        if depth > deepest { deepest = depth }
        pos += 1
        var items: [JSONValue] = []
        skipWhitespace()
        if pos < end && base[pos] == UInt8(ascii: "]") { pos += 1; return .array(items) }
        while true {
            skipWhitespace()
            items.append(try parseValue(depth: depth + 1))
            skipWhitespace()
            guard pos < end else { throw fail("unexpected end of input") }
            let c = base[pos]
            pos += 1
            if c == UInt8(ascii: ",") { continue }
            if c == UInt8(ascii: "]") { return .array(items) }
            pos -= 1
            throw fail("expected ',' or ']'")
        }
    }
}

/// UTF-8 validation (RFC 3629: no overlongs, no surrogates, nothing above U+10FFFF).
public enum UTF8Validation {
    /// The offset of the first byte that is not valid UTF-8, or nil.
    public static func firstInvalidByte(_ buf: UnsafeBufferPointer<UInt8>) -> Int? {
        guard let p = buf.baseAddress else { return nil }
        let n = buf.count
        var i = 0
        // A line of ASCII, 32 bytes at a time.
        while i + 32 <= n {
            let r = UnsafeRawPointer(p + i)
            let a = r.loadUnaligned(as: UInt64.self) | r.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
            let w = a | r.loadUnaligned(fromByteOffset: 16, as: UInt64.self) | r.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
            if w & 0x8080_8080_8080_8080 != 0 { break }
            i += 32
        }
        while i < n {
            // Eight ASCII bytes at a time.
            if i + 8 <= n {
                let w = UnsafeRawPointer(p + i).loadUnaligned(as: UInt64.self)
                if w & 0x8080_8080_8080_8080 == 0 { i += 8; continue }
            }
            let c = p[i]
            if c < 0x80 { i += 1; continue }
            var need = 0
            var minScalar: UInt32 = 0
            var scalar: UInt32 = 0
            if c & 0xE0 == 0xC0 {
                need = 1; minScalar = 0x80; scalar = UInt32(c & 0x1F)
            } else if c & 0xF0 == 0xE0 {
                need = 2; minScalar = 0x800; scalar = UInt32(c & 0x0F)
            } else if c & 0xF8 == 0xF0 {
                need = 3; minScalar = 0x10000; scalar = UInt32(c & 0x07)
            } else {
                return i
            }
            if i + need >= n { return i }
            for k in 1...need {
                let b = p[i + k]
                if b & 0xC0 != 0x80 { return i }
                scalar = scalar << 6 | UInt32(b & 0x3F)
            }
            if scalar < minScalar || scalar > 0x10FFFF || (scalar >= 0xD800 && scalar < 0xE000) { return i }
            i += need + 1
        }
        return nil
    }

    public static func isValid(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBufferPointer { firstInvalidByte($0) == nil }
    }
}

/// A JSON value as vigil sees it: payloads, incident fields, expression results.
///
/// Strings compare by Unicode code points (their UTF-8 bytes), never by canonical
/// equivalence: the rule language promises no normalisation.
public enum JSONValue: Sendable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public var isNull: Bool { if case .null = self { return true } else { return false } }

    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var numberValue: Double? { if case .number(let d) = self { return d } else { return nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var objectValue: JSONObject? { if case .object(let o) = self { return o } else { return nil } }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }

    /// Member lookup on objects; `.null` for anything else or a missing key.
    public subscript(key: String) -> JSONValue {
        if case .object(let o) = self { return o[key] ?? .null }
        return .null
    }

    /// Element lookup on arrays; `.null` out of range.
    public subscript(index: Int) -> JSONValue {
        if case .array(let a) = self, index >= 0, index < a.count { return a[index] }
        return .null
    }

    /// The name of the value's type, as error messages say it.
    public var typeName: String {
        switch self {
        case .null: return "null"
        case .bool: return "boolean"
        case .number: return "number"
        case .string: return "string"
        case .array: return "list"
        case .object: return "object"
        }
    }
}

extension JSONValue: Equatable {
    public static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case (.bool(let a), .bool(let b)): return a == b
        case (.number(let a), .number(let b)): return a == b
        case (.string(let a), .string(let b)): return a.sameCodePoints(b)
        case (.array(let a), .array(let b)): return a == b
        case (.object(let a), .object(let b)): return a == b
        default: return false
        }
    }
}

/// A JSON object that keeps its members in the order they were written, so a
/// payload reaches the sinks as the device sent it. Payloads are small: a linear
/// search beats hashing here. The members are one array of pairs: one
/// allocation a parsed payload, one reference to count when it is copied.
public struct JSONObject: Sendable, Equatable {
    public private(set) var members: [(key: String, value: JSONValue)]

    public init() { members = [] }

    /// Room for `capacity` members: a parsed payload grows its array once, not at every doubling.
    public init(reservingCapacity capacity: Int) {
        members = []
        members.reserveCapacity(capacity)
    }

    public init(_ members: [(String, JSONValue)]) {
        self.members = []
        self.members.reserveCapacity(members.count)
        for (k, v) in members { self[k] = v }
    }

    public var count: Int { members.count }
    public var isEmpty: Bool { members.isEmpty }
    /// The member names, in order.
    public var keys: [String] { members.map(\.key) }
    /// The member values, in order.
    public var values: [JSONValue] { members.map(\.value) }

    public subscript(key: String) -> JSONValue? {
        get {
            for i in members.indices where members[i].key.sameCodePoints(key) { return members[i].value }
            return nil
        }
        set {
            for i in members.indices where members[i].key.sameCodePoints(key) {
                if let newValue { members[i].value = newValue } else { members.remove(at: i) }
                return
            }
            if let newValue { members.append((key, newValue)) }
        }
    }

    /// Removes every member; `keepingCapacity` keeps the storage for the next ones.
    public mutating func removeAll(keepingCapacity: Bool) {
        guard keepingCapacity else { return members.removeAll() }
        // One member at a time: `removeAll(keepingCapacity:)` reaches the
        // members through a generic path, slower than a payload's few members
        // one by one. (Storage another value shares is copied once, at the
        // first removal.)
        while !members.isEmpty { members.removeLast() }
    }

    /// Appends without looking for an existing key; for builders that know keys are unique.
    public mutating func appendUnique(_ key: String, _ value: JSONValue) {
        members.append((key, value))
    }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        guard lhs.count == rhs.count else { return false }
        for (k, v) in lhs.members {
            guard let o = rhs[k], o == v else { return false }
        }
        return true
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByNilLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral
{
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .number(Double(value)) }
    public init(floatLiteral value: Double) { self = .number(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(nilLiteral: ()) { self = .null }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) { self = .object(JSONObject(elements)) }
}

#if canImport(Glibc)
import Glibc
#endif

extension String {
    /// Whether two strings are one value, bit for bit: the same storage with
    /// the same length, or the same small string. Equal bits are equal text;
    /// unequal bits say nothing (`sameCodePoints` compares the text). A
    /// `String` is two words on the 64-bit platforms vigil builds for.
    @inline(__always)
    public func isBitwiseIdentical(to other: String) -> Bool {
        unsafeBitCast(self, to: (UInt64, UInt64).self) == unsafeBitCast(other, to: (UInt64, UInt64).self)
    }

    /// Whether the string is stored inside its two words as ASCII (up to 15
    /// bytes): the top nibble of the second word is then 0xE (immortal,
    /// small, ASCII) in the layout of the 64-bit Linux targets vigil builds
    /// for (x86_64, arm64; not a target whose pointers carry tags).
    @inline(__always)
    var isSmallASCII: Bool { unsafeBitCast(self, to: (UInt64, UInt64).self).1 >> 60 == 0xE }

    /// Whether the string's UTF-8 is exactly `bytes`.
    @inline(__always)
    public func hasUTF8(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard utf8.count == bytes.count else { return false }
        return utf8.withContiguousStorageIfAvailable { bytes.isEmpty || memcmp($0.baseAddress!, bytes.baseAddress!, bytes.count) == 0 }
            ?? utf8.elementsEqual(bytes)
    }

    /// Equality of Unicode code points (UTF-8 bytes), without the canonical
    /// equivalence Swift's `==` applies.
    @inline(__always)
    public func sameCodePoints(_ other: String) -> Bool {
        // One value bit for bit is the same text: two equal short strings
        // (member names, a field's "alarm") are always that, with no copy.
        if isBitwiseIdentical(to: other) { return true }
        // Two short ASCII strings are their bytes, count and flags in the two
        // words, zero-padded: unequal bits are unequal text. (A payload's
        // member names against a rule's: no copy, no comparison of bytes.)
        if isSmallASCII && other.isSmallASCII { return false }
        // The byte counts first (constant time for native strings): most
        // names compared, a payload's member names, differ in length.
        guard utf8.count == other.utf8.count else { return false }
        var a = self, b = other
        return a.withUTF8 { pa in
            b.withUTF8 { pb in
                pa.count == pb.count && (pa.count == 0 || memcmp(pa.baseAddress!, pb.baseAddress!, pa.count) == 0)
            }
        }
    }
}

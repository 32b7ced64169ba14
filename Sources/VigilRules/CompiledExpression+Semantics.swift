// The value semantics compiled expressions evaluate with, and a string helper they use.

import VigilCore

/// The value semantics of the language: null is unknown and spreads.
enum Semantics {
    @inline(__always)
    static func not(_ v: JSONValue) -> JSONValue {
        if case .bool(let b) = v { return .bool(!b) }
        return .null
    }

    static func equal(_ x: JSONValue, _ y: JSONValue) -> JSONValue {
        switch (x, y) {
        case (.null, _), (_, .null): return .null
        case (.number(let a), .number(let b)): return .bool(a == b)
        case (.string(let a), .string(let b)): return .bool(a.utf8.elementsEqual(b.utf8))
        case (.bool(let a), .bool(let b)): return .bool(a == b)
        case (.array, .array), (.object, .object): return .bool(x == y)
        default: return .null
        }
    }

    /// Ordering of numbers, and of strings by code points; anything else is unknown.
    static func compare(_ x: JSONValue, _ y: JSONValue, _ test: (Int) -> Bool) -> JSONValue {
        switch (x, y) {
        case (.number(let a), .number(let b)):
            if a.isNaN || b.isNaN { return .null }
            return .bool(test(a < b ? -1 : (a > b ? 1 : 0)))
        case (.string(let a), .string(let b)):
            let c: Int
            if a.utf8.elementsEqual(b.utf8) { c = 0 } else { c = a.utf8.lexicographicallyPrecedes(b.utf8) ? -1 : 1 }
            return .bool(test(c))
        default: return .null
        }
    }

    /// `x in list` / `list contains x`, and substring tests on strings.
    static func member(_ x: JSONValue, of container: JSONValue) -> JSONValue {
        switch container {
        case .array(let items):
            if x.isNull { return .null }
            var sawUnknown = false
            for item in items {
                switch equal(x, item) {
                case .bool(true): return .bool(true)
                case .null: sawUnknown = true
                default: break
                }
            }
            // A list of one type that simply lacks x answers false; a list of
            // other types cannot say.
            return sawUnknown && !items.contains(where: { sameKind($0, x) }) ? .null : .bool(false)
        case .string(let s):
            guard case .string(let sub) = x else { return .null }
            if sub.isEmpty { return .bool(true) }
            let hay = Array(s.utf8), needle = Array(sub.utf8)
            if needle.count > hay.count { return .bool(false) }
            for i in 0...(hay.count - needle.count) where hay[i] == needle[0] {
                if hay[i..<(i + needle.count)].elementsEqual(needle) { return .bool(true) }
            }
            return .bool(false)
        default:
            return .null
        }
    }

    static func sameKind(_ a: JSONValue, _ b: JSONValue) -> Bool {
        switch (a, b) {
        case (.number, .number), (.string, .string), (.bool, .bool), (.array, .array), (.object, .object): return true
        default: return false
        }
    }

    @inline(__always)
    static func arithmetic(_ x: JSONValue, _ y: JSONValue, _ f: (Double, Double) -> Double) -> JSONValue {
        guard case .number(let a) = x, case .number(let b) = y else { return .null }
        let r = f(a, b)
        return r.isFinite ? .number(r) : .null
    }

    @inline(__always)
    static func numeric(_ x: JSONValue, _ f: (Double) -> Double) -> JSONValue {
        guard case .number(let a) = x else { return .null }
        return .number(f(a))
    }
}

extension String {
    func trimmingPrefixAndSuffixSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s.removeFirst() }
        while let l = s.last, l.isWhitespace { s.removeLast() }
        return String(s)
    }
}

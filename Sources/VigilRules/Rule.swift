import VigilCore

/// A compiled rule, ready for the engine.
public struct Rule: Sendable {
    public enum Kind: Sendable, Equatable {
        /// `when` held on every reading for `for` (0 = at once).
        case threshold(holdFor: Millis)
        /// `count` matching readings within a sliding `within`.
        case count(count: Int, within: Millis)
        /// No counting reading from a registry channel for `absent_for`.
        case absence(absentFor: Millis)
    }

    public struct KeyField: Sendable {
        public let name: String
        let expression: CompiledExpression
    }

    public var name: String
    public var description: String?
    /// nil = every feed (`"*"`).
    public var feeds: Set<String>?
    public var kind: Kind
    public var when: CompiledExpression?
    /// What clears an open incident; nil when only `clear_after` does.
    public var clearWhen: CompiledExpression?
    public var clearFor: Millis
    public var clearAfter: Millis?
    public var key: [KeyField]
    public var severity: Severity
    public var route: String?
    public var title: Template?
    public var labels: [(name: String, template: Template)]
    public var updateEvery: Millis
    public var location: SourceLocation
    /// A digest of the rule's definition: a reload keeps the state of rules whose digest did not change.
    public var fingerprint: String

    public func applies(toFeed feed: String) -> Bool { feeds?.contains(feed) ?? true }

    public var isAbsence: Bool { if case .absence = kind { return true } else { return false } }
}

/// `inhibit`: while a source incident is open, target rules open nothing where `equal` fields match.
public struct Inhibit: Sendable {
    public var source: String
    public var target: String
    public var equal: [(name: String, expression: CompiledExpression)]
    public var location: SourceLocation

    public func targets(_ rule: String) -> Bool { Glob.match(pattern: target, rule) }
}

/// `maintenance`: matching channels open nothing during the window.
public struct MaintenanceWindow: Sendable {
    public var name: String
    public var match: CompiledExpression?
    public var schedule: Schedule?
    public var from: Millis?
    public var until: Millis?
    public var location: SourceLocation

    public func covers(_ t: Millis) -> Bool {
        if let from, t < from { return false }
        if let until, t >= until { return false }
        if let schedule { return schedule.covers(t) }
        return true
    }
}

/// Every rule, inhibit and maintenance window of the loaded files.
public struct RuleSet: Sendable {
    public var rules: [Rule] = []
    public var inhibits: [Inhibit] = []
    public var maintenance: [MaintenanceWindow] = []
    public var files: [String] = []
    public init() {}
}

/// Shell-style wildcards (`*`, `?`) for rule names.
public enum Glob {
    public static func match(pattern: String, _ text: String) -> Bool {
        let p = Array(pattern.unicodeScalars), t = Array(text.unicodeScalars)
        var pi = 0, ti = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count, p[pi] == "?" || p[pi] == t[ti] { pi += 1; ti += 1 }
            else if pi < p.count, p[pi] == "*" { star = pi; mark = ti; pi += 1 }
            else if star >= 0 { pi = star + 1; mark += 1; ti = mark }
            else { return false }
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}

import VigilCore

/// A compiled rule, ready for the engine. A class: the engine reads it on
/// every reading, and a reference is cheaper to pass around than a dozen fields.
public final class Rule: Sendable {
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

    public let name: String
    public let description: String?
    /// nil = every feed (`"*"`).
    public let feeds: Set<String>?
    public let kind: Kind
    public let when: CompiledExpression?
    /// What clears an open incident; nil when only `clear_after` does.
    public let clearWhen: CompiledExpression?
    public let clearFor: Millis
    public let clearAfter: Millis?
    public let key: [KeyField]
    public let severity: Severity
    public let route: String?
    public let title: Template?
    public let labels: [(name: String, template: Template)]
    public let updateEvery: Millis
    /// While an incident is open and not acknowledged: `incident.reminded` this often (nil: never).
    public let remindEvery: Millis?
    public let location: SourceLocation
    /// A digest of the rule's definition: a reload keeps the state of rules whose digest did not change.
    public let fingerprint: String

    public init(
        name: String, description: String?, feeds: Set<String>?, kind: Kind, when: CompiledExpression?, clearWhen: CompiledExpression?, clearFor: Millis,
        clearAfter: Millis?, key: [KeyField], severity: Severity, route: String?, title: Template?, labels: [(name: String, template: Template)],
        updateEvery: Millis, remindEvery: Millis? = nil, location: SourceLocation, fingerprint: String
    ) {
        self.name = name
        self.description = description
        self.feeds = feeds
        self.kind = kind
        self.when = when
        self.clearWhen = clearWhen
        self.clearFor = clearFor
        self.clearAfter = clearAfter
        self.key = key
        self.severity = severity
        self.route = route
        self.title = title
        self.labels = labels
        self.updateEvery = updateEvery
        self.remindEvery = remindEvery
        self.location = location
        self.fingerprint = fingerprint
    }

    public func applies(toFeed feed: String) -> Bool { feeds?.contains(feed) ?? true }

    public var isAbsence: Bool { if case .absence = kind { return true } else { return false } }
}

/// `inhibit`: while a source incident is open, target rules open nothing where `equal` fields match.
public struct Inhibit: Sendable {
    public var source: String
    public var target: String
    public var equal: [(name: String, expression: CompiledExpression)]
    public let location: SourceLocation

    public func targets(_ rule: String) -> Bool { Glob.match(pattern: target, rule) }
}

/// `maintenance`: matching channels open nothing during the window.
public struct MaintenanceWindow: Sendable {
    public let name: String
    public var match: CompiledExpression?
    public var schedule: Schedule?
    public var from: Millis?
    public var until: Millis?
    public let location: SourceLocation

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
            if pi < p.count, p[pi] == "?" || p[pi] == t[ti] {
                pi += 1; ti += 1
            } else if pi < p.count, p[pi] == "*" {
                star = pi; mark = ti; pi += 1
            } else if star >= 0 {
                pi = star + 1; mark += 1; ti = mark
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}

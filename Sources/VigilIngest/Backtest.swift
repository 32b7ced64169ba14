import VigilConfig
import VigilCore
import VigilRules

/// `vigil backtest`: the journal evaluated twice from a fresh state — with the
/// configured rules and with a new set — and what each set opened. Incident
/// ids are deterministic, so an incident both sets opened has the same id in
/// both; the rest is the difference a rule change makes.
public struct Backtest {
    /// What one set of rules did.
    public struct Side: Sendable {
        public var opened: [String: Int] = [:]
        public var resolved: [String: Int] = [:]
        /// Every incident opened, by id.
        public var incidents: [String: Incident] = [:]
    }

    public struct Incident: Sendable {
        public var rule: String
        public var severity: Severity
        public var channel: String?
        public var community: String?
        public var openedAt: Millis
    }

    public struct Report: Sendable {
        public var configured: Side
        public var candidate: Side
        public var records = 0
        public var from: Millis?
        public var to: Millis?
        /// The rules of each set, those that opened nothing included.
        public var configuredRules: Set<String> = []
        public var candidateRules: Set<String> = []

        /// Every rule of either set (and a built-in one that fired), in name order.
        public var rules: [String] {
            configuredRules.union(candidateRules).union(configured.opened.keys).union(configured.resolved.keys)
                .union(candidate.opened.keys).union(candidate.resolved.keys).sorted()
        }

        /// "configured" or "new" for a rule only that set has; nil for one both
        /// have (or a built-in one).
        public func onlyIn(_ rule: String) -> String? {
            switch (configuredRules.contains(rule), candidateRules.contains(rule)) {
            case (true, false): return "configured"
            case (false, true): return "new"
            default: return nil
            }
        }

        /// Incidents only `side` opened, most severe first, then by time.
        public func onlyIn(_ side: Side, not other: Side) -> [Incident] {
            side.incidents.filter { other.incidents[$0.key] == nil }.map(\.value).sorted {
                if $0.severity != $1.severity { return $0.severity > $1.severity }
                if $0.openedAt != $1.openedAt { return $0.openedAt < $1.openedAt }
                return ($0.rule, $0.channel ?? "") < ($1.rule, $1.channel ?? "")
            }
        }
    }

    var configured: Evaluator
    var candidate: Evaluator
    /// What a run starts from: no counts yet, the two sets' rule names.
    let empty: Report

    public init(setup: Setup, candidateRules: RuleSet) {
        configured = setup.evaluator()
        var c = setup
        c.ruleSet = candidateRules
        candidate = c.evaluator()
        var empty = Report(configured: Side(), candidate: Side())
        empty.configuredRules = Set(setup.ruleSet.rules.map(\.name))
        empty.candidateRules = Set(candidateRules.rules.map(\.name))
        self.empty = empty
    }

    /// Reads the journal once (as it is at the start) and feeds both sets.
    public mutating func run(journal: JournalReader, since: Millis?) throws -> Report {
        var report = empty
        var a: [IncidentEvent] = [], b: [IncidentEvent] = []
        try journal.forEach(since: since) { entry in
            if report.from == nil { report.from = entry.receivedAt }
            report.to = entry.receivedAt
            report.records += 1
            configured.take(entry, into: &a)
            candidate.take(entry, into: &b)
            if !a.isEmpty { Backtest.tally(a, into: &report.configured); a.removeAll(keepingCapacity: true) }
            if !b.isEmpty { Backtest.tally(b, into: &report.candidate); b.removeAll(keepingCapacity: true) }
        }
        return report
    }

    static func tally(_ events: [IncidentEvent], into side: inout Side) {
        for e in events {
            switch e.type {
            case .opened:
                side.opened[e.rule, default: 0] += 1
                side.incidents[e.incidentID] = Incident(
                    rule: e.rule, severity: e.severity, channel: e.channel,
                    community: e.channelInfo["community_name"]?.stringValue
                        ?? e.channelInfo["community"]?.stringValue,
                    openedAt: e.openedAt)
            case .resolved:
                side.resolved[e.rule, default: 0] += 1
            default:
                break
            }
        }
    }
}

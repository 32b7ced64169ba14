import Crypto
import Foundation
import VigilCore
import Yams

/// Reads rule files into a `RuleSet`, collecting every error with its file,
/// line and column.
public struct RuleLoader {
    public var knownFeeds: Set<String>?
    /// The zone of maintenance windows that name none (the configuration's `timezone`).
    public var timeZone: TimeZone

    public init(knownFeeds: Set<String>?, timeZone: TimeZone = TimeZone(identifier: "UTC")!) {
        self.knownFeeds = knownFeeds
        self.timeZone = timeZone
    }

    static let topKeys = ["rules", "inhibit", "maintenance"]
    static let ruleKeys = ["name", "description", "feed", "when", "for", "clear_when", "clear_for", "key", "severity",
                           "route", "title", "labels", "update_every", "remind_every", "count", "within", "clear_after", "absent_for"]
    static let inhibitKeys = ["source", "target", "equal"]
    static let maintenanceKeys = ["name", "match", "schedule", "timezone", "from", "until"]

    /// Loads files in lexical order of their paths; rule names must be unique across all of them.
    public func load(files: [String]) -> (RuleSet, [Diagnostic]) {
        var set = RuleSet()
        var diags: [Diagnostic] = []
        var seen: [String: SourceLocation] = [:]
        let ordered = Array(Set(files)).sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var pendingInhibits: [(Inhibit, Node?, Node?)] = []
        for path in ordered {
            guard let data = FileManager.default.contents(atPath: path) else {
                diags.append(Diagnostic(path: path, line: 1, column: 1, "cannot read the rule file"))
                continue
            }
            guard let text = String(validating: data, as: UTF8.self) else {
                diags.append(Diagnostic(path: path, line: 1, column: 1, "the rule file is not valid UTF-8"))
                continue
            }
            var ctx = YAMLContext(path: path)
            let file = parse(text, &ctx)
            for rule in file.rules {
                if let first = seen[rule.name] {
                    ctx.error(at: rule.location, "rule name '\(rule.name)' is already used at \(first.path):\(first.line):\(first.column)")
                    continue
                }
                seen[rule.name] = rule.location
                set.rules.append(rule)
            }
            pendingInhibits.append(contentsOf: file.inhibits)
            set.maintenance.append(contentsOf: file.maintenance)
            set.files.append(path)
            diags.append(contentsOf: ctx.diagnostics.items)
        }
        // Inhibits name rules of any file: check them once every file is read.
        for (inhibit, sourceNode, targetNode) in pendingInhibits {
            var ok = true
            if !set.rules.contains(where: { $0.name == inhibit.source }) {
                let loc = sourceNode.map { YAMLContext(path: inhibit.location.path).location($0) } ?? inhibit.location
                diags.append(Diagnostic(loc, "inhibit source '\(inhibit.source)' is not a rule"))
                ok = false
            }
            if !set.rules.contains(where: { inhibit.targets($0.name) }) {
                let loc = targetNode.map { YAMLContext(path: inhibit.location.path).location($0) } ?? inhibit.location
                diags.append(Diagnostic(loc, "inhibit target '\(inhibit.target)' matches no rule"))
                ok = false
            }
            if ok { set.inhibits.append(inhibit) }
        }
        diags.sort { $0.location < $1.location }
        return (set, diags)
    }

    struct File {
        var rules: [Rule] = []
        var inhibits: [(Inhibit, Node?, Node?)] = []
        var maintenance: [MaintenanceWindow] = []
    }

    func parse(_ text: String, _ ctx: inout YAMLContext) -> File {
        var file = File()
        guard let root = ctx.compose(text) else { return file }
        guard let top = ctx.mapping(root, "a rule file", allowed: RuleLoader.topKeys) else { return file }
        if let rules = top.node("rules"), !YAMLContext.isNull(rules), let items = ctx.sequence(rules, "rules") {
            for item in items { if let r = parseRule(item, &ctx) { file.rules.append(r) } }
        }
        if let inh = top.node("inhibit"), !YAMLContext.isNull(inh), let items = ctx.sequence(inh, "inhibit") {
            for item in items { if let i = parseInhibit(item, &ctx) { file.inhibits.append(i) } }
        }
        if let mw = top.node("maintenance"), !YAMLContext.isNull(mw), let items = ctx.sequence(mw, "maintenance") {
            for item in items { if let m = parseMaintenance(item, &ctx) { file.maintenance.append(m) } }
        }
        return file
    }

    /// The file position of an offset inside an expression scalar.
    static func location(of node: Node, offset: Int, _ ctx: YAMLContext) -> SourceLocation {
        var loc = ctx.location(node)
        guard case .scalar(let s) = node, !s.string.contains("\n") else { return loc }
        switch s.style {
        case .plain, .any: loc.column += offset
        case .singleQuoted, .doubleQuoted: loc.column += offset + 1
        default: break
        }
        return loc
    }

    func expression(_ node: Node, _ what: String, _ ctx: inout YAMLContext) -> CompiledExpression? {
        let text: String
        switch node {
        case .scalar(let s):
            text = s.string
        default:
            ctx.error(node, "\(what) must be an expression written as text, not \(YAMLContext.describe(node))")
            return nil
        }
        do {
            return try CompiledExpression.compile(text)
        } catch {
            ctx.error(at: RuleLoader.location(of: node, offset: error.offset, ctx), "\(what): \(error.message)")
            return nil
        }
    }

    func template(_ node: Node, _ what: String, _ ctx: inout YAMLContext) -> Template? {
        guard let text = ctx.string(node, what) else { return nil }
        do {
            return try Template.compile(text)
        } catch {
            ctx.error(at: RuleLoader.location(of: node, offset: error.offset, ctx), "\(what): \(error.message)")
            return nil
        }
    }

    func parseRule(_ node: Node, _ ctx: inout YAMLContext) -> Rule? {
        guard let m = ctx.mapping(node, "a rule", allowed: RuleLoader.ruleKeys) else { return nil }
        let before = ctx.diagnostics.items.count
        let location = ctx.location(node)

        var name = ""
        if let n = m.node("name") {
            if let s = ctx.string(n, "name") {
                name = s
                let ok = !s.isEmpty && s.unicodeScalars.allSatisfy { c in
                    ("a"..."z").contains(c) || ("0"..."9").contains(c) || c == "_" || c == "." || c == "-"
                }
                if !ok { ctx.error(n, "rule name '\(s)' — use lower-case letters, digits, '_', '.' and '-'") }
            }
        } else {
            ctx.error(node, "a rule needs a name")
        }
        let what = name.isEmpty ? "rule" : "rule '\(name)'"

        var description: String?
        if let n = m.node("description") { description = ctx.string(n, "description") }

        var feeds: Set<String>?
        if let n = m.node("feed"), let list = ctx.stringList(n, "feed") {
            if list.contains(where: { $0.0 == "*" }) {
                if list.count > 1 { ctx.error(n, "feed: \"*\" already means every feed") }
                feeds = nil
            } else {
                var set = Set<String>()
                for (f, fnode) in list {
                    if let knownFeeds, !knownFeeds.contains(f) {
                        let hint = YAMLContext.suggest(f, knownFeeds.sorted()).map { " — did you mean '\($0)'?" } ?? ""
                        ctx.error(fnode, "unknown feed '\(f)'\(hint) (known: \(knownFeeds.sorted().joined(separator: ", ")))")
                    }
                    set.insert(f)
                }
                feeds = set
            }
        }

        func duration(_ key: String) -> Millis? {
            guard let n = m.node(key) else { return nil }
            return ctx.duration(n, key)
        }
        let holdFor = duration("for")
        let within = duration("within")
        let absentFor = duration("absent_for")
        let clearFor = duration("clear_for")
        let clearAfter = duration("clear_after")
        let updateEvery = duration("update_every")
        let remindEvery = duration("remind_every")
        if let remindEvery, remindEvery <= 0 { ctx.error(m.node("remind_every"), "remind_every must be longer than 0s") }
        var count: Int?
        if let n = m.node("count") { count = ctx.int(n, "count", min: 1) }

        var when: CompiledExpression?
        if let n = m.node("when") { when = expression(n, "when", &ctx) }
        var clearWhen: CompiledExpression?
        if let n = m.node("clear_when") { clearWhen = expression(n, "clear_when", &ctx) }

        // Which kind, and which clauses go with it.
        var kind: Rule.Kind = .threshold(holdFor: holdFor ?? 0)
        if m.has("absent_for") {
            for other in ["for", "count", "within", "clear_when", "clear_for", "clear_after"] where m.has(other) {
                ctx.error(m.keyNode(other), "\(what): '\(other)' does not go with 'absent_for' — an absence incident resolves on the channel's next reading")
            }
            if let absentFor {
                if absentFor <= 0 { ctx.error(m.node("absent_for"), "absent_for must be longer than 0s") }
                kind = .absence(absentFor: absentFor)
            }
        } else {
            if !m.has("when") { ctx.error(node, "\(what) needs 'when' (only an absence rule, with 'absent_for', may leave it out)") }
            if m.has("for") && m.has("count") {
                ctx.error(m.keyNode("count"), "\(what): 'for' and 'count' exclude each other — 'for' holds a condition, 'count' counts readings")
            }
            if m.has("count") && !m.has("within") { ctx.error(m.keyNode("count"), "\(what): 'count' needs 'within' (the sliding window)") }
            if m.has("within") && !m.has("count") { ctx.error(m.keyNode("within"), "\(what): 'within' needs 'count'") }
            if let count, let within {
                if within <= 0 { ctx.error(m.node("within"), "within must be longer than 0s") }
                kind = .count(count: count, within: within)
            }
            if m.has("clear_for") && !m.has("clear_when") && m.has("clear_after") {
                ctx.error(m.keyNode("clear_for"), "\(what): 'clear_for' needs 'clear_when' — with only 'clear_after' nothing clears by condition")
            }
        }

        var key: [Rule.KeyField] = []
        if let n = m.node("key"), let list = ctx.stringList(n, "key") {
            var names = Set<String>()
            for (k, knode) in list {
                guard let e = expression(knode, "key", &ctx) else { continue }
                guard case .name(let ref, _)? = try? Parser.parse(k) else {
                    ctx.error(knode, "key '\(k)' must be a name (channel, channel.building, topic.community, a payload field)")
                    continue
                }
                if !names.insert(k).inserted { ctx.error(knode, "key '\(k)' is listed twice") }
                if case .absence = kind, ref.root == .payload {
                    ctx.error(knode, "an absence rule's key can only use the channel (channel, channel.<column>, feed): there is no reading")
                }
                key.append(Rule.KeyField(name: k, expression: e))
            }
            if list.isEmpty { ctx.error(n, "key must name at least one field") }
        } else {
            key = [Rule.KeyField(name: "channel", expression: try! CompiledExpression.compile("channel"))]
        }

        var severity = Severity.major
        if let n = m.node("severity"), let s = ctx.string(n, "severity") {
            if let sev = Severity(name: s) { severity = sev }
            else { ctx.error(n, "severity '\(s)' — use info, minor, major or critical") }
        }
        var route: String?
        if let n = m.node("route") { route = ctx.string(n, "route") }
        var title: Template?
        if let n = m.node("title") { title = template(n, "title", &ctx) }
        var labels: [(name: String, template: Template)] = []
        if let n = m.node("labels"), let lm = ctx.mapping(n, "labels") {
            for (k, _, v) in lm.entries { if let t = template(v, "label '\(k)'", &ctx) { labels.append((k, t)) } }
        }

        var effectiveClearWhen = clearWhen
        if case .absence = kind { effectiveClearWhen = nil }
        else if clearWhen == nil {
            if case .threshold = kind, clearAfter == nil { effectiveClearWhen = when?.negated() }
        }
        var effectiveClearAfter = clearAfter
        if case .count(_, let w) = kind, clearAfter == nil { effectiveClearAfter = w }

        guard ctx.diagnostics.items.count == before else { return nil }
        let fingerprint = Hex.encode(SHA256.hash(data: Array(RuleLoader.canonical(node).utf8)))
        return Rule(name: name, description: description, feeds: feeds, kind: kind, when: when,
                    clearWhen: effectiveClearWhen, clearFor: clearFor ?? 0, clearAfter: effectiveClearAfter, key: key,
                    severity: severity, route: route, title: title, labels: labels, updateEvery: updateEvery ?? 300_000,
                    remindEvery: remindEvery, location: location, fingerprint: fingerprint)
    }

    /// A canonical text of a YAML node, independent of layout and comments.
    static func canonical(_ node: Node) -> String {
        switch node {
        case .scalar(let s): return "s:" + s.string
        case .sequence(let seq): return "[" + seq.map(canonical).joined(separator: ",") + "]"
        case .mapping(let m): return "{" + m.map { canonical($0.key) + "=" + canonical($0.value) }.joined(separator: ",") + "}"
        case .alias: return "*"
        }
    }

    func parseInhibit(_ node: Node, _ ctx: inout YAMLContext) -> (Inhibit, Node?, Node?)? {
        guard let m = ctx.mapping(node, "an inhibit", allowed: RuleLoader.inhibitKeys) else { return nil }
        let before = ctx.diagnostics.items.count
        var source = "", target = ""
        if let n = m.node("source") { source = ctx.string(n, "source") ?? "" } else { ctx.error(node, "an inhibit needs 'source' (a rule name)") }
        if let n = m.node("target") { target = ctx.string(n, "target") ?? "" } else { ctx.error(node, "an inhibit needs 'target' (a rule name or pattern)") }
        var equal: [(name: String, expression: CompiledExpression)] = []
        if let n = m.node("equal"), let list = ctx.stringList(n, "equal") {
            for (f, fnode) in list {
                guard let e = expression(fnode, "equal", &ctx) else { continue }
                guard case .name(let ref, _)? = try? Parser.parse(f), ref.root != .payload else {
                    ctx.error(fnode, "equal field '\(f)' must name the channel: channel, channel.<column> or feed")
                    continue
                }
                equal.append((f, e))
            }
        }
        guard ctx.diagnostics.items.count == before else { return nil }
        return (Inhibit(source: source, target: target, equal: equal, location: ctx.location(node)), m.node("source"), m.node("target"))
    }

    func parseMaintenance(_ node: Node, _ ctx: inout YAMLContext) -> MaintenanceWindow? {
        guard let m = ctx.mapping(node, "a maintenance window", allowed: RuleLoader.maintenanceKeys) else { return nil }
        let before = ctx.diagnostics.items.count
        var name = ""
        if let n = m.node("name") { name = ctx.string(n, "name") ?? "" }
        var match: CompiledExpression?
        if let n = m.node("match") { match = expression(n, "match", &ctx) }
        var tz = timeZone
        if let n = m.node("timezone"), let s = ctx.string(n, "timezone") {
            if let z = TimeZone(identifier: s) { tz = z }
            else { ctx.error(n, "unknown time zone '\(s)' — use an IANA name such as Asia/Shanghai or Europe/Berlin") }
        }
        var schedule: Schedule?
        if let n = m.node("schedule"), let s = ctx.string(n, "schedule") {
            switch Schedule.parse(s, timeZone: tz) {
            case .success(let sch): schedule = sch
            case .failure(let e): ctx.error(n, "schedule: \(e.description)")
            }
        }
        func time(_ key: String) -> Millis? {
            guard let n = m.node(key), let s = ctx.string(n, key) else { return nil }
            guard let t = Time.parse(s) else { ctx.error(n, "\(key) '\(s)' — write an RFC 3339 time such as 2026-12-01T02:00:00+08:00"); return nil }
            return t
        }
        let from = time("from"), until = time("until")
        if !m.has("schedule") && !m.has("from") && !m.has("until") {
            ctx.error(node, "a maintenance window needs 'schedule' or 'from'/'until'")
        }
        if let from, let until, until <= from { ctx.error(m.node("until"), "until must be after from") }
        guard ctx.diagnostics.items.count == before else { return nil }
        return MaintenanceWindow(name: name, match: match, schedule: schedule, from: from, until: until, location: ctx.location(node))
    }
}

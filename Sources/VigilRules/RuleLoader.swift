import Crypto
import Foundation
import VigilConfig
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
    static let ruleKeys = [
        "name", "description", "feed", "when", "for", "clear_when", "clear_for", "key", "severity",
        "route", "title", "labels", "update_every", "remind_every", "count", "within", "clear_after", "absent_for",
    ]
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
}

// RuleLoader: parsing one rule, and the canonical text its fingerprint is taken of.

import Crypto
import Foundation
import VigilConfig
import VigilCore
import Yams

extension RuleLoader {
    func parseRule(_ node: Node, _ ctx: inout YAMLContext) -> Rule? {
        guard let m = ctx.mapping(node, "a rule", allowed: RuleLoader.ruleKeys) else { return nil }
        let before = ctx.diagnostics.items.count
        let location = ctx.location(node)

        var name = ""
        if let n = m.node("name") {
            if let s = ctx.string(n, "name") {
                name = s
                let ok =
                    !s.isEmpty
                    && s.unicodeScalars.allSatisfy { c in
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
            if let sev = Severity(name: s) { severity = sev } else { ctx.error(n, "severity '\(s)' — use info, minor, major or critical") }
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
        if case .absence = kind {
            effectiveClearWhen = nil
        } else if clearWhen == nil {
            if case .threshold = kind, clearAfter == nil { effectiveClearWhen = when?.negated() }
        }
        var effectiveClearAfter = clearAfter
        if case .count(_, let w) = kind, clearAfter == nil { effectiveClearAfter = w }

        guard ctx.diagnostics.items.count == before else { return nil }
        let fingerprint = Hex.encode(SHA256.hash(data: Array(RuleLoader.canonical(node).utf8)))
        return Rule(
            name: name, description: description, feeds: feeds, kind: kind, when: when,
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
}

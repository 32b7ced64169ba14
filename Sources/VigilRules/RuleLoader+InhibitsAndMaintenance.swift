// RuleLoader: parsing inhibits and maintenance windows.

import Foundation
import VigilConfig
import VigilCore
import Yams

extension RuleLoader {
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
            if let z = TimeZone(identifier: s) {
                tz = z
            } else {
                ctx.error(n, "unknown time zone '\(s)' — use an IANA name such as Asia/Shanghai or Europe/Berlin")
            }
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

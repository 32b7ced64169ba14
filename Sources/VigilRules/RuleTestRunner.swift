import Foundation
import VigilConfig
import VigilCore
import Yams

/// `vigil test`: promtool-style unit tests for rules. Each test feeds timed
/// messages to a fresh engine and compares the events with the expected ones.
public struct RuleTestRunner {
    public struct Outcome: Sendable {
        public var name: String
        public var passed: Bool
        /// Why it failed, ready to print under `FAIL name`.
        public var report: String
    }

    struct Input {
        enum Kind {
            case message(topic: String, payload: [UInt8])
            case mark(BrokerMark)
            case ack(rule: String, channel: String, by: String, note: String?)
        }
        var at: Millis
        var kind: Kind
        var node: Node
    }

    struct TestCase {
        var name: String
        var start: Millis
        var inputs: [Input]
        var until: Millis?
        var expect: [(JSONObject, Node)]
    }

    static let fileKeys = ["rule_files", "channels", "config", "tests"]
    static let testKeys = ["name", "start", "input", "until", "expect"]
    static let inputKeys = ["at", "topic", "payload", "payload_text", "payload_base64", "broker", "ack", "by", "note"]
    static let timeFields: Set<String> = ["at", "started_at", "opened_at", "resolved_at", "acknowledged_at"]

    /// Runs every test of one file. Errors in the file (or its rules) come back as diagnostics.
    public static func run(file path: String) -> ([Outcome], [Diagnostic]) {
        guard let data = FileManager.default.contents(atPath: path), let text = String(validating: data, as: UTF8.self) else {
            return ([], [Diagnostic(path: path, line: 1, column: 1, "cannot read the test file")])
        }
        var ctx = YAMLContext(path: path)
        guard let root = ctx.compose(text), let top = ctx.mapping(root, "a rule test file", allowed: fileKeys) else {
            return ([], ctx.diagnostics.items)
        }
        let dir = ((path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path) as NSString).deletingLastPathComponent
        func resolve(_ p: String) -> String { p.hasPrefix("/") ? p : dir + "/" + p }

        var config = VigilConfig(path: nil, baseDirectory: dir)
        if let n = top.node("config"), let p = ctx.string(n, "config") {
            let (c, diags) = ConfigLoader.load(path: resolve(p))
            if let c { config = c } else { return ([], diags) }
        }
        config.channels = nil
        if let n = top.node("channels"), let p = ctx.string(n, "channels") { config.channels = resolve(p) }
        if let n = top.node("rule_files"), let list = ctx.stringList(n, "rule_files") {
            config.rules = list.map { resolve($0.0) }
            if FileGlob.expand(config.rules).isEmpty { ctx.error(n, "rule_files match no file") }
        } else {
            ctx.error(root, "a rule test file needs rule_files")
        }
        var cases: [TestCase] = []
        if let n = top.node("tests"), let items = ctx.sequence(n, "tests") {
            for item in items { if let t = parseTest(item, &ctx) { cases.append(t) } }
        } else {
            ctx.error(root, "a rule test file needs tests")
        }
        if !ctx.diagnostics.isEmpty { return ([], ctx.diagnostics.items) }
        let (setup, diags) = Setup.load(config: config)
        guard let setup else { return ([], diags) }
        return (cases.map { runCase($0, setup) }, [])
    }

    static func parseTest(_ node: Node, _ ctx: inout YAMLContext) -> TestCase? {
        guard let m = ctx.mapping(node, "a test", allowed: testKeys) else { return nil }
        let before = ctx.diagnostics.items.count
        var name = "(unnamed)"
        if let n = m.node("name"), let s = ctx.string(n, "name") { name = s } else { ctx.error(node, "a test needs a name") }
        var start = Time.parse("2026-01-01T00:00:00Z")!
        if let n = m.node("start"), let s = ctx.string(n, "start") {
            if let t = Time.parse(s) { start = t } else { ctx.error(n, "start '\(s)' — write an RFC 3339 time") }
        }
        var inputs: [Input] = []
        if let n = m.node("input"), let items = ctx.sequence(n, "input") {
            var last: Millis = 0
            for item in items {
                guard let im = ctx.mapping(item, "an input message", allowed: inputKeys) else { continue }
                guard let an = im.node("at"), let at = ctx.duration(an, "at") else { ctx.error(item, "an input needs 'at' (an offset such as 20s)"); continue }
                if at < last { ctx.error(an, "inputs must be in time order: \(Units.formatDuration(at)) comes after \(Units.formatDuration(last))") }
                last = at
                let kinds = ["topic", "broker", "ack"].filter { im.has($0) }
                if kinds.count > 1 {
                    ctx.error(item, "an input is a message (topic), a broker mark (broker) or an acknowledgement (ack), not several"); continue
                }
                if let bn = im.node("broker") {
                    guard let s = ctx.string(bn, "broker") else { continue }
                    guard let mark = BrokerMark(rawValue: s) else { ctx.error(bn, "broker must be lost or connected, not '\(s)'"); continue }
                    inputs.append(Input(at: at, kind: .mark(mark), node: item))
                    continue
                }
                if let acn = im.node("ack") {
                    guard let am = ctx.mapping(acn, "ack", allowed: ["rule", "channel"]) else { continue }
                    guard let rn = am.node("rule"), let rule = ctx.string(rn, "rule"), let cn = am.node("channel"),
                        let channel = ctx.string(cn, "channel")
                    else {
                        ctx.error(acn, "ack names the incident by its rule and channel: { rule: R, channel: C }"); continue
                    }
                    guard let byn = im.node("by"), let by = ctx.string(byn, "by") else { ctx.error(item, "an acknowledgement needs 'by'"); continue }
                    var note: String?
                    if let nn = im.node("note"), let s = ctx.optionalString(nn, "note") { note = s }
                    inputs.append(Input(at: at, kind: .ack(rule: rule, channel: channel, by: by, note: note), node: item))
                    continue
                }
                guard let tn = im.node("topic"), let topic = ctx.string(tn, "topic") else {
                    ctx.error(item, "an input needs 'topic', 'broker' or 'ack'"); continue
                }
                var payload: [UInt8]?
                if let p = im.node("payload") { payload = Array(YAMLContext.json(p).description.utf8) }
                if let p = im.node("payload_text"), let s = ctx.string(p, "payload_text") { payload = Array(s.utf8) }
                if let p = im.node("payload_base64"), let s = ctx.string(p, "payload_base64") {
                    if let b = Base64.decode(s) { payload = b } else { ctx.error(p, "payload_base64 is not base64") }
                }
                guard let payload else { ctx.error(item, "an input needs payload, payload_text or payload_base64"); continue }
                inputs.append(Input(at: at, kind: .message(topic: topic, payload: payload), node: item))
            }
        }
        var until: Millis?
        if let n = m.node("until") { until = ctx.duration(n, "until") }
        var expect: [(JSONObject, Node)] = []
        if let n = m.node("expect"), !YAMLContext.isNull(n), let items = ctx.sequence(n, "expect") {
            for item in items {
                guard ctx.mapping(item, "an expected event") != nil else { continue }
                guard case .object(let o) = YAMLContext.json(item) else { continue }
                for (k, v) in o.members where timeFields.contains(k) {
                    if case .string(let s) = v, Time.parse(s) == nil, case .failure(let e) = Units.parseDuration(s) {
                        ctx.error(item, "expected \(k): \(e.description)")
                    }
                }
                expect.append((o, item))
            }
        }
        guard ctx.diagnostics.items.count == before else { return nil }
        return TestCase(name: name, start: start, inputs: inputs, until: until, expect: expect)
    }

    static func runCase(_ t: TestCase, _ setup: Setup) -> Outcome {
        var evaluator = setup.evaluator()
        var events: [IncidentEvent] = []
        evaluator.engine.start(at: t.start)
        var problems: [String] = []
        for input in t.inputs {
            let at = t.start + input.at
            let line = input.node.mark?.line ?? 0
            switch input.kind {
            case .message(let topic, let payload):
                if evaluator.isBlind {
                    problems.append(
                        "input at \(Units.formatDuration(input.at)) (line \(line)): a message while the broker is lost — vigil hears nothing until \"broker: connected\""
                    )
                    continue
                }
                _ = payload.withUnsafeBufferPointer { evaluator.message(topic: topic, payload: $0, arrival: at, into: &events) }
            case .mark(let mark):
                evaluator.mark(mark, arrival: at, into: &events)
            case .ack(let rule, let channel, let by, let note):
                // As in replay, an acknowledgement of no open incident changes nothing.
                _ = evaluator.acknowledge(rule: rule, channel: channel, by: by, note: note, arrival: at, into: &events)
            }
        }
        if let until = t.until { evaluator.engine.advance(to: t.start + until, into: &events) }
        let actual = events.map { $0.jsonValue().objectValue ?? JSONObject() }

        if actual.count != t.expect.count { problems.append("expected \(t.expect.count) event\(t.expect.count == 1 ? "" : "s"), got \(actual.count)") }
        for i in 0..<min(actual.count, t.expect.count) {
            for (k, want) in t.expect[i].0.members {
                let got = actual[i][k] ?? .null
                if !matches(field: k, want: want, got: got, start: t.start) {
                    problems.append(
                        "event \(i + 1) (line \(t.expect[i].1.mark?.line ?? 0)): \(k): expected \(show(k, want)), got \(show(k, got, start: t.start))")
                }
            }
        }
        if problems.isEmpty { return Outcome(name: t.name, passed: true, report: "") }
        var report = problems.map { "    " + $0 }.joined(separator: "\n")
        report += "\n    --- expected\n"
        report += t.expect.isEmpty ? "    (no events)\n" : t.expect.map { "    - " + render($0.0, start: t.start, fields: nil) + "\n" }.joined()
        report += "    +++ actual\n"
        let shownFields = Set(["at", "type", "rule", "channel", "severity", "count"]).union(t.expect.flatMap { $0.0.keys })
        report += actual.isEmpty ? "    (no events)\n" : actual.prefix(30).map { "    + " + render($0, start: t.start, fields: shownFields) + "\n" }.joined()
        if actual.count > 30 { report += "    … and \(actual.count - 30) more\n" }
        return Outcome(name: t.name, passed: false, report: String(report.dropLast()))
    }

    static func matches(field: String, want: JSONValue, got: JSONValue, start: Millis) -> Bool {
        if timeFields.contains(field), case .string(let w) = want {
            guard case .string(let g) = got, let gt = Time.parse(g) else { return false }
            if let abs = Time.parse(w) { return abs == gt }
            if case .success(let off) = Units.parseDuration(w) { return gt - start == off }
            return false
        }
        return subset(want, got)
    }

    /// Objects compare on the fields the expectation lists; everything else exactly.
    static func subset(_ want: JSONValue, _ got: JSONValue) -> Bool {
        if case .object(let w) = want, case .object(let g) = got {
            for (k, v) in w.members { guard let gv = g[k], subset(v, gv) else { return false } }
            return true
        }
        if case .string(let w) = want, case .number(let g) = got { return w == JSONWriter.format(g) }
        return want == got
    }

    static func show(_ field: String, _ v: JSONValue, start: Millis? = nil) -> String {
        if let start, timeFields.contains(field), case .string(let s) = v, let t = Time.parse(s) {
            return Units.formatDuration(t - start) + " (\(s))"
        }
        return v.description
    }

    static func render(_ o: JSONObject, start: Millis, fields: Set<String>?) -> String {
        var parts: [String] = []
        // Actual events read in the order expectations are usually written.
        let leading = ["at", "type", "rule", "channel", "severity", "count"]
        let keys = fields == nil ? o.keys : leading.filter { o[$0] != nil } + o.keys.filter { !leading.contains($0) }
        for k in keys where fields?.contains(k) ?? true {
            let v = o[k] ?? .null
            if timeFields.contains(k), case .string(let s) = v, let t = Time.parse(s), fields != nil {
                parts.append("\(k): \(Units.formatDuration(t - start))")
            } else if case .string(let s) = v {
                parts.append("\(k): \(s)")
            } else {
                parts.append("\(k): \(v)")
            }
        }
        return "{" + parts.joined(separator: ", ") + "}"
    }
}

import VigilCore
import Yams

/// Reading operator-written YAML with positions: every helper reports what is
/// wrong at the node's line and column and lets the loader carry on, so one
/// run of `vigil check` shows every error.
public struct YAMLContext {
    public let path: String
    public var diagnostics = DiagnosticSink()

    public init(path: String) { self.path = path }

    public mutating func error(_ node: Node?, _ message: String) {
        diagnostics.error(location(node), message)
    }

    public mutating func error(at location: SourceLocation, _ message: String) {
        diagnostics.error(location, message)
    }

    public func location(_ node: Node?) -> SourceLocation {
        let m = node?.mark
        return SourceLocation(path: path, line: m?.line ?? 1, column: m?.column ?? 1)
    }

    /// Parses a whole file. A syntax error becomes a diagnostic and a nil root.
    public mutating func compose(_ text: String) -> Node? {
        do {
            return try Yams.compose(yaml: text)
        } catch let e as YamlError {
            switch e {
            case .scanner(let ctx, let problem, let mark, _), .parser(let ctx, let problem, let mark, _),
                .composer(let ctx, let problem, let mark, _):
                var msg = "YAML: \(problem)"
                if let ctx { msg += " (\(ctx.text) at line \(ctx.mark.line), column \(ctx.mark.column))" }
                diagnostics.error(SourceLocation(path: path, line: mark.line, column: mark.column), msg)
            case .duplicatedKeysInMapping(let keys, let context):
                // One line at the key's second appearance, like a repeat `mapping(_:_:)` finds.
                let key = keys.first ?? ""
                let first = SourceLocation(path: path, line: context.mark.line, column: context.mark.column)
                if let again = YAMLContext.repeatOf(key, after: first, in: text) {
                    diagnostics.error(again, "key '\(key)' appears twice in this mapping (first on line \(first.line))")
                } else {
                    diagnostics.error(first, "key '\(key)' appears more than once in this mapping")
                }
            case .reader(let problem, let offset, _, _):
                var msg = "YAML: \(problem)"
                if let offset { msg += " at byte \(offset)" }
                diagnostics.error(SourceLocation(path: path, line: 1, column: 1), msg)
            default:
                diagnostics.error(SourceLocation(path: path, line: 1, column: 1), "YAML: \(e)")
            }
            return nil
        } catch {
            diagnostics.error(SourceLocation(path: path, line: 1, column: 1), "YAML: \(error)")
            return nil
        }
    }

    /// Where a block mapping's key, first at `first`, appears again: the next
    /// line that starts with it, indented as far, before a line indented less
    /// (the mapping's end). Nil when not found that way (a flow mapping).
    static func repeatOf(_ key: String, after first: SourceLocation, in text: String) -> SourceLocation? {
        // By Unicode scalars: as `Character`s, a CRLF is one and no line would end.
        let lines = text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false)
        guard first.line >= 1, first.line <= lines.count else { return nil }
        let indent = first.column - 1
        let name = Array(key.unicodeScalars)
        for (i, line) in lines.enumerated().dropFirst(first.line) {
            let lead = line.prefix { $0 == " " }.count
            let rest = line.dropFirst(lead)
            if rest.allSatisfy({ $0 == "\r" || $0 == " " }) || rest.first == "#" { continue }
            if lead < indent { return nil }
            guard lead == indent, rest.starts(with: name) else { continue }
            let after = rest.dropFirst(name.count).drop { $0 == " " }
            if after.first == ":" { return SourceLocation(path: first.path, line: i + 1, column: indent + 1) }
        }
        return nil
    }

    /// The members of a mapping, keys as strings, after checking every key is
    /// one of `allowed` (when given) and none repeats.
    public mutating func mapping(_ node: Node, _ what: String, allowed: [String]? = nil) -> YAMLMapping? {
        guard case .mapping(let m) = node else {
            error(node, "\(what) must be a mapping (key: value), not \(YAMLContext.describe(node))")
            return nil
        }
        var out = YAMLMapping()
        for (k, v) in m {
            guard case .scalar(let s) = k else { error(k, "\(what): keys must be plain names"); continue }
            if out.node(s.string) != nil { error(k, "\(what): key '\(s.string)' appears twice"); continue }
            if let allowed, !allowed.contains(s.string) {
                let hint = YAMLContext.suggest(s.string, allowed).map { " — did you mean '\($0)'?" } ?? ""
                error(k, "unknown key '\(s.string)' in \(what)\(hint) (known: \(allowed.joined(separator: ", ")))")
                continue
            }
            out.entries.append((s.string, k, v))
        }
        return out
    }

    public mutating func sequence(_ node: Node, _ what: String) -> [Node]? {
        if case .sequence(let s) = node { return Array(s) }
        error(node, "\(what) must be a list, not \(YAMLContext.describe(node))")
        return nil
    }

    /// A list, or a single scalar taken as a list of one.
    public mutating func stringList(_ node: Node, _ what: String) -> [(String, Node)]? {
        if case .scalar = node, let s = string(node, what) { return [(s, node)] }
        guard let items = sequence(node, what) else { return nil }
        var out: [(String, Node)] = []
        for item in items { if let s = string(item, what) { out.append((s, item)) } }
        return out
    }

    public mutating func string(_ node: Node, _ what: String) -> String? {
        guard case .scalar(let s) = node else {
            error(node, "\(what) must be a text value, not \(YAMLContext.describe(node))")
            return nil
        }
        return s.string
    }

    public mutating func optionalString(_ node: Node, _ what: String) -> String?? {
        if YAMLContext.isNull(node) { return .some(nil) }
        guard let s = string(node, what) else { return nil }
        return .some(s)
    }

    public mutating func bool(_ node: Node, _ what: String) -> Bool? {
        if case .scalar = node, YAMLContext.tagName(node) == .bool, let b = node.bool { return b }
        error(node, "\(what) must be true or false, not '\(node.string ?? YAMLContext.describe(node))'")
        return nil
    }

    public mutating func int(_ node: Node, _ what: String, min: Int? = nil) -> Int? {
        guard case .scalar = node, YAMLContext.tagName(node) == .int, let i = node.int else {
            error(node, "\(what) must be a whole number, not '\(node.string ?? YAMLContext.describe(node))'")
            return nil
        }
        if let min, i < min { error(node, "\(what) must be at least \(min), not \(i)"); return nil }
        return i
    }

    public mutating func duration(_ node: Node, _ what: String) -> Millis? {
        guard let s = string(node, what) else { return nil }
        switch Units.parseDuration(s) {
        case .success(let ms): return ms
        case .failure(let e): error(node, "\(what): \(e.description)"); return nil
        }
    }

    public mutating func size(_ node: Node, _ what: String) -> Int64? {
        guard let s = string(node, what) else { return nil }
        switch Units.parseSize(s) {
        case .success(let v): return v
        case .failure(let e): error(node, "\(what): \(e.description)"); return nil
        }
    }

    /// The resolved YAML core-schema tag of a node.
    public static func tagName(_ node: Node) -> Tag.Name { Tag.Name(rawValue: node.tag.description) }

    public static func isNull(_ node: Node) -> Bool {
        if case .scalar = node, YAMLContext.tagName(node) == .null { return true }
        return false
    }

    public static func describe(_ node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar(let s): return "'\(s.string)'"
        case .alias: return "an alias"
        }
    }

    /// YAML as a JSON value: numbers, booleans and null by YAML's core schema,
    /// everything else as text.
    public static func json(_ node: Node) -> JSONValue {
        switch node {
        case .scalar(let s):
            if s.style == .plain {
                switch YAMLContext.tagName(node) {
                case .null: return .null
                case .bool: if let b = node.bool { return .bool(b) }
                case .int: if let i = node.int { return .number(Double(i)) }
                case .float: if let f = node.float, f.isFinite { return .number(f) }
                default: break
                }
            }
            return .string(s.string)
        case .sequence(let seq): return .array(seq.map(json))
        case .mapping(let m):
            var o = JSONObject()
            for (k, v) in m { o[k.string ?? ""] = json(v) }
            return .object(o)
        case .alias: return .null
        }
    }

    /// The closest known word, for "did you mean" hints.
    public static func suggest(_ word: String, _ candidates: [String]) -> String? {
        var best: (String, Int)?
        for c in candidates {
            let d = editDistance(Array(word.unicodeScalars), Array(c.unicodeScalars))
            if d <= max(1, c.count / 3), best == nil || d < best!.1 { best = (c, d) }
        }
        return best?.0
    }

    /// Edit distance where swapping two neighbours counts as one edit ("fro" → "for").
    static func editDistance(_ a: [Unicode.Scalar], _ b: [Unicode.Scalar]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var d = Array(repeating: Array(repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { d[i][0] = i }
        for j in 0...b.count { d[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1) }
            }
        }
        return d[a.count][b.count]
    }
}

/// The members of a YAML mapping, in file order.
public struct YAMLMapping {
    public var entries: [(key: String, keyNode: Node, value: Node)] = []

    public func node(_ key: String) -> Node? {
        entries.first { $0.key == key }?.value
    }

    public func keyNode(_ key: String) -> Node? {
        entries.first { $0.key == key }?.keyNode
    }

    public func has(_ key: String) -> Bool { node(key) != nil }
}

extension Node {
    /// The node's own position (Yams keeps it on every kind).
    public var position: Mark? { mark }
}

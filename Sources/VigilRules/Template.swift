import VigilCore

/// A title or label template: text with `{{name}}` holes.
public struct Template: Sendable {
    enum Segment: Sendable {
        case text(String)
        case value(CompiledExpression)
    }
    let segments: [Segment]
    public let source: String

    /// Compiles; an error's offset counts Unicode scalars into the template.
    public static func compile(_ text: String) throws(ExpressionError) -> Template {
        var segments: [Segment] = []
        let s = Array(text.unicodeScalars)
        var literal = ""
        var i = 0
        while i < s.count {
            if s[i] == "{", i + 1 < s.count, s[i + 1] == "{" {
                var j = i + 2
                var found = false
                while j + 1 < s.count {
                    if s[j] == "}" && s[j + 1] == "}" { found = true; break }
                    j += 1
                }
                guard found else { throw ExpressionError(i, "'{{' is not closed with '}}'") }
                let inner = String(String.UnicodeScalarView(s[(i + 2)..<j]))
                do {
                    let expr = try CompiledExpression.compile(inner)
                    if !literal.isEmpty { segments.append(.text(literal)); literal = "" }
                    segments.append(.value(expr))
                } catch {
                    throw ExpressionError(i + 2 + error.offset, error.message)
                }
                i = j + 2
                continue
            }
            literal.unicodeScalars.append(s[i])
            i += 1
        }
        if !literal.isEmpty { segments.append(.text(literal)) }
        return Template(segments: segments, source: text)
    }

    public func render(_ ctx: EvalContext) -> String {
        var out = ""
        for seg in segments {
            switch seg {
            case .text(let t): out += t
            case .value(let e): out += Template.text(of: e.evaluate(ctx))
            }
        }
        return out
    }

    /// How a value reads inside text: numbers in shortest form, null as nothing.
    public static func text(of v: JSONValue) -> String {
        switch v {
        case .null: return ""
        case .string(let s): return s
        case .number(let d): return JSONWriter.format(d)
        case .bool(let b): return b ? "true" : "false"
        default: return JSONWriter.encode(v)
        }
    }
}

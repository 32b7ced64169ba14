import VigilConfig
import VigilCore

/// A parsed expression, before compilation.
indirect enum Expr {
    case literal(JSONValue)
    case name(NameRef, offset: Int)
    case list([Expr])
    case not(Expr)
    case negate(Expr)
    case binary(BinaryOp, Expr, Expr, offset: Int, rhsOffset: Int)
    case call(Function, [Expr], offset: Int)

    var isNullLiteral: Bool { if case .literal(.null) = self { return true } else { return false } }
}

enum BinaryOp: String {
    case or = "||", and = "&&"
    case eq = "==", ne = "!=", lt = "<", le = "<=", gt = ">", ge = ">="
    case inList = "in", notIn = "not in", contains, matches
    case add = "+", sub = "-", mul = "*", div = "/", mod = "%"
}

/// A name in an expression, resolved to where its value lives.
struct NameRef: Equatable {
    enum Root: Equatable {
        case payload
        case channelID
        case channelColumn(String)
        case topic
        case topicCapture(String)
        case feed
    }
    enum Step: Equatable { case key(String), index(Int) }
    var root: Root
    var path: [Step]
    var text: String
}

enum Function: String, CaseIterable {
    case exists, abs, min, max, round, floor, ceil, len, lower, upper
    case starts_with, ends_with, number, string

    var arity: Int {
        switch self {
        case .min, .max, .starts_with, .ends_with: return 2
        default: return 1
        }
    }

    static var knownList: String { allCases.map(\.rawValue).sorted().joined(separator: ", ") }
}

/// Recursive descent over the precedence table, loosest first:
/// `||` `&&` `!` comparisons `+ -` `* / %` unary `-`.
struct Parser {
    var tokens: [Token]
    var i = 0

    init(_ text: String) throws(ExpressionError) { tokens = try Lexer.tokenize(text) }

    static func parse(_ text: String) throws(ExpressionError) -> Expr {
        var p = try Parser(text)
        if case .end = p.peek.kind { throw ExpressionError(0, "empty expression") }
        let e = try p.parseOr()
        guard case .end = p.peek.kind else { throw p.unexpected("an operator or the end of the expression") }
        return e
    }

    var peek: Token { tokens[i] }

    mutating func advance() -> Token { let t = tokens[i]; if i < tokens.count - 1 { i += 1 }; return t }

    func describe(_ t: Token) -> String {
        switch t.kind {
        case .number(let d): return "number \(JSONWriter.format(d))"
        case .string(let s): return "string \"\(s)\""
        case .identifier(let n): return "name '\(n)'"
        case .keyword(let k): return "'\(k)'"
        case .op(let o): return "'\(o)'"
        case .end: return "end of expression"
        }
    }

    func unexpected(_ wanted: String) -> ExpressionError {
        ExpressionError(peek.offset, "expected \(wanted), found \(describe(peek))")
    }

    func isOp(_ o: String) -> Bool { if case .op(o) = peek.kind { return true } else { return false } }
    func isKeyword(_ k: String) -> Bool { if case .keyword(k) = peek.kind { return true } else { return false } }

    mutating func parseOr() throws(ExpressionError) -> Expr {
        var lhs = try parseAnd()
        while isOp("||") || isKeyword("or") {
            let t = advance()
            let r = peek.offset
            lhs = .binary(.or, lhs, try parseAnd(), offset: t.offset, rhsOffset: r)
        }
        return lhs
    }

    mutating func parseAnd() throws(ExpressionError) -> Expr {
        var lhs = try parseNot()
        while isOp("&&") || isKeyword("and") {
            let t = advance()
            let r = peek.offset
            lhs = .binary(.and, lhs, try parseNot(), offset: t.offset, rhsOffset: r)
        }
        return lhs
    }

    mutating func parseNot() throws(ExpressionError) -> Expr {
        if isOp("!") || isKeyword("not") {
            _ = advance()
            return .not(try parseNot())
        }
        return try parseComparison()
    }

    mutating func parseComparison() throws(ExpressionError) -> Expr {
        let lhs = try parseAdditive()
        let t = peek
        var op: BinaryOp?
        switch t.kind {
        case .op(let o): op = ["==", "!=", "<", "<=", ">", ">="].contains(o) ? BinaryOp(rawValue: o) : nil
        case .keyword("in"): op = .inList
        case .keyword("contains"): op = .contains
        case .keyword("matches"): op = .matches
        case .keyword("not"):
            if i + 1 < tokens.count, case .keyword("in") = tokens[i + 1].kind { _ = advance(); op = .notIn }
        default: break
        }
        guard let op else { return lhs }
        _ = advance()
        let rhsOffset = peek.offset
        let rhs = try parseAdditive()
        // Comparisons do not chain: `a < b < c` is almost always a mistake.
        if case .op(let o) = peek.kind, ["==", "!=", "<", "<=", ">", ">="].contains(o) {
            throw ExpressionError(peek.offset, "comparisons do not chain — combine them with &&")
        }
        return .binary(op, lhs, rhs, offset: t.offset, rhsOffset: rhsOffset)
    }

    mutating func parseAdditive() throws(ExpressionError) -> Expr {
        var lhs = try parseMultiplicative()
        while isOp("+") || isOp("-") {
            let t = advance()
            guard case .op(let o) = t.kind else { break }
            let r = peek.offset
            lhs = .binary(BinaryOp(rawValue: o)!, lhs, try parseMultiplicative(), offset: t.offset, rhsOffset: r)
        }
        return lhs
    }

    mutating func parseMultiplicative() throws(ExpressionError) -> Expr {
        var lhs = try parseUnary()
        while isOp("*") || isOp("/") || isOp("%") {
            let t = advance()
            guard case .op(let o) = t.kind else { break }
            let r = peek.offset
            lhs = .binary(BinaryOp(rawValue: o)!, lhs, try parseUnary(), offset: t.offset, rhsOffset: r)
        }
        return lhs
    }

    mutating func parseUnary() throws(ExpressionError) -> Expr {
        if isOp("-") {
            _ = advance()
            let inner = try parseUnary()
            if case .literal(.number(let d)) = inner { return .literal(.number(-d)) }
            return .negate(inner)
        }
        return try parsePrimary()
    }

    mutating func parsePrimary() throws(ExpressionError) -> Expr {
        let t = peek
        switch t.kind {
        case .number(let d): _ = advance(); return .literal(.number(d))
        case .string(let s): _ = advance(); return .literal(.string(s))
        case .keyword("true"): _ = advance(); return .literal(.bool(true))
        case .keyword("false"): _ = advance(); return .literal(.bool(false))
        case .keyword("null"): _ = advance(); return .literal(.null)
        case .op("("):
            _ = advance()
            let e = try parseOr()
            guard isOp(")") else { throw unexpected("')'") }
            _ = advance()
            return e
        case .op("["):
            _ = advance()
            var items: [Expr] = []
            if isOp("]") { _ = advance(); return .list(items) }
            while true {
                items.append(try parseOr())
                if isOp(",") { _ = advance(); continue }
                if isOp("]") { _ = advance(); break }
                throw unexpected("',' or ']'")
            }
            return .list(items)
        case .identifier(let name):
            _ = advance()
            if isOp("(") { return try parseCall(name, t) }
            return try parseName(name, t)
        case .end:
            throw ExpressionError(t.offset, "the expression ends too early")
        default:
            throw unexpected("a value, a name or '('")
        }
    }

    mutating func parseCall(_ name: String, _ t: Token) throws(ExpressionError) -> Expr {
        guard let fn = Function(rawValue: name) else {
            let hint = Parser.suggest(name, Function.allCases.map(\.rawValue)).map { " — did you mean '\($0)'?" } ?? ""
            throw ExpressionError(t.offset, "unknown function '\(name)'\(hint) — known: \(Function.knownList)")
        }
        _ = advance()  // (
        var args: [Expr] = []
        if isOp(")") {
            _ = advance()
        } else {
            while true {
                args.append(try parseOr())
                if isOp(",") { _ = advance(); continue }
                if isOp(")") { _ = advance(); break }
                throw unexpected("',' or ')'")
            }
        }
        guard args.count == fn.arity else {
            throw ExpressionError(t.offset, "\(name)() takes \(fn.arity) argument\(fn.arity == 1 ? "" : "s"), not \(args.count)")
        }
        return .call(fn, args, offset: t.offset)
    }

    mutating func parseName(_ first: String, _ t: Token) throws(ExpressionError) -> Expr {
        var steps: [NameRef.Step] = []
        var text = first
        while true {
            if isOp(".") {
                _ = advance()
                let n = peek
                switch n.kind {
                case .identifier(let s), .keyword(let s):
                    _ = advance(); steps.append(.key(s)); text += "." + s
                case .number(let d) where d == d.rounded() && d >= 0:
                    _ = advance(); steps.append(.key(JSONWriter.format(d))); text += "." + JSONWriter.format(d)
                default: throw unexpected("a field name after '.'")
                }
            } else if isOp("[") {
                _ = advance()
                let n = peek
                switch n.kind {
                case .number(let d) where d == d.rounded() && d >= 0:
                    _ = advance(); steps.append(.index(Int(d))); text += "[\(Int(d))]"
                case .string(let s):
                    _ = advance(); steps.append(.key(s)); text += "[\"\(s)\"]"
                default: throw unexpected("an index (0, 1, …) or a quoted field name")
                }
                guard isOp("]") else { throw unexpected("']'") }
                _ = advance()
            } else {
                break
            }
        }
        let ref: NameRef
        switch first {
        case "payload":
            ref = NameRef(root: .payload, path: steps, text: text)
        case "channel":
            if steps.isEmpty {
                ref = NameRef(root: .channelID, path: [], text: text)
            } else if case .key(let col) = steps[0] {
                ref = NameRef(root: .channelColumn(col), path: Array(steps.dropFirst()), text: text)
            } else {
                throw ExpressionError(t.offset, "channel[…] is not a name — write channel.<column>")
            }
        case "topic":
            if steps.isEmpty {
                ref = NameRef(root: .topic, path: [], text: text)
            } else if case .key(let cap) = steps[0], steps.count == 1 {
                ref = NameRef(root: .topicCapture(cap), path: [], text: text)
            } else {
                throw ExpressionError(t.offset, "write topic.<capture> to read a topic capture")
            }
        case "feed":
            guard steps.isEmpty else { throw ExpressionError(t.offset, "feed is the feed's name and has no fields — for a payload field write payload.feed") }
            ref = NameRef(root: .feed, path: [], text: text)
        default:
            ref = NameRef(root: .payload, path: [.key(first)] + steps, text: text)
        }
        return .name(ref, offset: t.offset)
    }

    static func suggest(_ word: String, _ candidates: [String]) -> String? {
        YAMLContext.suggest(word, candidates)
    }
}

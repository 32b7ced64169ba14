import VigilCore

/// An expression compiled once, at load time, into a tree of closures.
public struct CompiledExpression: Sendable {
    public let source: String
    let eval: @Sendable (EvalContext) -> JSONValue

    public func evaluate(_ ctx: EvalContext) -> JSONValue { eval(ctx) }

    /// `true` / `false`, or nil when the result is null or not a boolean (unknown).
    @inline(__always)
    public func truth(_ ctx: EvalContext) -> Bool? {
        if case .bool(let b) = eval(ctx) { return b }
        return nil
    }

    public static func compile(_ text: String) throws(ExpressionError) -> CompiledExpression {
        let expr = try Parser.parse(text)
        return CompiledExpression(source: text, eval: try Compiler.compile(expr))
    }

    /// `not(when)`, the default `clear_when`.
    public func negated() -> CompiledExpression {
        let inner = eval
        return CompiledExpression(source: "not(\(source))", eval: { ctx in Semantics.not(inner(ctx)) })
    }
}

typealias Eval = @Sendable (EvalContext) -> JSONValue

/// A compiled regular expression. Swift's `Regex` is an immutable value, safe
/// to share between threads; the box only says so to the compiler.
final class RegexBox: @unchecked Sendable {
    let regex: Regex<AnyRegexOutput>
    init(_ r: Regex<AnyRegexOutput>) { regex = r }
}

enum Compiler {
    static func compile(_ e: Expr) throws(ExpressionError) -> Eval {
        switch e {
        case .literal(let v):
            return { _ in v }
        case .name(let ref, _):
            // The commonest name by far: one payload field.
            if ref.root == .payload, ref.path.count == 1, case .key(let k) = ref.path[0] {
                return { ctx in ctx.payload?[k] ?? .null }
            }
            return { ctx in ctx.lookup(ref) }
        case .list(let items):
            let evals = try compileAll(items)
            return { ctx in .array(evals.map { $0(ctx) }) }
        case .not(let inner):
            let a = try compile(inner)
            return { ctx in Semantics.not(a(ctx)) }
        case .negate(let inner):
            let a = try compile(inner)
            return { ctx in
                if case .number(let d) = a(ctx) { return .number(-d) }
                return .null
            }
        case .call(let fn, let args, _):
            let evals = try compileAll(args)
            return try compileCall(fn, evals)
        case .binary(let op, let lhs, let rhs, _, let rhsOffset):
            return try compileBinary(op, lhs, rhs, rhsOffset: rhsOffset)
        }
    }

    static func compileAll(_ items: [Expr]) throws(ExpressionError) -> [Eval] {
        var out: [Eval] = []
        for i in items { out.append(try compile(i)) }
        return out
    }

    static func compileBinary(_ op: BinaryOp, _ lhs: Expr, _ rhs: Expr, rhsOffset: Int) throws(ExpressionError) -> Eval {
        // `x == null` / `x != null` are definite: true or false, never unknown.
        if op == .eq || op == .ne, lhs.isNullLiteral || rhs.isNullLiteral {
            let other = try compile(lhs.isNullLiteral ? rhs : lhs)
            let wantNull = op == .eq
            return { ctx in .bool(other(ctx).isNull == wantNull) }
        }
        if op == .matches {
            guard case .literal(.string(let pattern)) = rhs else {
                throw ExpressionError(rhsOffset, "'matches' needs a regular expression written as a string literal")
            }
            let box: RegexBox
            do {
                box = RegexBox(try Regex(pattern).matchingSemantics(.unicodeScalar))
            } catch {
                throw ExpressionError(rhsOffset, "bad regular expression \"\(pattern)\": \(error)")
            }
            let a = try compile(lhs)
            return { ctx in
                guard case .string(let s) = a(ctx) else { return .null }
                return .bool(s.contains(box.regex))
            }
        }
        // The commonest condition of all: a payload field compared with a literal string or number.
        if op == .eq || op == .ne, case .name(let ref, _) = lhs, ref.root == .payload, ref.path.count == 1,
            case .key(let k) = ref.path[0], case .literal(let lit) = rhs
        {
            let negate = op == .ne
            switch lit {
            case .string(let want):
                return { ctx in
                    guard case .string(let got)? = ctx.payload?[k] else { return .null }
                    return .bool(got.sameCodePoints(want) != negate)
                }
            case .number(let want):
                return { ctx in
                    guard case .number(let got)? = ctx.payload?[k] else { return .null }
                    return .bool((got == want) != negate)
                }
            default:
                break
            }
        }
        let a = try compile(lhs)
        let b = try compile(rhs)
        switch op {
        case .and:
            return { ctx in
                let x = a(ctx)
                if case .bool(false) = x { return .bool(false) }
                let y = b(ctx)
                if case .bool(false) = y { return .bool(false) }
                if case .bool(true) = x, case .bool(true) = y { return .bool(true) }
                return .null
            }
        case .or:
            return { ctx in
                let x = a(ctx)
                if case .bool(true) = x { return .bool(true) }
                let y = b(ctx)
                if case .bool(true) = y { return .bool(true) }
                if case .bool(false) = x, case .bool(false) = y { return .bool(false) }
                return .null
            }
        case .eq: return { ctx in Semantics.equal(a(ctx), b(ctx)) }
        case .ne: return { ctx in Semantics.not(Semantics.equal(a(ctx), b(ctx))) }
        case .lt:
            if case .literal(.number(let k)) = rhs {
                return { ctx in if case .number(let d) = a(ctx) { return .bool(d < k) } else { return .null } }
            }
            return { ctx in Semantics.compare(a(ctx), b(ctx)) { $0 < 0 } }
        case .le:
            if case .literal(.number(let k)) = rhs {
                return { ctx in if case .number(let d) = a(ctx) { return .bool(d <= k) } else { return .null } }
            }
            return { ctx in Semantics.compare(a(ctx), b(ctx)) { $0 <= 0 } }
        case .gt:
            if case .literal(.number(let k)) = rhs {
                return { ctx in if case .number(let d) = a(ctx) { return .bool(d > k) } else { return .null } }
            }
            return { ctx in Semantics.compare(a(ctx), b(ctx)) { $0 > 0 } }
        case .ge:
            if case .literal(.number(let k)) = rhs {
                return { ctx in if case .number(let d) = a(ctx) { return .bool(d >= k) } else { return .null } }
            }
            return { ctx in Semantics.compare(a(ctx), b(ctx)) { $0 >= 0 } }
        case .inList: return { ctx in Semantics.member(a(ctx), of: b(ctx)) }
        case .notIn: return { ctx in Semantics.not(Semantics.member(a(ctx), of: b(ctx))) }
        case .contains: return { ctx in Semantics.member(b(ctx), of: a(ctx)) }
        case .add:
            return { ctx in
                let x = a(ctx), y = b(ctx)
                if case .string(let s) = x, case .string(let t) = y { return .string(s + t) }
                return Semantics.arithmetic(x, y, +)
            }
        case .sub: return { ctx in Semantics.arithmetic(a(ctx), b(ctx), -) }
        case .mul: return { ctx in Semantics.arithmetic(a(ctx), b(ctx), *) }
        case .div:
            return { ctx in
                guard case .number(let y) = b(ctx), y != 0 else { return .null }
                return Semantics.arithmetic(a(ctx), .number(y), /)
            }
        case .mod:
            return { ctx in
                guard case .number(let y) = b(ctx), y != 0 else { return .null }
                return Semantics.arithmetic(a(ctx), .number(y)) { $0.truncatingRemainder(dividingBy: $1) }
            }
        case .matches: fatalError("handled above")
        }
    }

    static func compileCall(_ fn: Function, _ args: [Eval]) throws(ExpressionError) -> Eval {
        let a = args[0]
        switch fn {
        case .exists: return { ctx in .bool(!a(ctx).isNull) }
        case .abs: return { ctx in Semantics.numeric(a(ctx)) { Swift.abs($0) } }
        case .round: return { ctx in Semantics.numeric(a(ctx)) { $0.rounded(.toNearestOrAwayFromZero) } }
        case .floor: return { ctx in Semantics.numeric(a(ctx)) { $0.rounded(.down) } }
        case .ceil: return { ctx in Semantics.numeric(a(ctx)) { $0.rounded(.up) } }
        case .min, .max:
            let b = args[1]
            let isMin = fn == .min
            return { ctx in
                guard case .number(let x) = a(ctx), case .number(let y) = b(ctx) else { return .null }
                return .number(isMin ? Swift.min(x, y) : Swift.max(x, y))
            }
        case .len:
            return { ctx in
                switch a(ctx) {
                case .string(let s): return .number(Double(s.unicodeScalars.count))
                case .array(let l): return .number(Double(l.count))
                case .object(let o): return .number(Double(o.count))
                default: return .null
                }
            }
        case .lower: return { ctx in if case .string(let s) = a(ctx) { return .string(s.lowercased()) } else { return .null } }
        case .upper: return { ctx in if case .string(let s) = a(ctx) { return .string(s.uppercased()) } else { return .null } }
        case .starts_with, .ends_with:
            let b = args[1]
            let prefix = fn == .starts_with
            return { ctx in
                guard case .string(let s) = a(ctx), case .string(let p) = b(ctx) else { return .null }
                let su = Array(s.utf8), pu = Array(p.utf8)
                return .bool(prefix ? su.starts(with: pu) : su.reversed().starts(with: pu.reversed()))
            }
        case .number:
            return { ctx in
                switch a(ctx) {
                case .number(let d): return .number(d)
                case .bool(let b): return .number(b ? 1 : 0)
                case .string(let s):
                    let t = s.trimmingPrefixAndSuffixSpaces()
                    guard let d = Double(t), d.isFinite, !t.lowercased().hasPrefix("0x"), !t.lowercased().hasPrefix("-0x") else { return .null }
                    return .number(d)
                default: return .null
                }
            }
        case .string:
            return { ctx in
                switch a(ctx) {
                case .null: return .null
                case .string(let s): return .string(s)
                case .number(let d): return .string(JSONWriter.format(d))
                case .bool(let b): return .string(b ? "true" : "false")
                case let v: return .string(JSONWriter.encode(v))
                }
            }
        }
    }

}

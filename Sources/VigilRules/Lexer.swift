import VigilCore

/// A token of the expression language. `offset` counts Unicode scalars from
/// the start of the expression, so it maps onto YAML's columns.
struct Token: Equatable {
    enum Kind: Equatable {
        case number(Double)
        case string(String)
        case identifier(String)
        case keyword(String)  // and or not in contains matches true false null
        case op(String)  // == != < <= > >= + - * / % ! && || ( ) [ ] , .
        case end
    }
    var kind: Kind
    var offset: Int
}

/// An error in an expression, at a scalar offset within it.
public struct ExpressionError: Error, Equatable, Sendable {
    public var offset: Int
    public var message: String
    public init(_ offset: Int, _ message: String) { self.offset = offset; self.message = message }
}

enum Lexer {
    static let keywords: Set<String> = ["and", "or", "not", "in", "contains", "matches", "true", "false", "null"]

    static func tokenize(_ text: String) throws(ExpressionError) -> [Token] {
        let s = Array(text.unicodeScalars)
        var tokens: [Token] = []
        var i = 0
        func isIdentStart(_ c: Unicode.Scalar) -> Bool { c == "_" || c.properties.isAlphabetic }
        func isIdentPart(_ c: Unicode.Scalar) -> Bool { isIdentStart(c) || ("0"..."9").contains(c) }
        while i < s.count {
            let c = s[i]
            if c == " " || c == "\t" || c == "\n" || c == "\r" { i += 1; continue }
            let start = i
            if ("0"..."9").contains(c) {
                var text = ""
                while i < s.count, ("0"..."9").contains(s[i]) { text.unicodeScalars.append(s[i]); i += 1 }
                if i + 1 < s.count, s[i] == ".", ("0"..."9").contains(s[i + 1]) {
                    text.append("."); i += 1
                    while i < s.count, ("0"..."9").contains(s[i]) { text.unicodeScalars.append(s[i]); i += 1 }
                }
                if i < s.count, s[i] == "e" || s[i] == "E" {
                    var j = i + 1
                    if j < s.count, s[j] == "+" || s[j] == "-" { j += 1 }
                    if j < s.count, ("0"..."9").contains(s[j]) {
                        text.append("e")
                        if s[i + 1] == "-" { text.append("-") }
                        i = j
                        while i < s.count, ("0"..."9").contains(s[i]) { text.unicodeScalars.append(s[i]); i += 1 }
                    }
                }
                if i < s.count, isIdentStart(s[i]) {
                    throw ExpressionError(start, "'\(text)\(s[i])…' is not a number — durations and units are not allowed in expressions")
                }
                guard let v = Double(text) else { throw ExpressionError(start, "invalid number '\(text)'") }
                tokens.append(Token(kind: .number(v), offset: start))
                continue
            }
            if isIdentStart(c) {
                var name = ""
                while i < s.count, isIdentPart(s[i]) { name.unicodeScalars.append(s[i]); i += 1 }
                tokens.append(Token(kind: keywords.contains(name) ? .keyword(name) : .identifier(name), offset: start))
                continue
            }
            if c == "\"" || c == "'" {
                let quote = c
                i += 1
                var value = ""
                var closed = false
                while i < s.count {
                    let d = s[i]
                    if d == quote { closed = true; i += 1; break }
                    if d == "\\" {
                        guard i + 1 < s.count else { break }
                        let e = s[i + 1]
                        switch e {
                        case "n": value.append("\n")
                        case "t": value.append("\t")
                        case "r": value.append("\r")
                        case "\\": value.append("\\")
                        case "\"": value.append("\"")
                        case "'": value.append("'")
                        case "u":
                            guard i + 5 < s.count else { throw ExpressionError(i, "invalid \\u escape — write \\uXXXX") }
                            let hex = String(String.UnicodeScalarView(s[(i + 2)...(i + 5)]))
                            guard let v = UInt32(hex, radix: 16), let u = Unicode.Scalar(v) else {
                                throw ExpressionError(i, "invalid \\u escape '\\u\(hex)'")
                            }
                            value.unicodeScalars.append(u)
                            i += 4
                        default:
                            // Regular expressions keep their own escapes (\d, \s, \.).
                            value.unicodeScalars.append("\\"); value.unicodeScalars.append(e)
                        }
                        i += 2
                        continue
                    }
                    value.unicodeScalars.append(d)
                    i += 1
                }
                if !closed { throw ExpressionError(start, "unterminated string — close it with \(quote)") }
                tokens.append(Token(kind: .string(value), offset: start))
                continue
            }
            let two = i + 1 < s.count ? String(String.UnicodeScalarView([c, s[i + 1]])) : ""
            if ["==", "!=", "<=", ">=", "&&", "||"].contains(two) {
                tokens.append(Token(kind: .op(two), offset: start)); i += 2; continue
            }
            if "<>+-*/%!()[],.".unicodeScalars.contains(c) {
                tokens.append(Token(kind: .op(String(c)), offset: start)); i += 1; continue
            }
            if c == "=" { throw ExpressionError(start, "'=' is not an operator — write '==' to compare") }
            if c == "&" { throw ExpressionError(start, "'&' is not an operator — write '&&' or 'and'") }
            if c == "|" { throw ExpressionError(start, "'|' is not an operator — write '||' or 'or'") }
            if c == "{" || c == "}" { throw ExpressionError(start, "unexpected '\(c)' — templates ({{…}}) belong in title and labels") }
            throw ExpressionError(start, "unexpected character '\(c)'")
        }
        tokens.append(Token(kind: .end, offset: s.count))
        return tokens
    }
}

import Testing
import VigilCore
@testable import VigilRules

func ctx(
    _ payload: JSONValue = [:], channel: String? = "cp-1", info: JSONObject? = JSONObject([("building", "B3"), ("route", "fire_safety")]),
    topic: String? = "estate/C1/charging_pile/cp-1/telemetry", feed: String = "charging_pile"
) -> EvalContext {
    EvalContext(
        payload: payload.objectValue ?? JSONObject(), topic: topic, captures: [("community", "C1"), ("channel", "cp-1")],
        channelID: channel, channelInfo: info, feed: feed)
}

func eval(_ text: String, _ payload: JSONValue = [:]) throws -> JSONValue {
    try CompiledExpression.compile(text).evaluate(ctx(payload))
}

@Suite struct LexerAndParserTests {
    @Test func tokenizesOperatorsAndLiterals() throws {
        let kinds = try Lexer.tokenize(#"a.b[0] >= -1.5e2 && "x\"y" != 'z' || !c"#).map(\.kind)
        #expect(kinds.contains(.number(1.5e2)))
        #expect(kinds.contains(.string("x\"y")))
        #expect(kinds.contains(.string("z")))
        #expect(kinds.contains(.op(">=")))
        #expect(kinds.last == .end)
    }

    @Test func precedenceLoosestFirst() throws {
        #expect(try eval("1 + 2 * 3") == 7)
        #expect(try eval("(1 + 2) * 3") == 9)
        #expect(try eval("-2 * -3") == 6)
        #expect(try eval("10 - 4 - 3") == 3)
        #expect(try eval("true || false && false") == true)
        #expect(try eval("!false && false") == false)
        #expect(try eval("not 1 == 2") == true)
        #expect(try eval("1 + 1 == 2 and 3 > 2 or false") == true)
        #expect(try eval("2 in [1, 2] && 3 not in [1, 2]") == true)
    }

    @Test(
        arguments: [
            ("temperature_c >", 15, "the expression ends too early"),
            (
                "avg(x)", 0,
                "unknown function 'avg' — known: abs, ceil, ends_with, exists, floor, len, lower, max, min, number, round, starts_with, string, upper"
            ),
            ("abs(1, 2)", 0, "abs() takes 1 argument, not 2"),
            ("x = 1", 2, "'=' is not an operator — write '==' to compare"),
            ("x == \"open", 5, "unterminated string"),
            ("(a && b", 7, "expected ')'"),
            ("a < b < c", 6, "comparisons do not chain"),
            ("x matches \"(\"", 10, "bad regular expression"),
            ("x matches y", 10, "'matches' needs a regular expression written as a string literal"),
            ("a $ b", 2, "unexpected character '$'"),
            ("30s > x", 0, "is not a number"),
            ("", 0, "empty expression"),
            ("a b", 2, "expected an operator or the end of the expression"),
            ("feed.x == 1", 0, "feed is the feed's name and has no fields"),
        ] as [(String, Int, String)])
    func syntaxErrorsCarryTheirColumn(_ text: String, _ offset: Int, _ message: String) {
        do {
            _ = try CompiledExpression.compile(text)
            Issue.record("\(text) compiled")
        } catch {
            #expect(error.offset == offset, "\(text): \(error.message)")
            #expect(error.message.contains(message), "\(error.message)")
        }
    }
}

@Suite struct SemanticsTests {
    let T: JSONValue = true, F: JSONValue = false, N: JSONValue = .null

    @Test func kleeneAnd() throws {
        let table: [(String, JSONValue)] = [
            ("true && true", T), ("true && false", F), ("false && true", F), ("false && false", F),
            ("true && null", N), ("null && true", N), ("false && null", F), ("null && false", F), ("null && null", N),
            ("missing > 1 && true", N), ("1 && true", N),
        ]
        for (e, want) in table { #expect(try eval(e) == want, "\(e)") }
    }

    @Test func kleeneOr() throws {
        let table: [(String, JSONValue)] = [
            ("true || true", T), ("true || false", T), ("false || true", T), ("false || false", F),
            ("true || null", T), ("null || true", T), ("false || null", N), ("null || false", N), ("null || null", N),
        ]
        for (e, want) in table { #expect(try eval(e) == want, "\(e)") }
    }

    @Test func kleeneNot() throws {
        #expect(try eval("!true") == F)
        #expect(try eval("!false") == T)
        #expect(try eval("!null") == N)
        #expect(try eval("not missing") == N)
        #expect(try eval("!3") == N)
    }

    @Test func comparisonsWithNullAndMismatchedTypes() throws {
        let p: JSONValue = ["t": 70, "s": "open", "b": true, "n": .null]
        let table: [(String, JSONValue)] = [
            ("t >= 65", T), ("t < 65", F), ("t == 70", T), ("t != 70", F), ("t <= 70", T), ("t > 70", F),
            ("missing >= 65", N), ("missing == 1", N), ("missing != 1", N),
            ("s == 70", N), ("s > 1", N), ("t == \"70\"", N), ("b == true", T), ("b < true", N),
            ("missing == null", T), ("missing != null", F), ("n == null", T), ("null == n", T), ("t == null", F), ("t != null", T),
            ("s == \"open\"", T), ("s < \"p\"", T), ("\"B\" < \"a\"", T), ("\"é\" > \"z\"", T),
            ("[1, 2] == [1, 2]", T), ("[1] == 1", N),
        ]
        for (e, want) in table { #expect(try eval(e, p) == want, "\(e)") }
    }

    @Test func arithmetic() throws {
        let p: JSONValue = ["a": 7, "s": "x"]
        let table: [(String, JSONValue)] = [
            ("a + 1", 8), ("a - 10", -3), ("a * 2", 14), ("a / 2", 3.5), ("a % 3", 1), ("-a % 3", -1), ("a % -3", 1),
            ("-7.5 % 2", -1.5), ("a / 0", N), ("a % 0", N), ("a + missing", N), ("a * s", N), ("-s", N), ("-a", -7),
            ("s + \"y\"", "xy"), ("s + 1", N),
        ]
        for (e, want) in table { #expect(try eval(e, p) == want, "\(e)") }
    }

    @Test func membershipContainsMatches() throws {
        let p: JSONValue = ["r": "denied", "tags": ["a", "b"], "n": 3, "name": "君正长河华府"]
        let table: [(String, JSONValue)] = [
            ("r in [\"denied\", \"error\"]", T), ("r in [\"granted\"]", F), ("r not in [\"granted\"]", T),
            ("missing in [1]", N), ("n in [1, 2, 3]", T), ("n in [\"3\"]", N), ("r in \"undenied!\"", T), ("r in 5", N),
            ("tags contains \"a\"", T), ("tags contains \"z\"", F), ("r contains \"nie\"", T), ("r contains 1", N),
            ("r matches \"^den\"", T), ("r matches \"ied$\"", T), ("r matches \"^ied\"", F), ("r matches \"en.*d\"", T),
            ("n matches \"3\"", N), ("name matches \"长河\"", T), ("name contains \"华府\"", T),
        ]
        for (e, want) in table { #expect(try eval(e, p) == want, "\(e)") }
    }

    @Test func functions() throws {
        let p: JSONValue = ["x": -2.5, "s": "ÉcoLE", "l": [1, 2, 3], "num": "42.5", "zh": "云泉公馆", "o": ["a": 1]]
        let table: [(String, JSONValue)] = [
            ("exists(x)", T), ("exists(missing)", F), ("abs(x)", 2.5), ("abs(s)", N),
            ("min(1, 2)", 1), ("max(1, 2)", 2), ("min(1, missing)", N),
            ("round(x)", -3), ("round(2.5)", 3), ("round(2.4)", 2), ("round(-0.5)", -1), ("floor(x)", -3), ("ceil(x)", -2),
            ("len(s)", 5), ("len(zh)", 4), ("len(l)", 3), ("len(x)", N), ("len(o)", 1),
            ("lower(s)", "école"), ("upper(s)", "ÉCOLE"), ("lower(1)", N),
            ("starts_with(s, \"Éc\")", T), ("starts_with(s, \"E\")", F), ("ends_with(s, \"LE\")", T), ("ends_with(1, \"x\")", N),
            ("number(num)", 42.5), ("number(\"abc\")", N), ("number(true)", 1), ("number(x)", -2.5), ("number(missing)", N),
            ("string(71)", "71"), ("string(70.5)", "70.5"), ("string(true)", "true"), ("string(missing)", N), ("string(l)", "[1,2,3]"),
        ]
        for (e, want) in table { #expect(try eval(e, p) == want, "\(e)") }
    }

    @Test func namesResolveToTheirNamespaces() throws {
        let p: JSONValue = ["door": ["state": "open"], "sensors": [["v": 1], ["v": 9]], "channel": "payload-field", "a-b": 5]
        let table: [(String, JSONValue)] = [
            ("door.state", "open"), ("payload.door.state", "open"), ("sensors[1].v", 9), ("sensors[5].v", N),
            ("channel", "cp-1"), ("payload.channel", "payload-field"), ("channel.building", "B3"), ("channel.nope", N),
            ("topic", "estate/C1/charging_pile/cp-1/telemetry"), ("topic.community", "C1"), ("topic.nope", N),
            ("feed", "charging_pile"), ("payload[\"a-b\"]", 5), ("door.state.deeper", N),
        ]
        for (e, want) in table { #expect(try eval(e, p) == want, "\(e)") }
    }

    @Test func truthIsExactlyTrue() throws {
        let e = try CompiledExpression.compile("x")
        #expect(e.truth(ctx(["x": true])) == true)
        #expect(e.truth(ctx(["x": false])) == false)
        #expect(e.truth(ctx(["x": 1])) == nil)
        #expect(e.truth(ctx(["x": "true"])) == nil)
        #expect(e.truth(ctx([:])) == nil)
    }

    @Test func templatesRenderShortestNumbersAndEmptyForMissing() throws {
        let t = try Template.compile("Pile {{channel}} at {{t}} °C ({{channel.building}}){{missing}} {{ round(t) }}")
        #expect(t.render(ctx(["t": 70.5])) == "Pile cp-1 at 70.5 °C (B3) 71")
        #expect(t.render(ctx(["t": 71])) == "Pile cp-1 at 71 °C (B3) 71")
        do { _ = try Template.compile("a {{b"); Issue.record("compiled") } catch { #expect(error.offset == 2) }
        do { _ = try Template.compile("ab {{ x > }}"); Issue.record("compiled") } catch { #expect(error.offset == 10) }
    }
}

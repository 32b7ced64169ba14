import Testing
@testable import VigilCore

@Suite struct JSONParserTests {
    @Test func parsesScalarsAndNesting() throws {
        let v = try JSONParser.parse(#"{"a":1,"b":[true,false,null],"c":{"d":"x"},"e":-0.5,"f":1e3}"#)
        #expect(v["a"] == 1)
        #expect(v["b"][0] == true)
        #expect(v["b"][2] == .null)
        #expect(v["c"]["d"] == "x")
        #expect(v["e"] == .number(-0.5))
        #expect(v["f"] == .number(1000))
    }

    @Test func keepsMemberOrderAndLastDuplicate() throws {
        let v = try JSONParser.parse(#"{"z":1,"a":2,"z":3}"#)
        #expect(v.objectValue?.keys == ["z", "a"])
        #expect(v["z"] == 3)
        #expect(v.description == #"{"z":3,"a":2}"#)
    }

    @Test func decodesEscapesAndSurrogates() throws {
        let v = try JSONParser.parse(#"["a\"b\\c\n", "\u00e9\u4e2d", "\ud83d\ude00"]"#)
        #expect(v[0] == "a\"b\\c\n")
        #expect(v[1] == "é中")
        #expect(v[2] == "😀")
    }

    @Test(arguments: [
        "", "{", "{\"a\"}", "{\"a\":}", "[1,]", "{\"a\":1,}", "01", "1.", "-", "tru", "\"abc", "{\"a\":1} x",
        "\"\\x\"", "\"\\ud800\"", "[1 2]", "{'a':1}", "nul", "\"a\u{01}\"",
    ])
    func rejectsInvalidJSON(_ text: String) {
        #expect(throws: JSONError.self) { try JSONParser.parse(text) }
    }

    @Test func rejectsInvalidUTF8WithOffset() {
        let bytes: [UInt8] = Array(#"{"a":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        #expect(throws: JSONError.invalidUTF8(offset: 6)) { try JSONParser.parse(bytes) }
        #expect(!UTF8Validation.isValid([0xED, 0xA0, 0x80]))  // a surrogate
        #expect(!UTF8Validation.isValid([0xC0, 0xAF]))  // overlong
        #expect(!UTF8Validation.isValid([0xF4, 0x90, 0x80, 0x80]))  // above U+10FFFF
        #expect(!UTF8Validation.isValid([0xE4, 0xB8]))  // truncated
        #expect(UTF8Validation.isValid(Array("君正长河华府 😀 plain ascii text longer than eight".utf8)))
    }

    @Test func enforcesDepth() throws {
        let deep = String(repeating: "[", count: 33) + String(repeating: "]", count: 33)
        #expect(throws: JSONError.tooDeep(limit: 32)) { try JSONParser.parse(deep, maxDepth: 32) }
        let ok = String(repeating: "[", count: 32) + String(repeating: "]", count: 32)
        #expect(throws: Never.self) { try JSONParser.parse(ok, maxDepth: 32) }
    }

    @Test func numbersRoundTripInShortestForm() throws {
        for (text, out) in [
            ("71", "71"), ("70.5", "70.5"), ("0.1", "0.1"), ("-3", "-3"), ("1e-7", "1e-07"),
            ("123456789012345678", "1.2345678901234568e+17"), ("0", "0"), ("-0", "0"), ("2.50", "2.5"),
        ] {
            let v = try JSONParser.parse(text)
            #expect(v.description == out, "\(text)")
        }
        // Exact decimal parsing: the fast path and strtod agree.
        #expect(try JSONParser.parse("0.3") == .number(0.3))
        #expect(try JSONParser.parse("123.456") == .number(123.456))
        #expect(try JSONParser.parse("1.7976931348623157e308") == .number(1.7976931348623157e308))
    }

    @Test func writerEscapesControlCharacters() {
        #expect(JSONWriter.encode(.string("a\u{01}\t\"")) == #""a\u0001\t\"""#)
    }

    @Test func stringEqualityIsByCodePoints() {
        // "é" precomposed and decomposed are canonically equivalent but not the same code points.
        #expect(JSONValue.string("\u{E9}") != JSONValue.string("e\u{301}"))
    }

    /// Short strings made once and found again by their bytes: a parse with
    /// the table gives what a parse without it gives, for every length around
    /// the table's limit, for strings that share a slot (256 slots, a few
    /// thousand strings), after escapes and in other scripts.
    @Test func shortStringsGiveTheSameValues() throws {
        var words = ["", "a", "event", "heartbeat", "12345678", "123456789", "session_minutes", "sixteen_letters_", "云泉公馆", "door_forced"]
        for i in 0..<3000 { words.append("w\(i)") }
        var strings = ShortStrings()
        for round in 0..<2 {
            for (i, w) in words.enumerated() {
                let other = words[(i * 31 + round) % words.count]
                let text = #"{"\#(w)":"\#(other)","k\u0041":"\#(w)\n"}"#
                let plain = try JSONParser.parse(Array(text.utf8))
                let cached = try Array(text.utf8).withUnsafeBufferPointer { b throws(JSONError) in
                    try withUnsafeMutablePointer(to: &strings) { p throws(JSONError) in try JSONParser.parse(b, strings: p) }
                }
                #expect(cached == plain && cached.description == plain.description, "\(text)")
                #expect(cached[w] == .string(other) && cached["kA"] == .string(w + "\n"))
            }
        }
    }

    /// Records parsed one after another into one scratch object keep their
    /// own payloads: a record still held is never overwritten, and a
    /// repeated name, a nested object and an empty payload come out as
    /// without the scratch.
    @Test func payloadsParsedIntoOneScratchStayTheirOwn() throws {
        let lines = [
            #"{"ts":1,"topic":"a/b","payload":{"event":"alarm","t":71.5}}"#,
            #"{"ts":2,"topic":"a/b","payload":{"event":"reset","event":"heartbeat","n":{"x":[1,2]}}}"#,
            #"{"ts":3,"payload":{},"topic":"a/b"}"#,
            #"{"ts":4,"topic":"a/b","payload":{"a_long_member_name":"a value longer than fifteen bytes"}}"#,
        ]
        var scratch = JSONObject()
        var strings = ShortStrings()
        var topics = FreshTopics()
        var kept: [JSONValue] = []
        for var line in lines {
            let record = try line.withUTF8 { buf in
                try Record.parse(line: buf, maxDepth: 8, topics: &topics, strings: &strings, scratch: &scratch).get()
            }
            guard case .message(let m) = record, case .parsed(let value, let size, _) = m.payload else {
                Issue.record("not a parsed message: \(line)"); return
            }
            kept.append(.array([value, .number(Double(size))]))
        }
        #expect(
            kept.map(\.[0].description) == [
                #"{"event":"alarm","t":71.5}"#, #"{"event":"heartbeat","n":{"x":[1,2]}}"#, "{}",
                #"{"a_long_member_name":"a value longer than fifteen bytes"}"#,
            ])
        for (value, line) in zip(kept, lines) {
            var l = line
            let plain = try l.withUTF8 { try Record.parse(line: $0, maxDepth: 8).get() }
            guard case .message(let m) = plain, case .parsed(let expected, let size, _) = m.payload else { Issue.record("not parsed"); return }
            #expect(value == .array([expected, .number(Double(size))]))
        }
    }

    /// Code-point equality of short strings, however they were made: a
    /// literal, decoded bytes, a substring, a string grown by appending.
    @Test func sameCodePointsOfShortStrings() {
        let made = [
            "temperature_c", String(decoding: Array("temperature_c".utf8), as: UTF8.self),
            String("xxtemperature_cxx".dropFirst(2).dropLast(2)),
            {
                var s = "temperature"; s += "_c"; return s
            }(),
        ]
        for a in made { for b in made { #expect(a.sameCodePoints(b)) } }
        #expect(!"temperature_c".sameCodePoints("temperature_d"))
        #expect(!"voltage_v".sameCodePoints("current_a"))  // same length
        #expect(!"a".sameCodePoints("a\u{0}"))
        #expect("t".isSmallASCII && !"é".isSmallASCII && !String(repeating: "a", count: 16).isSmallASCII)
        // Canonically equivalent, different code points: unequal (no normalisation).
        #expect(!"\u{E9}".sameCodePoints("e\u{301}"))
        #expect("\u{E9}".sameCodePoints(String(decoding: [0xC3, 0xA9], as: UTF8.self)))
        let long = String(repeating: "é", count: 20)
        #expect(long.sameCodePoints(String(decoding: Array(long.utf8), as: UTF8.self)))
    }
}

@Suite struct TimeAndUnitsTests {
    @Test func formatsAndParsesRFC3339() {
        #expect(Time.format(0) == "1970-01-01T00:00:00.000Z")
        #expect(Time.format(1_795_852_800_000) == "2026-11-28T08:00:00.000Z")
        #expect(Time.parse("2026-11-28T08:00:00Z") == 1_795_852_800_000)
        #expect(Time.parse("2026-11-28T08:00:00.250Z") == 1_795_852_800_250)
        #expect(Time.parse("2026-11-28T16:00:00+08:00") == 1_795_852_800_000)
        #expect(Time.parse("2024-02-29T00:00:00Z") != nil)
        #expect(Time.parse("2026-02-29T00:00:00Z") == nil)
        #expect(Time.parse("2026-11-28") == nil)
        #expect(Time.parse("yesterday") == nil)
        #expect(Time.format(-1) == "1969-12-31T23:59:59.999Z")
    }

    @Test func parsesDurations() {
        func d(_ s: String) -> Millis? { if case .success(let v) = Units.parseDuration(s) { return v } else { return nil } }
        #expect(d("500ms") == 500)
        #expect(d("30s") == 30_000)
        #expect(d("5m") == 300_000)
        #expect(d("2h") == 7_200_000)
        #expect(d("1d") == 86_400_000)
        #expect(d("1.5s") == 1500)
        #expect(d("0s") == 0)
        #expect(d("30") == nil)
        #expect(d("30 s") == nil)
        #expect(d("-1s") == nil)
        #expect(d("5min") == nil)
        #expect(d("1m30s") == 90_000)
        #expect(d("2h30m") == 9_000_000)
        #expect(d("s") == nil)
        if case .failure(let e) = Units.parseDuration("30 s") { #expect(e.description.contains("write 30s")) }
        #expect(Units.formatDuration(90_000) == "1m30s")
        #expect(Units.formatDuration(86_400_000) == "1d")
    }

    @Test func parsesSizes() throws {
        #expect(try Units.parseSize("64KiB").get() == 65_536)
        #expect(try Units.parseSize("10MiB").get() == 10_485_760)
        #expect(try Units.parseSize("1GiB").get() == 1_073_741_824)
        #expect((try? Units.parseSize("ten").get()) == nil)
    }

    @Test func hexDigits() {
        #expect(Hex.encode([0x00, 0x0f, 0xa5, 0xff]) == "000fa5ff")
        #expect(Hex.encode([UInt8]()) == "")
    }

    @Test func base64RoundTrip() {
        for s in ["", "f", "fo", "foo", "foob", "fooba", "foobar"] {
            let b = Base64.encode(Array(s.utf8))
            #expect(Base64.decode(b) == Array(s.utf8))
        }
        #expect(Base64.encode(Array("foobar".utf8)) == "Zm9vYmFy")
        #expect(Base64.decode("!!") == nil)
    }
}

import Foundation
import Testing
@testable import VigilConfig
import VigilCore
import VigilIngest
@testable import VigilRules

/// One broken file and the error `vigil check` must report for it.
struct BrokenCase: CustomStringConvertible, Sendable {
    var kind: String  // rules | config | channels
    var text: String
    var line: Int
    var column: Int
    var message: String
    var description: String { "\(kind) \(line):\(column) \(message)" }
}

let brokenCases: [BrokenCase] = [
    // Rule files.
    .init(kind: "rules", text: "rules:\n  - name: a\n    when: x > \n", line: 3, column: 14, message: "when: the expression ends too early"),
    .init(kind: "rules", text: "rules:\n  - name: a\n    when: avg(x) > 1\n", line: 3, column: 11, message: "unknown function 'avg'"),
    .init(kind: "rules", text: "rules:\n  - name: a\n    when: x = 1\n", line: 3, column: 13, message: "'=' is not an operator"),
    .init(kind: "rules", text: "rules:\n  - name: a\n    when: \"x == 'open\"\n", line: 3, column: 17, message: "unterminated string"),
    .init(kind: "rules", text: "rules:\n  - name: a\n    when: x matches \"[\"\n", line: 3, column: 21, message: "bad regular expression"),
    .init(kind: "rules", text: "rules:\n  - name: a\n    when: abs(x, 1) > 2\n", line: 3, column: 11, message: "abs() takes 1 argument, not 2"),
    .init(kind: "rules", text: "rules:\n  - name: a\n    when: x > 1\n    for: 30 s\n", line: 4, column: 10, message: "duration '30 s' — write 30s"),
    .init(kind: "rules", text: "rules:\n  - name: a\n    when: x > 1\n    for: soon\n", line: 4, column: 10, message: "for: duration 'soon'"),
    .init(
        kind: "rules", text: "rules:\n  - name: a\n    when: x > 1\n    severity: urgent\n", line: 4, column: 15,
        message: "severity 'urgent' — use info, minor, major or critical"),
    .init(kind: "rules", text: "rules:\n  - name: a\n    when: x > 1\n    colour: red\n", line: 4, column: 5, message: "unknown key 'colour' in a rule"),
    .init(kind: "rules", text: "rules:\n  - name: a\n    when: x > 1\n    fro: 30s\n", line: 4, column: 5, message: "did you mean 'for'?"),
    .init(kind: "rules", text: "rules:\n  - name: a\n    feed: charging_pile\n", line: 2, column: 5, message: "rule 'a' needs 'when'"),
    .init(kind: "rules", text: "rules:\n  - name: a\n    when: x\n    count: 3\n", line: 4, column: 5, message: "'count' needs 'within'"),
    .init(kind: "rules", text: "rules:\n  - name: a\n    when: x\n    within: 1m\n", line: 4, column: 5, message: "'within' needs 'count'"),
    .init(
        kind: "rules", text: "rules:\n  - name: a\n    when: x\n    for: 1m\n    count: 3\n    within: 1m\n", line: 5, column: 5,
        message: "'for' and 'count' exclude each other"),
    .init(kind: "rules", text: "rules:\n  - name: a\n    when: x\n    count: 0\n    within: 1m\n", line: 4, column: 12, message: "count must be at least 1"),
    .init(
        kind: "rules", text: "rules:\n  - name: a\n    when: x\n    count: many\n    within: 1m\n", line: 4, column: 12, message: "count must be a whole number"
    ),
    .init(kind: "rules", text: "rules:\n  - name: a\n    absent_for: 10m\n    for: 1m\n", line: 4, column: 5, message: "'for' does not go with 'absent_for'"),
    .init(kind: "rules", text: "rules:\n  - name: Bad Name\n    when: x\n", line: 2, column: 11, message: "rule name 'Bad Name'"),
    .init(kind: "rules", text: "rules:\n  - when: x\n", line: 2, column: 5, message: "a rule needs a name"),
    .init(kind: "rules", text: "rules:\n  - name: a\n    when: x\n  - name: a\n    when: y\n", line: 4, column: 5, message: "rule name 'a' is already used at"),
    .init(kind: "rules", text: "rules:\n  - name: a\n    feed: lift\n    when: x\n", line: 3, column: 11, message: "unknown feed 'lift'"),
    .init(
        kind: "rules", text: "rules:\n  - name: a\n    feed: [fire_alarm, smart_gat]\n    when: x\n", line: 3, column: 24, message: "did you mean 'smart_gate'?"
    ),
    .init(kind: "rules", text: "rules:\n  - name: a\n    when: x\n    title: \"{{channel\"\n", line: 4, column: 13, message: "title: '{{' is not closed"),
    .init(
        kind: "rules", text: "rules:\n  - name: a\n    when: x\n    labels: { z: \"{{ 1 + }}\" }\n", line: 4, column: 26,
        message: "label 'z': the expression ends too early"),
    .init(kind: "rules", text: "rules:\n  - name: a\n    when: x\n    key: [\"1 + 2\"]\n", line: 4, column: 11, message: "key '1 + 2' must be a name"),
    .init(
        kind: "rules", text: "rules:\n  - name: a\n    absent_for: 10m\n    key: [temperature]\n", line: 4, column: 11,
        message: "an absence rule's key can only use the channel"),
    .init(
        kind: "rules", text: "rules:\n  - name: a\n    when: x\n    clear_after: 1m\n    clear_for: 1m\n", line: 5, column: 5,
        message: "'clear_for' needs 'clear_when'"),
    .init(
        kind: "rules", text: "rules:\n  - name: a\n    when: x\ninhibit:\n  - { source: nope, target: a }\n", line: 5, column: 15,
        message: "inhibit source 'nope' is not a rule"),
    .init(
        kind: "rules", text: "rules:\n  - name: a\n    when: x\ninhibit:\n  - { source: a, target: \"zz_*\" }\n", line: 5, column: 26,
        message: "inhibit target 'zz_*' matches no rule"),
    .init(
        kind: "rules", text: "rules:\n  - name: a\n    when: x\ninhibit:\n  - { source: a, target: a, equal: [temperature] }\n", line: 5, column: 37,
        message: "equal field 'temperature' must name the channel"),
    .init(kind: "rules", text: "maintenance:\n  - name: m\n    schedule: \"Mon-Fri 02:00-25:00\"\n", line: 3, column: 15, message: "time range '02:00-25:00'"),
    .init(kind: "rules", text: "maintenance:\n  - name: m\n    schedule: \"Moonday 02:00-04:00\"\n", line: 3, column: 15, message: "day 'Moonday'"),
    .init(
        kind: "rules", text: "maintenance:\n  - name: m\n    schedule: \"daily 02:00-04:00\"\n    timezone: Mars/Olympus\n", line: 4, column: 15,
        message: "unknown time zone 'Mars/Olympus'"),
    .init(kind: "rules", text: "maintenance:\n  - name: m\n    match: channel == \"x\"\n", line: 2, column: 5, message: "needs 'schedule' or 'from'/'until'"),
    .init(kind: "rules", text: "maintenance:\n  - name: m\n    from: tomorrow\n", line: 3, column: 11, message: "from 'tomorrow' — write an RFC 3339 time"),
    .init(kind: "rules", text: "rules:\n  - name: a\n    when: x\nalerts: []\n", line: 4, column: 1, message: "unknown key 'alerts' in a rule file"),
    .init(kind: "rules", text: "rules:\n  - name: a\n    when: [x\n", line: 4, column: 1, message: "YAML:"),
    .init(kind: "rules", text: "rules: 5\n", line: 1, column: 8, message: "rules must be a list"),
    .init(kind: "rules", text: "rules:\n  - name: a\n    when: x\n    update_every: fast\n", line: 4, column: 19, message: "update_every: duration 'fast'"),
    // Configuration.
    .init(kind: "config", text: "broker:\n  url: http://x\n", line: 2, column: 8, message: "broker url 'http://x'"),
    .init(kind: "config", text: "broker:\n  qos: 2\n", line: 2, column: 8, message: "qos must be 0 or 1"),
    .init(kind: "config", text: "brokr:\n  url: mqtt://x\n", line: 1, column: 1, message: "unknown key 'brokr' in the configuration — did you mean 'broker'?"),
    .init(kind: "config", text: "limits:\n  max_payload: 64 KB\n", line: 2, column: 16, message: "size '64 KB'"),
    .init(kind: "config", text: "dispatch:\n  sinks:\n    - { name: x, type: pigeon }\n", line: 3, column: 24, message: "unknown sink type 'pigeon'"),
    .init(kind: "config", text: "dispatch:\n  overflow: drop\n", line: 2, column: 13, message: "overflow must be block or shed"),
    .init(kind: "config", text: "subscriptions:\n  - { topic: \"a/#/b\", feed: x }\n", line: 2, column: 14, message: "'#' must be the last level"),
    .init(
        kind: "config", text: "subscriptions:\n  - { topic: \"a/{x}/b\", feed: \"{y}\" }\n", line: 2, column: 31,
        message: "feed '{y}' names a capture the topic does not have"),
    .init(kind: "config", text: "log:\n  level: loud\n", line: 2, column: 10, message: "log level 'loud'"),
    .init(kind: "config", text: "http:\n  listen: localhost\n", line: 2, column: 11, message: "listen 'localhost'"),
    // A key twice: one line, at its second appearance.
    .init(
        kind: "rules", text: "rules:\n  - name: a\n    when: x\n    when: y\n", line: 4, column: 5,
        message: "key 'when' appears twice in this mapping (first on line 3)"),
    .init(kind: "config", text: "timezone: UTC\nstate_dir: state\ntimezone: Asia/Shanghai\n", line: 3, column: 1, message: "key 'timezone' appears twice"),
    // Channel registries.
    .init(
        kind: "channels", text: "channel,feed\nfa-1,fire_alarm\nfa-1,fire_alarm\n", line: 3, column: 1, message: "duplicate channel 'fa-1' (first on line 2)"),
    .init(kind: "channels", text: "channel,feed,community\nfa-1,lift,C1\n", line: 2, column: 6, message: "unknown feed 'lift'"),
]

@Suite struct CheckTests {
    @Test(arguments: brokenCases)
    func brokenFileReportsPathLineAndColumn(_ c: BrokenCase) throws {
        let dir = TempDir()
        var config = "rules: [\"rules.d/*.yaml\"]\nstate_dir: state\n"
        switch c.kind {
        case "rules": dir.write("rules.d/broken.yaml", c.text)
        case "config": config = c.text
        default:
            dir.write("channels.csv", c.text)
            config += "channels: channels.csv\n"
        }
        let configPath = dir.write("vigil.yaml", config)
        let (setup, diags) = Setup.load(configPath: configPath)
        #expect(setup == nil)
        let file = c.kind == "rules" ? dir.path + "/rules.d/broken.yaml" : (c.kind == "config" ? configPath : dir.path + "/channels.csv")
        let want = "\(file):\(c.line):\(c.column): error: "
        let hit = diags.first { $0.description.hasPrefix(want) && $0.message.contains(c.message) }
        #expect(hit != nil, "wanted \(want)…\(c.message); got:\n\(diags.map(\.description).joined(separator: "\n"))")
    }

    @Test func everyErrorIsReportedNotJustTheFirst() {
        let dir = TempDir()
        dir.write("rules.d/a.yaml", "rules:\n  - name: a\n    when: x >\n  - name: b\n    severity: huge\n    when: y\n")
        dir.write("rules.d/b.yaml", "rules:\n  - name: c\n    feed: lift\n    when: z\n")
        let (_, diags) = dir.check(config: "rules: [\"rules.d/*.yaml\"]\nbroker: { qos: 7 }\n")
        // The config error, then the rule errors, in one run; the unknown feed (b.yaml:3)
        // waits for a configuration without errors, which says which feeds exist.
        #expect(diags.map(\.location.line) == [2, 3, 5], "\(diags)")
        #expect(diags.first?.location.path == dir.config)
        let (_, diags2) = dir.check(config: "rules: [\"rules.d/*.yaml\"]\n")
        #expect(diags2.count == 3)
        #expect(diags2.map(\.location.line) == [3, 5, 3])
    }

    @Test func brokenSubscriptionsDoNotTurnEveryFeedIntoAnError() {
        let dir = TempDir()
        dir.write("rules.d/a.yaml", "rules:\n  - name: a\n    feed: fire_alarm\n    when: x >\n")
        dir.write("channels.csv", "channel,feed\nfa-1,fire_alarm\n")
        // The one subscription is broken: which feeds exist is not known, so
        // the registry's and the rule's feeds are not checked against a wrong list.
        let (setup, diags) = dir.check(config: "subscriptions:\n  - { topic: \"a/{channel}\" }\n")
        #expect(setup == nil)
        #expect(diags.map(\.location.line) == [2, 4], "\(diags)")
        #expect(!diags.contains { $0.message.contains("unknown feed") })
    }

    @Test func aRepeatedKeyIsFoundWhereItAppearsAgain() {
        let first = { (line: Int, column: Int) in SourceLocation(path: "f", line: line, column: column) }
        func again(_ key: String, _ at: VigilCore.SourceLocation, _ text: String) -> Int? { YAMLContext.repeatOf(key, after: at, in: text)?.line }
        #expect(again("a", first(1, 1), "a: 1\nb: 2\na: 3\n") == 3)
        #expect(again("a", first(1, 1), "a: 1\r\nb: 2\r\na : 3\r\n") == 3)  // CRLF, a space before the colon
        // In a sequence item: past a comment, a blank line and a longer key that starts alike.
        #expect(again("when", first(3, 5), "rules:\n  - name: x\n    when: a\n    # c\n\n    whenever: 1\n    when: b\n") == 7)
        // Not in the next mapping, and not in a flow mapping.
        #expect(again("a", first(2, 3), "x:\n  a: 1\ny:\n  a: 2\n") == nil)
        #expect(again("a", first(1, 2), "{a: 1, a: 2}\n") == nil)
    }

    @Test func anEmptyConfigurationIsAllDefaults() throws {
        let dir = TempDir()
        for text in ["", "# nothing yet\n", "~\n"] {
            let (c, diags) = ConfigLoader.parse(text, path: dir.path + "/vigil.yaml")
            #expect(diags.isEmpty, "\(text): \(diags)")
            #expect(try #require(c).rules == [dir.path + "/rules.d/*.yaml"])
        }
    }

    @Test func aRegistryBesideTheConfigurationIsTheDefault() throws {
        let dir = TempDir()
        dir.write("channels.csv", "channel,feed\nfa-1,fire_alarm\nfa-2,fire_alarm\n")
        let (setup, diags) = dir.check(config: "state_dir: state\n")
        #expect(diags.isEmpty, "\(diags)")
        #expect(setup?.registry.count == 2)
        #expect(try #require(setup).config.channels == dir.path + "/channels.csv")
        // Said to be none: none.
        #expect(dir.check(config: "state_dir: state\nchannels: null\n").0?.registry.count == 0)
        // Not there: none, and no error (the registry is optional).
        try FileManager.default.removeItem(atPath: dir.path + "/channels.csv")
        let (without, errors) = dir.check(config: "state_dir: state\n")
        #expect(errors.isEmpty && without?.registry.count == 0)
    }

    @Test func theShippedConfigurationChecksClean() {
        let config = #filePath.replacingOccurrences(of: "Tests/VigilRulesTests/CheckTests.swift", with: "config/vigil.yaml")
        let (setup, diags) = Setup.load(configPath: config)
        #expect(diags.isEmpty, "\(diags)")
        #expect((setup?.ruleSet.rules.count ?? 0) >= 12)
        #expect((setup?.registry.count ?? 0) >= 1300)
    }

    @Test func theEmbeddedDefaultsMatchTheContract() {
        let c = VigilConfig.embedded(workingDirectory: "/srv/x")
        #expect(c.broker.host == "127.0.0.1" && c.broker.port == 1883)
        #expect(c.stateDirectory == "/srv/x/state")
        #expect(c.rules == ["/srv/x/rules.d/*.yaml"])
        #expect(c.channels == nil)
        #expect(c.dispatch.sinks.map(\.type) == ["log", "file"])
        #expect(c.subscriptions.count == 6)
        #expect(c.broker.cleanSession == false && c.broker.qos == 1)
    }
}

/// Random bytes and token soups must never crash the loader or the parser,
/// and every error must carry a position.
@Suite struct FuzzTests {
    struct RNG: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            var x = state
            x ^= x >> 33; x = x &* 0xff51afd7ed558ccd; x ^= x >> 33
            return x
        }
    }

    @Test func tokenSoupsNeverCrashTheExpressionParser() {
        var rng = RNG(state: 42)
        let tokens = [
            "x", "a.b", "[", "]", "(", ")", "&&", "||", "!", "not", "in", "contains", "matches", "==", "!=", "<", ">=",
            "+", "-", "*", "/", "%", "1", "2.5", "\"s\"", "'t'", "null", "true", ",", ".", "abs", "len(", "\"[\"", "\\", "{{", "}}", "é", "=",
        ]
        for _ in 0..<5000 {
            let n = Int.random(in: 1...12, using: &rng)
            let text = (0..<n).map { _ in tokens.randomElement(using: &rng)! }.joined(separator: Bool.random(using: &rng) ? " " : "")
            do {
                let e = try CompiledExpression.compile(text)
                _ = e.evaluate(ctx(["x": 1, "a": ["b": "c"]]))
            } catch {
                #expect(error.offset >= 0 && error.offset <= text.unicodeScalars.count, "\(text)")
                #expect(!error.message.isEmpty)
            }
        }
    }

    @Test func randomBytesNeverCrashTheRuleLoader() {
        var rng = RNG(state: 7)
        let dir = TempDir()
        let pieces = [
            "rules:\n", "  - name: a\n", "    when: ", "x > 1", "\n", "for: ", "30s", "count: 3\n", "{", "}", "[", "]", ":",
            "- ", "\"", "'", "&&", "absent_for: 1m\n", "inhibit:\n", "maintenance:\n", "  ", "\t", "#", "*", "&a", "!tag ",
        ]
        for i in 0..<400 {
            var bytes: [UInt8]
            if i % 2 == 0 {
                bytes = (0..<Int.random(in: 0...200, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            } else {
                bytes = Array((0..<Int.random(in: 1...30, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }.joined().utf8)
            }
            let path = dir.path + "/f\(i).yaml"
            _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
            let (_, diags) = RuleLoader(knownFeeds: standardFeeds).load(files: [path])
            for d in diags {
                #expect(d.location.path == path)
                #expect(d.location.line >= 1 && d.location.column >= 1)
            }
        }
    }
}

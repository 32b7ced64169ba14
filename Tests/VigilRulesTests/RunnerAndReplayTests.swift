import Foundation
import Testing
import VigilConfig
import VigilCore
import VigilIngest
@testable import VigilRules

let repoRoot = #filePath.replacingOccurrences(of: "/Tests/VigilRulesTests/RunnerAndReplayTests.swift", with: "")

@Suite struct RuleTestRunnerTests {
    @Test func theShippedRuleTestsPass() throws {
        let files = FileGlob.expand([repoRoot + "/config/tests/*.yaml"])
        #expect(files.count >= 5)
        var total = 0
        for f in files {
            let (outcomes, diags) = RuleTestRunner.run(file: f)
            #expect(diags.isEmpty, "\(f): \(diags)")
            for o in outcomes { #expect(o.passed, "\(f): \(o.name)\n\(o.report)") }
            total += outcomes.count
        }
        #expect(total >= 15)
    }

    @Test func aWrongExpectationFailsWithADiff() {
        let dir = TempDir()
        dir.write("rules.yaml", "rules:\n  - { name: hot, feed: charging_pile, when: t > 50, for: 30s, severity: critical }\n")
        let file = dir.write(
            "t.yaml",
            """
            rule_files: [rules.yaml]
            tests:
              - name: wrong severity and time
                input:
                  - { at: 0s, topic: estate/C1/charging_pile/cp-1/telemetry, payload: { t: 60 } }
                until: 1m
                expect:
                  - { at: 20s, type: incident.opened, severity: major }
              - name: right
                input:
                  - { at: 0s, topic: estate/C1/charging_pile/cp-1/telemetry, payload: { t: 60 } }
                until: 1m
                expect:
                  - { at: 30s, type: incident.opened, rule: hot, severity: critical, key: { channel: cp-1 } }
            """)
        let (outcomes, diags) = RuleTestRunner.run(file: file)
        #expect(diags.isEmpty)
        #expect(outcomes.map(\.passed) == [false, true])
        let report = outcomes[0].report
        #expect(report.contains("event 1 (line 8): at: expected \"20s\", got 30s"))
        #expect(report.contains("severity: expected \"major\", got \"critical\""))
        #expect(report.contains("--- expected"))
        #expect(report.contains("+ {at: 30s, type: incident.opened"))
    }

    @Test func errorsInATestFileHavePositions() {
        let dir = TempDir()
        let file = dir.write("t.yaml", "rule_files: [nothing.yaml]\ntests:\n  - name: x\n    input:\n      - { at: soon, topic: a }\n")
        let (_, diags) = RuleTestRunner.run(file: file)
        #expect(diags.contains { $0.location.line == 1 && $0.message.contains("rule_files match no file") })
        #expect(diags.contains { $0.location.line == 5 && $0.message.contains("at: duration 'soon'") })
    }
}

@Suite struct ReplayTests {
    /// A recorded stream over the shipped registry: telemetry, gate events,
    /// alarms, malformed messages; deterministic.
    static func recording(lines: Int) -> String {
        var out = ""
        var rng = FuzzTests.RNG(state: 99)
        let t0 = Time.parse("2026-11-28T08:00:00Z")!
        for i in 0..<lines {
            let ts = t0 + Millis(i) * 50
            let k = Int.random(in: 1...400, using: &rng)
            switch i % 7 {
            case 0:
                out +=
                    #"{"ts":\#(ts),"topic":"estate/C001/fire_alarm/fa-\#(String(format: "%04d", k % 280 + 1))/event","payload":{"event":"\#(k % 50 == 0 ? "alarm" : "heartbeat")"}}"#
                    + "\n"
            case 1:
                out +=
                    #"{"ts":\#(ts),"topic":"estate/C017/smart_gate/sg-\#(String(format: "%04d", k % 134 + 1))/event","payload":{"event":"access","result":"\#(k % 3 == 0 ? "denied" : "granted")"}}"#
                    + "\n"
            case 2: out += #"{"ts":\#(ts),"topic":"estate/C017/smart_gate/sg-0001/event","payload_text":"not json"}"# + "\n"
            default:
                out +=
                    #"{"ts":\#(ts),"topic":"estate/C001/charging_pile/cp-\#(String(format: "%04d", k % 420 + 1))/telemetry","payload":{"temperature_c":\#(40 + k % 35),"current_a":\#(k % 40)}}"#
                    + "\n"
            }
        }
        return out
    }

    func replay(_ text: String, until: Replayer.Until?) throws -> (String, Replayer.Stats) {
        let dir = TempDir()
        let input = dir.write("in.jsonl", text)
        let (setup, diags) = Setup.load(configPath: repoRoot + "/config/vigil.yaml")
        guard let setup else { throw Diagnostics(diags) }
        var r = Replayer(setup: setup)
        let fd = open(input, O_RDONLY)
        defer { close(fd) }
        var out = ""
        let stats = try r.run(inputFD: fd, until: until) { out += $0.jsonLine() + "\n" }
        return (out, stats)
    }

    @Test func sameInputGivesByteIdenticalOutput() throws {
        let text = ReplayTests.recording(lines: 20_000)
        let (a, stats) = try replay(text, until: .after(3_600_000))
        let (b, _) = try replay(text, until: .after(3_600_000))
        #expect(a == b)
        #expect(stats.records == 20_000)
        #expect(stats.deadLetters[.invalidJSON] == (0..<20_000).filter { $0 % 7 == 2 }.count)
        #expect(stats.events > 100)
        #expect(a.contains("\"rule\":\"fire_alarm_active\""))
        #expect(a.contains("\"rule\":\"charging_pile_overheat\""))
        #expect(a.contains("\"rule\":\"channel_silent\""))  // --until lets the silence timers fire
    }

    @Test func outOfOrderRecordsAreAnErrorWithTheLine() throws {
        let text = """
            {"ts":2000,"topic":"a","payload":{}}
            {"ts":1000,"topic":"a","payload":{}}
            """
        #expect { try replay(text, until: nil) } throws: { error in
            "\(error)".hasPrefix("2: error: ts 1970-01-01T00:00:01.000Z is before")
        }
    }

    /// A bad record in the middle of a batch stops the replay there: the
    /// alarms after it, in the same batch, give no event.
    @Test func aBadRecordStopsTheReplayAtItsLine() throws {
        let alarm = #"{"ts":1795852800000,"topic":"estate/C001/fire_alarm/fa-0001/event","payload":{"event":"alarm"}}"#
        let text = [alarm.replacingOccurrences(of: "alarm\"}", with: "heartbeat\"}"), "{\"ts\":1795852800001,", alarm, alarm, alarm].joined(separator: "\n")
        let (setup, diags) = Setup.load(configPath: repoRoot + "/config/vigil.yaml")
        guard let setup else { throw Diagnostics(diags) }
        for lookAhead in [true, false] {
            let dir = TempDir()
            let input = dir.write("in.jsonl", text)
            var r = Replayer(setup: setup)
            r.lookAhead = lookAhead
            let fd = open(input, O_RDONLY)
            defer { close(fd) }
            var events = 0
            #expect { _ = try r.run(inputFD: fd, until: nil) { _ in events += 1 } } throws: { error in "\(error)".hasPrefix("2: error:") }
            #expect(events == 0)
        }
    }

    @Test func marksAndAcknowledgementsReplay() throws {
        let alarm = #""topic":"estate/C001/fire_alarm/fa-0001/event""#
        let text = """
            {"ts":"2026-11-28T08:00:00Z",\(alarm),"payload":{"event":"alarm","zone":"3F"}}
            {"ts":"2026-11-28T08:01:00Z","broker":"lost"}
            {"ts":"2026-11-28T08:30:00Z","broker":"connected"}
            {"ts":"2026-11-28T08:30:01Z","ack":"no-such-incident","by":"张三"}
            """
        let (out, stats) = try replay(text, until: nil)
        #expect(stats.records == 4)
        let events = out.split(separator: "\n").compactMap { IncidentEvent.decode(String($0)) }
        #expect(events.map(\.type) == [.opened] && events.first?.rule == "fire_alarm_active")
        // Acknowledge it, then the alarm resets: the resolved event carries the acknowledgement.
        let id = events[0].incidentID
        let (acked, _) = try replay(
            text + """

                {"ts":"2026-11-28T08:31:00Z","ack":"\(id)","by":"张三","note":"on my way"}
                {"ts":"2026-11-28T08:32:00Z",\(alarm),"payload":{"event":"reset"}}
                """, until: nil)
        let fire = acked.split(separator: "\n").compactMap { IncidentEvent.decode(String($0)) }.filter { $0.rule == "fire_alarm_active" }
        // The shipped rule reminds every 5 minutes until acknowledged; the clock stood still while the broker was lost,
        // so the reminders due in the outage come when it moves on, all before the acknowledgement.
        let reminders = fire.filter { $0.type == .reminded }
        #expect(reminders.map(\.reminder) == [1, 2, 3, 4, 5, 6])
        let all = fire.filter { $0.type != .reminded }
        #expect(all.map(\.type) == [.opened, .acknowledged, .resolved])
        #expect(all[1].note == "on my way" && all[1].acknowledgedAt == Time.parse("2026-11-28T08:31:00Z"))
        #expect(all[2].acknowledgedBy == "张三")
        #expect(fire.last?.type == .resolved && reminders.allSatisfy { $0.at < all[1].at })
    }

    @Test func aMessageWhileBlindIsAnErrorAndUntilDoesNotMoveAStandingClock() throws {
        let text = """
            {"ts":1000,"topic":"estate/C001/fire_alarm/fa-0001/event","payload":{"event":"heartbeat"}}
            {"ts":2000,"broker":"lost"}
            {"ts":3000,"topic":"estate/C001/fire_alarm/fa-0001/event","payload":{"event":"heartbeat"}}
            """
        #expect { try replay(text, until: nil) } throws: { error in
            "\(error)".hasPrefix("3: error: a message between a broker \"lost\" mark")
        }
        let standing = text.split(separator: "\n").prefix(2).joined(separator: "\n")
        let (out, _) = try replay(standing, until: .after(86_400_000))
        #expect(out.isEmpty)  // channel_silent would open for every channel if the clock moved
        let (moving, _) = try replay(String(text.split(separator: "\n")[0]), until: .after(86_400_000))
        #expect(moving.contains("channel_silent"))
    }

    @Test func aRecordIsOneKindOnly() throws {
        #expect { try replay(#"{"ts":1,"broker":"lost","topic":"a","payload":{}}"#, until: nil) } throws: { error in
            "\(error)".contains("not several")
        }
        #expect { try replay(#"{"ts":1,"ack":"x"}"#, until: nil) } throws: { error in
            "\(error)".contains("needs by")
        }
    }
}

@Suite struct ReplayLookAheadTests {
    /// A registry large enough that replay looks ahead (its table of topics
    /// past `ReadingDecoder.worthPrefetching`), with the shipped rules:
    /// looking ahead changes nothing, byte for byte.
    @Test func lookingAheadGivesTheSameEvents() throws {
        let dir = TempDir()
        let n = 20_000
        var csv = "channel,feed,community,community_name,building,location,route\n"
        for i in 0..<n { csv += "cp-\(i),charging_pile,C\(i % 50),社区\(i % 50),B\(i % 9),pile \(i),fire_safety\n" }
        dir.write("channels.csv", csv)
        var config = try String(contentsOfFile: repoRoot + "/config/vigil.yaml", encoding: .utf8)
        config = config.replacingOccurrences(of: "rules: [\"rules.d/*.yaml\"]", with: "rules: [\"\(repoRoot)/config/rules.d/*.yaml\"]")
        let configPath = dir.write("vigil.yaml", config)
        let t0 = Time.parse("2026-11-28T08:00:00Z")!
        var rng = FuzzTests.RNG(state: 7)
        var text = ""
        for i in 0..<(2 * n) {
            // Every channel once (the table fills), then at random; some too hot, some offline.
            let c = i < n ? i : Int.random(in: 0..<n, using: &rng)
            let hot = c % 97 == 0 && i >= n
            let payload = c % 501 == 0 ? #"{"status":"offline"}"# : #"{"temperature_c":\#(hot ? 80 : 40),"current_a":10}"#
            let topic = c % 501 == 0 ? "estate/C\(c % 50)/charging_pile/cp-\(c)/status" : "estate/C\(c % 50)/charging_pile/cp-\(c)/telemetry"
            text += #"{"ts":\#(t0 + Millis(i) * 20),"topic":"\#(topic)","payload":\#(payload)}"# + "\n"
        }
        let input = dir.write("in.jsonl", text)
        func replay(lookAhead: Bool) throws -> (String, Replayer.Stats, Bool) {
            let (setup, diags) = Setup.load(configPath: configPath)
            guard let setup else { throw Diagnostics(diags) }
            var r = Replayer(setup: setup)
            r.lookAhead = lookAhead
            let fd = open(input, O_RDONLY)
            defer { close(fd) }
            var out = ""
            let stats = try r.run(inputFD: fd, until: .after(3_600_000)) { out += $0.jsonLine() + "\n" }
            return (out, stats, r.evaluator.decoder.worthPrefetching)
        }
        let (ahead, stats, looked) = try replay(lookAhead: true)
        let (one, _, _) = try replay(lookAhead: false)
        #expect(looked)
        #expect(stats.readings == 2 * n && stats.events > 100)
        #expect(ahead.contains("\"rule\":\"charging_pile_overheat\"") && ahead.contains("\"rule\":\"device_offline\""))
        #expect(ahead == one)
    }
}

import Foundation
import Testing
@testable import VigilCore
import VigilTestSupport

@Suite struct ChannelRegistryTests {
    let feeds: Set<String> = ["smart_gate", "fire_alarm", "charging_pile"]

    @Test func parsesColumnsAndChinese() {
        let text = "channel,feed,community,location\ncp-0001,charging_pile,C001,\"君正长河华府, B3 bike shed\"\nsg-0001,smart_gate,C002,云泉公馆 North gate\n"
        let (reg, diags) = ChannelRegistry.parse(text, path: "c.csv", knownFeeds: feeds)
        #expect(diags.isEmpty)
        #expect(reg.count == 2)
        let cp = reg[reg.lookup("cp-0001")!]
        #expect(cp.feed == "charging_pile")
        #expect(cp.info["location"] == "君正长河华府, B3 bike shed")
        #expect(cp.info.keys == ["community", "location"])
    }

    @Test func aByteOrderMarkIsAcceptedAndGB18030IsAnErrorAtItsLine() throws {
        let utf8 = Array("channel,feed,community_name\ncp-0001,charging_pile,君正长河华府\n".utf8)
        let text = try ChannelRegistry.text(of: [0xEF, 0xBB, 0xBF] + utf8, path: "/etc/vigil/channels.csv").get()
        let (reg, diags) = ChannelRegistry.parse(text, path: "c.csv", knownFeeds: feeds)
        #expect(diags.isEmpty && reg.lookup("cp-0001") != nil)  // the first column is "channel", not "\u{FEFF}channel"
        // 君正 in GB18030, on the second line, after "cp-0001,charging_pile,".
        let gb: [UInt8] = Array("channel,feed,community_name\ncp-0001,charging_pile,".utf8) + [0xBE, 0xFD, 0xD5, 0xFD] + [0x0A]
        guard case .failure(let d) = ChannelRegistry.text(of: gb, path: "/etc/vigil/channels.csv") else {
            Issue.record("GB18030 accepted as UTF-8"); return
        }
        #expect(d.location.line == 2 && d.location.column == 23)
        #expect(d.message.contains("not UTF-8") && d.message.contains("iconv -f GB18030 -t UTF-8 channels.csv"))
    }

    @Test func reportsDuplicatesAndUnknownFeedsWithLines() {
        let text = "channel,feed\na,fire_alarm\nb,lift\na,fire_alarm\nc\n"
        let (reg, diags) = ChannelRegistry.parse(text, path: "c.csv", knownFeeds: feeds)
        #expect(reg.count == 1)
        #expect(
            diags.map(\.description) == [
                "c.csv:3:3: error: unknown feed 'lift' for channel 'b' — known feeds: charging_pile, fire_alarm, smart_gate",
                "c.csv:4:1: error: duplicate channel 'a' (first on line 2)",
                "c.csv:5:1: error: this row has 1 fields, the header has 2",
            ])
    }

    @Test func needsChannelAndFeedColumns() {
        let (_, diags) = ChannelRegistry.parse("id,feed\nx,fire_alarm\n", path: "c.csv", knownFeeds: nil)
        #expect(diags.first?.description.hasPrefix("c.csv:1:1: error: the header has no 'channel' column") == true)
    }

    @Test func shippedRegistryMatchesTheDeployment() throws {
        let path = #filePath.replacingOccurrences(of: "Tests/VigilCoreTests/RegistryAndTopicTests.swift", with: "fixtures/channels.csv")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let all: Set<String> = ["smart_gate", "fire_alarm", "charging_pile", "elevator_ebike", "falling_object"]
        let (reg, diags) = ChannelRegistry.parse(text, path: path, knownFeeds: all)
        #expect(diags.isEmpty)
        #expect(reg.count >= 1300)
        let communities = Set(reg.channels.compactMap { $0.info["community"]?.stringValue })
        #expect(communities.count >= 101)
        #expect(Set(reg.channels.map(\.feed)) == all)
        #expect(reg.channels.filter { $0.feed == "smart_gate" }.count == 134)
    }
}

@Suite struct CSVTests {
    func rows(_ text: String) -> [[String]] {
        CSV.parse(text).map { row in [String(row.line)] + row.fields.map { "\($0.value)@\($0.column)" } }
    }

    /// Values, lines and columns (characters, not bytes) through quotes,
    /// doubled quotes, quoted newlines, CRs, Chinese and a last line without a newline.
    @Test func fieldsKeepTheirLinesAndColumns() {
        #expect(
            rows("a,\"b,\"\"c\"\"\",云泉公馆,x\r\nd\"e,f\n") == [
                ["1", "a@1", "b,\"c\"@3", "云泉公馆@13", "x@18"], ["2", "d\"e@1", "f@5"],
            ])
        #expect(
            rows("x,\"多\n行\",y\nz,,\"q\"r\r\n,last") == [
                ["1", "x@1", "多\n行@3", "y@6"], ["3", "z@1", "@3", "qr@4"], ["4", "@1", "last@2"],
            ])
        #expect(
            rows("cp-1,charging_pile,C1,社区1,B1,pile 1,fire_safety\n") == [
                ["1", "cp-1@1", "charging_pile@6", "C1@20", "社区1@23", "B1@27", "pile 1@30", "fire_safety@37"]
            ])
    }
}

@Suite struct TopicPatternTests {
    @Test func matchesCapturesAndWildcards() throws {
        let p = try TopicPattern("estate/{community}/+/{channel}/#")
        #expect(p.filter == "estate/+/+/+/#")
        let m = p.match("estate/C001/fire_alarm/fa-1/event/x".split(separator: "/", omittingEmptySubsequences: false))
        #expect(m?.map(\.value) == ["C001", "fa-1"])
        #expect(p.match("estate/C001/fire_alarm".split(separator: "/")) == nil)
        let q = try TopicPattern("a/{x}/b")
        #expect(q.match("a/1/b/c".split(separator: "/")) == nil)
        #expect(q.match(["a", "", "b"]) == nil)
    }

    @Test func rejectsBadPatterns() {
        #expect(throws: UnitError.self) { try TopicPattern("a/#/b") }
        #expect(throws: UnitError.self) { try TopicPattern("a/x+/b") }
        #expect(throws: UnitError.self) { try TopicPattern("a/{x}/{x}") }
        #expect(throws: UnitError.self) { try TopicPattern("") }
    }
}

@Suite struct ReadingDecoderTests {
    func decoder(reject: Bool = false) -> ReadingDecoder {
        let subs = [
            Subscription(pattern: try! TopicPattern("estate/{community}/fire_alarm/{channel}/event"), feed: .literal("fire_alarm")),
            Subscription(pattern: try! TopicPattern("estate/{community}/{feed}/{channel}/status"), feed: .capture("feed")),
        ]
        let (reg, _) = ChannelRegistry.parse("channel,feed\nfa-1,fire_alarm\n", path: "r", knownFeeds: nil)
        return ReadingDecoder(
            subscriptions: subs, registry: reg, unknownChannels: reject ? .reject : .accept,
            limits: .init(maxPayload: 64, maxDepth: 3))
    }

    func reason(_ topic: String, _ payload: [UInt8], reject: Bool = false) -> DeadLetterReason? {
        var d = decoder(reject: reject)
        if case .failure(let dead) = d.decode(topic: topic, payload: payload, at: 0) { return dead.reason }
        return nil
    }

    @Test func decodesAReading() throws {
        var dec = decoder()
        let r = try dec.decode(topic: "estate/C1/fire_alarm/fa-1/event", payload: Array(#"{"event":"alarm"}"#.utf8), at: 5).get()
        #expect(r.feed == "fire_alarm")
        #expect(r.channel == "fa-1")
        #expect(r.channelIndex == 0)
        #expect(r.capture("community") == "C1")
        #expect(r.payload["event"] == "alarm")
        #expect(r.receivedAt == 5)
        let s = try dec.decode(topic: "estate/C1/fire_alarm/fa-1/status", payload: Array(#"{"status":"online"}"#.utf8), at: 5).get()
        #expect(s.feed == "fire_alarm")
    }

    /// Readings decoded one after another keep their own payloads while
    /// held (the decoder parses each into one scratch object), through a
    /// dead letter in between too.
    @Test func readingsHeldKeepTheirOwnPayloads() throws {
        var dec = decoder()
        let topic = "estate/C1/fire_alarm/fa-1/event"
        let payloads = [#"{"event":"alarm","n":1}"#, #" {"event":"reset"} "#, #"{"event":"heartbeat","x":{"y":[1]}}"#, "{}"]
        var held: [Reading] = []
        for (i, p) in payloads.enumerated() {
            held.append(try dec.decode(topic: topic, payload: Array(p.utf8), at: Millis(i)).get())
            if case .success = dec.decode(topic: topic, payload: Array(#"{"event":"#.utf8), at: Millis(i)) { Issue.record("decoded a bad payload") }
        }
        #expect(held.map { JSONValue.object($0.payload).description } == payloads.map { try! JSONParser.parse($0).description })
        // Dropped, the next reading reuses the storage and is still right.
        held.removeAll()
        #expect(try dec.decode(topic: topic, payload: Array(#"{"event":"fault"}"#.utf8), at: 9).get().payload["event"] == "fault")
    }

    @Test func everyMalformedKindHasItsReason() {
        let t = "estate/C1/fire_alarm/fa-1/event"
        #expect(reason(t, [0xFF, 0x7B]) == .invalidUTF8)
        #expect(reason(t, Array("{nope".utf8)) == .invalidJSON)
        #expect(reason(t, Array("[1,2]".utf8)) == .notObject)
        #expect(reason(t, Array("42".utf8)) == .notObject)
        #expect(reason(t, Array(("{\"a\":\"" + String(repeating: "x", count: 80) + "\"}").utf8)) == .tooLarge)
        #expect(reason(t, Array(#"{"a":{"b":{"c":{}}}}"#.utf8)) == .tooDeep)
        #expect(reason("other/topic", Array("{}".utf8)) == .noSubscription)
        #expect(reason("estate/C1/fire_alarm/fa-9/event", Array("{}".utf8), reject: true) == .unknownChannel)
        #expect(reason("estate/C1/fire_alarm/fa-9/event", Array("{}".utf8), reject: false) == nil)
        #expect(reason("estate/C1/lift/fa-1/status", Array("{}".utf8)) == .unknownFeed)
        // A `/` with a combining mark after it is one character, not a level
        // separator: this topic has four levels (an ASCII topic is split on its bytes).
        #expect(reason("estate/C1/fire_alarm/\u{301}fa-1/event", Array("{}".utf8)) == .noSubscription)
    }

    @Test func recordsParseAllThreePayloadForms() throws {
        func parse(_ s: String) -> Result<RecordedMessage, UnitError> {
            var t = s
            return t.withUTF8 { RecordedMessage.parse(line: $0, maxDepth: 32) }
        }
        let a = try parse(#"{"ts":1795852800000,"topic":"t","payload":{"x":1}}"#).get()
        #expect(a.ts == 1_795_852_800_000)
        let b = try parse(#"{"ts":"2026-11-28T08:00:00.000Z","topic":"t","payload_text":"{oops"}"#).get()
        if case .bytes(let bytes) = b.payload { #expect(bytes == Array("{oops".utf8)) } else { Issue.record("expected bytes") }
        let c = try parse(#"{"topic":"t","payload_base64":"/w==","ts":0}"#).get()
        if case .bytes(let bytes) = c.payload { #expect(bytes == [0xFF]) } else { Issue.record("expected bytes") }
        // Member names with escapes mean what they spell; members replay does not read are skipped.
        let d = try parse(#"{"t\u0073":5,"qos":1,"\u0074opic":"t","pay\u006coad":{"x":2}}"#).get()
        #expect(d.ts == 5 && d.topic == "t")
        if case .parsed(let v, _, _) = d.payload { #expect(v == ["x": 2]) } else { Issue.record("expected a parsed payload") }
        #expect((try? parse(#"{"ts":1,"topicx":"t","payload":{}}"#).get()) == nil, "topicx is not topic")
        #expect((try? parse(#"{"topic":"t","payload":{}}"#).get()) == nil)
        #expect((try? parse(#"{"ts":"soon","topic":"t","payload":{}}"#).get()) == nil)
    }
}

@Suite struct LineReaderTests {
    /// Lines in batches: every line once, in order, with its number, also
    /// across the reader's 1 MiB blocks and without a final newline.
    @Test func batchesHoldEveryLineInOrderWithItsNumber() throws {
        var lines: [String] = []
        var size = 0
        var i = 0
        while size < 2_600_000 {
            let line = String(repeating: "x", count: (i * 7919) % 900) + "|\(i)"
            lines.append(line)
            size += line.utf8.count + 1
            i += 1
        }
        lines.insert(String(repeating: "y", count: 1_500_000), at: 3)  // longer than a block: carried over
        lines.append("")  // an empty line is a line
        lines.append("last, no newline")
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let path = dir + "/lines"
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        for maxLines in [1, 7, 32] {
            let fd = open(path, O_RDONLY)
            defer { close(fd) }
            var seen: [String] = []
            var numbersRight = true
            var sizesRight = true
            LineReader(fd: fd).forEachBatch(maxLines: maxLines) { batch, first in
                sizesRight = sizesRight && batch.count >= 1 && batch.count <= maxLines
                for (k, line) in batch.enumerated() {
                    numbersRight = numbersRight && first + k == seen.count + 1
                    seen.append(String(decoding: line, as: UTF8.self))
                }
            }
            #expect(seen == lines)
            #expect(numbersRight && sizesRight)
        }
    }
}

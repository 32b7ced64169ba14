import Foundation
import Testing
@testable import VigilCore

/// The caches of topics (`TopicInterner`, the decoder's recent routes) take a
/// slot from a topic's hash: a district's topics, which differ in a digit or
/// two, must land in different slots, or the caches thrash.
@Suite struct TopicCacheTests {
    let topics = (0..<3000).map { i in
        "district/estate/C\(String(format: "%03d", i % 200))/\(["charging_pile", "smart_gate", "fire_alarm"][i % 3])/d-\(String(format: "%04d", i))/\(["telemetry", "status", "event"][i % 3])"
    }

    @Test func aDistrictsTopicsSpreadOverTheSlots() {
        var slots = Set<Int>()
        for t in topics {
            var s = t
            slots.insert(s.withUTF8 { FastHash.slot(UnsafeRawBufferPointer($0), mask: 0xFFFF) })
        }
        // 3,000 keys in 65,536 slots: about 2 % share one when the high bits are uniform.
        #expect(slots.count > topics.count * 95 / 100, "\(slots.count) slots for \(topics.count) topics")
    }

    @Test func theInternerGivesBackTheSameTopic() {
        var interner = TopicInterner()
        for t in topics + topics {
            var s = t
            let got = s.withUTF8 { interner.string(UnsafeRawBufferPointer($0)) }
            #expect(got == t)
        }
    }

    @Test func theRecentRoutesAgreeWithTheRoutes() throws {
        let subs = try ["charging_pile", "smart_gate"].map { feed in
            Subscription(pattern: try TopicPattern("district/estate/{community}/\(feed)/{channel}/{kind}"), feed: FeedSpec(feed))
        }
        var decoder = ReadingDecoder(subscriptions: subs, registry: ChannelRegistry(), unknownChannels: .accept, limits: .init())
        var routed = 0
        for t in topics + topics.reversed() + ["district/nowhere"] {
            let cached = decoder.cachedRoute(topic: t), direct = decoder.route(topic: t)
            switch (cached, direct) {
            case (.success(let a), .success(let b)):
                routed += 1
                #expect(a.feed == b.feed && a.channel == b.channel && a.captures.map(\.value) == b.captures.map(\.value), "\(t)")
            case (.failure(let a), .failure(let b)): #expect(a == b)
            default: Issue.record("\(t): \(cached) against \(direct)")
            }
        }
        #expect(routed == 4000, "fire_alarm has no subscription: two thirds of the topics are routed, twice")
    }

    /// Replay interns a record's topic in the decoder and decodes the record
    /// next: the route found with the topic serves that one string, and only it.
    @Test func theDecoderInternsTopicsWithTheirRoutes() throws {
        let subs = try ["charging_pile", "smart_gate"].map { feed in
            Subscription(pattern: try TopicPattern("district/estate/{community}/\(feed)/{channel}/{kind}"), feed: FeedSpec(feed))
        }
        var decoder = ReadingDecoder(subscriptions: subs, registry: ChannelRegistry(), unknownChannels: .accept, limits: .init())
        func intern(_ t: String) -> String {
            var s = t
            return s.withUTF8 { decoder.string(UnsafeRawBufferPointer($0)) }
        }
        func channel(_ r: ReadingDecoder.Route) -> String? { if case .success(let route) = r { return route.channel } else { return nil } }
        let a = topics[0], b = topics[1]
        let first = intern(a)
        #expect(first == a && intern(a).isBitwiseIdentical(to: first), "the same bytes give the same string")
        // Another topic decoded after interning `a` gets its own route.
        _ = intern(a)
        #expect(channel(decoder.cachedRoute(topic: b)) == "d-0001")
        // The same text in another string is not taken for the interned one, and routes alike.
        _ = intern(a)
        let copy = String(decoding: Array(a.utf8), as: UTF8.self)
        #expect(!copy.isBitwiseIdentical(to: first) && copy == first)
        #expect(channel(decoder.cachedRoute(topic: copy)) == "d-0000")
        _ = intern(a)
        #expect(channel(decoder.cachedRoute(topic: first)) == "d-0000")
        // A record whose topic the decoder interned, then decoded.
        var line = #"{"ts":1,"topic":"\#(b)","payload":{"x":1}}"#
        guard case .message(let record) = try line.withUTF8({ Record.parse(line: $0, maxDepth: 8, topics: &decoder) }).get() else {
            Issue.record("not a message"); return
        }
        #expect(record.topic == b)
        #expect(try decoder.decode(record: record).get().channel == "d-0001")
    }
    /// The table keeps topics whose hashes collide (a small table makes them
    /// share slots all the time), finds each by its bytes, doubles when half
    /// full, and starts afresh when full at its largest: after that every
    /// topic is still found, or added again.
    @Test func theTopicTableKeepsCollidingTopicsGrowsAndStartsAfreshWhenFull() {
        var table = TopicTable<Int>(slots: 16, maxSlots: 32)
        func lookup(_ t: String, adding value: Int) -> (found: Bool, value: Int) {
            var s = t
            return s.withUTF8 { p in
                let bytes = UnsafeRawBufferPointer(p)
                let hash = FastHash.hash(bytes)
                let (entry, slot) = table.find(bytes, hash: hash)
                if let entry { return (true, table.entries[entry].value) }
                let e = table.insert(t, value, hash: hash, slot: slot)
                return (false, table.entries[e].value)
            }
        }
        let few = Array(topics.prefix(16))
        for (i, t) in few.prefix(8).enumerated() { #expect(lookup(t, adding: i) == (false, i)) }
        #expect(table.capacity == 8)
        // The ninth doubles the table; every topic stays.
        for (i, t) in few.enumerated().dropFirst(8) { #expect(lookup(t, adding: i) == (false, i)) }
        #expect(table.capacity == 16 && table.entries.count == 16)
        for (i, t) in few.enumerated() { #expect(lookup(t, adding: -1) == (true, i), "\(t) kept beside its neighbours") }
        // Full at its largest: the next topic starts the table afresh.
        #expect(lookup(topics[16], adding: 16) == (false, 16))
        #expect(table.entries.count == 1 && table.capacity == 16)
        #expect(lookup(topics[16], adding: -1) == (true, 16))
        #expect(lookup(few[0], adding: 100) == (false, 100))
    }

    /// The decoder's table growing leaves no stale entry behind: each topic
    /// interned, and another decoded right after it, get their own routes.
    @Test func theDecodersTableGrowingKeepsRoutesRight() throws {
        let subs = [Subscription(pattern: try TopicPattern("district/estate/{community}/charging_pile/{channel}/{kind}"), feed: FeedSpec("charging_pile"))]
        var decoder = ReadingDecoder(subscriptions: subs, registry: ChannelRegistry(), unknownChannels: .accept, limits: .init())
        let capacity = decoder.routes.capacity
        let many = (0..<(capacity + 10)).map { "district/estate/C1/charging_pile/p-\($0)/telemetry" }
        for (i, t) in many.enumerated() {
            var s = t
            let interned = s.withUTF8 { decoder.string(UnsafeRawBufferPointer($0)) }
            #expect(interned == t)
            let other = many[(i * 7 + 3) % many.count]
            guard case .success(let route) = decoder.cachedRoute(topic: other), case .success(let own) = decoder.cachedRoute(topic: t) else {
                Issue.record("\(t) not routed"); return
            }
            #expect(route.channel == "p-\((i * 7 + 3) % many.count)" && own.channel == "p-\(i)")
        }
        #expect(decoder.routes.entries.count == many.count && decoder.routes.capacity > capacity)
    }
}

extension TopicCacheTests {
    /// Routes found by a topic string's identity are that topic's, however
    /// the strings come: the same object again, a copy of its text made
    /// anew, thousands of topics sharing the identity slots, and after the
    /// table has started afresh (a small maximum makes it do so).
    @Test func routesByIdentityAreAlwaysTheTopicsOwn() throws {
        let subs = [Subscription(pattern: try TopicPattern("district/estate/{community}/charging_pile/{channel}/{kind}"), feed: FeedSpec("charging_pile"))]
        var decoder = ReadingDecoder(subscriptions: subs, registry: ChannelRegistry(), unknownChannels: .accept, limits: .init())
        decoder.routes = TopicTable(slots: 1024, maxSlots: 2048)
        let topics = (0..<5000).map { "district/estate/C1/charging_pile/p-\($0)/telemetry" }
        var held = topics
        for round in 0..<3 {
            for i in stride(from: 0, to: topics.count, by: round + 1) {
                // Round 1 hands over strings made anew from the text: other objects, same topics.
                if round == 1 { held[i] = String(decoding: Array(topics[i].utf8), as: UTF8.self) }
                for t in [held[i], held[(i * 31 + 7) % held.count], held[i]] {
                    guard case .success(let route) = decoder.cachedRoute(topic: t) else { Issue.record("\(t) not routed"); return }
                    #expect(route.channel == t.split(separator: "/")[4].description)
                }
            }
        }
        #expect(decoder.routes.entries.count <= decoder.routes.capacity)
    }
}

@Suite struct LookAheadTests {
    @Test func aLinesTopicIsFoundWithoutParsingIt() {
        func topic(_ line: String, _ guess: inout Int) -> String? {
            var l = line
            return l.withUTF8 { Record.likelyTopic(in: $0, guess: &guess).map { String(decoding: $0, as: UTF8.self) } }
        }
        var guess = 0
        #expect(topic(#"{"ts":1795852800000,"topic":"estate/C1/fire_alarm/fa-1/event","payload":{}}"#, &guess) == "estate/C1/fire_alarm/fa-1/event")
        #expect(guess == 20)
        // The next line of the same shape is found where the last one was.
        #expect(topic(#"{"ts":1795852800001,"topic":"a/b","payload":{}}"#, &guess) == "a/b" && guess == 20)
        #expect(topic(#"{"payload":{"topic":"x"},"ts":1,"topic":"late"}"#, &guess) == "x")  // only a hint
        #expect(topic(#"{"ts":1,"topic":"with\"escape","payload":{}}"#, &guess) == nil)
        #expect(topic(#"{"ts":1,"broker":"lost"}"#, &guess) == nil)
        #expect(topic(#"{"ts":1,"topic":"unterminated"#, &guess) == nil)
        var far = 10_000
        #expect(topic(#"{"topic":"t"}"#, &far) == "t" && far == 1)
    }

    @Test func theDecoderTellsTheChannelsOfTopicsItKnows() throws {
        let subs = [Subscription(pattern: try TopicPattern("estate/{community}/fire_alarm/{channel}/event"), feed: .literal("fire_alarm"))]
        let (reg, _) = ChannelRegistry.parse("channel,feed\nfa-1,fire_alarm\nfa-2,fire_alarm\n", path: "r", knownFeeds: nil)
        var decoder = ReadingDecoder(subscriptions: subs, registry: reg, unknownChannels: .accept, limits: .init())
        let topics = ["estate/C1/fire_alarm/fa-2/event", "estate/C1/fire_alarm/fa-9/event", "elsewhere/x", "estate/C1/fire_alarm/fa-1/event"]
        for t in topics.dropLast() {
            var s = t
            _ = s.withUTF8 { decoder.string(UnsafeRawBufferPointer($0)) }
        }
        #expect(!decoder.worthPrefetching)
        var channels = [Int](repeating: 7, count: topics.count)
        let buffers = topics.map { t -> UnsafeRawBufferPointer in
            let b = UnsafeMutableRawBufferPointer.allocate(byteCount: t.utf8.count, alignment: 1)
            b.copyBytes(from: Array(t.utf8))
            return UnsafeRawBufferPointer(b)
        }
        defer { for b in buffers { b.deallocate() } }
        buffers.withUnsafeBufferPointer { t in channels.withUnsafeMutableBufferPointer { decoder.prefetch(topics: t, channels: $0) } }
        // Known and registered: its index; known elsewhere or not registered, or not seen yet: -1.
        #expect(channels == [1, -1, -1, -1])
        guard case .success(let r) = decoder.cachedRoute(topic: topics[0]) else { Issue.record("not routed"); return }
        #expect(r.channelIndex == 1)
    }
}

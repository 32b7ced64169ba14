import Foundation
import Testing
import VigilCore
import VigilMQTT
import VigilTestSupport

/// The acknowledgement rule against a real broker: a QoS 1 message handed
/// over and not committed is never acknowledged, so a connection that dies
/// gets it again; once committed, its PUBACK goes and it does not come back.
@Suite(.serialized) struct PubackAfterCommitTests {
    let topic = "vigil-test/ack/" + UUID().uuidString.prefix(8)

    func subscriber(_ broker: TestBroker, id: String) throws -> MQTTConnection {
        try MQTTConnection(
            options: .init(host: broker.host, port: broker.port, clientID: id, cleanSession: false),
            subscriptions: [.init(filter: topic, qos: 1)], reconnect: Backoff(initial: 100, max: 1000))
    }

    /// Turns until a message arrives (or `seconds` pass); returns the payloads read.
    func read(_ c: MQTTConnection, seconds: TimeInterval, commit: Bool) -> [String] {
        let until = Date().addingTimeInterval(seconds)
        var got: [String] = []
        var subscribed = false
        while Date() < until && got.isEmpty {
            let t = c.turn(timeoutMs: 20)
            if t.notices.contains(where: { if case .subscribed = $0 { true } else { false } }) { subscribed = true }
            got += t.messages.map { String(decoding: $0.payload, as: UTF8.self) }
            if commit { c.committed() }
        }
        _ = subscribed
        return got
    }

    func connectAndSubscribe(_ c: MQTTConnection) throws {
        #expect(c.connect(timeoutMs: 10_000) == nil)
        let until = Date().addingTimeInterval(10)
        while Date() < until {
            if c.turn(timeoutMs: 20).notices.contains(where: { if case .subscribed = $0 { true } else { false } }) { return }
        }
        throw TestFailure("no SUBACK")
    }

    @Test func anUncommittedMessageIsSentAgainAndACommittedOneIsNot() throws {
        let broker = try TestBroker()
        let id = "vigil-ack-" + UUID().uuidString.prefix(8)
        do {
            let first = try subscriber(broker, id: id)
            try connectAndSubscribe(first)
            try publishAll(broker: broker, messages: [(topic, "m1")])
            #expect(read(first, seconds: 10, commit: false) == ["m1"])
            // Turning on while holding writes nothing: still no PUBACK.
            for _ in 0..<10 { _ = first.turn(timeoutMs: 20) }
            #expect(!first.machine.mayWrite)
            // The process dies here: the socket closes without DISCONNECT and without the PUBACK.
        }
        do {
            let second = try subscriber(broker, id: id)
            #expect(second.connect(timeoutMs: 10_000) == nil)
            #expect(read(second, seconds: 10, commit: true) == ["m1"], "the broker sends an unacknowledged message again")
            // Committed: the PUBACK left with the turn's write; let it reach the broker.
            for _ in 0..<10 { _ = second.turn(timeoutMs: 20) }
        }
        let third = try subscriber(broker, id: id)
        #expect(third.connect(timeoutMs: 10_000) == nil)
        #expect(read(third, seconds: 1.5, commit: true) == [], "an acknowledged message is not sent again")
        third.stop()
    }
}

/// What the library reports about one connection never reaches the next
/// attempt: a loss found while writing the PUBACKs of a commit is reported as
/// that connection's loss, and the next attempt, with the broker back, is
/// simply connected — not failed by the old connection's report, with its
/// CONNACK ignored and its messages handed over unannounced.
@Suite(.serialized) struct ReconnectTests {
    @Test func aLossFoundByTheCommitsWriteIsThatConnectionsAndTheNextAttemptConnects() throws {
        let broker = try TestBroker(privateBroker: true)
        let topic = "vigil-test/reconnect/" + UUID().uuidString.prefix(8)
        let c = try MQTTConnection(
            options: .init(host: broker.host, port: broker.port, clientID: "vigil-rc-" + UUID().uuidString.prefix(8), cleanSession: false),
            subscriptions: [.init(filter: topic, qos: 1)], reconnect: Backoff(initial: 20, max: 20))
        #expect(c.connect(timeoutMs: 10_000) == nil)
        var subscribed = false
        var until = Date().addingTimeInterval(10)
        while !subscribed && Date() < until {
            subscribed = c.turn(timeoutMs: 20).notices.contains { if case .subscribed = $0 { true } else { false } }
        }
        try #require(subscribed)
        try publishAll(broker: broker, messages: (0..<5).map { (topic, "m\($0)") })
        var read = 0
        until = Date().addingTimeInterval(10)
        while read < 5 && Date() < until { read += c.turn(timeoutMs: 20).messages.count }
        try #require(read == 5)
        // The broker dies with five PUBACKs held; the commit's write finds the connection gone.
        broker.stopNow()
        c.committed()
        try #require(c.client.socket < 0, "the write of the PUBACKs should have found the connection closed")
        try broker.launch()
        var notices: [MQTTConnection.Notice] = []
        until = Date().addingTimeInterval(10)
        while Date() < until && !notices.contains(where: { if case .connected = $0 { true } else { false } }) {
            notices += c.turn(timeoutMs: 20).notices.filter { if case .published = $0 { false } else { true } }
        }
        #expect(notices.count == 2, "\(notices)")
        if case .lost? = notices.first {} else { Issue.record("first \(notices)") }
        #expect(notices.last == .connected(sessionPresent: false), "\(notices)")
        c.stop()
    }
}

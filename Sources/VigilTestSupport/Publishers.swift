import Foundation
import Synchronization
import VigilCore
import VigilMQTT

/// Publishes many QoS 1 messages with vigil's own libmosquitto bridge and
/// waits until the broker acknowledged every one.
public func publishAll(broker: TestBroker, messages: [(topic: String, payload: String)], clientID: String = "test-pub-" + UUID().uuidString.prefix(8)) throws {
    let c = try MQTTConnection(
        options: .init(host: broker.host, port: broker.port, clientID: String(clientID), cleanSession: true),
        reconnect: Backoff(initial: 100, max: 1000))
    if let why = c.connect(timeoutMs: 10_000) { throw TestFailure("publisher: \(why)") }
    let deadline = Date().addingTimeInterval(30)
    var sent = 0
    var acked = Set<Int32>()
    var mids = Set<Int32>()
    while Date() < deadline {
        if c.isConnected {
            while sent < messages.count, mids.count - acked.count < 500 {
                mids.insert(try c.publish(topic: messages[sent].topic, payload: Array(messages[sent].payload.utf8), qos: 1))
                sent += 1
            }
        }
        for case .published(let mid) in c.turn(timeoutMs: 20, maxMessages: 1000).notices { acked.insert(mid) }
        if sent == messages.count, acked.isSuperset(of: mids) { c.stop(); return }
    }
    throw TestFailure("published \(sent) of \(messages.count), \(acked.count) acknowledged")
}

/// Publishes `count` QoS 1 messages at about `perSecond`, on a thread of its own.
public final class ThrottledPublisher: @unchecked Sendable {
    // @unchecked: the client is touched only by the publisher's thread; flags are atomic.
    public let broker: TestBroker
    public let count: Int
    public let perSecond: Int
    public let message: @Sendable (Int) -> (String, String)
    private let stopped = Atomic<Bool>(false)
    private let finished = Atomic<Bool>(false)

    public init(broker: TestBroker, count: Int, perSecond: Int, message: @escaping @Sendable (Int) -> (String, String)) {
        self.broker = broker; self.count = count; self.perSecond = perSecond; self.message = message
    }

    public var done: Bool { finished.load(ordering: .acquiring) }
    public func stop() { stopped.store(true, ordering: .releasing) }

    public func start() {
        let t = Thread { [self] in
            defer { finished.store(true, ordering: .releasing) }
            var sent = 0
            let chunk = max(1, perSecond / 20)
            while sent < count && !stopped.load(ordering: .acquiring) {
                let end = min(count, sent + chunk)
                try? publishAll(broker: broker, messages: (sent..<end).map(message))
                sent = end
                usleep(50_000)
            }
        }
        t.start()
    }
}

/// Sends one QoS 0 message per channel every `every` seconds, reconnecting
/// whenever the broker goes away; `quiet` falls silent after the first round.
public final class HeartbeatPublisher: @unchecked Sendable {
    // @unchecked: the client is touched only by the publisher's thread; `stopped` is atomic.
    public let client: MQTTConnection
    public let messages: [(channel: String, topic: String, payload: String)]
    public let every: TimeInterval
    public let quiet: String
    public let stopped = StopFlagBox()
    public let finished = StopFlagBox()

    public init(broker: TestBroker, messages: [(String, String, String)], every: TimeInterval, quiet: String) throws {
        client = try MQTTConnection(
            options: .init(
                host: broker.host, port: broker.port, clientID: "hb-" + UUID().uuidString.prefix(8),
                cleanSession: true), reconnect: Backoff(initial: 200, max: 200))
        self.messages = messages
        self.every = every
        self.quiet = quiet
    }

    public func start() {
        let t = Thread { [self] in run() }
        t.start()
    }

    public func stop() {
        stopped.set()
        while !finished.isSet { usleep(10_000) }
    }

    public func run() {
        defer { finished.set() }
        var round = 0
        var next = Date()
        while !stopped.isSet {
            _ = client.turn(timeoutMs: 20, maxMessages: 1000)
            if client.isConnected && Date() >= next {
                for m in messages where round == 0 || m.channel != quiet {
                    _ = try? client.publish(topic: m.topic, payload: Array(m.payload.utf8), qos: 0)
                }
                round += 1
                next = next.addingTimeInterval(every)
            }
        }
        client.stop()
    }
}

/// A flag for test threads.
public final class StopFlagBox: @unchecked Sendable {
    // @unchecked: every access holds `lock`.
    private let lock = NSLock()
    private var value = false
    public init() {}
    public func set() { lock.lock(); value = true; lock.unlock() }
    public var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}

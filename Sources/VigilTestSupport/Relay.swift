import Foundation
import Synchronization
import VigilCore
#if canImport(Glibc)
import Glibc
#endif

/// What one relayed connection does with the bytes it reads, on the
/// connection's own thread: forward them (true) or drop them.
protocol RelayedConnection {
    mutating func pass(_ bytes: ArraySlice<UInt8>, fromVigil: Bool) -> Bool
}

/// A TCP relay on loopback between vigil (the side that connects) and
/// `target`, each connection on a thread of its own with its own
/// `RelayedConnection`. `stop()` stops accepting; with `endConnectionsOnStop`
/// it also ends open connections, else they end when either side closes.
final class LoopbackRelay: Sendable {
    let port: Int
    let target: Int
    private let listener: Int32
    private let stopped = Atomic<Bool>(false)
    private let endConnectionsOnStop: Bool
    private let connection: @Sendable () -> any RelayedConnection

    init(to targetPort: Int, endConnectionsOnStop: Bool, connection: @escaping @Sendable () -> any RelayedConnection) throws {
        target = targetPort
        self.endConnectionsOnStop = endConnectionsOnStop
        self.connection = connection
        listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard let p = bindLoopback(listener), listen(listener, 8) == 0 else { throw TestFailure("relay: cannot listen") }
        port = p
        let t = Thread { [self] in acceptLoop() }
        t.start()
    }

    deinit { close(listener) }

    func stop() { stopped.store(true, ordering: .releasing) }

    private func acceptLoop() {
        while !stopped.load(ordering: .acquiring) {
            var p = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 100) > 0 else { continue }
            let client = accept(listener, nil, nil)
            guard client >= 0 else { continue }
            guard let upstream = connectLoopback(target) else { close(client); continue }
            let t = Thread { [self] in pump(client, upstream) }
            t.start()
        }
    }

    /// Copies both ways (what `pass` lets through) until either side closes, then closes both.
    private func pump(_ client: Int32, _ upstream: Int32) {
        defer { close(client); close(upstream) }
        var handler = connection()
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var fds = [pollfd(fd: client, events: Int16(POLLIN), revents: 0), pollfd(fd: upstream, events: Int16(POLLIN), revents: 0)]
        while !(endConnectionsOnStop && stopped.load(ordering: .acquiring)) {
            guard poll(&fds, 2, 100) >= 0 else { return }
            for i in 0..<2 where fds[i].revents != 0 {
                let from = fds[i].fd, to = i == 0 ? upstream : client
                let n = buffer.withUnsafeMutableBytes { read(from, $0.baseAddress, $0.count) }
                if n <= 0 { return }
                if !handler.pass(buffer[0..<n], fromVigil: i == 0) { continue }
                var sent = 0
                while sent < n {
                    let w = buffer.withUnsafeBytes { write(to, $0.baseAddress! + sent, n - sent) }
                    if w <= 0 { return }
                    sent += w
                }
            }
        }
    }
}

/// A relay between vigil and the broker that can stop passing what vigil
/// sends (PUBACKs, pings) while still passing what the broker sends: the
/// network fault in which the acknowledgements of many batches are lost
/// with the connection.
public final class AckDroppingRelay: Sendable {
    private let relay: LoopbackRelay
    private let dropping: Dropping

    final class Dropping: Sendable {
        let on = Atomic<Bool>(false)
    }

    struct Connection: RelayedConnection {
        let dropping: Dropping
        mutating func pass(_ bytes: ArraySlice<UInt8>, fromVigil: Bool) -> Bool {
            !(fromVigil && dropping.on.load(ordering: .acquiring))
        }
    }

    public init(to targetPort: Int) throws {
        let dropping = Dropping()
        self.dropping = dropping
        relay = try LoopbackRelay(to: targetPort, endConnectionsOnStop: false) { Connection(dropping: dropping) }
    }

    public var port: Int { relay.port }
    public var target: Int { relay.target }
    public var url: String { "mqtt://127.0.0.1:\(relay.port)" }

    /// While set, bytes from vigil are read and thrown away.
    public func dropUpstream(_ on: Bool) { dropping.on.store(on, ordering: .releasing) }

    /// Stops accepting; open connections end when either side closes.
    public func stop() { relay.stop() }
}

/// A relay between vigil and the broker that reads the MQTT packets going
/// through it: which message (its `n`) each packet id carried from the
/// broker, and which packet ids vigil acknowledged.
public final class AckRecordingRelay: Sendable {
    private let relay: LoopbackRelay
    private let record: Record

    final class Record: Sendable {
        let state = Mutex<(numberByPacketID: [Int: Int], acked: Set<Int>)>(([:], []))
    }

    struct Connection: RelayedConnection {
        let record: Record
        var pending: [[UInt8]] = [[], []]  // unparsed bytes: from vigil, from the broker

        mutating func pass(_ bytes: ArraySlice<UInt8>, fromVigil: Bool) -> Bool {
            let i = fromVigil ? 0 : 1
            pending[i] += bytes
            parse(&pending[i], fromVigil: fromVigil)
            return true
        }

        /// Consumes whole MQTT 3.1.1 packets from `bytes`.
        func parse(_ bytes: inout [UInt8], fromVigil: Bool) {
            var at = 0
            while true {
                guard bytes.count - at >= 2 else { break }
                var length = 0, shift = 0, k = at + 1
                var complete = false
                while k < bytes.count, k < at + 5 {
                    length |= Int(bytes[k] & 0x7F) << shift
                    shift += 7
                    k += 1
                    if bytes[k - 1] & 0x80 == 0 { complete = true; break }
                }
                guard complete, bytes.count - k >= length else { break }
                let type = bytes[at] >> 4, qos = (bytes[at] >> 1) & 3
                let body = Array(bytes[k..<(k + length)])
                if fromVigil, type == 4, body.count >= 2 {
                    let id = Int(body[0]) << 8 | Int(body[1])
                    record.state.withLock { r in if let n = r.numberByPacketID[id] { r.acked.insert(n) } }
                } else if !fromVigil, type == 3, qos > 0, body.count >= 4 {
                    let topicLength = Int(body[0]) << 8 | Int(body[1])
                    if body.count >= 4 + topicLength {
                        let id = Int(body[2 + topicLength]) << 8 | Int(body[3 + topicLength])
                        let payload = Array(body[(4 + topicLength)...])
                        if case .object(let o)? = try? JSONParser.parse(payload), let n = o["n"]?.numberValue {
                            record.state.withLock { $0.numberByPacketID[id] = Int(n) }
                        }
                    }
                }
                at = k + length
            }
            if at > 0 { bytes.removeFirst(at) }
        }
    }

    public init(to targetPort: Int) throws {
        let record = Record()
        self.record = record
        relay = try LoopbackRelay(to: targetPort, endConnectionsOnStop: true) { Connection(record: record) }
    }

    public var port: Int { relay.port }
    public var target: Int { relay.target }
    public var url: String { "mqtt://127.0.0.1:\(relay.port)" }
    public func stop() { relay.stop() }

    /// The `n` of every message whose PUBACK left vigil.
    public func acknowledged() -> Set<Int> { record.state.withLock { $0.acked } }
}

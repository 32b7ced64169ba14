import Foundation
import Synchronization
import VigilCore
#if canImport(Glibc)
import Glibc
#endif

/// A TCP relay on loopback between vigil and the broker that can stop passing
/// what vigil sends (PUBACKs, pings) while still passing what the broker sends:
/// the network fault in which the acknowledgements of many batches are lost
/// with the connection.
public final class AckDroppingRelay: Sendable {
    public let port: Int
    public let target: Int
    private let listener: Int32
    private let dropping = Atomic<Bool>(false)
    private let stopped = Atomic<Bool>(false)

    public init(to targetPort: Int) throws {
        target = targetPort
        listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard let p = bindLoopback(listener), listen(listener, 8) == 0 else { throw TestFailure("relay: cannot listen") }
        port = p
        let t = Thread { [self] in acceptLoop() }
        t.start()
    }

    deinit {
        close(listener)
    }

    /// While set, bytes from vigil are read and thrown away.
    public func dropUpstream(_ on: Bool) { dropping.store(on, ordering: .releasing) }

    /// Stops accepting; open connections end when either side closes.
    public func stop() { stopped.store(true, ordering: .releasing) }

    public var url: String { "mqtt://127.0.0.1:\(port)" }

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

    /// Copies both ways until either side closes, then closes both.
    private func pump(_ client: Int32, _ upstream: Int32) {
        defer { close(client); close(upstream) }
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var fds = [pollfd(fd: client, events: Int16(POLLIN), revents: 0), pollfd(fd: upstream, events: Int16(POLLIN), revents: 0)]
        while true {
            guard poll(&fds, 2, 100) >= 0 else { return }
            for i in 0..<2 where fds[i].revents != 0 {
                let from = fds[i].fd, to = i == 0 ? upstream : client
                let n = buffer.withUnsafeMutableBytes { read(from, $0.baseAddress, $0.count) }
                if n <= 0 { return }
                if i == 0 && dropping.load(ordering: .acquiring) { continue }
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

/// A relay between vigil and the broker that reads the MQTT packets going
/// through it: which message (its `n`) each packet id carried from the
/// broker, and which packet ids vigil acknowledged.
public final class AckRecordingRelay: Sendable {
    public let port: Int
    public let target: Int
    private let listener: Int32
    private let stopped = Atomic<Bool>(false)
    private let record = Mutex<(numberByPacketID: [Int: Int], acked: Set<Int>)>(([:], []))

    public init(to targetPort: Int) throws {
        target = targetPort
        listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard let p = bindLoopback(listener), listen(listener, 8) == 0 else { throw TestFailure("relay: cannot listen") }
        port = p
        let t = Thread { [self] in acceptLoop() }
        t.start()
    }

    deinit { close(listener) }

    public var url: String { "mqtt://127.0.0.1:\(port)" }
    public func stop() { stopped.store(true, ordering: .releasing) }

    /// The `n` of every message whose PUBACK left vigil.
    public func acknowledged() -> Set<Int> { record.withLock { $0.acked } }

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

    private func pump(_ client: Int32, _ upstream: Int32) {
        defer { close(client); close(upstream) }
        var buffer = [UInt8](repeating: 0, count: 65_536)
        var pending: [[UInt8]] = [[], []]  // unparsed bytes: from vigil, from the broker
        var fds = [pollfd(fd: client, events: Int16(POLLIN), revents: 0), pollfd(fd: upstream, events: Int16(POLLIN), revents: 0)]
        while !stopped.load(ordering: .acquiring) {
            guard poll(&fds, 2, 100) >= 0 else { return }
            for i in 0..<2 where fds[i].revents != 0 {
                let from = fds[i].fd, to = i == 0 ? upstream : client
                let n = buffer.withUnsafeMutableBytes { read(from, $0.baseAddress, $0.count) }
                if n <= 0 { return }
                pending[i] += buffer[0..<n]
                parse(&pending[i], fromVigil: i == 0)
                var sent = 0
                while sent < n {
                    let w = buffer.withUnsafeBytes { write(to, $0.baseAddress! + sent, n - sent) }
                    if w <= 0 { return }
                    sent += w
                }
            }
        }
    }

    /// Consumes whole MQTT 3.1.1 packets from `bytes`.
    private func parse(_ bytes: inout [UInt8], fromVigil: Bool) {
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
                record.withLock { r in if let n = r.numberByPacketID[id] { r.acked.insert(n) } }
            } else if !fromVigil, type == 3, qos > 0, body.count >= 4 {
                let topicLength = Int(body[0]) << 8 | Int(body[1])
                if body.count >= 4 + topicLength {
                    let id = Int(body[2 + topicLength]) << 8 | Int(body[3 + topicLength])
                    let payload = Array(body[(4 + topicLength)...])
                    if case .object(let o)? = try? JSONParser.parse(payload), let n = o["n"]?.numberValue {
                        record.withLock { $0.numberByPacketID[id] = Int(n) }
                    }
                }
            }
            at = k + length
        }
        if at > 0 { bytes.removeFirst(at) }
    }
}

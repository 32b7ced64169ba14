import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A TCP relay on loopback between vigil and the broker that can stop passing
/// what vigil sends (PUBACKs, pings) while still passing what the broker sends:
/// the network fault in which the acknowledgements of many batches are lost
/// with the connection.
final class AckDroppingRelay: Sendable {
    let port: Int
    let target: Int
    private let listener: Int32
    private let dropping = Atomic<Bool>(false)
    private let stopped = Atomic<Bool>(false)

    init(to targetPort: Int) throws {
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
    func dropUpstream(_ on: Bool) { dropping.store(on, ordering: .releasing) }

    /// Stops accepting; open connections end when either side closes.
    func stop() { stopped.store(true, ordering: .releasing) }

    var url: String { "mqtt://127.0.0.1:\(port)" }

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

import Foundation
import VigilCore
import VigilMQTT

/// A Unix datagram socket standing in for systemd's notification socket.
public final class NotifyReceiver {
    public let path: String
    public let fd: Int32
    /// Datagrams with their arrival on the monotonic clock (seconds): a step
    /// of the wall clock neither shortens the collection nor moves a gap.
    public private(set) var messages: [(at: Double, text: String)] = []

    public init(dir: String) throws {
        path = dir + "/notify.sock"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
        let ok = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0 }
        }
        guard ok else { throw TestFailure("bind \(path): \(String(cString: strerror(errno)))") }
    }

    deinit { close(fd) }

    /// Collects datagrams for `seconds`.
    public func collect(for seconds: TimeInterval) {
        func now() -> Double { Double(Time.monotonicNanos()) / 1e9 }
        let end = now() + seconds
        var buf = [UInt8](repeating: 0, count: 4096)
        while now() < end {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 50) > 0 else { continue }
            let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n > 0 { messages.append((now(), String(decoding: buf[0..<n], as: UTF8.self))) }
        }
    }

    public func times(of field: String) -> [Double] {
        messages.filter { $0.text.split(separator: "\n").contains { $0.hasPrefix(field) } }.map(\.at)
    }
}

/// A plain HTTP GET to 127.0.0.1: (status, body).
public func httpGet(port: Int, path: String, token: String? = nil) throws -> (Int, String) {
    try httpRequest(port: port, head: "GET \(path) HTTP/1.1\r\n", body: [], token: token)
}

/// One HTTP/1.1 request on a new loopback connection, read to its end: (status, body).
public func httpRequest(port: Int, head: String, body: [UInt8], token: String?) throws -> (Int, String) {
    guard let fd = connectLoopback(port) else { throw TestFailure("connect 127.0.0.1:\(port)") }
    defer { close(fd) }
    let auth = token.map { "Authorization: Bearer \($0)\r\n" } ?? ""
    let req = Array("\(head)Host: 127.0.0.1\r\nConnection: close\r\n\(auth)\r\n".utf8) + body
    _ = req.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    var data: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n <= 0 { break }
        data += buf[0..<n]
    }
    let text = String(decoding: data, as: UTF8.self)
    guard let headEnd = text.range(of: "\r\n\r\n") else { throw TestFailure("no HTTP response") }
    return (Int(text.split(separator: " ")[1]) ?? 0, String(text[headEnd.upperBound...]))
}

/// Splits a logfmt line into key/value pairs, or nil if it is not logfmt.
public func parseLogfmt(_ line: String) -> [String: String]? {
    var out: [String: String] = [:]
    var s = Substring(line)
    while !s.isEmpty {
        guard let eq = s.firstIndex(of: "=") else { return nil }
        let key = String(s[..<eq])
        guard !key.isEmpty, !key.contains(" "), !key.contains("\"") else { return nil }
        s = s[s.index(after: eq)...]
        var value = ""
        if s.first == "\"" {
            s = s.dropFirst()
            var closed = false
            while let c = s.first {
                s = s.dropFirst()
                if c == "\\", let n = s.first { value.append(n == "n" ? "\n" : n); s = s.dropFirst(); continue }
                if c == "\"" { closed = true; break }
                value.append(c)
            }
            guard closed else { return nil }
        } else {
            let end = s.firstIndex(of: " ") ?? s.endIndex
            value = String(s[..<end])
            s = s[end...]
        }
        out[key] = value
        s = s.drop { $0 == " " }
    }
    return out
}

/// `GET /metrics` as sample name (with labels) → value.
public func metricSamples(port: Int) throws -> [String: Double] {
    let (_, body) = try httpGet(port: port, path: "/metrics")
    var samples: [String: Double] = [:]
    for line in body.split(separator: "\n") where !line.hasPrefix("#") {
        let parts = line.split(separator: " ")
        if parts.count == 2 { samples[String(parts[0])] = Double(parts[1]) }
    }
    return samples
}

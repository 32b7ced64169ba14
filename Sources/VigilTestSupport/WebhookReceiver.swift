import Crypto
import Foundation
import Synchronization
import VigilCore

/// A real HTTP/1.1 receiver on 127.0.0.1 whose answers a test scripts:
/// each request takes the next scripted response (the last one repeats).
public final class WebhookReceiver: @unchecked Sendable {
    // @unchecked: mutable state lives behind `state`; `fd` and `port` are set once in init.
    public struct Request: Sendable {
        public var at: Date
        public var headers: [String: String]
        public var body: String
    }
    public struct Response: Sendable {
        public var status: Int
        public var headers: [String: String] = [:]
        public var delay: TimeInterval = 0
        public init(status: Int, headers: [String: String] = [:], delay: TimeInterval = 0) {
            self.status = status; self.headers = headers; self.delay = delay
        }
    }
    public struct State {
        public var script: [Response] = [Response(status: 200)]
        public var requests: [Request] = []
        public var randomDelay: ClosedRange<TimeInterval>?
    }
    public let state = Mutex(State())
    public let fd: Int32
    public let port: Int
    public let stop = Atomic<Bool>(false)

    public init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard let p = bindLoopback(fd), listen(fd, 64) == 0 else { throw TestFailure("receiver: bind/listen failed") }
        port = p
        let t = Thread { [self] in acceptLoop() }
        t.start()
    }

    deinit { stop.store(true, ordering: .releasing); close(fd) }

    public var url: String { "http://127.0.0.1:\(port)/incidents" }
    public var requests: [Request] { state.withLock { $0.requests } }

    public func script(_ responses: [Response]) { state.withLock { $0.script = responses } }
    public func randomDelay(_ r: ClosedRange<TimeInterval>?) { state.withLock { $0.randomDelay = r } }

    public func acceptLoop() {
        while !stop.load(ordering: .acquiring) {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 100) > 0 else { continue }
            let c = accept(fd, nil, nil)
            guard c >= 0 else { continue }
            let t = Thread { [self] in serve(c) }
            t.start()
        }
    }

    /// Serves one keep-alive connection.
    public func serve(_ c: Int32) {
        defer { close(c) }
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        while !stop.load(ordering: .acquiring) {
            // Headers.
            var headerEnd: Int?
            while headerEnd == nil {
                if let r = find(buffer, [13, 10, 13, 10]) { headerEnd = r; break }
                let n = chunk.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                if n <= 0 { return }
                buffer += chunk[0..<n]
            }
            let head = String(decoding: buffer[0..<headerEnd!], as: UTF8.self)
            var headers: [String: String] = [:]
            for line in head.split(separator: "\r\n").dropFirst() {
                if let colon = line.firstIndex(of: ":") {
                    headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
            }
            let length = Int(headers["content-length"] ?? "0") ?? 0
            let bodyStart = headerEnd! + 4
            while buffer.count < bodyStart + length {
                let n = chunk.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                if n <= 0 { return }
                buffer += chunk[0..<n]
            }
            let body = String(decoding: buffer[bodyStart..<(bodyStart + length)], as: UTF8.self)
            buffer.removeFirst(bodyStart + length)
            let response: Response = state.withLock { s in
                s.requests.append(Request(at: Date(), headers: headers, body: body))
                var r = s.script.count > 1 ? s.script.removeFirst() : s.script[0]
                if let d = s.randomDelay { r.delay += Double.random(in: d) }
                return r
            }
            if response.delay > 0 { Thread.sleep(forTimeInterval: response.delay) }
            var out = "HTTP/1.1 \(response.status) X\r\nContent-Length: 2\r\n"
            for (k, v) in response.headers { out += "\(k): \(v)\r\n" }
            out += "\r\nok"
            let bytes = Array(out.utf8)
            _ = bytes.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        }
    }

    public func find(_ hay: [UInt8], _ needle: [UInt8]) -> Int? {
        guard hay.count >= needle.count else { return nil }
        for i in 0...(hay.count - needle.count) where hay[i] == needle[0] && Array(hay[i..<(i + needle.count)]) == needle { return i }
        return nil
    }
}

/// HMAC-SHA256 written in the test from the RFC 2104 definition, to check
/// vigil's webhook signatures independently of vigil's use of the HMAC type.
public func referenceHMAC(key: [UInt8], message: [UInt8]) -> [UInt8] {
    func sha256(_ b: [UInt8]) -> [UInt8] { Array(SHA256.hash(data: b)) }
    var k = key.count > 64 ? sha256(key) : key
    k += [UInt8](repeating: 0, count: 64 - k.count)
    let inner = sha256(k.map { $0 ^ 0x36 } + message)
    return sha256(k.map { $0 ^ 0x5c } + inner)
}

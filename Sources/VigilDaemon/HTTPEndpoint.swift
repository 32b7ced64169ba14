import Foundation
import Logging
import VigilCore
#if canImport(Glibc)
import Glibc
#endif

/// `/metrics` and `/healthz` on `http.listen`: a small HTTP/1.1 responder on
/// its own thread. Two GET routes over a blocking socket need no framework.
final class HTTPEndpoint: @unchecked Sendable {
    // @unchecked: `fd` is written once before the thread starts; the handler is Sendable.
    let host: String
    let port: Int
    let handler: @Sendable (String) -> (status: Int, contentType: String, body: String)
    let logger: Logger
    let stop: StopFlag
    var fd: Int32 = -1

    init(host: String, port: Int, logger: Logger, stop: StopFlag, handler: @escaping @Sendable (String) -> (status: Int, contentType: String, body: String)) {
        self.host = host; self.port = port; self.logger = logger; self.stop = stop; self.handler = handler
    }

    /// Binds the socket, so that a taken port or a bad address stops the start.
    func bind() throws {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &res) == 0, let ai = res else {
            throw DaemonError("http.listen \(host):\(port): cannot resolve the address")
        }
        defer { freeaddrinfo(res) }
        let s = socket(ai.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard s >= 0 else { throw DaemonError("http.listen: socket: \(String(cString: strerror(errno)))") }
        var one: Int32 = 1
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard Glibc.bind(s, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0, listen(s, 16) == 0 else {
            let why = String(cString: strerror(errno))
            close(s)
            throw DaemonError("http.listen \(host):\(port): \(why)")
        }
        fd = s
        logger.notice("http listening", metadata: ["listen": .string("\(host):\(port)"), "paths": .string("/metrics /healthz")])
    }

    /// Serves on a thread of its own until `stop` is set.
    func serve() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let thread = Thread { [self] in
                serveBlocking()
                c.resume()
            }
            thread.name = "vigil-http"
            thread.start()
        }
    }

    func serveBlocking() {
        defer { close(fd) }
        while !stop.isSet {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 250) > 0 else { continue }
            let c = accept(fd, nil, nil)
            guard c >= 0 else { continue }
            handle(c)
            close(c)
        }
    }

    func handle(_ c: Int32) {
        var tv = timeval(tv_sec: 2, tv_usec: 0)
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var request: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        while request.count < 16_384 {
            let n = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            request.append(contentsOf: buf[0..<n])
            if request.count >= 4, request.suffix(4) == [13, 10, 13, 10] { break }
        }
        let line = String(decoding: request.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = line.split(separator: " ")
        var response: (status: Int, contentType: String, body: String)
        if parts.count >= 2, parts[0] == "GET" || parts[0] == "HEAD" {
            let path = String(parts[1].split(separator: "?", maxSplits: 1).first ?? "")
            response = handler(path)
            if parts[0] == "HEAD" { response.body = "" }
        } else {
            response = (405, "text/plain; charset=utf-8", "only GET\n")
        }
        let reason = [200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"][response.status] ?? "OK"
        let body = Array(response.body.utf8)
        var out = Array("HTTP/1.1 \(response.status) \(reason)\r\nContent-Type: \(response.contentType)\r\nContent-Length: \(body.count)\r\nConnection: close\r\n\r\n".utf8)
        out += body
        var off = 0
        while off < out.count {
            let n = out.withUnsafeBytes { send(c, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }
            off += n
        }
    }
}

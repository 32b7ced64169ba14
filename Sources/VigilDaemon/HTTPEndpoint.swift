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
    /// `http.token_file`'s bearer token: required by every request when the
    /// listener is not on a loopback address (and by every POST).
    let token: String?

    init(host: String, port: Int, logger: Logger, stop: StopFlag, token: String? = nil,
         handler: @escaping @Sendable (String) -> (status: Int, contentType: String, body: String)) {
        self.host = host; self.port = port; self.logger = logger; self.stop = stop; self.handler = handler; self.token = token
    }

    /// Whether `host` is a loopback address (127.0.0.0/8, ::1, localhost).
    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// Whether a request must carry the token: every POST, and every request off loopback.
    func needsToken(method: Substring) -> Bool {
        token != nil && (method == "POST" || !HTTPEndpoint.isLoopback(host))
    }

    /// The request's `Authorization: Bearer …` compared in constant time.
    func authorized(_ request: [UInt8]) -> Bool {
        guard let token else { return true }
        let head = String(decoding: request, as: UTF8.self)
        var given = ""
        for line in head.split(separator: "\r\n") {
            let lower = line.lowercased()
            if lower.hasPrefix("authorization:") {
                let value = line.dropFirst("authorization:".count).trimmingCharacters(in: .whitespaces)
                if value.lowercased().hasPrefix("bearer ") { given = String(value.dropFirst(7)).trimmingCharacters(in: .whitespaces) }
            }
        }
        let a = Array(given.utf8), b = Array(token.utf8)
        var diff = UInt8(a.count == b.count ? 0 : 1)
        for i in 0..<max(a.count, b.count) { diff |= (i < a.count ? a[i] : 0) ^ (i < b.count ? b[i] : 0) }
        return diff == 0
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
        if parts.count >= 2, needsToken(method: parts[0]), !authorized(request) {
            // Logged without the token, whatever was sent.
            logger.warning("http request refused: missing or wrong bearer token", metadata: [
                "method": .string(String(parts[0])), "path": .string(String(parts[1].prefix(200))),
            ])
            response = (401, "text/plain; charset=utf-8", "unauthorized: send Authorization: Bearer <token from http.token_file>\n")
        } else if parts.count >= 2, parts[0] == "GET" || parts[0] == "HEAD" {
            let path = String(parts[1].split(separator: "?", maxSplits: 1).first ?? "")
            response = handler(path)
            if parts[0] == "HEAD" { response.body = "" }
        } else {
            response = (405, "text/plain; charset=utf-8", "only GET\n")
        }
        let reason = [200: "OK", 401: "Unauthorized", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"][response.status] ?? "OK"
        let challenge = response.status == 401 ? "WWW-Authenticate: Bearer\r\n" : ""
        let body = Array(response.body.utf8)
        var out = Array("HTTP/1.1 \(response.status) \(reason)\r\nContent-Type: \(response.contentType)\r\nContent-Length: \(body.count)\r\n\(challenge)Connection: close\r\n\r\n".utf8)
        out += body
        var off = 0
        while off < out.count {
            let n = out.withUnsafeBytes { send(c, $0.baseAddress! + off, $0.count - off, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }
            off += n
        }
    }
}

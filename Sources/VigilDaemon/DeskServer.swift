import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization
import VigilConfig
import VigilCore
import VigilDispatch
import VigilIngest
import VigilRules
import VigilStore

/// The duty desk's HTTP side on `http.listen` (Hummingbird): the status page,
/// the incident API, `/metrics` and `/healthz`. SQLite is read on a thread
/// of its own (a read-only connection per request, never the daemon's), so
/// the event loops never wait for the disk and a query never blocks a commit.
struct DeskServer: Sendable {
    let config: VigilConfig
    let status: IngestStatus
    let gauge: PendingGauge
    let metrics: Metrics
    let liveness: Liveness
    let acks: AckInbox
    let token: String?
    let rates: FeedRates
    /// Absence rules: their open incidents are the channels silent now.
    let absenceRules: Set<String>
    let logger: Logger

    var databasePath: String { config.stateDatabasePath }

    /// The Hummingbird application, a service of the daemon's group.
    func application(host: String, port: Int) -> some ApplicationProtocol {
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: BearerToken(token: token, loopback: DeskServer.isLoopback(host), logger: logger))
        let desk = self
        router.get("/") { request, _ in desk.page(request) }
        router.get("/metrics") { _, _ in try await desk.metricsResponse() }
        router.get("/healthz") { _, _ in desk.health() }
        router.get("/api/v1/incidents") { request, _ in try await desk.incidents(request) }
        router.get("/api/v1/incidents/:id") { _, context in try await desk.incident(context.parameters.get("id") ?? "") }
        router.post("/api/v1/incidents/:id/ack") { request, context in
            try await desk.acknowledge(context.parameters.get("id") ?? "", request)
        }
        router.get("/api/v1/status") { _, _ in try await desk.statusResponse() }
        var quiet = logger
        quiet.logLevel = max(logger.logLevel, .notice)  // the server's own request lines stay out of the stream
        return Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "vigil"), logger: quiet)
    }

    /// What to tell the operator at start when the desk is open to anyone who
    /// reaches it: off loopback with no `http.token_file`. Nil otherwise.
    static func openWarning(host: String, hasToken: Bool) -> String? {
        guard !hasToken, !isLoopback(host) else { return nil }
        return "anyone who reaches this port can read incidents and acknowledge them: set http.token_file"
    }

    /// Whether `host` is a loopback address (127.0.0.0/8, ::1, localhost).
    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// Binds and releases the port once, so that a taken port or a bad
    /// address stops the start with a clear message before anything runs.
    static func checkBind(host: String, port: Int) throws {
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
        defer { close(s) }
        var one: Int32 = 1
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard Glibc.bind(s, ai.pointee.ai_addr, ai.pointee.ai_addrlen) == 0, listen(s, 1) == 0 else {
            throw DaemonError("http.listen \(host):\(port): \(String(cString: strerror(errno)))")
        }
    }

    // MARK: - Responses

    static func jsonBytes(_ status: HTTPResponse.Status, _ body: [UInt8]) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }

    static func json(_ status: HTTPResponse.Status, _ value: JSONValue) -> Response {
        var buffer = ByteBuffer(string: JSONWriter.encode(value))
        buffer.writeString("\n")
        return Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: buffer))
    }

    static func error(_ status: HTTPResponse.Status, _ message: String) -> Response {
        json(status, ["error": .string(message)])
    }

    func metricsResponse() async throws -> Response {
        var snap = Metrics.Snapshot(
            connected: status.connected, pending: gauge.perSink, sinks: config.dispatch.sinks.map(\.name),
            openIncidents: status.openIncidents)
        snap.intakeHalted = status.intakeHalted != nil
        let sinks = snap.sinks
        let (bySeverity, oldest) = try await read { db -> ([String: Int], [String: Double]) in
            var by: [String: Int] = [:]
            try db.prepare("SELECT severity, count(*) FROM incidents WHERE resolved_at IS NULL GROUP BY severity").query([]) { r in
                by[(Severity(rawValue: Int(r.int(0))) ?? .major).name] = Int(r.int(1))
            }
            var oldest: [String: Double] = [:]
            let now = Time.now()
            let first = try db.prepare("SELECT seq FROM deliveries WHERE sink = ? AND state = 0 AND severity = ? ORDER BY seq LIMIT 1")
            let created = try db.prepare("SELECT created_at FROM events WHERE seq = ?")
            for sink in sinks {
                var seqs: [Int64] = []
                for sev in Severity.allCases {
                    try first.query([.text(sink), .int(Int64(sev.rawValue))]) { seqs.append($0.int(0)) }
                }
                if let seq = seqs.min(), let at = try created.scalarInt(.int(seq)) { oldest[sink] = Double(max(0, now - at)) / 1000 }
            }
            return (by, oldest)
        }
        snap.openBySeverity = bySeverity
        snap.oldestPendingSeconds = oldest
        let text = metrics.render(snap)
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    func health() -> Response {
        let (ok, reason) = liveness.health()
        var o = JSONObject()
        o.appendUnique("status", .string(ok ? "ok" : "unavailable"))
        if let reason { o.appendUnique("reason", .string(reason)) }
        o.appendUnique("broker", .string(status.connected ? "connected" : "disconnected"))
        o.appendUnique("queue_pending", .number(Double(gauge.pending)))
        return DeskServer.json(ok ? .ok : .serviceUnavailable, .object(o))
    }

    func page(_ request: Request) -> Response {
        Response(
            status: .ok,
            headers: [
                .contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
                .init("Content-Security-Policy")!: "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'",
            ],
            body: ResponseBody(byteBuffer: ByteBuffer(string: StatusPage.html)))
    }
}

/// `http.token_file`: every POST, and every request when the listener is not
/// on loopback, must carry `Authorization: Bearer <token>`. A refusal is
/// logged without the token.
struct BearerToken: RouterMiddleware {
    typealias Context = BasicRequestContext
    let token: String?
    let loopback: Bool
    let logger: Logger

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token, request.method == .post || !loopback else { return try await next(request, context) }
        let given =
            request.headers[.authorization].flatMap { h -> String? in
                h.lowercased().hasPrefix("bearer ") ? String(h.dropFirst(7)).trimmingCharacters(in: .whitespaces) : nil
            } ?? ""
        if BearerToken.equal(given, token) { return try await next(request, context) }
        logger.warning(
            "http request refused: missing or wrong bearer token",
            metadata: [
                "method": .string(request.method.rawValue), "path": .string(String(request.uri.path.prefix(200))),
            ])
        var response = DeskServer.error(.unauthorized, "send Authorization: Bearer <the token in http.token_file>")
        response.headers[.wwwAuthenticate] = "Bearer"
        return response
    }

    /// Constant time: the comparison takes as long whatever the token is.
    static func equal(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var diff = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) { diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0) }
        return diff == 0
    }
}

/// Messages per second by feed over the last minute, from the running totals.
final class FeedRates: Sendable {
    private let samples = Mutex<[(at: Millis, counts: [String: Int])]>([])

    /// Records the totals at `now` (monotonic ms) and returns the rate per feed.
    func update(now: Millis, counts: [String: Int]) -> [String: Double] {
        samples.withLock { s in
            if s.last.map({ now - $0.at >= 5000 }) ?? true { s.append((now, counts)) }
            s.removeAll { now - $0.at > 65_000 }
            guard let first = s.first, now - first.at >= 1000 else { return [:] }
            var out: [String: Double] = [:]
            for (feed, n) in counts { out[feed] = Double(n - (first.counts[feed] ?? 0)) / (Double(now - first.at) / 1000) }
            return out
        }
    }
}

import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization
import VigilConfig
import VigilCore
import VigilIngest
import VigilRules
import VigilDispatch
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
        quiet.logLevel = max(logger.logLevel, .notice)   // the server's own request lines stay out of the stream
        return Application(router: router, configuration: .init(address: .hostname(host, port: port), serverName: "vigil"), logger: quiet)
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
        Response(status: status, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
                 body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }

    static func json(_ status: HTTPResponse.Status, _ value: JSONValue) -> Response {
        var buffer = ByteBuffer(string: JSONWriter.encode(value))
        buffer.writeString("\n")
        return Response(status: status, headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
                        body: ResponseBody(byteBuffer: buffer))
    }

    static func error(_ status: HTTPResponse.Status, _ message: String) -> Response {
        json(status, ["error": .string(message)])
    }

    func metricsResponse() async throws -> Response {
        var snap = Metrics.Snapshot(connected: status.connected, pending: gauge.perSink, sinks: config.dispatch.sinks.map(\.name),
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
        return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                        body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }

    func health() -> Response {
        let (ok, reason) = liveness.health(now: Time.now())
        var o = JSONObject()
        o.appendUnique("status", .string(ok ? "ok" : "unavailable"))
        if let reason { o.appendUnique("reason", .string(reason)) }
        o.appendUnique("broker", .string(status.connected ? "connected" : "disconnected"))
        o.appendUnique("queue_pending", .number(Double(gauge.pending)))
        return DeskServer.json(ok ? .ok : .serviceUnavailable, .object(o))
    }

    /// Runs `body` against a read-only connection on a thread of its own.
    func read<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        let path = databasePath
        return try await withCheckedThrowingContinuation { c in
            DispatchQueue.global(qos: .userInitiated).async {
                do {
                    let db = try Database(path: path, readOnly: true)
                    c.resume(returning: try body(db))
                } catch {
                    c.resume(throwing: error)
                }
            }
        }
    }

    func incidents(_ request: Request) async throws -> Response {
        let q = request.uri.queryParameters
        var query = IncidentHistory.Query()
        if let s = q.get("state") {
            guard let state = IncidentHistory.Query.State(rawValue: String(s)) else {
                return DeskServer.error(.badRequest, "state must be open, resolved or all")
            }
            query.state = state
        }
        query.community = q.get("community").map { String($0) }
        query.feed = q.get("feed").map { String($0) }
        query.rule = q.get("rule").map { String($0) }
        if let s = q.get("severity") {
            guard let sev = Severity(name: String(s)) else { return DeskServer.error(.badRequest, "severity must be info, minor, major or critical") }
            query.severity = sev
        }
        if let s = q.get("limit") {
            guard let n = Int(s), n > 0 else { return DeskServer.error(.badRequest, "limit must be a positive number") }
            query.limit = min(n, 100_000)
        }
        if let s = q.get("since") {
            guard let t = Time.parse(String(s)) ?? (try? Units.parseDuration(String(s)).get()).map({ Time.now() - $0 }) else {
                return DeskServer.error(.badRequest, "since must be an RFC 3339 time or a duration such as 2h")
            }
            query.since = t
        }
        let final = query
        // Query and JSON both on the reading thread: the async executors (where
        // delivery runs) are not held by a list of thousands.
        let bytes = try await read { try DeskServer.listBytes(IncidentHistory.list(final, in: $0), now: Time.now()) }
        return DeskServer.jsonBytes(.ok, bytes)
    }

    func incident(_ id: String) async throws -> Response {
        guard let (incident, events) = try await read({ try IncidentHistory.get(id, in: $0) }) else {
            return DeskServer.error(.notFound, "no incident \(id)")
        }
        var o = DeskServer.summary(incident, now: Time.now())
        o.appendUnique("events", .array(events.compactMap { try? JSONParser.parse($0) }))
        return DeskServer.json(.ok, .object(o))
    }

    func acknowledge(_ id: String, _ request: Request) async throws -> Response {
        var request = request
        let body = try await request.collectBody(upTo: 64 * 1024)
        guard case .object(let o)? = try? JSONParser.parse(Array(buffer: body), maxDepth: 8),
              let by = o["by"]?.stringValue?.trimmingCharacters(in: .whitespacesAndNewlines), !by.isEmpty else {
            return DeskServer.error(.badRequest, "send {\"by\": \"your name\", \"note\": \"…\"}")
        }
        let note = o["note"]?.stringValue
        guard let (incident, _) = try await read({ try IncidentHistory.get(id, in: $0) }) else {
            return DeskServer.error(.notFound, "no incident \(id)")
        }
        if !incident.isOpen { return DeskServer.error(.conflict, "incident \(id) is resolved") }
        let answer = await acks.submit(Acknowledgement(incidentID: id, by: String(by.prefix(200)), note: note.map { String($0.prefix(2000)) }))
        switch answer {
        case .acknowledged, .already:
            guard let (now, _) = try await read({ try IncidentHistory.get(id, in: $0) }) else { return DeskServer.error(.notFound, "no incident \(id)") }
            var r = DeskServer.summary(now, now: Time.now())
            r.appendUnique("result", .string(answer == .acknowledged ? "acknowledged" : "already acknowledged"))
            return DeskServer.json(.ok, .object(r))
        case .notOpen:
            return DeskServer.error(.conflict, "incident \(id) is not open")
        case .unavailable(let why):
            return DeskServer.error(.serviceUnavailable, why)
        }
    }

    func statusResponse() async throws -> Response {
        let absence = absenceRules
        // The open incidents, counted and the silent channels picked, on the reading thread.
        let (openCount, bySeverity, byCommunity, silent) = try await read { db -> (Int, JSONObject, JSONObject, [JSONValue]) in
            var q = IncidentHistory.Query()
            q.limit = 100_000
            let open = try IncidentHistory.list(q, in: db)
            var bySeverity = JSONObject(), byCommunity = JSONObject()
            var severities = [Int](repeating: 0, count: Severity.allCases.count)
            var communities: [String: Int] = [:]
            for i in open {
                severities[Severity.allCases.firstIndex(of: i.severity) ?? 0] += 1
                communities[i.community ?? "-", default: 0] += 1
            }
            for (n, s) in Severity.allCases.enumerated().reversed() { bySeverity.appendUnique(s.name, .number(Double(severities[n]))) }
            for (c, n) in communities.sorted(by: { $0.key < $1.key }) { byCommunity.appendUnique(c, .number(Double(n))) }
            let silent: [JSONValue] = open.filter { absence.contains($0.rule) }.map { i in
                ["channel": i.channel.map(JSONValue.string) ?? .null, "community": i.community.map(JSONValue.string) ?? .null,
                 "location": i.location.map(JSONValue.string) ?? .null, "rule": .string(i.rule), "since": .string(Time.format(i.openedAt))]
            }
            return (open.count, bySeverity, byCommunity, silent)
        }
        let now = Time.now()
        let counters = metrics.values.withLock { ($0.receivedByFeed, $0.deadLetters) }
        let perSecond = rates.update(now: Time.monotonicMillis(), counts: counters.0)
        var feeds: [JSONValue] = []
        for (feed, total) in counters.0.sorted(by: { $0.key < $1.key }) {
            feeds.append(["feed": .string(feed), "received_total": .number(Double(total)),
                          "rate_per_s": .number(((perSecond[feed] ?? 0) * 10).rounded() / 10)])
        }
        var dead = JSONObject()
        for r in DeadLetterReason.allCases { dead.appendUnique(r.rawValue, .number(Double(counters.1[r.rawValue] ?? 0))) }
        var queue = JSONObject()
        let pending = gauge.perSink
        for s in config.dispatch.sinks { queue.appendUnique(s.name, .number(Double(pending[s.name] ?? 0))) }
        let (ok, reason) = liveness.health(now: now)
        var root = JSONObject()
        root.appendUnique("now", .string(Time.format(now)))
        root.appendUnique("timezone", .string(config.timezone))
        root.appendUnique("version", .string(VigilVersion.current))
        root.appendUnique("health", ["status": .string(ok ? "ok" : "unavailable"), "reason": reason.map(JSONValue.string) ?? .null])
        root.appendUnique("broker", ["url": .string(config.broker.url), "connected": .bool(status.connected)])
        root.appendUnique("feeds", .array(feeds))
        root.appendUnique("dead_letters", .object(dead))
        root.appendUnique("open_incidents", ["total": .number(Double(openCount)), "by_severity": .object(bySeverity),
                                             "by_community": .object(byCommunity)])
        root.appendUnique("silent_channels", .array(silent))
        root.appendUnique("queue", .object(queue))
        root.appendUnique("intake_halted", status.intakeHalted.map(JSONValue.string) ?? .null)
        return DeskServer.json(.ok, .object(root))
    }

    /// One incident as the API lists it, written straight to JSON text (a
    /// list of 10,000 builds no tree of values).
    static func writeSummary(_ i: IncidentHistory.Incident, now: Millis, to w: inout JSONWriter) {
        func text(_ s: String?) { if let s { w.writeString(s) } else { w.raw("null") } }
        func time(_ t: Millis?) { if let t { w.writeTime(t) } else { w.raw("null") } }
        w.raw("{")
        w.key("id", first: true); w.writeString(i.id)
        w.key("rule"); w.writeString(i.rule)
        w.key("severity"); w.writeString(i.severity.name)
        w.key("state"); w.raw(i.isOpen ? "\"open\"" : "\"resolved\"")
        w.key("title"); w.writeString(i.title)
        w.key("route"); w.writeString(i.route)
        w.key("feed"); w.writeString(i.feed)
        w.key("channel"); text(i.channel)
        w.key("community"); text(i.community)
        w.key("location"); text(i.location)
        w.key("opened_at"); w.writeTime(i.openedAt)
        w.key("resolved_at"); time(i.resolvedAt)
        w.key("acknowledged_at"); time(i.acknowledgedAt)
        w.key("acknowledged_by"); text(i.acknowledgedBy)
        w.key("note"); text(i.note)
        w.key("age_seconds"); w.raw(JSONWriter.format(Double(max(0, (i.resolvedAt ?? now) - i.openedAt) / 1000)))
        w.raw("}")
    }

    /// One incident's members, to add to (its events, the answer to an acknowledgement).
    static func summary(_ i: IncidentHistory.Incident, now: Millis) -> JSONObject {
        var w = JSONWriter()
        writeSummary(i, now: now, to: &w)
        return (try? JSONParser.parse(w.bytes))?.objectValue ?? JSONObject()
    }

    /// The list response's body: `{"count":N,"incidents":[…]}`.
    static func listBytes(_ incidents: [IncidentHistory.Incident], now: Millis) -> [UInt8] {
        var w = JSONWriter(capacity: 64 + incidents.count * 400)
        w.raw("{\"count\":")
        w.writeInt(incidents.count)
        w.raw(",\"incidents\":[")
        for (n, i) in incidents.enumerated() {
            if n > 0 { w.raw(",") }
            writeSummary(i, now: now, to: &w)
        }
        w.raw("]}\n")
        return w.bytes
    }

    func page(_ request: Request) -> Response {
        Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store",
                                        .init("Content-Security-Policy")!: "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'"],
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
        let given = request.headers[.authorization].flatMap { h -> String? in
            h.lowercased().hasPrefix("bearer ") ? String(h.dropFirst(7)).trimmingCharacters(in: .whitespaces) : nil
        } ?? ""
        if BearerToken.equal(given, token) { return try await next(request, context) }
        logger.warning("http request refused: missing or wrong bearer token", metadata: [
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

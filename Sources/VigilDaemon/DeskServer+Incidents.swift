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

/// The incident list, one incident, acknowledgements and the status summary.
extension DeskServer {
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
            let by = o["by"]?.stringValue?.trimmingCharacters(in: .whitespacesAndNewlines), !by.isEmpty
        else {
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
                [
                    "channel": i.channel.map(JSONValue.string) ?? .null, "community": i.community.map(JSONValue.string) ?? .null,
                    "location": i.location.map(JSONValue.string) ?? .null, "rule": .string(i.rule), "since": .string(Time.format(i.openedAt)),
                ]
            }
            return (open.count, bySeverity, byCommunity, silent)
        }
        let now = Time.now()
        let counters = metrics.values.withLock { ($0.receivedByFeed, $0.deadLetters) }
        let perSecond = rates.update(now: Time.monotonicMillis(), counts: counters.0)
        var feeds: [JSONValue] = []
        for (feed, total) in counters.0.sorted(by: { $0.key < $1.key }) {
            feeds.append([
                "feed": .string(feed), "received_total": .number(Double(total)),
                "rate_per_s": .number(((perSecond[feed] ?? 0) * 10).rounded() / 10),
            ])
        }
        var dead = JSONObject()
        for r in DeadLetterReason.allCases { dead.appendUnique(r.rawValue, .number(Double(counters.1[r.rawValue] ?? 0))) }
        var queue = JSONObject()
        let pending = gauge.perSink
        for s in config.dispatch.sinks { queue.appendUnique(s.name, .number(Double(pending[s.name] ?? 0))) }
        let (ok, reason) = liveness.health()
        var root = JSONObject()
        root.appendUnique("now", .string(Time.format(now)))
        root.appendUnique("timezone", .string(config.timezone))
        root.appendUnique("version", .string(VigilVersion.current))
        root.appendUnique("health", ["status": .string(ok ? "ok" : "unavailable"), "reason": reason.map(JSONValue.string) ?? .null])
        root.appendUnique("broker", ["url": .string(config.broker.url), "connected": .bool(status.connected)])
        root.appendUnique("feeds", .array(feeds))
        root.appendUnique("dead_letters", .object(dead))
        root.appendUnique(
            "open_incidents",
            [
                "total": .number(Double(openCount)), "by_severity": .object(bySeverity),
                "by_community": .object(byCommunity),
            ])
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
}

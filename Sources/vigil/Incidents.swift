import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore
import VigilConfig
import VigilCore
import VigilDaemon
import VigilDispatch
import VigilIngest
import VigilRules
import VigilStore

struct Incidents: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Incidents from the state directory, newest first (works while the daemon runs, and after it stopped).",
        discussion: "Open ones by default, newest first: severity, age, rule, channel, community and location, acknowledgement.")

    @OptionGroup var options: ConfigOptions
    @Option(help: "open, resolved or all.") var state = "open"
    @Option(help: "Only this community (its name or code).") var community: String?
    @Option(help: "Only this feed.") var feed: String?
    @Option(help: "Only this rule.") var rule: String?
    @Option(help: "Opened since: a duration back from now (2h) or an RFC 3339 time.") var since: String?
    @Option(help: "At most this many.") var limit = 1000
    @Flag(help: "Output JSON for machines.") var json = false

    func run() async throws {
        let config = try loadConfig(options.config)
        guard let st = IncidentHistory.Query.State(rawValue: state) else { throw ValidationError("--state must be open, resolved or all") }
        var q = IncidentHistory.Query()
        q.state = st
        q.community = community
        q.feed = feed
        q.rule = rule
        q.since = try parseSince(since)
        q.limit = limit
        let path = try stateDatabase(config, command: "vigil incidents")
        let found: [IncidentHistory.Incident]
        do { found = try IncidentHistory.list(q, in: try Database(path: path, readOnly: true)) } catch {
            printError("vigil incidents: \(error)")
            throw ExitCode(1)
        }
        let now = Time.now()
        if json {
            print(JSONWriter.encode(.array(found.map { Incidents.json($0, now: now) })))
            return
        }
        if found.isEmpty { print("no \(state == "all" ? "" : state + " ")incidents"); return }
        let card = ChatCard(timeZone: TimeZone(identifier: config.timezone) ?? TimeZone(identifier: "UTC")!, language: .en)
        print(pad("severity", 10) + pad("age", 9) + pad("rule", 26) + pad("channel", 14) + pad("community", 16) + "location / acknowledgement")
        for i in found {
            let age = Units.formatDuration(max(0, (i.resolvedAt ?? now) - i.openedAt) / 1000 * 1000)
            var tail = i.location ?? "-"
            if let by = i.acknowledgedBy { tail += "  [acknowledged by \(by) \(card.localTime(i.acknowledgedAt ?? now))]" }
            if let r = i.resolvedAt { tail += "  [resolved \(card.localTime(r))]" }
            print(pad(i.severity.name, 10) + pad(age, 9) + pad(i.rule, 26) + pad(i.channel ?? "-", 14) + pad(i.community ?? "-", 16) + tail)
            print("          " + i.id + "  opened " + card.localTime(i.openedAt) + "  " + i.title)
        }
    }

    static func json(_ i: IncidentHistory.Incident, now: Millis) -> JSONValue {
        var o = JSONObject()
        o.appendUnique("id", .string(i.id))
        o.appendUnique("rule", .string(i.rule))
        o.appendUnique("severity", .string(i.severity.name))
        o.appendUnique("state", .string(i.isOpen ? "open" : "resolved"))
        o.appendUnique("title", .string(i.title))
        o.appendUnique("feed", .string(i.feed))
        o.appendUnique("channel", i.channel.map(JSONValue.string) ?? .null)
        o.appendUnique("community", i.community.map(JSONValue.string) ?? .null)
        o.appendUnique("location", i.location.map(JSONValue.string) ?? .null)
        o.appendUnique("opened_at", .string(Time.format(i.openedAt)))
        o.appendUnique("resolved_at", i.resolvedAt.map { .string(Time.format($0)) } ?? .null)
        o.appendUnique("acknowledged_at", i.acknowledgedAt.map { .string(Time.format($0)) } ?? .null)
        o.appendUnique("acknowledged_by", i.acknowledgedBy.map(JSONValue.string) ?? .null)
        o.appendUnique("note", i.note.map(JSONValue.string) ?? .null)
        o.appendUnique("age_seconds", .number(Double(max(0, (i.resolvedAt ?? now) - i.openedAt) / 1000)))
        return .object(o)
    }
}

struct Ack: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Acknowledge an open incident through the running daemon.",
        discussion: "Posts to the daemon's API (http.listen), with the token of http.token_file when one is set. Exit 1 for an unknown or resolved incident.")

    @OptionGroup var options: ConfigOptions
    @Argument(help: "The incident id (vigil incidents lists them).") var incidentID: String
    @Option(help: "Who acknowledges it.") var by: String
    @Option(help: "A note for the people who follow.") var note: String?

    func run() async throws {
        let config = try loadConfig(options.config)
        guard let listen = config.httpListen, let (listenHost, port) = ConfigLoader.parseHostPort(listen) else {
            printError("vigil ack: http.listen is off in the configuration; the daemon has no API to take the acknowledgement")
            throw ExitCode(1)
        }
        let host = listenHost == "0.0.0.0" || listenHost == "::" || listenHost.isEmpty ? "127.0.0.1" : listenHost
        let token: String?
        do { token = try Daemon.readSecret(config.httpTokenFile, what: "http.token_file", config: config) } catch {
            printError("vigil ack: \(error)")
            throw ExitCode(1)
        }
        var body = JSONObject()
        body.appendUnique("by", .string(by))
        body.appendUnique("note", note.map(JSONValue.string) ?? .null)
        let hostPart = host.contains(":") ? "[\(host)]" : host
        let id = incidentID.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? incidentID
        var request = HTTPClientRequest(url: "http://\(hostPart):\(port)/api/v1/incidents/\(id)/ack")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        request.body = .bytes(ByteBuffer(string: JSONWriter.encode(.object(body))))
        let client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup)
        let status: Int
        var answer = ByteBuffer()
        do {
            let response = try await client.execute(request, timeout: .seconds(15))
            status = Int(response.status.code)
            answer = try await response.body.collect(upTo: 1 << 20)
            try await client.shutdown()
        } catch {
            try? await client.shutdown()
            printError("vigil ack: cannot reach the daemon at \(host):\(port) (is it running?): \(error)")
            throw ExitCode(1)
        }
        let text = String(buffer: answer)
        let parsed = (try? JSONParser.parse(text))?.objectValue
        switch status {
        case 200:
            print("\(incidentID): \(parsed?["result"]?.stringValue ?? "acknowledged") by \(parsed?["acknowledged_by"]?.stringValue ?? by)")
        default:
            printError("vigil ack: \(parsed?["error"]?.stringValue ?? "HTTP \(status)")")
            throw ExitCode(1)
        }
    }
}

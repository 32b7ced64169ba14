import Foundation
import VigilCore
import Yams

/// Reads `vigil.yaml`, reporting every problem with its line and column.
public enum ConfigLoader {
    static let topKeys = [
        "broker", "readings", "timezone", "subscriptions", "channels", "unknown_channels", "rules", "state_dir",
        "history", "journal", "limits", "dispatch", "http", "log",
    ]
    static let brokerKeys = [
        "url", "client_id", "clean_session", "qos", "protocol", "keepalive", "username",
        "password_file", "tls", "reconnect", "shared_group", "session_expiry", "blind_incident_after",
    ]
    static let sinkKeys = [
        "name", "type", "path", "url", "secret_file", "timeout", "concurrency", "routes",
        "min_severity", "topic", "qos", "language", "broker",
    ]

    /// The configuration, or nil and every error in it.
    public static func load(path: String) -> (VigilConfig?, [Diagnostic]) { withoutErrors(loadAsFarAsItGoes(path: path)) }

    /// The configuration, or nil and every error in it.
    public static func parse(_ text: String, path: String) -> (VigilConfig?, [Diagnostic]) { withoutErrors(parseAsFarAsItGoes(text, path: path)) }

    static func withoutErrors(_ read: (VigilConfig?, [Diagnostic])) -> (VigilConfig?, [Diagnostic]) {
        (read.1.isEmpty ? read.0 : nil, read.1)
    }

    /// Like `load(path:)`, but with the configuration as far as it could be
    /// read even when it has errors: `vigil check` goes on to the registry
    /// and the rules with it, to report their errors in the same run.
    package static func loadAsFarAsItGoes(path: String) -> (VigilConfig?, [Diagnostic]) {
        guard let data = FileManager.default.contents(atPath: path) else {
            return (nil, [Diagnostic(path: path, line: 1, column: 1, "cannot read the configuration file")])
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            return (nil, [Diagnostic(path: path, line: 1, column: 1, "the configuration is not valid UTF-8")])
        }
        return parseAsFarAsItGoes(text, path: path)
    }

    static func parseAsFarAsItGoes(_ text: String, path: String) -> (VigilConfig?, [Diagnostic]) {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let base = (absolute as NSString).deletingLastPathComponent
        var c = VigilConfig(path: path, baseDirectory: base)
        var ctx = YAMLContext(path: path)
        var root = ctx.compose(text)
        if root == nil && !ctx.diagnostics.items.isEmpty { return (nil, ctx.diagnostics.items) }
        // An empty file (or only comments, or `~`): all defaults, made as for any other.
        if root.map(YAMLContext.isNull) ?? true { root = .mapping(Node.Mapping([])) }
        guard let root, let top = ctx.mapping(root, "the configuration", allowed: topKeys) else { return (nil, ctx.diagnostics.items) }

        if let b = top.node("broker"), let m = ctx.mapping(b, "broker", allowed: brokerKeys) {
            parseBroker(m, &c.broker, &c.fileReferences, &ctx)
        }
        if let s = top.node("subscriptions"), let items = ctx.sequence(s, "subscriptions") {
            var subs: [Subscription] = []
            for item in items {
                guard let m = ctx.mapping(item, "a subscription", allowed: ["topic", "feed"]) else { continue }
                guard let tn = m.node("topic"), let topic = ctx.string(tn, "topic") else {
                    ctx.error(item, "a subscription needs 'topic'"); continue
                }
                guard let fn = m.node("feed"), let feed = ctx.string(fn, "feed") else {
                    ctx.error(item, "a subscription needs 'feed'"); continue
                }
                do {
                    let pattern = try TopicPattern(topic)
                    let spec = FeedSpec(feed)
                    if case .capture(let name) = spec, !pattern.captureNames.contains(name) {
                        ctx.error(fn, "feed '\(feed)' names a capture the topic does not have (captures: \(pattern.captureNames.joined(separator: ", ")))")
                        continue
                    }
                    subs.append(Subscription(pattern: pattern, feed: spec))
                } catch {
                    ctx.error(tn, "topic: \(error.description)")
                }
            }
            c.subscriptions = subs
        }
        if let n = top.node("channels") {
            if let s = ctx.optionalString(n, "channels") {
                c.channels = s.map(c.resolve)
                if let s { c.fileReferences.append(.init(key: "channels", spec: s, location: ctx.location(n))) }
            }
        } else {
            c.channels = defaultChannels(c)
        }
        if let n = top.node("unknown_channels"), let s = ctx.string(n, "unknown_channels") {
            if let v = ReadingDecoder.UnknownChannels(rawValue: s) {
                c.unknownChannels = v
            } else {
                ctx.error(n, "unknown_channels must be accept or reject, not '\(s)'")
            }
        }
        if let n = top.node("rules") {
            // A wrong value checks no rule files, not the default ones the operator did not name.
            c.rules = ctx.stringList(n, "rules")?.map { c.resolve($0.0) } ?? []
        } else {
            c.rules = c.rules.map(c.resolve)
        }
        if let r = top.node("readings"), let m = ctx.mapping(r, "readings", allowed: ["device_time", "late_after", "max_delay"]) {
            if let n = m.node("device_time"), let s = ctx.optionalString(n, "device_time") {
                if let s, DeviceTime.Path(s) == nil {
                    ctx.error(n, "device_time '\(s)' — write a payload path such as ts or meta.sent_at")
                } else {
                    c.readings.deviceTime = s
                }
            }
            if let n = m.node("late_after"), let d = ctx.duration(n, "late_after") {
                if d <= 0 { ctx.error(n, "late_after must be positive") } else { c.readings.lateAfter = d }
            }
            if let n = m.node("max_delay"), let d = ctx.duration(n, "max_delay") { c.readings.maxDelay = d }
            if c.readings.maxDelay < c.readings.lateAfter, let n = m.node("max_delay") ?? m.node("late_after") {
                ctx.error(
                    n,
                    "max_delay (\(Units.formatDuration(c.readings.maxDelay))) must not be shorter than late_after (\(Units.formatDuration(c.readings.lateAfter)))"
                )
            }
        }
        if let n = top.node("timezone"), let s = ctx.string(n, "timezone") {
            if TimeZone(identifier: s) != nil {
                c.timezone = s
            } else {
                ctx.error(n, "timezone '\(s)' is not an IANA time zone name (e.g. Asia/Shanghai, UTC)")
            }
        }
        if let n = top.node("state_dir"), let s = ctx.string(n, "state_dir") { c.stateDirectory = c.resolve(s) }
        if let n = top.node("history"), let d = ctx.duration(n, "history") { c.history = d }
        if let j = top.node("journal"), let m = ctx.mapping(j, "journal", allowed: ["retention", "max_size", "sync"]) {
            if let n = m.node("retention"), let d = ctx.duration(n, "retention") { c.journalRetention = d }
            if let n = m.node("max_size"), let s = ctx.size(n, "max_size") { c.journalMaxSize = s }
            if let n = m.node("sync"), let s = ctx.string(n, "sync") {
                if let v = VigilConfig.JournalSync(rawValue: s) { c.journalSync = v } else { ctx.error(n, "journal sync must be full or normal, not '\(s)'") }
            }
        }
        if let l = top.node("limits"), let m = ctx.mapping(l, "limits", allowed: ["max_payload", "max_json_depth"]) {
            if let n = m.node("max_payload"), let s = ctx.size(n, "max_payload") { c.limits.maxPayload = Int(s) }
            if let n = m.node("max_json_depth"), let d = ctx.int(n, "max_json_depth", min: 1) { c.limits.maxDepth = d }
        }
        if let d = top.node("dispatch"),
            let m = ctx.mapping(d, "dispatch", allowed: ["max_pending", "overflow", "shed_below", "retry", "sinks"])
        {
            parseDispatch(m, &c, &ctx)
        }
        if let h = top.node("http") {
            if YAMLContext.isNull(h) {
                c.httpListen = nil
            } else if let m = ctx.mapping(h, "http", allowed: ["listen", "token_file"]) {
                if let n = m.node("listen"), let s = ctx.optionalString(n, "listen") {
                    c.httpListen = s
                    if let s, parseHostPort(s) == nil { ctx.error(n, "listen '\(s)' — write HOST:PORT, e.g. 127.0.0.1:9464") }
                }
                if let n = m.node("token_file"), let s = ctx.optionalString(n, "token_file") {
                    c.httpTokenFile = s
                    if let s { c.fileReferences.append(.init(key: "http.token_file", spec: s, location: ctx.location(n))) }
                }
            }
        }
        if let l = top.node("log"), let m = ctx.mapping(l, "log", allowed: ["level", "format", "stats_interval"]) {
            if let n = m.node("level"), let s = ctx.string(n, "level") {
                if ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(s) {
                    c.logLevel = s
                } else {
                    ctx.error(n, "log level '\(s)' — use trace, debug, info, notice, warning, error or critical")
                }
            }
            if let n = m.node("format"), let s = ctx.string(n, "format") {
                if s == "logfmt" || s == "json" { c.logFormat = s } else { ctx.error(n, "log format must be logfmt or json, not '\(s)'") }
            }
            if let n = m.node("stats_interval"), let d = ctx.duration(n, "stats_interval") { c.statsInterval = d }
        }
        return (c, ctx.diagnostics.items)
    }

    /// `channels` unset: `channels.csv` beside the configuration when there is
    /// one (the registry is optional; `channels: null` says there is none).
    static func defaultChannels(_ c: VigilConfig) -> String? {
        let path = c.resolve("channels.csv")
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue ? path : nil
    }

    static func parseBroker(_ m: YAMLMapping, _ b: inout VigilConfig.Broker, _ refs: inout [VigilConfig.FileReference], _ ctx: inout YAMLContext) {
        if let n = m.node("url"), let s = ctx.string(n, "url") {
            if let (tls, host, port) = parseBrokerURL(s) {
                b.url = s; b.useTLS = tls; b.host = host; b.port = port
            } else {
                ctx.error(n, "broker url '\(s)' — write mqtt://HOST:PORT or mqtts://HOST:PORT")
            }
        }
        if let n = m.node("client_id"), let s = ctx.string(n, "client_id") {
            if s.isEmpty || s.utf8.count > 65535 { ctx.error(n, "client_id must be 1 to 65535 bytes") } else { b.clientID = s }
        }
        if let n = m.node("clean_session"), let v = ctx.bool(n, "clean_session") { b.cleanSession = v }
        if let n = m.node("qos"), let q = ctx.int(n, "qos") {
            if q == 0 || q == 1 { b.qos = q } else { ctx.error(n, "qos must be 0 or 1") }
        }
        if let n = m.node("protocol"), let s = ctx.string(n, "protocol") {
            if s == "3.1.1" || s == "5" || s == "5.0" {
                b.protocolVersion = s == "5.0" ? "5" : s
            } else {
                ctx.error(n, "protocol must be 3.1.1 or 5, not '\(s)'")
            }
        }
        if let n = m.node("keepalive"), let d = ctx.duration(n, "keepalive") {
            if d < 5000 || d > 65_535_000 { ctx.error(n, "keepalive must be between 5s and 65535s") } else { b.keepalive = d }
        }
        if let n = m.node("username"), let s = ctx.optionalString(n, "username") { b.username = s }
        if let n = m.node("password_file"), let s = ctx.optionalString(n, "password_file") {
            b.passwordFile = s
            if let s { refs.append(.init(key: "broker.password_file", spec: s, location: ctx.location(n))) }
        }
        if let t = m.node("tls"), let tm = ctx.mapping(t, "tls", allowed: ["ca_file", "cert_file", "key_file", "insecure"]) {
            if let n = tm.node("ca_file"), let s = ctx.optionalString(n, "ca_file") {
                b.tls.caFile = s
                if let s { refs.append(.init(key: "broker.tls.ca_file", spec: s, location: ctx.location(n))) }
            }
            if let n = tm.node("cert_file"), let s = ctx.optionalString(n, "cert_file") {
                b.tls.certFile = s
                if let s { refs.append(.init(key: "broker.tls.cert_file", spec: s, location: ctx.location(n))) }
            }
            if let n = tm.node("key_file"), let s = ctx.optionalString(n, "key_file") {
                b.tls.keyFile = s
                if let s { refs.append(.init(key: "broker.tls.key_file", spec: s, location: ctx.location(n))) }
            }
            if let n = tm.node("insecure"), let v = ctx.bool(n, "insecure") { b.tls.insecure = v }
            if (b.tls.certFile == nil) != (b.tls.keyFile == nil) {
                ctx.error(t, "tls: cert_file and key_file go together (a client certificate needs its key)")
            }
        }
        if let r = m.node("reconnect"), let rm = ctx.mapping(r, "reconnect", allowed: ["initial", "max"]) {
            if let n = rm.node("initial"), let d = ctx.duration(n, "initial") { b.reconnectInitial = max(d, 1) }
            if let n = rm.node("max"), let d = ctx.duration(n, "max") { b.reconnectMax = max(d, 1) }
        }
        if let n = m.node("shared_group"), let s = ctx.optionalString(n, "shared_group") { b.sharedGroup = s }
        if let n = m.node("session_expiry"), let d = ctx.duration(n, "session_expiry") {
            // The property is a 32-bit count of seconds; 0xFFFFFFFF means "never expires".
            if d < 0 || d / 1000 > 0xFFFF_FFFF { ctx.error(n, "session_expiry must be between 0s and 4294967295s") } else { b.sessionExpiry = d }
        }
        if let n = m.node("blind_incident_after"), let d = ctx.duration(n, "blind_incident_after") {
            if d <= 0 { ctx.error(n, "blind_incident_after must be positive") } else { b.blindIncidentAfter = d }
        }
    }

    /// `mqtt://host:port` → (tls, host, port).
    public static func parseBrokerURL(_ s: String) -> (Bool, String, Int)? {
        let tls: Bool
        var rest: Substring
        if s.hasPrefix("mqtt://") {
            tls = false; rest = s.dropFirst(7)
        } else if s.hasPrefix("mqtts://") {
            tls = true; rest = s.dropFirst(8)
        } else {
            return nil
        }
        if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
        guard let hp = parseHostPort(String(rest), defaultPort: tls ? 8883 : 1883) else { return nil }
        return (tls, hp.0, hp.1)
    }

    public static func parseHostPort(_ s: String, defaultPort: Int? = nil) -> (String, Int)? {
        if s.hasPrefix("[") {
            guard let close = s.firstIndex(of: "]") else { return nil }
            let host = String(s[s.index(after: s.startIndex)..<close])
            let after = s[s.index(after: close)...]
            if after.isEmpty, let d = defaultPort { return (host, d) }
            guard after.hasPrefix(":"), let p = Int(after.dropFirst()), (0...65535).contains(p) else { return nil }
            return (host, p)
        }
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        if parts.count == 1, let d = defaultPort, !s.isEmpty { return (s, d) }
        guard parts.count == 2, !parts[0].isEmpty, let p = Int(parts[1]), (0...65535).contains(p) else { return nil }
        return (String(parts[0]), p)
    }
}

import Foundation
import VigilCore
import VigilDispatch
import Yams

/// `vigil.yaml`: every key has a default; an unknown key is an error.
public struct VigilConfig: Sendable {
    public struct TLS: Sendable {
        public var caFile: String?
        public var certFile: String?
        public var keyFile: String?
        public var insecure = false
    }

    public struct Broker: Sendable {
        public var url = "mqtt://127.0.0.1:1883"
        public var host = "127.0.0.1"
        public var port = 1883
        public var useTLS = false
        public var clientID = "vigil"
        public var cleanSession = false
        public var qos = 1
        public var protocolVersion = "3.1.1"
        public var keepalive: Millis = 30_000
        public var username: String?
        public var passwordFile: String?
        public var tls = TLS()
        public var reconnectInitial: Millis = 1000
        public var reconnectMax: Millis = 30_000
        public var sharedGroup: String?
        /// MQTT 5: the Session Expiry Interval sent in CONNECT (how long the broker keeps the session while vigil is away).
        public var sessionExpiry: Millis = 7 * 86_400_000
        /// Not connected this long: the built-in incident `vigil_broker_unreachable`.
        public var blindIncidentAfter: Millis = 60_000
    }

    /// `readings`: how a reading's own time is found and judged (SPEC §4, Time).
    public struct Readings: Sendable {
        /// Payload path of the device's time (RFC 3339 or epoch ms); nil: not used.
        public var deviceTime: String? = "ts"
        public var lateAfter: Millis = 10_000
        public var maxDelay: Millis = 86_400_000
    }

    /// `journal.sync`: whether a commit is on disk before its PUBACKs leave.
    public enum JournalSync: String, Sendable { case full, normal }

    /// A sink as configured. Each kind holds what it needs, so a configuration
    /// that loads can always build its sinks.
    public struct Sink: Sendable {
        public enum Kind: Sendable {
            case log
            case file(path: String)
            case webhook(url: String, secretFile: String?)
            /// A group robot: DingTalk, WeCom or Feishu; the card's language is `zh` or `en`.
            case chat(vendor: ChatSink.Vendor, url: String, secretFile: String?, language: ChatCard.Language)
            /// `broker`: its own; nil publishes to the ingest broker (with a client id of its own).
            case mqtt(topic: String, qos: Int, broker: Broker?)
        }

        public var name: String
        public var kind: Kind
        public var timeout: Millis = 10_000
        public var concurrency = 4
        public var routes: [String] = ["*"]
        public var minSeverity: Severity = .info

        public init(name: String, kind: Kind) { self.name = name; self.kind = kind }

        /// The `type` as written in the configuration.
        public var type: String {
            switch kind {
            case .log: "log"
            case .file: "file"
            case .webhook: "webhook"
            case .chat(let vendor, _, _, _): vendor.rawValue
            case .mqtt: "mqtt"
            }
        }
    }

    public enum Overflow: String, Sendable { case block, shed }

    public struct Dispatch: Sendable {
        public var maxPending = 100_000
        public var overflow = Overflow.block
        public var shedBelow = Severity.major
        public var retryInitial: Millis = 1000
        public var retryMax: Millis = 300_000
        public var retryMaxAge: Millis = 86_400_000
        public var sinks: [Sink] = [Sink(name: "log", kind: .log), Sink(name: "file", kind: .file(path: "incidents.jsonl"))]
    }

    /// A file the configuration names (TLS files, secrets, the registry), with
    /// where it is named, so that an unreadable one is reported at its line.
    public struct FileReference: Sendable {
        /// The key, as an operator reads it: `broker.tls.ca_file`.
        public var key: String
        /// As written: a path, or `credential:NAME`.
        public var spec: String
        public var location: SourceLocation
    }

    /// The file the configuration came from; nil for the embedded defaults.
    public var path: String?
    public var fileReferences: [FileReference] = []
    /// Relative paths are relative to this folder.
    public var baseDirectory: String
    public var broker = Broker()
    public var subscriptions: [Subscription] = VigilConfig.defaultSubscriptions
    public var channels: String?
    public var unknownChannels = ReadingDecoder.UnknownChannels.accept
    public var rules: [String] = ["rules.d/*.yaml"]
    public var stateDirectory = "/var/lib/vigil"
    public var journalRetention: Millis = 86_400_000
    public var journalMaxSize: Int64 = 1 << 30
    public var journalSync = JournalSync.full
    public var readings = Readings()
    /// IANA name: maintenance windows without a zone of their own, and times shown to people.
    public var timezone = "UTC"
    /// How long resolved incidents (and their events) are kept for `vigil incidents` and the API.
    public var history: Millis = 30 * 86_400_000
    /// Bearer token for the HTTP API: a path or `credential:NAME`.
    public var httpTokenFile: String?
    public var limits = ReadingDecoder.Limits()
    public var dispatch = Dispatch()
    public var httpListen: String? = "127.0.0.1:9464"
    public var logLevel = "info"
    public var logFormat = "logfmt"
    public var statsInterval: Millis = 60_000

    public static let defaultConfigPath = "/etc/vigil/vigil.yaml"

    public static let defaultSubscriptions: [Subscription] = [
        ("estate/{community}/smart_gate/{channel}/event", "smart_gate"),
        ("estate/{community}/fire_alarm/{channel}/event", "fire_alarm"),
        ("estate/{community}/elevator_ebike/{channel}/event", "elevator_ebike"),
        ("estate/{community}/charging_pile/{channel}/telemetry", "charging_pile"),
        ("estate/{community}/falling_object/{channel}/event", "falling_object"),
        ("estate/{community}/{feed}/{channel}/status", "{feed}"),
    ].map { Subscription(pattern: try! TopicPattern($0.0), feed: FeedSpec($0.1)) }

    /// The embedded defaults, for `vigil run` without any config file: state in
    /// `./state`, rules from `./rules.d`, no registry, log and file sinks.
    public static func embedded(workingDirectory: String = FileManager.default.currentDirectoryPath) -> VigilConfig {
        var c = VigilConfig(path: nil, baseDirectory: workingDirectory)
        c.stateDirectory = workingDirectory + "/state"
        c.rules = [workingDirectory + "/rules.d/*.yaml"]
        c.dispatch.sinks = [Sink(name: "log", kind: .log), Sink(name: "file", kind: .file(path: workingDirectory + "/state/incidents.jsonl"))]
        return c
    }

    public init(path: String?, baseDirectory: String) {
        self.path = path
        self.baseDirectory = baseDirectory
    }

    public var knownFeeds: Set<String> { ReadingDecoder.knownFeeds(subscriptions) }

    /// An absolute path for one written in the file.
    public func resolve(_ p: String) -> String {
        if p.hasPrefix("/") { return p }
        return baseDirectory + "/" + p
    }

    public var stateDatabasePath: String { stateDirectory + "/vigil.db" }

    /// The absolute path of a file reference: `credential:NAME` in
    /// `$CREDENTIALS_DIRECTORY` (nil when that is not set), else relative to the config's folder.
    public func resolveFile(_ spec: String, environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        if spec.hasPrefix("credential:") {
            guard let dir = environment["CREDENTIALS_DIRECTORY"] else { return nil }
            return dir + "/" + spec.dropFirst("credential:".count)
        }
        return resolve(spec)
    }

    /// Every named file that cannot be read, at the line that names it. A
    /// `credential:NAME` outside systemd (no `$CREDENTIALS_DIRECTORY`) is left
    /// to the daemon, which reports it when it starts.
    public func unreadableFiles() -> [Diagnostic] {
        var out: [Diagnostic] = []
        for ref in fileReferences {
            guard let path = resolveFile(ref.spec) else { continue }
            if let why = FileCheck.unreadable(path) {
                out.append(Diagnostic(ref.location, "\(ref.key) \(path): \(why)"))
            }
        }
        return out
    }
}

/// Whether a file can be read, and if not, why in an operator's words.
public enum FileCheck {
    public static func unreadable(_ path: String) -> String? {
        var st = stat()
        if stat(path, &st) != 0 { return errno == ENOENT ? "no such file" : "cannot read it: \(String(cString: strerror(errno)))" }
        if (st.st_mode & S_IFMT) == S_IFDIR { return "is a folder, not a file" }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { return "cannot read it: \(String(cString: strerror(errno)))" }
        close(fd)
        return nil
    }
}

/// Reads `vigil.yaml`, reporting every problem with its line and column.
public enum ConfigLoader {
    static let topKeys = ["broker", "readings", "timezone", "subscriptions", "channels", "unknown_channels", "rules", "state_dir",
                          "history", "journal", "limits", "dispatch", "http", "log"]
    static let brokerKeys = ["url", "client_id", "clean_session", "qos", "protocol", "keepalive", "username",
                             "password_file", "tls", "reconnect", "shared_group", "session_expiry", "blind_incident_after"]
    static let sinkKeys = ["name", "type", "path", "url", "secret_file", "timeout", "concurrency", "routes",
                           "min_severity", "topic", "qos", "language", "broker"]

    /// The kind-specific keys a sink of this type takes.
    static func sinkKeys(of type: String) -> Set<String> {
        switch type {
        case "file": ["path"]
        case "webhook": ["url", "secret_file"]
        case "dingtalk", "feishu": ["url", "secret_file", "language"]
        case "wecom": ["url", "secret_file", "language"]   // secret_file: refused with its own message
        case "mqtt": ["topic", "qos", "broker"]
        default: []
        }
    }

    public static func load(path: String) -> (VigilConfig?, [Diagnostic]) {
        guard let data = FileManager.default.contents(atPath: path) else {
            return (nil, [Diagnostic(path: path, line: 1, column: 1, "cannot read the configuration file")])
        }
        guard let text = String(validating: data, as: UTF8.self) else {
            return (nil, [Diagnostic(path: path, line: 1, column: 1, "the configuration is not valid UTF-8")])
        }
        return parse(text, path: path)
    }

    public static func parse(_ text: String, path: String) -> (VigilConfig?, [Diagnostic]) {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        let base = (absolute as NSString).deletingLastPathComponent
        var c = VigilConfig(path: path, baseDirectory: base)
        var ctx = YAMLContext(path: path)
        guard let root = ctx.compose(text) else { return (nil, ctx.diagnostics.items) }
        if YAMLContext.isNull(root) { return (c, []) }  // an empty file: all defaults
        guard let top = ctx.mapping(root, "the configuration", allowed: topKeys) else { return (nil, ctx.diagnostics.items) }

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
        }
        if let n = top.node("unknown_channels"), let s = ctx.string(n, "unknown_channels") {
            if let v = ReadingDecoder.UnknownChannels(rawValue: s) { c.unknownChannels = v }
            else { ctx.error(n, "unknown_channels must be accept or reject, not '\(s)'") }
        }
        if let n = top.node("rules"), let list = ctx.stringList(n, "rules") { c.rules = list.map { c.resolve($0.0) } }
        else { c.rules = c.rules.map(c.resolve) }
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
                ctx.error(n, "max_delay (\(Units.formatDuration(c.readings.maxDelay))) must not be shorter than late_after (\(Units.formatDuration(c.readings.lateAfter)))")
            }
        }
        if let n = top.node("timezone"), let s = ctx.string(n, "timezone") {
            if TimeZone(identifier: s) != nil { c.timezone = s } else { ctx.error(n, "timezone '\(s)' is not an IANA time zone name (e.g. Asia/Shanghai, UTC)") }
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
           let m = ctx.mapping(d, "dispatch", allowed: ["max_pending", "overflow", "shed_below", "retry", "sinks"]) {
            parseDispatch(m, &c, &ctx)
        }
        if let h = top.node("http") {
            if YAMLContext.isNull(h) { c.httpListen = nil }
            else if let m = ctx.mapping(h, "http", allowed: ["listen", "token_file"]) {
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
                if ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(s) { c.logLevel = s }
                else { ctx.error(n, "log level '\(s)' — use trace, debug, info, notice, warning, error or critical") }
            }
            if let n = m.node("format"), let s = ctx.string(n, "format") {
                if s == "logfmt" || s == "json" { c.logFormat = s } else { ctx.error(n, "log format must be logfmt or json, not '\(s)'") }
            }
            if let n = m.node("stats_interval"), let d = ctx.duration(n, "stats_interval") { c.statsInterval = d }
        }
        let diags = ctx.diagnostics.items
        return (diags.isEmpty ? c : nil, diags)
    }

    static func parseBroker(_ m: YAMLMapping, _ b: inout VigilConfig.Broker, _ refs: inout [VigilConfig.FileReference], _ ctx: inout YAMLContext) {
        if let n = m.node("url"), let s = ctx.string(n, "url") {
            if let (tls, host, port) = parseBrokerURL(s) { b.url = s; b.useTLS = tls; b.host = host; b.port = port }
            else { ctx.error(n, "broker url '\(s)' — write mqtt://HOST:PORT or mqtts://HOST:PORT") }
        }
        if let n = m.node("client_id"), let s = ctx.string(n, "client_id") {
            if s.isEmpty || s.utf8.count > 65535 { ctx.error(n, "client_id must be 1 to 65535 bytes") } else { b.clientID = s }
        }
        if let n = m.node("clean_session"), let v = ctx.bool(n, "clean_session") { b.cleanSession = v }
        if let n = m.node("qos"), let q = ctx.int(n, "qos") {
            if q == 0 || q == 1 { b.qos = q } else { ctx.error(n, "qos must be 0 or 1") }
        }
        if let n = m.node("protocol"), let s = ctx.string(n, "protocol") {
            if s == "3.1.1" || s == "5" || s == "5.0" { b.protocolVersion = s == "5.0" ? "5" : s }
            else { ctx.error(n, "protocol must be 3.1.1 or 5, not '\(s)'") }
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

    static func parseDispatch(_ m: YAMLMapping, _ c: inout VigilConfig, _ ctx: inout YAMLContext) {
        if let n = m.node("max_pending"), let v = ctx.int(n, "max_pending", min: 1) { c.dispatch.maxPending = v }
        if let n = m.node("overflow"), let s = ctx.string(n, "overflow") {
            if let v = VigilConfig.Overflow(rawValue: s) { c.dispatch.overflow = v }
            else { ctx.error(n, "overflow must be block or shed, not '\(s)'") }
        }
        if let n = m.node("shed_below"), let s = ctx.string(n, "shed_below") {
            if let v = Severity(name: s) { c.dispatch.shedBelow = v } else { ctx.error(n, "shed_below '\(s)' — use info, minor, major or critical") }
        }
        if let r = m.node("retry"), let rm = ctx.mapping(r, "retry", allowed: ["initial", "max", "max_age"]) {
            if let n = rm.node("initial"), let d = ctx.duration(n, "initial") { c.dispatch.retryInitial = d }
            if let n = rm.node("max"), let d = ctx.duration(n, "max") { c.dispatch.retryMax = d }
            if let n = rm.node("max_age"), let d = ctx.duration(n, "max_age") { c.dispatch.retryMaxAge = d }
        }
        if let s = m.node("sinks"), let items = ctx.sequence(s, "sinks") {
            var sinks: [VigilConfig.Sink] = []
            var names = Set<String>()
            for item in items {
                guard let sm = ctx.mapping(item, "a sink", allowed: sinkKeys) else { continue }
                guard let nn = sm.node("name"), let name = ctx.string(nn, "name") else { ctx.error(item, "a sink needs a name"); continue }
                guard let tn = sm.node("type"), let type = ctx.string(tn, "type") else { ctx.error(item, "sink '\(name)' needs a type (log, file, webhook, mqtt, dingtalk, wecom, feishu)"); continue }
                if !names.insert(name).inserted { ctx.error(nn, "sink name '\(name)' is used twice"); continue }
                let kind: VigilConfig.Sink.Kind
                switch type {
                case "log": kind = .log
                case "file":
                    guard let n = sm.node("path"), let p = ctx.string(n, "path") else { ctx.error(item, "file sink '\(name)' needs a path"); continue }
                    kind = .file(path: c.resolve(p))
                case "webhook", "dingtalk", "wecom", "feishu":
                    var url: String?
                    if let n = sm.node("url"), let u = ctx.string(n, "url") {
                        if u.hasPrefix("http://") || u.hasPrefix("https://") { url = u }
                        else { ctx.error(n, "\(type) url '\(u)' must start with http:// or https://") }
                    } else { ctx.error(item, "\(type) sink '\(name)' needs a url\(type == "webhook" ? "" : " (the group robot's webhook)")") }
                    if type == "wecom", let n = sm.node("secret_file"), !YAMLContext.isNull(n) {
                        ctx.error(n, "a WeCom group robot is not signed: its key is part of the url (…/webhook/send?key=…)")
                    }
                    var language = ChatCard.Language.zh
                    if let n = sm.node("language"), let l = ctx.string(n, "language") {
                        if let v = ChatCard.Language(rawValue: l) { language = v } else { ctx.error(n, "language must be zh or en, not '\(l)'") }
                    }
                    var secretFile: String?
                    if let n = sm.node("secret_file"), let p = ctx.optionalString(n, "secret_file") {
                        secretFile = p
                        if let p { c.fileReferences.append(.init(key: "dispatch.sinks[\(name)].secret_file", spec: p, location: ctx.location(n))) }
                    }
                    guard let url else { continue }
                    if let vendor = ChatSink.Vendor(rawValue: type) {
                        kind = .chat(vendor: vendor, url: url, secretFile: secretFile, language: language)
                    } else {
                        kind = .webhook(url: url, secretFile: secretFile)
                    }
                case "mqtt":
                    var topic = "vigil/incidents/{route}/{severity}"
                    if let n = sm.node("topic"), let t = ctx.string(n, "topic") { topic = t }
                    var qos = 1
                    if let n = sm.node("qos"), let q = ctx.int(n, "qos") {
                        if q == 0 || q == 1 { qos = q } else { ctx.error(n, "qos must be 0 or 1") }
                    }
                    var broker: VigilConfig.Broker?
                    if let n = sm.node("broker"), !YAMLContext.isNull(n) {
                        // A URL, or a mapping with the keys of the top-level `broker` (their defaults, not the ingest broker's).
                        var b = VigilConfig.Broker()
                        b.clientID = c.broker.clientID + "-sink-" + name
                        if let s = n.scalar?.string {
                            if let (tls, host, port) = parseBrokerURL(s) { b.url = s; b.useTLS = tls; b.host = host; b.port = port }
                            else { ctx.error(n, "broker url '\(s)' — write mqtt://HOST:PORT or mqtts://HOST:PORT") }
                        } else if let bm = ctx.mapping(n, "the sink's broker", allowed: brokerKeys) {
                            parseBroker(bm, &b, &c.fileReferences, &ctx)
                        }
                        broker = b
                    }
                    kind = .mqtt(topic: topic, qos: qos, broker: broker)
                default:
                    ctx.error(tn, "unknown sink type '\(type)' — use log, file, webhook, mqtt, dingtalk, wecom or feishu")
                    continue
                }
                for key in ["path", "url", "secret_file", "language", "topic", "qos", "broker"] where !sinkKeys(of: type).contains(key) {
                    if let n = sm.keyNode(key) { ctx.error(n, "'\(key)' is not a key of a \(type) sink") }
                }
                var sink = VigilConfig.Sink(name: name, kind: kind)
                if let n = sm.node("timeout"), let d = ctx.duration(n, "timeout") { sink.timeout = d }
                if let n = sm.node("concurrency"), let v = ctx.int(n, "concurrency", min: 1) { sink.concurrency = v }
                if let n = sm.node("routes"), let list = ctx.stringList(n, "routes") { sink.routes = list.map(\.0) }
                if let n = sm.node("min_severity"), let s = ctx.string(n, "min_severity") {
                    if let v = Severity(name: s) { sink.minSeverity = v } else { ctx.error(n, "min_severity '\(s)' — use info, minor, major or critical") }
                }
                sinks.append(sink)
            }
            c.dispatch.sinks = sinks
        }
    }

    /// `mqtt://host:port` → (tls, host, port).
    public static func parseBrokerURL(_ s: String) -> (Bool, String, Int)? {
        let tls: Bool
        var rest: Substring
        if s.hasPrefix("mqtt://") { tls = false; rest = s.dropFirst(7) }
        else if s.hasPrefix("mqtts://") { tls = true; rest = s.dropFirst(8) }
        else { return nil }
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

import Foundation
import VigilCore
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
            case chat(vendor: ChatVendor, url: String, secretFile: String?, language: ChatLanguage)
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

/// The group-chat services a `chat` sink speaks to (the sink `type`).
public enum ChatVendor: String, Sendable, CaseIterable { case dingtalk, wecom, feishu }

/// The language of a chat robot's card.
public enum ChatLanguage: String, Sendable { case zh, en }

import Foundation
import Logging
import ServiceLifecycle
import VigilConfig
import VigilCore
import VigilDispatch
import VigilIngest
import VigilMQTT
import VigilRules
import VigilStore

/// `vigil run`: the services of the daemon in one ServiceGroup, which owns
/// SIGTERM and SIGINT. Shutdown runs in reverse order: intake stops first,
/// then dispatch finishes what it has in hand. Everything that can fail at
/// start-up — the state directory, its lock, the state database, secrets,
/// the HTTP port — is checked before any service starts.
public struct Daemon {
    public let setup: Setup
    public let logger: Logger
    public let status = IngestStatus()
    public let gauge = PendingGauge()
    public let metrics = Metrics()

    public init(setup: Setup, logger: Logger) {
        self.setup = setup
        self.logger = logger
    }

    public func run() async throws {
        let config = setup.config
        let lock = try StateDirectoryLock(config.stateDirectory)
        defer { lock.release() }
        // The state database must be vigil's (or new) before anything opens it. Opening it
        // may migrate a large file: that runs on a lane of its own, off the cooperative pool.
        let statePath = config.stateDatabasePath
        let sync: Database.Sync = config.journalSync == .full ? .full : .normal
        try await BlockingLane(label: "vigil.state.open").run { _ = try StateSchema.open(path: statePath, sync: sync) }
        if config.journalSync == .normal {
            logger.warning(
                "journal.sync is normal: a power cut can lose readings the broker was told were received",
                metadata: ["state_dir": .string(config.stateDirectory)])
        }
        let password = try Daemon.readSecret(config.broker.passwordFile, what: "broker.password_file", config: config)
        let sinks = try Daemon.makeSinks(config, logger: logger)
        let metrics = self.metrics
        let dispatcher = Dispatcher(
            databasePath: config.stateDatabasePath, sinks: sinks.map(\.sink),
            retry: RetryPolicy(
                initial: config.dispatch.retryInitial, max: config.dispatch.retryMax,
                maxAge: config.dispatch.retryMaxAge),
            gauge: gauge, logger: logger,
            onOutcomes: { metrics.recordDeliveries(sink: $0, delivered: $1, retried: $2, dead: $3, latencies: $4) })
        let reload = StopFlag()
        let liveness = Liveness(status: status, dispatcher: dispatcher)
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = []
        // Started first, stopped last: the sinks' own connections, then delivery.
        for case let mqtt? in sinks.map(\.service) { services.append(.init(service: mqtt)) }
        services.append(.init(service: DispatchService(dispatcher: dispatcher, logger: logger)))
        services.append(.init(service: WatchdogService(liveness: liveness, logger: logger)))
        let acks = AckInbox()
        if let listen = config.httpListen, let (host, port) = ConfigLoader.parseHostPort(listen) {
            try DeskServer.checkBind(host: host, port: port)
            let token = try Daemon.readSecret(config.httpTokenFile, what: "http.token_file", config: config)
            if let warning = DeskServer.openWarning(host: host, hasToken: !(token ?? "").isEmpty) {
                logger.warning("http listens off loopback without a token", metadata: ["listen": .string(listen), "advice": .string(warning)])
            }
            if let token, token.count < 16 {
                logger.warning(
                    "http token is short", metadata: ["characters": "\(token.count)", "advice": "use at least 16 random characters (openssl rand -hex 16)"])
            }
            let desk = DeskServer(
                config: config, status: status, gauge: gauge, metrics: metrics, liveness: liveness, acks: acks, token: token,
                rates: FeedRates(), absenceRules: Set(setup.ruleSet.rules.filter(\.isAbsence).map(\.name)), logger: logger)
            services.append(.init(service: desk.application(host: host, port: port)))
            logger.notice("http listening", metadata: ["listen": .string(listen), "paths": "/ /api/v1 /metrics /healthz"])
        }
        services.append(.init(service: ReloadService(reload: reload)))
        services.append(
            .init(
                service: IngestService(
                    setup: setup, password: password, logger: logger, gauge: gauge,
                    dispatcher: dispatcher, status: status, reload: reload, metrics: metrics,
                    acks: acks)))
        logger.notice(
            "vigil starting",
            metadata: [
                "version": .string(VigilVersion.current), "config": .string(config.path ?? "(built-in defaults)"),
                "rules": .stringConvertible(setup.ruleSet.rules.count), "channels": .stringConvertible(setup.registry.count),
                "sinks": .string(config.dispatch.sinks.map(\.name).joined(separator: ",")), "state_dir": .string(config.stateDirectory),
                "journal_sync": .string(config.journalSync.rawValue),
            ])
        var groupConfig = ServiceGroupConfiguration(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        groupConfig.maximumGracefulShutdownDuration = .seconds(8)
        let group = ServiceGroup(configuration: groupConfig)
        try await group.run()
        logger.notice("vigil stopped")
    }

    static func makeSinks(_ config: VigilConfig, logger: Logger) throws -> [(sink: any Sink, service: (any Service)?)] {
        var out: [(any Sink, (any Service)?)] = []
        for s in config.dispatch.sinks {
            switch s.kind {
            case .log: out.append((LogSink(name: s.name, logger: logger), nil))
            case .file(let configured):
                let path = config.resolve(configured)
                let dir = (path as NSString).deletingLastPathComponent
                do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
                    throw DaemonError("sink '\(s.name)': cannot create the folder \(dir) for \(path)")
                }
                out.append((FileSink(name: s.name, path: path), nil))
            case .webhook(let url, let secretFile):
                let secret = try readSecret(secretFile, what: "sink '\(s.name)' secret_file", config: config)
                out.append((WebhookSink(name: s.name, url: url, secret: secret, timeout: s.timeout, concurrency: s.concurrency), nil))
            case .chat(let vendor, let url, let secretFile, let language):
                let secret = try readSecret(secretFile, what: "sink '\(s.name)' secret_file", config: config)
                out.append(
                    (
                        ChatSink(
                            name: s.name, vendor: vendor, url: url, secret: secret, timeout: s.timeout,
                            timeZone: TimeZone(identifier: config.timezone) ?? TimeZone(identifier: "UTC")!,
                            language: language), nil
                    ))
            case .mqtt(let topic, let qos, let own):
                // Its own broker, or the ingest broker with a client id of its own.
                let b = own ?? config.broker
                let password = try readSecret(
                    b.passwordFile, what: own == nil ? "broker.password_file" : "sink '\(s.name)' broker.password_file",
                    config: config)
                let clientID = own == nil ? b.clientID + "-sink-" + s.name : b.clientID
                let sink = MQTTSink(
                    name: s.name, template: topic, qos: qos,
                    options: .init(
                        host: b.host, port: b.port, clientID: clientID, cleanSession: false,
                        protocolV5: b.protocolVersion == "5", keepaliveSeconds: Int(b.keepalive / 1000),
                        username: b.username, password: password, useTLS: b.useTLS,
                        caFile: b.tls.caFile.map(config.resolve), certFile: b.tls.certFile.map(config.resolve),
                        keyFile: b.tls.keyFile.map(config.resolve), tlsInsecure: b.tls.insecure,
                        sessionExpirySeconds: UInt32(b.sessionExpiry / 1000)),
                    timeout: s.timeout, logger: logger)
                out.append((sink, MQTTSinkService(sink: sink)))
            }
        }
        return out
    }

    /// Reads a secret (broker password, webhook secret, HTTP token) from a
    /// file, or from a systemd credential (`credential:NAME` in
    /// `$CREDENTIALS_DIRECTORY`). Trailing newlines are dropped. Errors name
    /// the key and the file, never the secret.
    public static func readSecret(_ spec: String?, what: String, config: VigilConfig) throws -> String? {
        guard let spec else { return nil }
        guard let path = config.resolveFile(spec) else {
            throw DaemonError("\(what) \(spec): $CREDENTIALS_DIRECTORY is not set (is LoadCredential= in the unit?)")
        }
        guard let data = FileManager.default.contents(atPath: path), var s = String(data: data, encoding: .utf8) else {
            throw DaemonError("cannot read \(what) \(path): \(FileCheck.unreadable(path) ?? "not UTF-8 text")")
        }
        while s.hasSuffix("\n") || s.hasSuffix("\r") { s.removeLast() }
        return s
    }
}

public struct DaemonError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// One daemon per state directory: an exclusive `flock` on `vigil.lock`,
/// held for the life of the process (the kernel drops it when the process
/// ends, however it ends). A second daemon on the same directory refuses at once.
final class StateDirectoryLock {
    let fd: Int32

    init(_ dir: String) throws {
        do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
            throw DaemonError("state_dir \(dir): cannot create it: \((error as NSError).localizedDescription)")
        }
        let path = dir + "/vigil.lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else {
            throw DaemonError("state_dir \(dir) is not writable (\(String(cString: strerror(errno)))): vigil keeps its state there")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            let holder = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            close(fd)
            throw DaemonError("state_dir \(dir) is in use by another vigil\(holder.isEmpty ? "" : " (pid \(holder))"): one state directory serves one daemon")
        }
        ftruncate(fd, 0)
        let pid = Array("\(getpid())\n".utf8)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        self.fd = fd
    }

    func release() { close(fd) }
}

import Foundation
import Logging
import ServiceLifecycle
import VigilCore
import VigilDispatch
import VigilIngest

/// `vigil run`: the services of the daemon in one ServiceGroup, which owns
/// SIGTERM and SIGINT. Shutdown runs in reverse order: intake stops first,
/// then dispatch finishes what it has in hand.
public struct Daemon {
    public let setup: Setup
    public let logger: Logger
    public let status = IngestStatus()
    public let gauge = PendingGauge()

    public init(setup: Setup, logger: Logger) {
        self.setup = setup
        self.logger = logger
    }

    public let metrics = Metrics()

    public func run() async throws {
        let config = setup.config
        try FileManager.default.createDirectory(atPath: config.stateDirectory, withIntermediateDirectories: true)
        let password = try Daemon.readSecret(config.broker.passwordFile, baseDirectory: config.baseDirectory)
        let sinks = try Daemon.makeSinks(config, logger: logger)
        let metrics = self.metrics
        let dispatcher = Dispatcher(databasePath: config.stateDatabasePath, sinks: sinks,
                                    retry: RetryPolicy(initial: config.dispatch.retryInitial, max: config.dispatch.retryMax,
                                                       maxAge: config.dispatch.retryMaxAge),
                                    gauge: gauge, logger: logger,
                                    onOutcomes: { metrics.recordDeliveries(sink: $0, delivered: $1, retried: $2, dead: $3) })
        // The state database must exist before the dispatch workers open it.
        _ = try StateStore(path: config.stateDatabasePath, sinks: [])
        let reload = StopFlag()
        let ingest = IngestService(setup: setup, password: password, logger: logger, gauge: gauge, dispatcher: dispatcher,
                                   status: status, reload: reload, metrics: metrics)
        let dispatch = DispatchService(dispatcher: dispatcher)
        let liveness = Liveness(status: status, dispatcher: dispatcher)
        let httpStop = StopFlag()
        if let listen = config.httpListen, let (host, port) = ConfigLoader.parseHostPort(listen) {
            let status = self.status, gauge = self.gauge
            let sinkNames = config.dispatch.sinks.map(\.name)
            let endpoint = HTTPEndpoint(host: host, port: port, logger: logger, stop: httpStop) { path in
                switch path {
                case "/metrics":
                    return (200, "text/plain; version=0.0.4; charset=utf-8",
                            metrics.render(connected: status.connected, pending: gauge.perSink, sinks: sinkNames, openIncidents: status.openIncidents))
                case "/healthz":
                    let (ok, reason) = liveness.health(now: Time.now())
                    var o = JSONObject()
                    o.appendUnique("status", .string(ok ? "ok" : "unavailable"))
                    if let reason { o.appendUnique("reason", .string(reason)) }
                    o.appendUnique("broker", .string(status.connected ? "connected" : "disconnected"))
                    o.appendUnique("queue_pending", .number(Double(gauge.pending)))
                    return (ok ? 200 : 503, "application/json", JSONWriter.encode(.object(o)) + "\n")
                default:
                    return (404, "text/plain; charset=utf-8", "not found: try /metrics or /healthz\n")
                }
            }
            try endpoint.start()
        }
        // SIGHUP reloads rules and registry; the ingest loop applies it between batches.
        signal(SIGHUP, SIG_IGN)
        let hup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        hup.setEventHandler { reload.set() }
        hup.resume()
        defer { hup.cancel(); httpStop.set() }
        logger.notice("vigil starting", metadata: [
            "version": .string(VigilVersion.current), "config": .string(config.path ?? "(built-in defaults)"),
            "rules": .stringConvertible(setup.ruleSet.rules.count), "channels": .stringConvertible(setup.registry.count),
            "sinks": .string(config.dispatch.sinks.map(\.name).joined(separator: ",")), "state_dir": .string(config.stateDirectory),
        ])
        let watchdog = WatchdogService(liveness: liveness, logger: logger)
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: dispatch), .init(service: watchdog), .init(service: ingest)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
        logger.notice("vigil stopped")
    }

    static func makeSinks(_ config: VigilConfig, logger: Logger) throws -> [any Sink] {
        var out: [any Sink] = []
        for s in config.dispatch.sinks {
            switch s.type {
            case "log": out.append(LogSink(name: s.name, logger: logger))
            case "file":
                let path = s.path ?? config.resolve("incidents.jsonl")
                let dir = (path as NSString).deletingLastPathComponent
                try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
                out.append(FileSink(name: s.name, path: path))
            case "webhook":
                guard let url = s.url else { throw DaemonError("sink '\(s.name)': webhook needs a url") }
                var secret: String?
                if let file = s.secretFile {
                    guard let text = try readSecret(file, baseDirectory: config.baseDirectory) else {
                        throw DaemonError("sink '\(s.name)': cannot read secret_file \(file)")
                    }
                    secret = text
                }
                out.append(WebhookSink(name: s.name, url: url, secret: secret, timeout: s.timeout, concurrency: s.concurrency))
            case "mqtt":
                let b = config.broker
                let password = try readSecret(b.passwordFile, baseDirectory: config.baseDirectory)
                let sink = MQTTSink(name: s.name, template: s.topic ?? "vigil/incidents/{route}/{severity}", qos: s.qos,
                                    options: .init(host: b.host, port: b.port, clientID: b.clientID + "-sink-" + s.name, cleanSession: false,
                                                   protocolV5: b.protocolVersion == "5", keepaliveSeconds: Int(b.keepalive / 1000),
                                                   username: b.username, password: password, useTLS: b.useTLS,
                                                   caFile: b.tls.caFile.map(config.resolve), certFile: b.tls.certFile.map(config.resolve),
                                                   keyFile: b.tls.keyFile.map(config.resolve), tlsInsecure: b.tls.insecure),
                                    timeout: s.timeout, logger: logger)
                sink.start()
                out.append(sink)
            default:
                throw DaemonError("sink '\(s.name)': unknown type \(s.type)")
            }
        }
        return out
    }

    /// Reads a secret (broker password, webhook secret) from a file, or from a
    /// systemd credential (`credential:NAME` in `$CREDENTIALS_DIRECTORY`). Trailing newlines are dropped.
    public static func readSecret(_ spec: String?, baseDirectory: String) throws -> String? {
        guard let spec else { return nil }
        let path: String
        if spec.hasPrefix("credential:") {
            guard let dir = ProcessInfo.processInfo.environment["CREDENTIALS_DIRECTORY"] else {
                throw DaemonError("password_file \(spec): $CREDENTIALS_DIRECTORY is not set (is LoadCredential= in the unit?)")
            }
            path = dir + "/" + spec.dropFirst("credential:".count)
        } else {
            path = spec.hasPrefix("/") ? spec : baseDirectory + "/" + spec
        }
        guard let data = FileManager.default.contents(atPath: path), var s = String(data: data, encoding: .utf8) else {
            throw DaemonError("cannot read the broker password file \(path)")
        }
        while s.hasSuffix("\n") || s.hasSuffix("\r") { s.removeLast() }
        return s
    }
}

public struct DaemonError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}


/// Ingestion and evaluation, on a thread of its own (it blocks in poll).
struct IngestService: Service {
    let setup: Setup
    let password: String?
    let logger: Logger
    let gauge: PendingGauge
    let dispatcher: Dispatcher
    let status: IngestStatus
    let reload: StopFlag
    let metrics: Metrics
    let stop = StopFlag()

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, Error>) in
                let setup = setup, password = password, logger = logger, gauge = gauge
                let dispatcher = dispatcher, status = status, stop = stop, reload = reload, metrics = metrics
                let thread = Thread {
                    do {
                        let loop = IngestLoop(setup: setup, password: password, logger: logger, gauge: gauge,
                                              dispatcher: dispatcher, status: status, stop: stop, reload: reload, metrics: metrics)
                        try loop.run()
                        c.resume()
                    } catch {
                        logger.critical("ingestion failed", metadata: ["error": .string("\(error)")])
                        c.resume(throwing: error)
                    }
                }
                thread.name = "vigil-ingest"
                thread.start()
            }
        } onGracefulShutdown: {
            SystemdNotifier().notify("STOPPING=1\nSTATUS=stopping: finishing in-flight work")
            stop.set()
        }
    }
}

/// Delivery to the sinks. On shutdown it keeps delivering for a moment so
/// what is in hand goes out; the rest stays queued for the next start.
struct DispatchService: Service {
    let dispatcher: Dispatcher

    func run() async throws {
        let task = Task { await dispatcher.run() }
        await withGracefulShutdownHandler {
            await task.value
        } onGracefulShutdown: {
            Task {
                let deadline = Time.now() + 3000
                while Time.now() < deadline, dispatcher.gauge.pending > 0 {
                    try? await Task.sleep(for: .milliseconds(20))
                }
                task.cancel()
                dispatcher.ring()
            }
        }
    }
}

/// Whether the stages are making progress (or idle but alive).
struct Liveness: Sendable {
    let status: IngestStatus
    let dispatcher: Dispatcher

    /// The ingest loop turns at least once a second; dispatch workers wake at least once a second,
    /// or are inside a delivery bounded by the sink's timeout.
    /// How long the ingest loop may go without turning: 10 s, or the watchdog interval when shorter (at least 2 s).
    static let ingestStall: Millis = {
        guard let w = SystemdNotifier.watchdogInterval() else { return 10_000 }
        let ms = Millis(w.components.seconds * 1000 + w.components.attoseconds / 1_000_000_000_000_000)
        return max(2000, min(10_000, ms))
    }()

    func stagesAlive(now: Millis) -> String? {
        let loopAt = status.values.withLock { $0.lastLoopAt }
        if loopAt > 0, now - loopAt > Liveness.ingestStall { return "ingestion stage not progressing" }
        let beat = dispatcher.heartbeat.load(ordering: .relaxed)
        if beat > 0, now - beat > 30_000 { return "dispatch stage not progressing" }
        return nil
    }

    func health(now: Millis) -> (Bool, String?) {
        if !status.ready { return (false, "starting") }
        if let wedged = stagesAlive(now: now) { return (false, wedged) }
        if !status.connected { return (false, "broker unreachable") }
        return (true, nil)
    }
}

/// Sends `WATCHDOG=1` at half of `$WATCHDOG_USEC`, only while every stage is alive:
/// a wedged stage stops the pings and systemd restarts the daemon.
struct WatchdogService: Service {
    let liveness: Liveness
    let logger: Logger

    func run() async throws {
        let notifier = SystemdNotifier()
        let interval = SystemdNotifier.watchdogInterval()
        let period: Duration = interval.map { $0 / 2 } ?? .seconds(1)
        var warned = false
        while !Task.isShuttingDownGracefully {
            try? await Task.sleep(for: period)
            guard interval != nil, liveness.status.ready else { continue }
            if let wedged = liveness.stagesAlive(now: Time.now()) {
                if !warned { logger.critical("watchdog: not pinging systemd", metadata: ["reason": .string(wedged)]) }
                warned = true
                continue
            }
            warned = false
            notifier.notify("WATCHDOG=1")
        }
    }
}

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

    public func run() async throws {
        let config = setup.config
        try FileManager.default.createDirectory(atPath: config.stateDirectory, withIntermediateDirectories: true)
        let password = try Daemon.readPassword(config.broker.passwordFile, baseDirectory: config.baseDirectory)
        let sinks = try Daemon.makeSinks(config, logger: logger)
        let dispatcher = Dispatcher(databasePath: config.stateDatabasePath, sinks: sinks,
                                    retry: RetryPolicy(initial: config.dispatch.retryInitial, max: config.dispatch.retryMax,
                                                       maxAge: config.dispatch.retryMaxAge),
                                    gauge: gauge, logger: logger)
        // The state database must exist before the dispatch workers open it.
        _ = try StateStore(path: config.stateDatabasePath, sinks: [])
        let ingest = IngestService(setup: setup, password: password, logger: logger, gauge: gauge, dispatcher: dispatcher, status: status)
        let dispatch = DispatchService(dispatcher: dispatcher)
        logger.notice("vigil starting", metadata: [
            "version": .string(VigilVersion.current), "config": .string(config.path ?? "(built-in defaults)"),
            "rules": .stringConvertible(setup.ruleSet.rules.count), "channels": .stringConvertible(setup.registry.count),
            "sinks": .string(config.dispatch.sinks.map(\.name).joined(separator: ",")), "state_dir": .string(config.stateDirectory),
        ])
        let group = ServiceGroup(configuration: .init(
            services: [.init(service: dispatch), .init(service: ingest)],
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
            default:
                throw DaemonError("sink '\(s.name)': type \(s.type) is not available in this build")
            }
        }
        return out
    }

    /// Reads the broker password from a file, or from a systemd credential
    /// (`credential:NAME` in `$CREDENTIALS_DIRECTORY`). Trailing newlines are dropped.
    public static func readPassword(_ spec: String?, baseDirectory: String) throws -> String? {
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

public enum VigilVersion {
    public static let current = "0.1.0"
}

/// Ingestion and evaluation, on a thread of its own (it blocks in poll).
struct IngestService: Service {
    let setup: Setup
    let password: String?
    let logger: Logger
    let gauge: PendingGauge
    let dispatcher: Dispatcher
    let status: IngestStatus
    let stop = StopFlag()

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, Error>) in
                let setup = setup, password = password, logger = logger, gauge = gauge
                let dispatcher = dispatcher, status = status, stop = stop
                let thread = Thread {
                    do {
                        let loop = IngestLoop(setup: setup, password: password, logger: logger, gauge: gauge,
                                              dispatcher: dispatcher, status: status, stop: stop)
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

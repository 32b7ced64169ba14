import Foundation
import Logging
import ServiceLifecycle
import UnixSignals
import VigilConfig
import VigilCore
import VigilDispatch
import VigilIngest
import VigilRules
#if canImport(Glibc)
import Glibc
#endif

/// Ingestion and evaluation, on a thread of its own (it blocks in poll).
/// Graceful shutdown and cancellation both stop the loop, which commits
/// what it holds and lets the PUBACKs go. A failure ends the whole daemon.
struct IngestService: Service, CustomStringConvertible {
    let setup: Setup
    let password: String?
    let logger: Logger
    let gauge: PendingGauge
    let dispatcher: Dispatcher
    let status: IngestStatus
    let reload: StopFlag
    let metrics: Metrics
    let acks: AckInbox
    let stop = StopFlag()

    var description: String { "ingest(\(setup.config.broker.url))" }

    func run() async throws {
        let stop = stop
        try await withTaskCancellationOrGracefulShutdownHandler {
            try await withCheckedThrowingContinuation { (c: CheckedContinuation<Void, Error>) in
                let setup = setup, password = password, logger = logger, gauge = gauge
                let dispatcher = dispatcher, status = status, reload = reload, metrics = metrics, acks = acks
                let thread = Thread {
                    do {
                        let loop = IngestLoop(
                            setup: setup, password: password, logger: logger, gauge: gauge,
                            dispatcher: dispatcher, status: status, stop: stop, reload: reload, metrics: metrics,
                            acks: acks)
                        try loop.run()
                        c.resume()
                    } catch {
                        logger.critical("ingestion failed", metadata: ["error": .string("\(error)")])
                        ShutdownDeadline.arm(seconds: 4.5, exitCode: 1, logger: logger)
                        c.resume(throwing: error)
                    }
                }
                thread.name = "vigil-ingest"
                thread.start()
            }
        } onCancelOrGracefulShutdown: {
            SystemdNotifier().notify("STOPPING=1\nSTATUS=stopping: finishing in-flight work")
            stop.set()
        }
    }
}

/// Delivery to the sinks. On graceful shutdown it keeps delivering for up to
/// 3 s so what is in hand goes out; the rest stays queued for the next start.
struct DispatchService: Service, CustomStringConvertible {
    let dispatcher: Dispatcher
    let logger: Logger

    var description: String { "dispatch(\(dispatcher.sinks.map(\.name).joined(separator: ",")))" }

    func run() async throws {
        let dispatcher = dispatcher
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await dispatcher.run() }
                group.addTask {
                    // Graceful shutdown (or cancellation, which throws): drain briefly, then stop the workers.
                    try await gracefulShutdown()
                    let deadline = Time.monotonicMillis() + 3000
                    while Time.monotonicMillis() < deadline, dispatcher.gauge.pending > 0 {
                        try await Task.sleep(for: .milliseconds(20))
                    }
                    throw CancellationError()
                }
                try await group.next()
                group.cancelAll()
            }
        } catch is CancellationError {
            return
        } catch {
            logger.critical("dispatch failed", metadata: ["error": .string("\(error)")])
            ShutdownDeadline.arm(seconds: 4.5, exitCode: 1, logger: logger)
            throw error
        }
    }
}

/// The MQTT sink's own broker connection, as long as the daemon runs.
struct MQTTSinkService: Service, CustomStringConvertible {
    let sink: MQTTSink
    var description: String { "mqtt-sink(\(sink.name))" }

    func run() async throws {
        let sink = sink
        await withTaskCancellationOrGracefulShutdownHandler {
            await sink.run()
        } onCancelOrGracefulShutdown: {
            sink.shutdown()
        }
    }
}

/// SIGHUP: re-read registry and rules; the ingest loop applies it between batches.
struct ReloadService: Service, CustomStringConvertible {
    let reload: StopFlag
    var description: String { "reload(SIGHUP)" }

    func run() async throws {
        let signals = await UnixSignalsSequence(trapping: .sighup)
        for await _ in signals.cancelOnGracefulShutdown() { reload.set() }
    }
}

/// Whether the stages are making progress (or idle but alive).
struct Liveness: Sendable {
    let status: IngestStatus
    let dispatcher: Dispatcher

    /// How long the ingest loop may go without turning: 10 s, or the watchdog interval when shorter (at least 2 s).
    static let ingestStall: Millis = {
        guard let w = SystemdNotifier.watchdogInterval() else { return 10_000 }
        let ms = Millis(w.components.seconds * 1000 + w.components.attoseconds / 1_000_000_000_000_000)
        return max(2000, min(10_000, ms))
    }()

    /// On the monotonic clock (`Time.monotonicMillis`, as the stages' beats
    /// are): a step of the wall clock is not a stalled stage.
    func stagesAlive(now: Millis = Time.monotonicMillis()) -> String? {
        let loopAt = status.lastLoopAt
        if loopAt > 0, now - loopAt > Liveness.ingestStall { return "ingestion stage not progressing" }
        let beat = dispatcher.heartbeat.load(ordering: .relaxed)
        if beat > 0, now - beat > 30_000 { return "dispatch stage not progressing" }
        return nil
    }

    func health() -> (Bool, String?) {
        if !status.ready { return (false, "starting") }
        if let halted = status.intakeHalted { return (false, halted) }
        if let wedged = stagesAlive() { return (false, wedged) }
        if !status.connected { return (false, "broker unreachable") }
        return (true, nil)
    }
}

/// Sends `WATCHDOG=1` at half of `$WATCHDOG_USEC`, only while every stage is alive:
/// a wedged stage stops the pings and systemd restarts the daemon.
struct WatchdogService: Service, CustomStringConvertible {
    let liveness: Liveness
    let logger: Logger
    var description: String { "watchdog" }

    func run() async throws {
        let notifier = SystemdNotifier()
        let interval = SystemdNotifier.watchdogInterval()
        let period: Duration = interval.map { $0 / 2 } ?? .seconds(1)
        var warned = false
        while !Task.isShuttingDownGracefully && !Task.isCancelled {
            do { try await Task.sleep(for: period) } catch { return }
            guard interval != nil, liveness.status.ready else { continue }
            if let wedged = liveness.stagesAlive() {
                if !warned { logger.critical("watchdog: not pinging systemd", metadata: ["reason": .string(wedged)]) }
                warned = true
                continue
            }
            warned = false
            notifier.notify("WATCHDOG=1")
        }
    }
}

/// A last resort: a stage that cannot stop within its bound must not keep
/// the process alive. `_exit` is safe here: everything that was
/// acknowledged is committed, so this is no worse than a SIGKILL.
enum ShutdownDeadline {
    static func arm(seconds: Double, exitCode: Int32, logger: Logger) {
        let t = Thread {
            Thread.sleep(forTimeInterval: seconds)
            logger.critical("shutdown took too long: exiting", metadata: ["after_s": .stringConvertible(seconds), "exit_code": .stringConvertible(exitCode)])
            _exit(exitCode)
        }
        t.name = "vigil-deadline"
        t.start()
    }
}

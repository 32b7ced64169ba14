import Logging
import Synchronization
import VigilCore
import VigilStore

/// Delivers queued events to every sink, each from its own worker, so a slow
/// or dead sink never holds up another.
public final class Dispatcher: Sendable {
    public let databasePath: String
    public let sinks: [any Sink]
    public let retry: RetryPolicy
    public let gauge: PendingGauge
    public let bells: [String: Doorbell]
    let logger: Logger
    let batchSize: Int
    /// Called after each batch with (sink, delivered, retried, dead, seconds from commit to delivery of each delivered event).
    let onOutcomes: @Sendable (String, Int, Int, Int, [Double]) -> Void
    /// The last time any worker turned its loop (ms): the watchdog's sign of life.
    public let heartbeat = Atomic<Int64>(0)

    public init(databasePath: String, sinks: [any Sink], retry: RetryPolicy, gauge: PendingGauge, logger: Logger, batchSize: Int = 256,
                onOutcomes: @escaping @Sendable (String, Int, Int, Int, [Double]) -> Void = { _, _, _, _, _ in }) {
        self.onOutcomes = onOutcomes
        self.databasePath = databasePath
        self.sinks = sinks
        self.retry = retry
        self.gauge = gauge
        self.logger = logger
        self.batchSize = batchSize
        var b: [String: Doorbell] = [:]
        for s in sinks { b[s.name] = Doorbell() }
        self.bells = b
    }

    /// Wakes every worker: new events were committed.
    public func ring() { for b in bells.values { b.ring() } }

    /// Runs until the task is cancelled; throws when a sink cannot open the queue at all.
    public func run() async throws {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for sink in sinks {
                group.addTask { try await self.work(sink) }
            }
            try await group.waitForAll()
        }
    }

    /// The state database refused an update (a full disk, an I/O error): wait
    /// longer each time, up to 30 s, and say so once a minute — never spin.
    struct StoreTrouble {
        var failures = 0
        var lastLogged: Millis = -60_000
        mutating func failed(_ logger: Logger, sink: String, _ what: String, _ error: Error) -> Int {
            failures += 1
            let now = Time.monotonicMillis()
            if now - lastLogged >= 60_000 {
                lastLogged = now
                logger.error("\(what) failed", metadata: ["sink": .string(sink), "error": .string("\(error)"),
                                                       "failures": .stringConvertible(failures), "retry_in": .string(Units.formatDuration(delay))])
            }
            return Int(delay)
        }
        var delay: Millis { min(30_000, 250 << min(failures, 7)) }
        mutating func recovered() { failures = 0 }
    }

    func work(_ sink: any Sink) async throws {
        let bell = bells[sink.name]!
        let cursor: SinkCursor
        do {
            cursor = try SinkCursor(db: try Database(path: databasePath), sink: sink.name)
        } catch {
            throw DispatchError(description: "sink '\(sink.name)' cannot open the queue in \(databasePath): \(error)")
        }
        var lastResync: Millis = 0
        // A dead receiver fails every event on every round: log a few lines a second, then a count.
        var failureLog = RateLimiter(perSecond: 5)
        var trouble = StoreTrouble()
        while !Task.isCancelled {
            let now = Time.now()
            heartbeat.store(now, ordering: .relaxed)
            // Keep the backlog gauge true to the database (`vigil queue retry` changes it from outside).
            if now - lastResync >= 5000, let n = try? cursor.pendingCount() {
                gauge.set(sink.name, n)
                lastResync = now
            }
            let batch: [EventQueue.Pending]
            do {
                batch = try cursor.nextBatch(now: now, limit: batchSize)
            } catch {
                await bell.wait(timeoutMs: trouble.failed(logger, sink: sink.name, "queue read", error))
                continue
            }
            if batch.isEmpty {
                var timeout = 1000
                if let due = try? cursor.earliestDue(), due > now { timeout = Int(min(Millis(timeout), due - now)) }
                await bell.wait(timeoutMs: timeout)
                continue
            }
            let outcomes = await sink.deliver(batch)
            let done = Time.now()
            var delivered: [EventQueue.Pending] = []
            var finished = 0
            var retried = 0, died = 0
            var storeFailed: Error?
            for (p, outcome) in zip(batch, outcomes) {
                switch outcome {
                case .delivered:
                    delivered.append(p)
                case .retry(let reason, let retryAfter):
                    if done - p.createdAt >= retry.maxAge {
                        markDead(cursor, p, "gave up after \(Units.formatDuration(retry.maxAge)): \(reason)", sink.name, done)
                        finished += 1
                        died += 1
                    } else {
                        retried += 1
                        let at = done + retry.delay(afterAttempts: p.attempts, retryAfter: retryAfter)
                        do { try cursor.retry(p, at: at, error: reason, now: done) } catch {
                            storeFailed = error
                        }
                        failureLog.admit(now: done) { suppressed in
                            var meta: Logger.Metadata = [
                                "sink": .string(sink.name), "event_id": .string(p.eventID), "attempt": .stringConvertible(p.attempts + 1),
                                "retry_in": .string(Units.formatDuration(at - done)), "error": .string(reason),
                            ]
                            if let suppressed { meta["suppressed"] = .stringConvertible(suppressed) }
                            logger.warning("delivery failed, will retry", metadata: meta)
                        }
                    }
                case .permanent(let reason):
                    markDead(cursor, p, reason, sink.name, done)
                    finished += 1
                    died += 1
                }
            }
            if !delivered.isEmpty {
                do {
                    try cursor.delivered(delivered, now: done)
                    finished += delivered.count
                } catch {
                    storeFailed = error
                }
            }
            if let storeFailed {
                // Delivered but not marked: the events go out again later (receivers deduplicate on event_id).
                await bell.wait(timeoutMs: trouble.failed(logger, sink: sink.name, "queue update", storeFailed))
            } else {
                trouble.recovered()
            }
            if let n = failureLog.flush(now: done) {
                logger.warning("delivery failures suppressed", metadata: ["sink": .string(sink.name), "suppressed": .stringConvertible(n)])
            }
            gauge.subtract(sink.name, finished)
            onOutcomes(sink.name, finished - died, retried, died, delivered.map { Double(max(0, done - $0.createdAt)) / 1000 })
        }
    }

    func markDead(_ cursor: SinkCursor, _ p: EventQueue.Pending, _ reason: String, _ sink: String, _ now: Millis) {
        do { try cursor.dead(p, error: reason, now: now) } catch {
            logger.warning("queue update failed", metadata: ["sink": .string(sink), "error": .string("\(error)")])
            return
        }
        logger.error("delivery dead", metadata: ["sink": .string(sink), "event_id": .string(p.eventID),
                                                   "incident_id": .string(p.incidentID), "error": .string(reason)])
    }
}

public struct DispatchError: Error, CustomStringConvertible {
    public let description: String
}

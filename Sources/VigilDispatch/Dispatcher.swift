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
    /// The last time any worker turned its loop (ms, monotonic clock): the watchdog's sign of life.
    public let heartbeat = Atomic<Int64>(0)

    public init(
        databasePath: String, sinks: [any Sink], retry: RetryPolicy, gauge: PendingGauge, logger: Logger, batchSize: Int = 256,
        onOutcomes: @escaping @Sendable (String, Int, Int, Int, [Double]) -> Void = { _, _, _, _, _ in }
    ) {
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
                logger.error(
                    "\(what) failed",
                    metadata: [
                        "sink": .string(sink), "error": .string("\(error)"),
                        "failures": .stringConvertible(failures), "retry_in": .string(Units.formatDuration(delay)),
                    ])
            }
            return Int(delay)
        }
        var delay: Millis { Dispatcher.storeRetry.ceiling(afterAttempts: failures) }
        mutating func recovered() { failures = 0 }
    }

    /// How soon a sink tries the queue again after its database calls failed.
    static let storeRetry = Backoff(initial: 250, max: 30_000)

    /// What a delivered batch changes in the queue.
    struct Settlement: Sendable {
        var delivered: [EventQueue.Pending] = []
        var retries: [(EventQueue.Pending, at: Millis, reason: String)] = []
        var dead: [(EventQueue.Pending, reason: String)] = []
    }

    /// One sink's worker. Its queue statements run on a lane of their own
    /// (`BlockingLane`), never on the cooperative pool its deliveries use.
    func work(_ sink: any Sink) async throws {
        let bell = bells[sink.name]!
        let lane = BlockingLane(label: "vigil.queue." + sink.name)
        let cursor: SinkCursor
        do {
            let path = databasePath, name = sink.name
            cursor = try await lane.run { try SinkCursor(db: try Database(path: path), sink: name) }
        } catch {
            throw DispatchError(description: "sink '\(sink.name)' cannot open the queue in \(databasePath): \(error)")
        }
        var lastResync: Millis = 0
        // A dead receiver fails every event on every round: log a few lines a second, then a count.
        var failureLog = RateLimiter(perSecond: 5)
        var trouble = StoreTrouble()
        let limit = batchSize
        while !Task.isCancelled {
            let now = Time.now()
            heartbeat.store(Time.monotonicMillis(), ordering: .relaxed)
            // Keep the backlog gauge true to the database (`vigil queue retry` changes it from outside).
            if now - lastResync >= 5000, let n = try? await lane.run({ try cursor.pendingCount() }) {
                gauge.set(sink.name, n)
                lastResync = now
            }
            let batch: [EventQueue.Pending]
            let due: Millis?
            do {
                (batch, due) = try await lane.run {
                    let batch = try cursor.nextBatch(now: now, limit: limit)
                    return (batch, batch.isEmpty ? try? cursor.earliestDue() : nil)
                }
            } catch {
                await bell.wait(timeoutMs: trouble.failed(logger, sink: sink.name, "queue read", error))
                continue
            }
            if batch.isEmpty {
                var timeout = 1000
                if let due, due > now { timeout = Int(min(Millis(timeout), due - now)) }
                await bell.wait(timeoutMs: timeout)
                continue
            }
            let outcomes = await sink.deliver(batch)
            let done = Time.now()
            var settled = Settlement()
            for (p, outcome) in zip(batch, outcomes) {
                switch outcome {
                case .delivered:
                    settled.delivered.append(p)
                case .retry(let reason, let retryAfter):
                    if done - p.createdAt >= retry.maxAge {
                        settled.dead.append((p, "gave up after \(Units.formatDuration(retry.maxAge)): \(reason)"))
                    } else {
                        let at = done + retry.delay(afterAttempts: p.attempts, retryAfter: retryAfter)
                        settled.retries.append((p, at, reason))
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
                    settled.dead.append((p, reason))
                }
            }
            let result = await lane.run { [settled] in Dispatcher.settle(settled, cursor, now: done) }
            for (p, reason) in result.dead {
                logger.error(
                    "delivery dead",
                    metadata: [
                        "sink": .string(sink.name), "event_id": .string(p.eventID),
                        "incident_id": .string(p.incidentID), "error": .string(reason),
                    ])
            }
            if let storeFailed = result.error {
                // Delivered but not marked: the events go out again later (receivers deduplicate on event_id).
                await bell.wait(timeoutMs: trouble.failed(logger, sink: sink.name, "queue update", storeFailed))
            } else {
                trouble.recovered()
            }
            if let n = failureLog.flush(now: done) {
                logger.warning("delivery failures suppressed", metadata: ["sink": .string(sink.name), "suppressed": .stringConvertible(n)])
            }
            let died = result.dead.count
            gauge.subtract(sink.name, result.delivered + died)
            onOutcomes(
                sink.name, result.delivered, settled.retries.count, died,
                result.delivered > 0 ? settled.delivered.map { Double(max(0, done - $0.createdAt)) / 1000 } : [])
        }
    }

    /// Writes a batch's outcomes to the queue (on the sink's lane). Returns how
    /// many were marked delivered, the dead ones marked, and the first failure.
    static func settle(_ s: Settlement, _ cursor: SinkCursor, now: Millis)
        -> (delivered: Int, dead: [(EventQueue.Pending, reason: String)], error: (any Error & Sendable)?)
    {
        var failure: (any Error & Sendable)?
        var dead: [(EventQueue.Pending, reason: String)] = []
        for (p, at, reason) in s.retries {
            do { try cursor.retry(p, at: at, error: reason, now: now) } catch { failure = failure ?? SettleError("\(error)") }
        }
        for (p, reason) in s.dead {
            do { try cursor.dead(p, error: reason, now: now); dead.append((p, reason)) } catch { failure = failure ?? SettleError("\(error)") }
        }
        var delivered = 0
        if !s.delivered.isEmpty {
            do {
                try cursor.delivered(s.delivered, now: now)
                delivered = s.delivered.count
            } catch {
                failure = failure ?? SettleError("\(error)")
            }
        }
        return (delivered, dead, failure)
    }
}

/// A queue update that failed, as text (it crosses from the lane back to the worker).
struct SettleError: Error, CustomStringConvertible, Sendable {
    let description: String
    init(_ d: String) { description = d }
}

public struct DispatchError: Error, CustomStringConvertible {
    public let description: String
}

import Synchronization

/// Wakes a waiting worker: the producer rings after each commit, the worker
/// waits with a timeout. A ring while nobody waits is remembered once. A
/// wait's timeout wakes only that wait: it never rings the bell, so an
/// expired or cancelled timer cannot make the next wait return at once.
public final class Doorbell: Sendable {
    private struct State {
        var rung = false
        var waiter: CheckedContinuation<Void, Never>?
        /// Which wait is current, and whether its timeout passed before it began waiting.
        var generation: UInt64 = 0
        var expired: UInt64 = 0
    }
    private let state = Mutex(State())

    public init() {}

    public func ring() {
        let w: CheckedContinuation<Void, Never>? = state.withLock { s in
            if let w = s.waiter { s.waiter = nil; return w }
            s.rung = true
            return nil
        }
        w?.resume()
    }

    /// Returns when rung, after `timeoutMs`, or at once if rung since the last wait.
    public func wait(timeoutMs: Int) async {
        let g: UInt64 = state.withLock { s in
            s.generation &+= 1
            return s.generation
        }
        let timer = Task { [weak self] in
            do { try await Task.sleep(for: .milliseconds(max(1, timeoutMs))) } catch { return }
            self?.expire(g)
        }
        defer { timer.cancel() }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let resumeNow: Bool = state.withLock { s in
                    if s.rung || s.expired == g || Task.isCancelled { s.rung = false; return true }
                    if let old = s.waiter { s.waiter = nil; old.resume() }
                    s.waiter = c
                    return false
                }
                if resumeNow { c.resume() }
            }
        } onCancel: {
            // A cancelled worker stops waiting at once.
            expire(g)
        }
    }

    private func expire(_ g: UInt64) {
        let w: CheckedContinuation<Void, Never>? = state.withLock { s in
            guard s.generation == g else { return nil }
            guard let w = s.waiter else { s.expired = g; return nil }
            s.waiter = nil
            return w
        }
        w?.resume()
    }
}

/// Undelivered events per sink; the evaluation stage reads the largest to
/// decide whether to take more readings.
public final class PendingGauge: Sendable {
    private let counts = Mutex<[String: Int]>([:])

    public init() {}

    public func set(_ values: [String: Int]) { counts.withLock { $0 = values } }
    public func set(_ sink: String, _ n: Int) { counts.withLock { $0[sink] = n } }
    public func add(_ sink: String, _ n: Int) { counts.withLock { $0[sink, default: 0] += n } }
    public func add(_ values: [String: Int]) { counts.withLock { for (k, v) in values { $0[k, default: 0] += v } } }
    public func subtract(_ sink: String, _ n: Int) { counts.withLock { $0[sink] = max(0, ($0[sink] ?? 0) - n) } }
    /// Undelivered events: the backlog of the sink furthest behind.
    public var pending: Int { counts.withLock { $0.values.max() ?? 0 } }
    public var perSink: [String: Int] { counts.withLock { $0 } }
}

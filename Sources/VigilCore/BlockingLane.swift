import Dispatch

/// A serial lane for blocking work — SQLite statements, `write` and `fsync` —
/// so it never occupies a thread of Swift's cooperative pool, where the
/// deliveries, the HTTP clients and the API run. Each call hops to the lane's
/// thread and back; work on one lane runs in order, one call at a time.
public final class BlockingLane: Sendable {
    let queue: DispatchQueue

    public init(label: String) {
        queue = DispatchQueue(label: label, qos: .userInitiated)
    }

    public func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { c in
            queue.async { c.resume(with: Result { try body() }) }
        }
    }

    public func run<T: Sendable>(_ body: @escaping @Sendable () -> T) async -> T {
        await withCheckedContinuation { c in
            queue.async { c.resume(returning: body()) }
        }
    }
}

import VigilCore

/// When a failed delivery is tried again: `Backoff` with full jitter between
/// `initial` and `max`; after `maxAge` an event is dead.
public struct RetryPolicy: Sendable {
    public var backoff: Backoff
    public var maxAge: Millis

    public init(initial: Millis, max: Millis, maxAge: Millis) {
        backoff = Backoff(initial: initial, max: max, jitter: true)
        self.maxAge = maxAge
    }

    /// The delay before attempt `attempts + 1`: uniform in [initial, min(max, initial·2^attempts)],
    /// and never sooner than a receiver's `Retry-After`.
    public func delay(afterAttempts attempts: Int, retryAfter: Millis? = nil, random: (ClosedRange<Millis>) -> Millis = { Millis.random(in: $0) }) -> Millis {
        let jittered = backoff.delay(afterAttempts: attempts, random: random)
        if let retryAfter { return Swift.max(jittered, retryAfter) }
        return jittered
    }
}

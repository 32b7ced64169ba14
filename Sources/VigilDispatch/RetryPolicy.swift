import VigilCore

/// Exponential backoff with full jitter between `initial` and `max`; after
/// `maxAge` an event is dead.
public struct RetryPolicy: Sendable {
    public var initial: Millis
    public var max: Millis
    public var maxAge: Millis

    public init(initial: Millis, max: Millis, maxAge: Millis) {
        self.initial = initial; self.max = max; self.maxAge = maxAge
    }

    /// The delay before attempt `attempts + 1`: uniform in [initial, min(max, initial·2^attempts)].
    public func delay(afterAttempts attempts: Int, retryAfter: Millis? = nil, random: (ClosedRange<Millis>) -> Millis = { Millis.random(in: $0) }) -> Millis {
        let shift = Swift.min(attempts, 40)
        let ceiling = Swift.min(max, initial.multipliedReportingOverflow(by: 1 << shift).overflow ? max : initial << shift)
        let jittered = random(Swift.min(initial, ceiling)...Swift.max(initial, ceiling))
        if let retryAfter { return Swift.max(jittered, retryAfter) }
        return jittered
    }
}

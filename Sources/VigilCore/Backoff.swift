/// Exponential backoff, the one vigil uses everywhere it tries again: the
/// broker connection, the MQTT sink's connection, a state commit held by a
/// full disk, deliveries. Attempt 0 waits `initial`; each further attempt
/// doubles it, up to `max`. With `jitter` ("full jitter"), each delay is
/// uniform between `initial` and that ceiling, so that many clients (or
/// sinks) that failed together do not retry together.
public struct Backoff: Sendable, Equatable {
    public var initial: Millis
    public var max: Millis
    public var jitter: Bool

    public init(initial: Millis, max: Millis, jitter: Bool = false) {
        self.initial = initial
        self.max = Swift.max(initial, max)
        self.jitter = jitter
    }

    /// The ceiling after `attempts` failed attempts: min(max, initial·2^attempts).
    public func ceiling(afterAttempts attempts: Int) -> Millis {
        let shift = Swift.min(Swift.max(attempts, 0), 40)
        let (scaled, overflow) = initial.multipliedReportingOverflow(by: 1 << shift)
        return overflow ? max : Swift.min(max, scaled)
    }

    /// The wait before the next attempt, after `attempts` failed ones.
    public func delay(afterAttempts attempts: Int, random: (ClosedRange<Millis>) -> Millis = { Millis.random(in: $0) }) -> Millis {
        let top = ceiling(afterAttempts: attempts)
        return jitter ? random(Swift.min(initial, top)...Swift.max(initial, top)) : top
    }
}

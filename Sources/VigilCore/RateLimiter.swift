/// At most `perSecond` lines a second of one kind; then one line a second
/// that says how many were suppressed.
public struct RateLimiter: Sendable {
    let perSecond: Int
    var windowStart: Millis = 0
    var inWindow = 0
    public private(set) var suppressed = 0

    public init(perSecond: Int) { self.perSecond = perSecond }

    public enum Decision { case log, logWithSuppressed(Int), drop }

    public mutating func decide(now: Millis) -> Decision {
        if now - windowStart >= 1000 {
            windowStart = now
            inWindow = 0
        }
        if inWindow < perSecond {
            inWindow += 1
            if suppressed > 0 {
                let n = suppressed
                suppressed = 0
                return .logWithSuppressed(n)
            }
            return .log
        }
        suppressed += 1
        return .drop
    }

    /// Runs `emit` when a line may be written, passing how many were suppressed before it (nil: none).
    public mutating func admit(now: Millis, _ emit: (Int?) -> Void) {
        switch decide(now: now) {
        case .log: emit(nil)
        case .logWithSuppressed(let n): emit(n)
        case .drop: break
        }
    }

    /// A summary owed for lines dropped in an earlier second, if any.
    public mutating func flush(now: Millis) -> Int? {
        guard suppressed > 0, now - windowStart >= 1000 else { return nil }
        let n = suppressed
        suppressed = 0
        windowStart = now
        inWindow = 1
        return n
    }
}

import VigilCore

/// The clock rules of SPEC §4 ("Time"): for each record, where the engine's
/// clock goes before the record is taken. The daemon, `vigil replay`,
/// `vigil test` and crash recovery all ask this one type, so they agree.
///
/// - A timely reading moves the clock to its arrival time.
/// - A late reading (device time more than `lateAfter` and at most
///   `maxDelay` before arrival) is taken at its device time, or at the clock
///   if that is later, and holds the clock there: a backlog plays out in
///   device time.
/// - A record that arrives `lateAfter` or more after the previous one first
///   moves the clock to its own arrival time (the catch-up by idleness).
/// - While the clock is held, dead letters, marks and acknowledgements do not
///   move it; otherwise they move it to their arrival time.
/// - Between a `lost` and the next `connected` mark the clock stands still.
///   `connected` does not move it, and holds it until the first timely
///   reading (or idleness): the broker's backlog comes first.
public struct Timeline: Sendable, Equatable {
    public var lateAfter: Millis
    public var maxDelay: Millis
    /// A backlog (or the end of an outage) holds the clock back.
    public private(set) var held = false
    /// Between a `lost` and the next `connected` mark.
    public private(set) var blind = false
    /// Arrival time of the last record taken.
    public private(set) var lastArrival: Millis?

    /// What a record is, as far as the clock is concerned.
    public enum Record: Sendable, Equatable {
        /// A message that became a reading; `deviceTime` when the payload carries a parseable one.
        case reading(deviceTime: Millis?)
        /// A message that did not become a reading, or an acknowledgement.
        case other
        case lost
        case connected
    }

    public init(lateAfter: Millis = 10_000, maxDelay: Millis = 86_400_000) {
        self.lateAfter = lateAfter
        self.maxDelay = maxDelay
    }

    /// Whether a reading with this device time, arriving at `arrival`, is late.
    public func isLate(deviceTime: Millis?, arrival: Millis) -> Bool {
        guard let d = deviceTime else { return false }
        let age = arrival - d
        return age > lateAfter && age <= maxDelay
    }

    /// Takes one record arriving at `arrival` while the engine's clock reads
    /// `clock`. Returns the time to move the clock to (firing the timers due
    /// by then) and to take the record at, or nil when the clock stays where it is.
    public mutating func take(_ record: Record, arrival: Millis, clock: Millis) -> Millis? {
        defer { lastArrival = arrival }
        if record == .connected {
            if blind {
                blind = false
                held = true
            }
            return nil
        }
        if blind { return nil }  // the clock stands still; only acknowledgements (and a repeated `lost`) come here
        var floor = clock
        var caughtUp = false
        if let last = lastArrival, arrival - last >= lateAfter {
            floor = max(floor, arrival)
            caughtUp = true
            held = false
        }
        switch record {
        case .reading(let deviceTime):
            if isLate(deviceTime: deviceTime, arrival: arrival), let d = deviceTime {
                held = true
                return max(d, floor)
            }
            held = false
            return max(arrival, floor)
        case .other:
            if held { return caughtUp ? floor : nil }
            return max(arrival, floor)
        case .lost:
            blind = true
            if held { return caughtUp ? floor : nil }
            return max(arrival, floor)
        case .connected:
            return nil
        }
    }

    /// The daemon between records: whether the clock may follow the wall clock
    /// now (fire the timers due by `wall`). Not while blind; while held, only
    /// once no record has arrived for `lateAfter`, which ends the hold.
    public mutating func followsWall(_ wall: Millis) -> Bool {
        if blind { return false }
        if held {
            guard let last = lastArrival, wall - last >= lateAfter else { return false }
            held = false
        }
        return true
    }

    /// The state a checkpoint keeps.
    public var saved: (held: Bool, blind: Bool, lastArrival: Millis?) { (held, blind, lastArrival) }

    public mutating func restore(held: Bool, blind: Bool, lastArrival: Millis?) {
        self.held = held
        self.blind = blind
        self.lastArrival = lastArrival
    }
}

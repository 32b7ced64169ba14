// RuleEngine: blind time — broker outages, and the connected time absence rules count in.

import VigilCore

extension RuleEngine {
    // MARK: - Blind time

    /// The broker connection was lost at `t`: the clock stands still until
    /// `brokerConnected`, and silence does not count meanwhile.
    public mutating func brokerLost(at t: Millis) {
        if !started { start(at: t) }
        guard blindSince == nil else { return }
        blindSince = max(t, now)
    }

    /// The connection is back at `t`. The clock does not move; the outage is
    /// left out of every absence rule's silence.
    public mutating func brokerConnected(at t: Millis) {
        guard let s = blindSince else { return }
        blindSince = nil
        if t > s { blindAhead.append((s, t)) }
    }

    /// Between `brokerLost` and `brokerConnected`.
    public var isBlind: Bool { blindSince != nil }

    /// Connected time at clock time `t`: `t` less the blind time before it.
    func connectedTime(_ t: Millis) -> Millis {
        var k = t - blindBefore
        for (s, e) in blindAhead where t > s { k -= min(t, e) - s }
        return k
    }

    /// The earliest clock time whose connected time is `k`.
    func clockTime(connected k: Millis) -> Millis {
        var t = k + blindBefore
        for (s, e) in blindAhead where t > s { t += e - s }
        return t
    }

    mutating func foldBlindTime() {
        while let first = blindAhead.first, first.end <= now {
            blindBefore += first.end - first.start
            blindAhead.removeFirst()
        }
    }
}

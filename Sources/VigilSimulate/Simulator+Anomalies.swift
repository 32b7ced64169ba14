// Simulator: placing anomalies on channels and scheduling the messages that play them out.

import VigilCore

extension Simulator {
    /// How long before the end an anomaly must start to become an incident in time.
    func margin(_ kind: AnomalyKind) -> Double {
        switch kind {
        case .overheat: 40_000
        case .overcurrent: 15_000
        case .deniedBurst: 50_000
        case .silent: Double(options.silence)
        default: 2000
        }
    }

    mutating func freeChannel(for kind: AnomalyKind, now: Double) -> Int? {
        guard let pool = pools[kind] else { return nil }
        func free(_ i: Int) -> Bool { kind == .malformed || (states[i].busyUntil <= now && states[i].silentUntil <= now) }
        for _ in 0..<16 {
            let i = pool[rng.below(pool.count)]
            if free(i) { return i }
        }
        let from = rng.below(pool.count)
        for k in 0..<pool.count where free(pool[(from + k) % pool.count]) { return pool[(from + k) % pool.count] }
        return nil
    }

    mutating func schedule(_ action: Action, on i: Int, at due: Double) {
        let u = Urgent(due: due, seq: urgentSeq, channel: i, action: action)
        urgentSeq += 1
        let pos = urgent.firstIndex { ($0.due, $0.seq) > (u.due, u.seq) } ?? urgent.count
        urgent.insert(u, at: pos)
    }

    /// Sets the anomaly going; returns how long it stays active.
    mutating func begin(_ kind: AnomalyKind, on i: Int, now: Double, reason: inout String?) -> Double {
        switch kind {
        case .overheat:
            states[i].hotStart = now
            states[i].hotUntil = now + 45_000
            schedule(.telemetry, on: i, at: now)
            return 90_000
        case .overcurrent:
            states[i].overUntil = now + 20_000
            schedule(.telemetry, on: i, at: now)
            return 20_000
        case .fireAlarm:
            return episode(.alarm, then: .reset, after: 20_000..<40_000, on: i, now: now)
        case .panelFault:
            return episode(.fault, then: .faultCleared, after: 30_000..<60_000, on: i, now: now)
        case .ebike:
            schedule(.ebike, on: i, at: now)
            return 0
        case .fallingObject:
            schedule(.fallingObject, on: i, at: now)
            return 0
        case .deniedBurst:
            var t = now
            for _ in 0..<6 {
                schedule(.denied, on: i, at: t)
                t += rng.uniform(4000, 8000)
            }
            return t - now
        case .doorForced:
            schedule(.forced, on: i, at: now)
            return 0
        case .doorHeld:
            return episode(.held, then: .doorClosed, after: 20_000..<40_000, on: i, now: now)
        case .offline:
            let back = episode(.offline, then: .online, after: 20_000..<30_000, on: i, now: now)
            states[i].silentUntil = now + back
            return back
        case .silent:
            states[i].silentUntil = now + Double(options.silence)
            return Double(options.silence)
        case .malformed:
            let variant = rng.below(Simulator.malformedReasons.count)
            reason = Simulator.malformedReasons[variant]
            schedule(.malformed(variant), on: i, at: now)
            return 0
        }
    }

    /// An anomaly that starts now and ends with a second message a random time later; returns that time.
    mutating func episode(_ first: Action, then last: Action, after: Range<Double>, on i: Int, now: Double) -> Double {
        let end = rng.uniform(after.lowerBound, after.upperBound)
        schedule(first, on: i, at: now)
        schedule(last, on: i, at: now + end)
        return end
    }

    /// The malformed payloads' dead-letter reasons, by variant.
    static let malformedReasons = ["invalid_json", "not_object", "invalid_utf8", "too_deep"]
}

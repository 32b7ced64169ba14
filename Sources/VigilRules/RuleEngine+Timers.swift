// RuleEngine: timers firing (holds, windows, clears, reminders) and re-arming a key's deadline.

import VigilCore

extension RuleEngine {
    // MARK: - Timers

    /// A timer of a threshold or count key fired at `t` (or an absence incident's reminder).
    mutating func fire(_ r: Int, _ keyText: String, at t: Millis, _ out: inout [IncidentEvent]) {
        let rule = rules[r]
        if rule.isAbsence {
            for slot in absence[r].slots(key: keyText) {
                guard var inc = absence[r][open: slot], let due = inc.nextReminder(rule), due <= t else { continue }
                remind(r, &inc, at: t, &out)
                absence[r][open: slot] = inc
                if let next = inc.nextReminder(rule) { heap.push(TimerEntry(due: next, rule: r, key: keyText)) }
            }
            return
        }
        guard var st = states[r].removeValue(forKey: keyText) else { return }
        st.armed = nil
        if var inc = st.incident {
            if let after = rule.clearAfter, inc.lastMatchAt + after <= t {
                resolve(r, &inc, at: t, reading: nil, &out)
                return
            }
            if let runStart = inc.clearRunStart, rule.clearFor > 0, runStart + rule.clearFor <= t {
                resolve(r, &inc, at: t, reading: inc.clearRunReading, &out)
                return
            }
            // A reminder due at the instant the incident resolves is not sent: resolution comes first.
            if let due = inc.nextReminder(rule), due <= t {
                remind(r, &inc, at: t, &out)
                st.incident = inc
            }
        } else {
            switch rule.kind {
            case .threshold(let hold):
                if let start = st.runStart, hold > 0, start + hold <= t, let reading = st.runReading {
                    guard open(r, keyText, &st, startedAt: start, at: start + hold, count: st.runCount, reading: reading, &out) else { return }
                }
            case .count(_, let within):
                st.window.removeAll { t - $0 >= within }
                if st.window.isEmpty { return }
            case .absence:
                break
            }
        }
        rearm(r, keyText, &st)
        states[r][keyText] = st
    }

    /// Makes sure the key's earliest deadline has a heap entry.
    mutating func rearm(_ r: Int, _ keyText: String, _ st: inout KeyState) {
        let rule = rules[r]
        var due: Millis?
        func consider(_ d: Millis) { if due == nil || d < due! { due = d } }
        // Fields through the optional, not a copy of the incident: this runs for every reading of an open key.
        if st.incident != nil {
            if let after = rule.clearAfter, let last = st.incident?.lastMatchAt { consider(last + after) }
            if rule.clearFor > 0, let runStart = st.incident?.clearRunStart { consider(runStart + rule.clearFor) }
            if let remind = st.incident?.nextReminder(rule) { consider(remind) }
        } else {
            switch rule.kind {
            case .threshold(let hold): if let s = st.runStart, hold > 0 { consider(s + hold) }
            case .count(_, let within): if let first = st.window.first { consider(first + within) }
            case .absence: break
            }
        }
        guard let d = due else { return }
        if let armed = st.armed, armed <= d { return }  // an earlier entry will fire and re-arm
        st.armed = d
        heap.push(TimerEntry(due: d, rule: r, key: keyText))
    }
}

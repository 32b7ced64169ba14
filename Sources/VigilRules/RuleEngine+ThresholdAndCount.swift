// RuleEngine: readings for threshold and count rules, and for their keys with an open incident.

import VigilCore

extension RuleEngine {
    // MARK: - Threshold

    mutating func processThreshold(
        _ r: Int, hold: Millis, _ reading: Reading, _ ctx: EvalContext, _ t: Millis,
        _ keys: inout KeyCache, _ out: inout [IncidentEvent]
    ) {
        let rule = rules[r]
        let when = rule.when?.truth(ctx)
        // Nothing pending or open anywhere: only a true `when` matters.
        if states[r].isEmpty, when != true { return }
        // A reading on which every condition is unknown changes nothing.
        if when == nil, rule.clearWhen?.truth(ctx) == nil { return }
        stepKey(r, when: when, ctx, &keys) { engine, st, keyText in
            engine.thresholdStep(r, hold: hold, when: when, &st, keyText, reading, ctx, t, &out)
        }
    }

    /// A threshold key's state after a reading; false when the key keeps no state.
    mutating func thresholdStep(
        _ r: Int, hold: Millis, when: Bool?, _ st: inout KeyState, _ keyText: String, _ reading: Reading, _ ctx: EvalContext,
        _ t: Millis, _ out: inout [IncidentEvent]
    ) -> Bool {
        if st.incident != nil { return handleOpen(r, &st, keyText, reading, ctx, t, &out) }
        switch when {
        case nil:
            if st.runStart == nil { return false }
        case false?:
            return false  // the run is broken: the key starts afresh
        case true?:
            if st.runStart == nil {
                st.runStart = t
                st.runCount = 1
            } else {
                st.runCount += 1
            }
            st.runReading = reading
            if hold == 0 {
                guard open(r, keyText, &st, startedAt: t, at: t, count: st.runCount, reading: reading, &out) else { return false }
            }
        }
        rearm(r, keyText, &st)
        return true
    }

    // MARK: - Count

    mutating func processCount(
        _ r: Int, n: Int, within: Millis, _ reading: Reading, _ ctx: EvalContext, _ t: Millis,
        _ keys: inout KeyCache, _ out: inout [IncidentEvent]
    ) {
        let rule = rules[r]
        let when = rule.when?.truth(ctx)
        if states[r].isEmpty, when != true { return }
        // Only a matching reading or a clear condition can change a count rule's state.
        if when != true, rule.clearWhen?.truth(ctx) == nil { return }
        stepKey(r, when: when, ctx, &keys) { engine, st, keyText in
            engine.countStep(r, n: n, within: within, when: when, &st, keyText, reading, ctx, t, &out)
        }
    }

    /// A count key's state after a reading; false when the key keeps no state.
    mutating func countStep(
        _ r: Int, n: Int, within: Millis, when: Bool?, _ st: inout KeyState, _ keyText: String, _ reading: Reading,
        _ ctx: EvalContext, _ t: Millis, _ out: inout [IncidentEvent]
    ) -> Bool {
        if st.incident != nil { return handleOpen(r, &st, keyText, reading, ctx, t, &out) }
        if when == true {
            st.window.removeAll { t - $0 >= within }
            st.window.append(t)
            if st.window.count >= n {
                let started = st.window[0]
                let count = st.window.count
                st.window.removeAll()
                guard open(r, keyText, &st, startedAt: started, at: t, count: count, reading: reading, &out) else { return false }
            }
        }
        if st.window.isEmpty && st.incident == nil { return false }
        rearm(r, keyText, &st)
        return true
    }

    /// Runs `step` on the state of the reading's key for rule `r`. A key
    /// without state starts one only on a true `when`; a registry channel's
    /// key known to have none, or known to hold a quiet open incident that
    /// the reading cannot change, is not even looked up (`keyFacts`).
    mutating func stepKey(
        _ r: Int, when: Bool?, _ ctx: EvalContext, _ keys: inout KeyCache,
        _ step: (inout RuleEngine, inout KeyState, String) -> Bool
    ) {
        let flag = channelKeyed[r] ? keys.registryIndex : nil
        if when != true, let flag {
            if knownStateless(r, channel: flag) { return }
            if knownQuietOpen(r, channel: flag), rules[r].clearWhen?.truth(ctx) != true { return }
        }
        let (key, keyText) = keyFor(r, ctx, &keys)
        var quiet = false
        let exists = withState(r, key, keyText, create: when == true) { engine, st in
            let keep = step(&engine, &st, keyText)
            quiet = keep && st.incident != nil && st.incident?.clearRunStart == nil
            return keep
        }
        if let flag { setKeyFacts(r, channel: flag, exists ? (quiet ? RuleEngine.quietOpen : 0) : RuleEngine.stateless) }
    }

    /// Runs `step` on the state of `keyText` — a fresh one when the key has
    /// none — in place: one lookup, no copy of the state (a few hundred
    /// bytes). A key without state is left alone unless `create`: most
    /// readings change no key. The rule's table is out of the engine while
    /// `step` runs: nothing in a step touches it, except the inhibits of a
    /// rule that inhibits itself, for which only the key's own state is taken
    /// out. The state stays when `step` returns true. Returns whether the key
    /// has state afterwards.
    mutating func withState(
        _ r: Int, _ key: JSONObject, _ keyText: String, create: Bool, _ step: (inout RuleEngine, inout KeyState) -> Bool
    ) -> Bool {
        guard let slot = states[r].index(forKey: keyText) else {
            guard create else { return false }
            var st = KeyState(key: key)
            let keep = step(&self, &st)
            if keep { states[r][keyText] = st }
            return keep
        }
        if inhibitsItself(r) {
            var st = KeyState(key: key)
            swap(&st, &states[r].values[slot])
            let keep = step(&self, &st)
            if keep { swap(&st, &states[r].values[slot]) } else { states[r].remove(at: slot) }
            return keep
        }
        var table: [String: KeyState] = [:]
        swap(&table, &states[r])
        let keep = step(&self, &table.values[slot])
        if !keep { table.remove(at: slot) }
        swap(&table, &states[r])
        return keep
    }

    // MARK: - Open incidents (threshold and count)

    /// A reading for a key with an open incident: clear it, or update it.
    /// Returns false when the incident resolved and the key's state is gone.
    mutating func handleOpen(
        _ r: Int, _ st: inout KeyState, _ keyText: String, _ reading: Reading, _ ctx: EvalContext, _ t: Millis,
        _ out: inout [IncidentEvent]
    ) -> Bool {
        let rule = rules[r]
        // The incident is changed where it is (`st.incident!`): taken out and
        // put back, its dozen fields would be copied for every reading of the key.
        guard st.incident != nil else { return true }
        if let clear = rule.clearWhen {
            switch clear.truth(ctx) {
            case true?:
                if rule.clearFor == 0 {
                    resolve(r, &st.incident!, at: t, reading: ReadingSnapshot(reading), &out)
                    return false
                }
                if st.incident!.clearRunStart == nil {
                    st.incident!.clearRunStart = t
                    st.incident!.clearRunReading = ReadingSnapshot(reading)
                }
            case false?:
                st.incident!.clearRunStart = nil
                st.incident!.clearRunReading = nil
            case nil:
                break
            }
        }
        if rule.when?.truth(ctx) == true {
            st.incident!.count += 1
            st.incident!.lastMatchAt = t
            st.incident!.lastReading = ReadingSnapshot(reading)
            if t - st.incident!.lastEmittedAt >= rule.updateEvery {
                let last = st.incident!.lastReading
                emit(r, .updated, &st.incident!, at: t, reading: last, &out)
            }
        }
        rearm(r, keyText, &st)
        return true
    }
}

// RuleEngine: suppression by maintenance windows and inhibits, and the keys of readings.

import VigilCore

extension RuleEngine {
    // MARK: - Suppression

    /// Why an opening of rule `r` at `t` for this channel must not happen, or nil.
    func suppression(_ r: Int, _ ctx: EvalContext, at t: Millis) -> String? {
        for mw in ruleSet.maintenance where mw.covers(t) {
            if mw.match == nil || mw.match!.truth(ctx) == true { return "maintenance '\(mw.name)'" }
        }
        for i in inhibitsByTarget[r] {
            let inh = ruleSet.inhibits[i]
            let s = inhibitSource[i]
            guard s >= 0 else { continue }
            let targetValues = inh.equal.map { $0.expression.evaluate(ctx) }
            func matches(_ inc: OpenIncident) -> Bool {
                let sctx = EvalContext(
                    payload: nil, topic: nil, captures: [], channelID: inc.channel,
                    channelInfo: inc.channelInfo, feed: inc.feed)
                for (j, f) in inh.equal.enumerated() {
                    // A field missing on either side never matches: an inhibit must not silence by accident.
                    let a = f.expression.evaluate(sctx), b = targetValues[j]
                    if a.isNull || b.isNull || a != b { return false }
                }
                return true
            }
            for (_, st) in states[s] { if let inc = st.incident, matches(inc) { return "inhibited by \(inh.source)" } }
            for inc in absence[s].openIncidents where matches(inc) { return "inhibited by \(inh.source)" }
        }
        return nil
    }

    mutating func noteSuppressed(_ r: Int, _ keyText: String, _ t: Millis, _ reason: String) {
        suppressedOpenings += 1
        if suppressions.count < 10_000 {
            suppressions.append(Suppression(rule: rules[r].name, key: keyText, at: t, reason: reason))
        }
    }

    /// Whether an inhibit of rule `r`'s own can silence it: its openings read its own table.
    func inhibitsItself(_ r: Int) -> Bool { inhibitsByTarget[r].contains { inhibitSource[$0] == r } }

    // MARK: - Keys

    /// The key of a reading for rule `r`; the common `[channel]` key is built once per reading.
    func keyFor(_ r: Int, _ ctx: EvalContext, _ cache: inout KeyCache) -> (JSONObject, String) {
        guard channelKeyed[r] else { return keyOf(rules[r], ctx) }
        if let i = cache.registryIndex { return registryChannelKeys[i] }
        if let k = cache.channel { return k }
        let k = keyOf(rules[r], ctx)
        cache.channel = k
        return k
    }

    func keyOf(_ rule: Rule, _ ctx: EvalContext) -> (JSONObject, String) {
        var key = JSONObject()
        for f in rule.key { key.appendUnique(f.name, f.expression.evaluate(ctx)) }
        return (key, JSONWriter.encode(.object(key)))
    }
}

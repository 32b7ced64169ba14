import VigilCore

extension RuleEngine {
    /// A new engine for a reloaded rule set and registry. Rules whose
    /// definition did not change (same name, same fingerprint) keep their
    /// state: pending `for` runs, count windows, open incidents, ordinals, and
    /// for absence rules the last-seen times of channels still registered.
    /// New or changed rules start afresh at the current time.
    public func reloaded(ruleSet newSet: RuleSet, registry newRegistry: ChannelRegistry) -> (engine: RuleEngine, kept: [String]) {
        var next = RuleEngine(ruleSet: newSet, registry: newRegistry)
        guard started else { return (next, []) }
        next.blindBefore = blindBefore
        next.blindAhead = blindAhead
        next.start(at: now)
        next.blindSince = blindSince
        next.suppressedOpenings = suppressedOpenings
        var kept: [String] = []
        var oldIndex: [String: Int] = [:]
        for (j, rule) in rules.enumerated() { oldIndex[rule.name] = j }
        for (i, rule) in next.rules.enumerated() {
            guard let j = oldIndex[rule.name], rules[j].fingerprint == rule.fingerprint else { continue }
            kept.append(rule.name)
            next.ordinals[i] = ordinals[j]
            if rule.isAbsence {
                let old = absence[j]
                var tracker = next.absence[i]
                // Rebuild the last-seen order: carried channels keep their time, new ones count from now.
                for s in tracker.channel.indices { tracker.unlink(s) }
                var order: [(Millis, Int)] = []
                for s in tracker.channel.indices {
                    let id = newRegistry.channels[tracker.channel[s]].id
                    if let oi = registry.lookup(id), oi < old.slotOf.count, old.slotOf[oi] >= 0 {
                        let os = old.slotOf[oi]
                        tracker.see(s, at: old.nodes[os].lastSeen, connected: old.nodes[os].seenConnected)
                        tracker[open: s] = old[open: os]
                    }
                    if tracker[open: s] == nil { order.append((tracker.seenConnected(s), s)) }
                }
                order.sort { $0.0 != $1.0 ? $0.0 < $1.0 : $0.1 < $1.1 }
                for (_, s) in order { tracker.append(s) }
                next.absence[i] = tracker
                next.armAbsenceReminders(i)
            } else {
                for (keyText, var st) in states[j] {
                    st.armed = nil
                    // A pending run's reading names its channel by an index
                    // into the old registry: the new one may have reordered
                    // or dropped rows (restore looks it up by id the same way).
                    if let r = st.runReading {
                        st.runReading = Reading(
                            topic: r.topic, feed: r.feed, channel: r.channel, captures: r.captures, payload: r.payload,
                            receivedAt: r.receivedAt, channelIndex: r.channel.flatMap { newRegistry.lookup($0) })
                    }
                    next.rearm(i, keyText, &st)
                    next.states[i][keyText] = st
                }
            }
        }
        return (next, kept)
    }
}

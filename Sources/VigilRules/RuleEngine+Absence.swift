// RuleEngine: absence rules — readings that count as seen, and silences that open incidents.

import VigilCore

extension RuleEngine {
    // MARK: - Absence

    mutating func processAbsence(_ r: Int, _ reading: Reading, _ ctx: EvalContext, _ t: Millis, _ out: inout [IncidentEvent]) {
        guard let idx = reading.channelIndex else { return }
        let slot = absence[r].slotOf[idx]
        guard slot >= 0 else { return }
        if let w = rules[r].when, w.truth(ctx) != true { return }
        // The flag first: the subscript builds an optional incident, a few hundred bytes.
        if absence[r].isOpen(slot), var inc = absence[r][open: slot] {
            inc.count = 1
            resolve(r, &inc, at: t, reading: ReadingSnapshot(reading), &out)
            absence[r][open: slot] = nil
        }
        absence[r].see(slot, at: t, connected: connectedTime(t))
        absence[r].append(slot)
    }

    /// The silences of rule `r` due at `t`: every channel at the head of the
    /// list seen at the same instant falls silent now, in the order of their keys' JSON text.
    mutating func fireAbsence(_ r: Int, at t: Millis, _ out: inout [IncidentEvent]) {
        let seen = absence[r].seenConnected(absence[r].head)
        var run: [Int] = []
        while absence[r].head >= 0, absence[r].seenConnected(absence[r].head) == seen {
            let slot = absence[r].head
            absence[r].unlink(slot)
            run.append(slot)
        }
        if run.count > 1 { run.sort { absence[r].keyText[$0].utf8.lexicographicallyPrecedes(absence[r].keyText[$1].utf8) } }
        for slot in run { openSilence(r, slot, at: t, &out) }
    }

    mutating func openSilence(_ r: Int, _ slot: Int, at t: Millis, _ out: inout [IncidentEvent]) {
        let ch = registry[absence[r].channel[slot]]
        let ctx = EvalContext(channel: ch)
        let keyText = absence[r].keyText[slot]
        if let reason = suppression(r, ctx, at: t) {
            noteSuppressed(r, keyText, t, reason)
            absence[r].see(slot, at: t, connected: connectedTime(t))
            absence[r].append(slot)
            return
        }
        var inc = makeIncident(
            r, keyText: keyText, key: absence[r].key[slot], ctx: ctx, startedAt: absence[r].nodes[slot].lastSeen,
            openedAt: t, count: 0, reading: nil)
        emit(r, .opened, &inc, at: t, reading: nil, &out)
        absence[r][open: slot] = inc
        if let next = inc.nextReminder(rules[r]) { heap.push(TimerEntry(due: next, rule: r, key: keyText)) }
    }
}

// RuleEngine: opening, updating, reminding, resolving and acknowledging incidents.

import VigilCore

extension RuleEngine {
    // MARK: - Opening, updating, resolving

    /// Opens an incident unless suppressed. Returns false when suppressed (the
    /// key's state must then be dropped: it starts afresh).
    mutating func open(
        _ r: Int, _ keyText: String, _ st: inout KeyState, startedAt: Millis, at t: Millis, count: Int,
        reading: Reading, _ out: inout [IncidentEvent]
    ) -> Bool {
        let ctx = EvalContext(reading: reading, registry: registry)
        if let reason = suppression(r, ctx, at: t) {
            noteSuppressed(r, keyText, t, reason)
            return false
        }
        var inc = makeIncident(
            r, keyText: keyText, key: st.key, ctx: ctx, startedAt: startedAt, openedAt: t, count: count,
            reading: ReadingSnapshot(reading))
        emit(r, .opened, &inc, at: t, reading: inc.lastReading, &out)
        st.incident = inc
        st.runStart = nil
        st.runReading = nil
        st.runCount = 0
        st.window.removeAll()
        return true
    }

    mutating func makeIncident(
        _ r: Int, keyText: String, key: JSONObject, ctx: EvalContext, startedAt: Millis, openedAt: Millis,
        count: Int, reading: ReadingSnapshot?
    ) -> OpenIncident {
        let rule = rules[r]
        let ordinal = (ordinals[r][keyText] ?? 0) + 1
        ordinals[r][keyText] = ordinal
        let incidentID = IDs.incident(rule: rule.name, keyText: keyText, openedAt: openedAt, ordinal: ordinal)
        var route = rule.route ?? "default"
        if rule.route == nil, case .string(let s)? = ctx.channelInfo?["route"], !s.isEmpty { route = s }
        let title = rule.title?.render(ctx) ?? rule.description ?? rule.name
        var labels = JSONObject()
        for (name, t) in rule.labels { labels.appendUnique(name, .string(t.render(ctx))) }
        return OpenIncident(
            incidentID: incidentID, nextEventOrdinal: 0, startedAt: startedAt, openedAt: openedAt, count: count,
            lastEmittedAt: openedAt, lastMatchAt: openedAt, feed: ctx.feed, channel: ctx.channelID,
            channelInfo: ctx.channelInfo ?? JSONObject(), route: route, title: title, labels: labels, key: key,
            lastReading: reading, clearRunStart: nil, clearRunReading: nil)
    }

    mutating func resolve(_ r: Int, _ inc: inout OpenIncident, at t: Millis, reading: ReadingSnapshot?, _ out: inout [IncidentEvent]) {
        emit(r, .resolved, &inc, at: t, reading: reading, &out, resolvedAt: t)
    }

    /// Heap entries for the reminders of rule `r`'s open absence incidents (after a restore or reload).
    mutating func armAbsenceReminders(_ r: Int) {
        for slot in absence[r].openSlots.sorted() {
            if let due = absence[r][open: slot]?.nextReminder(rules[r]) {
                heap.push(TimerEntry(due: due, rule: r, key: absence[r].keyText[slot]))
            }
        }
    }

    mutating func remind(_ r: Int, _ inc: inout OpenIncident, at t: Millis, _ out: inout [IncidentEvent]) {
        inc.reminders += 1
        emit(r, .reminded, &inc, at: t, reading: nil, &out)
    }

    mutating func emit(
        _ r: Int, _ type: IncidentEventType, _ inc: inout OpenIncident, at t: Millis, reading: ReadingSnapshot?,
        _ out: inout [IncidentEvent], resolvedAt: Millis? = nil, note: String? = nil
    ) {
        let rule = rules[r]
        let eventID = IDs.event(incidentID: inc.incidentID, type: type, at: t, ordinal: inc.nextEventOrdinal)
        inc.nextEventOrdinal += 1
        // Acknowledgements and reminders do not restart `update_every`.
        if type != .acknowledged && type != .reminded { inc.lastEmittedAt = t }
        out.append(
            IncidentEvent(
                eventID: eventID, type: type, incidentID: inc.incidentID, rule: rule.name,
                severity: rule.severity, route: inc.route, feed: inc.feed, channel: inc.channel, key: inc.key,
                title: inc.title, labels: inc.labels, channelInfo: inc.channelInfo, startedAt: inc.startedAt,
                openedAt: inc.openedAt, resolvedAt: resolvedAt, at: t, count: inc.count, reading: reading,
                acknowledgedAt: inc.acknowledgedAt, acknowledgedBy: inc.acknowledgedBy,
                reminder: type == .reminded ? inc.reminders : nil, note: note))
    }

    // MARK: - Acknowledgement

    public enum AcknowledgeResult: Sendable, Equatable {
        /// Acknowledged now: `incident.acknowledged` was emitted.
        case acknowledged
        /// Already acknowledged: nothing changes.
        case already
        /// No open incident has this id (unknown, or resolved).
        case notOpen
    }

    /// A person acknowledges an open incident at the current clock time:
    /// `incident.acknowledged`, and its reminders stop.
    public mutating func acknowledge(_ a: Acknowledgement, into out: inout [IncidentEvent]) -> AcknowledgeResult {
        let t = now
        for r in rules.indices {
            if rules[r].isAbsence {
                for slot in absence[r].openSlots.sorted() {
                    guard var inc = absence[r][open: slot], inc.incidentID == a.incidentID else { continue }
                    if inc.acknowledgedAt != nil { return .already }
                    inc.acknowledgedAt = t
                    inc.acknowledgedBy = a.by
                    emit(r, .acknowledged, &inc, at: t, reading: nil, &out, note: a.note)
                    absence[r][open: slot] = inc
                    return .acknowledged
                }
            } else {
                for (keyText, st) in states[r] {
                    guard var inc = st.incident, inc.incidentID == a.incidentID else { continue }
                    if inc.acknowledgedAt != nil { return .already }
                    inc.acknowledgedAt = t
                    inc.acknowledgedBy = a.by
                    emit(r, .acknowledged, &inc, at: t, reading: nil, &out, note: a.note)
                    states[r][keyText]?.incident = inc
                    return .acknowledged
                }
            }
        }
        return .notOpen
    }

    /// The id of the open incident of `rule` for `channel`, if there is one (rule tests name incidents so).
    public func openIncidentID(rule: String, channel: String) -> String? {
        guard let r = rules.firstIndex(where: { $0.name == rule }) else { return nil }
        if rules[r].isAbsence {
            for inc in absence[r].openIncidents where inc.channel == channel { return inc.incidentID }
            return nil
        }
        let matching = states[r].filter { $0.value.incident?.channel == channel }
        return matching.min { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }?.value.incident?.incidentID
    }
}

import Logging
import VigilCore
import VigilDispatch
import VigilIngest
import VigilRules
#if canImport(Glibc)
import Glibc
#endif

extension IngestLoop {
    /// Evaluates what arrived since the last batch and commits it — journal
    /// rows, incident events, dead letters, the outage incident and, when
    /// due, the checkpoint — in one transaction. Nothing read here may be
    /// acknowledged before this returns.
    func processBatch(now wall: Millis) {
        let started = Time.monotonicNanos()
        let arrival = max(wall, lastArrival)
        lastArrival = arrival
        let batch = incoming
        incoming.removeAll(keepingCapacity: true)
        var events: [IncidentEvent] = []
        var dead: [DeadLetter] = []
        var journal: [StateStore.JournalEntry] = []
        journal.reserveCapacity(batch.count)
        var readings = 0
        var received = 0
        var byFeed = FeedTally()
        for item in batch {
            switch item {
            case .message(let m):
                // In arrival order: the filter's cursor moves along the journal.
                if isRedelivery(m) { continue }
                received += 1
                let taken = m.payload.withUnsafeBufferPointer {
                    evaluator.message(topic: m.topic, payload: $0, arrival: arrival, into: &events)
                }
                var entry = StateStore.JournalEntry(receivedAt: arrival, kind: .message, mid: m.mid, topic: m.topic, payload: m.payload)
                switch taken {
                case .reading(let r, let at):
                    readings += 1
                    byFeed.add(r.feed)
                    if at != arrival { entry.judgedAt = at }
                case .dead(let d):
                    dead.append(d)
                    if case .success(let route) = evaluator.decoder.cachedRoute(topic: m.topic) { byFeed.add(route.feed) } else { byFeed.add("unknown") }
                    logDeadLetter(d, arrival)
                }
                journal.append(entry)
            case .mark(let mark):
                evaluator.mark(mark, arrival: arrival, into: &events)
                journal.append(StateStore.JournalEntry(receivedAt: arrival, kind: mark == .lost ? .lost : .connected))
                if mark == .connected { events += outage.connected(at: arrival) }
            }
        }
        let suppressedBefore = evaluator.engine.suppressedOpenings
        evaluator.follow(wall: arrival, into: &events)
        for s in evaluator.engine.suppressions {
            logger.debug("opening suppressed", metadata: ["rule": .string(s.rule), "key": .string(s.key), "reason": .string(s.reason)])
        }
        evaluator.engine.suppressions.removeAll()
        let outageEvents = outage.tick(now: wall)
        events += outageEvents
        shed(&events, now: arrival)
        let checkpoint: [UInt8]? = arrival - lastCheckpoint >= IngestLoop.checkpointInterval
            ? evaluator.engine.checkpoint(timeline: evaluator.timeline) : nil
        if checkpoint != nil { lastCheckpoint = arrival }
        let outageChanged = !outageEvents.isEmpty || events.contains { $0.rule == BrokerOutage.rule }
        let state: [(name: String, value: [UInt8]?)] = outageChanged ? [(BrokerOutage.stateName, outage.saved)] : []
        if !journal.isEmpty || !events.isEmpty || !dead.isEmpty || checkpoint != nil || !state.isEmpty {
            var attempt = 0
            while true {
                do {
                    let added = try store.commit(journal: journal, events: events, deadLetters: dead, checkpoint: checkpoint, state: state,
                                                 now: arrival)
                    gauge.add(added)
                    break
                } catch {
                    // Without the commit nothing may be acknowledged: retry rather than move on.
                    attempt += 1
                    logger.error("state commit failed", metadata: ["error": .string("\(error)"), "attempt": .stringConvertible(attempt)])
                    usleep(UInt32(min(attempt * 100, 2000)) * 1000)
                }
            }
            if !events.isEmpty { dispatcher.ring() }
        }
        let lag = Double(Time.monotonicNanos() - started) / 1e9
        metrics.recordBatch(received: byFeed.counts, dead: dead.map(\.reason), readings: readings, events: events, lagSeconds: lag,
                            suppressed: evaluator.engine.suppressedOpenings - suppressedBefore)
        let open = events.isEmpty ? nil : evaluator.engine.openIncidents
        status.values.withLock { s in
            s.received += received
            s.readings += readings
            s.events += events.count
            for d in dead { s.deadLetters[d.reason.rawValue, default: 0] += 1 }
            if let open { s.openIncidents = open }
            s.backpressured = backpressured
            s.lastLoopAt = wall
        }
    }

    /// `overflow: shed`: while the queue is full, events below `shed_below`
    /// are dropped (counted and logged); a severe one stops reading until it drains.
    func shed(_ events: inout [IncidentEvent], now: Millis) {
        guard config.dispatch.overflow == .shed, !events.isEmpty, gauge.pending >= config.dispatch.maxPending else { return }
        let below = config.dispatch.shedBelow
        let shed = events.filter { $0.severity < below }
        if !shed.isEmpty {
            events.removeAll { $0.severity < below }
            metrics.recordShed(shed.count)
            for e in shed {
                shedLog.admit(now: now) { suppressed in
                    var meta: Logger.Metadata = [
                        "rule": .string(e.rule), "incident_id": .string(e.incidentID), "severity": .string(e.severity.name),
                        "type": .string(e.type.rawValue), "event_id": .string(e.eventID), "queue_pending": .stringConvertible(gauge.pending),
                    ]
                    if let suppressed { meta["suppressed"] = .stringConvertible(suppressed) }
                    logger.warning("event shed", metadata: meta)
                }
            }
        }
        if !events.isEmpty { heldBySevereEvents = true }
    }

    func logDeadLetter(_ d: DeadLetter, _ now: Millis) {
        deadLetterLog.admit(now: now) { suppressed in
            var meta: Logger.Metadata = ["reason": .string(d.reason.rawValue), "topic": .string(d.topic), "detail": .string(d.detail)]
            if let suppressed { meta["suppressed"] = .stringConvertible(suppressed) }
            logger.warning("dead letter", metadata: meta)
        }
    }
}

import Logging
import VigilConfig
import VigilCore
import VigilRules

extension IngestLoop {
    /// Restores the last checkpoint and re-evaluates the journal after it, so
    /// rule state is as if there had been no crash. Events come out with the
    /// same ids and the queue ignores those it already holds. Then the daemon
    /// was blind since its last journaled record: a `lost` mark at that time,
    /// unless the journal already ends with one (a graceful stop).
    func recover(startAt: Millis) throws {
        if let saved = try store.state(BrokerOutage.stateName) { outage.restore(saved) }
        var timeline = setup.timeline
        guard let (seq, bytes) = try store.loadCheckpoint(),
            let (restored, kept) = RuleEngine.restore(bytes, ruleSet: setup.ruleSet, registry: setup.registry, timeline: &timeline)
        else {
            // A new state directory: the clock starts now, and vigil is not connected yet.
            var events: [IncidentEvent] = []
            evaluator.engine.start(at: startAt)
            evaluator.mark(.lost, arrival: startAt, into: &events)
            _ = try store.commit(
                journal: [StateStore.JournalEntry(receivedAt: startAt, kind: .lost)], events: events, deadLetters: [],
                checkpoint: evaluator.engine.checkpoint(timeline: evaluator.timeline), now: startAt)
            lastCheckpoint = startAt
            return
        }
        evaluator.engine = restored
        evaluator.timeline = timeline
        let checkpointAt = evaluator.engine.now
        var events: [IncidentEvent] = []
        var replayed = 0
        var added = 0
        try store.journal(after: seq) { entry in
            replayed += 1
            // SIGTERM during a long recovery: stop now; the next start recovers again.
            if replayed % 1024 == 0, stop.isSet { throw StopRequested() }
            evaluator.take(entry, into: &events)
            if events.count >= 1000 {
                added += try store.commit(journal: [], events: events, deadLetters: [], checkpoint: nil, now: startAt).values.reduce(0, +)
                events.removeAll(keepingCapacity: true)
            }
        }
        var journal: [StateStore.JournalEntry] = []
        if let last = try store.lastJournalRecord() {
            lastArrival = max(lastArrival, last.receivedAt)
            if last.kind != .lost {
                evaluator.mark(.lost, arrival: last.receivedAt, into: &events)
                journal.append(StateStore.JournalEntry(receivedAt: last.receivedAt, kind: .lost))
            }
        }
        evaluator.engine.suppressions.removeAll()
        let gained = try store.commit(
            journal: journal, events: events, deadLetters: [],
            checkpoint: evaluator.engine.checkpoint(timeline: evaluator.timeline), now: startAt)
        added += gained.values.reduce(0, +)
        gauge.set(try store.queue.pendingCounts())
        lastCheckpoint = startAt
        logger.notice(
            "state restored",
            metadata: [
                "checkpoint": .string(Time.format(checkpointAt)), "journal_replayed": .stringConvertible(replayed),
                "rules_kept": .stringConvertible(kept.count), "open_incidents": .stringConvertible(evaluator.engine.openIncidents),
                "deliveries_added": .stringConvertible(added),
            ])
        status.values.withLock { $0.openIncidents = evaluator.engine.openIncidents }
    }

}

/// A stop asked for while the daemon was still starting.
struct StopRequested: Error {}

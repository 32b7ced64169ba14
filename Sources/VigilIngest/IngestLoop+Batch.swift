import Logging
import VigilConfig
import VigilCore
import VigilDispatch
import VigilMQTT
import VigilRules
import VigilStore
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
        var answers: [(CheckedContinuation<AckInbox.Answer, Never>, AckInbox.Answer)] = []
        var deviceTimes: [Millis] = []
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
                case .reading(let feed, let at, let device):
                    readings += 1
                    byFeed.add(feed)
                    if at != arrival { entry.judgedAt = at }
                    if let device { deviceTimes.append(device) }
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
            case .ack(let ack, let answer):
                switch evaluator.acknowledge(ack, arrival: arrival, into: &events) {
                case .acknowledged:
                    // An input like a reading: recovery and replay apply it again.
                    journal.append(JournalEntry.acknowledgement(ack, at: arrival))
                    answers.append((answer, .acknowledged))
                case .already: answers.append((answer, .already))
                case .notOpen: answers.append((answer, .notOpen))
                }
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
        let checkpoint: [UInt8]? =
            arrival - lastCheckpoint >= IngestLoop.checkpointInterval
            ? evaluator.engine.checkpoint(timeline: evaluator.timeline) : nil
        if checkpoint != nil { lastCheckpoint = arrival }
        let outageChanged = !outageEvents.isEmpty || events.contains { $0.rule == BrokerOutage.rule }
        let state: [(name: String, value: [UInt8]?)] = outageChanged ? [(BrokerOutage.stateName, outage.saved)] : []
        let counts = BatchCounts(
            received: received, byFeed: byFeed.counts, readings: readings,
            suppressed: evaluator.engine.suppressedOpenings - suppressedBefore, started: started,
            openIncidents: events.isEmpty ? nil : evaluator.engine.openIncidents, deviceTimes: deviceTimes)
        if !journal.isEmpty || !events.isEmpty || !dead.isEmpty || checkpoint != nil || !state.isEmpty {
            if !commit(
                PendingCommit(
                    journal: journal, events: events, dead: dead, checkpoint: checkpoint, state: state, at: arrival,
                    counts: counts))
            {
                for (c, _) in answers { c.resume(returning: .unavailable("the state database cannot take commits now; it is applied once it can")) }
                answers.removeAll()
            }
        } else {
            record(counts, events: [], dead: [])
        }
        for (c, a) in answers { c.resume(returning: a) }
        status.values.withLock { s in
            s.backpressured = backpressured
            s.lastLoopAt = Time.monotonicMillis()
        }
    }

    /// What a batch adds to the counters: recorded once it is committed.
    struct BatchCounts {
        var received: Int
        var byFeed: [String: Int]
        var readings: Int
        var suppressed: Int
        var started: UInt64
        var openIncidents: Int?
        /// Device times of the batch's readings, for the reading-lag histogram.
        var deviceTimes: [Millis] = []
    }

    func record(_ c: BatchCounts, events: [IncidentEvent], dead: [DeadLetter]) {
        let lag = Double(Time.monotonicNanos() - c.started) / 1e9
        metrics.recordBatch(
            received: c.byFeed, dead: dead.map(\.reason), readings: c.readings, events: events, lagSeconds: lag,
            suppressed: c.suppressed)
        status.values.withLock { s in
            s.received += c.received
            s.readings += c.readings
            s.events += events.count
            for d in dead { s.deadLetters[d.reason.rawValue, default: 0] += 1 }
            if let open = c.openIncidents { s.openIncidents = open }
        }
    }

    /// One batch's transaction. When it cannot be committed (a full disk, an
    /// I/O error) it is held and retried: until it is on disk the loop reads
    /// nothing and writes nothing, so no PUBACK of it leaves and the broker
    /// keeps every message; `/healthz` says why.
    struct PendingCommit {
        var journal: [StateStore.JournalEntry]
        var events: [IncidentEvent]
        var dead: [DeadLetter]
        var checkpoint: [UInt8]?
        var state: [(name: String, value: [UInt8]?)]
        var at: Millis
        var counts: BatchCounts
        var failures = 0
        var nextTry: Millis = 0
    }

    /// How soon a held commit is tried again.
    static let commitRetry = Backoff(initial: 250, max: 5000)

    /// Commits a batch, or holds it for `retryHeldCommit`. Returns whether it is on disk.
    @discardableResult
    func commit(_ c: PendingCommit) -> Bool {
        do {
            let began = Time.monotonicNanos()
            let added = try store.commit(
                journal: c.journal, events: c.events, deadLetters: c.dead, checkpoint: c.checkpoint,
                state: c.state, now: c.at)
            let wall = Time.now()
            metrics.recordCommit(
                seconds: Double(Time.monotonicNanos() - began) / 1e9,
                readingLags: c.counts.deviceTimes.map { Double(max(0, wall - $0)) / 1000 })
            gauge.add(added)
            if !c.events.isEmpty { dispatcher.ring() }
            record(c.counts, events: c.events, dead: c.dead)
            if held != nil { intakeResumed() }
            held = nil
            return true
        } catch {
            var c = c
            c.failures += 1
            c.nextTry = Time.monotonicMillis() + IngestLoop.commitRetry.delay(afterAttempts: c.failures - 1)
            if c.failures == 1 || Time.monotonicMillis() - lastHaltLog >= 60_000 {
                lastHaltLog = Time.monotonicMillis()
                logger.error(
                    "state commit failed: intake stopped, nothing is acknowledged until it succeeds",
                    metadata: [
                        "error": .string("\(error)"), "attempts": .stringConvertible(c.failures), "state_dir": .string(config.stateDirectory),
                    ])
            }
            if c.failures == 1 { metrics.recordIntakeHalt() }
            let reason =
                (error as? SQLiteError)?.isDiskFull == true
                ? "disk full: the state database cannot take commits"
                : "the state database cannot take commits: \(error)"
            status.values.withLock { $0.intakeHalted = reason }
            held = c
            if let e = error as? SQLiteError, e.isNotADatabase { fatal = error }
            return false
        }
    }

    /// Intake is back: the journal gives up half its size for good (its
    /// freed pages are reused, so the file stops growing) and the WAL is cut
    /// down, so vigil's own files do not fill the disk again.
    func intakeResumed() {
        status.values.withLock { $0.intakeHalted = nil }
        let limit = max(1 << 20, min(journalLimit, store.journalBytes / 2))
        journalLimit = limit
        logger.notice(
            "state commits succeed again: intake resumes",
            metadata: [
                "state_dir": .string(config.stateDirectory), "journal_limit": .string(Units.formatSize(limit)),
            ])
        do {
            _ = try store.commit(
                journal: [], events: [], deadLetters: [], checkpoint: evaluator.engine.checkpoint(timeline: evaluator.timeline),
                state: [("journal_limit", Array(String(limit).utf8))], now: Time.now())
            while try trimJournal(maxSize: limit, now: Time.now()).more {}
            try store.db.truncateWAL()
        } catch {
            logger.warning("state maintenance after a failed commit did not finish", metadata: ["error": .string("\(error)")])
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

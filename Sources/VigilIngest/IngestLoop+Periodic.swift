import Foundation
import Logging
import VigilConfig
import VigilCore
import VigilRules
import VigilStore

extension IngestLoop {
    func reloadRules() {
        notifier.notify("RELOADING=1\nSTATUS=reloading rules and registry")
        let (loaded, diags) = Setup.load(config: config)
        if let loaded {
            let (next, kept) = evaluator.engine.reloaded(ruleSet: loaded.ruleSet, registry: loaded.registry)
            evaluator.engine = next
            setup = loaded
            evaluator.decoder = loaded.decoder
            metrics.recordReload("applied")
            logger.notice(
                "reloaded",
                metadata: [
                    "rules": .stringConvertible(loaded.ruleSet.rules.count), "channels": .stringConvertible(loaded.registry.count),
                    "kept_state": .stringConvertible(kept.count),
                ])
        } else {
            metrics.recordReload("rejected")
            for d in diags.prefix(50) { logger.error("reload rejected", metadata: ["error": .string(d.description)]) }
            logger.error("reload rejected: the running rules stay", metadata: ["errors": .stringConvertible(diags.count)])
        }
        notifier.notify("READY=1\nSTATUS=\(loaded == nil ? "reload rejected; running the previous rules" : "reloaded")")
    }
    /// One step of trimming the journal, timed and counted (`vigil_journal_trim_seconds`).
    func trimJournal(maxSize: Int64, now: Millis) throws -> (removed: Int, more: Bool) {
        let started = Time.monotonicNanos()
        let step = try store.trimJournal(retention: config.journalRetention, maxSize: maxSize, now: now)
        if step.removed > 0 { metrics.recordJournalTrim(seconds: Double(Time.monotonicNanos() - started) / 1e9, rows: step.removed) }
        return step
    }

    func periodic(_ now: Millis) {
        // Every minute (every 5 s while a full disk keeps the journal below
        // journal.max_size), `StateStore.trimChunk` rows at a time, 10 ms
        // apart (up to 50,000 rows a second), until done.
        if held == nil, now >= nextTrim {
            do {
                let (n, more) = try trimJournal(maxSize: journalLimit, now: now)
                trimmed += n
                if more {
                    nextTrim = now + 10
                } else {
                    if trimmed > 0 { logger.debug("journal trimmed", metadata: ["rows": .stringConvertible(trimmed)]) }
                    trimmed = 0
                    nextTrim = now + (journalLimit < config.journalMaxSize ? 5000 : 60_000)
                }
            } catch {
                nextTrim = now + 60_000
                logger.warning("journal trim failed", metadata: ["error": .string("\(error)")])
            }
        }
        if held == nil, now - lastHistoryTrim >= 3_600_000 {
            lastHistoryTrim = now
            do {
                let n = try IncidentHistory.trim(in: store.db, before: now - config.history)
                if n > 0 { logger.debug("incident history trimmed", metadata: ["incidents": .stringConvertible(n)]) }
            } catch {
                logger.warning("incident history trim failed", metadata: ["error": .string("\(error)")])
            }
        }
        if let n = deadLetterLog.flush(now: now) {
            logger.warning("dead letters suppressed", metadata: ["suppressed": .stringConvertible(n)])
        }
        if notifier.isActive, now - lastStatus >= 5000 {
            lastStatus = now
            let (received, open) = status.values.withLock { ($0.received, $0.openIncidents) }
            let state = status.connected ? "connected" : "disconnected"
            notifier.notify(
                "STATUS=\(state) to \(config.broker.url); \(received) messages; \(open) open incidents; queue \(gauge.pending)\(backpressured ? " (backpressure)" : "")"
            )
        }
        guard now - lastStats >= config.statsInterval else { return }
        lastStats = now
        let (received, readings, events, open, deadTotal) = status.values.withLock {
            ($0.received, $0.readings, $0.events, $0.openIncidents, $0.deadLetters.values.reduce(0, +))
        }
        let secs = max(0.001, Double(now - statsBase.at) / 1000)
        let rate = Double(received - statsBase.received) / secs
        statsBase = (received, readings, now)
        let lag = metrics.lagSeconds
        var meta: Logger.Metadata = [
            "connected": .stringConvertible(status.connected), "received": .stringConvertible(received),
            "rate": .string(String(Int(rate.rounded()))), "readings": .stringConvertible(readings),
            "dead_letters": .stringConvertible(deadTotal), "events": .stringConvertible(events),
            "open_incidents": .stringConvertible(open), "queue_pending": .stringConvertible(gauge.pending),
            "backpressure": .stringConvertible(backpressured),
            // Seconds from reading the last batch off the socket to its commit.
            "lag": .string(String(format: "%.3f", lag)),
        ]
        // How far a backlog (or an outage) holds the rule clock behind the wall clock.
        let clockHeld = evaluator.timeline.held || evaluator.timeline.blind
        let behind = clockHeld && evaluator.engine.started ? max(0, now - evaluator.engine.now) : 0
        if behind >= 1000 { meta["clock_behind"] = .string(Units.formatDuration(behind)) }
        if held != nil { meta["intake"] = "halted" }
        logger.info("stats", metadata: meta)
    }
}

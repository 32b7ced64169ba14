import Foundation
import Logging
import Synchronization
import VigilCore
import VigilDispatch
import VigilIngest
import VigilRules
#if canImport(Glibc)
import Glibc
#endif

/// Counters the ingest loop publishes for the stats line and health checks.
public final class IngestStatus: Sendable {
    struct Values {
        var connected = false
        var received = 0
        var readings = 0
        var deadLetters: [String: Int] = [:]
        var events = 0
        var openIncidents = 0
        var backpressured = false
        var lastLoopAt: Millis = 0
        var lagMs: Millis = 0
        var ready = false
    }
    let values = Mutex(Values())
    public init() {}

    public var connected: Bool { values.withLock { $0.connected } }
    public var received: Int { values.withLock { $0.received } }
    public var readings: Int { values.withLock { $0.readings } }
    public var events: Int { values.withLock { $0.events } }
    public var deadLetterTotal: Int { values.withLock { $0.deadLetters.values.reduce(0, +) } }
    public var openIncidents: Int { values.withLock { $0.openIncidents } }
    public var ready: Bool { values.withLock { $0.ready } }
}

/// A flag one thread sets and another polls.
public final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    public func set() { flag.store(true, ordering: .releasing) }
    public var isSet: Bool { flag.load(ordering: .acquiring) }
    /// Reads and clears the flag.
    public func take() -> Bool { flag.exchange(false, ordering: .acquiringAndReleasing) }
}

/// The ingestion and evaluation stage, on its own thread: read what the
/// socket holds, evaluate it, commit events (and dead letters) in one
/// transaction, and only then write — so PUBACKs follow the commit. While the
/// dispatch queue is full it stops reading; the broker holds the messages.
final class IngestLoop {
    var setup: Setup
    let logger: Logger
    let gauge: PendingGauge
    let dispatcher: Dispatcher
    let status: IngestStatus
    let stop: StopFlag
    let reload: StopFlag
    let metrics: Metrics
    let password: String?
    let notifier = SystemdNotifier()
    var lastStatus: Millis = 0

    var engine: RuleEngine
    var decoder: ReadingDecoder
    var store: StateStore!
    var client: MosquittoClient!
    var deadLetterLog = RateLimiter(perSecond: 5)
    var lastStats: Millis = 0
    var statsBase = (received: 0, readings: 0, at: Millis(0))
    var backpressured = false
    var pendingSubscriptions = Set<Int32>()
    var heldBySevereEvents = false
    /// When the engine state was last checkpointed (every 2 s, and at stop).
    var lastCheckpoint: Millis = 0
    static let checkpointInterval: Millis = 2000
    var lastTrim: Millis = 0
    /// Recognises the broker's resending of messages already journaled.
    ///
    /// A message is committed before its PUBACK is written, so when a
    /// connection ends (a crash, a broker restart, a network fault) the broker
    /// may hold journaled messages it never saw acknowledged — the last batch,
    /// and earlier ones whose PUBACKs it had not yet read. When our session is
    /// still there it sends them again first, in their original order and with
    /// their packet ids. So, after such a CONNACK, each QoS 1 message whose
    /// packet id, topic and payload equal a journaled message later than the
    /// previous one matched is skipped; the first message that is not such a
    /// resend, or the resend of the last journaled one, ends the filter for
    /// this connection.
    struct RedeliveryFilter {
        var seqByPacketID: [Int32: Int64]
        var last: Int64
        var cursor: Int64 = 0
        var skipped = 0

        init(seqByPacketID: [Int32: Int64]) {
            self.seqByPacketID = seqByPacketID
            last = seqByPacketID.values.max() ?? 0
        }
    }
    var redelivery: RedeliveryFilter?
    /// How far back in the journal a resend is looked for: eight full batches.
    /// Packet ids repeat only after 65,535 messages, so within this many a
    /// match of packet id, topic and payload is the same message.
    static let redeliveryWindow = 32_768

    func armRedeliveryFilter() {
        do {
            redelivery = RedeliveryFilter(seqByPacketID: try store.recentPacketIDs(last: IngestLoop.redeliveryWindow))
        } catch {
            redelivery = nil
            logger.warning("cannot read the journal tail", metadata: ["error": .string("\(error)")])
        }
    }

    /// Whether a message is the broker's resending of one already journaled.
    func isRedelivery(_ m: MosquittoClient.Message) -> Bool {
        guard m.qos > 0, let f = redelivery else { return false }
        if let seq = f.seqByPacketID[m.mid], seq > f.cursor, (try? store.journalRow(seq, is: m.topic, m.payload)) == true {
            redelivery?.cursor = seq
            redelivery?.skipped += 1
            if seq == f.last { endRedeliveryFilter() }
            return true
        }
        endRedeliveryFilter()
        return false
    }

    func endRedeliveryFilter() {
        if let f = redelivery, f.skipped > 0 {
            logger.notice("redelivered messages skipped", metadata: ["count": .stringConvertible(f.skipped)])
        }
        redelivery = nil
    }

    var shedLog = RateLimiter(perSecond: 5)

    init(setup: Setup, password: String?, logger: Logger, gauge: PendingGauge, dispatcher: Dispatcher, status: IngestStatus, stop: StopFlag,
         reload: StopFlag, metrics: Metrics) {
        self.reload = reload
        self.metrics = metrics
        self.setup = setup
        self.password = password
        self.logger = logger
        self.gauge = gauge
        self.dispatcher = dispatcher
        self.status = status
        self.stop = stop
        self.engine = RuleEngine(ruleSet: setup.ruleSet, registry: setup.registry)
        self.decoder = setup.decoder
    }

    var config: VigilConfig { setup.config }

    func run() throws {
        let sinks = config.dispatch.sinks.map { EventQueue.SinkRoute(name: $0.name, routes: $0.routes, minSeverity: $0.minSeverity) }
        store = try StateStore(path: config.stateDatabasePath, sinks: sinks)
        gauge.set(try store.queue.pendingCounts())
        try store.measureJournal()
        let b = config.broker
        client = try MosquittoClient(options: .init(
            host: b.host, port: b.port, clientID: b.clientID, cleanSession: b.cleanSession, protocolV5: b.protocolVersion == "5",
            keepaliveSeconds: Int(b.keepalive / 1000), username: b.username, password: password, useTLS: b.useTLS,
            caFile: b.tls.caFile.map(config.resolve), certFile: b.tls.certFile.map(config.resolve),
            keyFile: b.tls.keyFile.map(config.resolve), tlsInsecure: b.tls.insecure, bufferedReads: true))
        let startAt = Time.now()
        try recover(startAt: startAt)
        statsBase.at = startAt
        lastStats = startAt
        status.values.withLock { $0.ready = true; $0.lastLoopAt = startAt }
        notifier.notify("READY=1\nSTATUS=started, connecting to \(config.broker.url)")
        if ProcessInfo.processInfo.environment["VIGIL_TEST_WEDGE"] == "ingest" {
            // Test hook: a stage that stops making progress (the watchdog must notice).
            logger.warning("test hook: ingestion wedged")
            while !stop.isSet { usleep(50_000) }
        }
        loop()
        // Stopping: commit what is in hand with a checkpoint, then let the PUBACKs go.
        lastCheckpoint = 0
        processBatch([], now: Time.now())
        _ = client.writePending()
        client.disconnect()
        _ = client.writePending()
    }

    /// Reconnection: every lost or refused connection schedules one backoff step.
    var backoff: Millis = 0
    var nextAttempt: Millis = 0
    var reconnectScheduled = false

    func scheduleReconnect(_ now: Millis) {
        guard !reconnectScheduled else { return }
        reconnectScheduled = true
        nextAttempt = now + backoff
        backoff = min(backoff * 2, config.broker.reconnectMax)
    }

    func loop() {
        var connectedSocket = false
        var firstAttempt = true
        backoff = config.broker.reconnectInitial
        while !stop.isSet {
            let now = Time.now()
            if reload.take() { reloadRules() }
            if client.socket < 0 {
                if connectedSocket {
                    connectedSocket = false
                    status.values.withLock { $0.connected = false }
                    scheduleReconnect(now)
                }
                if now >= nextAttempt {
                    do {
                        if firstAttempt { try client.connect() } else { try client.reconnect() }
                        connectedSocket = true
                        reconnectScheduled = false
                    } catch {
                        logger.error("broker connect failed", metadata: [
                            "broker": .string(config.broker.url), "error": .string(error.description),
                            "retry_in": .string(Units.formatDuration(backoff)),
                        ])
                        reconnectScheduled = false
                        scheduleReconnect(now)
                    }
                    firstAttempt = false
                }
                if client.socket < 0 {
                    // Keep the clock turning while the broker is away: timers (absence!) still fire.
                    processBatch([], now: Time.now())
                    let wait = max(1, min(nextAttempt - Time.now(), sleepBudget(Time.now())))
                    usleep(UInt32(min(wait, 200)) * 1000)
                    periodic(Time.now())
                    continue
                }
            }
            let full = gauge.pending >= config.dispatch.maxPending
            if !full { heldBySevereEvents = false }
            // block: a full queue stops reading. shed: reading goes on, events
            // below shed_below are dropped, and a severe event arriving while
            // full stops reading until the queue drains.
            backpressured = full && (config.dispatch.overflow == .block || heldBySevereEvents)
            let timeout = Int32(max(0, min(sleepBudget(now), 1000)))
            let ready = client.wait(read: !backpressured, timeoutMs: timeout)
            var rc: Int32 = 0
            if ready.readable && !backpressured {
                rc = client.readAvailable(maxMessages: 4096)
            }
            var sawDisconnect = handleClientEvents()
            let messages = client.takeMessages()
            processBatch(messages, now: Time.now())
            if rc == 0 { rc = client.writePending() }
            if rc == 0 { rc = client.housekeeping() }
            sawDisconnect = handleClientEvents() || sawDisconnect
            if rc != 0 && client.socket < 0 {
                if !sawDisconnect && !reconnectScheduled {
                    logger.warning("broker connection lost", metadata: [
                        "broker": .string(config.broker.url), "error": .string(MosquittoError(code: rc, context: "connection").description),
                        "retry_in": .string(Units.formatDuration(backoff)),
                    ])
                }
                status.values.withLock { $0.connected = false }
                scheduleReconnect(Time.now())
            }
            periodic(Time.now())
        }
    }

    /// How long the loop may sleep: until the next rule timer, at most half a keepalive.
    func sleepBudget(_ now: Millis) -> Millis {
        var budget = min(config.broker.keepalive / 2, 1000)
        if let due = engine.nextDeadline() { budget = min(budget, max(0, due - now)) }
        return budget
    }

    /// Logs connection events; returns whether the connection went away.
    @discardableResult
    func handleClientEvents() -> Bool {
        var disconnected = false
        for e in client.takeEvents() {
            switch e {
            case .connected(let code, let reason, let sessionPresent):
                if code == 0 {
                    endRedeliveryFilter()
                    if sessionPresent && config.broker.qos > 0 { armRedeliveryFilter() }
                    backoff = config.broker.reconnectInitial
                    status.values.withLock { $0.connected = true }
                    logger.notice("broker connected", metadata: ["broker": .string(config.broker.url), "client_id": .string(config.broker.clientID)])
                    for sub in config.subscriptions {
                        var filter = sub.pattern.filter
                        if let g = config.broker.sharedGroup { filter = "$share/\(g)/\(filter)" }
                        do { pendingSubscriptions.insert(try client.subscribe(filter, qos: Int32(config.broker.qos))) } catch {
                            logger.error("subscribe failed", metadata: ["topic": .string(filter), "error": .string(error.description)])
                        }
                    }
                } else {
                    logger.error("broker refused the connection", metadata: [
                        "broker": .string(config.broker.url), "reason": .string(reason), "retry_in": .string(Units.formatDuration(backoff)),
                    ])
                    scheduleReconnect(Time.now())
                }
            case .disconnected(let code):
                disconnected = true
                status.values.withLock { $0.connected = false }
                if !stop.isSet && !reconnectScheduled {
                    logger.warning("broker disconnected", metadata: ["broker": .string(config.broker.url), "code": .stringConvertible(code)])
                }
            case .subscribed(let mid, let granted):
                if granted.contains(where: { $0 >= 0x80 }) {
                    logger.error("subscription refused by the broker", metadata: ["mid": .stringConvertible(mid)])
                }
                if pendingSubscriptions.remove(mid) != nil, pendingSubscriptions.isEmpty {
                    logger.notice("subscriptions active", metadata: [
                        "count": .stringConvertible(config.subscriptions.count), "qos": .stringConvertible(config.broker.qos),
                        "shared_group": .string(config.broker.sharedGroup ?? "none"),
                    ])
                }
            case .published:
                break
            }
        }
        return disconnected
    }

    /// Restores the last checkpoint and re-evaluates the journal after it, so
    /// rule state is as if there had been no crash. Events come out with the
    /// same ids and the queue ignores those it already holds.
    func recover(startAt: Millis) throws {
        guard let (seq, bytes) = try store.loadCheckpoint(),
              let (restored, kept) = RuleEngine.restore(bytes, ruleSet: setup.ruleSet, registry: setup.registry) else {
            engine.start(at: startAt)
            _ = try store.commit(messages: [], events: [], deadLetters: [], checkpoint: engine.checkpoint(), now: startAt)
            lastCheckpoint = startAt
            return
        }
        engine = restored
        let checkpointAt = engine.now
        var events: [IncidentEvent] = []
        var replayed = 0
        var added = 0
        try store.journal(after: seq) { entry in
            replayed += 1
            switch decoder.decode(topic: entry.topic, payload: entry.payload, at: entry.receivedAt) {
            case .success(let r): engine.process(r, into: &events)
            case .failure: engine.advance(to: entry.receivedAt, into: &events)
            }
            if events.count >= 1000 {
                added += try store.commit(messages: [], events: events, deadLetters: [], checkpoint: nil, now: startAt).values.reduce(0, +)
                events.removeAll(keepingCapacity: true)
            }
        }
        engine.suppressions.removeAll()
        let gained = try store.commit(messages: [], events: events, deadLetters: [], checkpoint: engine.checkpoint(), now: startAt)
        added += gained.values.reduce(0, +)
        gauge.set(try store.queue.pendingCounts())
        lastCheckpoint = startAt
        logger.notice("state restored", metadata: [
            "checkpoint": .string(Time.format(checkpointAt)), "journal_replayed": .stringConvertible(replayed),
            "rules_kept": .stringConvertible(kept.count), "open_incidents": .stringConvertible(engine.openIncidents),
            "deliveries_added": .stringConvertible(added),
        ])
        status.values.withLock { $0.openIncidents = engine.openIncidents }
    }

    func processBatch(_ incoming: [MosquittoClient.Message], now: Millis) {
        let started = Time.monotonicNanos()
        var messages = incoming
        if redelivery != nil {
            // In arrival order: the filter's cursor moves along the journal.
            messages = []
            messages.reserveCapacity(incoming.count)
            for m in incoming where !isRedelivery(m) { messages.append(m) }
        }
        var events: [IncidentEvent] = []
        var dead: [DeadLetter] = []
        var readings = 0
        var byFeed = FeedTally()
        for m in messages {
            switch decoder.decode(topic: m.topic, payload: m.payload, at: now) {
            case .success(let r):
                readings += 1
                byFeed.add(r.feed)
                engine.process(r, into: &events)
            case .failure(let d):
                dead.append(d)
                if case .success(let route) = decoder.cachedRoute(topic: m.topic) { byFeed.add(route.feed) } else { byFeed.add("unknown") }
                logDeadLetter(d, now)
            }
        }
        let suppressedBefore = engine.suppressedOpenings
        engine.advance(to: now, into: &events)
        for s in engine.suppressions {
            logger.debug("opening suppressed", metadata: ["rule": .string(s.rule), "key": .string(s.key), "reason": .string(s.reason)])
        }
        engine.suppressions.removeAll()
        if config.dispatch.overflow == .shed, !events.isEmpty, gauge.pending >= config.dispatch.maxPending {
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
        let checkpoint: [UInt8]? = now - lastCheckpoint >= IngestLoop.checkpointInterval ? engine.checkpoint() : nil
        if checkpoint != nil { lastCheckpoint = now }
        if !messages.isEmpty || !events.isEmpty || !dead.isEmpty || checkpoint != nil {
            let journal = messages.map { (receivedAt: now, mid: $0.mid, topic: $0.topic, payload: $0.payload) }
            var attempt = 0
            while true {
                do {
                    let added = try store.commit(messages: journal, events: events, deadLetters: dead, checkpoint: checkpoint, now: now)
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
                            suppressed: engine.suppressedOpenings - suppressedBefore)
        let open = events.isEmpty ? nil : engine.openIncidents
        status.values.withLock { s in
            s.received += messages.count
            s.readings += readings
            s.events += events.count
            for d in dead { s.deadLetters[d.reason.rawValue, default: 0] += 1 }
            if let open { s.openIncidents = open }
            s.backpressured = backpressured
            s.lastLoopAt = now
        }
    }

    /// SIGHUP: re-read registry and rules. A broken set is rejected with its
    /// errors and the running set stays; unchanged rules keep their state.
    func reloadRules() {
        notifier.notify("RELOADING=1\nSTATUS=reloading rules and registry")
        let (loaded, diags) = Setup.load(config: config)
        if let loaded {
            let (next, kept) = engine.reloaded(ruleSet: loaded.ruleSet, registry: loaded.registry)
            engine = next
            setup = loaded
            decoder = loaded.decoder
            metrics.recordReload("applied")
            logger.notice("reloaded", metadata: [
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

    func logDeadLetter(_ d: DeadLetter, _ now: Millis) {
        deadLetterLog.admit(now: now) { suppressed in
            var meta: Logger.Metadata = ["reason": .string(d.reason.rawValue), "topic": .string(d.topic), "detail": .string(d.detail)]
            if let suppressed { meta["suppressed"] = .stringConvertible(suppressed) }
            logger.warning("dead letter", metadata: meta)
        }
    }

    func periodic(_ now: Millis) {
        if now - lastTrim >= 60_000 {
            lastTrim = now
            do {
                let n = try store.trimJournal(retention: config.journalRetention, maxSize: config.journalMaxSize, now: now)
                if n > 0 { logger.debug("journal trimmed", metadata: ["rows": .stringConvertible(n)]) }
            } catch {
                logger.warning("journal trim failed", metadata: ["error": .string("\(error)")])
            }
        }
        if let n = deadLetterLog.flush(now: now) {
            logger.warning("dead letters suppressed", metadata: ["suppressed": .stringConvertible(n)])
        }
        if notifier.isActive, now - lastStatus >= 5000 {
            lastStatus = now
            let (received, open) = status.values.withLock { ($0.received, $0.openIncidents) }
            let state = status.connected ? "connected" : "disconnected"
            notifier.notify("STATUS=\(state) to \(config.broker.url); \(received) messages; \(open) open incidents; queue \(gauge.pending)\(backpressured ? " (backpressure)" : "")")
        }
        guard now - lastStats >= config.statsInterval else { return }
        lastStats = now
        let (received, readings, events, open, deadTotal) = status.values.withLock {
            ($0.received, $0.readings, $0.events, $0.openIncidents, $0.deadLetters.values.reduce(0, +))
        }
        let secs = max(0.001, Double(now - statsBase.at) / 1000)
        let rate = Double(received - statsBase.received) / secs
        statsBase = (received, readings, now)
        logger.info("stats", metadata: [
            "connected": .stringConvertible(status.connected), "received": .stringConvertible(received),
            "rate": .string(String(Int(rate.rounded()))), "readings": .stringConvertible(readings),
            "dead_letters": .stringConvertible(deadTotal), "events": .stringConvertible(events),
            "open_incidents": .stringConvertible(open), "queue_pending": .stringConvertible(gauge.pending),
            "backpressure": .stringConvertible(backpressured),
        ])
    }
}

/// Messages per feed in a batch. There are a handful of feeds, and feed names
/// are short: a list compared in place costs less than hashing every message.
struct FeedTally {
    var feeds: [String] = []
    var numbers: [Int] = []

    mutating func add(_ feed: String) {
        for i in feeds.indices where feeds[i] == feed {
            numbers[i] += 1
            return
        }
        feeds.append(feed)
        numbers.append(1)
    }

    var counts: [String: Int] { Dictionary(uniqueKeysWithValues: zip(feeds, numbers)) }
}

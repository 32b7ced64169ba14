import Foundation
import Logging
import VigilConfig
import VigilCore
import VigilDispatch
import VigilMQTT
import VigilRules
#if canImport(Glibc)
import Glibc
#endif

/// The ingestion and evaluation stage, on its own thread: read what the
/// socket holds, evaluate it, commit the journal, the events and the dead
/// letters in one transaction, and only then write — so PUBACKs follow the
/// commit. While the dispatch queue is full it stops reading; the broker
/// holds the messages. Connection losses and returns are journaled as broker
/// marks, so that recovery and replay see the same blind time.
public final class IngestLoop {
    var setup: Setup
    let logger: Logger
    let gauge: PendingGauge
    let dispatcher: Dispatcher
    let status: IngestStatus
    let stop: StopFlag
    let reload: StopFlag
    let metrics: any IngestMetrics
    let password: String?
    let notifier = SystemdNotifier()
    var lastStatus: Millis = 0

    var evaluator: Evaluator
    var store: StateStore!
    var client: MQTTConnection!
    var deadLetterLog = RateLimiter(perSecond: 5)
    var shedLog = RateLimiter(perSecond: 5)
    var lastStats: Millis = 0
    var statsBase = (received: 0, readings: 0, at: Millis(0))
    var backpressured = false
    var heldBySevereEvents = false
    /// When the engine state was last checkpointed (every 2 s, and at stop).
    var lastCheckpoint: Millis = 0
    static let checkpointInterval: Millis = 2000
    /// When the journal is trimmed next, and the rows of the trim under way.
    var nextTrim: Millis = 0
    var trimmed = 0
    var lastHistoryTrim: Millis = 0
    var redelivery: RedeliveryFilter?

    /// What arrived since the last batch, in order: messages and broker marks.
    enum Incoming {
        case message(MosquittoClient.Message)
        case mark(BrokerMark)
        /// A person's acknowledgement from the API, answered once it is committed.
        case ack(Acknowledgement, CheckedContinuation<AckInbox.Answer, Never>)
    }
    let acks: AckInbox
    var incoming: [Incoming] = []
    /// Between an accepted CONNACK and the loss of that connection.
    var connected = false
    /// Arrival times never go back, whatever the wall clock does.
    var lastArrival: Millis = 0
    var outage: BrokerOutage
    /// A batch whose commit failed, retried until it is on disk (see `commit`).
    var held: PendingCommit?
    var lastHaltLog: Millis = -60_000
    /// An error the loop cannot go on after (a damaged state database).
    var fatal: Error?
    /// `journal.max_size`, or less after the disk filled up once (kept in the state database).
    var journalLimit: Int64 = .max

    public init(
        setup: Setup, password: String?, logger: Logger, gauge: PendingGauge, dispatcher: Dispatcher, status: IngestStatus, stop: StopFlag,
        reload: StopFlag, metrics: any IngestMetrics, acks: AckInbox
    ) {
        self.acks = acks
        self.reload = reload
        self.metrics = metrics
        self.setup = setup
        self.password = password
        self.logger = logger
        self.gauge = gauge
        self.dispatcher = dispatcher
        self.status = status
        self.stop = stop
        self.evaluator = setup.evaluator()
        self.outage = BrokerOutage(url: setup.config.broker.url, after: setup.config.broker.blindIncidentAfter, lostAt: Time.now())
    }

    var config: VigilConfig { setup.config }

    public func run() throws {
        let sinks = config.dispatch.sinks.map { EventQueue.SinkRoute(name: $0.name, routes: $0.routes, minSeverity: $0.minSeverity) }
        store = try StateStore(path: config.stateDatabasePath, sinks: sinks, sync: config.journalSync)
        gauge.set(try store.queue.pendingCounts())
        try store.measureJournal()
        journalLimit = config.journalMaxSize
        if let saved = try store.state("journal_limit"), let n = Int64(String(decoding: saved, as: UTF8.self)) {
            journalLimit = min(journalLimit, n)
        }
        try? store.db.truncateWAL()
        let b = config.broker
        let prefix = config.broker.sharedGroup.map { "$share/\($0)/" } ?? ""
        client = try MQTTConnection(
            options: .init(
                host: b.host, port: b.port, clientID: b.clientID, cleanSession: b.cleanSession, protocolV5: b.protocolVersion == "5",
                keepaliveSeconds: Int(b.keepalive / 1000), username: b.username, password: password, useTLS: b.useTLS,
                caFile: b.tls.caFile.map(config.resolve), certFile: b.tls.certFile.map(config.resolve),
                keyFile: b.tls.keyFile.map(config.resolve), tlsInsecure: b.tls.insecure,
                sessionExpirySeconds: UInt32(b.sessionExpiry / 1000)),
            subscriptions: config.subscriptions.map { .init(filter: prefix + $0.pattern.filter, qos: Int32(config.broker.qos)) },
            reconnect: Backoff(initial: b.reconnectInitial, max: b.reconnectMax))
        let startAt = Time.now()
        lastArrival = startAt
        do { try recover(startAt: startAt) } catch is StopRequested { return }
        statsBase.at = startAt
        lastStats = startAt
        status.values.withLock {
            $0.ready = true; $0.lastLoopAt = Time.monotonicMillis()
        }
        notifier.notify("READY=1\nSTATUS=started, connecting to \(config.broker.url)")
        if ProcessInfo.processInfo.environment["VIGIL_TEST_WEDGE"] == "ingest" {
            // Test hook: a stage that stops making progress (the watchdog must notice).
            logger.warning("test hook: ingestion wedged")
            while !stop.isSet { usleep(50_000) }
        }
        loop()
        for p in acks.take() { p.answer.resume(returning: .unavailable("vigil is stopping")) }
        if let fatal { throw fatal }
        // Stopping: the connection ends here (a broker mark), what is in hand
        // is committed with a checkpoint, then the PUBACKs may go — unless a
        // commit is still held: then nothing is acknowledged and the broker
        // sends those messages again after the restart.
        if held == nil {
            if connected { connectionLost(Time.now()) }
            lastCheckpoint = 0
            processBatch(now: Time.now())
        }
        if held == nil { client.committed() }
        client.stop()
    }

    func loop() {
        while !stop.isSet && fatal == nil {
            if let c = held {
                // Intake stays stopped until the held batch is on disk; the loop keeps turning for stop, health and stats.
                if Time.monotonicMillis() >= c.nextTry {
                    // A failed transaction leaves its frames in the WAL file: checkpoint and truncate
                    // it first, so the retry has the space those took.
                    try? store.db.truncateWAL()
                    commit(c)
                }
                status.values.withLock { $0.lastLoopAt = Time.monotonicMillis() }
                if held != nil { usleep(100_000) }
                periodic(Time.now())
                continue
            }
            if reload.take() { reloadRules() }
            let full = gauge.pending >= config.dispatch.maxPending
            if !full { heldBySevereEvents = false }
            // block: a full queue stops reading. shed: reading goes on, events
            // below shed_below are dropped, and a severe event arriving while
            // full stops reading until the queue drains.
            backpressured = full && (config.dispatch.overflow == .block || heldBySevereEvents)
            // Blind, the clock stands still: only the outage incident, acknowledgements and checkpoints move.
            let budget = client.isConnected ? min(sleepBudget(Time.now()), 1000) : 200
            let turn = client.turn(timeoutMs: Int32(max(0, budget)), read: !backpressured, wake: acks.wakeFD)
            // A CONNACK comes before the messages of its connection; a loss after them.
            for n in turn.notices { if case .connected = n { handle(n) } }
            for m in turn.messages { incoming.append(.message(m)) }
            for n in turn.notices { if case .connected = n {} else { handle(n) } }
            takeAcknowledgements()
            processBatch(now: Time.now())
            // Not one byte goes out while a batch is held: its PUBACKs wait in libmosquitto's queue.
            if held != nil { continue }
            client.committed()
            periodic(Time.now())
        }
    }

    /// What the connection reports: logged, and journaled as broker marks.
    func handle(_ notice: MQTTConnection.Notice) {
        let broker = Logger.MetadataValue.string(config.broker.url)
        switch notice {
        case .connected(let sessionPresent):
            endRedeliveryFilter()
            if sessionPresent && config.broker.qos > 0 { armRedeliveryFilter() }
            status.values.withLock { $0.connected = true }
            if !connected {
                connected = true
                incoming.append(.mark(.connected))
            }
            logger.notice(
                "broker connected",
                metadata: [
                    "broker": broker, "client_id": .string(config.broker.clientID), "session_present": .stringConvertible(sessionPresent),
                ])
        case .connectFailed(let reason, let refused, let retryIn):
            connectionLost(Time.now())
            logger.error(
                refused ? "broker refused the connection" : "broker connect failed",
                metadata: [
                    "broker": broker, refused ? "reason" : "error": .string(reason), "retry_in": .string(Units.formatDuration(retryIn)),
                ])
        case .lost(let reason, let retryIn):
            connectionLost(Time.now())
            if !stop.isSet {
                logger.warning(
                    "broker connection lost",
                    metadata: [
                        "broker": broker, "error": .string(reason), "retry_in": .string(Units.formatDuration(retryIn)),
                    ])
            }
        case .subscribed(let refused):
            for filter in refused { logger.error("subscription refused by the broker", metadata: ["topic": .string(filter)]) }
            logger.notice(
                "subscriptions active",
                metadata: [
                    "count": .stringConvertible(config.subscriptions.count - refused.count), "qos": .stringConvertible(config.broker.qos),
                    "shared_group": .string(config.broker.sharedGroup ?? "none"),
                ])
        case .published:
            break
        }
    }

    func takeAcknowledgements() {
        for p in acks.take() { incoming.append(.ack(p.ack, p.answer)) }
    }

    /// The connection is gone: a `lost` mark (once per connection), and the outage clock starts.
    func connectionLost(_ now: Millis) {
        status.values.withLock { $0.connected = false }
        outage.connectionLost(at: now)
        guard connected else { return }
        connected = false
        incoming.append(.mark(.lost))
    }

    /// How long the loop may sleep: until the next rule timer, at most half a keepalive.
    func sleepBudget(_ now: Millis) -> Millis {
        var budget = min(config.broker.keepalive / 2, 1000)
        if let due = evaluator.engine.nextDeadline() { budget = min(budget, max(0, due - now)) }
        // A trim under way goes on when its next chunk is due, traffic or not.
        return min(budget, max(0, nextTrim - now))
    }

    func armRedeliveryFilter() {
        do {
            redelivery = RedeliveryFilter(seqByPacketID: try store.recentPacketIDs(last: RedeliveryFilter.window))
        } catch {
            redelivery = nil
            logger.warning("cannot read the journal tail", metadata: ["error": .string("\(error)")])
        }
    }

    /// Whether a message is the broker's resending of one already journaled.
    func isRedelivery(_ m: MosquittoClient.Message) -> Bool {
        guard redelivery != nil else { return false }
        let resend = redelivery!.isResend(packetID: m.mid, qos: m.qos) { seq in
            (try? store.journalRow(seq, is: m.topic, m.payload)) == true
        }
        if redelivery!.ended { endRedeliveryFilter() }
        return resend
    }

    func endRedeliveryFilter() {
        if let f = redelivery, f.skipped > 0 {
            logger.notice("redelivered messages skipped", metadata: ["count": .stringConvertible(f.skipped)])
        }
        redelivery = nil
    }
}

import CMosquitto
import VigilCore
#if canImport(Glibc)
import Glibc
#endif

/// The one driver of an MQTT client in vigil: ingestion, the MQTT sink, the
/// simulator, the benchmark's publisher and the tests all turn this. It owns
/// a `MosquittoClient` and a `ConnectionStateMachine`, feeds the machine what
/// the library reports and does what the machine returns: connecting and
/// reconnecting with the backoff, subscribing after every accepted CONNACK,
/// and writing only when no message it handed over is still uncommitted.
///
/// Not thread-safe: one thread turns it.
public final class MQTTConnection {
    public struct Subscription: Sendable {
        public var filter: String
        public var qos: Int32
        public init(filter: String, qos: Int32) { self.filter = filter; self.qos = qos }
    }

    /// What happened during a turn, in order.
    public enum Notice: Sendable, Equatable {
        case connected(sessionPresent: Bool)
        /// An attempt failed: unreachable, or `refused` by the broker's CONNACK.
        case connectFailed(reason: String, refused: Bool, retryIn: Millis)
        case lost(reason: String, retryIn: Millis)
        /// Every subscription of this connection was answered; `refused` are the filters the broker declined.
        case subscribed(refused: [String])
        /// PUBACK of a QoS 1 publish (or the write of a QoS 0 one).
        case published(mid: Int32)
    }

    /// One turn's outcome. A `connected` notice concerns the messages of the
    /// same turn; a `lost` one comes after them.
    public struct Turn {
        public var notices: [Notice] = []
        public var messages: [MosquittoClient.Message] = []
        public var published: Int { notices.reduce(0) { n, e in if case .published = e { n + 1 } else { n } } }
    }

    public let client: MosquittoClient
    public private(set) var machine: ConnectionStateMachine
    let subscriptions: [Subscription]
    let clock: () -> Millis
    /// Packet ids of SUBSCRIBEs not yet answered, with their filters.
    var pendingSubscriptions: [Int32: String] = [:]
    var refusedSubscriptions: [String] = []
    /// Messages read while `connect(timeoutMs:)` waited for the CONNACK: the next turn hands them over.
    var carried: [MosquittoClient.Message] = []

    public init(
        options: MosquittoClient.Options, subscriptions: [Subscription] = [], reconnect: Backoff,
        clock: @escaping () -> Millis = Time.monotonicMillis
    ) throws(MosquittoError) {
        client = try MosquittoClient(options: options)
        machine = ConnectionStateMachine(backoff: reconnect)
        self.subscriptions = subscriptions
        self.clock = clock
    }

    public var isConnected: Bool { machine.isConnected }
    public var options: MosquittoClient.Options { client.options }

    /// One turn: an attempt when one is due; then wait up to `timeoutMs` for
    /// the socket (or for `wake` to become readable), read what it holds (when
    /// `read`), write what is queued (unless a message read is uncommitted),
    /// keep the connection alive. Messages returned are uncommitted until
    /// `committed()`.
    public func turn(timeoutMs: Int32, read: Bool = true, wake: Int32 = -1, maxMessages: Int = 4096, maxBytes: Int = 1 << 20) -> Turn {
        var turn = Turn()
        // What the library reported since the last turn belongs to the
        // connection it reported it on: a write of `committed()` that failed
        // and closed the socket, a DISCONNECT of ours. Fed to the machine now,
        // before an attempt is due, it can never be taken for the next
        // attempt's outcome.
        events(into: &turn)
        perform(machine.tick(now: clock()), into: &turn)
        if client.socket >= 0 {
            return connectedTurn(&turn, timeoutMs: timeoutMs, read: read, wake: wake, maxMessages: maxMessages, maxBytes: maxBytes)
        }
        switch machine.state {
        case .connected, .connecting:
            // The library closed the socket outside a read or write of ours.
            perform(machine.connectionLost(reason: "the connection closed", now: clock()), into: &turn)
        default: break
        }
        // Not connected: sleep until the next attempt, the timeout or a wake-up.
        let until = machine.nextAttempt.map { max(0, $0 - clock()) } ?? Millis(timeoutMs)
        sleep(ms: Int32(min(Millis(timeoutMs), until)), wake: wake)
        return turn
    }

    private func connectedTurn(_ turn: inout Turn, timeoutMs: Int32, read: Bool, wake: Int32, maxMessages: Int, maxBytes: Int) -> Turn {
        if case .waiting = machine.state {
            // Messages come only from a connection the machine holds: a socket
            // it has given up on is closed unread, and the DISCONNECT's report
            // with it.
            client.disconnect()
            _ = client.takeEvents()
            return turn
        }
        var rc = MOSQ_ERR_SUCCESS.rawValue
        if machine.mayWrite { rc = client.writePending() }
        if rc == 0 {
            let ready = client.wait(read: read, write: machine.mayWrite, timeoutMs: timeoutMs, wake: wake)
            if ready.readable && read { rc = client.readAvailable(maxMessages: maxMessages, maxBytes: maxBytes) }
        }
        events(into: &turn)
        turn.messages = client.takeMessages()
        machine.messagesRead(turn.messages.count)
        if !carried.isEmpty {
            turn.messages = carried + turn.messages
            carried.removeAll()
        }
        if rc == 0 && machine.mayWrite { rc = client.writePending() }
        if rc == 0 { rc = client.housekeeping() }
        events(into: &turn)
        if rc != 0 || client.socket < 0 {
            let reason = MosquittoError(code: rc == 0 ? MOSQ_ERR_NO_CONN.rawValue : rc, context: "connection").description
            perform(machine.connectionLost(reason: reason, now: clock()), into: &turn)
            if client.socket >= 0 { client.disconnect() }
        }
        return turn
    }

    /// Everything the last turns handed over is committed: its PUBACKs go now.
    public func committed() {
        var turn = Turn()
        perform(machine.committed(), into: &turn)
    }

    public func publish(topic: String, payload: [UInt8], qos: Int32, retain: Bool = false) throws(MosquittoError) -> Int32 {
        try client.publish(topic: topic, payload: payload, qos: qos, retain: retain)
    }

    /// Turns until the first CONNACK is accepted or refused, at most `timeoutMs`.
    /// Returns nil once connected, or why not.
    public func connect(timeoutMs: Millis) -> String? {
        let until = clock() + timeoutMs
        var why = "no answer within \(Units.formatDuration(timeoutMs))"
        while clock() < until {
            let t = turn(timeoutMs: 50)
            carried += t.messages
            for n in t.notices {
                switch n {
                case .connected: return nil
                case .connectFailed(let reason, let refused, _):
                    if refused { return "the broker refused the connection: \(reason)" }
                    why = reason
                default: break
                }
            }
        }
        return why
    }

    /// DISCONNECT, flushed unless a message read is uncommitted (the broker then keeps it).
    public func stop() {
        var turn = Turn()
        perform(machine.stop(), into: &turn)
    }

    private func perform(_ actions: [ConnectionStateMachine.Action], into turn: inout Turn) {
        for action in actions {
            switch action {
            case .connect(let first):
                do {
                    if first { try client.connect() } else { try client.reconnect() }
                } catch {
                    perform(machine.connectFailed(reason: error.description, now: clock()), into: &turn)
                }
            case .subscribe:
                pendingSubscriptions.removeAll()
                refusedSubscriptions.removeAll()
                for s in subscriptions {
                    do { pendingSubscriptions[try client.subscribe(s.filter, qos: s.qos)] = s.filter } catch {
                        refusedSubscriptions.append(s.filter)
                    }
                }
            case .announceConnected(let present): turn.notices.append(.connected(sessionPresent: present))
            case .announceFailed(let reason, let refused, let retryIn):
                turn.notices.append(.connectFailed(reason: reason, refused: refused, retryIn: retryIn))
            case .announceLost(let reason, let retryIn): turn.notices.append(.lost(reason: reason, retryIn: retryIn))
            case .write: _ = client.writePending()
            case .disconnect: client.disconnect()
            }
        }
    }

    /// Library callbacks since the last look, fed to the machine in order.
    private func events(into turn: inout Turn) {
        for e in client.takeEvents() {
            switch e {
            case .connected(let code, let reason, let present):
                perform(machine.connack(code: code, reason: reason, sessionPresent: present, now: clock()), into: &turn)
            case .disconnected(let code):
                let reason = code == 0 ? "disconnected" : MosquittoError(code: code, context: "disconnected").description
                perform(machine.connectionLost(reason: reason, now: clock()), into: &turn)
            case .subscribed(let mid, let granted):
                guard let filter = pendingSubscriptions.removeValue(forKey: mid) else { break }
                if granted.contains(where: { $0 >= 0x80 }) { refusedSubscriptions.append(filter) }
                if pendingSubscriptions.isEmpty { turn.notices.append(.subscribed(refused: refusedSubscriptions)) }
            case .published(let mid):
                turn.notices.append(.published(mid: mid))
            }
        }
    }

    private func sleep(ms: Int32, wake: Int32) {
        guard ms > 0 else { return }
        if wake >= 0 {
            var p = pollfd(fd: wake, events: Int16(POLLIN), revents: 0)
            _ = poll(&p, 1, ms)
        } else {
            usleep(UInt32(ms) * 1000)
        }
    }
}

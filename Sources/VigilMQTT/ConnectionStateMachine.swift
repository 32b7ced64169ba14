import VigilCore

/// The life of one MQTT client connection as a value: events go in, actions
/// come out. It does no I/O and has no clock; `MQTTConnection` feeds it what
/// libmosquitto reports and carries out what it returns, and the tests feed it
/// by hand with a clock of their own.
///
/// The acknowledgement rule lives here. A message handed to the owner is not
/// yet safe: until the owner says it is committed (`committed()`), no byte is
/// written to the broker — not its PUBACK, not a PINGREQ, nothing that would
/// flush libmosquitto's queue of PUBACKs with it. So a crash between the read
/// and the commit leaves every such message unacknowledged, and the broker
/// sends it again.
public struct ConnectionStateMachine: Sendable {
    public enum State: Equatable, Sendable {
        /// Nothing attempted yet.
        case idle
        /// The socket is open and CONNECT queued; waiting for the CONNACK.
        case connecting
        /// CONNACK accepted. `sessionPresent`: the broker kept our session and
        /// may send again what we had not acknowledged.
        case connected(sessionPresent: Bool)
        /// Lost, refused or unreachable: the next attempt is at `until`.
        case waiting(until: Millis)
        case stopped
    }

    public enum Action: Equatable, Sendable {
        /// Open the socket and send CONNECT (`first`: the first attempt of this client).
        case connect(first: Bool)
        /// Subscribe to the owner's filters (after every accepted CONNACK: a clean or expired session holds none).
        case subscribe
        /// Tell the owner the connection is up.
        case announceConnected(sessionPresent: Bool)
        /// Tell the owner an attempt failed (`refused`: the broker answered
        /// CONNACK with an error; otherwise it could not be reached).
        case announceFailed(reason: String, refused: Bool, retryIn: Millis)
        /// Tell the owner an established connection (or a pending CONNECT) ended.
        case announceLost(reason: String, retryIn: Millis)
        /// Flush what libmosquitto queued: PUBACKs, PUBLISH, SUBSCRIBE, PINGREQ, DISCONNECT.
        case write
        /// Send DISCONNECT.
        case disconnect
    }

    public private(set) var state: State = .idle
    public let backoff: Backoff
    /// Failed attempts since the last accepted CONNACK (the backoff's exponent).
    public private(set) var failures = 0
    /// Messages handed to the owner and not yet committed.
    public private(set) var uncommitted = 0
    private var attempted = false

    public init(backoff: Backoff) { self.backoff = backoff }

    /// Whether bytes may go to the broker now: never while a message read is uncommitted.
    public var mayWrite: Bool { uncommitted == 0 && state != .idle && state != .stopped }

    public var isConnected: Bool { if case .connected = state { true } else { false } }

    /// When the next attempt is due, while waiting.
    public var nextAttempt: Millis? { if case .waiting(let until) = state { until } else { nil } }

    /// Time passes (and the first call starts the client): an attempt when one is due.
    public mutating func tick(now: Millis) -> [Action] {
        switch state {
        case .idle:
            state = .connecting
            attempted = true
            return [.connect(first: true)]
        case .waiting(let until) where now >= until:
            state = .connecting
            return [.connect(first: !attempted)]
        default:
            return []
        }
    }

    /// Opening the socket (or sending CONNECT) failed at once.
    public mutating func connectFailed(reason: String, now: Millis) -> [Action] {
        guard state == .connecting else { return [] }
        return [failed(reason: reason, refused: false, now: now)]
    }

    /// A CONNACK: `code` 0 is accepted; anything else is the broker's refusal.
    public mutating func connack(code: Int32, reason: String, sessionPresent: Bool, now: Millis) -> [Action] {
        guard state == .connecting else { return [] }
        if code != 0 { return [failed(reason: reason, refused: true, now: now)] }
        state = .connected(sessionPresent: sessionPresent)
        failures = 0
        return [.announceConnected(sessionPresent: sessionPresent), .subscribe]
    }

    /// The socket closed, a read or write failed, or the broker disconnected us.
    public mutating func connectionLost(reason: String, now: Millis) -> [Action] {
        switch state {
        case .connected:
            let retryIn = scheduleRetry(now: now)
            return [.announceLost(reason: reason, retryIn: retryIn)]
        case .connecting:
            return [failed(reason: reason, refused: false, now: now)]
        default:
            return []
        }
    }

    /// The owner took `count` messages: writes wait for `committed()`.
    public mutating func messagesRead(_ count: Int) {
        uncommitted += count
    }

    /// Everything the owner took is on disk: what libmosquitto queued may go.
    public mutating func committed() -> [Action] {
        uncommitted = 0
        return mayWrite ? [.write] : []
    }

    /// The owner's turn reached its writing step.
    public func writeStep() -> [Action] { mayWrite ? [.write] : [] }

    /// The owner stops: DISCONNECT, and its flush unless a read is uncommitted
    /// (then the broker keeps those messages for the next start).
    public mutating func stop() -> [Action] {
        let wasUp = state != .idle && state != .stopped
        let flush = mayWrite
        state = .stopped
        guard wasUp else { return [] }
        return flush ? [.disconnect, .write] : [.disconnect]
    }

    private mutating func failed(reason: String, refused: Bool, now: Millis) -> Action {
        let retryIn = scheduleRetry(now: now)
        return .announceFailed(reason: reason, refused: refused, retryIn: retryIn)
    }

    private mutating func scheduleRetry(now: Millis) -> Millis {
        let wait = backoff.delay(afterAttempts: failures)
        failures += 1
        state = .waiting(until: now + wait)
        return wait
    }
}

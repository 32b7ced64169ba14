import CMosquitto
import VigilCore
#if canImport(Glibc)
import Glibc
#endif

/// libmosquitto's return codes, with the library's own words.
public struct MosquittoError: Error, Sendable, CustomStringConvertible {
    public let code: Int32
    public let context: String

    public init(code: Int32, context: String) { self.code = code; self.context = context }
    public var description: String {
        let text = String(cString: mosquitto_strerror(code))
        if code == MOSQ_ERR_ERRNO.rawValue { return "\(context): \(String(cString: strerror(errno)))" }
        if code == MOSQ_ERR_TLS.rawValue {
            return
                "\(context): TLS handshake failed — check that tls.ca_file is the authority that signed the broker's certificate, that the certificate names this host, and the client certificate and key if the broker asks for them"
        }
        return "\(context): \(text)"
    }
}

/// The only type that touches libmosquitto. It does not run a network thread:
/// its owner turns the loop (`readAvailable`, `writePending`, `housekeeping`)
/// so that acknowledgements leave only after the owner committed what it read.
public final class MosquittoClient {
    public struct Options: Sendable {
        public var host: String
        public var port: Int
        public var clientID: String
        public var cleanSession: Bool
        public var protocolV5: Bool
        public var keepaliveSeconds: Int
        public var username: String?
        public var password: String?
        public var caFile: String?
        public var certFile: String?
        public var keyFile: String?
        public var tlsInsecure: Bool
        public var useTLS: Bool
        /// MQTT 5: Session Expiry Interval in seconds, sent in every CONNECT
        /// (without it an MQTT 5 broker ends the session at disconnect).
        public var sessionExpirySeconds: UInt32

        public init(
            host: String, port: Int, clientID: String, cleanSession: Bool = false, protocolV5: Bool = false,
            keepaliveSeconds: Int = 30, username: String? = nil, password: String? = nil, useTLS: Bool = false,
            caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, tlsInsecure: Bool = false,
            sessionExpirySeconds: UInt32 = 0
        ) {
            self.sessionExpirySeconds = sessionExpirySeconds
            self.host = host; self.port = port; self.clientID = clientID; self.cleanSession = cleanSession
            self.protocolV5 = protocolV5; self.keepaliveSeconds = keepaliveSeconds; self.username = username
            self.password = password; self.useTLS = useTLS; self.caFile = caFile; self.certFile = certFile
            self.keyFile = keyFile; self.tlsInsecure = tlsInsecure
        }
    }

    public struct Message: Sendable {
        public var topic: String
        public var payload: [UInt8]
        public var qos: Int32
        public var retain: Bool
        /// The MQTT packet id (QoS 1): a redelivery after a reconnect carries the same one.
        public var mid: Int32

        public init(topic: String, payload: [UInt8], qos: Int32, retain: Bool, mid: Int32) {
            self.topic = topic; self.payload = payload; self.qos = qos; self.retain = retain; self.mid = mid
        }
    }

    public enum Event: Sendable {
        /// CONNACK: 0 is success; otherwise the broker's reason. `sessionPresent`:
        /// the broker kept our session, so it may resend unacknowledged messages.
        case connected(code: Int32, reason: String, sessionPresent: Bool)
        case disconnected(code: Int32)
        case subscribed(mid: Int32, grantedQoS: [Int32])
        /// PUBACK for QoS 1 (or the write, for QoS 0).
        case published(mid: Int32)
    }

    let mosq: OpaquePointer
    public let options: Options
    /// Messages received since the last `takeMessages()`; the callback copies them here.
    var inbox: [Message] = []
    var inboxBytes = 0
    var events: [Event] = []
    var topics = TopicInterner()

    private static let initOnce: Void = {
        mosquitto_lib_init(); return ()
    }()

    public static var libraryVersion: String {
        var major: Int32 = 0, minor: Int32 = 0, rev: Int32 = 0
        mosquitto_lib_version(&major, &minor, &rev)
        return "\(major).\(minor).\(rev)"
    }

    public init(options: Options) throws(MosquittoError) {
        _ = MosquittoClient.initOnce
        self.options = options
        guard let m = mosquitto_new(options.clientID, options.cleanSession, nil) else {
            throw MosquittoError(code: MOSQ_ERR_NOMEM.rawValue, context: "mosquitto_new")
        }
        mosq = m
        mosquitto_user_data_set(m, Unmanaged.passUnretained(self).toOpaque())
        // We turn the network loop ourselves; this keeps PUBACKs queued until our next write.
        mosquitto_threaded_set(m, true)
        mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, options.protocolV5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311)
        // Unlimited in-flight messages from the broker's side is decided by the broker; ours is for publishing.
        mosquitto_int_option(m, MOSQ_OPT_SEND_MAXIMUM, 1000)
        if let u = options.username {
            try check(mosquitto_username_pw_set(m, u, options.password), "username")
        }
        if options.useTLS {
            try check(
                mosquitto_tls_set(m, options.caFile, options.caFile == nil ? "/etc/ssl/certs" : nil, options.certFile, options.keyFile, nil), "TLS settings")
            if options.tlsInsecure { mosquitto_tls_insecure_set(m, true) }
        }
        installCallbacks()
    }

    deinit {
        mosquitto_destroy(mosq)
    }

    func check(_ rc: Int32, _ context: String) throws(MosquittoError) {
        if rc != MOSQ_ERR_SUCCESS.rawValue { throw MosquittoError(code: rc, context: context) }
    }

    static func from(_ ud: UnsafeMutableRawPointer?) -> MosquittoClient? {
        guard let ud else { return nil }
        return Unmanaged<MosquittoClient>.fromOpaque(ud).takeUnretainedValue()
    }

    private func installCallbacks() {
        mosquitto_connect_v5_callback_set(mosq) { _, ud, rc, flags, _ in
            guard let c = MosquittoClient.from(ud) else { return }
            let reason = rc == 0 ? "accepted" : String(cString: mosquitto_connack_string(rc))
            c.events.append(.connected(code: rc, reason: reason, sessionPresent: flags & 1 != 0))
        }
        mosquitto_disconnect_callback_set(mosq) { _, ud, rc in
            MosquittoClient.from(ud)?.events.append(.disconnected(code: rc))
        }
        mosquitto_subscribe_callback_set(mosq) { _, ud, mid, count, granted in
            guard let c = MosquittoClient.from(ud) else { return }
            var qos: [Int32] = []
            if let granted { for i in 0..<Int(count) { qos.append(granted[i]) } }
            c.events.append(.subscribed(mid: mid, grantedQoS: qos))
        }
        mosquitto_publish_callback_set(mosq) { _, ud, mid in
            MosquittoClient.from(ud)?.events.append(.published(mid: mid))
        }
        mosquitto_message_callback_set(mosq) { _, ud, msg in
            guard let c = MosquittoClient.from(ud), let msg else { return }
            // The library frees topic and payload after we return: copy them now.
            let m = msg.pointee
            let topic = m.topic.map { c.topics.string($0) } ?? ""
            var payload: [UInt8] = []
            if m.payloadlen > 0, let p = m.payload {
                payload = Array(UnsafeRawBufferPointer(start: p, count: Int(m.payloadlen)))
            }
            c.inboxBytes += payload.count
            c.inbox.append(Message(topic: topic, payload: payload, qos: m.qos, retain: m.retain, mid: m.mid))
        }
    }

    /// Opens the TCP (or TLS) connection and sends CONNECT. The CONNACK arrives later as `.connected`.
    public func connect() throws(MosquittoError) {
        if options.protocolV5 {
            // libmosquitto's reconnect sends no CONNECT properties: every
            // attempt connects anew with the Session Expiry Interval.
            var props: OpaquePointer?
            defer { mosquitto_property_free_all(&props) }
            if options.sessionExpirySeconds > 0 {
                try check(
                    mosquitto_property_add_int32(&props, Int32(MQTT_PROP_SESSION_EXPIRY_INTERVAL.rawValue), options.sessionExpirySeconds),
                    "session expiry property")
            }
            try check(
                mosquitto_connect_bind_v5(mosq, options.host, Int32(options.port), Int32(options.keepaliveSeconds), nil, props),
                "connect to \(options.host):\(options.port)")
            return
        }
        try check(
            mosquitto_connect(mosq, options.host, Int32(options.port), Int32(options.keepaliveSeconds)),
            "connect to \(options.host):\(options.port)")
    }

    public func reconnect() throws(MosquittoError) {
        if options.protocolV5 { return try connect() }
        try check(mosquitto_reconnect(mosq), "reconnect to \(options.host):\(options.port)")
    }

    public func disconnect() {
        mosquitto_disconnect(mosq)
    }

    /// The socket to poll, or -1 when not connected.
    public var socket: Int32 { mosquitto_socket(mosq) }

    public var wantsWrite: Bool { mosquitto_want_write(mosq) }

    /// Reads packets while the socket has data, up to `maxMessages` messages
    /// or `maxBytes` of payload (one batch is one transaction: it must stay
    /// small enough to commit on a nearly full disk).
    /// Returns the library's status (non-zero: the connection is lost).
    public func readAvailable(maxMessages: Int, maxBytes: Int = .max) -> Int32 {
        let fd = socket
        guard fd >= 0 else { return MOSQ_ERR_NO_CONN.rawValue }
        // libmosquitto reads one packet per call, and a call on an empty socket
        // is one read that finds nothing: keep calling while calls bring messages,
        // and ask the socket (poll) only after a packet that was not a message.
        while inbox.count < maxMessages && inboxBytes < maxBytes {
            let before = inbox.count
            let rc = mosquitto_loop_read(mosq, 1)
            if rc != MOSQ_ERR_SUCCESS.rawValue { return rc }
            if inbox.count > before { continue }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&p, 1, 0) <= 0 || p.revents & Int16(POLLIN) == 0 { break }
        }
        return MOSQ_ERR_SUCCESS.rawValue
    }

    /// Writes whatever is queued: PUBACKs, SUBSCRIBE, PUBLISH, PINGREQ.
    public func writePending() -> Int32 {
        guard socket >= 0 else { return MOSQ_ERR_NO_CONN.rawValue }
        return mosquitto_loop_write(mosq, 1)
    }

    /// Keepalive pings and retries; call at least every keepalive/2.
    public func housekeeping() -> Int32 { mosquitto_loop_misc(mosq) }

    public func subscribe(_ filter: String, qos: Int32) throws(MosquittoError) -> Int32 {
        var mid: Int32 = 0
        try check(mosquitto_subscribe(mosq, &mid, filter, qos), "subscribe \(filter)")
        return mid
    }

    public func publish(topic: String, payload: [UInt8], qos: Int32, retain: Bool = false) throws(MosquittoError) -> Int32 {
        var mid: Int32 = 0
        let rc = payload.withUnsafeBytes { buf in
            mosquitto_publish(mosq, &mid, topic, Int32(buf.count), buf.baseAddress, qos, retain)
        }
        try check(rc, "publish \(topic)")
        return mid
    }

    public func takeMessages() -> [Message] {
        defer { inbox.removeAll(keepingCapacity: true); inboxBytes = 0 }
        return inbox
    }

    public func takeEvents() -> [Event] {
        defer { events.removeAll(keepingCapacity: true) }
        return events
    }

    public var pendingMessageCount: Int { inbox.count }

    /// Waits until the socket is readable (when `read`) or writable (when
    /// `write` and the library has something to write), or the timeout passes.
    /// `wake`: another descriptor that ends the wait when readable (the owner's inbox).
    public func wait(read: Bool, write: Bool = true, timeoutMs: Int32, wake: Int32 = -1) -> (readable: Bool, writable: Bool) {
        let fd = socket
        guard fd >= 0 else { usleep(UInt32(max(0, timeoutMs)) * 1000); return (false, false) }
        var ev: Int16 = 0
        if read { ev |= Int16(POLLIN) }
        if write && wantsWrite { ev |= Int16(POLLOUT) }
        var p = [pollfd(fd: fd, events: ev, revents: 0), pollfd(fd: wake, events: Int16(POLLIN), revents: 0)]
        let n = poll(&p, wake >= 0 ? 2 : 1, timeoutMs)
        if n <= 0 { return (false, false) }
        let hup = p[0].revents & Int16(POLLHUP | POLLERR) != 0
        return (p[0].revents & Int16(POLLIN) != 0 || hup, p[0].revents & Int16(POLLOUT) != 0)
    }
}

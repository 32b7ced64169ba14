import Foundation
import Logging
import Synchronization
import VigilCore
import VigilMQTT
#if canImport(Glibc)
import Glibc
#endif

/// Publishes each event with QoS 1 to a topic rendered from a template
/// (`vigil/incidents/{route}/{severity}`), on a connection of its own; an
/// event counts as delivered when its PUBACK arrives.
public final class MQTTSink: Sink, @unchecked Sendable {
    // @unchecked: the client and the in-flight table are only touched on the
    // sink's own network thread; requests reach it through the `inbox` mutex.
    public let name: String
    let template: String
    let qos: Int32
    let options: MosquittoClient.Options
    let logger: Logger
    let timeout: Millis

    struct Request {
        var topic: String
        var payload: [UInt8]
        var continuation: CheckedContinuation<DeliveryOutcome, Never>
    }
    private let inbox = Mutex<[Request]>([])
    private let stop = Atomic<Bool>(false)

    public init(name: String, template: String, qos: Int, options: MosquittoClient.Options, timeout: Millis, logger: Logger) {
        self.name = name
        self.template = template
        self.qos = Int32(qos)
        self.options = options
        self.timeout = timeout
        self.logger = logger
    }

    /// Runs the sink's connection on a thread of its own until `shutdown()`.
    public func run() async {
        await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
            let t = Thread { [self] in
                networkLoop()
                c.resume()
            }
            t.name = "vigil-mqtt-sink"
            t.start()
        }
    }

    public func shutdown() { stop.store(true, ordering: .releasing) }

    /// `{route}`, `{severity}`, `{rule}`, `{feed}`, `{channel}`, `{type}` (opened, updated, resolved).
    public static func topic(_ template: String, for body: String) -> String {
        guard let e = IncidentEvent.decode(body) else { return template }
        var t = template
        for (k, v) in [("route", e.route), ("severity", e.severity.name), ("rule", e.rule), ("feed", e.feed),
                       ("channel", e.channel ?? "none"), ("type", e.type.shortName)] {
            // A topic level must not gain levels or wildcards from a value.
            let safe = v.replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "+", with: "_").replacingOccurrences(of: "#", with: "_")
            t = t.replacingOccurrences(of: "{\(k)}", with: safe)
        }
        return t
    }

    public func deliver(_ batch: [EventQueue.Pending]) async -> [DeliveryOutcome] {
        await withTaskGroup(of: (Int, DeliveryOutcome).self) { group in
            for (i, p) in batch.enumerated() {
                let topic = MQTTSink.topic(template, for: p.body)
                let payload = Array(p.body.utf8)
                group.addTask {
                    let outcome = await withCheckedContinuation { (c: CheckedContinuation<DeliveryOutcome, Never>) in
                        self.inbox.withLock { $0.append(Request(topic: topic, payload: payload, continuation: c)) }
                    }
                    return (i, outcome)
                }
            }
            var results = [DeliveryOutcome](repeating: .retry(reason: "not attempted", retryAfter: nil), count: batch.count)
            for await (i, o) in group { results[i] = o }
            return results
        }
    }

    func networkLoop() {
        var inflight: [Int32: (CheckedContinuation<DeliveryOutcome, Never>, Millis)] = [:]
        var client: MosquittoClient?
        var connected = false
        var nextAttempt: Millis = 0
        var backoff: Millis = 500
        func failAll(_ why: String) {
            for (_, (c, _)) in inflight { c.resume(returning: .retry(reason: why, retryAfter: nil)) }
            inflight.removeAll()
        }
        while !stop.load(ordering: .acquiring) {
            let now = Time.now()
            if client == nil || client!.socket < 0 {
                connected = false
                failAll("MQTT sink not connected")
                if now >= nextAttempt {
                    do {
                        let c = try client ?? MosquittoClient(options: options)
                        client = c
                        try c.connect()
                        backoff = 500
                    } catch {
                        logger.warning("mqtt sink connect failed", metadata: ["sink": .string(name), "error": .string("\(error)")])
                        nextAttempt = now + backoff
                        backoff = min(backoff * 2, 30_000)
                    }
                }
                // Requests cannot go out now: answer them so the dispatcher backs off.
                let waiting = inbox.withLock { r -> [Request] in defer { r.removeAll() }; return r }
                for r in waiting { r.continuation.resume(returning: .retry(reason: "MQTT sink not connected", retryAfter: nil)) }
                usleep(50_000)
                continue
            }
            let c = client!
            if connected {
                let requests = inbox.withLock { r -> [Request] in defer { r.removeAll() }; return r }
                for r in requests {
                    do {
                        let mid = try c.publish(topic: r.topic, payload: r.payload, qos: qos)
                        if qos == 0 { r.continuation.resume(returning: .delivered) } else { inflight[mid] = (r.continuation, now) }
                    } catch {
                        r.continuation.resume(returning: .retry(reason: "\(error)", retryAfter: nil))
                    }
                }
            }
            let ready = c.wait(read: true, timeoutMs: 10)
            var rc: Int32 = 0
            if ready.readable { rc = c.readAvailable(maxMessages: 1000) }
            if rc == 0 { rc = c.writePending() }
            if rc == 0 { rc = c.housekeeping() }
            for e in c.takeEvents() {
                switch e {
                case .connected(let code, let reason, _):
                    connected = code == 0
                    if code == 0 { logger.notice("mqtt sink connected", metadata: ["sink": .string(name)]) }
                    else { logger.error("mqtt sink refused", metadata: ["sink": .string(name), "reason": .string(reason)]) }
                case .published(let mid):
                    inflight.removeValue(forKey: mid)?.0.resume(returning: .delivered)
                case .disconnected:
                    connected = false
                default:
                    break
                }
            }
            _ = c.takeMessages()
            // A PUBACK that never comes: give the event back for a retry.
            for (mid, (cont, at)) in inflight where now - at > timeout {
                inflight.removeValue(forKey: mid)
                cont.resume(returning: .retry(reason: "no PUBACK within \(Units.formatDuration(timeout))", retryAfter: nil))
            }
            if rc != 0 && c.socket < 0 { nextAttempt = Time.now() + backoff }
        }
        failAll("MQTT sink stopping")
        let left = inbox.withLock { r -> [Request] in defer { r.removeAll() }; return r }
        for r in left { r.continuation.resume(returning: .retry(reason: "MQTT sink stopping", retryAfter: nil)) }
        client?.disconnect()
        _ = client?.writePending()
    }
}

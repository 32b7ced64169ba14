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
        for (k, v) in [
            ("route", e.route), ("severity", e.severity.name), ("rule", e.rule), ("feed", e.feed),
            ("channel", e.channel ?? "none"), ("type", e.type.shortName),
        ] {
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

    /// The sink's connection is reached again with this backoff.
    static let reconnect = Backoff(initial: 500, max: 30_000)

    func networkLoop() {
        var inflight: [Int32: (CheckedContinuation<DeliveryOutcome, Never>, Millis)] = [:]
        func failAll(_ why: String) {
            for (_, (c, _)) in inflight { c.resume(returning: .retry(reason: why, retryAfter: nil)) }
            inflight.removeAll()
        }
        func answerWaiting(_ why: String) {
            let waiting = inbox.withLock { r -> [Request] in
                defer { r.removeAll() }; return r
            }
            for r in waiting { r.continuation.resume(returning: .retry(reason: why, retryAfter: nil)) }
        }
        var connection: MQTTConnection?
        var nextCreate: Millis = 0
        while !stop.load(ordering: .acquiring) {
            let now = Time.monotonicMillis()
            guard let c = connection else {
                // The client itself could not be made (TLS files, say): answer requests, try again later.
                answerWaiting("MQTT sink not connected")
                if now >= nextCreate {
                    do { connection = try MQTTConnection(options: options, reconnect: MQTTSink.reconnect) } catch {
                        logger.warning("mqtt sink connect failed", metadata: ["sink": .string(name), "error": .string("\(error)")])
                        nextCreate = now + MQTTSink.reconnect.max
                    }
                }
                usleep(50_000)
                continue
            }
            if c.isConnected {
                let requests = inbox.withLock { r -> [Request] in
                    defer { r.removeAll() }; return r
                }
                for r in requests {
                    do {
                        let mid = try c.publish(topic: r.topic, payload: r.payload, qos: qos)
                        if qos == 0 { r.continuation.resume(returning: .delivered) } else { inflight[mid] = (r.continuation, now) }
                    } catch {
                        r.continuation.resume(returning: .retry(reason: "\(error)", retryAfter: nil))
                    }
                }
            } else {
                // Requests cannot go out now: answer them so the dispatcher backs off.
                answerWaiting("MQTT sink not connected")
            }
            for notice in c.turn(timeoutMs: c.isConnected ? 10 : 50).notices {
                switch notice {
                case .connected:
                    logger.notice("mqtt sink connected", metadata: ["sink": .string(name)])
                case .connectFailed(let reason, let refused, let retryIn):
                    logger.log(
                        level: refused ? .error : .warning, refused ? "mqtt sink refused" : "mqtt sink connect failed",
                        metadata: [
                            "sink": .string(name), "error": .string(reason), "retry_in": .string(Units.formatDuration(retryIn)),
                        ])
                case .lost(let reason, _):
                    failAll("MQTT sink connection lost: \(reason)")
                case .published(let mid):
                    inflight.removeValue(forKey: mid)?.0.resume(returning: .delivered)
                case .subscribed:
                    break
                }
            }
            c.committed()
            // A PUBACK that never comes: give the event back for a retry.
            for (mid, (cont, at)) in inflight where Time.monotonicMillis() - at > timeout {
                inflight.removeValue(forKey: mid)
                cont.resume(returning: .retry(reason: "no PUBACK within \(Units.formatDuration(timeout))", retryAfter: nil))
            }
        }
        failAll("MQTT sink stopping")
        answerWaiting("MQTT sink stopping")
        connection?.stop()
    }
}

// vigil-bench: measures the dispatch queue. Run through scripts/bench:
//   vigil-bench enqueue DB N [SINKS]  events/s written to the outbox (batches of 500 per transaction)
//   vigil-bench serialize - N         events/s encoded as JSON (the body each queued event carries)
//   vigil-bench fill DB N             N pending events for sinks "log" and "file" (for start-up and stats timing)
//   vigil-bench deliver DB N CONC     events/s delivered to a local webhook receiver with CONC concurrency
import Crypto
import Foundation
import Logging
import VigilCore
import VigilDispatch
import VigilMQTT
import VigilStore

func event(_ i: Int) -> IncidentEvent {
    let sev: Severity = [.info, .minor, .major, .critical][i % 4]
    // Ids shaped like the engine's: the event time then a digest; incident ids a digest.
    let at: Millis = 1_795_852_830_000 + Millis(i) * 3
    let eventID = String(format: "%012llx", at) + Hex.encode(SHA256.hash(data: Array("e\(i)".utf8))).prefix(20)
    let incidentID = String(Hex.encode(SHA256.hash(data: Array("i\(i)".utf8))).prefix(32))
    return IncidentEvent(
        eventID: eventID, type: .opened, incidentID: incidentID, rule: "charging_pile_overheat", severity: sev,
        route: "fire_safety", feed: "charging_pile", channel: "cp-\(i % 1311)",
        key: JSONObject([("channel", .string("cp-\(i % 1311)"))]), title: "Charging pile cp-\(i % 1311) at 71 °C (B3 bike shed)",
        labels: JSONObject([("hazard", "fire")]), channelInfo: JSONObject([("community", "C001"), ("building", "B3")]),
        startedAt: 1_795_852_800_000, openedAt: 1_795_852_830_000, resolvedAt: nil, at: 1_795_852_830_000, count: 2,
        reading: ReadingSnapshot(
            topic: "estate/C001/charging_pile/cp-1/telemetry", receivedAt: 1_795_852_830_000,
            payload: JSONObject([("temperature_c", 71), ("current_a", 12.5)])))
}

func fill(_ path: String, _ n: Int, sinks: [String], batch: Int) throws -> Double {
    let db = try Database(path: path)
    let q = try EventQueue(db: db)
    let routes = sinks.map { EventQueue.SinkRoute(name: $0, routes: ["*"], minSeverity: .info) }
    // The events exist before the clock starts: this measures the queue, not the rule engine.
    let batches = stride(from: 0, to: n, by: batch).map { i in (i..<min(n, i + batch)).map(event) }
    let start = Date()
    for events in batches {
        try db.transaction { try q.enqueue(events, sinks: routes, now: Time.now()) }
    }
    return Date().timeIntervalSince(start)
}

/// A minimal keep-alive HTTP receiver answering 200 to everything.
func startReceiver() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    listen(fd, 64)
    Thread.detachNewThread {
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 { continue }
            Thread.detachNewThread {
                var buf = [UInt8](repeating: 0, count: 1 << 16)
                var pending: [UInt8] = []
                let reply = Array("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n".utf8)
                while true {
                    let n = buf.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
                    if n <= 0 { close(c); return }
                    pending += buf[0..<n]
                    // Answer each complete request (headers + Content-Length body).
                    while let h = pending.firstRange(of: [13, 10, 13, 10]) {
                        let head = String(decoding: pending[..<h.lowerBound], as: UTF8.self).lowercased()
                        var length = 0
                        if let r = head.range(of: "content-length:") {
                            length = Int(head[r.upperBound...].prefix { $0 != "\r" }.trimmingCharacters(in: .whitespaces)) ?? 0
                        }
                        guard pending.count >= h.upperBound + length else { break }
                        pending.removeFirst(h.upperBound + length)
                        _ = reply.withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                    }
                }
            }
        }
    }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// Publishes the messages of a recording as fast as the broker takes them,
/// with up to `window` QoS 1 messages unacknowledged; prints the rate.
func publish(file: String, host: String, port: Int, qos: Int32, limit: Int, window: Int) throws {
    var messages: [(String, [UInt8])] = []
    let fd = open(file, O_RDONLY)
    LineReader(fd: fd).forEachLine { line, _ in
        guard messages.count < limit, case .success(let r) = RecordedMessage.parse(line: line, maxDepth: 64) else { return }
        switch r.payload {
        case .bytes(let b): messages.append((r.topic, b))
        case .parsed(let v, _, _): messages.append((r.topic, Array(v.description.utf8)))
        }
    }
    close(fd)
    let c = try MQTTConnection(
        options: .init(host: host, port: port, clientID: "vigil-bench-\(getpid())", cleanSession: true),
        reconnect: Backoff(initial: 100, max: 1000))
    if let why = c.connect(timeoutMs: 10_000) { throw BenchError(why) }
    var sent = 0, acked = 0
    let start = Date()
    while acked < messages.count {
        if c.isConnected {
            while sent < messages.count, qos == 0 || sent - acked < window {
                _ = try c.publish(topic: messages[sent].0, payload: messages[sent].1, qos: qos)
                sent += 1
                if sent % 256 == 0 { break }
            }
        }
        acked += c.turn(timeoutMs: 1, maxMessages: 10_000).published
    }
    let secs = Date().timeIntervalSince(start)
    print(String(format: "publish: %d messages QoS %d in %.2f s = %.0f msg/s", messages.count, qos, secs, Double(messages.count) / secs))
    c.stop()
}

struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

let args = CommandLine.arguments
if args.count >= 6, args[1] == "publish" {
    // vigil-bench publish FILE HOST:PORT QOS COUNT
    let hp = args[3].split(separator: ":")
    try publish(file: args[2], host: String(hp[0]), port: Int(hp[1]) ?? 1883, qos: Int32(args[4]) ?? 1, limit: Int(args[5]) ?? .max, window: 1000)
    exit(0)
}
guard args.count >= 4, let n = Int(args[3]) else {
    print("usage: vigil-bench enqueue|fill|deliver DB N [CONCURRENCY]   or   vigil-bench publish FILE HOST:PORT QOS COUNT")
    exit(2)
}
let path = args[2]
switch args[1] {
case "enqueue":
    // vigil-bench enqueue DB N [SINKS]: each event to SINKS sinks (default 3; the shipped config has 2).
    let count = args.count > 4 ? max(1, Int(args[4]) ?? 3) : 3
    let sinks = ["log", "file", "platform", "bus", "archive"].prefix(count).map { $0 }
    let secs = try fill(path, n, sinks: sinks, batch: 500)
    print(String(format: "enqueue: %d events (%d sinks each) in %.2f s = %.0f events/s", n, sinks.count, secs, Double(n) / secs))
case "serialize":
    // The share of enqueue spent writing event bodies.
    let events = (0..<n).map(event)
    var w = JSONWriter(capacity: 1024)
    var total = 0
    let start = Date()
    for e in events { w.reset(); e.write(to: &w); total += w.bytes.count }
    let secs = Date().timeIntervalSince(start)
    print(String(format: "serialize: %d events (%d bytes each) in %.2f s = %.0f events/s", n, total / max(n, 1), secs, Double(n) / secs))
case "fill":
    let secs = try fill(path, n, sinks: ["log", "file"], batch: 5000)
    print(String(format: "fill: %d pending events in %.1f s", n, secs))
case "deliver":
    let concurrency = args.count > 4 ? Int(args[4]) ?? 4 : 4
    _ = try fill(path, n, sinks: ["platform"], batch: 5000)
    let port = startReceiver()
    let gauge = PendingGauge()
    gauge.set(["platform": n])
    let sink = WebhookSink(name: "platform", url: "http://127.0.0.1:\(port)/incidents", secret: "whsec_c2VjcmV0", timeout: 10_000, concurrency: concurrency)
    let dispatcher = Dispatcher(
        databasePath: path, sinks: [sink], retry: RetryPolicy(initial: 100, max: 1000, maxAge: 3_600_000),
        gauge: gauge, logger: Logger(label: "bench"))
    let start = Date()
    let task = Task { try await dispatcher.run() }
    while gauge.pending > 0 { try await Task.sleep(for: .milliseconds(5)) }
    let secs = Date().timeIntervalSince(start)
    task.cancel()
    dispatcher.ring()
    print(String(format: "deliver: %d events to a local webhook, concurrency %d, in %.2f s = %.0f events/s", n, concurrency, secs, Double(n) / secs))
default:
    print("unknown benchmark \(args[1])")
    exit(2)
}

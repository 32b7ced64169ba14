import ArgumentParser
import Foundation
import Synchronization
import VigilConfig
import VigilCore
import VigilDaemon
import VigilIngest
import VigilMQTT
import VigilRules
import VigilSimulate

/// Set by SIGINT/SIGTERM: the publisher stops after the current message.
private let stopRequested = Atomic<Bool>(false)

struct Simulate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Publish realistic synthetic traffic for every channel of a registry, with anomalies.",
        discussion: """
            Charging piles send telemetry (a charge session's current, temperature following load), gates send \
            accesses with morning and evening peaks, fire panels heartbeats, elevator and falling-object cameras \
            heartbeats and unsure detections, every device an occasional status. None of that opens an incident \
            under the shipped rules; the anomalies do, each on a channel of its own:

            \(AnomalyKind.allCases.map { "  \($0.rawValue): \($0.summary)" }.joined(separator: "\n"))

            --anomalies takes 'all', 'none' or a list such as 'overheat,fire_alarm=3,all=0.5' (anomalies per \
            minute per kind, default 1). --manifest writes each injected anomaly as a JSON line \
            {"at","channel","feed","anomaly","expect"}. With --output, writes a recording (SPEC §5) on a virtual \
            clock instead of publishing. With --check INCIDENTS, compares --manifest with incident events \
            (a file sink or vigil replay output) and exits 1 on a missed anomaly or an unexplained incident.
            """)

    @Option(help: "The broker: mqtt://HOST[:PORT].")
    var broker: String?

    @Option(help: "The channel registry (default: /etc/vigil/channels.csv, else config/channels.csv).")
    var channels: String?

    @Option(help: "Total messages per second.")
    var rate: Double = 500

    @Option(help: "Stop after this long (30s, 5m, 1h).")
    var duration: String?

    @Option(help: "Stop after this many messages.")
    var count: Int?

    @Option(help: "Seed: the same seed gives the same messages in the same order.")
    var seed: UInt64 = 1

    @Option(help: "Anomalies to inject: all, none, or KIND[=PER_MINUTE],...")
    var anomalies: String = "all"

    @Option(help: "Write the injected anomalies here, one JSON line each.")
    var manifest: String?

    @Option(help: "QoS of the published messages: 0 or 1.")
    var qos: Int32 = 1

    @Option(help: "How long a 'silent' anomaly keeps its channel quiet.")
    var silence: String = "11m"

    @Option(help: "Only these feeds (comma-separated).")
    var feeds: String?

    @Option(help: "Virtual start time (RFC 3339); its time of day in Asia/Shanghai shapes the gates' peaks, and --output stamps records from it.")
    var start: String?

    @Option(help: "Write a recording (SPEC §5) here on a virtual clock instead of publishing.")
    var output: String?

    @Option(help: "Compare --manifest with the incident events (JSON lines) in this file; publish nothing.")
    var check: String?

    func validate() throws {
        if check != nil {
            guard manifest != nil else { throw ValidationError("--check needs --manifest (the anomalies to look for)") }
            return
        }
        if output == nil && broker == nil { throw ValidationError("give --broker mqtt://HOST:PORT (or --output FILE for a recording)") }
        if output != nil && duration == nil && count == nil { throw ValidationError("--output needs --duration or --count") }
        guard rate > 0, rate.isFinite else { throw ValidationError("--rate must be a positive number of messages per second") }
        guard qos == 0 || qos == 1 else { throw ValidationError("--qos must be 0 or 1") }
        if let count, count < 0 { throw ValidationError("--count must not be negative") }
    }

    func run() throws {
        if let check, let manifest { try runCheck(incidents: check, manifest: manifest); return }
        var durationMs: Millis?
        if let duration {
            guard case .success(let d) = Units.parseDuration(duration) else {
                throw ValidationError("--duration '\(duration)': write a duration such as 60s or 5m")
            }
            durationMs = d
        }
        guard case .success(let silenceMs) = Units.parseDuration(silence) else { throw ValidationError("--silence '\(silence)': write a duration such as 11m") }
        let plan: AnomalyPlan
        switch AnomalyPlan.parse(anomalies) {
        case .success(let p): plan = p
        case .failure(let e): throw ValidationError(e.description)
        }
        var startMs = Simulator.defaultStart
        if let start {
            guard let s = Time.parse(start) else { throw ValidationError("--start '\(start)': write an RFC 3339 time") }
            startMs = s
        }
        var limit = count
        if let durationMs {
            let n = Int((Double(durationMs) / 1000 * rate).rounded())
            limit = min(limit ?? n, n)
        }
        let registry = try loadRegistry()
        let feedSet = feeds.map { Set($0.split(separator: ",").map { String($0) }) }
        let simChannels = SimChannel.from(registry, feeds: feedSet)
        let end = limit.map { startMs + Millis(Double($0) * 1000 / rate) }
        var sim: Simulator
        do {
            sim = try Simulator(channels: simChannels, options: .init(rate: rate, seed: seed, plan: plan, silence: silenceMs, start: startMs, end: end))
        } catch {
            throw ValidationError(error.description)
        }
        let manifestOut = try manifest.map { try openWrite($0) }
        defer { manifestOut?.flush() }
        if let output {
            try record(&sim, to: output, limit: limit ?? 0, manifest: manifestOut)
        } else {
            try publish(&sim, limit: limit, manifest: manifestOut)
        }
        if !sim.skipped.isEmpty {
            let s = sim.skipped.sorted { $0.key.rawValue < $1.key.rawValue }.map { "\($0.key.rawValue) \($0.value)" }.joined(separator: ", ")
            printError("vigil simulate: anomalies not injected (no free channel, or too close to the end to play out): \(s)")
        }
    }

    func loadRegistry() throws -> ChannelRegistry {
        var path = channels
        if path == nil {
            path = ["/etc/vigil/channels.csv", "config/channels.csv"].first { FileManager.default.fileExists(atPath: $0) }
        }
        guard let path else { throw ValidationError("no channel registry: give --channels FILE") }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ValidationError("cannot read the channel registry \(path)")
        }
        let (registry, diags) = ChannelRegistry.parse(text, path: path, knownFeeds: nil)
        if !diags.isEmpty {
            for d in diags { printError(d.description) }
            throw ExitCode(1)
        }
        return registry
    }

    func openWrite(_ path: String) throws -> OutputBuffer {
        do { return OutputBuffer(fd: try createFile(path), limit: 1 << 16) } catch { throw ValidationError(error.description) }
    }

    /// A recording on the virtual clock.
    func record(_ sim: inout Simulator, to path: String, limit: Int, manifest: OutputBuffer?) throws {
        let out = try openWrite(path)
        for _ in 0..<limit {
            let step = sim.next()
            out.write(step.message.recordedLine(ts: step.at) + "\n")
            for e in step.started { manifest?.write(e.jsonLine + "\n") }
        }
        out.flush()
        printError("vigil simulate: wrote \(limit) messages to \(path), \(sim.injected) anomalies")
    }

    /// Publishes at `rate` on the wall clock until the limit, the duration or a signal.
    func publish(_ sim: inout Simulator, limit: Int?, manifest: OutputBuffer?) throws {
        guard let (tls, host, port) = ConfigLoader.parseBrokerURL(broker ?? "") else {
            throw ValidationError("--broker '\(broker ?? "")': write mqtt://HOST[:PORT]")
        }
        if tls { throw ValidationError("--broker: vigil simulate speaks plain mqtt:// only") }
        signal(SIGINT) { _ in stopRequested.store(true, ordering: .relaxed) }
        signal(SIGTERM) { _ in stopRequested.store(true, ordering: .relaxed) }
        signal(SIGPIPE, SIG_IGN)
        let client = try MQTTConnection(
            options: .init(host: host, port: port, clientID: "vigil-simulate-\(getpid())", cleanSession: true),
            reconnect: Simulate.reconnect)
        if let why = client.connect(timeoutMs: 10_000) { throw ValidationError("\(broker ?? ""): \(why)") }

        let tty = isatty(2) == 1
        let began = Time.monotonicNanos()
        var inFlight = 0
        var lastProgress = began
        var anomalyCount = 0
        let window = 1000
        while !stopRequested.load(ordering: .relaxed) {
            if let limit, sim.sent >= limit { break }
            let elapsed = Double(Time.monotonicNanos() - began) / 1e9
            var due = Int(elapsed * rate) + 1
            if let limit { due = min(due, limit) }
            while sim.sent < due && client.isConnected && (qos == 0 || inFlight < window) {
                let step = sim.next()
                let ts = Time.now()
                _ = try client.publish(topic: step.message.topic, payload: step.message.payload(ts: ts), qos: qos)
                if qos == 1 { inFlight += 1 }
                for var e in step.started {
                    e.at = ts
                    manifest?.write(e.jsonLine + "\n")
                    manifest?.flush()
                    anomalyCount += 1
                }
            }
            let nextDue = Double(sim.sent) / rate - Double(Time.monotonicNanos() - began) / 1e9
            // At least a millisecond: at high rates each wake-up publishes what fell due meanwhile.
            let acks = try turn(client, timeoutMs: Int32(max(1, min(50, nextDue * 1000))))
            if qos == 1 { inFlight -= acks }
            let now = Time.monotonicNanos()
            if tty && now - lastProgress >= 1_000_000_000 {
                lastProgress = now
                let secs = Double(now - began) / 1e9
                printProgress(String(format: "\r  %6.1f s   sent %9d   %7.0f msg/s   anomalies %d ", secs, sim.sent, Double(sim.sent) / secs, anomalyCount))
            }
        }
        // Wait (bounded) for the broker to acknowledge what is in flight.
        let drainUntil = Time.monotonicNanos() + 10_000_000_000
        while qos == 1 && inFlight > 0 && Time.monotonicNanos() < drainUntil {
            inFlight -= (try? turn(client, timeoutMs: 50)) ?? inFlight
        }
        client.stop()
        let secs = Double(Time.monotonicNanos() - began) / 1e9
        if tty { printProgress("\n") }
        printError(
            String(
                format: "vigil simulate: sent %d messages in %.1f s (%.0f msg/s, QoS %d), %d anomalies injected%@",
                sim.sent, secs, Double(sim.sent) / max(secs, 0.001), qos, anomalyCount,
                inFlight > 0 ? ", \(inFlight) not acknowledged" : ""))
    }

    /// A lost connection is reached again with this backoff; ten failed attempts in a row end the run.
    static let reconnect = Backoff(initial: 200, max: 1000)

    /// One turn of the connection: returns the acknowledgements that arrived.
    /// QoS 1 messages in flight when a connection drops are sent again by the library.
    func turn(_ client: MQTTConnection, timeoutMs: Int32) throws -> Int {
        let turn = client.turn(timeoutMs: timeoutMs)
        if client.machine.failures >= 10 {
            throw ValidationError("lost the connection to \(broker ?? "") and could not reconnect")
        }
        return turn.published
    }

    func runCheck(incidents: String, manifest: String) throws {
        guard let mText = try? String(contentsOfFile: manifest, encoding: .utf8) else { throw ValidationError("cannot read \(manifest)") }
        guard let iText = try? String(contentsOfFile: incidents, encoding: .utf8) else { throw ValidationError("cannot read \(incidents)") }
        var entries: [ManifestEntry] = []
        for (n, line) in mText.split(separator: "\n").enumerated() {
            guard let e = ManifestEntry.parse(line: String(line)) else { throw ValidationError("\(manifest):\(n + 1): not a manifest line") }
            entries.append(e)
        }
        var events: [IncidentEvent] = []
        for (n, line) in iText.split(separator: "\n").enumerated() {
            guard let e = IncidentEvent.decode(String(line)) else { throw ValidationError("\(incidents):\(n + 1): not an incident event") }
            events.append(e)
        }
        let result = ManifestCheck(manifest: entries, opened: ManifestCheck.opened(events))
        print(result.report(events: events))
        if !result.passed { throw ExitCode(1) }
    }
}

/// Writes to standard error without a newline (the progress line rewrites itself with `\r`).
private func printProgress(_ s: String) {
    var stderr = StandardError()
    stderr.write(s)
}

import Foundation
import Synchronization
import VigilConfig
import VigilCore
import VigilIngest
import VigilMQTT
import VigilRules
import VigilStore

/// The daemon's counters and gauges, rendered in the Prometheus text format.
public final class Metrics: IngestMetrics {
    struct Values {
        var receivedByFeed: [String: Int] = [:]
        var deadLetters: [String: Int] = [:]
        var readings = 0
        var incidentEvents: [String: Int] = [:]  // "rule\u{0}type"
        var deliveries: [String: Int] = [:]  // "sink\u{0}outcome"
        var suppressed = 0
        var lagSeconds = 0.0
        var reloads: [String: Int] = [:]
        var shed = 0
        var intakeHalts = 0
        /// Wall-clock time (ms) of the last commit that took a message; 0 before the first.
        var lastMessageAt: Millis = 0
        /// State commits (journal, events, checkpoint): how long each took.
        var commitSeconds = Histogram(bounds: Histogram.latency)
        /// Journal trims (rows past retention or over max_size): how long each held ingestion, rows dropped.
        var journalTrimSeconds = Histogram(bounds: Histogram.latency)
        var journalRowsTrimmed = 0
        /// From a reading's device time (when it carries one) to its commit.
        var readingLagSeconds = Histogram(bounds: Histogram.lag)
        /// From an event's commit to its delivery, per sink.
        var deliverySeconds: [String: Histogram] = [:]
    }
    let values = Mutex(Values())

    public init() {}

    public var lagSeconds: Double { values.withLock { $0.lagSeconds } }

    public func recordBatch(received: [String: Int], dead: [DeadLetterReason], readings: Int, events: [IncidentEvent], lagSeconds: Double, suppressed: Int) {
        values.withLock { v in
            for (f, n) in received { v.receivedByFeed[f, default: 0] += n }
            for d in dead { v.deadLetters[d.rawValue, default: 0] += 1 }
            v.readings += readings
            for e in events { v.incidentEvents[e.rule + "\u{0}" + e.type.rawValue, default: 0] += 1 }
            v.lagSeconds = lagSeconds
            v.suppressed += suppressed
            if !received.isEmpty { v.lastMessageAt = Time.now() }
        }
    }

    public func recordCommit(seconds: Double, readingLags: [Double]) {
        values.withLock { v in
            v.commitSeconds.observe(seconds)
            for l in readingLags { v.readingLagSeconds.observe(l) }
        }
    }

    public func recordDeliveries(sink: String, delivered: Int, retried: Int, dead: Int, latencies: [Double] = []) {
        values.withLock { v in
            if !latencies.isEmpty {
                var h = v.deliverySeconds[sink] ?? Histogram(bounds: Histogram.latency)
                for l in latencies { h.observe(l) }
                v.deliverySeconds[sink] = h
            }
            if delivered > 0 { v.deliveries[sink + "\u{0}delivered", default: 0] += delivered }
            if retried > 0 { v.deliveries[sink + "\u{0}retried", default: 0] += retried }
            if dead > 0 { v.deliveries[sink + "\u{0}dead", default: 0] += dead }
        }
    }

    public func recordShed(_ n: Int) { values.withLock { $0.shed += n } }

    public func recordJournalTrim(seconds: Double, rows: Int) {
        values.withLock { v in
            v.journalTrimSeconds.observe(seconds)
            v.journalRowsTrimmed += rows
        }
    }

    public func recordIntakeHalt() { values.withLock { $0.intakeHalts += 1 } }

    public func recordReload(_ outcome: String) { values.withLock { $0.reloads[outcome, default: 0] += 1 } }

    /// The exposition: HELP and TYPE lines, then samples, families in a fixed order.
    /// What the exposition needs beyond the counters: read from the daemon's state when scraped.
    public struct Snapshot: Sendable {
        public var connected: Bool
        public var pending: [String: Int]
        public var sinks: [String]
        public var openIncidents: Int
        public var intakeHalted = false
        /// Open incidents per severity name.
        public var openBySeverity: [String: Int] = [:]
        /// Age of the oldest undelivered event per sink, in seconds.
        public var oldestPendingSeconds: [String: Double] = [:]

        public init(connected: Bool, pending: [String: Int], sinks: [String], openIncidents: Int) {
            self.connected = connected; self.pending = pending; self.sinks = sinks; self.openIncidents = openIncidents
        }
    }

    public func render(connected: Bool, pending: [String: Int], sinks: [String], openIncidents: Int, intakeHalted: Bool = false) -> String {
        var s = Snapshot(connected: connected, pending: pending, sinks: sinks, openIncidents: openIncidents)
        s.intakeHalted = intakeHalted
        return render(s)
    }

    public func render(_ snap: Snapshot) -> String {
        let connected = snap.connected, pending = snap.pending, sinks = snap.sinks, openIncidents = snap.openIncidents
        let intakeHalted = snap.intakeHalted
        let v = values.withLock { $0 }
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in samples { out += name + labels + " " + Metrics.number(value) + "\n" }
        }
        func label(_ pairs: [(String, String)]) -> String {
            "{" + pairs.map { "\($0.0)=\"\(Metrics.escape($0.1))\"" }.joined(separator: ",") + "}"
        }
        func histogram(_ name: String, _ help: String, _ series: [([(String, String)], Histogram)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) histogram\n"
            for (pairs, h) in series {
                var cumulative = 0
                for (i, bound) in h.bounds.enumerated() {
                    cumulative += h.counts[i]
                    out += name + "_bucket" + label(pairs + [("le", Metrics.number(bound))]) + " \(cumulative)\n"
                }
                out += name + "_bucket" + label(pairs + [("le", "+Inf")]) + " \(h.count)\n"
                let l = pairs.isEmpty ? "" : label(pairs)
                out += name + "_sum" + l + " " + Metrics.number(h.sum) + "\n"
                out += name + "_count" + l + " \(h.count)\n"
            }
        }
        family(
            "vigil_messages_received_total", "counter", "Messages received from the broker, by feed (\"unknown\" when no subscription matched).",
            v.receivedByFeed.sorted { $0.key < $1.key }.map { (label([("feed", $0.key)]), Double($0.value)) })
        family(
            "vigil_dead_letters_total", "counter", "Messages that did not become readings, by reason.",
            DeadLetterReason.allCases.map { (label([("reason", $0.rawValue)]), Double(v.deadLetters[$0.rawValue] ?? 0)) })
        family("vigil_readings_evaluated_total", "counter", "Readings evaluated by the rules.", [("", Double(v.readings))])
        family(
            "vigil_incident_events_total", "counter", "Incident events produced, by rule and type.",
            v.incidentEvents.sorted { $0.key < $1.key }.map { k, n in
                let parts = k.split(separator: "\u{0}", maxSplits: 1).map(String.init)
                return (label([("rule", parts[0]), ("type", parts.count > 1 ? parts[1] : "")]), Double(n))
            })
        family("vigil_suppressed_openings_total", "counter", "Openings suppressed by inhibit rules or maintenance windows.", [("", Double(v.suppressed))])
        family("vigil_open_incidents", "gauge", "Incidents open now.", [("", Double(openIncidents))])
        family(
            "vigil_queue_pending", "gauge", "Events waiting for delivery, by sink.",
            sinks.map { (label([("sink", $0)]), Double(pending[$0] ?? 0)) })
        var deliveries: [(String, Double)] = []
        for s in sinks {
            for o in ["delivered", "retried", "dead"] { deliveries.append((label([("sink", s), ("outcome", o)]), Double(v.deliveries[s + "\u{0}" + o] ?? 0))) }
        }
        family("vigil_deliveries_total", "counter", "Delivery attempts, by sink and outcome.", deliveries)
        family("vigil_events_shed_total", "counter", "Events dropped by overflow: shed while the queue was full.", [("", Double(v.shed))])
        family("vigil_evaluation_lag_seconds", "gauge", "Time from reading the last batch off the socket to committing its events.", [("", v.lagSeconds)])
        family("vigil_broker_connected", "gauge", "1 while connected to the broker.", [("", connected ? 1 : 0)])
        family(
            "vigil_last_message_received_timestamp_seconds", "gauge",
            "When the last message from the broker was committed, in seconds since the epoch (0: none yet).",
            [("", Double(v.lastMessageAt) / 1000)])
        family(
            "vigil_intake_halted", "gauge", "1 while intake is stopped because the state database cannot take commits (a full disk).",
            [("", intakeHalted ? 1 : 0)])
        family("vigil_intake_halts_total", "counter", "Times intake stopped because a state commit failed.", [("", Double(v.intakeHalts))])
        family(
            "vigil_wal_checkpoints_total", "counter", "Checkpoints of the state database's write-ahead log the daemon's connections ran.",
            [("", Double(Database.checkpointsRun.load(ordering: .relaxed)))])
        family(
            "vigil_open_incidents_by_severity", "gauge", "Incidents open now, by severity.",
            Severity.allCases.reversed().map { (label([("severity", $0.name)]), Double(snap.openBySeverity[$0.name] ?? 0)) })
        family(
            "vigil_oldest_pending_seconds", "gauge", "Age of the oldest event not yet delivered, by sink (0 when none waits).",
            sinks.map { (label([("sink", $0)]), snap.oldestPendingSeconds[$0] ?? 0) })
        histogram(
            "vigil_commit_seconds", "Time to commit one batch (journal, events, checkpoint) to the state database.",
            [([], v.commitSeconds)])
        histogram(
            "vigil_journal_trim_seconds",
            "Time of one journal trim transaction (rows past journal.retention or over journal.max_size); ingestion waits for it.",
            [([], v.journalTrimSeconds)])
        family("vigil_journal_rows_trimmed_total", "counter", "Journal rows dropped by retention or max_size.", [("", Double(v.journalRowsTrimmed))])
        histogram(
            "vigil_reading_lag_seconds", "From a reading's device time (its payload's ts) to the commit that took it.",
            [([], v.readingLagSeconds)])
        histogram(
            "vigil_delivery_seconds", "From an event's commit to its delivery, by sink.",
            sinks.map { ([("sink", $0)], v.deliverySeconds[$0] ?? Histogram(bounds: Histogram.latency)) })
        family(
            "vigil_build_info", "gauge", "Always 1; the labels say which build runs.",
            [(label([("version", VigilVersion.current), ("libmosquitto", Metrics.mosquittoVersion), ("sqlite", Metrics.sqliteVersion)]), 1)])
        let process = ProcessStats.read()
        family("process_resident_memory_bytes", "gauge", "Resident memory of the daemon.", [("", process.residentBytes)])
        family("process_open_fds", "gauge", "Open file descriptors.", [("", process.openFDs)])
        family("process_cpu_seconds_total", "counter", "CPU time the daemon used, user and system.", [("", process.cpuSeconds)])
        family("process_start_time_seconds", "gauge", "When the daemon started, in seconds since the epoch.", [("", Metrics.startTime)])
        family(
            "vigil_reloads_total", "counter", "Reloads on SIGHUP, by outcome.",
            ["applied", "rejected"].map { (label([("outcome", $0)]), Double(v.reloads[$0] ?? 0)) })
        return out
    }

    /// The process's own start (the kernel's record of it), not the first
    /// scrape's time: a `static let` is made on first use.
    static let startTime = ProcessStats.startTime() ?? Double(Time.now()) / 1000
    static let mosquittoVersion = MosquittoClient.libraryVersion
    static let sqliteVersion = Database.libraryVersion

    static func number(_ d: Double) -> String {
        if d == d.rounded() && abs(d) < 1e15 { return String(Int64(d)) }
        return "\(d)"
    }

    /// A label value as the text format wants it: backslash, double quote
    /// and newline escaped, by Unicode scalar (one followed by a combining
    /// mark is escaped too). Nearly every value has none of them.
    static func escape(_ s: String) -> String {
        guard s.utf8.contains(where: { $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\n") }) else { return s }
        var out = ""
        out.reserveCapacity(s.utf8.count + 8)
        for c in s.unicodeScalars {
            switch c {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }
}

/// A Prometheus histogram: fixed upper bounds, counts per bucket, sum and count.
struct Histogram: Sendable {
    /// Seconds, from 0.5 ms to 10 s: commits and deliveries.
    static let latency: [Double] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
    /// Seconds, from 10 ms to a day: how late readings are.
    static let lag: [Double] = [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60, 300, 3600, 86_400]

    let bounds: [Double]
    var counts: [Int]
    var sum = 0.0
    var count = 0

    init(bounds: [Double]) {
        self.bounds = bounds
        counts = Array(repeating: 0, count: bounds.count)
    }

    mutating func observe(_ x: Double) {
        sum += x
        count += 1
        if let i = bounds.firstIndex(where: { x <= $0 }) { counts[i] += 1 }
    }
}

/// The daemon's own resource use, from /proc.
struct ProcessStats {
    /// When this process started, in seconds since the epoch: its start in
    /// clock ticks after boot (field 22 of /proc/self/stat) plus the boot time
    /// (`btime` in /proc/stat).
    static func startTime() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let boot = try? String(contentsOfFile: "/proc/stat", encoding: .utf8)
        else { return nil }
        return startTime(stat: stat, boot: boot, ticksPerSecond: Double(sysconf(Int32(_SC_CLK_TCK))))
    }

    static func startTime(stat: String, boot: String, ticksPerSecond: Double) -> Double? {
        guard let close = stat.lastIndex(of: ")"),
            let btimeLine = boot.split(separator: "\n").first(where: { $0.hasPrefix("btime ") }),
            let btime = Double(btimeLine.dropFirst(6))
        else { return nil }
        // After the command name, which may hold spaces and parentheses: field 3 onwards; the start is field 22.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 19, let ticks = Double(fields[19]), ticksPerSecond > 0 else { return nil }
        return btime + ticks / ticksPerSecond
    }

    var residentBytes = 0.0
    var openFDs = 0.0
    var cpuSeconds = 0.0

    static func read() -> ProcessStats {
        var s = ProcessStats()
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kib = Double(line.split(separator: " ").dropFirst().first ?? "")
        {
            s.residentBytes = kib * 1024
        }
        s.openFDs = Double((try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd"))?.count ?? 0)
        var usage = rusage()
        if getrusage(Int32(RUSAGE_SELF.rawValue), &usage) == 0 {
            s.cpuSeconds =
                Double(usage.ru_utime.tv_sec) + Double(usage.ru_utime.tv_usec) / 1e6
                + Double(usage.ru_stime.tv_sec) + Double(usage.ru_stime.tv_usec) / 1e6
        }
        return s
    }
}

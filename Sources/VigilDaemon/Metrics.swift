import Synchronization
import VigilCore

/// The daemon's counters and gauges, rendered in the Prometheus text format.
public final class Metrics: Sendable {
    struct Values {
        var receivedByFeed: [String: Int] = [:]
        var deadLetters: [String: Int] = [:]
        var readings = 0
        var incidentEvents: [String: Int] = [:]   // "rule\u{0}type"
        var deliveries: [String: Int] = [:]       // "sink\u{0}outcome"
        var suppressed = 0
        var lagSeconds = 0.0
        var reloads: [String: Int] = [:]
        var shed = 0
        var intakeHalts = 0
    }
    let values = Mutex(Values())

    public init() {}

    func recordBatch(received: [String: Int], dead: [DeadLetterReason], readings: Int, events: [IncidentEvent], lagSeconds: Double, suppressed: Int) {
        values.withLock { v in
            for (f, n) in received { v.receivedByFeed[f, default: 0] += n }
            for d in dead { v.deadLetters[d.rawValue, default: 0] += 1 }
            v.readings += readings
            for e in events { v.incidentEvents[e.rule + "\u{0}" + e.type.rawValue, default: 0] += 1 }
            v.lagSeconds = lagSeconds
            v.suppressed += suppressed
        }
    }

    public func recordDeliveries(sink: String, delivered: Int, retried: Int, dead: Int) {
        values.withLock { v in
            if delivered > 0 { v.deliveries[sink + "\u{0}delivered", default: 0] += delivered }
            if retried > 0 { v.deliveries[sink + "\u{0}retried", default: 0] += retried }
            if dead > 0 { v.deliveries[sink + "\u{0}dead", default: 0] += dead }
        }
    }

    func recordShed(_ n: Int) { values.withLock { $0.shed += n } }

    func recordIntakeHalt() { values.withLock { $0.intakeHalts += 1 } }

    func recordReload(_ outcome: String) { values.withLock { $0.reloads[outcome, default: 0] += 1 } }

    /// The exposition: HELP and TYPE lines, then samples, families in a fixed order.
    public func render(connected: Bool, pending: [String: Int], sinks: [String], openIncidents: Int, intakeHalted: Bool = false) -> String {
        let v = values.withLock { $0 }
        var out = ""
        func family(_ name: String, _ type: String, _ help: String, _ samples: [(String, Double)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for (labels, value) in samples { out += name + labels + " " + Metrics.number(value) + "\n" }
        }
        func label(_ pairs: [(String, String)]) -> String {
            "{" + pairs.map { "\($0.0)=\"\(Metrics.escape($0.1))\"" }.joined(separator: ",") + "}"
        }
        family("vigil_messages_received_total", "counter", "Messages received from the broker, by feed (\"unknown\" when no subscription matched).",
               v.receivedByFeed.sorted { $0.key < $1.key }.map { (label([("feed", $0.key)]), Double($0.value)) })
        family("vigil_dead_letters_total", "counter", "Messages that did not become readings, by reason.",
               DeadLetterReason.allCases.map { (label([("reason", $0.rawValue)]), Double(v.deadLetters[$0.rawValue] ?? 0)) })
        family("vigil_readings_evaluated_total", "counter", "Readings evaluated by the rules.", [("", Double(v.readings))])
        family("vigil_incident_events_total", "counter", "Incident events produced, by rule and type.",
               v.incidentEvents.sorted { $0.key < $1.key }.map { k, n in
                   let parts = k.split(separator: "\u{0}", maxSplits: 1).map(String.init)
                   return (label([("rule", parts[0]), ("type", parts.count > 1 ? parts[1] : "")]), Double(n))
               })
        family("vigil_suppressed_openings_total", "counter", "Openings suppressed by inhibit rules or maintenance windows.", [("", Double(v.suppressed))])
        family("vigil_open_incidents", "gauge", "Incidents open now.", [("", Double(openIncidents))])
        family("vigil_queue_pending", "gauge", "Events waiting for delivery, by sink.",
               sinks.map { (label([("sink", $0)]), Double(pending[$0] ?? 0)) })
        var deliveries: [(String, Double)] = []
        for s in sinks {
            for o in ["delivered", "retried", "dead"] { deliveries.append((label([("sink", s), ("outcome", o)]), Double(v.deliveries[s + "\u{0}" + o] ?? 0))) }
        }
        family("vigil_deliveries_total", "counter", "Delivery attempts, by sink and outcome.", deliveries)
        family("vigil_events_shed_total", "counter", "Events dropped by overflow: shed while the queue was full.", [("", Double(v.shed))])
        family("vigil_evaluation_lag_seconds", "gauge", "Time from reading the last batch off the socket to committing its events.", [("", v.lagSeconds)])
        family("vigil_broker_connected", "gauge", "1 while connected to the broker.", [("", connected ? 1 : 0)])
        family("vigil_intake_halted", "gauge", "1 while intake is stopped because the state database cannot take commits (a full disk).",
               [("", intakeHalted ? 1 : 0)])
        family("vigil_intake_halts_total", "counter", "Times intake stopped because a state commit failed.", [("", Double(v.intakeHalts))])
        family("vigil_reloads_total", "counter", "Reloads on SIGHUP, by outcome.",
               ["applied", "rejected"].map { (label([("outcome", $0)]), Double(v.reloads[$0] ?? 0)) })
        return out
    }

    static func number(_ d: Double) -> String {
        if d == d.rounded() && abs(d) < 1e15 { return String(Int64(d)) }
        return "\(d)"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n")
    }
}

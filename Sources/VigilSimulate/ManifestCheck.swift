import VigilCore

/// Compares injected anomalies (a manifest) with the incidents that opened:
/// each anomaly should have opened its expected rule's incident on its channel,
/// and no incident should have opened without an anomaly behind it.
public struct ManifestCheck: Sendable {
    public struct Opened: Sendable, Equatable {
        public var rule: String
        public var channel: String
        public var openedAt: Millis
        public init(rule: String, channel: String, openedAt: Millis) {
            self.rule = rule; self.channel = channel; self.openedAt = openedAt
        }
    }

    /// Anomalies that became their incident.
    public var detected: [(ManifestEntry, Opened)] = []
    /// Anomalies with no matching incident.
    public var missed: [ManifestEntry] = []
    /// Incidents no anomaly explains.
    public var unexplained: [Opened] = []
    /// Malformed messages injected, by the dead-letter reason they should get.
    public var deadLettersExpected: [String: Int] = [:]

    public var passed: Bool { missed.isEmpty && unexplained.isEmpty }

    /// `tolerance` allows for clocks: the manifest's times are the publisher's,
    /// incidents carry the daemon's arrival times.
    public init(manifest: [ManifestEntry], opened: [Opened], tolerance: Millis = 1000) {
        var used = Array(repeating: false, count: opened.count)
        let order = opened.indices.sorted { (opened[$0].openedAt, $0) < (opened[$1].openedAt, $1) }
        for entry in manifest.sorted(by: { $0.at < $1.at }) {
            guard let rule = entry.expectedRule else {
                deadLettersExpected[entry.reason ?? "unknown", default: 0] += 1
                continue
            }
            let match = order.first { i in
                !used[i] && opened[i].rule == rule && opened[i].channel == entry.channel && opened[i].openedAt >= entry.at - tolerance
            }
            if let match {
                used[match] = true
                detected.append((entry, opened[match]))
            } else {
                missed.append(entry)
            }
        }
        unexplained = order.filter { !used[$0] }.map { opened[$0] }
    }

    /// The opened incidents among incident events.
    public static func opened(_ events: [IncidentEvent]) -> [Opened] {
        events.filter { $0.type == .opened }.map { Opened(rule: $0.rule, channel: $0.channel ?? "", openedAt: $0.openedAt) }
    }

    /// A readable report: anomalies detected vs injected per kind, incidents by rule, and every mismatch.
    public func report(events: [IncidentEvent]) -> String {
        var lines: [String] = []
        var byRule: [String: [IncidentEventType: Int]] = [:]
        for e in events { byRule[e.rule, default: [:]][e.type, default: 0] += 1 }
        lines.append("incidents by rule (opened / updated / resolved):")
        for rule in byRule.keys.sorted() {
            let c = byRule[rule]!
            lines.append("  \(pad(rule, 28)) \(c[.opened] ?? 0) / \(c[.updated] ?? 0) / \(c[.resolved] ?? 0)")
        }
        if byRule.isEmpty { lines.append("  (none)") }
        lines.append("anomalies detected / injected:")
        var injected: [AnomalyKind: Int] = [:], found: [AnomalyKind: Int] = [:]
        for (e, _) in detected { found[e.anomaly, default: 0] += 1; injected[e.anomaly, default: 0] += 1 }
        for e in missed { injected[e.anomaly, default: 0] += 1 }
        for kind in AnomalyKind.allCases where kind != .malformed {
            guard let n = injected[kind] else { continue }
            lines.append("  \(pad(kind.rawValue, 16)) \(found[kind] ?? 0) / \(n)   → \(kind.expectedRule ?? "")")
        }
        if !deadLettersExpected.isEmpty {
            let total = deadLettersExpected.values.reduce(0, +)
            let reasons = deadLettersExpected.keys.sorted().map { "\($0) \(deadLettersExpected[$0]!)" }.joined(separator: ", ")
            lines.append("  \(pad("malformed", 16)) \(total) sent → dead letters (\(reasons))")
        }
        for e in missed {
            lines.append("MISSED \(e.anomaly.rawValue) on \(e.channel) at \(Time.format(e.at)): no \(e.expectedRule ?? "") incident opened")
        }
        for o in unexplained {
            lines.append("UNEXPLAINED \(o.rule) on \(o.channel) opened at \(Time.format(o.openedAt)): no anomaly behind it")
        }
        let total = detected.count + missed.count
        lines.append(
            passed
                ? "ok: \(detected.count) of \(total) anomalies became their incident; no incident without an anomaly"
                : "FAILED: \(missed.count) anomalies missed, \(unexplained.count) incidents unexplained")
        return lines.joined(separator: "\n")
    }

    func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
}

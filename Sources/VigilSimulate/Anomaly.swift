import Foundation
import VigilCore

/// An anomaly the simulator can inject, the feed it happens on, and the
/// incident the shipped rules (`config/rules.d`) open for it.
public enum AnomalyKind: String, CaseIterable, Sendable {
    case overheat, overcurrent
    case fireAlarm = "fire_alarm", panelFault = "panel_fault"
    case ebike
    case fallingObject = "falling_object"
    case deniedBurst = "denied_burst", doorForced = "door_forced", doorHeld = "door_held"
    case offline, silent, malformed

    /// Feeds whose channels can carry it; nil: any channel.
    public var feeds: [String]? {
        switch self {
        case .overheat, .overcurrent: ["charging_pile"]
        case .fireAlarm, .panelFault: ["fire_alarm"]
        case .ebike: ["elevator_ebike"]
        case .fallingObject: ["falling_object"]
        case .deniedBurst, .doorForced, .doorHeld: ["smart_gate"]
        // The shipped absence rule watches these three feeds.
        case .silent: ["smart_gate", "fire_alarm", "charging_pile"]
        case .offline, .malformed: nil
        }
    }

    /// The shipped rule that should open an incident for it; nil for a
    /// malformed message, which should become a dead letter instead.
    public var expectedRule: String? {
        switch self {
        case .overheat: "charging_pile_overheat"
        case .overcurrent: "charging_pile_overcurrent"
        case .fireAlarm: "fire_alarm_active"
        case .panelFault: "fire_panel_fault"
        case .ebike: "ebike_in_elevator"
        case .fallingObject: "falling_object"
        case .deniedBurst: "gate_denied_burst"
        case .doorForced: "gate_forced_open"
        case .doorHeld: "gate_held_open"
        case .offline: "device_offline"
        case .silent: "channel_silent"
        case .malformed: nil
        }
    }

    /// What the channel does, for `--help` and the docs.
    public var summary: String {
        switch self {
        case .overheat: "a charging pile runs at 66-80 °C for 45 s, then cools"
        case .overcurrent: "a charging pile draws 36-42 A for 20 s"
        case .fireAlarm: "a fire panel raises an alarm; reset 20-40 s later"
        case .panelFault: "a fire panel reports a fault; cleared 30-60 s later"
        case .ebike: "an elevator camera detects an e-bike (confidence 0.82-0.97)"
        case .fallingObject: "a camera detects a falling object (confidence 0.70-0.95)"
        case .deniedBurst: "six denied accesses at one gate, 4-8 s apart"
        case .doorForced: "a gate is forced open"
        case .doorHeld: "a gate is held open 150-300 s, then closed"
        case .offline: "a device reports offline, is silent 20-30 s, then online"
        case .silent: "a channel sends nothing for --silence"
        case .malformed: "a payload that is not a JSON object (dead letter)"
        }
    }
}

/// `--anomalies SPEC`: `none`, `all`, or a comma-separated list of kinds,
/// each optionally `=N` anomalies per minute (default 1); `all=N` sets the
/// rate of every kind not otherwise named.
public struct AnomalyPlan: Sendable, Equatable {
    public var perMinute: [AnomalyKind: Double] = [:]

    public init(perMinute: [AnomalyKind: Double] = [:]) { self.perMinute = perMinute }

    public static func parse(_ spec: String) -> Result<AnomalyPlan, SimulateError> {
        var plan = AnomalyPlan()
        var all: Double?
        let trimmed = spec.trimmingCharacters(in: .whitespaces)
        if trimmed == "none" || trimmed.isEmpty { return .success(plan) }
        for item in trimmed.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1).map { String($0).trimmingCharacters(in: .whitespaces) }
            var rate = 1.0
            if parts.count == 2 {
                guard let r = Double(parts[1]), r > 0, r.isFinite else {
                    return .failure(SimulateError("--anomalies: '\(item)': the rate after '=' is anomalies per minute, a positive number"))
                }
                rate = r
            }
            if parts[0] == "all" { all = rate; continue }
            guard let kind = AnomalyKind(rawValue: parts[0]) else {
                let known = (["all"] + AnomalyKind.allCases.map(\.rawValue)).joined(separator: ", ")
                return .failure(SimulateError("--anomalies: unknown anomaly '\(parts[0])' (known: \(known))"))
            }
            plan.perMinute[kind] = rate
        }
        if let all {
            for k in AnomalyKind.allCases where plan.perMinute[k] == nil { plan.perMinute[k] = all }
        }
        return .success(plan)
    }
}

/// One injected anomaly, as `--manifest` writes it.
public struct ManifestEntry: Sendable, Equatable {
    public var at: Millis
    public var channel: String
    public var feed: String
    public var anomaly: AnomalyKind
    /// For `malformed`: the dead-letter reason the daemon should give.
    public var reason: String?

    public var expectedRule: String? { anomaly.expectedRule }

    /// `{"at","channel","feed","anomaly"}` plus `expect` (the rule that
    /// should open, or `dead_letter`) and, for malformed messages, `reason`.
    public var jsonLine: String {
        var o = JSONObject()
        o["at"] = .string(Time.format(at))
        o["channel"] = .string(channel)
        o["feed"] = .string(feed)
        o["anomaly"] = .string(anomaly.rawValue)
        o["expect"] = .string(expectedRule ?? "dead_letter")
        if let reason { o["reason"] = .string(reason) }
        return JSONValue.object(o).description
    }

    public static func parse(line: String) -> ManifestEntry? {
        guard case .object(let o)? = try? JSONParser.parse(line, maxDepth: 4),
            case .string(let at)? = o["at"], let t = Time.parse(at),
            case .string(let ch)? = o["channel"], case .string(let feed)? = o["feed"],
            case .string(let a)? = o["anomaly"], let kind = AnomalyKind(rawValue: a)
        else { return nil }
        var reason: String?
        if case .string(let r)? = o["reason"] { reason = r }
        return ManifestEntry(at: t, channel: ch, feed: feed, anomaly: kind, reason: reason)
    }
}

public struct SimulateError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ d: String) { description = d }
}

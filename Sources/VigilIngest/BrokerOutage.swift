import VigilConfig
import VigilCore
import VigilRules

/// The built-in incident `vigil_broker_unreachable` (SPEC §4): opened once the
/// daemon has been without its broker for `broker.blind_incident_after`,
/// resolved when the connection is back. Wall-clock times; it is not part of
/// replay. Its state is kept in the state database so that an outage that
/// spans a restart is still resolved when the connection comes back.
struct BrokerOutage {
    static let rule = "vigil_broker_unreachable"
    static let stateName = "broker_unreachable"

    struct Open: Equatable {
        var incidentID: String
        var startedAt: Millis
        var openedAt: Millis
        var nextEventOrdinal: Int
    }

    let url: String
    let after: Millis
    /// When the connection went away; nil while connected.
    private(set) var lostAt: Millis?
    private(set) var open: Open?
    /// Incidents opened so far for this broker (part of their ids).
    private(set) var opened = 0

    init(url: String, after: Millis, lostAt: Millis) {
        self.url = url
        self.after = after
        self.lostAt = lostAt
    }

    var key: JSONObject { JSONObject([("broker", .string(url))]) }
    var keyText: String { JSONWriter.encode(.object(key)) }

    mutating func connectionLost(at t: Millis) {
        if lostAt == nil { lostAt = t }
    }

    /// The connection is back: the open incident (if any) resolves.
    mutating func connected(at t: Millis) -> [IncidentEvent] {
        lostAt = nil
        guard var o = open else { return [] }
        open = nil
        return [event(.resolved, &o, at: t, resolvedAt: t)]
    }

    /// Opens the incident once the connection has been gone long enough.
    mutating func tick(now: Millis) -> [IncidentEvent] {
        guard open == nil, let lost = lostAt, now - lost >= after else { return [] }
        let openedAt = lost + after
        opened += 1
        var o = Open(
            incidentID: IDs.incident(rule: BrokerOutage.rule, keyText: keyText, openedAt: openedAt, ordinal: opened),
            startedAt: lost, openedAt: openedAt, nextEventOrdinal: 0)
        let e = event(.opened, &o, at: openedAt, resolvedAt: nil)
        open = o
        return [e]
    }

    func event(_ type: IncidentEventType, _ o: inout Open, at t: Millis, resolvedAt: Millis?) -> IncidentEvent {
        let id = IDs.event(incidentID: o.incidentID, type: type, at: t, ordinal: o.nextEventOrdinal)
        o.nextEventOrdinal += 1
        return IncidentEvent(
            eventID: id, type: type, incidentID: o.incidentID, rule: BrokerOutage.rule, severity: .major,
            route: "default", feed: "vigil", channel: nil, key: key,
            title: "vigil cannot reach its broker \(url)", labels: JSONObject(), channelInfo: JSONObject(),
            startedAt: o.startedAt, openedAt: o.openedAt, resolvedAt: resolvedAt, at: t, count: 0, reading: nil)
    }

    /// What the state database keeps: the ordinal and the open incident.
    var saved: [UInt8] {
        var root = JSONObject()
        root.appendUnique("opened", .number(Double(opened)))
        if let o = open {
            root.appendUnique(
                "open",
                .object(
                    JSONObject([
                        ("id", .string(o.incidentID)), ("started", .number(Double(o.startedAt))),
                        ("opened", .number(Double(o.openedAt))), ("next", .number(Double(o.nextEventOrdinal))),
                    ])))
        }
        return Array(JSONWriter.encode(.object(root)).utf8)
    }

    mutating func restore(_ bytes: [UInt8]) {
        guard case .object(let root)? = try? JSONParser.parse(bytes, maxDepth: 8) else { return }
        opened = Int(root["opened"]?.numberValue ?? 0)
        if case .object(let o)? = root["open"], let id = o["id"]?.stringValue, let s = o["started"]?.numberValue,
            let op = o["opened"]?.numberValue, let n = o["next"]?.numberValue
        {
            open = Open(incidentID: id, startedAt: Millis(s), openedAt: Millis(op), nextEventOrdinal: Int(n))
        }
    }
}

/// What happened to an incident.
public enum IncidentEventType: String, Sendable, CaseIterable {
    case opened = "incident.opened"
    case updated = "incident.updated"
    case acknowledged = "incident.acknowledged"
    case reminded = "incident.reminded"
    case resolved = "incident.resolved"

    public var shortName: String {
        switch self {
        case .opened: return "opened"
        case .updated: return "updated"
        case .acknowledged: return "acknowledged"
        case .reminded: return "reminded"
        case .resolved: return "resolved"
        }
    }
}

/// The reading carried by an event.
public struct ReadingSnapshot: Sendable, Equatable {
    public var topic: String
    public var receivedAt: Millis
    public var payload: JSONObject

    public init(topic: String, receivedAt: Millis, payload: JSONObject) {
        self.topic = topic; self.receivedAt = receivedAt; self.payload = payload
    }

    public init(_ r: Reading) { self.init(topic: r.topic, receivedAt: r.receivedAt, payload: r.payload) }
}

/// One incident event, as every sink receives it.
public struct IncidentEvent: Sendable, Equatable {
    public var eventID: String
    public var type: IncidentEventType
    public var incidentID: String
    public var rule: String
    public var severity: Severity
    public var route: String
    public var feed: String
    public var channel: String?
    public var key: JSONObject
    public var title: String
    public var labels: JSONObject
    public var channelInfo: JSONObject
    public var startedAt: Millis
    public var openedAt: Millis
    public var resolvedAt: Millis?
    public var at: Millis
    public var count: Int
    public var reading: ReadingSnapshot?
    /// When and by whom the incident was acknowledged; nil until it is.
    public var acknowledgedAt: Millis?
    public var acknowledgedBy: String?
    /// Reminded events only: 1, 2, …
    public var reminder: Int?
    /// Acknowledged events only: the note given with the acknowledgement (nil: none).
    public var note: String?

    public init(
        eventID: String, type: IncidentEventType, incidentID: String, rule: String, severity: Severity,
        route: String, feed: String, channel: String?, key: JSONObject, title: String, labels: JSONObject,
        channelInfo: JSONObject, startedAt: Millis, openedAt: Millis, resolvedAt: Millis?, at: Millis,
        count: Int, reading: ReadingSnapshot?, acknowledgedAt: Millis? = nil, acknowledgedBy: String? = nil,
        reminder: Int? = nil, note: String? = nil
    ) {
        self.eventID = eventID; self.type = type; self.incidentID = incidentID; self.rule = rule
        self.severity = severity; self.route = route; self.feed = feed; self.channel = channel; self.key = key
        self.title = title; self.labels = labels; self.channelInfo = channelInfo; self.startedAt = startedAt
        self.openedAt = openedAt; self.resolvedAt = resolvedAt; self.at = at; self.count = count; self.reading = reading
        self.acknowledgedAt = acknowledgedAt; self.acknowledgedBy = acknowledgedBy; self.reminder = reminder; self.note = note
    }

    /// The event as one line of JSON, fields in the documented order.
    public func jsonLine() -> String {
        var w = JSONWriter(capacity: 768)
        write(to: &w)
        return w.string
    }

    public func write(to w: inout JSONWriter) {
        w.raw("{")
        w.key("event_id", first: true); w.writeString(eventID)
        w.key("type"); w.writeString(type.rawValue)
        w.key("incident_id"); w.writeString(incidentID)
        w.key("rule"); w.writeString(rule)
        w.key("severity"); w.writeString(severity.name)
        w.key("route"); w.writeString(route)
        w.key("feed"); w.writeString(feed)
        w.key("channel"); if let channel { w.writeString(channel) } else { w.raw("null") }
        w.key("key"); w.write(.object(key))
        w.key("title"); w.writeString(title)
        w.key("labels"); w.write(.object(labels))
        w.key("channel_info"); w.write(.object(channelInfo))
        w.key("started_at"); w.writeTime(startedAt)
        w.key("opened_at"); w.writeTime(openedAt)
        w.key("resolved_at"); if let resolvedAt { w.writeTime(resolvedAt) } else { w.raw("null") }
        w.key("acknowledged_at"); if let acknowledgedAt { w.writeTime(acknowledgedAt) } else { w.raw("null") }
        w.key("acknowledged_by"); if let acknowledgedBy { w.writeString(acknowledgedBy) } else { w.raw("null") }
        w.key("at"); w.writeTime(at)
        w.key("count"); w.writeInt(count)
        if type == .reminded { w.key("reminder"); w.writeInt(reminder ?? 0) }
        if type == .acknowledged { w.key("note"); if let note { w.writeString(note) } else { w.raw("null") } }
        w.key("reading")
        if let r = reading {
            w.raw("{")
            w.key("topic", first: true); w.writeString(r.topic)
            w.key("received_at"); w.writeTime(r.receivedAt)
            w.key("payload"); w.write(.object(r.payload))
            w.raw("}")
        } else {
            w.raw("null")
        }
        w.raw("}")
    }

    /// The event as a JSON value (for comparisons in rule tests).
    public func jsonValue() -> JSONValue {
        (try? JSONParser.parse(jsonLine())) ?? .null
    }

    /// Decodes an event from its JSON line (queue tools, tests).
    public static func decode(_ line: String) -> IncidentEvent? {
        guard case .object(let o)? = try? JSONParser.parse(line) else { return nil }
        func str(_ k: String) -> String? { o[k]?.stringValue }
        func time(_ k: String) -> Millis? { str(k).flatMap(Time.parse) }
        guard let id = str("event_id"), let typeName = str("type"), let type = IncidentEventType(rawValue: typeName),
            let iid = str("incident_id"), let rule = str("rule"), let sev = str("severity").flatMap(Severity.init(name:)),
            let route = str("route"), let feed = str("feed"), let started = time("started_at"),
            let opened = time("opened_at"), let at = time("at"), let count = o["count"]?.numberValue
        else { return nil }
        var reading: ReadingSnapshot?
        if case .object(let r)? = o["reading"], let topic = r["topic"]?.stringValue,
            let rec = r["received_at"]?.stringValue.flatMap(Time.parse), case .object(let p)? = r["payload"]
        {
            reading = ReadingSnapshot(topic: topic, receivedAt: rec, payload: p)
        }
        return IncidentEvent(
            eventID: id, type: type, incidentID: iid, rule: rule, severity: sev, route: route, feed: feed,
            channel: str("channel"), key: o["key"]?.objectValue ?? JSONObject(), title: str("title") ?? "",
            labels: o["labels"]?.objectValue ?? JSONObject(), channelInfo: o["channel_info"]?.objectValue ?? JSONObject(),
            startedAt: started, openedAt: opened, resolvedAt: time("resolved_at"), at: at, count: Int(count),
            reading: reading, acknowledgedAt: time("acknowledged_at"), acknowledgedBy: str("acknowledged_by"),
            reminder: o["reminder"]?.numberValue.map { Int($0) }, note: str("note"))
    }
}

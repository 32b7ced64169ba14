import VigilCore

/// An incident that is open, with everything its later events carry unchanged.
struct OpenIncident: Sendable {
    var incidentID: String
    var nextEventOrdinal: Int
    var startedAt: Millis
    var openedAt: Millis
    var count: Int
    var lastEmittedAt: Millis
    var lastMatchAt: Millis
    var feed: String
    var channel: String?
    var channelInfo: JSONObject
    var route: String
    var title: String
    var labels: JSONObject
    var key: JSONObject
    var lastReading: ReadingSnapshot?
    /// The unbroken run of true `clear_when`, if one is running.
    var clearRunStart: Millis?
    var clearRunReading: ReadingSnapshot?
    var acknowledgedAt: Millis? = nil
    var acknowledgedBy: String? = nil
    /// Reminders sent so far.
    var reminders = 0

    /// When the next `incident.reminded` is due, if the rule reminds and nobody acknowledged.
    func nextReminder(_ rule: Rule) -> Millis? {
        guard let every = rule.remindEvery, acknowledgedAt == nil else { return nil }
        return openedAt + Millis(reminders + 1) * every
    }
}

/// The engine's state for one key of one threshold or count rule.
struct KeyState: Sendable {
    var key: JSONObject
    /// Threshold: the current run of true `when`.
    var runStart: Millis?
    var runCount = 0
    var runReading: Reading?
    /// Count: times of matching readings inside the window, oldest first.
    var window: [Millis] = []
    var incident: OpenIncident?
    /// The due time of this key's live heap entry.
    var armed: Millis?

    init(key: JSONObject) { self.key = key }
}

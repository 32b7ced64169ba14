import VigilCore

/// A due time for one (rule, key). Timers due at the same instant fire in
/// rule order, then by the key's JSON text.
struct TimerEntry: Sendable, Comparable {
    var due: Millis
    var rule: Int
    var key: String

    @inline(__always)
    static func < (a: TimerEntry, b: TimerEntry) -> Bool {
        if a.due != b.due { return a.due < b.due }
        if a.rule != b.rule { return a.rule < b.rule }
        return a.key.utf8.lexicographicallyPrecedes(b.key.utf8)
    }
}

/// The engine's timers, earliest first.
typealias TimerHeap = MinHeap<TimerEntry>

/// Registry channels watched by one absence rule, kept in a list ordered by
/// the (connected) time each was last seen: the head is the next to fall
/// silent. A reading moves its channel to the tail in O(1).
struct AbsenceTracker: Sendable {
    var channel: [Int] = []  // slot → registry index
    var slotOf: [Int] = []  // registry index → slot, -1 when not watched
    var key: [JSONObject] = []
    var keyText: [String] = []
    var lastSeen: [Millis] = []
    /// Connected time (blind time left out) when last seen: the list's order and the silence deadline.
    var seenConnected: [Millis] = []
    var open = OpenBySlot()
    /// Key text → slots (a key such as `[channel.building]` is shared), for the reminders of open absence incidents.
    var slotsByKey: [String: [Int]] = [:]
    var prev: [Int] = []
    var next: [Int] = []
    var linked: [Bool] = []
    var head = -1
    var tail = -1

    init(registrySize: Int = 0) { slotOf = Array(repeating: -1, count: registrySize) }

    mutating func add(registryIndex: Int, key k: JSONObject, keyText kt: String) {
        slotOf[registryIndex] = channel.count
        slotsByKey[kt, default: []].append(channel.count)
        channel.append(registryIndex); key.append(k); keyText.append(kt)
        lastSeen.append(0); seenConnected.append(0); open.addSlot(); prev.append(-1); next.append(-1); linked.append(false)
    }

    mutating func unlink(_ s: Int) {
        guard linked[s] else { return }
        if prev[s] >= 0 { next[prev[s]] = next[s] } else { head = next[s] }
        if next[s] >= 0 { prev[next[s]] = prev[s] } else { tail = prev[s] }
        prev[s] = -1; next[s] = -1; linked[s] = false
    }

    /// Appends at the tail; callers keep `seenConnected` non-decreasing along the list.
    mutating func append(_ s: Int) {
        if linked[s] { unlink(s) }
        prev[s] = tail; next[s] = -1
        if tail >= 0 { next[tail] = s } else { head = s }
        tail = s; linked[s] = true
    }
}

/// The open incidents of an absence rule, by slot. Every reading asks its
/// channel's slot, and few channels are silent at once: a flag a slot answers
/// that, and only the open ones keep an incident (a few hundred bytes each).
struct OpenBySlot: Sendable {
    private var flags: [Bool] = []
    private var incidents: [Int: OpenIncident] = [:]

    mutating func addSlot() { flags.append(false) }

    /// A slot's flag is asked first: a closed slot costs no hashing.
    subscript(slot: Int) -> OpenIncident? {
        get { flags[slot] ? incidents[slot] : nil }
        set {
            incidents[slot] = newValue
            flags[slot] = newValue != nil
        }
    }

    /// Slots with an open incident, in no particular order.
    var slots: Dictionary<Int, OpenIncident>.Keys { incidents.keys }
    var incidentsOpen: Dictionary<Int, OpenIncident>.Values { incidents.values }
    var count: Int { incidents.count }
}

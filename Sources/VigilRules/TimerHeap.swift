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
    /// One slot's times and list links, together: a reading touches its own
    /// slot and its two neighbours, three cache lines where separate arrays
    /// for each field took a dozen (a 100,000-channel registry's slots are
    /// far from the processor's cache).
    struct Node: Sendable {
        var lastSeen: Millis = 0
        /// Connected time (blind time left out) when last seen: the list's order and the silence deadline.
        var seenConnected: Millis = 0
        var prev: Int32 = -1
        var next: Int32 = -1
        var linked = false
        /// The next slot with the same key (`-1`: none).
        var nextSameKey: Int32 = -1
        /// Whether the slot has an open incident (in `incidents`): every
        /// reading asks, and the node is in the cache already.
        var open = false
    }

    var channel: [Int] = []  // slot → registry index
    var slotOf: [Int] = []  // registry index → slot, -1 when not watched
    var key: [JSONObject] = []
    var keyText: [String] = []
    var nodes: [Node] = []
    /// Open incidents by slot.
    private(set) var incidents: [Int: OpenIncident] = [:]
    /// Key text → the first and last of its slots (a key such as
    /// `[channel.building]` is shared; the rest are chained by
    /// `Node.nextSameKey`), for the reminders of open absence incidents.
    var slotsByKey: [String: (first: Int32, last: Int32)] = [:]
    var head = -1
    var tail = -1

    /// `watching`: how many channels will be added, `keys`: how many
    /// distinct keys they have when known (the tables are sized once).
    init(registrySize: Int = 0, watching: Int = 0, keys: Int = 0) {
        slotOf = Array(repeating: -1, count: registrySize)
        channel.reserveCapacity(watching); key.reserveCapacity(watching); keyText.reserveCapacity(watching)
        nodes.reserveCapacity(watching)
        slotsByKey.reserveCapacity(keys)
    }

    mutating func add(registryIndex: Int, key k: JSONObject, keyText kt: String) {
        precondition(channel.count < Int(Int32.max), "too many channels for one absence rule")
        slotOf[registryIndex] = channel.count
        let s = Int32(truncatingIfNeeded: channel.count)
        if let known = slotsByKey[kt] {
            nodes[Int(known.last)].nextSameKey = s
            slotsByKey[kt] = (known.first, s)
        } else {
            slotsByKey[kt] = (s, s)
        }
        channel.append(registryIndex); key.append(k); keyText.append(kt)
        nodes.append(Node())
    }

    func isOpen(_ slot: Int) -> Bool { nodes[slot].open }

    /// The slots of a key, in slot order.
    func slots(key: String) -> [Int] {
        var out: [Int] = []
        var s = Int(slotsByKey[key]?.first ?? -1)
        while s >= 0 {
            out.append(s)
            s = Int(nodes[s].nextSameKey)
        }
        return out
    }

    /// A slot's open incident; the node's flag is asked first, so a closed slot costs no hashing.
    subscript(open slot: Int) -> OpenIncident? {
        get { nodes[slot].open ? incidents[slot] : nil }
        set {
            incidents[slot] = newValue
            nodes[slot].open = newValue != nil
        }
    }

    /// Slots with an open incident, in no particular order.
    var openSlots: Dictionary<Int, OpenIncident>.Keys { incidents.keys }
    var openIncidents: Dictionary<Int, OpenIncident>.Values { incidents.values }
    var openCount: Int { incidents.count }

    /// When slot `s` was last seen, in connected time.
    func seenConnected(_ s: Int) -> Millis { nodes[s].seenConnected }

    /// Slot `s` seen at `t` (connected time `k`), not yet placed in the list.
    mutating func see(_ s: Int, at t: Millis, connected k: Millis) {
        nodes[s].lastSeen = t
        nodes[s].seenConnected = k
    }

    mutating func unlink(_ s: Int) {
        let n = nodes[s]
        guard n.linked else { return }
        if n.prev >= 0 { nodes[Int(n.prev)].next = n.next } else { head = Int(n.next) }
        if n.next >= 0 { nodes[Int(n.next)].prev = n.prev } else { tail = Int(n.prev) }
        nodes[s].prev = -1; nodes[s].next = -1; nodes[s].linked = false
    }

    /// Appends at the tail; callers keep `seenConnected` non-decreasing along the list.
    mutating func append(_ s: Int) {
        if nodes[s].linked { unlink(s) }
        nodes[s].prev = Int32(truncatingIfNeeded: tail); nodes[s].next = -1
        if tail >= 0 { nodes[tail].next = Int32(truncatingIfNeeded: s) } else { head = s }
        tail = s; nodes[s].linked = true
    }
}

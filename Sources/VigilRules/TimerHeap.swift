import VigilCore

/// A due time for one (rule, key). Timers due at the same instant fire in
/// rule order, then by the key's JSON text.
struct TimerEntry: Sendable {
    var due: Millis
    var rule: Int
    var key: String

    @inline(__always)
    static func before(_ a: (due: Millis, rule: Int, key: String), _ b: (due: Millis, rule: Int, key: String)) -> Bool {
        if a.due != b.due { return a.due < b.due }
        if a.rule != b.rule { return a.rule < b.rule }
        return a.key.utf8.lexicographicallyPrecedes(b.key.utf8)
    }
}

/// A binary min-heap of timers.
struct TimerHeap: Sendable {
    private(set) var items: [TimerEntry] = []

    var count: Int { items.count }
    var top: TimerEntry? { items.first }

    mutating func push(_ e: TimerEntry) {
        items.append(e)
        var i = items.count - 1
        while i > 0 {
            let p = (i - 1) / 2
            guard less(items[i], items[p]) else { break }
            items.swapAt(i, p); i = p
        }
    }

    @discardableResult
    mutating func pop() -> TimerEntry? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && less(items[l], items[m]) { m = l }
                if r < items.count && less(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m); i = m
            }
        }
        return top
    }

    @inline(__always)
    private func less(_ a: TimerEntry, _ b: TimerEntry) -> Bool {
        TimerEntry.before((a.due, a.rule, a.key), (b.due, b.rule, b.key))
    }
}

/// Registry channels watched by one absence rule, kept in a list ordered by
/// the time each was last seen: the head is the next to fall silent. A reading
/// moves its channel to the tail in O(1).
struct AbsenceTracker: Sendable {
    var channel: [Int] = []          // slot → registry index
    var slotOf: [Int] = []           // registry index → slot, -1 when not watched
    var key: [JSONObject] = []
    var keyText: [String] = []
    var lastSeen: [Millis] = []
    var open: [OpenIncident?] = []
    var prev: [Int] = []
    var next: [Int] = []
    var linked: [Bool] = []
    var head = -1
    var tail = -1

    init(registrySize: Int = 0) { slotOf = Array(repeating: -1, count: registrySize) }

    mutating func add(registryIndex: Int, key k: JSONObject, keyText kt: String) {
        slotOf[registryIndex] = channel.count
        channel.append(registryIndex); key.append(k); keyText.append(kt)
        lastSeen.append(0); open.append(nil); prev.append(-1); next.append(-1); linked.append(false)
    }

    mutating func unlink(_ s: Int) {
        guard linked[s] else { return }
        if prev[s] >= 0 { next[prev[s]] = next[s] } else { head = next[s] }
        if next[s] >= 0 { prev[next[s]] = prev[s] } else { tail = prev[s] }
        prev[s] = -1; next[s] = -1; linked[s] = false
    }

    /// Appends at the tail; callers keep `lastSeen` non-decreasing along the list.
    mutating func append(_ s: Int) {
        if linked[s] { unlink(s) }
        prev[s] = tail; next[s] = -1
        if tail >= 0 { next[tail] = s } else { head = s }
        tail = s; linked[s] = true
    }
}

import CPrefetch

/// Topics with what is known about each (the decoder: their routes), found by
/// a quick hash of their bytes. Open addressing with linear probing over a
/// table of small slots that point into a dense array of entries: two topics
/// that hash alike both stay (a one-way cache would evict one on every turn),
/// and the slots, eight bytes each, keep a 100,000-channel fleet's table to a
/// few MiB the processor's cache can hold.
///
/// The table holds at most half as many topics as it has slots. Past that
/// it doubles, up to `maxSlots`; full at that size, the topic after that
/// starts it afresh (a storm of new topics costs their routes being worked
/// out again, never unbounded memory).
struct TopicTable<Value> {
    private(set) var entries: [(topic: String, value: Value)] = []
    /// 0: empty; else the hash's high 32 bits, then the entry's index + 1.
    private var slots: [UInt64]
    private var mask: Int
    let maxSlots: Int

    /// `slots` and `maxSlots`: powers of two.
    init(slots: Int, maxSlots: Int = 1 << 20) {
        precondition(slots >= 2 && slots & (slots - 1) == 0, "slots must be a power of two")
        precondition(maxSlots >= slots && maxSlots & (maxSlots - 1) == 0, "maxSlots must be a power of two")
        self.slots = Array(repeating: 0, count: slots)
        mask = slots - 1
        self.maxSlots = maxSlots
    }

    var capacity: Int { (mask + 1) / 2 }

    /// The index of the entry whose topic's UTF-8 is `bytes` (hashing to
    /// `hash`, `FastHash.hash`), or the slot a new entry for it would take.
    @inline(__always)
    func find(_ bytes: UnsafeRawBufferPointer, hash: UInt64) -> (entry: Int?, slot: Int) {
        var i = home(hash)
        while true {
            let s = slots[i]
            if s == 0 { return (nil, i) }
            if s >> 32 == hash >> 32 {
                let e = Self.entry(s)
                if entries[e].topic.hasUTF8(bytes) { return (e, i) }
            }
            i = (i + 1) & mask
        }
    }

    /// Starts loading the slot a lookup of `hash` reads first (the first
    /// step of `find`, ahead of time: see `ReadingDecoder.prefetch`).
    @inline(__always)
    func prefetchSlot(_ hash: UInt64) {
        slots.withUnsafeBufferPointer { vigil_prefetch($0.baseAddress! + home(hash)) }
    }

    /// The entry `find` will most likely return for `hash`: the one its first
    /// slot names when the tags agree (topics not compared), else nil. Then
    /// starts loading that entry.
    @inline(__always)
    func prefetchEntry(_ hash: UInt64) -> Int? {
        let s = slots[home(hash)]
        guard s != 0, s >> 32 == hash >> 32 else { return nil }
        let e = Self.entry(s)
        entries.withUnsafeBufferPointer { vigil_prefetch($0.baseAddress! + e) }
        return e
    }

    /// Adds an entry for a topic `find` did not find, at the slot it gave;
    /// returns the entry's index. A full table starts afresh first.
    mutating func insert(_ topic: String, _ value: Value, hash: UInt64, slot: Int) -> Int {
        var slot = slot
        if entries.count >= capacity {
            if mask + 1 < maxSlots {
                grow()
            } else {
                entries.removeAll(keepingCapacity: true)
                for i in slots.indices { slots[i] = 0 }
            }
            slot = emptySlot(hash)
        }
        entries.append((topic, value))
        slots[slot] = Self.slotWord(hash, entry: entries.count - 1)
        return entries.count - 1
    }

    /// A slot's word: the hash's high 32 bits, then the entry's index + 1 (0 is an empty slot).
    private static func slotWord(_ hash: UInt64, entry: Int) -> UInt64 { (hash >> 32) << 32 | UInt64(entry + 1) }

    /// The entry index a (full) slot's word names.
    @inline(__always)
    private static func entry(_ word: UInt64) -> Int { Int(truncatingIfNeeded: word & 0xFFFF_FFFF) - 1 }

    /// Where the probe path of `hash` starts.
    @inline(__always)
    private func home(_ hash: UInt64) -> Int { Int(truncatingIfNeeded: hash >> 32) & mask }

    /// The first empty slot on the probe path of `hash`.
    private func emptySlot(_ hash: UInt64) -> Int {
        var i = home(hash)
        while slots[i] != 0 { i = (i + 1) & mask }
        return i
    }

    /// Twice the slots, every entry placed again (its hash from its topic's bytes).
    private mutating func grow() {
        slots = Array(repeating: 0, count: (mask + 1) * 2)
        mask = slots.count - 1
        for e in entries.indices {
            var topic = entries[e].topic
            let hash = topic.withUTF8 { FastHash.hash(UnsafeRawBufferPointer($0)) }
            slots[emptySlot(hash)] = Self.slotWord(hash, entry: e)
        }
    }
}
extension TopicTable: Sendable where Value: Sendable {}

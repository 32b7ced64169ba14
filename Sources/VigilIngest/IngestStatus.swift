import Synchronization
import VigilConfig
import VigilCore

/// Counters the ingest loop publishes for the stats line and health checks.
public final class IngestStatus: Sendable {
    struct Values {
        var connected = false
        var received = 0
        var readings = 0
        var deadLetters: [String: Int] = [:]
        var events = 0
        var openIncidents = 0
        var backpressured = false
        var lastLoopAt: Millis = 0
        var lagMs: Millis = 0
        var ready = false
        /// Why intake is stopped (the state database cannot take commits), if it is.
        var intakeHalted: String?
    }
    let values = Mutex(Values())
    public init() {}

    public var connected: Bool { values.withLock { $0.connected } }
    public var received: Int { values.withLock { $0.received } }
    public var readings: Int { values.withLock { $0.readings } }
    public var events: Int { values.withLock { $0.events } }
    public var deadLetterTotal: Int { values.withLock { $0.deadLetters.values.reduce(0, +) } }
    public var openIncidents: Int { values.withLock { $0.openIncidents } }
    public var ready: Bool { values.withLock { $0.ready } }
    /// When the ingestion loop last turned, on the monotonic clock (the watchdog's view of it).
    public var lastLoopAt: Millis { values.withLock { $0.lastLoopAt } }
    /// Why intake is stopped, if it is.
    public var intakeHalted: String? { values.withLock { $0.intakeHalted } }
}

/// A flag one thread sets and another polls.
public final class StopFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    public func set() { flag.store(true, ordering: .releasing) }
    public var isSet: Bool { flag.load(ordering: .acquiring) }
    /// Reads and clears the flag.
    public func take() -> Bool { flag.exchange(false, ordering: .acquiringAndReleasing) }
}

/// Messages per feed in a batch. There are a handful of feeds, and feed names
/// are short: a list compared in place costs less than hashing every message.
struct FeedTally {
    var feeds: [String] = []
    var numbers: [Int] = []

    mutating func add(_ feed: String) {
        for i in feeds.indices where feeds[i] == feed {
            numbers[i] += 1
            return
        }
        feeds.append(feed)
        numbers.append(1)
    }

    var counts: [String: Int] { Dictionary(uniqueKeysWithValues: zip(feeds, numbers)) }
}

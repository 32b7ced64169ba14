import VigilCore

/// `vigil replay`: recorded messages through the engine on a virtual clock.
/// No broker, no sinks, no state directory: the same input gives the same bytes out.
public struct Replayer {
    public struct Stats: Sendable {
        public var records = 0
        public var readings = 0
        public var deadLetters: [DeadLetterReason: Int] = [:]
        public var events = 0
    }

    public enum Failure: Error, CustomStringConvertible {
        case badRecord(line: Int, message: String)
        case outOfOrder(line: Int, ts: Millis, previous: Millis)

        public var description: String {
            switch self {
            case .badRecord(let line, let m): return "\(line): error: \(m)"
            case .outOfOrder(let line, let ts, let prev):
                return "\(line): error: ts \(Time.format(ts)) is before the previous record's \(Time.format(prev)) — records must be in time order"
            }
        }
    }

    /// When to stop the clock after the last record.
    public enum Until: Sendable {
        case absolute(Millis)
        /// A duration after the last record.
        case after(Millis)

        public static func parse(_ s: String) -> Until? {
            if let t = Time.parse(s) { return .absolute(t) }
            let d = s.hasPrefix("+") ? String(s.dropFirst()) : s
            if case .success(let ms) = Units.parseDuration(d) { return .after(ms) }
            return nil
        }
    }

    public let setup: Setup
    public var evaluator: Evaluator
    public var engine: RuleEngine { evaluator.engine }

    public init(setup: Setup) {
        self.setup = setup
        self.evaluator = setup.evaluator()
    }

    /// Records read and looked ahead at together.
    static let batch = 32
    /// Where the last record's topic member began (`Record.likelyTopic`).
    var topicOffset = 0
    /// Whether replay reads its records in batches and looks ahead at each
    /// (`prefetch`); false reads and takes them one at a time. The output is
    /// the same either way.
    public var lookAhead = true

    /// Starts loading, for a batch of records, what evaluating them will
    /// read: their topics' table entries and routes, their channels' flags
    /// and absence nodes. A record at a time, each of those loads waits for
    /// the one before it; a batch's go out together.
    /// (Without `lookAhead` a batch is one record: nothing to look ahead at.)
    mutating func prefetch(_ lines: UnsafeBufferPointer<UnsafeBufferPointer<UInt8>>) {
        guard lines.count > 1, evaluator.decoder.worthPrefetching else { return }
        withUnsafeTemporaryAllocation(of: UnsafeRawBufferPointer.self, capacity: lines.count) { topics in
            withUnsafeTemporaryAllocation(of: Int.self, capacity: lines.count) { channels in
                for (i, line) in lines.enumerated() {
                    topics[i] = Record.likelyTopic(in: line, guess: &topicOffset) ?? UnsafeRawBufferPointer(start: nil, count: 0)
                }
                evaluator.decoder.prefetch(topics: UnsafeBufferPointer(topics), channels: channels)
                evaluator.engine.prefetch(channels: UnsafeBufferPointer(channels))
            }
        }
    }

    /// Reads records from `inputFD`, writes events as JSON lines through `emit`.
    public mutating func run(inputFD: Int32, until: Until?, emit: (IncidentEvent) -> Void) throws(Failure) -> Stats {
        var stats = Stats()
        var last: Millis?
        var events: [IncidentEvent] = []
        events.reserveCapacity(16)
        var failure: Failure?
        let maxDepth = setup.config.limits.maxDepth
        var shortStrings = ShortStrings()
        // Each payload object is parsed into this one: its storage is used again by the next.
        var scratch = JSONObject()
        _ = withUnsafeMutablePointer(to: &scratch) { scratch in
            withUnsafeMutablePointer(to: &shortStrings) { strings in
                LineReader(fd: inputFD).forEachBatch(maxLines: lookAhead ? Replayer.batch : 1) { lines, first in
                    guard failure == nil else { return }
                    prefetch(lines)
                    records: for (i, line) in lines.enumerated() {
                        let number = first + i
                        if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
                        let record: Record
                        // The decoder interns the topic and has its route ready for the decoding.
                        switch Record.parse(line: line, maxDepth: maxDepth, topics: &evaluator.decoder, strings: strings, scratch: scratch) {
                        case .success(let r): record = r
                        case .failure(let e): failure = .badRecord(line: number, message: e.description); break records
                        }
                        if let last, record.ts < last { failure = .outOfOrder(line: number, ts: record.ts, previous: last); break records }
                        last = record.ts
                        stats.records += 1
                        switch record {
                        case .message(let m):
                            if evaluator.isBlind {
                                failure = .badRecord(
                                    line: number,
                                    message:
                                        "a message between a broker \"lost\" mark and the next \"connected\" — vigil hears nothing while it is not connected")
                                break records
                            }
                            switch evaluator.message(m, into: &events) {
                            case .reading: stats.readings += 1
                            case .dead(let dead): stats.deadLetters[dead.reason, default: 0] += 1
                            }
                        case .mark(let ts, let mark):
                            evaluator.mark(mark, arrival: ts, into: &events)
                        case .ack(let ts, let ack):
                            // An acknowledgement of an unknown or resolved incident changes nothing.
                            _ = evaluator.acknowledge(ack, arrival: ts, into: &events)
                        }
                        if !events.isEmpty {
                            stats.events += events.count
                            for e in events { emit(e) }
                            events.removeAll(keepingCapacity: true)
                        }
                    }
                }
            }
        }
        if let failure { throw failure }
        if let until {
            let target: Millis
            switch until {
            case .absolute(let t): target = t
            case .after(let d): target = (last ?? 0) + d
            }
            // The clock never runs backwards, and stands still while blind.
            if let last, target < last {
            } else {
                evaluator.engine.advance(to: target, into: &events)
            }
            stats.events += events.count
            for e in events { emit(e) }
        }
        return stats
    }
}

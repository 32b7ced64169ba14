import Logging
import VigilCore
#if canImport(Glibc)
import Glibc
#endif

/// How a delivery attempt ended.
public enum DeliveryOutcome: Sendable {
    case delivered
    /// Try again later (after `retryAfter` if the receiver said so).
    case retry(reason: String, retryAfter: Millis?)
    /// Never going to work: the event is dead for this sink.
    case permanent(reason: String)
}

/// Where incident events go. A sink confirms an event only once it is safely
/// handed over: written and flushed, acknowledged, answered 2xx.
public protocol Sink: Sendable {
    var name: String { get }
    /// Delivers a batch in order; returns one outcome per event.
    func deliver(_ batch: [EventQueue.Pending]) async -> [DeliveryOutcome]
}

/// JSON lines appended to a file, flushed and fsynced per batch.
public final class FileSink: Sink {
    public let name: String
    let path: String

    public init(name: String, path: String) {
        self.name = name
        self.path = path
    }

    /// The file's `write` and `fsync` run here, off the cooperative pool.
    let lane = BlockingLane(label: "vigil.sink.file")

    public func deliver(_ batch: [EventQueue.Pending]) async -> [DeliveryOutcome] {
        var bytes: [UInt8] = []
        for p in batch { bytes.append(contentsOf: p.body.utf8); bytes.append(0x0A) }
        let path = path
        let failure = await lane.run { [bytes] in FileSink.append(bytes, to: path) }
        if let why = failure { return batch.map { _ in .retry(reason: why, retryAfter: nil) } }
        return batch.map { _ in .delivered }
    }

    /// Appends and syncs; returns why it failed, if it did.
    static func append(_ bytes: [UInt8], to path: String) -> String? {
        let fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o640)
        guard fd >= 0 else { return "cannot open \(path): \(String(cString: strerror(errno)))" }
        defer { close(fd) }
        var off = 0
        while off < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + off, $0.count - off) }
            if n < 0 {
                if errno == EINTR { continue }
                return "write \(path): \(String(cString: strerror(errno)))"
            }
            off += n
        }
        if fsync(fd) != 0 { return "fsync \(path): \(String(cString: strerror(errno)))" }
        return nil
    }
}

/// One log line per event, in the daemon's log stream, at the level of the
/// incident's severity — under journald that is its priority, so
/// `journalctl -p warning` shows every major and critical incident.
public struct LogSink: Sink {
    /// critical → critical (`<2>`), major → warning (`<4>`), minor → notice (`<5>`), info → info (`<6>`).
    public static func level(_ severity: Severity) -> Logger.Level {
        switch severity {
        case .critical: return .critical
        case .major: return .warning
        case .minor: return .notice
        case .info: return .info
        }
    }

    public let name: String
    let logger: Logger

    public init(name: String, logger: Logger) {
        self.name = name
        self.logger = logger
    }

    public func deliver(_ batch: [EventQueue.Pending]) async -> [DeliveryOutcome] {
        for p in batch {
            guard let e = IncidentEvent.decode(p.body) else { continue }
            var meta: Logger.Metadata = [
                "rule": .string(e.rule), "incident_id": .string(e.incidentID), "severity": .string(e.severity.name),
                "route": .string(e.route), "feed": .string(e.feed), "title": .string(e.title),
                "event_id": .string(e.eventID), "count": .stringConvertible(e.count),
            ]
            if let c = e.channel { meta["channel"] = .string(c) }
            if e.type == .resolved { meta["duration"] = .string(Units.formatDuration(e.at - e.openedAt)) }
            logger.log(level: LogSink.level(e.severity), "incident \(e.type.shortName)", metadata: meta)
        }
        return batch.map { _ in .delivered }
    }
}

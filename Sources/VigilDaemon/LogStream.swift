import Logging
import VigilConfig
import VigilCore
import VigilIngest
import VigilRules
#if canImport(Glibc)
import Glibc
#endif

/// The daemon's log stream on stderr: one line per event, logfmt or JSON.
/// Under systemd (`JOURNAL_STREAM` set) each line starts with its syslog
/// priority (`<6>`) and carries no timestamp: the journal adds its own.
public struct LogStream: LogHandler {
    public enum Format: String, Sendable { case logfmt, json }

    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    let label: String
    let format: Format
    let journal: Bool
    let fd: Int32

    /// Keys that lead a line, in this order; the rest follow sorted.
    static let leading = ["rule", "incident_id", "channel", "severity", "route", "feed", "sink", "event_id"]

    public init(label: String, level: Logger.Level, format: Format, journal: Bool = LogStream.underJournal, fd: Int32 = 2) {
        self.label = label; self.logLevel = level; self.format = format; self.journal = journal; self.fd = fd
    }

    public static var underJournal: Bool {
        guard let v = getenv("JOURNAL_STREAM") else { return false }
        return v.pointee != 0
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public static func priority(_ level: Logger.Level) -> Int {
        switch level {
        case .trace, .debug: return 7
        case .info: return 6
        case .notice: return 5
        case .warning: return 4
        case .error: return 3
        case .critical: return 2
        }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let m = event.metadata { all.merge(m) { $1 } }
        let keys = LogStream.leading.filter { all[$0] != nil } + all.keys.filter { !LogStream.leading.contains($0) }.sorted()
        var line = journal ? "<\(LogStream.priority(event.level))>" : ""
        switch format {
        case .logfmt:
            var parts: [String] = []
            if !journal { parts.append("ts=" + Time.format(Time.now())) }
            parts.append("level=\(event.level.rawValue)")
            parts.append("msg=" + LogStream.logfmtValue("\(event.message)"))
            for k in keys { parts.append(k + "=" + LogStream.logfmtValue(LogStream.text(all[k]!))) }
            line += parts.joined(separator: " ")
        case .json:
            var o = JSONObject()
            if !journal { o.appendUnique("ts", .string(Time.format(Time.now()))) }
            o.appendUnique("level", .string(event.level.rawValue))
            o.appendUnique("msg", .string("\(event.message)"))
            for k in keys where k != "ts" && k != "level" && k != "msg" { o.appendUnique(k, .string(LogStream.text(all[k]!))) }
            line += JSONWriter.encode(.object(o))
        }
        line += "\n"
        // One write per line: lines from different threads never interleave.
        var bytes = Array(line.utf8)
        _ = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress, $0.count) }
    }

    static func text(_ v: Logger.Metadata.Value) -> String {
        switch v {
        case .string(let s): return s
        case .stringConvertible(let c): return c.description
        case .array(let a): return "[" + a.map(text).joined(separator: ",") + "]"
        case .dictionary(let d): return "{" + d.keys.sorted().map { "\($0)=\(text(d[$0]!))" }.joined(separator: ",") + "}"
        }
    }

    /// Quotes a value when it is empty or holds spaces, quotes, `=` or control characters.
    public static func logfmtValue(_ s: String) -> String {
        let needsQuotes = s.isEmpty || s.unicodeScalars.contains { $0 == " " || $0 == "=" || $0 == "\"" || $0 == "\\" || $0.value < 0x20 }
        guard needsQuotes else { return s }
        var out = "\""
        for c in s.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if c.value < 0x20 { out += String(format: c.value) } else { out.unicodeScalars.append(c) }
            }
        }
        return out + "\""
    }
}

extension String {
    fileprivate init(format value: UInt32) {
        let hex = String(value, radix: 16)
        self = "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
    }
}

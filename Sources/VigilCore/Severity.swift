/// How urgent an incident is. Dispatch delivers higher severities first.
public enum Severity: Int, Sendable, Comparable, CaseIterable, CustomStringConvertible {
    case info = 0, minor = 1, major = 2, critical = 3

    public init?(name: String) {
        switch name {
        case "info": self = .info
        case "minor": self = .minor
        case "major": self = .major
        case "critical": self = .critical
        default: return nil
        }
    }

    public var name: String {
        switch self {
        case .info: return "info"
        case .minor: return "minor"
        case .major: return "major"
        case .critical: return "critical"
        }
    }

    public var description: String { name }

    public static func < (a: Severity, b: Severity) -> Bool { a.rawValue < b.rawValue }
}

/// A position in a file the operator wrote. Lines and columns count from 1.
public struct SourceLocation: Sendable, Hashable, Comparable {
    public var path: String
    public var line: Int
    public var column: Int

    public init(path: String, line: Int, column: Int) {
        self.path = path; self.line = line; self.column = column
    }

    public static func < (a: SourceLocation, b: SourceLocation) -> Bool {
        (a.path, a.line, a.column) < (b.path, b.line, b.column)
    }
}

/// One problem in a configuration, registry, rule or test file, printed as
/// `PATH:LINE:COL: error: MESSAGE`.
public struct Diagnostic: Error, Sendable, Hashable, CustomStringConvertible {
    public var location: SourceLocation
    public var message: String

    public init(_ location: SourceLocation, _ message: String) {
        self.location = location; self.message = message
    }

    public init(path: String, line: Int, column: Int, _ message: String) {
        self.init(SourceLocation(path: path, line: line, column: column), message)
    }

    public var description: String {
        "\(location.path):\(location.line):\(location.column): error: \(message)"
    }
}

/// Every diagnostic of a failed load, in file order.
public struct Diagnostics: Error, Sendable, CustomStringConvertible {
    public var items: [Diagnostic]
    public init(_ items: [Diagnostic]) { self.items = items }
    public var description: String { items.map(\.description).joined(separator: "\n") }
}

/// Collects diagnostics while a loader keeps going, so one run reports them all.
public struct DiagnosticSink: Sendable {
    public private(set) var items: [Diagnostic] = []
    public init() {}
    public mutating func error(_ location: SourceLocation, _ message: String) {
        items.append(Diagnostic(location, message))
    }
    public mutating func append(contentsOf other: [Diagnostic]) { items.append(contentsOf: other) }
    public var isEmpty: Bool { items.isEmpty }
}

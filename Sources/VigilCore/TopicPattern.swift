/// A subscription's topic pattern: MQTT levels where `{name}` captures one
/// level, `+` matches one level and `#` the rest.
public struct TopicPattern: Sendable, Equatable {
    public enum Level: Sendable, Equatable {
        case literal(String)
        case capture(String)
        case single
        case multi
    }

    public let text: String
    public let levels: [Level]

    /// Parses a pattern, or explains what is wrong with it.
    public init(_ text: String) throws(UnitError) {
        self.text = text
        guard !text.isEmpty else { throw UnitError("the topic pattern is empty") }
        var levels: [Level] = []
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        for (i, part) in parts.enumerated() {
            if part == "#" {
                guard i == parts.count - 1 else { throw UnitError("'#' must be the last level of '\(text)'") }
                levels.append(.multi)
            } else if part == "+" {
                levels.append(.single)
            } else if part.hasPrefix("{") && part.hasSuffix("}") && part.count > 2 {
                let name = String(part.dropFirst().dropLast())
                guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                    throw UnitError("capture '{\(name)}' in '\(text)' must be a plain name")
                }
                if levels.contains(.capture(name)) { throw UnitError("capture '{\(name)}' appears twice in '\(text)'") }
                levels.append(.capture(name))
            } else {
                if part.contains("+") || part.contains("#") || part.contains("{") || part.contains("}") {
                    throw UnitError("level '\(part)' of '\(text)': '+', '#' and '{name}' must fill a whole level")
                }
                levels.append(.literal(String(part)))
            }
        }
        self.levels = levels
    }

    /// The MQTT subscription filter: captures become `+`.
    public var filter: String {
        levels.map { l -> String in
            switch l {
            case .literal(let s): return s
            case .capture, .single: return "+"
            case .multi: return "#"
            }
        }.joined(separator: "/")
    }

    public var captureNames: [String] {
        levels.compactMap { if case .capture(let n) = $0 { return n } else { return nil } }
    }

    /// Matches topic levels; returns the captures, or nil. The levels are
    /// checked before anything is made: most subscriptions a new topic is
    /// tried against are not its own.
    public func match(_ topic: [Substring]) -> [(name: String, value: String)]? {
        var i = 0
        var rest = false
        for level in levels {
            if case .multi = level {
                rest = true
                break
            }
            guard i < topic.count else { return nil }
            switch level {
            case .literal(let s): guard topic[i].utf8.elementsEqual(s.utf8) else { return nil }
            case .capture: guard !topic[i].isEmpty else { return nil }
            case .single, .multi: break
            }
            i += 1
        }
        guard rest || i == topic.count else { return nil }
        var captures: [(name: String, value: String)] = []
        for (i, level) in levels.enumerated() {
            if case .capture(let name) = level { captures.append((name, String(topic[i]))) }
        }
        return captures
    }
}

/// What a subscription says about the feed of its messages.
public enum FeedSpec: Sendable, Equatable {
    case literal(String)
    /// The feed is the value of a `{name}` capture.
    case capture(String)

    public init(_ text: String) {
        if text.hasPrefix("{") && text.hasSuffix("}") && text.count > 2 {
            self = .capture(String(text.dropFirst().dropLast()))
        } else {
            self = .literal(text)
        }
    }
}

public struct Subscription: Sendable {
    public var pattern: TopicPattern
    public var feed: FeedSpec
    public init(pattern: TopicPattern, feed: FeedSpec) { self.pattern = pattern; self.feed = feed }
}

/// The device's own time in a payload (`readings.device_time`): an RFC 3339
/// string with an offset, or an integer JSON number of epoch milliseconds.
public enum DeviceTime {
    /// A payload path as expressions write it: `ts`, `meta.sent_at`, `samples[0].t`
    /// (`payload.` in front is allowed and means the same).
    public struct Path: Sendable, Equatable {
        public enum Step: Sendable, Equatable {
            case key(String)
            case index(Int)
        }

        public let steps: [Step]
        public let text: String

        public init?(_ text: String) {
            var body = Substring(text)
            if body.hasPrefix("payload.") { body = body.dropFirst("payload.".count) }
            var steps: [Step] = []
            for segment in body.split(separator: ".", omittingEmptySubsequences: false) {
                var rest = segment
                let name = rest.prefix { $0 != "[" }
                guard Path.isName(name) else { return nil }
                steps.append(.key(String(name)))
                rest = rest.dropFirst(name.count)
                while !rest.isEmpty {
                    guard rest.first == "[", let close = rest.firstIndex(of: "]"),
                        let i = Int(rest[rest.index(after: rest.startIndex)..<close]), i >= 0
                    else { return nil }
                    steps.append(.index(i))
                    rest = rest[rest.index(after: close)...]
                }
            }
            guard !steps.isEmpty else { return nil }
            self.steps = steps
            self.text = text
        }

        static func isName(_ s: Substring) -> Bool {
            guard let first = s.unicodeScalars.first, first == "_" || first.properties.isAlphabetic else { return false }
            return s.unicodeScalars.allSatisfy { $0 == "_" || $0.properties.isAlphabetic || ("0"..."9").contains($0) }
        }

        /// The value at this path, or nil when any step is missing.
        public func value(in payload: JSONObject) -> JSONValue? {
            var v: JSONValue = .object(payload)
            for step in steps {
                switch step {
                case .key(let k):
                    guard case .object(let o) = v, let next = o[k] else { return nil }
                    v = next
                case .index(let i):
                    guard case .array(let a) = v, i < a.count else { return nil }
                    v = a[i]
                }
            }
            return v
        }

        /// The device time of a payload, or nil when it is missing or unparseable.
        public func time(in payload: JSONObject) -> Millis? {
            value(in: payload).flatMap(DeviceTime.parse)
        }
    }

    /// An RFC 3339 time with `Z` or `±hh:mm` (fractions beyond milliseconds
    /// truncated), or an integer number of epoch milliseconds; nil otherwise.
    public static func parse(_ v: JSONValue) -> Millis? {
        switch v {
        case .number(let d):
            guard d == d.rounded(.towardZero), d.magnitude < 1e15 else { return nil }
            return Millis(d)
        case .string(let s):
            return Time.parse(s)
        default:
            return nil
        }
    }
}

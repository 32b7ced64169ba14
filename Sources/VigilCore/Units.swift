/// Durations (`500ms`, `30s`, `5m`, `2h`, `1d`) and sizes (`64KiB`, `10MiB`) as
/// the configuration and rule files write them.
public enum Units {
    /// Milliseconds, or an error message in the operator's words.
    /// Also accepts compound forms such as `1m30s` and `2h30m`.
    public static func parseDuration(_ text: String) -> Result<Millis, UnitError> {
        let scalars = Array(text.unicodeScalars)
        var i = 0
        var total: Double = 0
        var parts = 0
        while i < scalars.count {
            var digits = ""
            while i < scalars.count, ("0"..."9").contains(scalars[i]) || scalars[i] == "." {
                digits.unicodeScalars.append(scalars[i]); i += 1
            }
            var unit = ""
            while i < scalars.count, !("0"..."9").contains(scalars[i]) {
                unit.unicodeScalars.append(scalars[i]); i += 1
            }
            guard !digits.isEmpty, let value = Double(digits) else {
                return .failure(UnitError("duration '\(text)' — write a number and a unit: 500ms, 30s, 5m, 2h, 1d"))
            }
            let factor: Double
            switch unit {
            case "ms": factor = 1
            case "s": factor = 1000
            case "m": factor = 60_000
            case "h": factor = 3_600_000
            case "d": factor = 86_400_000
            default:
                let squeezed = text.filter { $0 != " " }
                if squeezed != text, case .success = parseDuration(squeezed) {
                    return .failure(UnitError("duration '\(text)' — write \(squeezed)"))
                }
                return .failure(UnitError("duration '\(text)' — the unit must be one of ms, s, m, h, d (e.g. 30s)"))
            }
            total += value * factor
            parts += 1
        }
        guard parts > 0 else {
            return .failure(UnitError("duration '\(text)' — write a number and a unit: 500ms, 30s, 5m, 2h, 1d"))
        }
        guard total == total.rounded(), total < 1e15 else {
            return .failure(UnitError("duration '\(text)' — must be a whole number of milliseconds"))
        }
        return .success(Millis(total))
    }

    public static func parseSize(_ text: String) -> Result<Int64, UnitError> {
        var digits = ""
        var unit = ""
        for ch in text {
            if unit.isEmpty, ch.isASCII, ch.isNumber { digits.append(ch) } else { unit.append(ch) }
        }
        guard let value = Int64(digits) else {
            return .failure(UnitError("size '\(text)' — write a number and a unit: 64KiB, 10MiB, 1GiB"))
        }
        let factor: Int64
        switch unit {
        case "", "B": factor = 1
        case "KiB", "K", "KB", "kB": factor = 1024
        case "MiB", "M", "MB": factor = 1024 * 1024
        case "GiB", "G", "GB": factor = 1024 * 1024 * 1024
        default: return .failure(UnitError("size '\(text)' — the unit must be one of B, KiB, MiB, GiB"))
        }
        return .success(value * factor)
    }

    /// `30000` → `30s`, `90000` → `1m30s`, for messages and logs.
    /// A size in the units `parseSize` reads: `512KiB`, `3MiB`, `1GiB` (rounded down), or bytes.
    public static func formatSize(_ bytes: Int64) -> String {
        for (unit, factor) in [("GiB", Int64(1) << 30), ("MiB", Int64(1) << 20), ("KiB", Int64(1) << 10)] where bytes >= factor {
            return "\(bytes / factor)\(unit)"
        }
        return "\(bytes)B"
    }

    public static func formatDuration(_ ms: Millis) -> String {
        if ms == 0 { return "0s" }
        if ms % 1000 != 0 { return "\(ms)ms" }
        var s = ms / 1000
        var out = ""
        if s >= 86_400 && s % 86_400 == 0 { return "\(s / 86_400)d" }
        if s >= 3600 { out += "\(s / 3600)h"; s %= 3600 }
        if s >= 60 { out += "\(s / 60)m"; s %= 60 }
        if s > 0 { out += "\(s)s" }
        return out
    }
}

public struct UnitError: Error, Sendable, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

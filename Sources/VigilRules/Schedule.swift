import Foundation
import VigilCore

/// A recurring maintenance window: day sets and a time range in a time zone,
/// e.g. `Mon-Fri 02:00-04:00`, `Sat,Sun 00:00-24:00`, `daily 22:00-06:00`.
public struct Schedule: Sendable {
    /// Days the range starts on, 0 = Monday … 6 = Sunday.
    public let days: Set<Int>
    /// Minutes after local midnight.
    public let start: Int
    public let end: Int
    public let timeZone: TimeZone

    static let dayNames = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

    public static func parse(_ text: String, timeZone: TimeZone) -> Result<Schedule, UnitError> {
        let words = text.split(separator: " ").map(String.init)
        guard let range = words.last else { return .failure(UnitError("empty schedule — write e.g. \"Mon-Fri 02:00-04:00\"")) }
        let bounds = range.split(separator: "-").map(String.init)
        guard bounds.count == 2, let s = minutes(bounds[0]), let e = minutes(bounds[1]) else {
            return .failure(UnitError("time range '\(range)' — write HH:MM-HH:MM, e.g. 02:00-04:00"))
        }
        if s == e { return .failure(UnitError("time range '\(range)' is empty")) }
        if s == 24 * 60 { return .failure(UnitError("time range '\(range)' cannot start at 24:00")) }
        var days = Set<Int>()
        let daySpecs = words.dropLast()
        if daySpecs.isEmpty { days = Set(0..<7) }
        for spec in daySpecs {
            for part in spec.split(separator: ",") {
                let p = part.lowercased()
                if p == "daily" || p == "*" { days.formUnion(0..<7); continue }
                let ends = p.split(separator: "-").map(String.init)
                guard let a = dayNames.firstIndex(of: String(ends[0].prefix(3))), ends[0].count >= 3 else {
                    return .failure(UnitError("day '\(part)' — write Mon, Tue, Wed, Thu, Fri, Sat, Sun, a range like Mon-Fri, or daily"))
                }
                if ends.count == 1 { days.insert(a); continue }
                guard ends.count == 2, let b = dayNames.firstIndex(of: String(ends[1].prefix(3))) else {
                    return .failure(UnitError("day range '\(part)' — write e.g. Mon-Fri"))
                }
                var d = a
                while true { days.insert(d); if d == b { break }; d = (d + 1) % 7 }
            }
        }
        return .success(Schedule(days: days, start: s, end: e, timeZone: timeZone))
    }

    static func minutes(_ s: String) -> Int? {
        let parts = s.split(separator: ":")
        guard parts.count == 2, parts[0].count == 2, parts[1].count == 2,
            let h = Int(parts[0]), let m = Int(parts[1]), m < 60, h < 24 || (h == 24 && m == 0)
        else { return nil }
        return h * 60 + m
    }

    /// Whether the instant falls in the window; a range past midnight ends the next day.
    public func covers(_ t: Millis) -> Bool {
        let offset = Millis(timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double(t) / 1000))) * 1000
        let local = t + offset
        let (days, msOfDay) = Time.floorDivMod(local, 86_400_000)
        let minute = Int(msOfDay / 60_000)
        // 1970-01-01 was a Thursday (3 with Monday = 0).
        let weekday = Int(Time.floorDivMod(days + 3, 7).1)
        if start < end {
            return days_contains(weekday) && minute >= start && minute < end
        }
        // Past midnight: the evening part belongs to the starting day, the morning part to the day before.
        if minute >= start && days_contains(weekday) { return true }
        if minute < end && days_contains((weekday + 6) % 7) { return true }
        return false
    }

    private func days_contains(_ d: Int) -> Bool { days.contains(d) }
}

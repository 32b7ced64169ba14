import Foundation
/// One device channel of the registry.
public struct Channel: Sendable {
    public let id: String
    public let feed: String
    /// Every column but `channel` and `feed`, in header order: `channel_info` of incidents.
    public let info: JSONObject
    /// Where in the registry it was declared (1-based line).
    public let line: Int
}

/// The channel registry (CSV): which channels exist, their feed, and free
/// columns that rules see as `channel.<column>`.
public struct ChannelRegistry: Sendable {
    public private(set) var channels: [Channel] = []
    public private(set) var index: [String: Int] = [:]
    public private(set) var columns: [String] = []

    public init() {}

    public var count: Int { channels.count }
    public var isEmpty: Bool { channels.isEmpty }

    public func lookup(_ id: String) -> Int? { index[id] }
    public subscript(i: Int) -> Channel { channels[i] }

    /// Parses registry text. `knownFeeds` nil accepts any feed.
    public static func parse(_ text: String, path: String, knownFeeds: Set<String>?) -> (ChannelRegistry, [Diagnostic]) {
        var reg = ChannelRegistry()
        var diags: [Diagnostic] = []
        let rows = CSV.parse(text)
        guard let header = rows.first else {
            return (reg, [Diagnostic(path: path, line: 1, column: 1, "the registry is empty: it needs a header row with 'channel' and 'feed'")])
        }
        let names = header.fields.map { $0.value.trimmingCharacters(in: " ") }
        guard let chCol = names.firstIndex(of: "channel") else {
            return (
                reg, [Diagnostic(path: path, line: header.line, column: 1, "the header has no 'channel' column (columns: \(names.joined(separator: ", ")))")]
            )
        }
        guard let feedCol = names.firstIndex(of: "feed") else {
            return (reg, [Diagnostic(path: path, line: header.line, column: 1, "the header has no 'feed' column (columns: \(names.joined(separator: ", ")))")])
        }
        var seen = Set<String>()
        for (i, n) in names.enumerated() {
            if n.isEmpty {
                diags.append(Diagnostic(path: path, line: header.line, column: header.fields[i].column, "column \(i + 1) of the header has no name"))
            } else if !seen.insert(n).inserted {
                diags.append(Diagnostic(path: path, line: header.line, column: header.fields[i].column, "column '\(n)' appears twice in the header"))
            }
        }
        reg.columns = names
        reg.channels.reserveCapacity(rows.count - 1)
        reg.index.reserveCapacity(rows.count - 1)
        for row in rows.dropFirst() {
            if row.fields.count == 1 && row.fields[0].value.isEmpty { continue }  // blank line
            if row.fields.count != names.count {
                diags.append(Diagnostic(path: path, line: row.line, column: 1, "this row has \(row.fields.count) fields, the header has \(names.count)"))
                continue
            }
            let id = row.fields[chCol].value
            let feed = row.fields[feedCol].value
            if id.isEmpty {
                diags.append(Diagnostic(path: path, line: row.line, column: row.fields[chCol].column, "empty channel id"))
                continue
            }
            if let first = reg.index[id] {
                diags.append(
                    Diagnostic(
                        path: path, line: row.line, column: row.fields[chCol].column, "duplicate channel '\(id)' (first on line \(reg.channels[first].line))"))
                continue
            }
            if let knownFeeds, !knownFeeds.contains(feed) {
                diags.append(
                    Diagnostic(
                        path: path, line: row.line, column: row.fields[feedCol].column,
                        "unknown feed '\(feed)' for channel '\(id)' — known feeds: \(knownFeeds.sorted().joined(separator: ", "))"))
                continue
            }
            var info = JSONObject(reservingCapacity: names.count - 2)
            for (c, n) in names.enumerated() where c != chCol && c != feedCol {
                info.appendUnique(n, .string(row.fields[c].value))
            }
            reg.index[id] = reg.channels.count
            reg.channels.append(Channel(id: id, feed: feed, info: info, line: row.line))
        }
        return (reg, diags)
    }
}

/// RFC 4180 CSV with line and column of every field.
public enum CSV {
    public struct Field { public var value: String; public var column: Int }
    public struct Row { public var fields: [Field]; public var line: Int }

    public static func parse(_ text: String) -> [Row] {
        var rows: [Row] = []
        var fields: [Field] = []
        var field: [UInt8] = []
        var fieldColumn = 1
        var line = 1
        var rowLine = 1
        var column = 1
        var inQuotes = false
        var bytes = Array(text.utf8)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        var i = 0
        while i < bytes.count {
            let c = bytes[i]
            if inQuotes {
                if c == 0x22 {
                    if i + 1 < bytes.count && bytes[i + 1] == 0x22 { field.append(0x22); i += 2; column += 2; continue }
                    inQuotes = false
                } else {
                    if c == 0x0A { line += 1; column = 0 }
                    field.append(c)
                }
                i += 1; column += 1
                continue
            }
            switch c {
            case 0x22 where field.isEmpty: inQuotes = true
            case 0x2C:
                end(&field, into: &fields, column: fieldColumn)
                fieldColumn = column + 1
            case 0x0D: break
            case 0x0A:
                end(&field, into: &fields, column: fieldColumn)
                rows.append(Row(fields: fields, line: rowLine))
                let width = fields.count
                fields = []
                fields.reserveCapacity(width)  // the next row most likely has as many
                line += 1; rowLine = line; column = 0; fieldColumn = 1
            default:
                // A run of plain bytes at once (a registry is mostly that), up to
                // the next byte with a meaning. Columns count characters, not
                // bytes: UTF-8 continuation bytes do not move them.
                var j = i + 1
                var characters = c & 0xC0 == 0x80 ? 0 : 1
                while j < bytes.count {
                    let d = bytes[j]
                    if d == 0x2C || d == 0x0A || d == 0x0D || d == 0x22 { break }
                    if d & 0xC0 != 0x80 { characters += 1 }
                    j += 1
                }
                field.append(contentsOf: bytes[i..<j])
                column += characters - 1
                i = j - 1
            }
            i += 1; column += 1
        }
        if !field.isEmpty || !fields.isEmpty {
            end(&field, into: &fields, column: fieldColumn)
            rows.append(Row(fields: fields, line: rowLine))
        }
        return rows
    }

    /// The field whose bytes are in `field` ends: it joins the row, and the buffer is ready for the next.
    /// (A function of its own, not a closure over `parse`'s variables: those would be checked for
    /// overlapping access at every field.)
    @inline(__always)
    private static func end(_ field: inout [UInt8], into fields: inout [Field], column: Int) {
        fields.append(Field(value: String(decoding: field, as: UTF8.self), column: column))
        field.removeAll(keepingCapacity: true)
    }
}

extension String {
    func trimmingCharacters(in set: Character) -> String {
        var s = Substring(self)
        while s.first == set { s.removeFirst() }
        while s.last == set { s.removeLast() }
        return String(s)
    }
}

extension ChannelRegistry {
    /// The registry file's text: UTF-8, with or without the byte-order mark
    /// that "CSV UTF-8" from Excel or WPS writes. Anything else is an error
    /// at the first line that is not UTF-8, saying how to convert the file.
    public static func text(of data: [UInt8], path: String) -> Result<String, Diagnostic> {
        var bytes = data[...]
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes = bytes.dropFirst(3) }
        if let s = String(validating: bytes, as: UTF8.self) { return .success(s) }
        let bad = bytes.withContiguousStorageIfAvailable { UTF8Validation.firstInvalidByte($0) } ?? nil
        let offset = bad ?? 0
        let before = bytes.prefix(offset)
        let line = before.reduce(1) { $0 + ($1 == 0x0A ? 1 : 0) }
        let lineStart = before.lastIndex(of: 0x0A).map { $0 + 1 } ?? bytes.startIndex
        let column = bytes.startIndex + offset - lineStart + 1
        let name = (path as NSString).lastPathComponent
        return .failure(
            Diagnostic(
                path: path, line: line, column: column,
                "the registry is not UTF-8 (a spreadsheet that saved it as GB18030/GBK?): convert it with "
                    + "`iconv -f GB18030 -t UTF-8 \(name) > \(name).utf8 && mv \(name).utf8 \(name)`, or save it as \"CSV UTF-8\""))
    }
}

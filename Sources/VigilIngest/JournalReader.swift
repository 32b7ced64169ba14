import VigilConfig
import VigilCore
import VigilRules
import VigilStore

/// One journal row: a message, a broker mark or an acknowledgement, as the
/// daemon journaled it.
public struct JournalEntry: Sendable {
    public enum Kind: Int64, Sendable { case message = 0, lost = 1, connected = 2, ack = 3 }
    public var receivedAt: Millis
    public var kind: Kind
    public var mid: Int32 = 0
    public var topic: String = ""
    /// The message's payload; for an acknowledgement `{"ack","by","note"}`.
    public var payload: [UInt8] = []
    /// When a late reading was judged (nil: at its arrival).
    public var judgedAt: Millis? = nil

    public init(receivedAt: Millis, kind: Kind, mid: Int32 = 0, topic: String = "", payload: [UInt8] = [], judgedAt: Millis? = nil) {
        self.receivedAt = receivedAt; self.kind = kind; self.mid = mid; self.topic = topic; self.payload = payload; self.judgedAt = judgedAt
    }

    /// An acknowledgement as a journal row.
    static func acknowledgement(_ a: Acknowledgement, at t: Millis) -> JournalEntry {
        var o = JSONObject()
        o.appendUnique("ack", .string(a.incidentID))
        o.appendUnique("by", .string(a.by))
        o.appendUnique("note", a.note.map(JSONValue.string) ?? .null)
        return JournalEntry(receivedAt: t, kind: .ack, payload: Array(JSONWriter.encode(.object(o)).utf8))
    }

    static func acknowledgement(_ payload: [UInt8]) -> Acknowledgement? {
        guard case .object(let o)? = try? JSONParser.parse(payload, maxDepth: 4), let id = o["ack"]?.stringValue,
            let by = o["by"]?.stringValue
        else { return nil }
        return Acknowledgement(incidentID: id, by: by, note: o["note"]?.stringValue)
    }

    /// The row as one line of a recording (SPEC §5), replayable as it is. A
    /// payload keeps its exact bytes: as JSON when it is JSON on one line, as
    /// `payload_text` when it is other UTF-8, as `payload_base64` otherwise.
    public func recordLine() -> String {
        var w = JSONWriter(capacity: 64 + payload.count + topic.utf8.count)
        w.raw("{")
        w.key("ts", first: true)
        w.writeInt(Int(receivedAt))
        switch kind {
        case .message:
            w.key("topic"); w.writeString(topic)
            let oneLine = !payload.contains(0x0A) && !payload.contains(0x0D)
            if oneLine, (try? JSONParser.parse(payload, maxDepth: 10_000)) != nil {
                w.key("payload"); w.raw(String(decoding: payload, as: UTF8.self))
            } else if let text = String(validating: payload, as: UTF8.self) {
                w.key("payload_text"); w.writeString(text)
            } else {
                w.key("payload_base64"); w.writeString(Base64.encode(payload))
            }
        case .lost, .connected:
            w.key("broker"); w.writeString(kind == .lost ? "lost" : "connected")
        case .ack:
            let a = JournalEntry.acknowledgement(payload)
            w.key("ack"); w.writeString(a?.incidentID ?? "")
            w.key("by"); w.writeString(a?.by ?? "")
            w.key("note"); if let n = a?.note { w.writeString(n) } else { w.raw("null") }
        }
        w.raw("}")
        return w.string
    }
}

/// The journal of a state database, read without disturbing a running
/// daemon: rows up to the last one present when reading starts, in journal
/// order, in short read transactions of `chunk` rows. A journal row never
/// changes once written, so the chunks together are the journal as it was
/// at the start; and no read transaction lasts long enough to hold back the
/// daemon's WAL checkpoints (one held for a whole backtest of a full journal
/// made the daemon copy the WAL it had kept back in the one commit after it:
/// half a second and more, measured). A chunk's rows are copied out and the
/// read transaction ends before any of them is handed on: the caller's work
/// on them (a backtest's two evaluations, in the idle scheduling class,
/// preempted by anything else on the host) never lengthens the time the WAL
/// is held, and chunks are small so that copying one is quick even for a
/// reader the scheduler keeps waiting. Memory: one chunk of rows at a time,
/// whatever the journal's size.
public struct JournalReader {
    public let path: String
    public var chunk = 20_000

    public init(stateDatabase path: String) { self.path = path }

    /// Every row with `since ≤ received_at < until`, in journal order.
    public func forEach(since: Millis? = nil, until: Millis? = nil, _ each: (JournalEntry) throws -> Void) throws {
        let db = try Database(path: path, readOnly: true)
        var columns = Set<String>()
        try db.prepare("PRAGMA table_info(journal)").query([]) { columns.insert($0.text(1)) }
        guard columns.contains("seq") else { return }
        let marks = columns.contains("kind")
        let last = try db.prepare("SELECT coalesce(max(seq), 0) FROM journal").scalarInt() ?? 0
        let rows = try db.prepare(
            "SELECT seq, received_at, \(marks ? "kind" : "0"), mid, topic, payload, \(marks ? "judged_at" : "NULL") FROM journal"
                + " WHERE seq > ? AND seq <= ? AND received_at >= ? AND received_at < ? ORDER BY seq LIMIT ?")
        var after: Int64 = 0
        var entries: [JournalEntry] = []
        entries.reserveCapacity(chunk)
        while after < last {
            entries.removeAll(keepingCapacity: true)
            try db.execute("BEGIN")
            do {
                try rows.query([.int(after), .int(last), .int(since ?? .min), .int(until ?? .max), .int(Int64(chunk))]) { r in
                    after = r.int(0)
                    entries.append(
                        JournalEntry(
                            receivedAt: r.int(1), kind: JournalEntry.Kind(rawValue: r.int(2)) ?? .message,
                            mid: Int32(truncatingIfNeeded: r.int(3)), topic: r.text(4), payload: r.blob(5),
                            judgedAt: r.isNull(6) ? nil : r.int(6)))
                }
            } catch {
                try? db.execute("COMMIT")
                throw error
            }
            try db.execute("COMMIT")
            for e in entries { try each(e) }
            if entries.count < chunk { break }
        }
    }
}

extension Evaluator {
    /// One journal row, evaluated as the daemon took it.
    public mutating func take(_ entry: JournalEntry, into events: inout [IncidentEvent]) {
        switch entry.kind {
        case .message:
            _ = entry.payload.withUnsafeBufferPointer {
                message(topic: entry.topic, payload: $0, arrival: entry.receivedAt, judgedAt: entry.judgedAt, into: &events)
            }
        case .lost:
            mark(.lost, arrival: entry.receivedAt, into: &events)
        case .connected:
            mark(.connected, arrival: entry.receivedAt, into: &events)
        case .ack:
            if let ack = JournalEntry.acknowledgement(entry.payload) {
                _ = acknowledge(ack, arrival: entry.receivedAt, into: &events)
            }
        }
    }
}

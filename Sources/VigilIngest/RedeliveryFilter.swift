/// Recognises the broker's resending of messages already journaled.
///
/// A message is committed before its PUBACK is written, so when a connection
/// ends (a crash, a broker restart, a network fault) the broker may hold
/// journaled messages it never saw acknowledged — the last batch, and earlier
/// ones whose PUBACKs it had not yet read. When our session is still there it
/// sends them again first, in their original order and with their packet ids.
/// So, after such a CONNACK, each QoS 1 message whose packet id, topic and
/// payload equal a journaled message later than the previous one matched is a
/// resend; the first message that is not, or the resend of the last journaled
/// one, ends the filter for this connection.
struct RedeliveryFilter {
    /// How far back in the journal a resend is looked for: eight full batches.
    /// Packet ids repeat only after 65,535 messages, so within this many a
    /// match of packet id, topic and payload is the same message.
    static let window = 32_768

    let seqByPacketID: [Int32: Int64]
    let last: Int64
    private(set) var cursor: Int64 = 0
    private(set) var skipped = 0
    private(set) var ended = false

    /// The packet ids of the last journaled QoS 1 messages, with their journal positions.
    init(seqByPacketID: [Int32: Int64]) {
        self.seqByPacketID = seqByPacketID
        last = seqByPacketID.values.max() ?? 0
        ended = seqByPacketID.isEmpty
    }

    /// Whether a message is a resend. `journaled(seq)` tells whether journal
    /// row `seq` holds this message's topic and payload.
    mutating func isResend(packetID: Int32, qos: Int32, journaled: (Int64) -> Bool) -> Bool {
        guard !ended, qos > 0 else { return false }
        if let seq = seqByPacketID[packetID], seq > cursor, journaled(seq) {
            cursor = seq
            skipped += 1
            if seq == last { ended = true }
            return true
        }
        ended = true
        return false
    }
}

import VigilCore

/// What the ingestion stage reports: the daemon's metrics implement it (and
/// render it), so this module knows no metrics format.
public protocol IngestMetrics: Sendable {
    /// A committed batch: messages per feed, dead letters, readings, events,
    /// seconds from reading it off the socket to its commit, suppressed openings.
    func recordBatch(
        received: [String: Int], dead: [DeadLetterReason], readings: Int, events: [IncidentEvent], lagSeconds: Double,
        suppressed: Int)
    /// One state commit's duration, and the device-time lag of its readings.
    func recordCommit(seconds: Double, readingLags: [Double])
    func recordShed(_ n: Int)
    /// One journal trim transaction: how long it held the ingestion thread, and the rows it dropped.
    func recordJournalTrim(seconds: Double, rows: Int)
    /// A commit failed and intake stopped until one succeeds.
    func recordIntakeHalt()
    /// `applied` or `rejected`.
    func recordReload(_ outcome: String)
    /// The last batch's lag, for the periodic stats line.
    var lagSeconds: Double { get }
}

import Testing
@testable import VigilIngest

@Suite struct RedeliveryFilterTests {
    /// Journal rows 100…104 hold packet ids 7…11; `held` says which rows hold the message offered.
    func filter() -> RedeliveryFilter {
        RedeliveryFilter(seqByPacketID: [7: 100, 8: 101, 9: 102, 10: 103, 11: 104])
    }

    @Test func resendsInJournalOrderAreSkippedAndTheLastEndsTheFilter() {
        var f = filter()
        #expect(f.isResend(packetID: 9, qos: 1) { $0 == 102 })
        #expect(f.isResend(packetID: 10, qos: 1) { $0 == 103 })
        #expect(!f.ended)
        #expect(f.isResend(packetID: 11, qos: 1) { $0 == 104 })
        #expect(f.ended && f.skipped == 3)
        // After the end nothing is a resend, not even a repeat of a journaled packet id.
        #expect(!f.isResend(packetID: 7, qos: 1) { _ in true })
    }

    @Test func theFirstNewMessageEndsTheFilter() {
        var f = filter()
        #expect(f.isResend(packetID: 8, qos: 1) { _ in true })
        #expect(!f.isResend(packetID: 12, qos: 1) { _ in true })
        #expect(f.ended && f.skipped == 1)
        #expect(!f.isResend(packetID: 9, qos: 1) { _ in true })
    }

    @Test func aReusedPacketIDWithOtherContentIsNew() {
        var f = filter()
        #expect(!f.isResend(packetID: 9, qos: 1) { _ in false })
        #expect(f.ended && f.skipped == 0)
    }

    @Test func aPacketIDBehindTheCursorIsNew() {
        var f = filter()
        #expect(f.isResend(packetID: 10, qos: 1) { _ in true })
        #expect(!f.isResend(packetID: 8, qos: 1) { _ in true })
        #expect(f.ended)
    }

    @Test func qosZeroIsNeverAResendAndLeavesTheFilterOpen() {
        var f = filter()
        #expect(!f.isResend(packetID: 9, qos: 0) { _ in true })
        #expect(!f.ended)
        #expect(f.isResend(packetID: 9, qos: 1) { _ in true })
    }

    @Test func anEmptyJournalTailMeansNoFilter() {
        var f = RedeliveryFilter(seqByPacketID: [:])
        #expect(f.ended)
        #expect(!f.isResend(packetID: 1, qos: 1) { _ in true })
    }
}

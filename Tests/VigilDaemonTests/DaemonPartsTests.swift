import Foundation
import Logging
import Testing
import VigilCore
@testable import VigilDaemon
@testable import VigilIngest
import VigilDispatch

@Suite struct DaemonPartsTests {
    @Test func notifierReachesAnAbstractSocket() throws {
        let name = "vigil-test-\(UUID().uuidString.prefix(8))"
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = [UInt8(0)] + Array(name.utf8)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in for (i, b) in bytes.enumerated() { raw[i] = b } }
        let len = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        let bound = withUnsafePointer(to: &addr) { p in p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 } }
        #expect(bound)
        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": "@" + name])
        #expect(notifier.notify("READY=1\nSTATUS=testing"))
        var buf = [UInt8](repeating: 0, count: 256)
        let n = buf.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_DONTWAIT)) }
        #expect(n > 0 && String(decoding: buf[0..<n], as: UTF8.self) == "READY=1\nSTATUS=testing")
        #expect(!SystemdNotifier(environment: [:]).notify("READY=1"))
        #expect(SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "3000000"]) == .seconds(3))
        #expect(SystemdNotifier.watchdogInterval(environment: ["WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"]) == nil)
    }

    /// The stages' beats and the watchdog's look at them are on the monotonic
    /// clock: the wall clock (far from it, and free to jump) plays no part.
    @Test func livenessGoesByTheMonotonicClock() {
        let status = IngestStatus()
        let dispatcher = Dispatcher(
            databasePath: "/nonexistent", sinks: [], retry: RetryPolicy(initial: 1000, max: 1000, maxAge: 60_000), gauge: PendingGauge(),
            logger: Logger(label: "test"))
        let liveness = Liveness(status: status, dispatcher: dispatcher)
        let now = Time.monotonicMillis()
        status.values.withLock { $0.lastLoopAt = now }
        dispatcher.heartbeat.store(now, ordering: .relaxed)
        #expect(liveness.stagesAlive() == nil)
        #expect(liveness.stagesAlive(now: now + Liveness.ingestStall - 1) == nil)
        #expect(liveness.stagesAlive(now: now + Liveness.ingestStall + 1) == "ingestion stage not progressing")
        status.values.withLock { $0.lastLoopAt = now + 30_001 }
        #expect(liveness.stagesAlive(now: now + 30_001) == "dispatch stage not progressing")
    }

    @Test func logfmtQuotesOnlyWhenNeeded() {
        #expect(LogStream.logfmtValue("fa-0001") == "fa-0001")
        #expect(LogStream.logfmtValue("incident opened") == "\"incident opened\"")
        #expect(LogStream.logfmtValue("") == "\"\"")
        #expect(LogStream.logfmtValue("a=\"b\"\n") == "\"a=\\\"b\\\"\\n\"")
        #expect(LogStream.logfmtValue("君正长河华府") == "君正长河华府")
    }

    @Test func rateLimiterAllowsFiveASecondThenSummarises() {
        var r = RateLimiter(perSecond: 5)
        var logged = 0
        for i in 0..<1000 { if case .log = r.decide(now: 10_000 + Millis(i % 900)) { logged += 1 } }
        #expect(logged == 5)
        #expect(r.flush(now: 10_500) == nil)  // not before the second is over
        #expect(r.flush(now: 11_000) == 995)
        #expect(r.flush(now: 12_000) == nil)
        if case .log = r.decide(now: 13_000) {} else { Issue.record("a new second logs again") }
    }

    @Test func metricsRenderEveryFamilyEvenAtZero() {
        let m = Metrics()
        let text = m.render(connected: false, pending: ["file": 3], sinks: ["log", "file"], openIncidents: 0)
        #expect(text.contains("vigil_dead_letters_total{reason=\"too_deep\"} 0"))
        #expect(text.contains("vigil_queue_pending{sink=\"file\"} 3"))
        #expect(text.contains("vigil_deliveries_total{sink=\"log\",outcome=\"dead\"} 0"))
        #expect(text.contains("vigil_broker_connected 0"))
    }

    /// The value of the unlabelled sample `name` in an exposition of `m`.
    func sample(_ name: String, of m: Metrics) throws -> Double {
        let text = m.render(connected: true, pending: [:], sinks: [], openIncidents: 0)
        let line = try #require(text.split(separator: "\n").first { $0.hasPrefix(name + " ") })
        return try #require(Double(line.split(separator: " ")[1]))
    }

    @Test func lastMessageTimeMovesOnlyWithMessages() throws {
        let m = Metrics()
        func stamp() throws -> Double { try sample("vigil_last_message_received_timestamp_seconds", of: m) }
        #expect(try stamp() == 0)
        let before = Double(Time.now()) / 1000
        m.recordBatch(received: ["fire_alarm": 2], dead: [], readings: 2, events: [], lagSeconds: 0, suppressed: 0)
        let taken = try stamp()
        #expect(taken >= before && taken <= Double(Time.now()) / 1000)
        usleep(5_000)  // the wall clock moves on: an empty turn that set the gauge would show
        m.recordBatch(received: [:], dead: [], readings: 0, events: [], lagSeconds: 0, suppressed: 0)
        #expect(try stamp() == taken)
    }

    @Test func journalTrimsAreTimedAndCounted() throws {
        let m = Metrics()
        #expect(try sample("vigil_journal_rows_trimmed_total", of: m) == 0)
        m.recordJournalTrim(seconds: 0.0015, rows: 500)
        m.recordJournalTrim(seconds: 0.012, rows: 120)
        #expect(try sample("vigil_journal_rows_trimmed_total", of: m) == 620)
        #expect(try sample("vigil_journal_trim_seconds_count", of: m) == 2)
        let text = m.render(connected: true, pending: [:], sinks: [], openIncidents: 0)
        #expect(text.contains("vigil_journal_trim_seconds_bucket{le=\"0.001\"} 0"))
        #expect(text.contains("vigil_journal_trim_seconds_bucket{le=\"0.0025\"} 1"))
        #expect(text.contains("vigil_journal_trim_seconds_bucket{le=\"0.025\"} 2"))
    }

    @Test func labelValuesAreEscapedOnlyWhereTheyMustBe() {
        #expect(Metrics.escape("楼栋 3/gate") == "楼栋 3/gate")
        #expect(Metrics.escape("a\\b\"c\nd") == "a\\\\b\\\"c\\nd")
        #expect(Metrics.escape("楼\"栋\r\n\t") == "楼\\\"栋\r\\n\t")  // only the three; a tab and a CR stay
        #expect(Metrics.escape("\"\u{301}") == "\\\"\u{301}")  // a quote before a combining mark is still a quote
    }

    @Test func theStartTimeIsTheProcessStartNotTheFirstScrape() throws {
        // Every field its own number; a command name with a space and a parenthesis.
        let fields = (3...52).map { String($0 * 10) }.joined(separator: " ")
        let stat = "4242 (vigil (x) y) S " + fields.dropFirst(3)  // field 3 is the state
        let boot = "cpu  1 2 3\nbtime 1796300000\nprocesses 9\n"
        // Field 22 holds 220 ticks: 2.2 s after boot at 100 a second.
        #expect(abs(try #require(ProcessStats.startTime(stat: stat, boot: boot, ticksPerSecond: 100)) - 1_796_300_002.2) < 1e-6)
        #expect(ProcessStats.startTime(stat: stat, boot: "cpu 1\n", ticksPerSecond: 100) == nil)
        // This process: before now, and what the exposition says.
        let start = try #require(ProcessStats.startTime())
        #expect(start <= Date().timeIntervalSince1970)
        #expect(abs(try sample("process_start_time_seconds", of: Metrics()) - start) < 0.001)
    }

    @Test func anOpenDeskOffLoopbackIsWarnedAbout() {
        #expect(DeskServer.openWarning(host: "0.0.0.0", hasToken: false)?.contains("http.token_file") == true)
        #expect(DeskServer.openWarning(host: "192.168.1.5", hasToken: true) == nil)
        #expect(DeskServer.openWarning(host: "127.0.0.1", hasToken: false) == nil)
        #expect(DeskServer.openWarning(host: "::1", hasToken: false) == nil)
    }
}

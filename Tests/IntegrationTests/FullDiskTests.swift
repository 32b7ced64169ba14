import Foundation
import Testing
import VigilCore
import VigilTestSupport

/// A full disk (SPEC §9): intake stops with nothing acknowledged, `/healthz`
/// says so, the log gets one line (not thousands), SIGTERM still works, and
/// when space is back intake resumes by itself with nothing lost.
/// The state directory is a 24 MB tmpfs mounted by the test (CI runs as root).
@Suite(.serialized) struct FullDiskTests {
    @Test func aFullDiskStopsIntakeAndFreedSpaceResumesItWithNothingLost() throws {
        let broker = try TestBroker()
        let (dir, state, config, port, p) = try setUp(broker)
        defer {
            _ = try? run("/bin/umount", ["-l", state])
            try? FileManager.default.removeItem(atPath: dir)
        }
        let vigil = try VigilProcess(config: config, workDir: dir)
        try vigil.waitForLog("subscriptions active")
        func taken() -> Set<Int> { self.taken(dir) }
        func messages(_ r: Range<Int>) -> [(topic: String, payload: String)] { self.messages(p, r) }
        // Leave about 3 MB free, then stream 6 MB of readings.
        let filler = state + "/filler"
        try fill(filler, leavingFreeMegabytes: 3, on: state)
        try publishAll(broker: broker, messages: messages(0..<3000))
        try waitFor("a 503 from /healthz", timeout: 30) {
            let (code, body) = try httpGet(port: port, path: "/healthz")
            return code == 503 && body.contains("disk full")
        }
        #expect(try metricSamples(port: port)["vigil_intake_halted"] == 1)
        usleep(3_000_000)
        let failures = vigil.log.components(separatedBy: "msg=\"state commit failed").count - 1
        #expect(failures == 1, "\(failures) lines about the failed commit in 3 s")
        #expect(vigil.log.split(separator: "\n").count < 200, "the log is flooded: \(vigil.log.split(separator: "\n").count) lines")
        // Space is back: intake resumes by itself.
        try FileManager.default.removeItem(atPath: filler)
        do {
            try waitFor("every message taken", timeout: 60) {
                let evaluated = try metricSamples(port: port)["vigil_readings_evaluated_total"]
                return taken().count == 30 && evaluated == 3000
            }
        } catch {
            Issue.record(
                "\(taken().count) taken; metrics \((try? metricSamples(port: port))?.filter { $0.key.contains("readings") || $0.key.contains("pending") || $0.key.contains("halt") } ?? [:]); log:\n\(vigil.log.split(separator: "\n").suffix(30).joined(separator: "\n"))"
            )
            throw error
        }
        try waitFor("a 200 from /healthz", timeout: 30) { try httpGet(port: port, path: "/healthz").0 == 200 }
        #expect(vigil.log.contains("msg=\"state commits succeed again: intake resumes\""))
        // Each evaluated once: a message taken twice would count twice.
        #expect(try metricSamples(port: port)["vigil_readings_evaluated_total"] == 3000)
        #expect(try metricSamples(port: port)["vigil_intake_halted"] == 0)

        #expect(vigil.stop().0 == 0)
    }

    @Test func sigtermStopsADaemonHeldByAFullDiskAndTheRestartLosesNothing() throws {
        let broker = try TestBroker()
        let (dir, state, config, port, p) = try setUp(broker)
        defer {
            _ = try? run("/bin/umount", ["-l", state])
            try? FileManager.default.removeItem(atPath: dir)
        }
        var vigil = try VigilProcess(config: config, workDir: dir)
        try vigil.waitForLog("subscriptions active")
        let filler = state + "/filler"
        try fill(filler, leavingFreeMegabytes: 3, on: state)
        try publishAll(broker: broker, messages: messages(p, 0..<3000))
        try waitFor("a 503 from /healthz", timeout: 30) { try httpGet(port: port, path: "/healthz").0 == 503 }
        let before = try #require(try metricSamples(port: port)["vigil_readings_evaluated_total"])
        let (status, took) = vigil.stop()
        #expect(status == 0 && took < 10, "stopped with \(status) after \(took) s")
        try FileManager.default.removeItem(atPath: filler)
        vigil = try VigilProcess(config: config, workDir: dir)
        do {
            try waitFor("every message taken", timeout: 60) {
                let evaluated = try metricSamples(port: port)["vigil_readings_evaluated_total"]
                return taken(dir).count == 30 && evaluated == 3000 - before
            }
        } catch {
            Issue.record("\(taken(dir).count) taken, \(before) before; log:\n\(vigil.log.split(separator: "\n").suffix(20).joined(separator: "\n"))")
            throw error
        }
        #expect(vigil.stop().0 == 0)
    }

    /// A state directory on a 24 MB tmpfs; one rule that opens an incident for every alarm (every 100th message).
    /// The space it needs once freed: a 2 KB heartbeat fills a 4 KB page of the journal on its own, so the
    /// 3,000 messages make a 12 MB database, and the WAL beside it holds about 4 MB (1,000 frames between checkpoints).
    func setUp(_ broker: TestBroker) throws -> (dir: String, state: String, config: String, port: Int, prefix: String) {
        let dir = try makeWorkDir()
        let state = dir + "/state"
        try FileManager.default.createDirectory(atPath: state, withIntermediateDirectories: true)
        try mountTmpfs(state, megabytes: 24)
        let p = "t" + UUID().uuidString.prefix(8).lowercased()
        let port = try freePort()
        try FileManager.default.createDirectory(atPath: dir + "/rules", withIntermediateDirectories: true)
        try "rules:\n  - { name: each, feed: fire_alarm, when: event == \"alarm\", key: [n], severity: info }\n"
            .write(toFile: dir + "/rules/r.yaml", atomically: true, encoding: .utf8)
        // The file sink is on another disk: it shows which alarms were taken.
        let config = try writeConfig(
            dir: dir, broker: broker, prefix: p, rules: dir + "/rules/*.yaml", http: "127.0.0.1:\(port)",
            dispatch: "dispatch:\n  sinks:\n    - { name: file, type: file, path: \(dir)/incidents.jsonl }")
        return (dir, state, config, port, p)
    }

    /// 2 KB heartbeats, every 100th message a small alarm.
    func messages(_ p: String, _ range: Range<Int>) -> [(topic: String, payload: String)] {
        let pad = String(repeating: "x", count: 2000)
        return range.map { i in
            i % 100 == 0
                ? ("\(p)/estate/C001/fire_alarm/fa-\(i % 50)/event", #"{"event":"alarm","n":\#(i)}"#)
                : ("\(p)/estate/C001/fire_alarm/fa-\(i % 50)/event", #"{"event":"heartbeat","pad":"\#(pad)","n":\#(i)}"#)
        }
    }

    func taken(_ dir: String) -> Set<Int> {
        Set(readLines(dir + "/incidents.jsonl").compactMap(IncidentEvent.decode).compactMap { $0.key["n"]?.numberValue.map { Int($0) } })
    }

    func waitFor(_ what: String, timeout: TimeInterval, _ cond: () throws -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if (try? cond()) == true { return }
            usleep(200_000)
        }
        throw TestFailure("timed out waiting for \(what)")
    }

    func mountTmpfs(_ path: String, megabytes: Int) throws {
        let (status, err) = try run("/bin/mount", ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", path])
        if status != 0 { throw TestFailure("mount -t tmpfs on \(path) failed (the full-disk test needs root): \(err)") }
    }

    /// Writes `path` until the file system under `dir` has about `free` MB left.
    func fill(_ path: String, leavingFreeMegabytes free: Int, on dir: String) throws {
        var st = statvfs()
        guard statvfs(dir, &st) == 0 else { throw TestFailure("statvfs \(dir)") }
        let available = Int(st.f_bavail) * Int(st.f_frsize)
        let size = max(0, available - free * 1_048_576)
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        defer { close(fd) }
        let chunk = [UInt8](repeating: 0x55, count: 65_536)
        var written = 0
        while written < size {
            let n = chunk.withUnsafeBytes { write(fd, $0.baseAddress, min($0.count, size - written)) }
            if n <= 0 { break }
            written += n
        }
    }

    @discardableResult
    func run(_ tool: String, _ args: [String]) throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = args
        let err = Pipe()
        p.standardError = err
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
    }
}

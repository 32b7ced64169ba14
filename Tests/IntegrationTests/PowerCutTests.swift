import Foundation
import Synchronization
import Testing
import VigilCore
import VigilMQTT
import VigilStore
import VigilTestSupport

/// A power cut at 50 random moments of a QoS 1 stream (SPEC §9, Durability):
/// the daemon runs with `Tests/PowerCut/powercut.c` preloaded, which keeps a
/// copy of each state file with only what was synced; at each cut the daemon
/// is killed and the synced copies replace the files, so every write not yet
/// on disk is lost. A relay between vigil and the broker records every PUBACK
/// that left vigil. After each cut, every acknowledged message must be in the
/// journal; at the end every message is journaled exactly once.
@Suite(.serialized) struct PowerCutTests {
    @Test func everyAcknowledgedMessageSurvivesFiftyPowerCuts() throws {
        try runPowerCuts(cuts: 50, sync: "full")
    }

    func runPowerCuts(cuts: Int, sync: String) throws {
        let shim = try buildShim()
        let broker = try TestBroker(extraConfig: "max_inflight_messages 0\n")
        let relay = try AckRecordingRelay(to: broker.port)
        defer { relay.stop() }
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let state = dir + "/state", shadow = dir + "/shadow"
        for d in [state, shadow] { try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true) }
        let p = "t" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: dir + "/rules", withIntermediateDirectories: true)
        try "rules:\n  - { name: alarm, feed: fire_alarm, when: event == \"alarm\" }\n".write(toFile: dir + "/rules/r.yaml", atomically: true, encoding: .utf8)
        let config = try writeConfig(dir: dir, broker: broker, prefix: p, extra: "journal: { sync: \(sync) }\n", rules: dir + "/rules/*.yaml")
        let text = try String(contentsOfFile: config, encoding: .utf8)
        try text.replacingOccurrences(of: broker.url, with: relay.url).write(toFile: config, atomically: true, encoding: .utf8)
        let env = ["LD_PRELOAD": shim, "VIGIL_POWERCUT_DIR": state, "VIGIL_POWERCUT_SHADOW": shadow]

        var vigil = try VigilProcess(config: config, workDir: dir, environment: env)
        try vigil.waitForLog("subscriptions active")
        let total = 40_000
        let publisher = ThrottledPublisher(broker: broker, count: total, perSecond: 1500) { i in
            ("\(p)/estate/C001/fire_alarm/fa-\(i % 40)/event", #"{"event":"\#(i % 500 == 0 ? "alarm" : "heartbeat")","n":\#(i)}"#)
        }
        publisher.start()
        defer { publisher.stop() }
        var checked = 0
        for cut in 0..<cuts {
            usleep(UInt32.random(in: 100_000...700_000))
            kill(vigil.process.processIdentifier, SIGKILL)
            vigil.process.waitUntilExit()
            let acked = relay.acknowledged()
            try restoreSyncedCopies(state: state, shadow: shadow)
            let journaled = try journalAfterRecovery(state: state, scratch: dir + "/check")
            let missing = acked.subtracting(journaled)
            #expect(missing.isEmpty, "cut \(cut + 1): \(missing.count) acknowledged messages not in the journal, e.g. n=\(missing.sorted().prefix(5))")
            if !missing.isEmpty { break }
            checked = acked.count
            vigil = try VigilProcess(config: config, workDir: dir, environment: env)
            try vigil.waitForLog("subscriptions active", timeout: 20)
        }
        // The stream ends; everything is taken, each message once.
        let deadline = Date().addingTimeInterval(90)
        var counts: [Int: Int] = [:]
        while Date() < deadline {
            if publisher.done { counts = try journalCounts(state + "/vigil.db"); if counts.count == total { break } }
            usleep(300_000)
        }
        #expect(vigil.stop().0 == 0)
        counts = try journalCounts(state + "/vigil.db")
        #expect(counts.count == total, "\(counts.count) of \(total) journaled")
        let twice = counts.filter { $0.value > 1 }
        #expect(twice.isEmpty, "\(twice.count) messages journaled more than once")
        #expect(checked > 1000, "only \(checked) acknowledgements were checked")
    }

    /// Compiles the power-cut shim with the system's C compiler.
    func buildShim() throws -> String {
        let out = NSTemporaryDirectory() + "vigil-powercut-\(getpid()).so"
        if FileManager.default.fileExists(atPath: out) { return out }
        let compiler = ["/usr/bin/cc", "/usr/bin/gcc", "/usr/bin/clang"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let compiler else { throw TestFailure("no C compiler for the power-cut shim (apt-get install gcc)") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: compiler)
        p.arguments = ["-shared", "-fPIC", "-O2", "-o", out, repoRoot + "/Tests/PowerCut/powercut.c", "-ldl", "-lpthread"]
        try p.run()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { throw TestFailure("cannot compile Tests/PowerCut/powercut.c") }
        return out
    }

    /// The power cut: each state file becomes its synced copy; a file never synced disappears.
    func restoreSyncedCopies(state: String, shadow: String) throws {
        let fm = FileManager.default
        for name in try fm.contentsOfDirectory(atPath: state) where name != "vigil.lock" {
            try fm.removeItem(atPath: state + "/" + name)
        }
        for name in try fm.contentsOfDirectory(atPath: shadow) where name != "vigil.lock" {
            try fm.copyItem(atPath: shadow + "/" + name, toPath: state + "/" + name)
        }
    }

    /// The journal as the next start will find it: a copy opened (and so recovered) by SQLite.
    func journalAfterRecovery(state: String, scratch: String) throws -> Set<Int> {
        let fm = FileManager.default
        try? fm.removeItem(atPath: scratch)
        try fm.createDirectory(atPath: scratch, withIntermediateDirectories: true)
        for name in try fm.contentsOfDirectory(atPath: state) where name.hasPrefix("vigil.db") {
            try fm.copyItem(atPath: state + "/" + name, toPath: scratch + "/" + name)
        }
        guard fm.fileExists(atPath: scratch + "/vigil.db") else { return [] }
        return Set(try journalCounts(scratch + "/vigil.db").keys)
    }
}

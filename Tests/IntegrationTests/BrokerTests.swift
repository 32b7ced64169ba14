import Foundation
import Testing
import VigilCore
import VigilDaemon
import VigilStore
import VigilTestSupport

/// Ingestion against brokers that are not simply there: TLS, restarts, shared subscriptions.
@Suite(.serialized) struct BrokerTests {
    func run(_ args: [String], in dir: String) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        p.arguments = args
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        if p.terminationStatus != 0 { throw TestFailure("openssl \(args.joined(separator: " ")) failed") }
    }

    /// A certificate authority and a server certificate for 127.0.0.1, made here.
    func makeCA(_ dir: String, name: String) throws {
        try run(
            [
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=\(name) test CA",
                "-keyout", "\(name)-ca.key", "-out", "\(name)-ca.crt",
            ], in: dir)
    }

    @Test func tlsWithTheRightCAConnectsAndTheWrongCAIsAClearError() throws {
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try makeCA(dir, name: "good")
        try makeCA(dir, name: "other")
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\n".write(toFile: dir + "/san.ext", atomically: true, encoding: .utf8)
        try run(["req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr"], in: dir)
        try run(
            [
                "x509", "-req", "-in", "server.csr", "-CA", "good-ca.crt", "-CAkey", "good-ca.key", "-CAcreateserial",
                "-days", "2", "-extfile", "san.ext", "-out", "server.crt",
            ], in: dir)
        for f in ["server.key", "server.crt", "good-ca.crt"] { chmod(dir + "/" + f, 0o644) }
        chmod(dir, 0o755)
        let broker = try TestBroker(listener: { port in
            "listener \(port) 127.0.0.1\ncafile \(dir)/good-ca.crt\ncertfile \(dir)/server.crt\nkeyfile \(dir)/server.key\nallow_anonymous true\n"
        })
        broker.publishArgs = ["--cafile", dir + "/good-ca.crt"]
        let p = "t" + UUID().uuidString.prefix(8).lowercased()
        for (ca, works) in [("good", true), ("other", false)] {
            let work = try makeWorkDir()
            defer { try? FileManager.default.removeItem(atPath: work) }
            var config = try writeConfig(
                dir: work, broker: broker, prefix: p,
                broker: "tls: { ca_file: \(dir)/\(ca)-ca.crt }")
            var text = try String(contentsOfFile: config, encoding: .utf8)
            text = text.replacingOccurrences(of: "url: mqtt://", with: "url: mqtts://")
            try text.write(toFile: config, atomically: true, encoding: .utf8)
            config = work + "/vigil.yaml"
            let vigil = try VigilProcess(config: config, workDir: work)
            if works {
                try vigil.waitForLog("subscriptions active")
                try broker.publish(topic: "\(p)/estate/C001/fire_alarm/fa-0001/event", payload: #"{"event":"alarm"}"#)
                try vigil.waitForLog("msg=\"incident opened\" rule=fire_alarm_active")
            } else {
                try vigil.waitForLog("TLS handshake failed")
                #expect(vigil.log.contains("ca_file"), "the error should point at the setting to check:\n\(vigil.log)")
                #expect(!vigil.log.contains("subscriptions active"))
            }
            #expect(vigil.stop().0 == 0)
        }
    }

    @Test func aBrokerRestartMidStreamLosesAndRepeatsNothing() throws {
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/mq", withIntermediateDirectories: true)
        chmod(dir + "/mq", 0o777)
        let broker = try TestBroker(extraConfig: "persistence true\npersistence_location \(dir)/mq/\nautosave_interval 1\n")
        let p = "t" + UUID().uuidString.prefix(8).lowercased()
        let config = try writeConfig(dir: dir, broker: broker, prefix: p)
        let vigil = try VigilProcess(config: config, workDir: dir)
        try vigil.waitForLog("subscriptions active")
        let topic = "\(p)/estate/C001/charging_pile/cp-0001/telemetry"
        try publishAll(broker: broker, messages: (0..<3000).map { (topic, #"{"t":40,"n":\#($0)}"#) })
        try broker.restart()
        try publishAll(broker: broker, messages: (3000..<6000).map { (topic, #"{"t":40,"n":\#($0)}"#) })
        try vigil.waitForLog("broker connected", timeout: 10)
        var counts: [Int: Int] = [:]
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            counts = try journalCounts(dir + "/state/vigil.db")
            if counts.count == 6000 { break }
            usleep(200_000)
        }
        usleep(500_000)
        counts = try journalCounts(dir + "/state/vigil.db")
        #expect(counts.count == 6000, "\(counts.count) of 6000 evaluated")
        #expect(counts.values.allSatisfy { $0 == 1 }, "\(counts.filter { $0.value > 1 }.count) evaluated twice")
        #expect(vigil.log.components(separatedBy: "msg=\"broker connected\"").count - 1 >= 2)
        #expect(vigil.stop().0 == 0)
    }

    @Test func twoInstancesInASharedGroupSplitTheStream() throws {
        let broker = try TestBroker()
        let p = "t" + UUID().uuidString.prefix(8).lowercased()
        var dirs: [String] = []
        var vigils: [VigilProcess] = []
        defer { for d in dirs { try? FileManager.default.removeItem(atPath: d) } }
        for i in 0..<2 {
            let dir = try makeWorkDir()
            dirs.append(dir)
            let config = try writeConfig(dir: dir, broker: broker, prefix: p, broker: "protocol: 5\n  shared_group: vigil-\(p)")
            var text = try String(contentsOfFile: config, encoding: .utf8)
            text = text.replacingOccurrences(of: "client_id: vigil-\(p)", with: "client_id: vigil-\(p)-\(i)")
            try text.write(toFile: config, atomically: true, encoding: .utf8)
            vigils.append(try VigilProcess(config: config, workDir: dir))
        }
        for v in vigils { try v.waitForLog("shared_group=vigil-\(p)") }
        let n = 2000
        try publishAll(broker: broker, messages: (0..<n).map { ("\(p)/estate/C001/charging_pile/cp-\($0 % 50)/telemetry", #"{"t":40,"n":\#($0)}"#) })
        var a: [Int: Int] = [:], b: [Int: Int] = [:]
        let deadline = Date().addingTimeInterval(20)
        while Date() < deadline {
            a = try journalCounts(dirs[0] + "/state/vigil.db")
            b = try journalCounts(dirs[1] + "/state/vigil.db")
            if a.count + b.count >= n { break }
            usleep(200_000)
        }
        #expect(a.count + b.count == n, "\(a.count) + \(b.count) of \(n)")
        #expect(Set(a.keys).isDisjoint(with: b.keys), "a message reached both instances")
        #expect(a.count > n / 10 && b.count > n / 10, "the split was \(a.count) / \(b.count)")
        for v in vigils { #expect(v.stop().0 == 0) }
    }
}

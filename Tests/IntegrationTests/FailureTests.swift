import Foundation
import Testing
import VigilCore
import VigilStore
import VigilTestSupport

/// SPEC §9 "Failure" against the real binary: a start that cannot work ends
/// at once with a clear message and a non-zero status; SIGTERM works in every
/// state; a damaged state database is never touched; secrets stay out of
/// every log line.
@Suite(.serialized) struct FailureTests {
    func prefix() -> String { "t" + UUID().uuidString.prefix(8).lowercased() }

    /// Starts `vigil run`, expects it to exit non-zero within 5 s, and returns its log.
    func failedStart(config: String, dir: String) throws -> String {
        let vigil = try VigilProcess(config: config, workDir: dir)
        let started = Date()
        let exited = waitForExit(vigil.process, seconds: 5)
        if !exited { kill(vigil.process.processIdentifier, SIGKILL); vigil.process.waitUntilExit() }
        #expect(exited, "still running after 5 s:\n\(vigil.log)")
        #expect(vigil.process.terminationStatus != 0)
        #expect(Date().timeIntervalSince(started) < 5)
        // No busy loop on the way out: CPU time well below the wall time.
        return vigil.log
    }

    @Test func aMissingCAFileIsReportedByCheckAndStopsTheStart() throws {
        let broker = try TestBroker()
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = try writeConfig(
            dir: dir, broker: broker, prefix: prefix(),
            broker: "tls: { ca_file: /nonexistent/ca.pem, cert_file: \(dir), key_file: \(dir)/nope.key }")
        let text = try String(contentsOfFile: config, encoding: .utf8)
        try text.replacingOccurrences(of: "url: mqtt://", with: "url: mqtts://").write(toFile: config, atomically: true, encoding: .utf8)
        let (status, out, _) = try runVigil(["check", "--config", config])
        #expect(status == 1)
        let line = text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.contains("ca_file") }.map { $0 + 1 } ?? 0
        #expect(out.contains("\(config):\(line):"), "\(out)")
        #expect(out.contains("error: broker.tls.ca_file /nonexistent/ca.pem: no such file"), "\(out)")
        #expect(out.contains("error: broker.tls.cert_file \(dir): is a folder, not a file"), "\(out)")
        #expect(out.contains("error: broker.tls.key_file \(dir)/nope.key: no such file"), "\(out)")
        let log = try failedStart(config: config, dir: dir)
        #expect(log.contains("/nonexistent/ca.pem: no such file"), "\(log)")
    }

    @Test func anUnusableStateDirectoryStopsTheStart() throws {
        let broker = try TestBroker()
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try "x".write(toFile: dir + "/a-file", atomically: true, encoding: .utf8)
        let config = try writeConfig(dir: dir, broker: broker, prefix: prefix())
        let text = try String(contentsOfFile: config, encoding: .utf8)
        try text.replacingOccurrences(of: "state_dir: \(dir)/state", with: "state_dir: \(dir)/a-file/state")
            .write(toFile: config, atomically: true, encoding: .utf8)
        let log = try failedStart(config: config, dir: dir)
        #expect(log.contains("level=critical"), "\(log)")
        #expect(log.contains("state_dir \(dir)/a-file/state: cannot create it"), "\(log)")
    }

    @Test func aSecondDaemonOnTheSameStateDirectoryRefusesAtOnce() throws {
        let broker = try TestBroker()
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = try writeConfig(dir: dir, broker: broker, prefix: prefix())
        let first = try VigilProcess(config: config, workDir: dir)
        try first.waitForLog("subscriptions active")
        let secondDir = dir + "/second"
        try FileManager.default.createDirectory(atPath: secondDir, withIntermediateDirectories: true)
        let log = try failedStart(config: config, dir: secondDir)
        #expect(log.contains("is in use by another vigil (pid \(first.process.processIdentifier))"), "\(log)")
        #expect(first.process.isRunning)
        #expect(first.stop().0 == 0)
    }

    @Test func aTakenHTTPPortStopsTheStart() throws {
        let broker = try TestBroker()
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        guard let port = bindLoopback(fd), listen(fd, 1) == 0 else { throw TestFailure("bind") }
        let config = try writeConfig(dir: dir, broker: broker, prefix: prefix(), http: "127.0.0.1:\(port)")
        let log = try failedStart(config: config, dir: dir)
        #expect(log.contains("http.listen 127.0.0.1:\(port): Address already in use"), "\(log)")
    }

    @Test func aDamagedForeignOrNewerStateDatabaseIsRefusedAndLeftUntouched() throws {
        let broker = try TestBroker()
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let config = try writeConfig(dir: dir, broker: broker, prefix: prefix())
        let db = dir + "/state/vigil.db"
        try FileManager.default.createDirectory(atPath: dir + "/state", withIntermediateDirectories: true)
        func expectRefused(_ what: String, _ message: String) throws {
            let before = try Data(contentsOf: URL(fileURLWithPath: db))
            let log = try failedStart(config: config, dir: dir)
            #expect(log.contains(message), "\(what): \(log)")
            #expect(try Data(contentsOf: URL(fileURLWithPath: db)) == before, "\(what): the file changed")
            #expect(!FileManager.default.fileExists(atPath: db + "-wal"), "\(what): a WAL appeared")
        }
        // Damaged: bytes that are not SQLite.
        try Data((0..<8192).map { UInt8(truncatingIfNeeded: $0 &* 7919) }).write(to: URL(fileURLWithPath: db))
        try expectRefused("garbage", "is not a usable vigil state database")
        // Another application's database.
        try FileManager.default.removeItem(atPath: db)
        do {
            let other = try Database(path: db, sync: nil)
            try other.execute("CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO customers(name) VALUES('a')")
        }
        try expectRefused("foreign", "belongs to another application")
        // A newer vigil's.
        try FileManager.default.removeItem(atPath: db)
        do {
            let newer = try Database(path: db, sync: nil)
            try newer.execute("CREATE TABLE journal(seq INTEGER PRIMARY KEY)")
            try newer.stampState(version: 99)
        }
        try expectRefused("newer", "was written by a newer vigil (state schema 99")
    }

    @Test func sigtermIsHonouredDuringStartUp() throws {
        // A broker that is not there: start-up goes on retrying; SIGTERM at any moment ends it.
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let port = try freePort()
        let config = dir + "/vigil.yaml"
        try """
        broker: { url: mqtt://127.0.0.1:\(port), reconnect: { initial: 5s, max: 30s } }
        state_dir: \(dir)/state
        rules: ["\(repoRoot)/config/rules.d/*.yaml"]
        channels: \(repoRoot)/fixtures/channels.csv
        http: null
        """.write(toFile: config, atomically: true, encoding: .utf8)
        for delay: UInt32 in [0, 30_000, 150_000, 600_000] {
            let vigil = try VigilProcess(config: config, workDir: dir)
            usleep(delay)
            let (status, took) = vigil.stop()
            #expect(status != -1, "SIGTERM after \(delay / 1000) ms: not stopped within 20 s")
            #expect(took < 5, "SIGTERM after \(delay / 1000) ms took \(took) s")
        }
    }

    @Test func noSecretReachesTheLogAtAnyLevelNorMetricsNorCheck() throws {
        let password = "brokerPW-\(UUID().uuidString.prefix(8))"
        let webhookSecret = "whsec_" + Data("hook-\(UUID().uuidString.prefix(8))".utf8).base64EncodedString()
        let token = "tok-\(UUID().uuidString)"
        let broker = try TestBroker(privateBroker: true, user: ("vigil", password))
        broker.publishArgs = ["-u", "vigil", "-P", password]
        let receiver = try WebhookReceiver()
        for level in ["debug", "trace"] {
            let dir = try makeWorkDir()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            try password.write(toFile: dir + "/password", atomically: true, encoding: .utf8)
            try webhookSecret.write(toFile: dir + "/hook.secret", atomically: true, encoding: .utf8)
            try (token + "\n").write(toFile: dir + "/token", atomically: true, encoding: .utf8)
            let p = prefix()
            let port = try freePort()
            let config = try writeConfig(
                dir: dir, broker: broker, prefix: p, extra: "log: { level: \(level) }\n",
                http: "127.0.0.1:\(port), token_file: \(dir)/token",
                broker: "username: vigil\n  password_file: \(dir)/password",
                dispatch: """
                    dispatch:
                      sinks:
                        - { name: log, type: log }
                        - { name: file, type: file, path: \(dir)/incidents.jsonl }
                        - { name: hook, type: webhook, url: "http://127.0.0.1:\(receiver.port)/in", secret_file: \(dir)/hook.secret }
                    """)
            let vigil = try VigilProcess(config: config, workDir: dir)
            try vigil.waitForLog("subscriptions active")
            try broker.publish(topic: "\(p)/estate/C001/fire_alarm/fa-0001/event", payload: #"{"event":"alarm"}"#)
            try vigil.waitForLog("incident opened")
            let (metricsStatus, metrics) = try httpGet(port: port, path: "/metrics", token: token)
            #expect(metricsStatus == 200)
            // A wrong token is refused (and not logged either).
            #expect(try httpGet(port: port, path: "/metrics", token: "wrong-\(token)").0 == 200)  // loopback: GET needs none
            kill(vigil.process.processIdentifier, SIGHUP)
            usleep(500_000)
            #expect(vigil.stop().0 == 0)
            let (_, checkOut, checkErr) = try runVigil(["check", "--config", config])
            for secret in [password, webhookSecret, token, String(webhookSecret.dropFirst(6))] {
                #expect(!vigil.log.contains(secret), "\(level) log holds a secret")
                #expect(!metrics.contains(secret))
                #expect(!(checkOut + checkErr).contains(secret))
            }
            #expect(vigil.log.contains("level=debug"), "no debug lines were written at \(level)")
        }
    }

    @Test func offLoopbackEveryRequestNeedsTheToken() throws {
        let broker = try TestBroker()
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let token = "tok-\(UUID().uuidString)"
        try token.write(toFile: dir + "/token", atomically: true, encoding: .utf8)
        let port = try freePort()
        let config = try writeConfig(dir: dir, broker: broker, prefix: prefix(), http: "0.0.0.0:\(port), token_file: \(dir)/token")
        let vigil = try VigilProcess(config: config, workDir: dir)
        try vigil.waitForLog("subscriptions active")
        #expect(try httpGet(port: port, path: "/healthz").0 == 401)
        #expect(try httpGet(port: port, path: "/metrics", token: "nope").0 == 401)
        #expect(try httpGet(port: port, path: "/healthz", token: token).0 == 200)
        #expect(vigil.stop().0 == 0)
        #expect(vigil.log.contains("msg=\"http request refused: missing or wrong bearer token\""))
        #expect(!vigil.log.contains(token) && !vigil.log.contains("nope"))
    }
}

import Foundation
import Testing
import VigilCore
import VigilStore

/// A real mosquitto for the tests: the one `.ci/run` started (VIGIL_TEST_BROKER=host:port),
/// or a private one started here on a free port and stopped by its PID.
final class TestBroker: @unchecked Sendable {
    // @unchecked: immutable after init; `process` is only touched in init and deinit.
    let host: String
    let port: Int
    var process: Process?
    let dir: String?
    /// Extra mosquitto_pub arguments (TLS: --cafile …).
    var publishArgs: [String] = []

    /// `privateBroker`: always start one (to stop it, or to require a password).
    init(privateBroker: Bool = false, user: (name: String, password: String)? = nil, listener: ((Int) -> String)? = nil,
         extraConfig: String = "") throws {
        if !privateBroker, user == nil, listener == nil, extraConfig.isEmpty, let env = ProcessInfo.processInfo.environment["VIGIL_TEST_BROKER"], let colon = env.lastIndex(of: ":"),
           let p = Int(env[env.index(after: colon)...]) {
            host = String(env[..<colon]); port = p; process = nil; dir = nil
            return
        }
        host = "127.0.0.1"
        port = try freePort()
        let d = NSTemporaryDirectory() + "vigil-broker-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        var conf = (listener?(port) ?? "listener \(port) 127.0.0.1\n") + "max_queued_messages 0\n" + extraConfig
        if !extraConfig.contains("persistence") { conf += "persistence false\n" }
        if let user {
            let pw = Process()
            pw.executableURL = URL(fileURLWithPath: "/usr/bin/mosquitto_passwd")
            pw.arguments = ["-b", "-c", d + "/passwd", user.name, user.password]
            try pw.run()
            pw.waitUntilExit()
            // mosquitto drops to its own user and must still read the file.
            chmod(d, 0o755)
            chmod(d + "/passwd", 0o644)
            conf += "allow_anonymous false\npassword_file \(d)/passwd\n"
        } else {
            conf += "allow_anonymous true\n"
        }
        try conf.write(toFile: d + "/mosquitto.conf", atomically: true, encoding: .utf8)
        chmod(d, 0o777)  // mosquitto drops to its own user and may write persistence files here
        dir = d
        try launch()
    }

    /// Starts (or restarts) the private broker with its configuration.
    func launch() throws {
        guard let dir else { return }
        // Children of the test runner inherit its blocked signals; the shim
        // clears the mask so mosquitto stops (and saves) on SIGINT as it should.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = ["-c", "import os, signal; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execv('/usr/sbin/mosquitto', ['mosquitto', '-c', '\(dir)/mosquitto.conf'])"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        process = p
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            if isListening(port) { usleep(50_000); return }
            usleep(50_000)
        }
        throw TestFailure("mosquitto did not start on port \(port)")
    }

    /// Stops the private broker gracefully (it saves its persistence file), then starts it again.
    func restart() throws {
        if let process, process.isRunning {
            Glibc.kill(process.processIdentifier, SIGINT)
            if !waitForExit(process, seconds: 10) { Glibc.kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
        }
        try launch()
    }

    deinit {
        // SIGKILL: a child of the test runner may inherit a blocked SIGTERM, and a test broker has nothing to save.
        if let process, process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        if let dir { try? FileManager.default.removeItem(atPath: dir) }
    }

    var url: String { "mqtt://\(host):\(port)" }

    /// Stops a private broker now (to test what vigil does without one).
    func stopNow() {
        if let process, process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// Publishes one message with mosquitto_pub and waits for it to be sent.
    func publish(topic: String, payload: String, qos: Int = 1) throws {
        try publish(topic: topic, bytes: Array(payload.utf8), qos: qos)
    }

    func publish(topic: String, bytes: [UInt8], qos: Int = 1) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/mosquitto_pub")
        p.arguments = ["-h", host, "-p", String(port), "-q", String(qos), "-t", topic, "-s"] + publishArgs
        let input = Pipe()
        p.standardInput = input
        p.standardError = FileHandle.nullDevice
        try p.run()
        input.fileHandleForWriting.write(Data(bytes))
        try input.fileHandleForWriting.close()
        if !waitForExit(p, seconds: 15) {
            Glibc.kill(p.processIdentifier, SIGKILL)
            throw TestFailure("mosquitto_pub did not finish")
        }
        if p.terminationStatus != 0 { throw TestFailure("mosquitto_pub exited \(p.terminationStatus)") }
    }
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Waits for a child process, at most `seconds`.
func waitForExit(_ p: Process, seconds: TimeInterval) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while p.isRunning && Date() < deadline { usleep(20_000) }
    if p.isRunning { return false }
    p.waitUntilExit()
    return true
}

func isListening(_ port: Int) -> Bool {
    guard let fd = connectLoopback(port) else { return false }
    close(fd)
    return true
}

func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    guard let port = bindLoopback(fd) else { throw TestFailure("no free port") }
    return port
}

let repoRoot = #filePath.replacingOccurrences(of: "/Tests/IntegrationTests/Support.swift", with: "")

/// The `vigil` binary built next to the test bundle.
func vigilBinary() -> String {
    if let p = ProcessInfo.processInfo.environment["VIGIL_BINARY"] { return p }
    let bundle = Bundle.main.bundlePath
    var dir = (bundle as NSString).deletingLastPathComponent
    if !FileManager.default.fileExists(atPath: dir + "/vigil") {
        // Under `swift test` the main bundle is the xctest runner: look beside the test bundle instead.
        for candidate in [repoRoot + "/.build/debug", repoRoot + "/.build/release"] where FileManager.default.fileExists(atPath: candidate + "/vigil") {
            dir = candidate
            break
        }
    }
    return dir + "/vigil"
}

/// Runs `vigil` with these arguments to its end: (exit status, stdout, stderr).
func runVigil(_ args: [String], stdin: String? = nil) throws -> (Int32, String, String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: vigilBinary())
    p.arguments = args
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    if stdin == nil { p.standardInput = FileHandle.nullDevice }
    let input = Pipe()
    if stdin != nil { p.standardInput = input }
    try p.run()
    if let stdin {
        input.fileHandleForWriting.write(Data(stdin.utf8))
        try input.fileHandleForWriting.close()
    }
    // Drain stderr beside stdout so neither pipe fills up.
    let errData = LockedData()
    let reader = Thread { errData.set(err.fileHandleForReading.readDataToEndOfFile()) }
    reader.start()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: outData, as: UTF8.self), String(decoding: errData.wait(), as: UTF8.self))
}

/// Data handed from one thread to another.
final class LockedData: @unchecked Sendable {
    // @unchecked: `data` is only touched under `condition`.
    private let condition = NSCondition()
    private var data: Data?
    func set(_ d: Data) { condition.lock(); data = d; condition.signal(); condition.unlock() }
    func wait() -> Data {
        condition.lock()
        defer { condition.unlock() }
        while data == nil { condition.wait() }
        return data!
    }
}

/// A `vigil run` child process with its log stream captured to a file.
final class VigilProcess {
    let process = Process()
    let logPath: String

    init(config: String?, workDir: String, environment: [String: String] = [:]) throws {
        logPath = workDir + "/vigil.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        process.executableURL = URL(fileURLWithPath: vigilBinary())
        process.arguments = config.map { ["run", "--config", $0] } ?? ["run"]
        process.currentDirectoryURL = URL(fileURLWithPath: workDir)
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "JOURNAL_STREAM")
        for (k, v) in environment { env[k] = v }
        process.environment = env
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: logPath)
        try process.run()
    }

    deinit {
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Waits until the log holds `text`.
    func waitForLog(_ text: String, timeout: TimeInterval = 10) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if log.contains(text) { return }
            if !process.isRunning { throw TestFailure("vigil exited (\(process.terminationStatus)) before logging '\(text)':\n\(log)") }
            usleep(20_000)
        }
        throw TestFailure("no '\(text)' in the log after \(timeout)s:\n\(log)")
    }

    /// SIGTERM, then the exit status and how long the stop took.
    func stop() -> (Int32, TimeInterval) {
        let start = Date()
        kill(process.processIdentifier, SIGTERM)
        if !waitForExit(process, seconds: 20) {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return (-1, Date().timeIntervalSince(start))
        }
        return (process.terminationStatus, Date().timeIntervalSince(start))
    }
}

/// A config for one test: its own topic prefix, client id and state directory.
func writeConfig(dir: String, broker: TestBroker, prefix: String, extra: String = "", rules: String? = nil, http: String = "null",
                 broker extraBroker: String = "", dispatch: String? = nil) throws -> String {
    let dispatchBlock = dispatch ?? """
    dispatch:
      sinks:
        - { name: log, type: log }
        - { name: file, type: file, path: \(dir)/incidents.jsonl }
    """
    let text = """
    broker:
      url: \(broker.url)
      client_id: vigil-\(prefix)
      keepalive: 10s
      reconnect: { initial: 200ms, max: 2s }
      \(extraBroker)
    subscriptions:
      - { topic: "\(prefix)/estate/{community}/smart_gate/{channel}/event", feed: smart_gate }
      - { topic: "\(prefix)/estate/{community}/fire_alarm/{channel}/event", feed: fire_alarm }
      - { topic: "\(prefix)/estate/{community}/elevator_ebike/{channel}/event", feed: elevator_ebike }
      - { topic: "\(prefix)/estate/{community}/charging_pile/{channel}/telemetry", feed: charging_pile }
      - { topic: "\(prefix)/estate/{community}/falling_object/{channel}/event", feed: falling_object }
      - { topic: "\(prefix)/estate/{community}/{feed}/{channel}/status", feed: "{feed}" }
    channels: \(repoRoot)/fixtures/channels.csv
    rules: ["\(rules ?? repoRoot + "/config/rules.d/[1-5]*.yaml")"]
    state_dir: \(dir)/state
    http: { listen: \(http) }
    \(dispatchBlock)
    \(extra)
    """
    let path = dir + "/vigil.yaml"
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return path
}

func makeWorkDir() throws -> String {
    let d = NSTemporaryDirectory() + "vigil-it-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

func readLines(_ path: String) -> [String] {
    ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
}

/// Journal rows of a state database, counted by the message's `n` field.
func journalCounts(_ path: String) throws -> [Int: Int] {
    let db = try Database(path: path, readOnly: true)
    var out: [Int: Int] = [:]
    try db.prepare("SELECT payload FROM journal").query([]) { row in
        if case .object(let o)? = try? JSONParser.parse(row.blob(0)), let v = o["n"]?.numberValue { out[Int(v), default: 0] += 1 }
    }
    return out
}

/// A TCP socket connected to 127.0.0.1:port, or nil.
func connectLoopback(_ port: Int) -> Int32? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = in_port_t(UInt16(port).bigEndian)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    let ok = withUnsafePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
    }
    if ok { return fd }
    close(fd)
    return nil
}

/// Binds a socket to 127.0.0.1 on a port the kernel picks; returns the port.
func bindLoopback(_ fd: Int32) -> Int? {
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) { p in
        p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    return ok ? Int(UInt16(bigEndian: addr.sin_port)) : nil
}

extension Record {
    /// One line of a recording, or nil.
    static func parse(line: String) -> Record? {
        var s = line
        return s.withUTF8 { try? Record.parse(line: $0, maxDepth: 64).get() }
    }
}

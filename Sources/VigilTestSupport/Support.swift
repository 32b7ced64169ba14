import Foundation
import VigilCore
import VigilStore

/// A failed expectation outside a test body (helpers throw it).
public struct TestFailure: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// Waits for a child process, at most `seconds`.
public func waitForExit(_ p: Process, seconds: TimeInterval) -> Bool {
    let deadline = Date().addingTimeInterval(seconds)
    while p.isRunning && Date() < deadline { usleep(20_000) }
    if p.isRunning { return false }
    p.waitUntilExit()
    return true
}

public func isListening(_ port: Int) -> Bool {
    guard let fd = connectLoopback(port) else { return false }
    close(fd)
    return true
}

public func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    guard let port = bindLoopback(fd) else { throw TestFailure("no free port") }
    return port
}

public let repoRoot = #filePath.replacingOccurrences(of: "/Sources/VigilTestSupport/Support.swift", with: "")

/// The `vigil` binary built next to the test bundle.
public func vigilBinary() -> String {
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
public func runVigil(_ args: [String], stdin: String? = nil) throws -> (Int32, String, String) {
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
public final class LockedData: @unchecked Sendable {
    // @unchecked: `data` is only touched under `condition`.
    private let condition = NSCondition()
    private var data: Data?
    public func set(_ d: Data) { condition.lock(); data = d; condition.signal(); condition.unlock() }
    public func wait() -> Data {
        condition.lock()
        defer { condition.unlock() }
        while data == nil { condition.wait() }
        return data!
    }
}

/// A `vigil run` child process with its log stream captured to a file.
public final class VigilProcess {
    public let process = Process()
    public let logPath: String

    public init(config: String?, workDir: String, environment: [String: String] = [:]) throws {
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

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// Waits until the log holds `text`.
    public func waitForLog(_ text: String, timeout: TimeInterval = 10) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if log.contains(text) { return }
            if !process.isRunning { throw TestFailure("vigil exited (\(process.terminationStatus)) before logging '\(text)':\n\(log)") }
            usleep(20_000)
        }
        throw TestFailure("no '\(text)' in the log after \(timeout)s:\n\(log)")
    }

    /// SIGTERM, then the exit status and how long the stop took.
    public func stop() -> (Int32, TimeInterval) {
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
public func writeConfig(
    dir: String, broker: TestBroker, prefix: String, extra: String = "", rules: String? = nil, http: String = "null",
    broker extraBroker: String = "", dispatch: String? = nil
) throws -> String {
    let dispatchBlock =
        dispatch ?? """
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

public func makeWorkDir() throws -> String {
    let d = NSTemporaryDirectory() + "vigil-it-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
    return d
}

public func readLines(_ path: String) -> [String] {
    ((try? String(contentsOfFile: path, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
}

/// Journal rows of a state database, counted by the message's `n` field.
public func journalCounts(_ path: String) throws -> [Int: Int] {
    let db = try Database(path: path, readOnly: true)
    var out: [Int: Int] = [:]
    try db.prepare("SELECT payload FROM journal").query([]) { row in
        if case .object(let o)? = try? JSONParser.parse(row.blob(0)), let v = o["n"]?.numberValue { out[Int(v), default: 0] += 1 }
    }
    return out
}

/// A TCP socket connected to 127.0.0.1:port, or nil.
public func connectLoopback(_ port: Int) -> Int32? {
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
public func bindLoopback(_ fd: Int32) -> Int? {
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
    public static func parse(line: String) -> Record? {
        var s = line
        return s.withUTF8 { try? Record.parse(line: $0, maxDepth: 64).get() }
    }
}

import Foundation
import VigilCore
import VigilStore

/// A real mosquitto for the tests: the one `.ci/run` started (VIGIL_TEST_BROKER=host:port),
/// or a private one started here on a free port and stopped by its PID.
public final class TestBroker: @unchecked Sendable {
    // @unchecked: immutable after init; `process` is only touched in init and deinit.
    public let host: String
    public let port: Int
    public var process: Process?
    public let dir: String?
    /// Extra mosquitto_pub arguments (TLS: --cafile …).
    public var publishArgs: [String] = []

    /// `privateBroker`: always start one (to stop it, or to require a password).
    public init(
        privateBroker: Bool = false, user: (name: String, password: String)? = nil, listener: ((Int) -> String)? = nil,
        extraConfig: String = ""
    ) throws {
        if !privateBroker, user == nil, listener == nil, extraConfig.isEmpty, let env = ProcessInfo.processInfo.environment["VIGIL_TEST_BROKER"],
            let colon = env.lastIndex(of: ":"),
            let p = Int(env[env.index(after: colon)...])
        {
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
    public func launch() throws {
        guard let dir else { return }
        // Children of the test runner inherit its blocked signals; the shim
        // clears the mask so mosquitto stops (and saves) on SIGINT as it should.
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = [
            "-c",
            "import os, signal; signal.pthread_sigmask(signal.SIG_SETMASK, []); os.execv('/usr/sbin/mosquitto', ['mosquitto', '-c', '\(dir)/mosquitto.conf'])",
        ]
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
    public func restart() throws {
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

    public var url: String { "mqtt://\(host):\(port)" }

    /// Stops a private broker now (to test what vigil does without one).
    public func stopNow() {
        if let process, process.isRunning {
            Glibc.kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
    }

    /// Publishes one message with mosquitto_pub and waits for it to be sent.
    public func publish(topic: String, payload: String, qos: Int = 1) throws {
        try publish(topic: topic, bytes: Array(payload.utf8), qos: qos)
    }

    public func publish(topic: String, bytes: [UInt8], qos: Int = 1) throws {
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

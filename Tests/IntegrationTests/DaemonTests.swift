import Foundation
import Testing
import VigilTestSupport

@Suite(.serialized) struct DaemonTests {
    @Test func aFireAlarmReachesTheFileSinkWithinOneSecondAndBadInputDoesNotStopIt() throws {
        let broker = try TestBroker()
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let prefix = "t" + UUID().uuidString.prefix(8).lowercased()
        let config = try writeConfig(dir: dir, broker: broker, prefix: prefix)
        let vigil = try VigilProcess(config: config, workDir: dir)
        try vigil.waitForLog("subscriptions active")

        // Malformed first: invalid JSON, not an object, invalid UTF-8.
        try broker.publish(topic: "\(prefix)/estate/C001/fire_alarm/fa-0001/event", payload: "{not json")
        try broker.publish(topic: "\(prefix)/estate/C001/fire_alarm/fa-0001/event", payload: "[1,2]")
        try broker.publish(topic: "\(prefix)/estate/C001/fire_alarm/fa-0001/event", bytes: [0x7B, 0xFF, 0x7D])
        try vigil.waitForLog("reason=not_object")

        let sent = Date()
        try broker.publish(topic: "\(prefix)/estate/C001/fire_alarm/fa-0001/event", payload: #"{"event":"alarm","zone":"Z3","detector":"smoke"}"#, qos: 1)
        var opened: String?
        while Date().timeIntervalSince(sent) < 5 {
            opened = readLines(dir + "/incidents.jsonl").first { $0.contains("\"incident.opened\"") }
            if opened != nil { break }
            usleep(5_000)
        }
        let latency = Date().timeIntervalSince(sent)
        let line = try #require(opened, "no incident in the file sink:\n\(vigil.log)")
        #expect(latency < 1.0, "incident took \(latency)s")
        #expect(line.contains(#""rule":"fire_alarm_active""#))
        #expect(line.contains(#""channel":"fa-0001""#))
        #expect(line.contains(#""severity":"critical""#))
        #expect(line.contains("君正长河华府"))

        let log = vigil.log
        #expect(log.contains("msg=\"incident opened\" rule=fire_alarm_active"))
        #expect(log.contains("reason=invalid_json"))
        #expect(log.contains("reason=invalid_utf8"))
        #expect(vigil.process.isRunning)

        let (status, took) = vigil.stop()
        #expect(status == 0)
        #expect(took < 10)
        #expect(vigil.log.contains("vigil stopped"))
    }

    @Test(arguments: [["bogus"], ["check", "--nope"], ["replay", "--until", "soon"], ["queue", "retry"], ["test"]])
    func badUsageExitsWith2(_ args: [String]) throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: vigilBinary())
        p.arguments = args
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 2, "vigil \(args.joined(separator: " ")) exited \(p.terminationStatus)")
    }

    @Test func runsOnTheEmbeddedDefaultsWithoutAnyConfigFile() throws {
        // No config file: the built-in defaults (broker 127.0.0.1:1883, ./state, ./rules.d).
        // Only the start-up is checked here; the broker port is not ours to assume.
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: vigilBinary())
        p.arguments = ["check"]
        p.currentDirectoryURL = URL(fileURLWithPath: dir)
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        p.waitUntilExit()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        if FileManager.default.fileExists(atPath: "/etc/vigil/vigil.yaml") { return }  // an installed config takes precedence
        #expect(p.terminationStatus == 0)
        #expect(text == "ok: 0 rules, 0 channels, 2 sinks\n")

        let vigil = try VigilProcess(config: nil, workDir: dir)
        try vigil.waitForLog("config=\"(built-in defaults)\"")
        try vigil.waitForLog("broker=mqtt://127.0.0.1:1883")
        #expect(FileManager.default.fileExists(atPath: dir + "/state/vigil.db"))
        let (status, _) = vigil.stop()
        #expect(status == 0)
    }
}

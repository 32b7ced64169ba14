import Foundation
import Testing
import VigilCore
import VigilIngest
import VigilRules
import VigilTestSupport

extension DispatchTests {
    @Test func theMQTTSinkPublishesToTheTopicTemplate() throws {
        let broker = try TestBroker()
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = "t" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: dir + "/rules", withIntermediateDirectories: true)
        try dispatchRules.write(toFile: dir + "/rules/fire.yaml", atomically: true, encoding: .utf8)
        let config = try writeConfig(
            dir: dir, broker: broker, prefix: p, rules: dir + "/rules/*.yaml",
            dispatch: """
                dispatch:
                  sinks:
                    - { name: bus, type: mqtt, topic: "\(p)/incidents/{route}/{severity}/{type}" }
                """)
        let (vigil, line) = try alarmThroughMQTTSink(
            config: config, dir: dir, broker: broker, prefix: p,
            subscribe: ["-h", broker.host, "-p", String(broker.port), "-v"])
        #expect(line.hasPrefix("\(p)/incidents/fire_safety/critical/opened {"), "\(line)")
        #expect(line.contains(#""rule":"fire_alarm_active""#))
        usleep(300_000)
        let (_, stats) = try runVigilQueue(["stats", "--json"], config: config)
        #expect(stats.contains(#""sink":"bus","pending":0,"delivered":1"#), "\(stats)")
        #expect(vigil.stop().0 == 0)
    }

    /// Starts vigil, publishes a fire alarm to the ingest broker and returns the
    /// first line `mosquitto_sub SUBSCRIBE… -t PREFIX/incidents/#` received.
    func alarmThroughMQTTSink(
        config: String, dir: String, broker: TestBroker, prefix p: String,
        subscribe: [String]
    ) throws -> (VigilProcess, String) {
        let sub = Process()
        sub.executableURL = URL(fileURLWithPath: "/usr/bin/mosquitto_sub")
        sub.arguments = subscribe + ["-t", "\(p)/incidents/#", "-C", "1", "-W", "20"]
        let out = Pipe()
        sub.standardOutput = out
        try sub.run()
        let vigil = try VigilProcess(config: config, workDir: dir)
        try vigil.waitForLog("mqtt sink connected")
        try vigil.waitForLog("subscriptions active")
        usleep(200_000)
        try broker.publish(topic: "\(p)/estate/C001/fire_alarm/fa-0001/event", payload: #"{"event":"alarm"}"#)
        sub.waitUntilExit()
        return (vigil, String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self))
    }

    /// `broker:` on an MQTT sink: incidents go to a broker of their own (here
    /// one that wants a password), not to the broker vigil reads from.
    @Test func theMQTTSinkPublishesToItsOwnBroker() throws {
        let broker = try TestBroker()
        let bus = try TestBroker(privateBroker: true, user: (name: "vigil-bus", password: "bus-secret"))
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = "t" + UUID().uuidString.prefix(8).lowercased()
        try FileManager.default.createDirectory(atPath: dir + "/rules", withIntermediateDirectories: true)
        try dispatchRules.write(toFile: dir + "/rules/fire.yaml", atomically: true, encoding: .utf8)
        try "bus-secret\n".write(toFile: dir + "/bus.pw", atomically: true, encoding: .utf8)
        let config = try writeConfig(
            dir: dir, broker: broker, prefix: p, rules: dir + "/rules/*.yaml",
            dispatch: """
                dispatch:
                  sinks:
                    - name: bus
                      type: mqtt
                      topic: "\(p)/incidents/{severity}"
                      broker: { url: "\(bus.url)", username: vigil-bus, password_file: \(dir)/bus.pw, client_id: vigil-bus-sink }
                """)
        let (vigil, line) = try alarmThroughMQTTSink(
            config: config, dir: dir, broker: broker, prefix: p,
            subscribe: ["-h", bus.host, "-p", String(bus.port), "-u", "vigil-bus", "-P", "bus-secret"])
        #expect(line.contains(#""rule":"fire_alarm_active""#), "\(line)")
        #expect(!vigil.log.contains("bus-secret"))
        #expect(vigil.stop().0 == 0)

        // A URL alone is enough; a `broker` on another sink type is an error at its line.
        let (code, out2, err2) = try runVigil([
            "check", "--config",
            try writeConfig(
                dir: dir, broker: broker, prefix: p, rules: dir + "/rules/*.yaml",
                dispatch: """
                    dispatch:
                      sinks:
                        - { name: bus, type: mqtt, broker: "\(bus.url)" }
                        - { name: file, type: file, path: x.jsonl, broker: "\(bus.url)" }
                    """),
        ])
        #expect(code == 1 && (out2 + err2).contains("'broker' is not a key of a file sink"), "\(out2)\(err2)")
    }

    @Test func shedDropsOnlyLowSeverityEventsWhileFull() throws {
        let broker = try TestBroker()
        let dir = try makeWorkDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let p = "t" + UUID().uuidString.prefix(8).lowercased()
        let receiver = try WebhookReceiver()
        receiver.script([.init(status: 503)])
        try FileManager.default.createDirectory(atPath: dir + "/rules", withIntermediateDirectories: true)
        try """
        rules:
          - { name: pile_warm, feed: charging_pile, when: temperature_c >= 50, severity: minor }
          - { name: fire, feed: fire_alarm, when: event == "alarm", severity: critical }
        """.write(toFile: dir + "/rules/r.yaml", atomically: true, encoding: .utf8)
        let config = try writeConfig(
            dir: dir, broker: broker, prefix: p, rules: dir + "/rules/*.yaml",
            dispatch: """
                dispatch:
                  max_pending: 5
                  overflow: shed
                  shed_below: major
                  retry: { initial: 100ms, max: 200ms }
                  sinks:
                    - { name: platform, type: webhook, url: \(receiver.url), timeout: 2s }
                """)
        let vigil = try VigilProcess(config: config, workDir: dir)
        try vigil.waitForLog("subscriptions active")
        // Five minor events fill the queue …
        try publishAll(broker: broker, messages: (0..<5).map { ("\(p)/estate/C001/charging_pile/cp-\($0)/telemetry", #"{"temperature_c":60}"#) })
        try waitFor("a full queue") {
            try runVigilQueue(["list", "--sink", "platform", "--state", "pending"], config: config).1.split(separator: "\n").count == 5
        }
        // … so the next minor ones are shed.
        for i in 5..<8 { try broker.publish(topic: "\(p)/estate/C001/charging_pile/cp-\(i)/telemetry", payload: #"{"temperature_c":60}"#) }
        try vigil.waitForLog("msg=\"event shed\"")
        try broker.publish(topic: "\(p)/estate/C001/fire_alarm/fa-0001/event", payload: #"{"event":"alarm"}"#)
        usleep(800_000)
        let (_, list) = try runVigilQueue(["list", "--sink", "platform", "--state", "pending"], config: config)
        let pending = list.split(separator: "\n")
        #expect(pending.count == 6, "\(list)")  // 5 minor ones filled the queue, then the critical one
        #expect(pending.filter { $0.contains("pile_warm") }.count == 5)
        #expect(pending.first?.contains(" critical fire ") == true)  // and it goes first
        #expect(vigil.log.contains("severity=minor"))
        #expect(vigil.stop().0 == 0)
    }
}

import Foundation
import VigilConfig
import VigilCore
import VigilIngest
@testable import VigilRules
import VigilTestSupport

/// A scratch folder removed when the test ends.
final class TempDir {
    let path: String
    init() {
        path = try! makeWorkDir()
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }

    @discardableResult
    func write(_ name: String, _ text: String) -> String {
        let p = path + "/" + name
        try! FileManager.default.createDirectory(atPath: (p as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try! text.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }

    /// `vigil.yaml` here, the configuration `check` reads.
    var config: String { path + "/vigil.yaml" }

    /// Writes `vigil.yaml` here and loads it, the registry and the rules as `vigil check` does.
    func check(config text: String) -> (Setup?, [Diagnostic]) { Setup.load(configPath: write("vigil.yaml", text)) }
}

let standardFeeds: Set<String> = ["smart_gate", "fire_alarm", "elevator_ebike", "charging_pile", "falling_object"]

let standardSubscriptions = VigilConfig.defaultSubscriptions

func loadRules(_ files: [String: String]) -> (RuleSet, [Diagnostic], TempDir) {
    let dir = TempDir()
    let paths = files.map { dir.write($0.key, $0.value) }
    let (set, diags) = RuleLoader(knownFeeds: standardFeeds).load(files: paths)
    return (set, diags, dir)
}

/// Drives an engine with offsets from a start time, like `vigil test`.
struct Harness {
    var engine: RuleEngine
    var decoder: ReadingDecoder
    var events: [IncidentEvent] = []
    let t0: Millis
    let dir: TempDir

    init(_ rules: String, channels: String? = nil, start: String = "2026-01-01T00:00:00Z") throws {
        let (set, diags, dir) = loadRules(["rules.yaml": rules])
        if !diags.isEmpty { throw Diagnostics(diags) }
        var registry = ChannelRegistry()
        if let channels {
            let (r, d) = ChannelRegistry.parse(channels, path: "channels.csv", knownFeeds: standardFeeds)
            if !d.isEmpty { throw Diagnostics(d) }
            registry = r
        }
        self.dir = dir
        t0 = Time.parse(start)!
        engine = RuleEngine(ruleSet: set, registry: registry)
        decoder = ReadingDecoder(subscriptions: standardSubscriptions, registry: registry, unknownChannels: .accept, limits: .init())
        engine.start(at: t0)
    }

    static func offset(_ s: String) -> Millis { try! Units.parseDuration(s).get() }

    mutating func send(_ at: String, _ topic: String, _ payload: JSONValue) {
        let r = try! decoder.decode(topic: topic, payload: Array(payload.description.utf8), at: t0 + Harness.offset(at)).get()
        engine.process(r, into: &events)
    }

    mutating func pile(_ at: String, _ channel: String, _ payload: JSONValue) {
        send(at, "estate/C001/charging_pile/\(channel)/telemetry", payload)
    }

    mutating func pile(_ at: String, _ payload: JSONValue) { pile(at, "cp-0001", payload) }

    mutating func advance(_ to: String) { engine.advance(to: t0 + Harness.offset(to), into: &events) }

    /// `30s opened rule channel count` per event, for compact assertions.
    var summary: [String] {
        events.map { "\(Units.formatDuration($0.at - t0)) \($0.type.shortName) \($0.rule) \($0.channel ?? "-") \($0.count)" }
    }

    func offset(_ t: Millis?) -> String? { t.map { Units.formatDuration($0 - t0) } }
}

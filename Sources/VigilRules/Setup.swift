import Foundation
import VigilConfig
import VigilCore

/// Everything `check`, `run` and `replay` load before they start: the
/// configuration, the channel registry and the rule set.
public struct Setup: Sendable {
    public var config: VigilConfig
    public var registry: ChannelRegistry
    public var ruleSet: RuleSet

    public var decoder: ReadingDecoder {
        ReadingDecoder(
            subscriptions: config.subscriptions, registry: registry, unknownChannels: config.unknownChannels,
            limits: config.limits)
    }

    /// The clock rules of `readings` (SPEC §4).
    public var timeline: Timeline { Timeline(lateAfter: config.readings.lateAfter, maxDelay: config.readings.maxDelay) }

    /// A fresh engine behind the clock rules, for this rule set and registry.
    public func evaluator() -> Evaluator {
        Evaluator(
            engine: RuleEngine(ruleSet: ruleSet, registry: registry), decoder: decoder, timeline: timeline,
            deviceTime: config.readings.deviceTime.flatMap(DeviceTime.Path.init))
    }

    /// Loads the configuration at `configPath`, or the defaults when it is nil:
    /// `/etc/vigil/vigil.yaml` if it exists, else the embedded defaults.
    /// `checkFiles`: also report every file the configuration names that
    /// cannot be read (TLS, secrets) — `check` and `run` want that, `replay` does not.
    public static func load(configPath: String?, checkFiles: Bool = false) -> (Setup?, [Diagnostic]) {
        let path = configPath ?? (FileManager.default.fileExists(atPath: VigilConfig.defaultConfigPath) ? VigilConfig.defaultConfigPath : nil)
        guard let path else { return load(config: VigilConfig.embedded(), checkFiles: checkFiles) }
        let (c, diags) = ConfigLoader.loadAsFarAsItGoes(path: path)
        guard let c else { return (nil, diags) }
        if diags.isEmpty { return load(config: c, checkFiles: checkFiles) }
        // Errors in the configuration: the registry's and the rules' are reported with them,
        // without feed checks (a misspelt `subscriptions` leaves the default feeds in place,
        // and every feed of the operator's own would look unknown).
        return (nil, diags + load(config: c, checkFiles: checkFiles, knownFeeds: nil).1)
    }

    /// Loads registry and rules for a configuration; every error of both is reported.
    public static func load(config: VigilConfig, checkFiles: Bool = false) -> (Setup?, [Diagnostic]) {
        load(config: config, checkFiles: checkFiles, knownFeeds: config.knownFeeds)
    }

    /// `knownFeeds` nil: feeds are not checked.
    static func load(config: VigilConfig, checkFiles: Bool, knownFeeds: Set<String>?) -> (Setup?, [Diagnostic]) {
        var diags: [Diagnostic] = []
        var registry = ChannelRegistry()
        if let path = config.channels {
            if let data = FileManager.default.contents(atPath: path) {
                switch ChannelRegistry.text(of: Array(data), path: path) {
                case .success(let text):
                    let (reg, d) = ChannelRegistry.parse(text, path: path, knownFeeds: knownFeeds)
                    registry = reg
                    diags += d
                case .failure(let d):
                    diags.append(d)
                }
            } else {
                let at =
                    config.fileReferences.first { $0.key == "channels" }?.location
                    ?? SourceLocation(path: config.path ?? path, line: 1, column: 1)
                let why = FileCheck.unreadable(path) ?? "not valid UTF-8"
                diags.append(Diagnostic(at, "cannot read the channel registry \(path): \(why)"))
            }
        }
        if checkFiles { diags += config.unreadableFiles().filter { !$0.message.hasPrefix("channels ") } }
        let files = FileGlob.expand(config.rules)
        let zone = TimeZone(identifier: config.timezone) ?? TimeZone(identifier: "UTC")!
        let (ruleSet, ruleDiags) = RuleLoader(knownFeeds: knownFeeds, timeZone: zone).load(files: files)
        diags += ruleDiags
        if !diags.isEmpty { return (nil, diags) }
        return (Setup(config: config, registry: registry, ruleSet: ruleSet), [])
    }
}

/// Shell globs for rule file lists (`rules.d/*.yaml`), sorted.
public enum FileGlob {
    public static func expand(_ patterns: [String]) -> [String] {
        var out = Set<String>()
        for p in patterns {
            var g = glob_t()
            defer { globfree(&g) }
            if glob(p, 0, nil, &g) == 0 {
                for i in 0..<Int(g.gl_pathc) {
                    if let cs = g.gl_pathv[i] { out.insert(String(cString: cs)) }
                }
            }
        }
        return out.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }
}

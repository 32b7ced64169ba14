import ArgumentParser
import Foundation
import VigilConfig
import VigilCore
import VigilDaemon
import VigilIngest
import VigilRules

struct BacktestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backtest",
        abstract: "What a rule change would have done on the journal's real traffic.",
        discussion: """
            Evaluates the journal (read-only; the daemon may run) from a fresh state, once with the configured \
            rules and once with the given ones, and prints per rule the incidents opened and resolved under \
            each set, then the incidents only one set opened, most severe first.
            """)

    @OptionGroup var options: ConfigOptions

    @Option(name: .long, parsing: .upToNextOption, help: "The new rule files (globs).")
    var rules: [String]

    @Option(help: "From this time: a duration back from now (2h) or an RFC 3339 time.")
    var since: String?

    @Flag(help: "Output JSON for machines.")
    var json = false

    func run() async throws {
        // In the idle classes for the CPU and the disk, on this thread: nothing below may suspend (see `Yield`).
        Yield.toTheDaemon()
        let (loaded, diags) = Setup.load(configPath: options.config)
        guard let setup = loaded else {
            for d in diags { printError(d.description) }
            throw ExitCode(1)
        }
        let files = FileGlob.expand(rules)
        guard !files.isEmpty else {
            printError("vigil backtest: --rules \(rules.joined(separator: " ")) matches no file")
            throw ExitCode(1)
        }
        let (candidate, ruleDiags) = RuleLoader(
            knownFeeds: setup.config.knownFeeds,
            timeZone: TimeZone(identifier: setup.config.timezone) ?? TimeZone(identifier: "UTC")!
        )
        .load(files: files)
        guard ruleDiags.isEmpty else {
            for d in ruleDiags { printError(d.description) }
            throw ExitCode(1)
        }
        let since = try parseSince(self.since)
        let db = try stateDatabase(setup.config, command: "vigil backtest")
        var backtest = Backtest(setup: setup, candidateRules: candidate)
        let report: Backtest.Report
        do { report = try backtest.run(journal: JournalReader(stateDatabase: db), since: since) } catch {
            printError("vigil backtest: \(error)")
            throw ExitCode(1)
        }
        if json { print(JSONWriter.encode(BacktestCommand.json(report))) } else { BacktestCommand.printTable(report) }
    }

    static func json(_ r: Backtest.Report) -> JSONValue {
        func counts(_ s: Backtest.Side, _ rule: String) -> JSONValue {
            ["opened": .number(Double(s.opened[rule] ?? 0)), "resolved": .number(Double(s.resolved[rule] ?? 0))]
        }
        func incident(_ i: Backtest.Incident) -> JSONValue {
            var o = JSONObject()
            o.appendUnique("rule", .string(i.rule))
            o.appendUnique("severity", .string(i.severity.name))
            o.appendUnique("channel", i.channel.map(JSONValue.string) ?? .null)
            o.appendUnique("community", i.community.map(JSONValue.string) ?? .null)
            o.appendUnique("opened_at", .string(Time.format(i.openedAt)))
            return .object(o)
        }
        var root = JSONObject()
        root.appendUnique("records", .number(Double(r.records)))
        root.appendUnique("from", r.from.map { .string(Time.format($0)) } ?? .null)
        root.appendUnique("to", r.to.map { .string(Time.format($0)) } ?? .null)
        root.appendUnique(
            "rules",
            .array(
                r.rules.map { rule in
                    var row = JSONObject()
                    row.appendUnique("rule", .string(rule))
                    row.appendUnique("configured", counts(r.configured, rule))
                    row.appendUnique("new", counts(r.candidate, rule))
                    if let only = r.onlyIn(rule) { row.appendUnique("only_in", .string(only)) }
                    return .object(row)
                }))
        root.appendUnique("only_configured", .array(r.onlyIn(r.configured, not: r.candidate).map(incident)))
        root.appendUnique("only_new", .array(r.onlyIn(r.candidate, not: r.configured).map(incident)))
        return .object(root)
    }

    static func printTable(_ r: Backtest.Report) {
        let span = r.from.map { "\(Time.format($0)) to \(Time.format(r.to ?? $0))" } ?? "an empty journal"
        print("\(r.records) records, \(span)")
        print("")
        let width = max(24, (r.rules.map(\.count).max() ?? 0) + 2)
        print(
            pad("rule", width) + pad("configured opened", 19, right: true) + pad("resolved", 10, right: true)
                + pad("new opened", 12, right: true) + pad("resolved", 10, right: true))
        for rule in r.rules {
            let a = r.configured, b = r.candidate
            var mark = (a.opened[rule] ?? 0) != (b.opened[rule] ?? 0) ? "  *" : ""
            if let only = r.onlyIn(rule) { mark += only == "new" ? "  (new rule)" : "  (not in the new rules)" }
            print(
                pad(rule, width) + pad("\(a.opened[rule] ?? 0)", 19, right: true) + pad("\(a.resolved[rule] ?? 0)", 10, right: true)
                    + pad("\(b.opened[rule] ?? 0)", 12, right: true) + pad("\(b.resolved[rule] ?? 0)", 10, right: true) + mark)
        }
        for (title, list) in [
            ("only with the configured rules", r.onlyIn(r.configured, not: r.candidate)),
            ("only with the new rules", r.onlyIn(r.candidate, not: r.configured)),
        ] {
            print("")
            print("\(list.count) incident\(list.count == 1 ? "" : "s") \(title)\(list.isEmpty ? "" : ":")")
            for i in list.prefix(200) {
                print("  " + [i.severity.name, i.rule, i.channel ?? "-", i.community ?? "-", Time.format(i.openedAt)].joined(separator: "  "))
            }
            if list.count > 200 { print("  … and \(list.count - 200) more (--json has all)") }
        }
    }
}

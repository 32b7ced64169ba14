import ArgumentParser
import VigilConfig
import VigilDaemon
import VigilIngest
import VigilRules

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the configuration, the channel registry and every rule file.",
        discussion: "Prints every error as PATH:LINE:COL: error: MESSAGE, or a summary when all is well.")

    @OptionGroup var options: ConfigOptions

    func run() async throws {
        let (setup, diags) = Setup.load(configPath: options.config, checkFiles: true)
        guard let setup else {
            for d in diags { print(d.description) }
            throw ExitCode(1)
        }
        print("ok: \(setup.ruleSet.rules.count) rules, \(setup.registry.count) channels, \(setup.config.dispatch.sinks.count) sinks")
    }
}

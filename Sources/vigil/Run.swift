import ArgumentParser
import Logging
import VigilConfig
import VigilCore
import VigilDaemon
import VigilIngest
import VigilRules

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the daemon until SIGTERM or SIGINT.")

    @OptionGroup var options: ConfigOptions

    func run() async throws {
        let (setup, diags) = Setup.load(configPath: options.config, checkFiles: true)
        guard let setup else {
            for d in diags { printError(d.description) }
            printError("vigil: not starting: \(diags.count) error\(diags.count == 1 ? "" : "s") in the configuration or rules")
            throw ExitCode(1)
        }
        let config = setup.config
        let level = Logger.Level(rawValue: config.logLevel) ?? .info
        let format = LogStream.Format(rawValue: config.logFormat) ?? .logfmt
        LoggingSystem.bootstrap { label in LogStream(label: label, level: level, format: format) }
        let logger = Logger(label: "vigil")
        do {
            try await Daemon(setup: setup, logger: logger).run()
        } catch {
            logger.critical("vigil failed", metadata: ["error": .string("\(error)")])
            throw ExitCode(1)
        }
    }
}

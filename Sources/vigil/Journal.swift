import ArgumentParser
import Foundation
import VigilConfig
import VigilCore
import VigilDaemon
import VigilIngest
import VigilRules

struct Journal: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read the journal of the state directory (works while the daemon runs).",
        subcommands: [Export.self])

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the journal as recorded messages, replayable as it is.",
            discussion:
                "Messages, broker marks and acknowledgements, one JSON object a line (the format vigil replay reads). Streams in the memory of one chunk of rows, whatever the journal's size: the journal as it is at the start, read in short transactions."
        )

        @OptionGroup var options: ConfigOptions

        @Option(help: "From this time: a duration back from now (2h) or an RFC 3339 time.")
        var since: String?

        @Option(help: "Before this RFC 3339 time.")
        var until: String?

        @Option(help: "Where to write (default: standard output).")
        var output: String?

        func run() async throws {
            // In the idle classes for the CPU and the disk, on this thread: nothing below may suspend (see `Yield`).
            Yield.toTheDaemon()
            let config = try loadConfig(options.config)
            let since = try parseSince(self.since)
            var untilTime: Millis?
            if let until {
                guard let t = Time.parse(until) else { throw ValidationError("--until '\(until)': write an RFC 3339 time") }
                untilTime = t
            }
            let db = try stateDatabase(config, command: "vigil journal export")
            var fd: Int32 = 1
            if let output {
                do { fd = try createFile(output) } catch { printError("vigil journal export: \(error)"); throw ExitCode(1) }
            }
            let out = OutputBuffer(fd: fd, limit: 1 << 18)
            do {
                try JournalReader(stateDatabase: db).forEach(since: since, until: untilTime) { entry in
                    out.write(entry.recordLine())
                    out.write("\n")
                }
            } catch {
                out.flush()
                printError("vigil journal export: \(error)")
                throw ExitCode(1)
            }
            out.flush()
            if fd != 1 { close(fd) }
        }
    }
}

/// The configuration a command names, or `/etc/vigil/vigil.yaml`, or the built-in defaults.
func loadConfig(_ path: String?) throws -> VigilConfig {
    if let path = path ?? (FileManager.default.fileExists(atPath: VigilConfig.defaultConfigPath) ? VigilConfig.defaultConfigPath : nil) {
        let (c, diags) = ConfigLoader.load(path: path)
        guard let c else { for d in diags { printError(d.description) }; throw ExitCode(1) }
        return c
    }
    return VigilConfig.embedded()
}

/// The state database of a configuration, which must exist.
func stateDatabase(_ config: VigilConfig, command: String) throws -> String {
    let path = config.stateDatabasePath
    guard FileManager.default.fileExists(atPath: path) else {
        printError("\(command): no state database at \(path) (has the daemon run with this configuration?)")
        throw ExitCode(1)
    }
    return path
}

/// `--since`: a duration back from now (`2h`) or an RFC 3339 time.
func parseSince(_ text: String?) throws -> Millis? {
    guard let text else { return nil }
    if let t = Time.parse(text) { return t }
    if case .success(let d) = Units.parseDuration(text) { return Time.now() - d }
    throw ValidationError("--since '\(text)': write a duration such as 2h or an RFC 3339 time")
}

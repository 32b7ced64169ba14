import ArgumentParser
import Glibc
import VigilConfig
import VigilCore
import VigilDaemon
import VigilIngest
import VigilRules

struct Replay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Evaluate recorded messages offline on a virtual clock.",
        discussion: "Writes incident events as JSON lines. No broker, no sinks, no state directory. Same input, same output.")

    @OptionGroup var options: ConfigOptions

    @Option(help: "Recorded messages, one JSON object a line (default: standard input).")
    var input: String?

    @Option(help: "Where to write the events (default: standard output).")
    var output: String?

    @Option(help: "Advance the clock after the last record: an RFC 3339 time, or a duration after the last record (10m).")
    var until: String?

    func run() async throws {
        var untilSpec: Replayer.Until?
        if let until {
            guard let u = Replayer.Until.parse(until) else {
                throw ValidationError("--until '\(until)': write an RFC 3339 time or a duration such as 10m")
            }
            untilSpec = u
        }
        let (setup, diags) = Setup.load(configPath: options.config)
        guard let setup else {
            for d in diags { printError(d.description) }
            throw ExitCode(1)
        }
        var inFD: Int32 = 0
        if let input {
            inFD = open(input, O_RDONLY | O_CLOEXEC)
            guard inFD >= 0 else { printError("vigil replay: cannot open \(input): \(String(cString: strerror(errno)))"); throw ExitCode(1) }
        }
        var outFD: Int32 = 1
        if let output {
            do { outFD = try createFile(output) } catch { printError("vigil replay: \(error)"); throw ExitCode(1) }
        }
        let out = OutputBuffer(fd: outFD, limit: 1 << 18)
        var replayer = Replayer(setup: setup)
        var w = JSONWriter(capacity: 1024)
        do {
            _ = try replayer.run(inputFD: inFD, until: untilSpec) { event in
                event.write(to: &w)
                w.raw("\n")
                out.write(bytes: w.bytes)
                w = JSONWriter(capacity: 1024)
            }
            out.flush()
        } catch {
            out.flush()
            printError("\(input ?? "<stdin>"):\(error.description)")
            throw ExitCode(1)
        }
        // Done: the process ends here. Taking a large registry's state apart
        // object by object (a tenth of a second for 100,000 channels) is
        // work the end of the process does at once.
        Glibc.exit(0)
    }
}

import ArgumentParser
import Logging
import VigilConfig
import VigilDaemon
import VigilIngest
import VigilRules

@main
struct Vigil: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vigil",
        abstract: "Watches the safety sensors of residential communities and dispatches incidents.",
        subcommands: [
            Run.self, Check.self, Test.self, Replay.self, Simulate.self, Queue.self, Incidents.self, Ack.self, Journal.self,
            BacktestCommand.self,
            Version.self,
        ])

    /// Exit codes: 0 success, 1 a failed check, 2 bad usage (argument-parser's
    /// own default for usage errors is 64).
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var async = command as? AsyncParsableCommand { try await async.run() } else { try command.run() }
        } catch {
            if exitCode(for: error) == .validationFailure {
                printError(fullMessage(for: error))
                Glibc.exit(2)
            }
            exit(withError: error)
        }
    }
}

/// Options every command that reads the configuration shares.
struct ConfigOptions: ParsableArguments {
    @Option(name: .long, help: "The configuration file (default: /etc/vigil/vigil.yaml, else built-in defaults).")
    var config: String?
}

/// Exit with status 1 (a failed check) without a second error message.
struct CheckFailed: Error {}

extension CheckFailed: CustomStringConvertible { var description: String { "" } }

/// Creates (or truncates) a file for writing; the error names the file and the reason.
func createFile(_ path: String) throws(CreateFailed) -> Int32 {
    let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw CreateFailed(description: "cannot create \(path): \(String(cString: strerror(errno)))") }
    return fd
}

struct CreateFailed: Error, CustomStringConvertible { let description: String }

func printError(_ s: String) {
    var stderr = StandardError()
    print(s, to: &stderr)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        var bytes = Array(string.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}

import Glibc

import ArgumentParser
import VigilConfig
import VigilDaemon
import VigilIngest
import VigilRules

struct Test: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run rule unit-test files.")

    @Argument(help: "Rule test files (YAML).")
    var files: [String]

    func run() async throws {
        var passed = 0, failed = 0
        for file in files {
            let (outcomes, diags) = RuleTestRunner.run(file: file)
            for d in diags { print(d.description) }
            if !diags.isEmpty { failed += 1 }
            for o in outcomes {
                if o.passed { passed += 1; print("PASS \(o.name)") } else { failed += 1; print("FAIL \(o.name)"); print(o.report) }
            }
        }
        print("\(passed) passed, \(failed) failed")
        if failed > 0 { throw ExitCode(1) }
    }
}

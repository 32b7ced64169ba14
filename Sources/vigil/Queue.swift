import ArgumentParser
import Foundation
import VigilConfig
import VigilCore
import VigilDaemon
import VigilDispatch
import VigilIngest
import VigilRules

struct Queue: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Inspect and manage the dispatch queue (works while the daemon runs).",
        subcommands: [Stats.self, List.self, Show.self, Retry.self, Purge.self])

    struct Common: ParsableArguments {
        @OptionGroup var options: ConfigOptions
        @Flag(help: "Output JSON for machines.") var json = false

        func inspector(readOnly: Bool) throws -> QueueInspector {
            let config: VigilConfig
            if let path = options.config ?? (FileManager.default.fileExists(atPath: VigilConfig.defaultConfigPath) ? VigilConfig.defaultConfigPath : nil) {
                let (c, diags) = ConfigLoader.load(path: path)
                guard let c else { for d in diags { printError(d.description) }; throw ExitCode(1) }
                config = c
            } else {
                config = VigilConfig.embedded()
            }
            let path = config.stateDatabasePath
            guard FileManager.default.fileExists(atPath: path) else {
                printError("vigil queue: no queue at \(path) (has the daemon run with this configuration?)")
                throw ExitCode(1)
            }
            return try QueueInspector(path: path, readOnly: readOnly)
        }
    }

    struct Stats: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Count events per sink and state.")
        @OptionGroup var common: Common
        func run() async throws {
            let stats = try common.inspector(readOnly: true).stats()
            if common.json {
                var arr: [JSONValue] = []
                for s in stats {
                    arr.append([
                        "sink": .string(s.sink), "pending": .number(Double(s.pending)), "delivered": .number(Double(s.delivered)),
                        "dead": .number(Double(s.dead)),
                    ])
                }
                print(JSONWriter.encode(.array(arr)))
                return
            }
            print(pad("sink", 16) + pad("pending", 10, right: true) + pad("delivered", 11, right: true) + pad("dead", 8, right: true))
            for s in stats {
                print(pad(s.sink, 16) + pad("\(s.pending)", 10, right: true) + pad("\(s.delivered)", 11, right: true) + pad("\(s.dead)", 8, right: true))
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One delivery per line, in dispatch order.")
        @OptionGroup var common: Common
        @Option(help: "Only this sink.") var sink: String?
        @Option(help: "pending or dead (default: both).") var state: String?
        @Option(help: "At most this many lines.") var limit = 1000
        func run() async throws {
            var st: EventQueue.DeliveryState?
            if let state {
                guard let s = EventQueue.DeliveryState.allCases.first(where: { $0.name == state }) else {
                    throw ValidationError("--state must be pending, delivered or dead")
                }
                st = s
            }
            let inspector = try common.inspector(readOnly: true)
            try inspector.list(sink: sink, state: st, limit: limit) { e in
                if st == nil && e.state == "delivered" { return }
                if common.json {
                    print(JSONWriter.encode(json(e)))
                } else {
                    print(
                        [
                            e.eventID, e.sink, e.state, "attempts=\(e.attempts)", e.severity.name, e.rule, e.type, Time.format(e.createdAt),
                            "incident=\(e.incidentID)", e.lastError.map { "error=\"\($0)\"" } ?? "",
                        ].filter { !$0.isEmpty }.joined(separator: " "))
                }
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "One event with its delivery attempts.")
        @OptionGroup var common: Common
        @Argument(help: "The event id.") var eventID: String
        func run() async throws {
            guard let (body, deliveries) = try common.inspector(readOnly: true).show(eventID: eventID) else {
                printError("vigil queue show: no event \(eventID)")
                throw ExitCode(1)
            }
            if common.json {
                var o = JSONObject()
                o.appendUnique("event", (try? JSONParser.parse(body)) ?? .string(body))
                o.appendUnique("deliveries", .array(deliveries.map(json)))
                print(JSONWriter.encode(.object(o)))
                return
            }
            print(body)
            for d in deliveries {
                var line = "  \(d.sink): \(d.state), \(d.attempts) attempt\(d.attempts == 1 ? "" : "s")"
                if d.state == "pending", d.nextAt > 0 { line += ", next at \(Time.format(d.nextAt))" }
                if let u = d.updatedAt { line += ", last \(Time.format(u))" }
                if let err = d.lastError { line += ", error: \(err)" }
                print(line)
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Re-queue dead events.")
        @OptionGroup var common: Common
        @Argument(help: "Event ids to re-queue.") var eventIDs: [String] = []
        @Flag(help: "Re-queue every dead event.") var allDead = false
        func validate() throws {
            if eventIDs.isEmpty == !allDead { throw ValidationError("give event ids or --all-dead (not both)") }
        }
        func run() async throws {
            let n = try common.inspector(readOnly: false).retry(eventIDs: allDead ? nil : eventIDs)
            if common.json { print(JSONWriter.encode(["requeued": .number(Double(n))])) } else { print("re-queued \(n) deliver\(n == 1 ? "y" : "ies")") }
        }
    }

    struct Purge: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Drop delivered history.")
        @OptionGroup var common: Common
        @Option(help: "Age, e.g. 7d.") var olderThan: String
        func run() async throws {
            guard case .success(let age) = Units.parseDuration(olderThan) else {
                throw ValidationError("--older-than '\(olderThan)': write a duration such as 7d")
            }
            let (d, e) = try common.inspector(readOnly: false).purge(olderThan: age, now: Time.now())
            if common.json {
                print(JSONWriter.encode(["deliveries": .number(Double(d)), "events": .number(Double(e))]))
            } else {
                print("purged \(d) deliveries and \(e) events older than \(olderThan)")
            }
        }
    }
}

func json(_ e: QueueInspector.Entry) -> JSONValue {
    var o = JSONObject()
    o.appendUnique("event_id", .string(e.eventID))
    o.appendUnique("incident_id", .string(e.incidentID))
    o.appendUnique("sink", .string(e.sink))
    o.appendUnique("state", .string(e.state))
    o.appendUnique("attempts", .number(Double(e.attempts)))
    o.appendUnique("rule", .string(e.rule))
    o.appendUnique("type", .string(e.type))
    o.appendUnique("severity", .string(e.severity.name))
    o.appendUnique("created_at", .string(Time.format(e.createdAt)))
    o.appendUnique("next_at", e.nextAt > 0 ? .string(Time.format(e.nextAt)) : .null)
    o.appendUnique("last_error", e.lastError.map(JSONValue.string) ?? .null)
    return .object(o)
}

func pad(_ s: String, _ n: Int, right: Bool = false) -> String {
    let fill = String(repeating: " ", count: max(0, n - s.count))
    return right ? fill + s + " " : s + fill
}

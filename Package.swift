// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "vigil",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "vigil", targets: ["vigil"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // C libraries, reached only through the modules named after them.
        .systemLibrary(
            name: "CMosquitto",
            pkgConfig: "libmosquitto",
            providers: [.apt(["libmosquitto-dev"])]
        ),
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),

        // Buffered reads of the broker socket for libmosquitto (why: in its header).

        // Values every stage shares: JSON, time, durations, channels, readings, incident events.
        .target(name: "VigilCore", dependencies: [.product(name: "Yams", package: "Yams")]),
        // Rule files → compiled rules, and the engine: a pure state machine over readings and time.
        .target(name: "VigilRules", dependencies: ["VigilCore", .product(name: "Yams", package: "Yams"), .product(name: "Crypto", package: "swift-crypto")]),
        // The one place that speaks SQLite.
        .target(name: "VigilStore", dependencies: ["CSQLite"]),
        // Broker connection, topic patterns, payload decoding, dead letters.
        .target(name: "VigilIngest", dependencies: ["VigilCore", "CMosquitto"]),
        // The durable outbox and the sinks it delivers to.
        .target(name: "VigilDispatch", dependencies: [
            "VigilCore", "VigilStore", "VigilIngest", .product(name: "Logging", package: "swift-log"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // Synthetic traffic for every feed, anomalies, and the check that each became its incident.
        .target(name: "VigilSimulate", dependencies: ["VigilCore"]),
        // Configuration, the running daemon, the log stream.
        .target(name: "VigilDaemon", dependencies: [
            "VigilCore", "VigilRules", "VigilIngest", "VigilDispatch", "VigilStore",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Yams", package: "Yams"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        .executableTarget(name: "vigil", dependencies: [
            "VigilCore", "VigilRules", "VigilIngest", "VigilDispatch", "VigilDaemon", "VigilStore", "VigilSimulate",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "AsyncHTTPClient", package: "async-http-client"),
            .product(name: "NIOCore", package: "swift-nio"),
        ]),

        // Queue benchmarks behind docs/PERFORMANCE.md (scripts/bench); not part of the product.
        .executableTarget(name: "vigil-bench", dependencies: [
            "VigilCore", "VigilDispatch", "VigilStore", "VigilIngest", .product(name: "Logging", package: "swift-log"),
            .product(name: "Crypto", package: "swift-crypto"),
        ], path: "Benchmarks/VigilBench"),

        .testTarget(name: "VigilCoreTests", dependencies: ["VigilCore"]),
        .testTarget(name: "VigilRulesTests", dependencies: ["VigilRules", "VigilCore", "VigilDaemon"]),
        .testTarget(name: "VigilDispatchTests", dependencies: ["VigilDispatch", "VigilStore", "VigilCore"]),
        .testTarget(name: "IntegrationTests", dependencies: ["VigilDaemon", "VigilIngest", "VigilCore", "VigilStore", "VigilSimulate",
                                                               .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "VigilSimulateTests", dependencies: ["VigilSimulate", "VigilDaemon", "VigilCore"]),
    ],
    swiftLanguageModes: [.v6]
)

// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "vigil",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "vigil", targets: ["vigil"])
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
        // The processor's prefetch hint (one static inline function, no library):
        // replay starts loading the tables the next records will read.
        .systemLibrary(name: "CPrefetch"),
        // A thread's I/O priority (two static inline functions over the system calls, no library):
        // backtests and journal exports read in the idle class.
        .systemLibrary(name: "CIOPriority"),

        // The layers, bottom up. A module may import only those above it in this list;
        // docs/ARCHITECTURE.md draws the same graph and says what each may never import.

        // Values every stage shares: JSON, time, durations, backoff, channels, readings,
        // topics, incident events, recorded messages. Depends on nothing but the
        // prefetch hint.
        .target(name: "VigilCore", dependencies: ["CPrefetch"]),
        // Configuration files: YAML with positions → typed configuration, checked at load.
        .target(name: "VigilConfig", dependencies: ["VigilCore", .product(name: "Yams", package: "Yams")]),
        // Rule files → compiled rules, the engine (a pure state machine over readings and
        // time), and what runs it offline: replay and rule tests.
        .target(
            name: "VigilRules",
            dependencies: [
                "VigilCore", "VigilConfig", "CPrefetch", .product(name: "Yams", package: "Yams"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        // The one place that speaks SQLite: the connection, every schema and its migrator,
        // the incident history.
        .target(name: "VigilStore", dependencies: ["VigilCore", "CSQLite"]),
        // The one place that speaks MQTT: libmosquitto behind a connection state machine
        // and the driver every MQTT client of vigil turns.
        .target(name: "VigilMQTT", dependencies: ["VigilCore", "CMosquitto"]),
        // The durable outbox and the sinks it delivers to.
        .target(
            name: "VigilDispatch",
            dependencies: [
                "VigilCore", "VigilConfig", "VigilStore", "VigilMQTT", .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        // The ingestion stage: the loop, the journal (and what reads it: export, backtests),
        // the redelivery filter, recovery.
        .target(
            name: "VigilIngest",
            dependencies: [
                "VigilCore", "VigilConfig", "VigilRules", "VigilStore", "VigilMQTT", "VigilDispatch", "CIOPriority",
                .product(name: "Logging", package: "swift-log"),
            ]),
        // Synthetic traffic for every feed, anomalies, and the check that each became its incident.
        .target(name: "VigilSimulate", dependencies: ["VigilCore"]),
        // The running daemon: services, the duty desk (HTTP API, status page), metrics, the log stream.
        .target(
            name: "VigilDaemon",
            dependencies: [
                "VigilCore", "VigilConfig", "VigilRules", "VigilIngest", "VigilDispatch", "VigilStore", "VigilMQTT",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]),
        .executableTarget(
            name: "vigil",
            dependencies: [
                "VigilCore", "VigilConfig", "VigilRules", "VigilMQTT", "VigilIngest", "VigilDispatch", "VigilDaemon", "VigilStore",
                "VigilSimulate",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
            ]),

        // Queue benchmarks behind docs/PERFORMANCE.md (scripts/bench); not part of the product.
        .executableTarget(
            name: "vigil-bench",
            dependencies: [
                "VigilCore", "VigilDispatch", "VigilStore", "VigilMQTT", .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ], path: "Benchmarks/VigilBench"),

        // What the tests share: temporary folders, real brokers, relays, publishers, receivers.
        .target(
            name: "VigilTestSupport",
            dependencies: [
                "VigilCore", "VigilStore", "VigilMQTT", .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(name: "VigilCoreTests", dependencies: ["VigilCore", "VigilTestSupport"]),
        .testTarget(name: "VigilRulesTests", dependencies: ["VigilRules", "VigilCore", "VigilConfig", "VigilIngest", "VigilTestSupport"]),
        .testTarget(name: "VigilMQTTTests", dependencies: ["VigilMQTT", "VigilCore", "VigilTestSupport"]),
        .testTarget(name: "VigilStoreTests", dependencies: ["VigilStore", "VigilCore", "VigilTestSupport"]),
        .testTarget(name: "VigilDispatchTests", dependencies: ["VigilDispatch", "VigilStore", "VigilCore", "VigilTestSupport"]),
        .testTarget(name: "VigilIngestTests", dependencies: ["VigilIngest", "VigilCore", "VigilTestSupport"]),
        .testTarget(
            name: "VigilDaemonTests",
            dependencies: ["VigilDaemon", "VigilIngest", "VigilDispatch", "VigilCore", .product(name: "Logging", package: "swift-log")]),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "VigilDaemon", "VigilConfig", "VigilIngest", "VigilMQTT", "VigilCore", "VigilStore", "VigilSimulate", "VigilTestSupport",
                .product(name: "Crypto", package: "swift-crypto"),
            ]),
        .testTarget(
            name: "VigilSimulateTests", dependencies: ["VigilSimulate", "VigilRules", "VigilCore", "VigilConfig", "VigilIngest", "VigilTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)

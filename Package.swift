// swift-tools-version:6.1
import PackageDescription

/// One thin executable per cluster process; the logic lives in the library targets below them.
let serviceExecutables: [(target: String, product: String)] = [
    ("NimbusGateway", "nimbus-gateway"),
    ("NimbusQueue", "nimbus-queue"),
    ("NimbusTable", "nimbus-table"),
    ("NimbusIngestWorker", "nimbus-ingest-worker"),
    ("NimbusStreamWorker", "nimbus-stream-worker"),
    ("NimbusNotifier", "nimbus-notifier"),
    ("NimbusIAM", "nimbus-iam"),
    ("NimbusEdge", "nimbus-edge"),
]

/// The library each service executable is a shell over, as the services land.
let serviceLibraries: [String: [Target.Dependency]] = [
    "NimbusQueue": ["QueueService"],
    "NimbusGateway": ["GatewayService"],
    "NimbusIAM": ["IAMService"],
    "NimbusTable": ["TableService"],
    "NimbusIngestWorker": ["FunctionRuntime", "LabFunctions"],
    "NimbusStreamWorker": ["FunctionRuntime", "LabFunctions"],
    "NimbusNotifier": ["NotifierService"],
    "NimbusEdge": ["EdgeService"],
]

/// Every Nimbus executable allocates through tcmalloc (gperftools' tcmalloc_minimal, Debian's
/// libtcmalloc-minimal4) instead of glibc's malloc: requests are allocated on one thread and freed on
/// another, which glibc's arenas pay for in locks and consolidation. Measured on the broker's single
/// sends: 11-17 % less CPU a message, 18-32 % with IAM on (README, Performance).
let allocator: [LinkerSetting] = [.linkedLibrary(":libtcmalloc_minimal.so.4", .when(platforms: [.linux]))]

let package = Package(
    name: "Nimbus",
    platforms: [.macOS(.v15)],
    products: serviceExecutables.map { .executable(name: $0.product, targets: [$0.target]) } + [
        .executable(name: "nimbus-supervisor", targets: ["NimbusSupervisor"]),
        .executable(name: "nimbus", targets: ["NimbusCLI"]),
        .executable(name: "nimbus-bench", targets: ["NimbusBench"]),
        .executable(name: "nimbus-mail-sink", targets: ["NimbusMailSink"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"4.0.0"),
    ],
    targets: [
        .systemLibrary(name: "CZeroMQ", pkgConfig: "libzmq", providers: [.apt(["libzmq3-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .target(name: "ZeroMQ", dependencies: ["CZeroMQ"]),
        .target(name: "NimbusProtocol"),
        .target(name: "NimbusConfig", dependencies: [.product(name: "Yams", package: "Yams")]),
        .target(name: "SupervisorCore", dependencies: ["NimbusConfig"]),
        .target(name: "NimbusStack", dependencies: [.product(name: "Yams", package: "Yams")]),
        .target(name: "NimbusStorage", dependencies: [.product(name: "GRDB", package: "GRDB.swift"), .product(name: "GRDBSQLite", package: "GRDB.swift")]),
        .target(name: "IAMCore", dependencies: ["NimbusProtocol"]),
        .target(name: "NimbusAuth", dependencies: ["NimbusProtocol", "IAMCore", .product(name: "Crypto", package: "swift-crypto")]),
        .target(name: "TableCore", dependencies: ["NimbusProtocol"]),
        .target(
            name: "TableService",
            dependencies: ["TableCore", "NimbusRuntime", "NimbusStack", "NimbusStorage", .product(name: "GRDB", package: "GRDB.swift"),
                           .product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(
            name: "FunctionRuntime",
            dependencies: ["NimbusRuntime", "NimbusStack", "TableCore", "QueueCore", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                           // The Lambda Runtime API a Python function's runtime speaks (Python/).
                           .product(name: "Hummingbird", package: "hummingbird")]
        ),
        .target(
            name: "LabFunctions",
            dependencies: ["FunctionRuntime", "TableCore", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(
            name: "IAMService",
            dependencies: ["IAMCore", "NimbusAuth", "NimbusRuntime", "NimbusStack", "NimbusStorage", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(
            name: "QueueCore",
            dependencies: [
                "NimbusProtocol",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        .target(
            name: "QueueService",
            dependencies: [
                "QueueCore", "NimbusRuntime", "NimbusStack", "NimbusStorage",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .target(
            name: "GatewayService",
            dependencies: [
                "NimbusRuntime", "QueueCore", "SupervisorCore", "TableCore", "NotifierCore", "NimbusStack", "FunctionRuntime", "LabFunctions",
                .product(name: "Hummingbird", package: "hummingbird"),
            ],
            // The web console's page, served at console.path (docs/console.md).
            resources: [.copy("Console")]
        ),
        .target(
            name: "NimbusRuntime",
            dependencies: [
                "ZeroMQ", "NimbusProtocol", "NimbusConfig", "NimbusAuth", "IAMCore",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "DequeModule", package: "swift-collections"),
            ]
        ),
        .executableTarget(
            name: "NimbusSupervisor",
            dependencies: ["NimbusRuntime", "SupervisorCore", "NimbusAuth"],
            linkerSettings: allocator
        ),
        .executableTarget(
            name: "NimbusCLI",
            dependencies: [
                "NimbusRuntime", "NimbusAuth", "NimbusConfig", "SupervisorCore", "NimbusProtocol", "FunctionRuntime", "TableCore", "NotifierCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            linkerSettings: allocator
        ),
        .executableTarget(
            name: "NimbusBench",
            dependencies: ["NimbusRuntime", "NimbusAuth", "IAMCore", "QueueCore", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Hummingbird", package: "hummingbird")],
            linkerSettings: allocator
        ),
        // What the engines' tests share: an open-once gate and a disk whose write stays in flight.
        .target(name: "NimbusTestSupport", path: "Tests/Support"),
        .testTarget(name: "ZeroMQTests", dependencies: ["ZeroMQ", "CZeroMQ"]),
        .testTarget(name: "NimbusProtocolTests", dependencies: ["NimbusProtocol"]),
        .testTarget(name: "NimbusConfigTests", dependencies: ["NimbusConfig"]),
        .testTarget(name: "SupervisorCoreTests", dependencies: ["SupervisorCore"]),
        .testTarget(name: "NimbusRuntimeTests", dependencies: ["NimbusRuntime", "NimbusAuth", "IAMCore", "NimbusTestSupport"]),
        .testTarget(name: "QueueCoreTests", dependencies: ["QueueCore", "NimbusProtocol"]),
        .testTarget(name: "NimbusStackTests", dependencies: ["NimbusStack"]),
        .testTarget(name: "IAMCoreTests", dependencies: ["IAMCore"]),
        .testTarget(name: "IAMServiceTests", dependencies: ["IAMService", "IAMCore", "NimbusRuntime", "NimbusTestSupport"]),
        .testTarget(name: "NimbusAuthTests", dependencies: ["NimbusAuth", "NimbusProtocol", "IAMCore", .product(name: "Crypto", package: "swift-crypto")]),
        .testTarget(name: "TableCoreTests", dependencies: ["TableCore"]),
        .testTarget(name: "TableServiceTests", dependencies: ["TableService", "TableCore", "NimbusRuntime", "NimbusTestSupport"]),
        .testTarget(name: "NimbusStorageTests", dependencies: ["NimbusStorage", .product(name: "GRDB", package: "GRDB.swift")]),
        .testTarget(name: "FunctionRuntimeTests", dependencies: ["FunctionRuntime", "LabFunctions", "NimbusStack", "TableCore", "NimbusProtocol"]),
        .target(name: "NotifierCore", dependencies: ["NimbusProtocol", .product(name: "HeapModule", package: "swift-collections")]),
        .target(
            name: "NotifierService",
            dependencies: ["NotifierCore", "QueueCore", "NimbusRuntime", "NimbusStack", "NimbusStorage", "COpenSSL", .product(name: "GRDB", package: "GRDB.swift")]
        ),
        .target(name: "MailSink"),
        // The AWS-compatible endpoint (docs/aws-endpoint.md): AWS's HTTP protocols in, nimbus/1 out.
        .systemLibrary(name: "CZlib", providers: [.apt(["zlib1g-dev"])]),
        .target(
            name: "EdgeService",
            dependencies: [
                "NimbusRuntime", "NimbusAuth", "NimbusStack", "CZlib",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            // The AWS service models the query and REST protocols are driven by.
            resources: [.copy("Models")]
        ),
        .testTarget(name: "EdgeServiceTests", dependencies: ["EdgeService", "NimbusRuntime"]),
        .executableTarget(name: "NimbusMailSink", dependencies: ["MailSink", "NimbusRuntime", "NimbusProtocol"], linkerSettings: allocator),
        .testTarget(name: "NotifierCoreTests", dependencies: ["NotifierCore", "NimbusProtocol"]),
        .testTarget(name: "GatewayServiceTests", dependencies: ["GatewayService", "NimbusRuntime", "SupervisorCore"]),
        .testTarget(name: "NotifierServiceTests", dependencies: ["NotifierService", "MailSink", "NimbusTestSupport"]),
    ] + serviceExecutables.map {
        .executableTarget(name: $0.target, dependencies: ["NimbusRuntime"] + (serviceLibraries[$0.target] ?? []), linkerSettings: allocator)
    }
)

import ArgumentParser
import Foundation
import Logging
import NimbusConfig
import ServiceLifecycle
import Synchronization

/// The flags every node executable takes. With none, a node runs as the single instance of its kind
/// from `nimbus.yaml` in the current folder (or the built-in defaults), so compose or Kubernetes can
/// start it without the supervisor.
public struct NodeOptions: ParsableArguments {
    @Option(help: "Cluster config file (YAML). Default: $NIMBUS_CONFIG, else ./nimbus.yaml if present, else built-in defaults.")
    public var config: String?

    @Option(help: "Instance name, e.g. ingest-worker-2. Default: the kind's first instance.")
    public var name: String?

    @Option(help: "Endpoint to bind instead of the configured one, e.g. tcp://0.0.0.0:7102.")
    public var bind: String?

    @Option(help: "Data directory (logs, state). Default: the config's dataDirectory.")
    public var dataDir: String?

    @Option(help: "Exit when this process is no longer the parent (set by the supervisor).")
    public var parentPid: Int32?

    @Flag(help: "Log to standard error instead of the data directory's log file.")
    public var logStderr = false

    public init() {}

    public func loadCluster() throws -> (ClusterConfig, base: URL) {
        let located = try LocatedConfig.load(config)
        return (located.config, located.base)
    }
}

/// A cluster config and where it came from.
public struct LocatedConfig: Sendable {
    public var config: ClusterConfig
    /// The file, when there is one.
    public var path: String?
    /// The folder relative paths in the config are resolved against.
    public var base: URL
    /// The host (of the config's `hosts:`) this process runs on, when the cluster is spread over hosts.
    public var host: String?

    /// The data directory: the host's own, when a host is set and has one.
    public var dataDirectory: URL { config.dataDirectoryURL(host: host, relativeTo: base) }

    /// The file named by `explicit`, else $NIMBUS_CONFIG, else ./nimbus.yaml if present, else the
    /// built-in defaults.
    public static func load(_ explicit: String?) throws -> LocatedConfig {
        let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
        let path = explicit ?? ProcessInfo.processInfo.environment["NIMBUS_CONFIG"]
            ?? (FileManager.default.fileExists(atPath: "nimbus.yaml") ? "nimbus.yaml" : nil)
        guard let path else { return LocatedConfig(config: ClusterConfig(), path: nil, base: cwd) }
        let url = URL(fileURLWithPath: path, relativeTo: cwd).standardizedFileURL
        return LocatedConfig(config: try ClusterConfig.load(path: url.path), path: url.path, base: url.deletingLastPathComponent())
    }
}

/// Entry point shared by every service executable: parse flags, load config, set up logging, run the
/// node under ServiceLifecycle until SIGTERM/SIGINT.
public enum NodeMain {
    /// `configure` adjusts the configuration before the node is built (e.g. what it signs with).
    public static func run(kind: ServiceKind, configure: (inout NodeConfiguration) throws -> Void = { _ in },
                           service makeService: @Sendable (NodeConfiguration) throws -> any NodeService) async {
        let options = NodeOptions.parseOrExit()
        do {
            let (cluster, base) = try options.loadCluster()
            let name = options.name ?? kind.instanceName(1)
            guard let parsed = ServiceKind.parse(instanceName: name), parsed.kind == kind else {
                throw ConfigError("\(name) is not a name for a \(kind.rawValue) process")
            }
            var configuration = NodeConfiguration(
                cluster: cluster, name: name, kind: kind.rawValue,
                bind: options.bind ?? cluster.bindEndpoint(kind, instance: parsed.index).description,
                dataDirectory: options.dataDir.map { URL(fileURLWithPath: $0) } ?? cluster.dataDirectoryURL(relativeTo: base),
                parentPID: options.parentPid, stackFile: cluster.stackURL(relativeTo: base))
            try configure(&configuration)
            _ = logHandler(configuration, logToStderr: options.logStderr)
            try await run(configuration, service: try makeService(configuration), logToStderr: options.logStderr)
        } catch {
            FileHandle.standardError.write(Data("\(kind.executable): \(error)\n".utf8))
            exit(1)
        }
    }

    /// Runs one node with the given configuration until it is told to stop.
    public static func run(_ configuration: NodeConfiguration, service: any NodeService, logToStderr: Bool = false) async throws {
        let handler = logHandler(configuration, logToStderr: logToStderr)
        var logger = Logger(label: "nimbus.\(configuration.name)") { _ in handler }
        logger.logLevel = .info
        let runtime: NodeRuntime
        do {
            runtime = try NodeRuntime(configuration: configuration, service: service, logger: logger)
        } catch {
            let message = "cannot bind \(configuration.bind ?? "-"): \(error)"
            logger.critical("\(message)")
            throw ConfigError(message)
        }
        let group = ServiceGroup(configuration: .init(
            // A node whose service ends by itself (the supervisor after nimbus:Stop) exits cleanly.
            services: [.init(service: RuntimeService(runtime: runtime), successTerminationBehavior: .gracefullyShutdownGroup)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
    }
}

extension NodeMain {
    private static let installed = Mutex<FileLogHandler?>(nil)

    /// The process's log handler, made and installed once: every Logger in the process, libraries'
    /// included, writes to the node's log file.
    static func logHandler(_ configuration: NodeConfiguration, logToStderr: Bool) -> FileLogHandler {
        installed.withLock { current in
            if let current { return current }
            let logFile = logToStderr ? nil : configuration.logDirectory.appendingPathComponent("\(configuration.name).log")
            let handler = FileLogHandler(node: configuration.name, file: logFile,
                                         maxBytes: Int64(configuration.cluster.storage.logMaxMB) * 1_048_576)
            LoggingSystem.bootstrap { _ in handler }
            current = handler
            return handler
        }
    }
}

/// Adapts the runtime to ServiceLifecycle.
struct RuntimeService: Service {
    let runtime: NodeRuntime
    func run() async throws { await runtime.run() }
}

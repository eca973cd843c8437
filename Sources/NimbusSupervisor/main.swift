import ArgumentParser
import Foundation
import NimbusRuntime

/// The node flags, and the host this supervisor runs on when the cluster is spread over hosts.
struct SupervisorOptions: ParsableArguments {
    @OptionGroup var node: NodeOptions

    @Option(help: "The host (of the config's hosts:) this supervisor runs on: it manages the processes placed there.")
    var host: String?
}

// The supervisor is a node like the others (health, logs, lifecycle); its service is the process tree.
let parsed = SupervisorOptions.parseOrExit()
let options = parsed.node
do {
    let located = try LocatedConfig.load(options.config)
    let cluster = located.config
    let host = parsed.host
    if let host, cluster.hosts[host] == nil {
        throw ConfigError("--host \(host): the config declares no such host" + (cluster.isMultiHost ? " (hosts: \(cluster.hostNames.joined(separator: ", ")))" : ""))
    }
    let dataDirectory = options.dataDir.map { URL(fileURLWithPath: $0) } ?? cluster.dataDirectoryURL(host: host, relativeTo: located.base)
    var configuration = NodeConfiguration(
        cluster: cluster, name: cluster.supervisorName(host: host), kind: "supervisor",
        bind: options.bind ?? cluster.supervisorBindEndpoint(host: host).description,
        dataDirectory: dataDirectory)
    // The supervisor acts as the account's administrator: the root credentials the IAM node creates.
    if cluster.iam.enforce {
        configuration.credentials = CredentialSource(file: CredentialSource.file(dataDirectory: dataDirectory, name: "root"))
        configuration.platformCredentials = configuration.credentials
    }
    // Spread over hosts with CURVE on, this supervisor's key pair is derived from the root's secret,
    // so the other hosts' supervisors and CLIs know it without a copy (ClusterKeys).
    if ClusterKeys.distributes(cluster) {
        let root = CredentialSource.file(dataDirectory: dataDirectory, name: "root")
        guard let secret = CredentialSource(file: root).current()?.secretAccessKey else {
            throw ConfigError("no root credentials at \(root.path): spread over hosts with CURVE on, every host's supervisor needs them "
                + "(nimbus up writes them on the iam host; copy that file to the others)")
        }
        configuration.curveRootSecret = secret
    }
    let binDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    let pidFile = dataDirectory.appendingPathComponent("supervisor.pid")
    try FileManager.default.createDirectory(at: dataDirectory.appendingPathComponent("logs"), withIntermediateDirectories: true)
    try Data("\(getpid())\n".utf8).write(to: pidFile)
    defer { try? FileManager.default.removeItem(at: pidFile) }
    let shell = SupervisorShell(config: cluster, host: host, binDirectory: binDirectory, configPath: located.path, dataDirectory: dataDirectory)
    let control = cluster.iam.enforce
        ? ControlAuthenticator(root: CredentialSource(file: CredentialSource.file(dataDirectory: dataDirectory, name: "root")),
                               skewSeconds: cluster.iam.signatureSkewSeconds)
        : nil
    try await NodeMain.run(configuration, service: SupervisorService(shell: shell, control: control), logToStderr: options.logStderr)
} catch {
    FileHandle.standardError.write(Data("nimbus-supervisor: \(error)\n".utf8))
    exit(1)
}

import Foundation
import NimbusRuntime

// The supervisor is a node like the others (health, logs, lifecycle); its service is the process tree.
let options = NodeOptions.parseOrExit()
do {
    let located = try LocatedConfig.load(options.config)
    let cluster = located.config
    let dataDirectory = options.dataDir.map { URL(fileURLWithPath: $0) } ?? located.dataDirectory
    var configuration = NodeConfiguration(
        cluster: cluster, name: "supervisor", kind: "supervisor",
        bind: options.bind ?? (cluster.supervisor.bind ?? cluster.supervisor.endpoint).description,
        dataDirectory: dataDirectory)
    // The supervisor acts as the account's administrator: the root credentials the IAM node creates.
    if cluster.iam.enforce {
        configuration.credentials = CredentialSource(file: CredentialSource.file(dataDirectory: dataDirectory, name: "root"))
        configuration.platformCredentials = configuration.credentials
    }
    let binDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    let pidFile = dataDirectory.appendingPathComponent("supervisor.pid")
    try FileManager.default.createDirectory(at: dataDirectory.appendingPathComponent("logs"), withIntermediateDirectories: true)
    try Data("\(getpid())\n".utf8).write(to: pidFile)
    defer { try? FileManager.default.removeItem(at: pidFile) }
    let shell = SupervisorShell(config: cluster, binDirectory: binDirectory, configPath: located.path, dataDirectory: dataDirectory)
    let control = cluster.iam.enforce
        ? ControlAuthenticator(root: CredentialSource(file: CredentialSource.file(dataDirectory: dataDirectory, name: "root")),
                               skewSeconds: cluster.iam.signatureSkewSeconds)
        : nil
    try await NodeMain.run(configuration, service: SupervisorService(shell: shell, control: control), logToStderr: options.logStderr)
} catch {
    FileHandle.standardError.write(Data("nimbus-supervisor: \(error)\n".utf8))
    exit(1)
}

import ArgumentParser
import Foundation
import NimbusRuntime
import SupervisorCore

@main
struct NimbusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nimbus",
        abstract: "Run and inspect a Nimbus cluster (the lab's serverless order pipeline as processes).",
        subcommands: [Up.self, Down.self, Status.self, Logs.self, Scale.self, Kill.self, Restart.self, Health.self,
                      Invoke.self, Items.self, Subscribe.self, Subscriptions.self, Load.self, Chaos.self, Verify.self])
}

/// Options every subcommand shares.
struct ClusterOptions: ParsableArguments {
    @Option(help: "Cluster config file. Default: $NIMBUS_CONFIG, else ./nimbus.yaml, else built-in defaults.")
    var config: String?

    @Option(help: ArgumentHelp("The host this is, when the config spreads the cluster over hosts (default: $NIMBUS_HOST).",
                               discussion: "Its data directory holds the credentials, logs and load records the command uses; up and down act on its supervisor."))
    var host: String?

    @Option(name: .customLong("data-dir"), help: "Data directory instead of the config's (or the host's).")
    var dataDir: String?

    func load() throws -> LocatedConfig {
        var located: LocatedConfig
        do { located = try LocatedConfig.load(config) } catch { throw CLIError("\(error)") }
        let host = self.host ?? ProcessInfo.processInfo.environment["NIMBUS_HOST"].flatMap { $0.isEmpty ? nil : $0 }
        if let host {
            guard located.config.hosts[host] != nil else {
                throw CLIError(located.config.isMultiHost
                    ? "--host \(host): the config declares no such host (hosts: \(located.config.hostNames.joined(separator: ", ")))"
                    : "--host \(host): the config declares no hosts (a hosts: section spreads the cluster over machines)")
            }
            located.host = host
        }
        if let dataDir {
            let path = URL(fileURLWithPath: dataDir, relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath)).standardizedFileURL.path
            located.config.dataDirectory = path
            if let host = located.host { located.config.hosts[host]?.dataDirectory = path }
        }
        return located
    }
}

/// A one-line error for the user; the command exits 1.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

extension ParsableCommand {
    /// Prints `nimbus: message` and exits 1: every failure the user can meet is one clear line.
    static func fail(_ error: Error) -> Never {
        FileHandle.standardError.write(Data("nimbus: \(error)\n".utf8))
        Foundation.exit(1)
    }
}

/// Talks to the supervisor's control socket: the one supervisor, or, with the cluster spread over
/// hosts, each host's (MultiHost.swift).
struct Control {
    let located: LocatedConfig
    let client: NimbusClient

    init(_ located: LocatedConfig) throws {
        self.located = located
        client = try NimbusClient.standalone(name: located.cliName, cluster: located.config,
                                                credentials: CredentialSource(file: CredentialSource.file(dataDirectory: located.dataDirectory, name: "root")))
    }

    /// This host's supervisor (the only one without hosts).
    var endpoint: String { endpoint(host: located.host) }

    func endpoint(host: String?) -> String { located.config.supervisorEndpoint(host: host).description }

    /// A control action at `host`'s supervisor (default: this host's).
    func call(_ action: String, _ body: some Encodable = [String: String](), host: String? = nil, timeout: Duration = .seconds(2),
              attempts: Int = 2) async throws -> Data {
        try await client.request(action, to: endpoint(host: host ?? located.host), body: try JSONEncoder().encode(body),
                                 timeout: timeout, attempts: attempts)
    }

    /// The supervisor's status, or nil when nothing answers on the control socket. Spread over
    /// hosts, every host's supervisor is asked and the processes of those that answer are merged
    /// (`cluster()` says which hosts did not).
    func status(timeout: Duration = .milliseconds(700)) async -> StatusReply? {
        guard located.config.isMultiHost else { return await status(host: nil, timeout: timeout) }
        return await cluster().merged
    }

    /// One host's supervisor's status (nil: this host's), or nil when it does not answer.
    func status(host: String?, timeout: Duration = .milliseconds(700), attempts: Int = 1) async -> StatusReply? {
        guard let data = try? await call(NimbusAction.status, host: host, timeout: timeout, attempts: attempts) else { return nil }
        return try? JSONDecoder().decode(StatusReply.self, from: data)
    }

    func requireStatus() async throws -> StatusReply {
        guard let status = await status() else {
            let endpoints = located.config.isMultiHost
                ? located.config.supervisedHosts.map { endpoint(host: $0) }.joined(separator: ", ") : endpoint
            throw CLIError("Nimbus is not running (no supervisor answers on \(endpoints)); start it with ./Scripts/cluster up")
        }
        return status
    }

    var pidFile: URL { located.dataDirectory.appendingPathComponent("supervisor.pid") }
    var logDirectory: URL { located.dataDirectory.appendingPathComponent("logs") }

    /// The supervisor pid from its pid file, when that process is alive.
    func livePIDFromFile() -> Int32? {
        guard let text = try? String(contentsOf: pidFile, encoding: .utf8),
              let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)), ProcessSpawner.isAlive(pid) else { return nil }
        return pid
    }
}

/// Waits, polling `condition` every `every`, for at most `timeout`; true when it held.
func waitFor(_ timeout: Duration, every: Duration = .milliseconds(200), _ condition: () async -> Bool) async -> Bool {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if await condition() { return true }
        try? await Task.sleep(for: every)
    }
    return await condition()
}

func tail(_ file: URL, lines: Int) -> String {
    guard let text = try? String(contentsOf: file, encoding: .utf8) else { return "" }
    return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines + 1).joined(separator: "\n")
}

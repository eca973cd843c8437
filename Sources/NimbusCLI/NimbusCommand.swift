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

    func load() throws -> LocatedConfig {
        do { return try LocatedConfig.load(config) } catch { throw CLIError("\(error)") }
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

/// Talks to the supervisor's control socket.
struct Control {
    let located: LocatedConfig
    let client: NimbusClient

    init(_ located: LocatedConfig) throws {
        self.located = located
        client = try NimbusClient.standalone(name: "nimbus-cli", cluster: located.config,
                                                credentials: CredentialSource(file: CredentialSource.file(dataDirectory: located.dataDirectory, name: "root")))
    }

    var endpoint: String { located.config.supervisor.endpoint.description }

    func call(_ action: String, _ body: some Encodable = [String: String](), timeout: Duration = .seconds(2), attempts: Int = 2) async throws -> Data {
        try await client.request(action, to: endpoint, body: try JSONEncoder().encode(body), timeout: timeout, attempts: attempts)
    }

    /// The supervisor's status, or nil when nothing answers on the control socket.
    func status(timeout: Duration = .milliseconds(700)) async -> StatusReply? {
        guard let data = try? await call(NimbusAction.status, timeout: timeout, attempts: 1) else { return nil }
        return try? JSONDecoder().decode(StatusReply.self, from: data)
    }

    func requireStatus() async throws -> StatusReply {
        guard let status = await status() else {
            throw CLIError("Nimbus is not running (no supervisor answers on \(endpoint)); start it with ./Scripts/cluster up")
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

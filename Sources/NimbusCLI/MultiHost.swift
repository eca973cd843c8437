import Foundation
import NimbusAuth
import NimbusRuntime
import SupervisorCore

/// The whole cluster's status when it is spread over hosts: every host's supervisor asked at once,
/// each within a bound, and which did not answer.
struct ClusterStatus: Encodable {
    struct Host: Encodable {
        var name: String
        var address: String
        var supervisor: String
        var answered: Bool
        var supervisorPID: Int32?
        var incarnation: String?
        var stopping: Bool?
        /// Why there is no answer.
        var error: String?
    }

    var hosts: [Host]
    var processes: [ProcessStatus]

    /// The answering hosts' processes as one status (the first answering supervisor's pid).
    var merged: StatusReply? {
        guard let first = hosts.first(where: \.answered) else { return nil }
        return StatusReply(supervisorPID: first.supervisorPID ?? 0, incarnation: first.incarnation ?? "",
                           stopping: hosts.contains { $0.stopping == true }, processes: processes)
    }

    var unanswered: [Host] { hosts.filter { !$0.answered } }
}

extension Control {
    /// How long one host's supervisor gets per attempt, and the attempts (the second on a fresh
    /// connection): a host behind a slow or lossy link still answers, a cut-off one costs 2 s at most.
    static let hostTimeout = Duration.seconds(1)
    static let hostAttempts = 2

    /// Every supervised host's status, asked in parallel (a config without hosts: the one supervisor,
    /// named by its endpoint's host).
    func cluster() async -> ClusterStatus {
        let config = located.config
        guard config.isMultiHost else {
            let reply = await status(host: nil)
            let endpoint = config.supervisor.endpoint
            return ClusterStatus(hosts: [.init(name: endpoint.host, address: endpoint.host, supervisor: endpoint.description,
                                               answered: reply != nil, supervisorPID: reply?.supervisorPID, incarnation: reply?.incarnation,
                                               stopping: reply?.stopping, error: reply == nil ? "no answer" : nil)],
                                 processes: reply?.processes ?? [])
        }
        let hosts = config.supervisedHosts
        let replies = await withTaskGroup(of: (String, StatusReply?).self) { group in
            for host in hosts {
                group.addTask { (host, await self.status(host: host, timeout: Self.hostTimeout, attempts: Self.hostAttempts)) }
            }
            var all: [String: StatusReply?] = [:]
            for await (host, reply) in group { all[host] = reply }
            return all
        }
        var result = ClusterStatus(hosts: [], processes: [])
        for host in hosts {
            let reply = replies[host] ?? nil
            let endpoint = endpoint(host: host)
            let seconds = Double(Self.hostTimeout.components.seconds) * Double(Self.hostAttempts)
            result.hosts.append(.init(name: host, address: config.hosts[host]?.address ?? "?", supervisor: endpoint,
                                      answered: reply != nil, supervisorPID: reply?.supervisorPID, incarnation: reply?.incarnation,
                                      stopping: reply?.stopping,
                                      error: reply == nil ? "its supervisor does not answer on \(endpoint) (\(Self.hostAttempts) tries in \(Int(seconds)) s)" : nil))
            for var process in reply?.processes ?? [] {
                process.host = process.host ?? host
                result.processes.append(process)
            }
        }
        return result
    }

    /// Asks every supervised host's supervisor to stop, in parallel; returns the hosts that did not take it.
    func stopEveryHost() async -> [String] {
        await withTaskGroup(of: String?.self) { group in
            for host in located.config.supervisedHosts {
                group.addTask {
                    (try? await self.call(NimbusAction.stop, host: host, timeout: Self.hostTimeout, attempts: Self.hostAttempts)) == nil ? host : nil
                }
            }
            var refused: [String] = []
            for await host in group { if let host { refused.append(host) } }
            return refused.sorted()
        }
    }
}

enum ClusterStatusTable {
    /// `status` spread over hosts: a HOST column, each host's supervisor first, and a row saying so
    /// for a host whose supervisor does not answer.
    static func render(_ status: ClusterStatus) -> String {
        var rows = [["HOST"] + StatusTable.columns]
        for host in status.hosts {
            guard host.answered else {
                rows.append([host.name, "supervisor", "-", "-", "-", "-", "-", "NOT ANSWERING: \(host.error ?? "no answer")"])
                continue
            }
            rows.append([host.name, "supervisor", host.supervisorPID.map(String.init) ?? "-", "-", "-", "-",
                         String((host.incarnation ?? "-").prefix(8)), host.stopping == true ? "stopping" : "running"])
            for p in status.processes where p.host == host.name { rows.append([host.name] + StatusTable.row(p)) }
        }
        return StatusTable.layout(rows)
    }
}

extension Control {
    /// The host whose supervisor runs the process or kind `name` (nil without hosts, or for a name
    /// the config does not place: this host's supervisor then answers for it).
    func hostOf(_ name: String) -> String? {
        let config = located.config
        guard config.isMultiHost else { return nil }
        return config.host(ofProcess: name) ?? ServiceKind(rawValue: name).flatMap { config.host(of: $0) }
    }

    /// `nimbus status` over hosts: the table with a HOST column, or JSON with `hosts` and each
    /// process's `host`. Fails only when no supervisor answers at all.
    func printClusterStatus(json: Bool) async throws {
        let status = await cluster()
        guard status.hosts.contains(where: \.answered) else { _ = try await requireStatus(); return }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(status), as: UTF8.self))
        } else {
            print(ClusterStatusTable.render(status))
        }
        await client.close()
    }

    /// `nimbus down` over hosts without --host: Stop to every host's supervisor, then wait until
    /// none answers. Leftover processes on a host are that host's `nimbus down --host NAME` to reap.
    func downEveryHost() async throws {
        let before = await cluster()
        let running = before.hosts.filter(\.answered).map(\.name)
        guard !running.isEmpty else {
            print("nimbus: not running (no host's supervisor answers)")
            return
        }
        let refused = await stopEveryHost().filter(running.contains)
        let grace = Duration.seconds(located.config.supervisor.stopTimeoutSeconds + 10)
        let stopped = await waitFor(grace, every: .milliseconds(500)) { await self.cluster().hosts.allSatisfy { !$0.answered } }
        await client.close()
        if !refused.isEmpty { throw CLIError("the supervisors of \(refused.joined(separator: ", ")) did not take the stop (root credentials missing there?)") }
        if !stopped { throw CLIError("some host's supervisor still answers after \(grace); run nimbus down --host NAME on it") }
        print("nimbus: stopped every host (\(running.joined(separator: ", ")))")
    }
}

/// `nimbus up --host NAME`: one host's share of a cluster spread over hosts.
enum UpOnHost {
    /// Spread over hosts, `up` starts one host's supervisor, so it must know which host this is.
    static func check(_ located: LocatedConfig) throws {
        let config = located.config
        guard config.isMultiHost, located.host == nil else { return }
        throw CLIError("the config spreads the cluster over hosts (\(config.hostNames.joined(separator: ", "))): "
            + "say which one this is with --host NAME (or NIMBUS_HOST), and run up on each")
    }

    /// On the iam host of a spread cluster, the account root's credentials are made here, before
    /// the supervisor starts (the iam node adopts them), rather than by the iam node: the supervisor's
    /// and this CLI's CURVE keys are derived from them (ClusterKeys), and they must not change later.
    static func ensureRootCredentials(_ located: LocatedConfig) throws {
        let config = located.config
        guard config.iam.enforce, let iamHost = config.host(of: .iam), iamHost == located.host else { return }
        let file = CredentialSource.file(dataDirectory: located.dataDirectory, name: "root")
        if FileManager.default.fileExists(atPath: file.path) { return }
        try CredentialSource.write(Credentials.newAccountRoot(account: config.account), to: file)
    }

    /// With IAM enforced, a host without the iam node needs the account root's credentials the iam
    /// node wrote on its own host (`credentials/root.json` in that host's data directory): its
    /// supervisor signs with them to obtain its processes' credentials. An operator copies the
    /// file over, as one copies a kubeconfig; this waits for it to appear.
    static func waitForRootCredentials(_ located: LocatedConfig, timeout: Duration) async throws {
        let config = located.config
        guard config.iam.enforce, let iamHost = config.host(of: .iam), iamHost != located.host else { return }
        let file = CredentialSource.file(dataDirectory: located.dataDirectory, name: "root")
        if FileManager.default.fileExists(atPath: file.path) { return }
        print("nimbus: waiting for \(file.path): copy credentials/root.json from the data directory of host \(iamHost) "
              + "(where iam runs) to it, mode 0600")
        let appeared = await waitFor(timeout, every: .milliseconds(200)) { FileManager.default.fileExists(atPath: file.path) }
        guard appeared else {
            throw CLIError("no root credentials at \(file.path) after \(timeout): copy credentials/root.json from host \(iamHost)'s data directory "
                + "(\(config.dataDirectoryURL(host: iamHost, relativeTo: located.base).path) there) and run up again")
        }
    }
}

extension LocatedConfig {
    var cliName: String { config.cliName(host: host) }
}

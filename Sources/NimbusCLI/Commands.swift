import ArgumentParser
import Foundation
import NimbusRuntime
import SupervisorCore

struct Down: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Stop every process (highest tier first) and the supervisor.")

    @OptionGroup var cluster: ClusterOptions

    func run() async throws {
        do { try await down() } catch { Self.fail(error) }
    }

    private func down() async throws {
        let located = try cluster.load()
        let control = try Control(located)
        // Spread over hosts, without --host: every host's supervisor is asked to stop.
        if located.config.isMultiHost && located.host == nil { return try await control.downEveryHost() }
        let status = await control.status(host: nil)
        guard let supervisorPID = status?.supervisorPID ?? control.livePIDFromFile() else {
            print("nimbus: not running (nothing to stop)")
            return
        }
        let children = status?.processes.compactMap(\.pid) ?? []
        // SIGTERM when the control socket does not answer or refuses (no root credentials yet): a
        // user who may signal the supervisor may stop it.
        var asked = false
        if status != nil { asked = (try? await control.call(NimbusAction.stop, attempts: 1)) != nil }
        if !asked { kill(supervisorPID, SIGTERM) }
        let grace = Duration.seconds(located.config.supervisor.stopTimeoutSeconds + 10)
        let stopped = await waitFor(grace) { !ProcessSpawner.isAlive(supervisorPID) }
        if !stopped {
            kill(supervisorPID, SIGKILL)
            print("nimbus: the supervisor did not stop within \(grace): killed it")
        }
        let leftovers = children.filter(ProcessSpawner.isAlive)
        if !(await waitFor(.seconds(5)) { children.allSatisfy { !ProcessSpawner.isAlive($0) } }) {
            for pid in leftovers { kill(pid, SIGKILL) }
            print("nimbus: killed processes that outlived the supervisor: \(leftovers.map(String.init).joined(separator: ", "))")
        }
        print("nimbus: stopped (supervisor pid \(supervisorPID) and \(children.count) processes)")
        await control.client.close()
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show every process: pid, state, restarts, last heartbeat, incarnation.")

    @OptionGroup var cluster: ClusterOptions

    @Flag(help: "Print the supervisor's status as JSON.")
    var json = false

    func run() async throws {
        do {
            let control = try Control(try cluster.load())
            if control.located.config.isMultiHost { return try await control.printClusterStatus(json: json) }
            let status = try await control.requireStatus()
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(status), as: UTF8.self))
            } else {
                print(StatusTable.render(status))
            }
            await control.client.close()
        } catch { Self.fail(error) }
    }
}

struct Scale: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Set the number of instances of a worker kind, e.g. ingest-worker=3.")

    @OptionGroup var cluster: ClusterOptions

    @Argument(help: "KIND=N, where KIND is ingest-worker or stream-worker.")
    var assignment: String

    func run() async throws {
        do {
            let parts = assignment.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let count = Int(parts[1]) else { throw CLIError("expected KIND=N, e.g. ingest-worker=3, not \"\(assignment)\"") }
            let control = try Control(try cluster.load())
            _ = try await control.requireStatus()
            _ = try await control.call(NimbusAction.scale, ScaleRequest(kind: parts[0], count: count), host: control.hostOf(parts[0]))
            print("nimbus: \(parts[0]) scaled to \(count)")
            await control.client.close()
        } catch { Self.fail(error) }
    }
}

struct Kill: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "SIGKILL one process (chaos testing); the supervisor restarts it.")

    @OptionGroup var cluster: ClusterOptions

    @Argument(help: "Process name, e.g. queue or ingest-worker-2.")
    var name: String

    func run() async throws {
        do {
            let control = try Control(try cluster.load())
            _ = try await control.requireStatus()
            let reply = try JSONDecoder().decode(KillReply.self, from: try await control.call(NimbusAction.kill, KillRequest(name: name), host: control.hostOf(name)))
            print("nimbus: killed \(reply.name)" + (reply.pid.map { " (pid \($0))" } ?? ""))
            await control.client.close()
        } catch { Self.fail(error) }
    }
}

struct Restart: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Restart a process, or every process of a kind, at once (SIGTERM, then started again), its backoff reset.")

    @OptionGroup var cluster: ClusterOptions

    @Argument(help: "Process name or kind, e.g. iam, ingest-worker-2 or ingest-worker.")
    var name: String

    func run() async throws {
        do {
            let control = try Control(try cluster.load())
            _ = try await control.requireStatus()
            let reply = try JSONDecoder().decode(RestartReply.self, from: try await control.call(NimbusAction.restart, RestartRequest(name: name), host: control.hostOf(name)))
            print("nimbus: restarting \(reply.restarting.joined(separator: ", "))")
            await control.client.close()
        } catch { Self.fail(error) }
    }
}

struct Health: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ask one process for its health report (JSON), or, with --live / --ready, answer as a probe by exit status.")

    @OptionGroup var cluster: ClusterOptions

    @Argument(help: "Process name (queue, ingest-worker-2, supervisor); with --endpoint also a worker kind (ingest-worker).")
    var name: String

    @Flag(help: "Probe: exit 0 when the process answers its health request, 1 otherwise.")
    var live = false

    @Flag(help: "Probe: exit 0 only when the process answers ready; otherwise print why not and exit 1.")
    var ready = false

    @Option(help: "Ask the process at this endpoint (tcp://HOST:PORT) instead of the config's, e.g. tcp://127.0.0.1:7102 inside its pod.")
    var endpoint: String?

    func validate() throws {
        if live && ready { throw ValidationError("--live and --ready are separate probes: give one") }
    }

    func run() async throws {
        do {
            let located = try cluster.load()
            let parsed = ServiceKind.parse(instanceName: name)
            // With --endpoint the name only says what should answer there; a worker kind stands for
            // whichever instance it is (a probe in a pod cannot know its ordinal).
            let kind = parsed?.kind ?? (endpoint != nil ? ServiceKind(rawValue: name) : nil)
            let target: String
            if let endpoint {
                do { target = try Endpoint(endpoint).description } catch { throw CLIError("--endpoint: \(error)") }
            } else if name == "supervisor" {
                target = located.config.supervisorEndpoint(host: located.host).description
            } else if let (kind, index) = parsed {
                target = located.config.endpoint(kind, instance: index).description
            } else {
                throw CLIError("\(name) is not a process name")
            }
            guard name == "supervisor" || kind != nil else { throw CLIError("\(name) is not a process name") }
            // At an endpoint the config does not list, the name says whose CURVE key to expect (a
            // probe in a pod finds the process's own public key in the data directory they share).
            let peers = endpoint != nil && (parsed != nil || name == "supervisor") ? [target: name] : [:]
            let client = try NimbusClient.standalone(name: located.cliName, cluster: located.config,
                                                credentials: CredentialSource(file: CredentialSource.file(dataDirectory: located.dataDirectory, name: "root")),
                                                curvePeers: peers)
            let data: Data
            do {
                data = try await client.request(NimbusAction.health, to: target, timeout: .seconds(1), attempts: 2)
            } catch {
                await client.close()
                throw CLIError("\(name) does not answer on \(target): \(error)")
            }
            await client.close()
            guard live || ready else {
                print(String(decoding: data, as: UTF8.self))
                return
            }
            guard let report = try? JSONDecoder().decode(HealthReport.self, from: data) else {
                throw CLIError("\(name) on \(target) answered something that is not a health report")
            }
            // A probe must not pass on another process's answer (a wrong port in a manifest).
            let expectedKind = kind?.rawValue ?? "supervisor"
            if report.kind != expectedKind || (parsed != nil && report.name != name) {
                throw CLIError("\(target) is \(report.name), not \(name)")
            }
            if ready && report.ready != true {
                throw CLIError("\(report.name) is not ready: \(report.notReady ?? "no readiness reported")")
            }
            print("\(report.name): \(ready ? "ready" : "live")")
        } catch { Self.fail(error) }
    }
}

struct Logs: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show a process's log (default: the supervisor's).")

    @OptionGroup var cluster: ClusterOptions

    @Argument(help: "Process name, e.g. queue or ingest-worker-1.")
    var name: String = "supervisor"

    @Flag(name: .shortAndLong, help: "Keep following the log.")
    var follow = false

    @Option(name: .customShort("n"), help: "Lines to show.")
    var lines: Int = 50

    func run() throws {
        do {
            let located = try cluster.load()
            let directory = located.dataDirectory.appendingPathComponent("logs")
            // On a host of a spread cluster the supervisor's log is supervisor-HOST.log.
            let name = self.name == "supervisor" ? located.config.supervisorName(host: located.host) : self.name
            let file = directory.appendingPathComponent("\(name).log")
            guard FileManager.default.fileExists(atPath: file.path) else {
                let known = ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [])
                    .filter { $0.hasSuffix(".log") }.map { String($0.dropLast(4)) }.sorted()
                throw CLIError("no log for \(name) in \(directory.path)" + (known.isEmpty ? "" : " (logs: \(known.joined(separator: ", ")))"))
            }
            if follow {
                let arguments: [String] = ["tail", "-n", "\(lines)", "-F", file.path]
                let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
                execv("/usr/bin/tail", argv)
                throw CLIError("cannot run tail: \(String(cString: strerror(errno)))")
            }
            print(tail(file, lines: lines), terminator: "")
        } catch { Self.fail(error) }
    }
}

enum StatusTable {
    static let columns = ["NAME", "PID", "RESTARTS", "HEARTBEAT", "UPTIME", "INCARNATION", "STATE"]

    static func render(_ status: StatusReply) -> String {
        var rows = [columns]
        rows.append(["supervisor", "\(status.supervisorPID)", "-", "-", "-", String(status.incarnation.prefix(8)), status.stopping ? "stopping" : "running"])
        rows += status.processes.map(row)
        return layout(rows)
    }

    /// One process's cells, in `columns`' order.
    static func row(_ p: ProcessStatus) -> [String] {
        [
            p.name, p.pid.map(String.init) ?? "-", "\(p.restarts)",
            p.lastHeartbeatMillisecondsAgo.map { "\($0) ms ago" } ?? "-",
            p.uptimeSeconds.map { duration($0) } ?? "-",
            p.incarnation.map { String($0.prefix(8)) } ?? "-",
            p.stateDescription,
        ]
    }

    /// Rows as aligned columns, the first row the heading.
    static func layout(_ rows: [[String]]) -> String {
        let widths = (0..<rows[0].count).map { column in rows.map { $0[column].count }.max()! }
        return rows.map { row in
            zip(row, widths).map { $0.padding(toLength: $1, withPad: " ", startingAt: 0) }.joined(separator: "  ")
                .trimmingCharacters(in: .whitespaces)
        }.joined(separator: "\n")
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds)
        if s < 60 { return "\(s)s" }
        if s < 3600 { return "\(s / 60)m\(s % 60)s" }
        return "\(s / 3600)h\(s % 3600 / 60)m"
    }
}

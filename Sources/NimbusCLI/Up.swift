import ArgumentParser
import Foundation
import NimbusRuntime
import SupervisorCore

struct Up: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start the supervisor in the background and wait until every process is healthy.")

    @OptionGroup var cluster: ClusterOptions

    @Option(help: "Seconds to wait for every process to become healthy.")
    var timeout: Double = 60

    func run() async throws {
        do { try await up() } catch { Self.fail(error) }
    }

    private func up() async throws {
        let located = try cluster.load()
        try UpOnHost.check(located)
        // Before any client is made: spread over hosts, the CLI's CURVE key comes from them.
        if located.host != nil {
            try UpOnHost.ensureRootCredentials(located)
            try await UpOnHost.waitForRootCredentials(located, timeout: .seconds(timeout))
        }
        let control = try Control(located)
        if let status = await control.status(host: nil) {
            throw CLIError("Nimbus is already running (supervisor pid \(status.supervisorPID) on \(control.endpoint)); stop it with ./Scripts/cluster down")
        }
        if let pid = control.livePIDFromFile() {
            throw CLIError("a supervisor (pid \(pid)) is running but does not answer on \(control.endpoint); stop it with ./Scripts/cluster down")
        }
        for (owner, endpoint) in located.config.boundEndpoints(on: located.host) where !PortProbe.isFree(endpoint) {
            throw CLIError("port \(endpoint.port ?? 0) is in use (needed by \(owner) at \(endpoint)); free it or change nimbus.yaml")
        }
        let binDirectory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        let supervisor = binDirectory.appendingPathComponent("nimbus-supervisor").path
        guard FileManager.default.isExecutableFile(atPath: supervisor) else {
            throw CLIError("\(supervisor) is missing: build first (./Scripts/cluster up builds it)")
        }
        try FileManager.default.createDirectory(at: control.logDirectory, withIntermediateDirectories: true)
        // The web console's bearer token (docs/console.md): made once, kept across restarts.
        let consoleToken = located.config.console.enabled ? try ConsoleToken.ensure(ConsoleToken.file(dataDirectory: located.dataDirectory)) : nil
        let supervisorLog = control.logDirectory.appendingPathComponent("\(located.config.supervisorName(host: located.host)).log")
        var arguments = ["--data-dir", located.dataDirectory.path]
        if let path = located.path { arguments += ["--config", path] }
        if let host = located.host {
            arguments += ["--host", host]
        }
        let pid = try ProcessSpawner.spawn(supervisor, arguments, logFile: supervisorLog.path, newSession: true)
        // We are its parent until we exit; reap it if it dies while we wait.
        let exitStatus = ExitBox()
        ProcessSpawner.onExit(of: pid) { exitStatus.set($0) }
        print("nimbus: supervisor started (pid \(pid)); waiting for the processes to become healthy")

        let expected = located.config.kinds(on: located.host).reduce(0) { $0 + located.config.instances($1) }
        var lastLine = ""
        var final: StatusReply?
        let healthy = await waitFor(.seconds(timeout), every: .milliseconds(250)) {
            if exitStatus.value != nil { return true }
            guard let status = await control.status(host: nil) else { return false }
            final = status
            let running = status.processes.filter { $0.state == "running" }
            let line = "  \(running.count)/\(expected) healthy" + (running.count < expected
                ? ": waiting for " + status.processes.filter { $0.state != "running" }.map(\.name).joined(separator: ", ") : "")
            if line != lastLine { print(line); lastLine = line }
            if let failed = status.processes.first(where: { $0.state == "failed" }) {
                exitStatus.set("\(failed.name) failed")
                return true
            }
            return running.count == expected && status.processes.count == expected
        }
        if let how = exitStatus.value {
            if how.hasSuffix(" failed"), let failed = final?.processes.first(where: { $0.state == "failed" }) {
                let log = control.logDirectory.appendingPathComponent("\(failed.name).log")
                throw CLIError("\(failed.name) will not start (\(failed.lastExit ?? "no heartbeat")); last lines of \(log.path):\n\(tail(log, lines: 15))")
            }
            throw CLIError("the supervisor exited (\(how)); last lines of \(supervisorLog.path):\n\(tail(supervisorLog, lines: 15))")
        }
        guard healthy, let status = final else {
            throw CLIError("not every process became healthy within \(Int(timeout)) s; see ./Scripts/cluster status and the logs in \(control.logDirectory.path)")
        }
        print("")
        print(StatusTable.render(status))
        print("")
        print("control socket: \(control.endpoint)")
        for kind in located.config.kinds(on: located.host) where located.config.instances(kind) > 0 {
            print("  \(kind.rawValue.padding(toLength: 14, withPad: " ", startingAt: 0)) \(located.config.endpoint(kind))  (\(kind.labName))")
        }
        print("logs: \(control.logDirectory.path)   data: \(located.dataDirectory.path)")
        let config = located.config
        print("REST API (POC-API): POST http://\(config.gateway.http)/  (or /orders)")
        if let consoleToken {
            print("console: \(Self.consoleURL(config, token: consoleToken))")
        }
        if config.instances(.edge) > 0, located.host == nil || config.host(of: .edge) == located.host {
            let keys = CredentialSource.file(dataDirectory: located.dataDirectory, name: "root").path
            print("AWS endpoint: http://\(config.edge.http)  (awscli/boto3 with the keys in \(keys); docs/aws-endpoint.md)")
        }
        if config.instances(.mailSink) > 0 {
            let mail = config.mailSinkDirectoryURL(relativeTo: located.base).path
            print("mail: SMTP sink on \(config.notifier.smtpHost):\(config.notifier.smtpPort), a mailbox (mbox) per recipient in \(mail)")
        } else {
            print("mail: through \(config.notifier.smtpHost):\(config.notifier.smtpPort)")
        }
        await control.client.close()
    }
}

extension Up {
    /// The console's address with the token in its fragment (never sent to the server; the page
    /// moves it to sessionStorage). A wildcard listen address is shown as 127.0.0.1.
    static func consoleURL(_ config: ClusterConfig, token: String) -> String {
        var host = String(config.gateway.http.split(separator: ":").first ?? "127.0.0.1")
        let port = config.gateway.http.split(separator: ":").last.map(String.init) ?? "8080"
        if host == "0.0.0.0" || host == "*" || host.isEmpty { host = "127.0.0.1" }
        return "http://\(host):\(port)\(config.console.path)#token=\(token)"
    }
}

/// The supervisor's exit status, set from its reaper thread.
final class ExitBox: @unchecked Sendable {
    private let lock = NSLock()
    private var status: String?
    func set(_ value: String) { lock.withLock { if status == nil { status = value } } }
    var value: String? { lock.withLock { status } }
}

/// Checks a TCP port is free by binding it (with SO_REUSEADDR, as libzmq does).
enum PortProbe {
    static func isFree(_ endpoint: Endpoint) -> Bool {
        guard endpoint.scheme == "tcp", let port = endpoint.port else { return true }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return true }
        defer { close(fd) }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        let host = endpoint.host == "*" || endpoint.host == "localhost" ? (endpoint.host == "*" ? "0.0.0.0" : "127.0.0.1") : endpoint.host
        // Host names we cannot parse as IPv4 are left for the node itself to report.
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return true }
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return rc == 0 || errno != EADDRINUSE
    }
}

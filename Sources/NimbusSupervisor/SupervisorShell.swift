import Foundation
import Logging
import NimbusRuntime
import SupervisorCore

/// The supervisor's shell: carries out what `SupervisorCore` decides (spawn, signal, heartbeat,
/// log) and feeds back what happened (spawned, exited, heartbeat answered, time passed).
actor SupervisorShell {
    private var core: SupervisorCore
    // Given at start: they belong to the node runtime, which is built after its service.
    private var client: NimbusClient?
    private var logger = Logger(label: "supervisor") { _ in SwiftLogNoOpLogHandler() }
    private let binDirectory: URL
    private let configPath: String?
    private let dataDirectory: URL
    /// The host of a spread cluster this supervisor runs (nil without hosts).
    let host: String?
    private var finished = false
    private var finishWaiters: [CheckedContinuation<Void, Never>] = []

    init(config: ClusterConfig, host: String? = nil, binDirectory: URL, configPath: String?, dataDirectory: URL) {
        core = SupervisorCore(config: config, host: host)
        self.host = host
        self.binDirectory = binDirectory
        self.configPath = configPath
        self.dataDirectory = dataDirectory
    }

    func start(client: NimbusClient, logger: Logger) {
        self.client = client
        self.logger = logger
        execute(core.start(now: .now))
    }
    func tick() { execute(core.tick(now: .now)) }
    func stop() { execute(core.stop(now: .now)) }
    func status() -> [ProcessStatus] { core.snapshot(now: .now) }
    var isStopping: Bool { core.isStopping }

    func scale(_ kind: ServiceKind, to count: Int) throws(SupervisorError) {
        execute(try core.scale(kind, to: count, now: .now))
    }

    func kill(_ name: String) throws(SupervisorError) -> Int32? {
        let directives = try core.kill(name)
        execute(directives)
        return directives.compactMap { if case .signal(let pid, _, _) = $0 { return pid } else { return nil } }.first
    }

    /// Returns the names of the processes being restarted.
    func restart(_ target: String) throws(SupervisorError) -> [String] {
        let directives = try core.restart(target, now: .now)
        execute(directives)
        let names = core.snapshot(now: .now).filter { $0.name == target || $0.kind == target }.map(\.name)
        return names
    }

    /// Returns once every child has stopped after `stop`.
    func waitUntilFinished() async {
        if finished { return }
        await withCheckedContinuation { finishWaiters.append($0) }
    }

    private func childExited(pid: Int32, status: String) { execute(core.exited(pid: pid, status: status, now: .now)) }

    private func heartbeatAnswered(_ name: String, _ answer: HeartbeatAnswer) {
        execute(core.heartbeat(name, incarnation: answer.incarnation, pid: answer.pid, ready: answer.ready,
                               notReadyReason: answer.notReady, now: .now))
    }

    private func execute(_ directives: [SupervisorCore.Directive]) {
        var queue = directives[...]
        while let directive = queue.popFirst() {
            switch directive {
            case .spawn(let name, let kind, _):
                do {
                    let pid = try spawn(name, kind)
                    queue.append(contentsOf: core.spawned(name, pid: pid, now: .now))
                } catch {
                    queue.append(contentsOf: core.spawnFailed(name, reason: "\(error)", now: .now))
                }
            case .signal(let pid, let signal, _):
                _ = Glibc.kill(pid, signal == .kill ? SIGKILL : SIGTERM)
            case .heartbeat(let name, let kind, let index):
                let endpoint = core.config.endpoint(kind, instance: index).description
                let timeout = Duration.milliseconds(core.config.heartbeat.intervalMilliseconds)
                guard let client else { continue }
                Task {
                    if let answer = try? await client.heartbeat(endpoint, timeout: timeout) {
                        self.heartbeatAnswered(name, answer)
                    }
                }
            case .log(let level, let message):
                switch level {
                case .info: logger.info("\(message)")
                case .warning: logger.warning("\(message)")
                case .error: logger.error("\(message)")
                }
            case .exit:
                finished = true
                let waiters = finishWaiters
                finishWaiters = []
                for waiter in waiters { waiter.resume() }
            }
        }
    }

    private func spawn(_ name: String, _ kind: ServiceKind) throws -> Int32 {
        var arguments = ["--name", name, "--parent-pid", "\(getpid())", "--data-dir", dataDirectory.path]
        if let configPath { arguments += ["--config", configPath] }
        let log = dataDirectory.appendingPathComponent("logs/\(name).log").path
        let pid = try ProcessSpawner.spawn(binDirectory.appendingPathComponent(kind.executable).path, arguments, logFile: log)
        ProcessSpawner.onExit(of: pid) { status in
            Task { await self.childExited(pid: pid, status: status) }
        }
        return pid
    }
}

import Foundation
import NimbusRuntime
import ServiceLifecycle
import SupervisorCore

/// The supervisor as a node: its control socket answers status, scale, kill and stop, and its
/// background work is the shell's tick loop.
struct SupervisorService: NodeService {
    let shell: SupervisorShell
    /// Checks Scale, Kill and Stop when IAM is enforced (nil: anyone who reaches the socket may).
    let control: ControlAuthenticator?

    var actions: Set<String> { [NimbusAction.status, NimbusAction.scale, NimbusAction.kill, NimbusAction.restart, NimbusAction.stop] }

    func handle(_ request: InboundRequest, runtime: NodeRuntime) async throws -> Data {
        if request.header.action != NimbusAction.status, let control {
            do {
                try control.check(request)
            } catch {
                runtime.logger.warning("control request rejected", metadata: [
                    "action": "\(request.header.action ?? "")", "code": "\(error.code)", "accessKeyId": "\(request.header.auth?.accessKeyId ?? "-")"])
                throw error
            }
        }
        switch request.header.action {
        case NimbusAction.status:
            return try JSONEncoder().encode(StatusReply(
                supervisorPID: runtime.identity.pid, incarnation: runtime.identity.incarnation,
                stopping: await shell.isStopping, processes: await shell.status()))
        case NimbusAction.scale:
            let scale = try request.decode(ScaleRequest.self)
            guard let kind = ServiceKind(rawValue: scale.kind) else {
                throw WireError(.invalidParameterValue, "\(scale.kind) is not a service kind")
            }
            do { try await shell.scale(kind, to: scale.count) } catch { throw WireError(.invalidParameterValue, "\(error)") }
            return try JSONEncoder().encode(scale)
        case NimbusAction.kill:
            let target = try request.decode(KillRequest.self)
            do {
                let pid = try await shell.kill(target.name)
                return try JSONEncoder().encode(KillReply(name: target.name, pid: pid))
            } catch {
                throw WireError(.invalidParameterValue, "\(error)")
            }
        case NimbusAction.restart:
            let target = try request.decode(RestartRequest.self)
            do {
                return try JSONEncoder().encode(RestartReply(restarting: try await shell.restart(target.name)))
            } catch {
                throw WireError(.invalidParameterValue, "\(error)")
            }
        case NimbusAction.stop:
            await shell.stop()
            return Data("{\"stopping\":true}".utf8)
        default:
            throw WireError(.invalidAction, "unknown action")
        }
    }

    func run(runtime: NodeRuntime) async throws {
        await shell.start(client: runtime.client, logger: runtime.logger)
        await withGracefulShutdownHandler {
            await withDiscardingTaskGroup { group in
                group.addTask {
                    // Credentials: a pass every 250 ms costs a stat per process; issuing happens
                    // only for a new process or a third of the lifetime before expiry.
                    let issuer = CredentialIssuer(client: runtime.client, cluster: runtime.cluster,
                                                  dataDirectory: runtime.configuration.dataDirectory, logger: runtime.logger)
                    while runtime.cluster.iam.enforce, !Task.isCancelled {
                        let processes = await shell.status().compactMap { p -> (name: String, kind: ServiceKind)? in
                            guard p.state != "stopped", let kind = ServiceKind(rawValue: p.kind) else { return nil }
                            return (p.name, kind)
                        }
                        await issuer.refresh(processes: processes)
                        try? await Task.sleep(for: .milliseconds(250))
                    }
                }
                group.addTask {
                    // Heartbeats are 1 s apart; a 100 ms tick keeps restarts and timeouts prompt.
                    while !Task.isCancelled {
                        try? await Task.sleep(for: .milliseconds(100))
                        await shell.tick()
                    }
                }
                await shell.waitUntilFinished()
                group.cancelAll()
            }
        } onGracefulShutdown: {
            Task { await shell.stop() }
        }
    }
}


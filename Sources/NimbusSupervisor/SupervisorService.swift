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

    var actions: Set<String> {
        [NimbusAction.status, NimbusAction.scale, NimbusAction.kill, NimbusAction.restart, NimbusAction.stop, NimbusAction.publicKeys]
    }
    /// Open to anyone who reaches the socket: what they reveal is public (and, spread over hosts,
    /// the CURVE link admits only processes the cluster knows).
    private static let openActions: Set<String> = [NimbusAction.status, NimbusAction.publicKeys]

    func handle(_ request: InboundRequest, runtime: NodeRuntime) async throws -> Data {
        if let action = request.header.action, !Self.openActions.contains(action), let control {
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
        case NimbusAction.publicKeys:
            guard let host = shell.host else { throw WireError(.invalidAction, "this supervisor runs no host of a spread cluster") }
            return try JSONEncoder().encode(ClusterKeys.ownKeys(of: host, in: runtime.cluster, store: keyStore(runtime)))
        default:
            throw WireError(.invalidAction, "unknown action")
        }
    }

    func run(runtime: NodeRuntime) async throws {
        if let secret = runtime.configuration.curveRootSecret {
            // Before any child starts: its ZAP handler reads these at its start.
            do { try ClusterKeys.publishDerived(runtime.cluster, rootSecret: secret, into: keyStore(runtime)) } catch {
                runtime.logger.error("cannot publish the supervisors' and CLIs' keys: \(error)")
            }
        }
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
                if let host = shell.host, ClusterKeys.distributes(runtime.cluster) {
                    group.addTask { await distributeKeys(host: host, runtime: runtime) }
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

    private func keyStore(_ runtime: NodeRuntime) -> CurveKeyStore { CurveKeyStore(dataDirectory: runtime.configuration.dataDirectory) }

    /// Spread over hosts: the other hosts' processes' keys, pulled twice a second (ClusterKeys).
    private func distributeKeys(host: String, runtime: NodeRuntime) async {
        let cluster = runtime.cluster
        let store = keyStore(runtime)
        let others = cluster.supervisedHosts.filter { $0 != host }
        while !Task.isCancelled {
            let written = await ClusterKeys.pull(from: others, cluster: cluster, store: store) { endpoint in
                try await runtime.client.request(NimbusAction.publicKeys, to: endpoint, timeout: .seconds(1), attempts: 1)
            }
            if !written.isEmpty { runtime.logger.info("public keys learned: \(written.joined(separator: ", "))") }
            try? await Task.sleep(for: .milliseconds(500))
        }
    }
}


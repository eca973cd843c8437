import Foundation
import Logging
import NimbusConfig
import NimbusProtocol
import ServiceLifecycle

/// Who a node is: its name in the cluster, its kind, and the incarnation id that changes every time
/// the process starts, so a restarted node is known to be new.
public struct NodeIdentity: Sendable, Codable, Equatable {
    public var name: String
    public var kind: String
    public var incarnation: String
    public var pid: Int32
    public var startedAt: Date

    public var stamp: NodeStamp { NodeStamp(name: name, incarnation: incarnation) }
}

/// Everything one node process needs to start, with defaults for a local cluster.
public struct NodeConfiguration: Sendable {
    public var cluster: ClusterConfig
    public var name: String
    public var kind: String
    /// Where the node's ROUTER socket binds; nil for a pure client (the CLI).
    public var bind: String?
    public var dataDirectory: URL
    public var limits: ProtocolLimits = .standard
    /// Requests a node handles at once before refusing more with ThrottlingException.
    public var maxInFlight = 10_000
    public var parentPID: Int32?
    /// The cluster's CloudFormation template, when it has one (see `ClusterConfig.stack`).
    public var stackFile: URL?
    /// What this process signs its requests with; nil sends them unsigned. Default: the file the
    /// supervisor writes for it, `<data>/credentials/<name>.json`.
    public var credentials: CredentialSource?
    /// What the node signs the platform's own calls with (signing-key and decision look-ups at the
    /// IAM node, a Lambda poller's lease writes): its AWS service principal. For the platform nodes
    /// the same as `credentials`; for workload processes (gateway, workers, which run as a role) a
    /// second file, `<data>/credentials/<name>.service.json`.
    public var platformCredentials: CredentialSource?
    /// The account root's secret, when this process's CURVE key pair is derived from it (a
    /// supervisor of a cluster spread over hosts: ClusterKeys).
    public var curveRootSecret: String?

    public init(cluster: ClusterConfig, name: String, kind: String, bind: String?, dataDirectory: URL, parentPID: Int32? = nil,
                stackFile: URL? = nil) {
        self.stackFile = stackFile
        self.cluster = cluster
        self.name = name
        self.kind = kind
        self.bind = bind
        self.dataDirectory = dataDirectory
        self.parentPID = parentPID
        // With enforcement off nobody checks signatures, so nothing signs (and no process waits for
        // a credentials file that no supervisor writes).
        guard cluster.iam.enforce else { return }
        credentials = CredentialSource(file: CredentialSource.file(dataDirectory: dataDirectory, name: name))
        platformCredentials = credentials
        if let kind = ServiceKind.parse(instanceName: name)?.kind, cluster.iam.roles[kind.rawValue] != nil {
            platformCredentials = CredentialSource(file: CredentialSource.file(dataDirectory: dataDirectory, name: "\(name).service"))
        }
    }

    public var logDirectory: URL { dataDirectory.appendingPathComponent("logs") }

    /// Where this node keeps its durable state: `<data>/<service>/<name>.sqlite` (the folder is created).
    public func stateFile(_ service: String) throws -> String {
        let directory = dataDirectory.appendingPathComponent(service)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        return directory.appendingPathComponent("\(name).sqlite").path
    }
}

/// The runtime every Nimbus process stands on: the I/O thread, request dispatch, outbound requests,
/// health, counters and lifecycle. Services see only this and `InboundRequest`.
public final class NodeRuntime: Sendable {
    public let identity: NodeIdentity
    public let configuration: NodeConfiguration
    public let logger: Logger
    public let counters = NodeCounters()
    /// Requests to other nodes, over this node's I/O thread.
    public let client: NimbusClient
    /// The same connection signing as the node's AWS service principal (see `platformCredentials`).
    public let platformClient: NimbusClient
    private let io: IOLoop
    private let service: any NodeService
    private let started = ContinuousClock.now
    /// Verifies and authorizes every request but the runtime's own `nimbus:*` ones; nil when
    /// `iam.enforce` is off.
    public let authorizer: RequestAuthorizer?
    /// The disk and memory alarms, for a service with actions that grow its state, and those actions.
    let alarm: WriteAlarm?
    let growingActions: Set<String>
    /// Whether the node can serve (dependencies reachable, no alarm, start-up done), as heartbeats
    /// and health reports tell it.
    public let readiness: Readiness

    public init(configuration: NodeConfiguration, service: any NodeService, logger: Logger) throws {
        self.configuration = configuration
        self.service = service
        self.logger = logger
        identity = NodeIdentity(name: configuration.name, kind: configuration.kind, incarnation: UUID().uuidString.lowercased(),
                                pid: getpid(), startedAt: Date())
        io = try IOLoop(
            settings: .init(bind: configuration.bind, limits: configuration.limits, stamp: identity.stamp,
                            actions: service.actions, parentPID: configuration.parentPID, pid: identity.pid,
                            maxInFlight: configuration.maxInFlight,
                            curve: CurveSettings(keys: CurveKeyStore(dataDirectory: configuration.dataDirectory), name: configuration.name,
                                                 cluster: configuration.cluster, keysAtStart: true,
                                                 rootSecret: configuration.curveRootSecret)),
            counters: counters, logger: logger)
        client = NimbusClient(io: io, stamp: identity.stamp, cluster: configuration.cluster, credentials: configuration.credentials)
        let readiness = Readiness(onChange: { [io, logger] ready, reason in
            io.setReadiness(ready: ready, notReady: reason)
            if ready { logger.info("ready") } else if reason != "start-up not finished" { logger.warning("not ready: \(reason ?? "")") }
        })
        self.readiness = readiness
        if let platform = configuration.platformCredentials, platform !== configuration.credentials {
            platformClient = client.signing(with: platform)
        } else {
            platformClient = client
        }
        if configuration.cluster.iam.enforce {
            authorizer = RequestAuthorizer(settings: configuration.cluster.iam, account: configuration.cluster.account,
                                           authority: service.localAuthority() ?? RemoteAuthority(client: platformClient), logger: logger,
                                           node: configuration.name, authorityUnreachable: { readiness.unreachableReason("iam") })
        } else {
            authorizer = nil
        }
        growingActions = service.growingActions
        alarm = growingActions.isEmpty ? nil : configuration.writeAlarm(service: configuration.kind, logger: logger)
    }

    public var cluster: ClusterConfig { configuration.cluster }

    /// The endpoint the node bound, with a wildcard port resolved.
    public var boundEndpoint: String? { io.boundEndpoint }

    // MARK: Lifecycle

    /// Runs the node until graceful shutdown (SIGTERM/SIGINT through ServiceLifecycle) or until the
    /// service's own `run` returns; in-flight requests are answered before the sockets close.
    public func run() async {
        io.start()
        logger.info("\(identity.name) up", metadata: [
            "pid": "\(identity.pid)", "incarnation": "\(identity.incarnation)",
            "endpoint": "\(boundEndpoint ?? "none")",
        ])
        // Only nodes that answer authorized actions need the policy version.
        let authorizes = authorizer != nil && service.actions.contains { !$0.hasPrefix("nimbus:") }
        let policyWatch = authorizes ? Task { await self.watchPolicyVersion() } : nil
        let probes = Task { await self.probeReadiness(authorizes: authorizes) }
        await withDiscardingTaskGroup { group in
            group.addTask { await self.serve() }
            do {
                try await service.run(runtime: self)
            } catch is CancellationError {
            } catch {
                logger.error("service stopped with an error: \(error)")
            }
            io.enqueue(.closeInbound)
        }
        policyWatch?.cancel()
        probes.cancel()
        await io.stop()
        logger.info("\(identity.name) stopped")
    }

    private func serve() async {
        await withDiscardingTaskGroup { group in
            for await batch in io.inbound {
                for request in batch { group.addTask { await self.dispatch(request) } }
            }
        }
    }

    /// Polls the IAM node's policy version once a second, so a detached policy stops working within
    /// about a second everywhere rather than when each cached decision expires.
    private func watchPolicyVersion() async {
        guard let authorizer else { return }
        while !Task.isCancelled {
            if let version = try? await authorizer.authority.policyVersion() { authorizer.observe(policyVersion: version) }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Probes what the node needs to serve about twice a second: a heartbeat to each node it depends
    /// on (answered on the peer's I/O thread, so a busy peer still answers and a stopped or dead one
    /// does not), the service's own probes, and the write alarms. The first round ends start-up.
    private func probeReadiness(authorizes: Bool) async {
        var kinds = ServiceKind(rawValue: configuration.kind)?.dependencies ?? []
        if authorizes, authorizer?.authority is RemoteAuthority { kinds.insert(.iam, at: 0) }
        var probes = kinds.map { kind in
            let endpoint = cluster.endpoint(kind).description
            return ReadinessProbe(name: kind.rawValue) { [client] in
                // A silent dependency's socket is reopened: across hosts, a connection that lived
                // through a cut link can take seconds of TCP backoff to carry anything again.
                (try? await client.heartbeat(endpoint, timeout: .seconds(1), reconnectWhenSilent: true)) != nil
            }
        }
        probes += service.readinessProbes(runtime: self)
        while !Task.isCancelled {
            let round = ContinuousClock.now
            await withTaskGroup(of: (String, Bool).self) { group in
                for probe in probes { group.addTask { (probe.name, await probe.check()) } }
                for await (name, reachable) in group { readiness.dependency(name, reachable: reachable) }
            }
            readiness.alarm(alarm?.raisedReason())
            readiness.startupFinished()
            // Heartbeats carry the reason with its age ("for 12 s"), so it is renewed every round.
            io.setReadiness(ready: readiness.isReady, notReady: readiness.reason)
            try? await Task.sleep(until: round + .milliseconds(500))
        }
    }

    private func dispatch(_ request: InboundRequest) async {
        var request = request
        let id = request.header.id
        do {
            let body: Data
            if request.header.action == NimbusAction.health {
                _ = try request.decode(EmptyRequest.self)
                body = try await healthReport()
            } else {
                // The runtime's own actions are not authorized here: health, the supervisor's status
                // and the policy version are open (the supervisor must work before anyone has
                // credentials), and the supervisor checks its Scale, Kill and Stop itself
                // (ControlAuthenticator: the account root only).
                if let authorizer, let action = request.header.action, !action.hasPrefix("nimbus:") {
                    if let checks = service.authorizationChecks(for: request, runtime: self) {
                        var list: [(action: String, arn: String, policy: ResourcePolicy?)] = []
                        for check in checks { list.append((check.action, check.resource, await service.resourcePolicy(for: check.resource))) }
                        request.principal = try await authorizer.authorize(request, checks: list)
                    } else {
                        let resources = service.resourceARNs(for: request, runtime: self)
                        if resources.count == 1 {
                            request.principal = try await authorizer.authorize(request, resource: resources[0],
                                                                               resourcePolicy: await service.resourcePolicy(for: resources[0]))
                        } else {
                            var checks: [(arn: String, policy: ResourcePolicy?)] = []
                            for arn in resources { checks.append((arn, await service.resourcePolicy(for: arn))) }
                            request.principal = try await authorizer.authorize(request, resources: checks)
                        }
                    }
                }
                if let alarm, let action = request.header.action, growingActions.contains(action) {
                    try alarm.checkRoomToWrite()
                }
                body = try await service.handle(request, runtime: self)
            }
            io.send(route: request.route, .reply(to: id, sender: identity.stamp, body: body))
        } catch let error as WireError {
            io.send(route: request.route, .error(to: id, sender: identity.stamp, error))
        } catch let error as any ServiceError {
            io.send(route: request.route, .error(to: id, sender: identity.stamp, WireError(code: error.code, message: error.message, fields: error.fields)))
        } catch {
            logger.error("\(request.header.action ?? "?") failed: \(error)")
            io.send(route: request.route, .error(to: id, sender: identity.stamp, WireError(.internalFailure, "internal error in \(identity.name)")))
        }
    }

    private func healthReport() async throws -> Data {
        let uptime = ContinuousClock.now - started
        let notReady = readiness.reason
        let report = HealthReport(
            status: "ok", live: true, ready: notReady == nil, notReady: notReady, name: identity.name, kind: identity.kind, incarnation: identity.incarnation, pid: identity.pid,
            uptimeSeconds: Double(uptime.components.seconds) + Double(uptime.components.attoseconds) / 1e18,
            startedAt: identity.startedAt.timeIntervalSince1970, endpoint: boundEndpoint,
            counters: counters.snapshot(),
            details: (await service.healthDetails()).merging(authorizer?.counters.snapshot() ?? [:]) { a, _ in a }
                .merging(["curve": io.curveServerOn ? "on" : "off"]) { a, _ in a })
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        return try encoder.encode(report)
    }
}

/// A body with nothing to say: any JSON object (a derived Decodable would accept any JSON value).
private struct EmptyRequest: Decodable {
    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: Decoder) throws {
        _ = try decoder.container(keyedBy: AnyKey.self)
    }
}

/// The reply to `nimbus:Health`.
public struct HealthReport: Codable, Sendable {
    public var status: String
    /// Answering at all (always true in an answer; the field is there for probes that read it).
    public var live: Bool?
    /// Whether the node can serve new callers, and why not.
    public var ready: Bool?
    public var notReady: String?
    public var name: String
    public var kind: String
    public var incarnation: String
    public var pid: Int32
    public var uptimeSeconds: Double
    public var startedAt: Double
    public var endpoint: String?
    public var counters: [String: Int]
    public var details: [String: String]
}

/// The body of a heartbeat answer.
public struct HeartbeatAnswer: Codable, Sendable {
    public var name: String
    public var incarnation: String
    public var pid: Int32
    public var status: String
    /// Whether the node can serve, once it has probed what it depends on (absent before).
    public var ready: Bool?
    public var notReady: String?
}

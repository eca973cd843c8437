import Foundation
import NimbusProtocol
import ServiceLifecycle

/// What a service contributes to a node: the actions it answers and, optionally, background work.
/// Everything else (sockets, framing, health, heartbeats, logs, lifecycle) is the runtime's.
public protocol NodeService: Sendable {
    /// Actions this service answers, IAM-style (`sqs:SendMessage`). `nimbus:Health` is the runtime's.
    var actions: Set<String> { get }

    /// Answers one request with a JSON payload, or throws a `WireError` to answer with an error.
    /// Any other error is answered as InternalFailure and logged.
    func handle(_ request: InboundRequest, runtime: NodeRuntime) async throws -> Data

    /// Background work for the node's whole life (pollers, timers). Returning ends the node. The
    /// default waits for graceful shutdown.
    func run(runtime: NodeRuntime) async throws

    /// Extra fields for the health reply.
    func healthDetails() async -> [String: String]

    /// The ARN a request acts on, for authorization (`arn:aws:sqs:REGION:ACCOUNT:POC-Queue` for a
    /// SendMessage naming that queue's URL). nil: the action is on no one resource ("*").
    /// Called for every request before `handle`: keep it cheap (no full JSON decode).
    func resourceARN(for request: InboundRequest, runtime: NodeRuntime) -> String?

    /// Every resource a request acts on, when it may be more than one (a BatchWriteItem writes to
    /// each table it names): each is authorized, and all must be allowed. Default: `resourceARN`'s,
    /// or "*".
    func resourceARNs(for request: InboundRequest, runtime: NodeRuntime) -> [String]

    /// When a request's parts are authorized as other actions than its own, each action with the
    /// resource it acts on; all must be allowed. DynamoDB authorizes a transaction's items this way,
    /// as the PutItem, UpdateItem, DeleteItem, ConditionCheckItem or GetItem each one is. nil (the
    /// default): the request's own action on each of `resourceARNs`.
    func authorizationChecks(for request: InboundRequest, runtime: NodeRuntime) -> [(action: String, resource: String)]?

    /// The resource's own policy, when it has one (a queue's Policy attribute).
    func resourcePolicy(for resourceARN: String) async -> ResourcePolicy?

    /// Who decides authorization for this node: nil asks the IAM node (every node but the IAM node).
    func localAuthority() -> (any Authority)?

    /// What else the node needs to serve, besides the nodes `ServiceKind.dependencies` names (probed
    /// by the runtime): an SMTP relay, say. Each is probed about twice a second.
    func readinessProbes(runtime: NodeRuntime) -> [ReadinessProbe]

    /// The actions that grow the node's durable state (SendMessage, PutItem, Publish ...): the runtime
    /// refuses them with ServiceUnavailable while a write alarm (disk, memory) is raised.
    var growingActions: Set<String> { get }
}

extension NodeService {
    public func resourceARN(for request: InboundRequest, runtime: NodeRuntime) -> String? { nil }
    public func resourceARNs(for request: InboundRequest, runtime: NodeRuntime) -> [String] {
        [resourceARN(for: request, runtime: runtime) ?? "*"]
    }
    public func authorizationChecks(for request: InboundRequest, runtime: NodeRuntime) -> [(action: String, resource: String)]? { nil }
    public func resourcePolicy(for resourceARN: String) async -> ResourcePolicy? { nil }
    public func localAuthority() -> (any Authority)? { nil }
    public var growingActions: Set<String> { [] }
    public func readinessProbes(runtime: NodeRuntime) -> [ReadinessProbe] { [] }

    public func run(runtime: NodeRuntime) async throws {
        try? await gracefulShutdown()
    }

    public func healthDetails() async -> [String: String] { [:] }
}

/// A condition a node needs to serve, named as `status` shows it when it fails (`smtp`).
public struct ReadinessProbe: Sendable {
    public var name: String
    /// True when it holds; bounded by the probe itself (a connect timeout).
    public var check: @Sendable () async -> Bool

    public init(name: String, check: @escaping @Sendable () async -> Bool) {
        self.name = name
        self.check = check
    }
}

/// A node that so far answers only health: what each service executable runs until its issue gives
/// it a core.
public struct HealthOnlyService: NodeService {
    public init() {}
    public var actions: Set<String> { [] }
    public func handle(_ request: InboundRequest, runtime: NodeRuntime) async throws -> Data {
        throw WireError(.invalidAction, "\(request.header.action ?? "") is not an action of \(runtime.identity.name)")
    }
}

extension InboundRequest {
    /// Decodes the payload as `T`, turning a bad payload into the AWS error a caller expects.
    public func decode<T: Decodable>(_ type: T.Type) throws -> T {
        do {
            return try JSONDecoder().decode(T.self, from: body)
        } catch let DecodingError.keyNotFound(key, _) {
            throw WireError(.missingParameter, "the request must contain the parameter \(key.stringValue)")
        } catch let DecodingError.typeMismatch(_, context) where context.codingPath.isEmpty {
            throw WireError(.serializationException, "the request body must be a JSON object")
        } catch let DecodingError.valueNotFound(_, context) where context.codingPath.isEmpty {
            throw WireError(.serializationException, "the request body must be a JSON object, not null")
        } catch let DecodingError.typeMismatch(_, context) {
            throw WireError(.invalidParameterValue, "\(context.codingPath.map(\.stringValue).joined(separator: ".")) has the wrong type")
        } catch let DecodingError.valueNotFound(_, context) {
            throw WireError(.missingParameter, "\(context.codingPath.map(\.stringValue).joined(separator: ".")) must not be null")
        } catch {
            throw WireError(.serializationException, "the request body is not valid JSON")
        }
    }
}

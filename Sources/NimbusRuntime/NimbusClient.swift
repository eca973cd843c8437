import Foundation
import Logging
import NimbusAuth
import NimbusConfig
import NimbusProtocol
import Synchronization

/// A caller's access key with the Nimbus signing key the IAM node derived for it (for one day and
/// one service): what signs a request on the caller's behalf without the caller's secret.
public struct CallerKey: Sendable {
    public var accessKeyId: String
    public var sessionToken: String?
    public var key: SigningKey

    public init(accessKeyId: String, sessionToken: String?, key: SigningKey) {
        self.accessKeyId = accessKeyId
        self.sessionToken = sessionToken
        self.key = key
    }
}

/// Sends requests to Nimbus nodes and awaits their answers. A node's client shares the node's I/O
/// thread; a standalone client (the CLI, tools) gets an I/O thread of its own with no bound socket.
public final class NimbusClient: Sendable {
    private let io: IOLoop
    private let stamp: NodeStamp
    public let cluster: ClusterConfig
    private let ownsLoop: Bool
    /// Signs every request (the runtime's own `nimbus:*` ones only when the credentials are there
    /// already); nil sends them unsigned.
    public let credentials: CredentialSource?
    /// A standalone client of a cluster that distributes its keys learns them (ClusterKeys) before
    /// its first request goes out.
    private let keysLearned: Task<Void, Never>?

    init(io: IOLoop, stamp: NodeStamp, cluster: ClusterConfig, ownsLoop: Bool = false, credentials: CredentialSource? = nil,
         keysLearned: Task<Void, Never>? = nil) {
        self.io = io
        self.stamp = stamp
        self.cluster = cluster
        self.ownsLoop = ownsLoop
        self.credentials = credentials
        self.keysLearned = keysLearned
    }

    /// A client with its own I/O thread, for processes that are not nodes. Its CURVE key pair (for
    /// the links `security.curve` encrypts) is `<dataDirectory>/keys/NAME.secret`, made at its first
    /// use. `dataDirectory` defaults to the one `credentials` are kept in (`<data>/credentials/`,
    /// as the CLI's are), else the cluster's, relative to the current folder. `curvePeers` names the
    /// processes behind endpoints the config does not list, for their public keys.
    public static func standalone(name: String, cluster: ClusterConfig = ClusterConfig(), logger: Logger? = nil,
                                  credentials: CredentialSource? = nil, dataDirectory: URL? = nil,
                                  curvePeers: [String: String] = [:]) throws -> NimbusClient {
        let stamp = NodeStamp(name: name, incarnation: UUID().uuidString.lowercased())
        let data = dataDirectory ?? credentials?.dataDirectory
            ?? cluster.dataDirectoryURL(relativeTo: URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
        // A CLI of a cluster spread over hosts: its key pair comes from the root's secret, so every
        // host admits it, and it asks the supervisors for the keys of the processes it may call.
        let rootSecret = ClusterKeys.distributes(cluster) ? credentials?.current()?.secretAccessKey : nil
        let curve = CurveSettings(keys: CurveKeyStore(dataDirectory: data), name: name, cluster: cluster,
                                  peerNames: curvePeers, keysAtStart: false, rootSecret: rootSecret)
        let io = try IOLoop(
            settings: .init(bind: nil, stamp: stamp, actions: [], parentPID: nil, pid: getpid(), curve: curve),
            counters: NodeCounters(), logger: logger ?? Logger(label: name) { _ in SwiftLogNoOpLogHandler() })
        io.start()
        var keysLearned: Task<Void, Never>?
        if let rootSecret = curve.derivingSecret {
            try ClusterKeys.publishDerived(cluster, rootSecret: rootSecret, into: curve.keys)
            keysLearned = Task { [io, stamp] in
                await ClusterKeys.pull(from: cluster.supervisedHosts, cluster: cluster, store: curve.keys) { endpoint in
                    let envelope = Envelope.request(id: newRequestID(), action: NimbusAction.publicKeys, sender: stamp, body: Data("{}".utf8))
                    let answer = try await io.request(envelope, to: endpoint, timeout: .seconds(1), attempts: 1)
                    if let error = answer.wireError { throw error }
                    return answer.body
                }
            }
        }
        return NimbusClient(io: io, stamp: stamp, cluster: cluster, ownsLoop: true, credentials: credentials, keysLearned: keysLearned)
    }

    /// The same connection, signing as someone else: e.g. a worker's Lambda-internal calls, made
    /// with the lambda.amazonaws.com identity rather than the function's execution role.
    public func signing(with credentials: CredentialSource) -> NimbusClient {
        NimbusClient(io: io, stamp: stamp, cluster: cluster, ownsLoop: false, credentials: credentials, keysLearned: keysLearned)
    }

    /// Stops a standalone client's I/O thread; outstanding requests fail with ServiceUnavailable.
    public func close() async {
        if ownsLoop { await io.stop() }
    }

    /// Sends a request and returns the answer's payload; an error answer is thrown as `WireError`.
    /// Lazy Pirate: after `timeout` without an answer the socket is reopened and the request resent,
    /// `attempts` times in all, then RequestTimeout.
    public func request(
        _ action: String, to endpoint: String, resource: String? = nil, body: Data = Data("{}".utf8),
        timeout: Duration = .seconds(2), attempts: Int = 3
    ) async throws -> Data {
        await keysLearned?.value
        var envelope = Envelope.request(id: Self.newRequestID(), action: action, resource: resource, sender: stamp, body: body)
        var resign: (@Sendable () -> [Data]?)?
        // The runtime's own actions are signed when credentials are at hand (the supervisor's
        // Scale, Kill and Stop need the root's signature) but never wait for them.
        if let credentials, credentials.sign(&envelope) || !action.hasPrefix("nimbus:") {
            if envelope.header.auth == nil {
                // A process may start a moment before the supervisor has written its credentials.
                _ = await credentials.wait(timeout: .seconds(10))
                credentials.sign(&envelope)
            }
            let unsigned = envelope
            resign = {
                var again = unsigned
                return credentials.sign(&again) ? FrameCodec.encode(again) : nil
            }
        }
        let answer = try await io.request(envelope, to: endpoint, timeout: timeout, attempts: attempts, resign: resign)
        if let error = answer.wireError { throw error }
        return answer.body
    }

    /// A request on behalf of a caller whose signature the sender has checked (the AWS endpoint): it is
    /// signed with the caller's access key and the signing key the IAM node gave for it, so the node
    /// that serves it authorizes the caller, not the sender. nil: sent unsigned (IAM not enforced).
    /// A resend is signed afresh.
    public func request(_ action: String, to endpoint: String, body: Data, onBehalfOf caller: CallerKey?,
                        timeout: Duration, attempts: Int = 2) async throws -> Data {
        await keysLearned?.value
        let envelope = Envelope.request(id: Self.newRequestID(), action: action, sender: stamp, body: body)
        var resign: (@Sendable () -> [Data]?)?
        var first = envelope
        if let caller {
            let identity = Credentials(accessKeyId: caller.accessKeyId, secretAccessKey: "", sessionToken: caller.sessionToken, principal: "")
            RequestSigning.sign(&first, with: identity, key: caller.key, nowMillis: CredentialSource.nowMillis())
            resign = {
                var again = envelope
                RequestSigning.sign(&again, with: identity, key: caller.key, nowMillis: CredentialSource.nowMillis())
                return FrameCodec.encode(again)
            }
        }
        let answer = try await io.request(first, to: endpoint, timeout: timeout, attempts: attempts, resign: resign)
        if let error = answer.wireError { throw error }
        return answer.body
    }

    /// A request built (and signed, when the client has credentials) now, to be sent later with
    /// `send(_:to:timeout:)`: a load generator prepares its requests before it starts timing, so
    /// that what it measures is the node's cost, not its own.
    public func prepare(_ action: String, resource: String? = nil, body: Data) -> Envelope {
        var envelope = Envelope.request(id: Self.newRequestID(), action: action, resource: resource, sender: stamp, body: body)
        credentials?.sign(&envelope)
        return envelope
    }

    /// Sends a prepared request once: a resent copy would carry the same signature, a replay.
    public func send(_ prepared: Envelope, to endpoint: String, timeout: Duration = .seconds(2)) async throws -> Data {
        await keysLearned?.value
        let answer = try await io.request(prepared, to: endpoint, timeout: timeout, attempts: 1)
        if let error = answer.wireError { throw error }
        return answer.body
    }

    /// Sends a request to instance `index` of a service kind, at its configured endpoint.
    public func request(
        _ action: String, to kind: ServiceKind, instance index: Int = 1, resource: String? = nil,
        body: Data = Data("{}".utf8), timeout: Duration = .seconds(2), attempts: Int = 3
    ) async throws -> Data {
        try await request(action, to: cluster.endpoint(kind, instance: index).description, resource: resource,
                          body: body, timeout: timeout, attempts: attempts)
    }

    /// One heartbeat round trip, no retries: the answer, or an error when the peer stays silent.
    /// `reconnectWhenSilent`: a silence also reopens the socket to the peer, so that the next
    /// heartbeat (and request) goes over a fresh connection (readiness probes across hosts).
    public func heartbeat(_ endpoint: String, timeout: Duration, reconnectWhenSilent: Bool = false) async throws -> HeartbeatAnswer {
        await keysLearned?.value
        let envelope = Envelope(header: EnvelopeHeader(kind: .heartbeat, id: Self.newRequestID(), sender: stamp), body: Data("{}".utf8))
        let answer = try await io.request(envelope, to: endpoint, timeout: timeout, attempts: 1, reconnectWhenSilent: reconnectWhenSilent)
        if let error = answer.wireError { throw error }
        return try JSONDecoder().decode(HeartbeatAnswer.self, from: answer.body)
    }

    /// Request ids: unique per process and cheap (no UUID per request).
    private static let sequence = RequestIDs()
    static func newRequestID() -> String { sequence.next() }

    private final class RequestIDs: Sendable {
        private let prefix = String(UInt64.random(in: 0...UInt64.max), radix: 36)
        private let counter = Atomic<Int>(0)
        func next() -> String { "\(prefix)-\(counter.wrappingAdd(1, ordering: .relaxed).newValue)" }
    }
}

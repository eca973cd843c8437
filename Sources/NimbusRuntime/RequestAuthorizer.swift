import Crypto
import Foundation
import IAMCore
import Logging
import NimbusAuth
import NimbusConfig
import NimbusProtocol
import Synchronization

/// The IAM authority as the runtime needs it: signing material for an access key, decisions for
/// assumed roles, and the policy version (a counter the IAM node bumps on every policy, role or
/// attachment change). Every node asks the IAM node over the wire (`RemoteAuthority`); the IAM
/// node answers itself.
public protocol Authority: Sendable {
    /// Throws `WireError` InvalidClientTokenId / ExpiredToken for keys it does not honour.
    func signingMaterial(accessKeyId: String, sessionToken: String?, day: String, service: String) async throws -> SigningMaterial
    func decide(principal: String, action: String, resource: String, resourcePolicy: String?) async throws -> Decision
    func policyVersion() async throws -> Int64
}

/// A resource's own policy (the queue's Policy attribute), as the service that owns it reports it.
/// Part of every decision's cache key, so it hashes by a fingerprint taken once (owners keep the
/// value, not the text): no request hashes a kilobyte of policy.
public struct ResourcePolicy: Sendable, Hashable {
    public let text: String
    private let fingerprint: Int

    public init(text: String) {
        self.text = text
        fingerprint = text.hashValue
    }

    public func hash(into hasher: inout Hasher) { hasher.combine(fingerprint) }
    public static func == (a: ResourcePolicy, b: ResourcePolicy) -> Bool { a.fingerprint == b.fingerprint && a.text == b.text }
}

/// A service's resource policies (queue or topic Policy attributes), readable without a hop into
/// its engine: the authorizer asks for one on every request, and the engine's actor is busy with
/// the hot path. Kept as `ResourcePolicy` values, fingerprinted once here rather than per request.
public final class ResourcePolicies: Sendable {
    private let byKey = Mutex<[String: ResourcePolicy]>([:])

    public init() {}

    public func policy(_ key: String) -> ResourcePolicy? { byKey.withLock { $0[key] } }

    /// Everything at once (policy text by queue name or topic ARN), after any change to one.
    public func replace(_ all: [String: String]) { byKey.withLock { $0 = all.mapValues(ResourcePolicy.init(text:)) } }
}

/// Authentication and authorization of every request a node receives, in one place: the runtime
/// calls `authorize` before the service sees the request.
///
///   signature  → verifier (skew, expiry, HMAC, replay) with signing material cached per
///                (access key, session token, day, service) until the credentials expire
///   decision   → cached per (principal, action, resource, resource-policy text) for
///                `decisionCacheSeconds`, dropped at once when the IAM node's policy version moves
///
/// so a steady stream of requests costs two SHA-256/HMAC computations and two dictionary lookups,
/// with no round trip to the IAM node.
public final class RequestAuthorizer: Sendable {
    let account: String
    let authority: any Authority
    let verifier: RequestVerifier
    let logger: Logger
    private let clock: @Sendable () -> Int64
    private let signingCache: Mutex<ExpiringCache<MaterialKey, CachedMaterial>>
    private let decisions: Mutex<ExpiringCache<DecisionKey, Decision>>
    private let parsedPolicies = Mutex<[String: PolicyDocument]>([:])
    public let counters = AuthCounters()
    /// This node's name, for the errors callers see ("table cannot authorize you: ...").
    private let node: String
    /// Why the authority cannot be reached now (`iam unreachable for 12 s`), nil when it can: then
    /// cached answers are used past their time instead of waiting on a call that cannot succeed.
    private let authorityUnreachable: @Sendable () -> String?

    public init(settings: ClusterConfig.IAMSettings, account: String, authority: any Authority, logger: Logger,
                clock: @escaping @Sendable () -> Int64 = CredentialSource.nowMillis, node: String = "this node",
                authorityUnreachable: @escaping @Sendable () -> String? = { nil }) {
        self.account = account
        self.authority = authority
        self.logger = logger
        self.clock = clock
        self.node = node
        self.authorityUnreachable = authorityUnreachable
        verifier = RequestVerifier(skewMillis: Int64(settings.signatureSkewSeconds) * 1000)
        // Signing material is good until the credentials expire; 15 minutes bounds how long a key
        // the IAM node stops honouring (a rotated root key) is still accepted.
        signingCache = Mutex(ExpiringCache(ttlMillis: 900_000))
        decisions = Mutex(ExpiringCache(ttlMillis: Int64(settings.decisionCacheSeconds * 1000)))
    }

    /// Checks one request; returns the caller's principal, or throws the AWS error to answer with.
    public func authorize(_ request: InboundRequest, resource: String, resourcePolicy: ResourcePolicy?) async throws -> String {
        try await authorize(header: request.header, body: request.body, resource: resource, resourcePolicy: resourcePolicy)
    }

    /// Checks a request that acts on several resources (a BatchWriteItem naming several tables):
    /// the signature once, then a decision per resource; every one must be allowed.
    public func authorize(_ request: InboundRequest, resources: [(arn: String, policy: ResourcePolicy?)]) async throws -> String {
        try await authorize(request, checks: resources.map { (request.header.action ?? "", $0.arn, $0.policy) })
    }

    /// Checks a request whose parts are authorized as other actions (a DynamoDB transaction's items,
    /// each as the PutItem, UpdateItem ... it is): the signature once, then each action on its
    /// resource; every one must be allowed.
    public func authorize(_ request: InboundRequest, checks: [(action: String, arn: String, policy: ResourcePolicy?)]) async throws -> String {
        let now = clock()
        let principal = try await authenticate(header: request.header, body: request.body, now: now)
        for check in checks {
            try await decide(principal: principal, action: check.action, header: request.header, resource: check.arn,
                             resourcePolicy: check.policy, now: now)
        }
        return principal
    }

    public func authorize(header: EnvelopeHeader, body: Data, resource: String, resourcePolicy: ResourcePolicy?) async throws -> String {
        let now = clock()
        let principal = try await authenticate(header: header, body: body, now: now)
        try await decide(principal: principal, action: header.action ?? "", header: header, resource: resource, resourcePolicy: resourcePolicy, now: now)
        return principal
    }

    /// Skew, signing material (cached), signature, replay: who sent the request.
    private func authenticate(header: EnvelopeHeader, body: Data, now: Int64) async throws -> String {
        let action = header.action ?? ""
        let auth: RequestAuth
        switch verifier.precheck(header, nowMillis: now) {
        case .failure(let error): throw denied(error, header)
        case .success(let value): auth = value
        }
        let service = RequestSigning.service(of: action)
        // Keyed without the session token (each set of temporary credentials has its own access key
        // id); the token is compared instead of hashed, and a different one is looked up afresh.
        let materialKey = MaterialKey(accessKeyId: auth.accessKeyId, day: auth.timestamp / 86_400_000, service: service)
        let material: SigningMaterial
        if let cached = signingCache.withLock({ $0.value(materialKey, nowMillis: now) }), cached.sessionToken == auth.sessionToken {
            material = cached.material
        } else if authorityUnreachable() != nil, let stale = staleMaterial(materialKey, sessionToken: auth.sessionToken, now: now) {
            material = stale
        } else {
            counters.signingLookups.add(1, ordering: .relaxed)
            var fresh = true
            do {
                material = try await askAuthority(header: header) {
                    try await authority.signingMaterial(accessKeyId: auth.accessKeyId, sessionToken: auth.sessionToken,
                                                        day: RequestSigning.day(ofMillis: auth.timestamp), service: service)
                }
            } catch let error as WireError where [ErrorCode.invalidClientTokenId.rawValue, ErrorCode.expiredToken.rawValue].contains(error.code) {
                throw denied(error, header)
            } catch let error as WireError where error.code == ErrorCode.serviceUnavailable.rawValue {
                guard let stale = staleMaterial(materialKey, sessionToken: auth.sessionToken, now: now) else { throw error }
                material = stale
                fresh = false
            }
            // Only what the authority answered is cached afresh: a stale key keeps its old time, so
            // the 15-minute bound still holds once the authority is back.
            if fresh {
                signingCache.withLock {
                    $0.store(materialKey, CachedMaterial(sessionToken: auth.sessionToken, material: material), nowMillis: now, expires: material.expiration)
                }
            }
        }
        switch verifier.verify(header, body: body, auth: auth, material: material, nowMillis: now) {
        case .failure(let error): throw denied(error, header)
        case .success(let principal): return principal
        }
    }

    /// Whether `principal` may perform the request's action on `resource` (cached decisions);
    /// throws AccessDenied naming the three when not.
    private func decide(principal: String, action: String, header: EnvelopeHeader, resource: String, resourcePolicy: ResourcePolicy?,
                        now: Int64) async throws {
        let decisionKey = DecisionKey(principal: principal, action: action, resource: resource, policy: resourcePolicy)
        let decision: Decision
        if let cached = decisions.withLock({ $0.value(decisionKey, nowMillis: now) }) {
            decision = cached
        } else {
            counters.decisionLookups.add(1, ordering: .relaxed)
            var fresh = true
            let policyDocument = resourcePolicy.flatMap(parsed)
            if let local = PlatformPrincipals.localDecision(principal: principal, account: account, action: action, resource: resource,
                                                            resourcePolicy: policyDocument) {
                decision = local
            } else if authorityUnreachable() != nil, let stale = staleDecision(decisionKey) {
                decision = stale
                fresh = false
            } else {
                do {
                    decision = try await askAuthority(header: header) {
                        try await authority.decide(principal: principal, action: action, resource: resource, resourcePolicy: resourcePolicy?.text)
                    }
                } catch let error as WireError where error.code == ErrorCode.serviceUnavailable.rawValue {
                    guard let stale = staleDecision(decisionKey) else { throw error }
                    decision = stale
                    fresh = false
                }
            }
            if fresh { decisions.withLock { $0.store(decisionKey, decision, nowMillis: now) } }
        }
        guard decision.isAllowed else {
            counters.denied.add(1, ordering: .relaxed)
            var reason = ""
            if case .explicitDeny = decision { reason = " with an explicit deny" }
            let error = WireError(.accessDenied, "User: \(principal) is not authorized to perform: \(action) on resource: \(resource)\(reason)")
            logger.warning("access denied", metadata: ["principal": "\(principal)", "action": "\(action)", "resource": "\(resource)",
                                                      "decision": "\(decision)", "id": "\(header.id)"])
            throw error
        }
    }

    /// While the authority is unreachable, signing material cached earlier serves for as long as the
    /// credentials themselves are valid (the 15-minute bound is for keys the IAM node may stop
    /// honouring, and it cannot change anything while it is down).
    private func staleMaterial(_ key: MaterialKey, sessionToken: String?, now: Int64) -> SigningMaterial? {
        guard let cached = signingCache.withLock({ $0.staleValue(key) }), cached.sessionToken == sessionToken,
              cached.material.expiration.map({ $0 > now }) ?? true else { return nil }
        counters.staleAnswers.add(1, ordering: .relaxed)
        return cached.material
    }

    /// Likewise a decision made earlier, until the policy version moves (which only the IAM node can
    /// make it do, and it is down).
    private func staleDecision(_ key: DecisionKey) -> Decision? {
        guard let decision = decisions.withLock({ $0.staleValue(key) }) else { return nil }
        counters.staleAnswers.add(1, ordering: .relaxed)
        return decision
    }

    /// A call to the authority that cannot succeed is answered within about a second and a half as
    /// ServiceUnavailable naming the authority, rather than left to the caller's timeout.
    private func askAuthority<T>(header: EnvelopeHeader, _ call: () async throws -> T) async throws -> T {
        if let reason = authorityUnreachable() {
            throw unavailable(reason, header)
        }
        do {
            return try await call()
        } catch let error as WireError where error.code == ErrorCode.requestTimeout.rawValue || error.code == ErrorCode.serviceUnavailable.rawValue {
            throw unavailable(authorityUnreachable() ?? "iam does not answer", header)
        }
    }

    private func unavailable(_ reason: String, _ header: EnvelopeHeader) -> WireError {
        counters.unavailable.add(1, ordering: .relaxed)
        logger.warning("cannot authorize", metadata: ["reason": "\(reason)", "action": "\(header.action ?? "")", "id": "\(header.id)"])
        return WireError(.serviceUnavailable, "\(node) cannot authorize you: \(reason)")
    }

    /// Learns the IAM node's policy version: a change drops every cached decision.
    public func observe(policyVersion: Int64) {
        if decisions.withLock({ $0.observe(version: policyVersion) }) {
            logger.debug("policy version \(policyVersion): decision cache dropped")
        }
    }

    private func parsed(_ policy: ResourcePolicy) -> PolicyDocument? {
        if let document = parsedPolicies.withLock({ $0[policy.text] }) { return document }
        guard let document = try? PolicyDocument(json: policy.text) else { return nil }
        parsedPolicies.withLock { cache in
            if cache.count > 256 { cache.removeAll() }
            cache[policy.text] = document
        }
        return document
    }

    private func denied(_ error: WireError, _ header: EnvelopeHeader) -> WireError {
        counters.rejected.add(1, ordering: .relaxed)
        logger.warning("request rejected", metadata: ["code": "\(error.code)", "action": "\(header.action ?? "")", "id": "\(header.id)",
                                                     "accessKeyId": "\(header.auth?.accessKeyId ?? "-")"])
        return error
    }
}

struct MaterialKey: Hashable, Sendable {
    var accessKeyId: String
    var day: Int64
    var service: String
}

struct CachedMaterial: Sendable {
    var sessionToken: String?
    var material: SigningMaterial
}

struct DecisionKey: Hashable, Sendable {
    var principal: String
    var action: String
    var resource: String
    var policy: ResourcePolicy?
}

public final class AuthCounters: Sendable {
    public let signingLookups = Atomic<Int>(0)
    public let decisionLookups = Atomic<Int>(0)
    public let denied = Atomic<Int>(0)
    public let rejected = Atomic<Int>(0)
    /// Cached answers used past their time while the IAM node was unreachable.
    public let staleAnswers = Atomic<Int>(0)
    /// Requests answered ServiceUnavailable because the IAM node was unreachable.
    public let unavailable = Atomic<Int>(0)

    public func snapshot() -> [String: String] {
        ["authSigningLookups": "\(signingLookups.load(ordering: .relaxed))", "authDecisionLookups": "\(decisionLookups.load(ordering: .relaxed))",
         "authDenied": "\(denied.load(ordering: .relaxed))", "authRejected": "\(rejected.load(ordering: .relaxed))",
         "authStaleAnswers": "\(staleAnswers.load(ordering: .relaxed))", "authUnavailable": "\(unavailable.load(ordering: .relaxed))"]
    }
}

/// The IAM node over the wire, with this node's own credentials (also the AWS endpoint's, for the
/// signing keys it signs its callers' requests with and the rare decision no node makes for it).
public struct RemoteAuthority: Authority {
    let client: NimbusClient

    public init(client: NimbusClient) { self.client = client }
    /// Two tries of 700 ms: a caller waiting on an unreachable IAM node hears so within 1.5 s.
    static let timeout = Duration.milliseconds(700)

    struct SigningKeyAnswer: Decodable {
        var Principal: String
        var SigningKey: String
        var Expiration: Int64?
    }

    public func signingMaterial(accessKeyId: String, sessionToken: String?, day: String, service: String) async throws -> SigningMaterial {
        var body: [String: String] = ["AccessKeyId": accessKeyId, "Day": day, "Service": service]
        body["SessionToken"] = sessionToken
        let data = try await client.request("sts:GetSigningKey", to: .iam, body: try JSONEncoder().encode(body), timeout: Self.timeout, attempts: 2)
        let answer = try JSONDecoder().decode(SigningKeyAnswer.self, from: data)
        guard let key = Data(base64Encoded: answer.SigningKey) else { throw WireError(.internalFailure, "unreadable signing key from iam") }
        return SigningMaterial(principal: answer.Principal, key: SigningKey(SymmetricKey(data: key)), expiration: answer.Expiration)
    }

    struct Simulation: Encodable {
        var PolicySourceArn: String
        var ActionNames: [String]
        var ResourceArns: [String]
        var ResourcePolicy: String?
    }

    struct SimulationAnswer: Decodable {
        struct Result: Decodable { var EvalDecision: String; var MatchedStatementSid: String? }
        var EvaluationResults: [Result]
    }

    public func decide(principal: String, action: String, resource: String, resourcePolicy: String?) async throws -> Decision {
        let body = try JSONEncoder().encode(Simulation(PolicySourceArn: principal, ActionNames: [action], ResourceArns: [resource],
                                                       ResourcePolicy: resourcePolicy))
        let answer = try JSONDecoder().decode(SimulationAnswer.self, from: try await client.request("iam:SimulatePrincipalPolicy", to: .iam, body: body,
                                                                                                   timeout: Self.timeout, attempts: 2))
        switch answer.EvaluationResults.first?.EvalDecision {
        case "allowed": return .allow
        case "explicitDeny": return .explicitDeny(sid: answer.EvaluationResults.first?.MatchedStatementSid)
        default: return .implicitDeny
        }
    }

    struct VersionAnswer: Decodable { var PolicyVersion: Int64 }

    public func policyVersion() async throws -> Int64 {
        try JSONDecoder().decode(VersionAnswer.self, from: try await client.request(NimbusAction.policyVersion, to: .iam, timeout: .seconds(1), attempts: 1)).PolicyVersion
    }
}

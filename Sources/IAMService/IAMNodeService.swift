import Foundation
import IAMCore
import Logging
import NimbusAuth
import NimbusRuntime
import NimbusStack
import ServiceLifecycle

/// The IAM authorizer as a Nimbus node: IAM's policy and role actions, persisted, and decisions
/// through iam:SimulatePrincipalPolicy. (Request signing and enforcement in the other services are
/// the rest of the IAM issue.)
public struct IAMNodeService: NodeService {
    let engine: IAMEngine
    let configuration: NodeConfiguration
    let credentials: CredentialAuthority

    public static let actionNames: Set<String> = [
        "iam:CreatePolicy", "iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListPolicies", "iam:DeletePolicy", "iam:CreateRole", "iam:GetRole",
        "iam:ListRoles", "iam:DeleteRole", "iam:AttachRolePolicy", "iam:DetachRolePolicy", "iam:ListAttachedRolePolicies",
        "iam:SimulatePrincipalPolicy",
        "sts:AssumeRole", "sts:GetServiceCredentials", "sts:GetSigningKey", "sts:GetAWSSigningKey", "sts:GetCallerIdentity", NimbusAction.policyVersion,
    ]

    public init(configuration: NodeConfiguration) throws {
        self.configuration = configuration
        let store = try IAMStore(path: configuration.stateFile("iam"))
        let (policies, roles) = try store.load()
        var registry = IAMRegistry(account: configuration.cluster.account)
        registry.restore(policies: policies, roles: roles)
        engine = IAMEngine(registry: registry, logger: Logger(label: "iam"), write: { try await store.commit($0) })
        credentials = try CredentialAuthority(dataDirectory: configuration.dataDirectory, account: configuration.cluster.account)
    }

    public var actions: Set<String> { Self.actionNames }

    public func localAuthority() -> (any Authority)? { LocalAuthority(credentials: credentials, engine: engine) }

    /// AssumeRole acts on the role; everything else here is authorized on "*" (IAM actions on
    /// policies and roles: root only in practice, since no lab role is granted iam:*).
    public func resourceARN(for request: InboundRequest, runtime: NodeRuntime) -> String? {
        request.header.action == "sts:AssumeRole" ? JSONFields.topLevelString("RoleArn", in: request.body) : nil
    }

    /// sts:GetCallerIdentity needs no permission, as in AWS: the caller's signature is checked, no
    /// policy is consulted.
    public func authorizationChecks(for request: InboundRequest, runtime: NodeRuntime) -> [(action: String, resource: String)]? {
        request.header.action == "sts:GetCallerIdentity" ? [] : nil
    }

    /// Temporary credentials last 5 s (Nimbus, for tests; AWS: 900 s) to 12 h.
    static func duration(_ seconds: Int?, default fallback: Int) throws -> Int64 {
        let value = seconds ?? fallback
        guard (5...43_200).contains(value) else {
            throw WireError(.validationException, "1 validation error detected: Value '\(value)' at 'durationSeconds' failed to satisfy constraint: Member must have value between 5 and 43200")
        }
        return Int64(value) * 1000
    }

    public func handle(_ request: InboundRequest, runtime: NodeRuntime) async throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .withoutEscapingSlashes
        switch request.header.action {
        case NimbusAction.policyVersion:
            return Data("{\"PolicyVersion\":\(await engine.policyVersion)}".utf8)
        case "sts:GetCallerIdentity":
            let principal = request.principal ?? "anonymous"
            let account = configuration.cluster.account
            // AWS's UserId: the account id for the root, ROLEID:SESSION for a role session, else the principal.
            var userId = principal == PlatformPrincipals.root(account: account) ? account : principal
            if principal.contains(":assumed-role/"), let session = principal.split(separator: "/").last,
               let role = try await engine.read({ reg in reg.role(forPrincipal: principal) }) {
                userId = "\(role.roleId):\(session)"
            }
            return try encoder.encode(["UserId": userId, "Arn": principal, "Account": account])
        case "sts:AssumeRole":
            let r = try request.decode(AssumeRoleRequest.self)
            let lifetime = try Self.duration(r.DurationSeconds, default: configuration.cluster.iam.credentialSeconds)
            try IAMRegistry.validateSessionName(r.RoleSessionName)
            // The supervisor names the service a session is for. An AWS client (through the edge) names
            // none and assumes the role as itself, as in AWS; the account root may assume any role of
            // the account (to try a role's keys from outside; AWS refuses the root).
            let caller = request.principal ?? "anonymous"
            let assumer = r.ServicePrincipal ?? caller
            let rootAssumes = r.ServicePrincipal == nil && caller == PlatformPrincipals.root(account: configuration.cluster.account)
            let role = try await engine.read { reg throws -> Role in
                guard let role = reg.role(forPrincipal: r.RoleArn) else {
                    // AWS does not tell its callers which roles exist.
                    if r.ServicePrincipal == nil {
                        throw PolicyError("AccessDenied", "User: \(caller) is not authorized to perform: sts:AssumeRole on resource: \(r.RoleArn)")
                    }
                    throw PolicyError("NoSuchEntity", "The role \(r.RoleArn) cannot be found.")
                }
                guard try rootAssumes || reg.mayAssume(role.name, service: assumer) else {
                    throw PolicyError("AccessDenied", "\(assumer) is not authorized to perform: sts:AssumeRole on resource: \(role.arn) (the role's trust policy does not admit it)")
                }
                return role
            }
            let session = "arn:aws:sts::\(configuration.cluster.account):assumed-role/\(role.name)/\(r.RoleSessionName)"
            let issued = credentials.tokens.issue(principal: session, expiration: CredentialSource.nowMillis() + lifetime)
            runtime.logger.info("assumed role", metadata: ["role": "\(role.name)", "session": "\(r.RoleSessionName)", "service": "\(assumer)",
                                                          "by": "\(request.principal ?? "-")"])
            return try encoder.encode(AssumeRoleResponse(Credentials: CredentialsShape(issued),
                                                         AssumedRoleUser: .init(Arn: session, AssumedRoleId: "\(role.roleId):\(r.RoleSessionName)")))
        case "sts:GetServiceCredentials":
            // Nimbus: credentials for a platform node acting as its AWS service (sqs.amazonaws.com, ...).
            let r = try request.decode(ServiceCredentialsRequest.self)
            guard PlatformPrincipals.isServicePrincipal(r.ServicePrincipal) else {
                throw WireError(.validationException, "\(r.ServicePrincipal) is not a service principal (NAME.amazonaws.com)")
            }
            let lifetime = try Self.duration(r.DurationSeconds, default: configuration.cluster.iam.credentialSeconds)
            let issued = credentials.tokens.issue(principal: r.ServicePrincipal, expiration: CredentialSource.nowMillis() + lifetime)
            return try encoder.encode(["Credentials": CredentialsShape(issued)])
        case "sts:GetSigningKey":
            // Nimbus: what a node needs to verify signatures for its own service, never the secret.
            let r = try request.decode(SigningKeyRequest.self)
            let caller = request.principal ?? ""
            guard caller == PlatformPrincipals.root(account: configuration.cluster.account) || caller == "\(r.Service).amazonaws.com" else {
                throw WireError(.accessDenied, "User: \(caller) is not authorized to perform: sts:GetSigningKey for service \(r.Service)")
            }
            let material = try credentials.material(accessKeyId: r.AccessKeyId, sessionToken: r.SessionToken, day: r.Day, service: r.Service,
                                                    nowMillis: CredentialSource.nowMillis())
            let key = material.key.symmetric.withUnsafeBytes { Data($0).base64EncodedString() }
            return try encoder.encode(SigningKeyResponse(Principal: material.principal, SigningKey: key, Expiration: material.expiration))
        case "sts:GetAWSSigningKey":
            // Nimbus: for the AWS-compatible endpoint (which runs as the account root), AWS's SigV4
            // key for one caller, day, region and service: it checks an SDK's signature with it.
            let r = try request.decode(AWSSigningKeyRequest.self)
            guard request.principal == PlatformPrincipals.root(account: configuration.cluster.account) || !configuration.cluster.iam.enforce else {
                throw WireError(.accessDenied, "User: \(request.principal ?? "anonymous") is not authorized to perform: sts:GetAWSSigningKey")
            }
            let (principal, secret, expiration) = try credentials.resolve(accessKeyId: r.AccessKeyId, sessionToken: r.SessionToken,
                                                                         nowMillis: CredentialSource.nowMillis())
            let key = AWSSigningKey.derive(secret: secret, date: r.Date, region: r.Region, service: r.Service)
                .withUnsafeBytes { Data($0).base64EncodedString() }
            return try encoder.encode(SigningKeyResponse(Principal: principal, SigningKey: key, Expiration: expiration))
        case "iam:CreatePolicy":
            let r = try request.decode(CreatePolicyRequest.self)
            let p = try await engine.perform { reg, now, changes in
                try reg.createPolicy(name: r.PolicyName, document: r.PolicyDocument, description: r.Description, now: now, changes: &changes)
            }
            return try encoder.encode(["Policy": IAMShapes.policy(p, attachments: 0)])
        case "iam:GetPolicy":
            let r = try request.decode(PolicyArnRequest.self)
            let shape = try await engine.read { reg in IAMShapes.policy(try reg.getPolicy(arn: r.PolicyArn), attachments: reg.attachmentCount(r.PolicyArn)) }
            return try encoder.encode(["Policy": shape])
        case "iam:GetPolicyVersion":
            let r = try request.decode(PolicyVersionRequest.self)
            let policy = try await engine.read { reg in try reg.getPolicyVersion(arn: r.PolicyArn, versionId: r.VersionId) }
            return try encoder.encode(["PolicyVersion": PolicyVersionShape(Document: policy.document, VersionId: "v1", IsDefaultVersion: true,
                                                                           CreateDate: IAMShapes.date(policy.createDate))])
        case "iam:ListPolicies":
            let r = try request.decode(ListPoliciesRequest.self)
            let paging = try request.decode(PageRequest.self)
            let shapes = try await engine.read { reg in
                let (page, truncated, marker) = try IAMLists.page(reg.listPolicies(scope: r.Scope), key: { "\($0.name)\u{0}\($0.arn)" }, paging)
                return ListPolicies(Policies: page.map { IAMShapes.policy($0, attachments: reg.attachmentCount($0.arn)) }, IsTruncated: truncated, Marker: marker)
            }
            return try encoder.encode(shapes)
        case "iam:DeletePolicy":
            let r = try request.decode(PolicyArnRequest.self)
            try await engine.perform { reg, _, changes in try reg.deletePolicy(arn: r.PolicyArn, changes: &changes) }
            return Data("{}".utf8)
        case "iam:CreateRole":
            let r = try request.decode(CreateRoleRequest.self)
            let role = try await engine.perform { reg, now, changes in
                try reg.createRole(name: r.RoleName, trustPolicy: r.AssumeRolePolicyDocument, description: r.Description, now: now, changes: &changes)
            }
            return try encoder.encode(["Role": IAMShapes.role(role)])
        case "iam:GetRole":
            let r = try request.decode(RoleNameRequest.self)
            return try encoder.encode(["Role": IAMShapes.role(try await engine.read { reg in try reg.getRole(r.RoleName) })])
        case "iam:ListRoles":
            let paging = try request.decode(PageRequest.self)
            return try encoder.encode(try await engine.read { reg in
                let (page, truncated, marker) = try IAMLists.page(reg.listRoles(), key: \.name, paging)
                return ListRoles(Roles: page.map(IAMShapes.role), IsTruncated: truncated, Marker: marker)
            })
        case "iam:DeleteRole":
            let r = try request.decode(RoleNameRequest.self)
            try await engine.perform { reg, _, changes in try reg.deleteRole(r.RoleName, changes: &changes) }
            return Data("{}".utf8)
        case "iam:AttachRolePolicy":
            let r = try request.decode(RolePolicyRequest.self)
            try await engine.perform { reg, _, changes in try reg.attachRolePolicy(role: r.RoleName, policyArn: r.PolicyArn, changes: &changes) }
            return Data("{}".utf8)
        case "iam:DetachRolePolicy":
            let r = try request.decode(RolePolicyRequest.self)
            try await engine.perform { reg, _, changes in try reg.detachRolePolicy(role: r.RoleName, policyArn: r.PolicyArn, changes: &changes) }
            return Data("{}".utf8)
        case "iam:ListAttachedRolePolicies":
            let r = try request.decode(RoleNameRequest.self)
            let paging = try request.decode(PageRequest.self)
            return try encoder.encode(try await engine.read { reg in
                let attached = try reg.getRole(r.RoleName).attached.map { arn in AttachedPolicy(PolicyName: (try? reg.getPolicy(arn: arn).name) ?? arn, PolicyArn: arn) }
                    .sorted { $0.PolicyArn < $1.PolicyArn }
                let (page, truncated, marker) = try IAMLists.page(attached, key: \.PolicyArn, paging)
                return ListAttached(AttachedPolicies: page, IsTruncated: truncated, Marker: marker)
            })
        case "iam:SimulatePrincipalPolicy":
            let r = try request.decode(SimulateRequest.self)
            let resourcePolicy = try r.ResourcePolicy.map { text throws in try PolicyDocument(json: text) }
            var context: [String: [String]] = [:]
            for entry in r.ContextEntries ?? [] { context[entry.ContextKeyName] = entry.ContextKeyValues }
            let keys = context
            let results = try await engine.read { reg in
                r.ActionNames.flatMap { action in
                    (r.ResourceArns ?? ["*"]).map { resource in
                        let decision = reg.authorize(AuthorizationRequest(principal: r.PolicySourceArn, action: action, resource: resource, context: keys),
                                                     resourcePolicy: resourcePolicy)
                        switch decision {
                        case .allow: return SimulateResponse.Result(EvalActionName: action, EvalResourceName: resource, EvalDecision: "allowed")
                        case .explicitDeny(let sid): return .init(EvalActionName: action, EvalResourceName: resource, EvalDecision: "explicitDeny", MatchedStatementSid: sid)
                        case .implicitDeny: return .init(EvalActionName: action, EvalResourceName: resource, EvalDecision: "implicitDeny")
                        }
                    }
                }
            }
            return try encoder.encode(SimulateResponse(EvaluationResults: results))
        default:
            throw WireError(.invalidAction, "\(request.header.action ?? "") is not an IAM action")
        }
    }

    struct AssumeRoleResponse: Encodable {
        struct User: Encodable { var Arn: String; var AssumedRoleId: String }
        var Credentials: CredentialsShape
        var AssumedRoleUser: User
    }
    struct SigningKeyResponse: Encodable { var Principal: String; var SigningKey: String; var Expiration: Int64? }
    struct ListPolicies: Codable { var Policies: [PolicyShape]; var IsTruncated = false; var Marker: String? }
    struct ListRoles: Codable { var Roles: [RoleShape]; var IsTruncated = false; var Marker: String? }
    struct ListAttached: Codable { var AttachedPolicies: [AttachedPolicy]; var IsTruncated = false; var Marker: String? }

    public func run(runtime: NodeRuntime) async throws {
        do { try await applyStack() } catch { runtime.logger.error("stack: \(error)") }
        try? await gracefulShutdown()
    }

    /// Creates the stack's AWS::IAM::ManagedPolicy and AWS::IAM::Role resources through the same
    /// operations as CreatePolicy / CreateRole / AttachRolePolicy; what exists already is left alone.
    func applyStack() async throws {
        guard let file = configuration.stackFile, FileManager.default.fileExists(atPath: file.path) else { return }
        let template = try StackTemplate.load(path: file.path)
        let account = configuration.cluster.account
        let resolver = StackResolver(template: template, region: configuration.cluster.region, account: account)
        for resource in template.resources where resource.type == "AWS::IAM::ManagedPolicy" || resource.type == "AWS::IAM::Role" {
            let p = resource.properties
            if resource.type == "AWS::IAM::ManagedPolicy" {
                let name = try p["ManagedPolicyName"].map { try resolver.string($0) } ?? resource.logicalID
                guard let documentValue = p["PolicyDocument"] else { throw StackError("\(resource.logicalID) needs a PolicyDocument") }
                let document = try resolver.jsonText(documentValue)
                let arn = "arn:aws:iam::\(account):policy/\(name)"
                try await engine.perform { reg, now, changes in
                    if (try? reg.getPolicy(arn: arn)) == nil {
                        _ = try reg.createPolicy(name: name, document: document, description: nil, now: now, changes: &changes)
                    }
                }
            } else {
                let name = try p["RoleName"].map { try resolver.string($0) } ?? resource.logicalID
                guard let trustValue = p["AssumeRolePolicyDocument"] else { throw StackError("\(resource.logicalID) needs an AssumeRolePolicyDocument") }
                let trust = try resolver.jsonText(trustValue)
                var attach: [String] = []
                if case .list(let items)? = p["ManagedPolicyArns"] { attach = try items.map { try resolver.string($0) } }
                let toAttach = attach
                try await engine.perform { reg, now, changes in
                    // Only a role the stack creates gets its attachments: a later detach must survive restarts.
                    guard (try? reg.getRole(name)) == nil else { return }
                    _ = try reg.createRole(name: name, trustPolicy: trust, description: nil, now: now, changes: &changes)
                    for arn in toAttach { try reg.attachRolePolicy(role: name, policyArn: arn, changes: &changes) }
                }
            }
        }
    }
}

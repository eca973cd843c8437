import Foundation

/// A managed policy: its name, ARN and document (kept as written, and parsed).
public struct ManagedPolicy: Codable, Equatable, Sendable {
    public var name: String
    public var arn: String
    public var policyId: String
    public var document: String
    public var description: String?
    public var createDate: Int64
}

/// A role: its trust policy and the managed policies attached to it.
public struct Role: Codable, Equatable, Sendable {
    public var name: String
    public var arn: String
    public var roleId: String
    public var trustPolicy: String
    public var description: String?
    public var attached: [String]
    public var createDate: Int64
}

/// What the store must write for a change to be durable.
public enum IAMChange: Equatable, Sendable {
    case putPolicy(ManagedPolicy)
    case deletePolicy(String)
    case putRole(Role)
    case deleteRole(String)
}

/// IAM's policies and roles as a pure state machine: the actions Nimbus supports, with IAM's
/// validation and error codes, and authorization decisions over them. Time is passed in; changes
/// to persist are appended to `changes`.
public struct IAMRegistry: Sendable {
    public let account: String
    private(set) var policies: [String: ManagedPolicy] = [:]   // by ARN
    private(set) var roles: [String: Role] = [:]               // by name
    private var parsed: [String: PolicyDocument] = [:]          // by policy ARN

    /// AWS managed policies that exist in every account.
    public static let awsManaged: [ManagedPolicy] = [
        ManagedPolicy(
            name: "AmazonAPIGatewayPushToCloudWatchLogs",
            arn: "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs", policyId: "ANPAIK4GFO7HLKYN64ASK",
            document: #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["logs:CreateLogGroup","logs:CreateLogStream","logs:DescribeLogGroups","logs:DescribeLogStreams","logs:PutLogEvents","logs:GetLogEvents","logs:FilterLogEvents"],"Resource":"*"}]}"#,
            description: "Allows API Gateway to push logs to user's account.", createDate: 1_447_362_000_000),
    ]

    public init(account: String) {
        self.account = account
        for p in Self.awsManaged { install(p) }
    }

    public mutating func restore(policies stored: [ManagedPolicy], roles storedRoles: [Role]) {
        for p in stored { install(p) }
        for r in storedRoles { roles[r.name] = r }
    }

    private mutating func install(_ policy: ManagedPolicy) {
        policies[policy.arn] = policy
        parsed[policy.arn] = try? PolicyDocument(json: policy.document)
    }

    static func validateName(_ name: String, _ what: String, max: Int) throws(PolicyError) {
        guard (1...max).contains(name.count), name.allSatisfy({ $0.isLetter || $0.isNumber || "+=,.@_-".contains($0) }),
              name.unicodeScalars.allSatisfy(\.isASCII) else {
            throw PolicyError("ValidationError", "The specified value for \(what) is invalid. It must contain only alphanumeric characters and/or the following: +=,.@_- (1 to \(max) characters).")
        }
    }

    /// STS's RoleSessionName: 2 to 64 of letters, digits and `+=,.@-`.
    public static func validateSessionName(_ name: String) throws(PolicyError) {
        guard (2...64).contains(name.count), name.unicodeScalars.allSatisfy({ $0.isASCII && (CharacterSet.alphanumerics.contains($0) || "+=,.@-_".unicodeScalars.contains($0)) }) else {
            throw PolicyError("ValidationError", "RoleSessionName must be 2 to 64 characters of letters, digits and +=,.@-_")
        }
    }

    static func id(_ prefix: String) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
        return prefix + String((0..<17).map { _ in alphabet.randomElement()! })
    }

    // MARK: Policies

    public mutating func createPolicy(name: String, document: String, description: String?, now: Int64,
                                      changes: inout [IAMChange]) throws(PolicyError) -> ManagedPolicy {
        try Self.validateName(name, "policyName", max: 128)
        let arn = "arn:aws:iam::\(account):policy/\(name)"
        if policies[arn] != nil { throw PolicyError("EntityAlreadyExists", "A policy called \(name) already exists. Duplicate names are not allowed.") }
        try Self.checkSize(document, limit: 6_144)
        _ = try PolicyDocument(json: document)
        let policy = ManagedPolicy(name: name, arn: arn, policyId: Self.id("ANPA"), document: document, description: description, createDate: now)
        install(policy)
        changes.append(.putPolicy(policy))
        return policy
    }

    public func getPolicy(arn: String) throws(PolicyError) -> ManagedPolicy {
        guard let p = policies[arn] else { throw PolicyError("NoSuchEntity", "Policy \(arn) does not exist or is not attachable.") }
        return p
    }

    /// GetPolicyVersion: a Nimbus policy has one version, `v1`, its default (its document as written).
    public func getPolicyVersion(arn: String, versionId: String) throws(PolicyError) -> ManagedPolicy {
        guard versionId.range(of: #"^v[1-9][0-9]*(\.[A-Za-z0-9-]*)?$"#, options: .regularExpression) != nil else {
            throw PolicyError("ValidationError", "1 validation error detected: Value '\(versionId)' at 'versionId' failed to satisfy constraint: Member must satisfy regular expression pattern: v[1-9][0-9]*(\\.[A-Za-z0-9-]*)?")
        }
        let policy = try getPolicy(arn: arn)
        guard versionId == "v1" else { throw PolicyError("NoSuchEntity", "Policy \(arn) version \(versionId) does not exist or is not attachable.") }
        return policy
    }

    /// Scope: All, AWS or Local, as IAM's ListPolicies.
    public func listPolicies(scope: String?) -> [ManagedPolicy] {
        policies.values.filter { p in
            switch scope {
            case "AWS": return p.arn.hasPrefix("arn:aws:iam::aws:")
            case "Local": return !p.arn.hasPrefix("arn:aws:iam::aws:")
            default: return true
            }
        }.sorted { ($0.name, $0.arn) < ($1.name, $1.arn) }
    }

    public func attachmentCount(_ arn: String) -> Int { roles.values.filter { $0.attached.contains(arn) }.count }

    public mutating func deletePolicy(arn: String, changes: inout [IAMChange]) throws(PolicyError) {
        _ = try getPolicy(arn: arn)
        if arn.hasPrefix("arn:aws:iam::aws:") { throw PolicyError("InvalidInput", "AWS managed policies cannot be deleted.") }
        if attachmentCount(arn) > 0 { throw PolicyError("DeleteConflict", "Cannot delete a policy attached to entities.") }
        policies[arn] = nil
        parsed[arn] = nil
        changes.append(.deletePolicy(arn))
    }

    // MARK: Roles

    public mutating func createRole(name: String, trustPolicy: String, description: String?, now: Int64,
                                    changes: inout [IAMChange]) throws(PolicyError) -> Role {
        try Self.validateName(name, "roleName", max: 64)
        if roles[name] != nil { throw PolicyError("EntityAlreadyExists", "Role with name \(name) already exists.") }
        try Self.checkSize(trustPolicy, limit: 2_048)
        let trust = try PolicyDocument(json: trustPolicy)
        guard trust.statements.allSatisfy({ $0.principal != nil || $0.notPrincipal != nil }) else {
            throw PolicyError("MalformedPolicyDocument", "Has prohibited field Resource or is missing a Principal in a trust policy statement.")
        }
        let role = Role(name: name, arn: "arn:aws:iam::\(account):role/\(name)", roleId: Self.id("AROA"), trustPolicy: trustPolicy,
                        description: description, attached: [], createDate: now)
        roles[name] = role
        changes.append(.putRole(role))
        return role
    }

    public func getRole(_ name: String) throws(PolicyError) -> Role {
        guard let r = roles[name] else { throw PolicyError("NoSuchEntity", "The role with name \(name) cannot be found.") }
        return r
    }

    public func listRoles() -> [Role] { roles.values.sorted { $0.name < $1.name } }

    public mutating func deleteRole(_ name: String, changes: inout [IAMChange]) throws(PolicyError) {
        let role = try getRole(name)
        if !role.attached.isEmpty { throw PolicyError("DeleteConflict", "Cannot delete entity, must detach all policies first.") }
        roles[name] = nil
        changes.append(.deleteRole(name))
    }

    public mutating func attachRolePolicy(role name: String, policyArn: String, changes: inout [IAMChange]) throws(PolicyError) {
        var role = try getRole(name)
        _ = try getPolicy(arn: policyArn)
        if role.attached.contains(policyArn) { return }
        if role.attached.count >= 10 { throw PolicyError("LimitExceeded", "Cannot exceed quota for PoliciesPerRole: 10") }
        role.attached.append(policyArn)
        roles[name] = role
        changes.append(.putRole(role))
    }

    public mutating func detachRolePolicy(role name: String, policyArn: String, changes: inout [IAMChange]) throws(PolicyError) {
        var role = try getRole(name)
        guard role.attached.contains(policyArn) else { throw PolicyError("NoSuchEntity", "Policy \(policyArn) was not found.") }
        role.attached.removeAll { $0 == policyArn }
        roles[name] = role
        changes.append(.putRole(role))
    }

    static func checkSize(_ document: String, limit: Int) throws(PolicyError) {
        let size = document.filter { !$0.isWhitespace }.utf8.count
        if size > limit { throw PolicyError("LimitExceeded", "Cannot exceed quota for PolicySize: \(limit)") }
    }

    // MARK: Decisions

    /// The role a principal ARN stands for: a role ARN or one of its assumed-role sessions.
    public func role(forPrincipal principal: String) -> Role? {
        let roleArn = PolicyEvaluator.sessionRole(principal) ?? principal
        guard roleArn.hasPrefix("arn:aws:iam::\(account):role/") else { return nil }
        return roles[String(roleArn.split(separator: "/").last ?? "")]
    }

    /// May `request.principal` do this, given its role's attached policies and the resource's policy?
    public func authorize(_ request: AuthorizationRequest, resourcePolicy: PolicyDocument?) -> Decision {
        let identity = role(forPrincipal: request.principal)?.attached.compactMap { parsed[$0] } ?? []
        return PolicyEvaluator.evaluate(request, identityPolicies: identity, resourcePolicy: resourcePolicy)
    }

    /// May `service` (e.g. lambda.amazonaws.com) assume `roleName`? (STS AssumeRole against the trust policy.)
    public func mayAssume(_ roleName: String, service: String) throws(PolicyError) -> Bool {
        let role = try getRole(roleName)
        let trust = try PolicyDocument(json: role.trustPolicy)
        return PolicyEvaluator.evaluate(AuthorizationRequest(principal: service, action: "sts:AssumeRole", resource: role.arn),
                                        identityPolicies: [], resourcePolicy: trust).isAllowed
    }
}

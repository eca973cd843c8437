import Foundation

/// What is asked: may `principal` do `action` on `resource`, given the request's context keys?
public struct AuthorizationRequest: Sendable {
    /// The caller's ARN: a role (`arn:aws:iam::ACCOUNT:role/NAME`), its assumed-role session, or a service principal.
    public var principal: String
    public var action: String
    public var resource: String
    /// Condition keys (aws:SourceArn, aws:SecureTransport, ...): names compare case-insensitively.
    public var context: [String: [String]]

    public init(principal: String, action: String, resource: String, context: [String: [String]] = [:]) {
        self.principal = principal
        self.action = action
        self.resource = resource
        self.context = context
    }
}

public enum Decision: Equatable, Sendable {
    case allow
    /// A Deny statement matched: nothing can override it.
    case explicitDeny(sid: String?)
    /// Nothing allowed it.
    case implicitDeny

    public var isAllowed: Bool { self == .allow }
}

/// IAM's evaluation logic for requests within one account, as a pure function: default deny; an
/// explicit Deny in any policy wins; otherwise allowed when an identity policy or the resource policy
/// allows it. (Permissions boundaries, SCPs and session policies are not modelled.)
public enum PolicyEvaluator {
    public static func evaluate(_ request: AuthorizationRequest, identityPolicies: [PolicyDocument], resourcePolicy: PolicyDocument? = nil) -> Decision {
        let context = Dictionary(request.context.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { $0 + $1 })
        var allowed = false
        for policy in identityPolicies {
            for statement in policy.statements where applies(statement, request, context, isResourcePolicy: false) {
                if statement.effect == .deny { return .explicitDeny(sid: statement.sid) }
                allowed = true
            }
        }
        if let resourcePolicy {
            for statement in resourcePolicy.statements where applies(statement, request, context, isResourcePolicy: true) {
                if statement.effect == .deny { return .explicitDeny(sid: statement.sid) }
                allowed = true
            }
        }
        return allowed ? .allow : .implicitDeny
    }

    static func applies(_ s: PolicyDocument.Statement, _ r: AuthorizationRequest, _ context: [String: [String]], isResourcePolicy: Bool) -> Bool {
        if isResourcePolicy {
            if let principal = s.principal, !principalMatches(principal, r.principal, effect: s.effect) { return false }
            if let notPrincipal = s.notPrincipal, principalMatches(notPrincipal, r.principal, effect: .deny) { return false }
            if s.principal == nil && s.notPrincipal == nil { return false }
        }
        let actionMatch: Bool
        if let actions = s.actions { actionMatch = actions.contains { actionMatches($0, r.action) } }
        else { actionMatch = !(s.notActions ?? []).contains { actionMatches($0, r.action) } }
        guard actionMatch else { return false }
        if let resources = s.resources {
            guard resources.contains(where: { Glob.matches($0, r.resource, caseInsensitive: false) }) else { return false }
        } else if let notResources = s.notResources {
            guard !notResources.contains(where: { Glob.matches($0, r.resource, caseInsensitive: false) }) else { return false }
        } else if !isResourcePolicy {
            return false  // an identity statement without Resource applies to nothing
        }
        return ConditionEvaluator.all(s.conditions, context)
    }

    /// Actions match case-insensitively with wildcards. SQS: a permission for SendMessage,
    /// DeleteMessage or ChangeMessageVisibility also covers its Batch form; SNS: sns:Publish covers
    /// PublishBatch (which has no IAM action of its own).
    static func actionMatches(_ pattern: String, _ action: String) -> Bool {
        if Glob.matches(pattern, action, caseInsensitive: true) { return true }
        let lower = action.lowercased()
        for batch in ["sqs:sendmessagebatch", "sqs:deletemessagebatch", "sqs:changemessagevisibilitybatch", "sns:publishbatch"] where lower == batch {
            return Glob.matches(pattern, String(action.dropLast("Batch".count)), caseInsensitive: true)
        }
        return false
    }

    /// `"*"` is everyone. `AWS` names role ARNs (also matching that role's assumed-role sessions) or
    /// `"*"`; an account (`"123456789012"` or `arn:aws:iam::123456789012:root`) in an Allow only
    /// delegates to that account's identity policies, so it grants nothing by itself. `Service` names
    /// service principals (trust policies).
    static func principalMatches(_ principal: PolicyDocument.Principal, _ caller: String, effect: PolicyDocument.Effect) -> Bool {
        guard case .some(let map) = principal else { return true }
        for (kind, values) in map {
            for value in values {
                switch kind {
                case "AWS":
                    if value == "*" { return true }
                    let isAccount = value.allSatisfy(\.isNumber) || value.hasSuffix(":root")
                    if isAccount {
                        // A Deny naming the account covers every principal in it.
                        if effect == .deny, let account = accountID(value), accountID(caller) == account { return true }
                        continue
                    }
                    if value == caller || sessionRole(caller) == value { return true }
                case "Service", "Federated", "CanonicalUser":
                    if value == caller { return true }
                default:
                    continue
                }
            }
        }
        return false
    }

    static func accountID(_ arnOrAccount: String) -> String? {
        if arnOrAccount.allSatisfy(\.isNumber) { return arnOrAccount }
        let parts = arnOrAccount.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count >= 6 ? String(parts[4]) : nil
    }

    /// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION` -> `arn:aws:iam::ACCOUNT:role/ROLE`.
    static func sessionRole(_ caller: String) -> String? {
        let parts = caller.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false)
        guard parts.count == 6, parts[2] == "sts", parts[5].hasPrefix("assumed-role/") else { return nil }
        let path = parts[5].split(separator: "/")
        guard path.count >= 2 else { return nil }
        return "arn:\(parts[1]):iam::\(parts[4]):role/\(path[1])"
    }
}

/// IAM wildcards: `*` any run of characters, `?` any one character.
public enum Glob {
    public static func matches(_ pattern: String, _ text: String, caseInsensitive: Bool) -> Bool {
        let p = Array((caseInsensitive ? pattern.lowercased() : pattern).unicodeScalars)
        let t = Array((caseInsensitive ? text.lowercased() : text).unicodeScalars)
        var pi = 0, ti = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count, p[pi] == "?" || p[pi] == t[ti] {
                pi += 1; ti += 1
            } else if pi < p.count, p[pi] == "*" {
                star = pi; mark = ti; pi += 1
            } else if star >= 0 {
                pi = star + 1; mark += 1; ti = mark
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}

import Foundation
import IAMCore

// IAM request and response bodies, in botocore's iam model shapes (JSON instead of IAM's XML).

struct CreatePolicyRequest: Codable { var PolicyName: String; var PolicyDocument: String; var Description: String? }
struct PolicyArnRequest: Codable { var PolicyArn: String }
struct ListPoliciesRequest: Codable { var Scope: String? }
struct CreateRoleRequest: Codable { var RoleName: String; var AssumeRolePolicyDocument: String; var Description: String? }
struct RoleNameRequest: Codable { var RoleName: String }
struct RolePolicyRequest: Codable { var RoleName: String; var PolicyArn: String }

struct PolicyShape: Codable {
    var PolicyName: String
    var PolicyId: String
    var Arn: String
    var Path = "/"
    var DefaultVersionId = "v1"
    var AttachmentCount: Int
    var IsAttachable = true
    var Description: String?
    var CreateDate: String
    var UpdateDate: String
}

struct RoleShape: Codable {
    var Path = "/"
    var RoleName: String
    var RoleId: String
    var Arn: String
    var CreateDate: String
    var AssumeRolePolicyDocument: String
    var Description: String?
    /// AWS's default (Nimbus sessions are bounded by the node's own limits, not per role).
    var MaxSessionDuration = 3600
}

struct AttachedPolicy: Codable { var PolicyName: String; var PolicyArn: String }

/// iam:SimulatePrincipalPolicy, the AWS shape for "may this principal do this on that?".
struct SimulateRequest: Codable {
    var PolicySourceArn: String
    var ActionNames: [String]
    var ResourceArns: [String]?
    var ResourcePolicy: String?
    var ContextEntries: [ContextEntry]?
    struct ContextEntry: Codable { var ContextKeyName: String; var ContextKeyValues: [String] }
}

struct SimulateResponse: Codable {
    var EvaluationResults: [Result]
    var IsTruncated = false
    struct Result: Codable {
        var EvalActionName: String
        var EvalResourceName: String
        /// allowed | explicitDeny | implicitDeny
        var EvalDecision: String
        var MatchedStatementSid: String?
    }
}

enum IAMShapes {
    static func date(_ ms: Int64) -> String {
        ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }

    static func policy(_ p: ManagedPolicy, attachments: Int) -> PolicyShape {
        PolicyShape(PolicyName: p.name, PolicyId: p.policyId, Arn: p.arn, AttachmentCount: attachments, Description: p.description,
                    CreateDate: date(p.createDate), UpdateDate: date(p.createDate))
    }

    static func role(_ r: Role) -> RoleShape {
        RoleShape(RoleName: r.name, RoleId: r.roleId, Arn: r.arn, CreateDate: date(r.createDate), AssumeRolePolicyDocument: r.trustPolicy,
                  Description: r.description)
    }
}

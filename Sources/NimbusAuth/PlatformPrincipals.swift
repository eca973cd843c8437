import Foundation
import IAMCore

/// Who may be a caller besides an assumed role, and what the platform itself may do.
///
/// - The account root (`arn:aws:iam::ACCOUNT:root`) may do everything in its own account, as in
///   AWS; only an explicit Deny (e.g. in a queue policy) stops it. The CLI and the supervisor use it.
/// - AWS service principals (`sqs.amazonaws.com`, ...) are how the platform nodes call each other
///   for their own work, as AWS's services do: they get the built-in "service-linked" permissions
///   below and whatever resource policies grant them (an SNS topic delivering to a queue needs the
///   queue policy to allow `sns.amazonaws.com`, as in AWS).
public enum PlatformPrincipals {
    public static func root(account: String) -> String { "arn:aws:iam::\(account):root" }

    public static func isServicePrincipal(_ principal: String) -> Bool {
        principal.hasSuffix(".amazonaws.com") && !principal.contains(":")
    }

    /// Identity policies for root: allow everything (an explicit Deny elsewhere still wins).
    static let allowEverything = try! PolicyDocument(json: #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#)

    /// What every platform node may ask the IAM node: signing material for its own service (the IAM
    /// node checks the service matches) and decisions.
    static let platformBase = #"{"Sid":"NimbusPlatformAuth","Effect":"Allow","Action":["sts:GetSigningKey","iam:SimulatePrincipalPolicy"],"Resource":"*"}"#

    /// Lambda's own work, which AWS does with the service's identity rather than the function's
    /// execution role: resolving an event source's queue URL, and the stream pollers' shard leases
    /// and checkpoints (kept in the nimbus-stream-leases table, Lambda's internal state in AWS).
    static let lambdaInternal = #"{"Sid":"NimbusLambdaInternal","Effect":"Allow","Action":["sqs:GetQueueUrl","dynamodb:GetItem","dynamodb:PutItem","dynamodb:UpdateItem","dynamodb:DeleteItem","dynamodb:Scan","dynamodb:Query","dynamodb:DescribeTable"],"Resource":["arn:aws:sqs:*:*:*","arn:aws:dynamodb:*:*:table/nimbus-stream-leases"]}"#

    /// Resolving a stack's references (`!GetAtt Table.StreamArn`) when a worker loads its function
    /// definition: CloudFormation's work in AWS, done here with the Lambda service's identity.
    static let stackResolution = #"{"Sid":"NimbusStackResolution","Effect":"Allow","Action":["dynamodb:ListStreams","dynamodb:DescribeTable"],"Resource":"arn:aws:dynamodb:*:*:table/*"}"#

    /// The links in SNS mails, which the gateway serves on SNS's behalf: in AWS they are public (the
    /// token, or the subscription ARN, is the credential), so API Gateway's service identity may
    /// forward exactly these two actions.
    static let subscriptionLinks = #"{"Sid":"NimbusSubscriptionLinks","Effect":"Allow","Action":["sns:ConfirmSubscription","sns:Unsubscribe"],"Resource":"arn:aws:sns:*:*:*"}"#

    static let servicePolicies: [String: PolicyDocument] = {
        func document(_ statements: [String]) -> PolicyDocument {
            try! PolicyDocument(json: #"{"Version":"2012-10-17","Statement":["# + statements.joined(separator: ",") + "]}")
        }
        return [
            "sqs.amazonaws.com": document([platformBase]),
            "dynamodb.amazonaws.com": document([platformBase]),
            "sns.amazonaws.com": document([platformBase]),
            "lambda.amazonaws.com": document([platformBase, lambdaInternal, stackResolution]),
            "apigateway.amazonaws.com": document([platformBase, subscriptionLinks]),
        ]
    }()

    /// The decision for a caller that is not an assumed role (root or a service principal), made
    /// locally with IAM's evaluation; nil when the caller is an assumed role (the IAM node decides).
    public static func localDecision(principal: String, account: String, action: String, resource: String,
                                     resourcePolicy: PolicyDocument?) -> Decision? {
        let request = AuthorizationRequest(principal: principal, action: action, resource: resource)
        if principal == root(account: account) {
            return PolicyEvaluator.evaluate(request, identityPolicies: [allowEverything], resourcePolicy: resourcePolicy)
        }
        if isServicePrincipal(principal) {
            let identity = servicePolicies[principal].map { [$0] } ?? []
            return PolicyEvaluator.evaluate(request, identityPolicies: identity, resourcePolicy: resourcePolicy)
        }
        return nil
    }
}

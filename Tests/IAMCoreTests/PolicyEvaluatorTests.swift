import Testing
@testable import IAMCore

let account = "000000000000"
let queueARN = "arn:aws:sqs:us-east-1:000000000000:POC-Queue"
let tableARN = "arn:aws:dynamodb:us-east-1:000000000000:table/orders"
let streamARN = "arn:aws:dynamodb:us-east-1:000000000000:table/orders/stream/2026-11-26T00:00:00.000"
let topicARN = "arn:aws:sns:us-east-1:000000000000:POC-Topic"
let ingestRole = "arn:aws:iam::000000000000:role/Lambda-SQS-DynamoDB"
let streamRole = "arn:aws:iam::000000000000:role/Lambda-DynamoDBStreams-SNS"
let gatewayRole = "arn:aws:iam::000000000000:role/APIGateway-SQS"

// The lab's four policies (Task 1), verbatim in substance.
let writeDynamo = #"{"Version":"2012-10-17","Statement":[{"Sid":"VisualEditor0","Effect":"Allow","Action":["dynamodb:PutItem","dynamodb:DescribeTable"],"Resource":"*"}]}"#
let snsPublish = #"{"Version":"2012-10-17","Statement":[{"Sid":"VisualEditor0","Effect":"Allow","Action":["sns:Publish","sns:GetTopicAttributes","sns:ListTopics"],"Resource":"*"}]}"#
let streamsRead = #"{"Version":"2012-10-17","Statement":[{"Sid":"VisualEditor0","Effect":"Allow","Action":["dynamodb:GetShardIterator","dynamodb:DescribeStream","dynamodb:ListStreams","dynamodb:GetRecords"],"Resource":"*"}]}"#
let readSQS = #"{"Version":"2012-10-17","Statement":[{"Sid":"VisualEditor0","Effect":"Allow","Action":["sqs:DeleteMessage","sqs:ReceiveMessage","sqs:GetQueueAttributes","sqs:ChangeMessageVisibility"],"Resource":"*"}]}"#
let pushLogs = #"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["logs:CreateLogGroup","logs:CreateLogStream","logs:DescribeLogGroups","logs:DescribeLogStreams","logs:PutLogEvents","logs:GetLogEvents","logs:FilterLogEvents"],"Resource":"*"}]}"#
// Task 3's "Basic" access policy for POC-Queue.
let queuePolicy = #"""
{"Version":"2012-10-17","Id":"__default_policy_ID","Statement":[
 {"Sid":"__owner_statement","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::000000000000:root"},"Action":"SQS:*","Resource":"arn:aws:sqs:us-east-1:000000000000:POC-Queue"},
 {"Sid":"__sender_statement","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::000000000000:role/APIGateway-SQS"]},"Action":"SQS:SendMessage","Resource":"arn:aws:sqs:us-east-1:000000000000:POC-Queue"},
 {"Sid":"__receiver_statement","Effect":"Allow","Principal":{"AWS":["arn:aws:iam::000000000000:role/Lambda-SQS-DynamoDB"]},"Action":["SQS:ChangeMessageVisibility","SQS:DeleteMessage","SQS:ReceiveMessage"],"Resource":"arn:aws:sqs:us-east-1:000000000000:POC-Queue"}]}
"""#

struct Case: CustomTestStringConvertible, Sendable {
    var name: String
    var identity: [String]
    var resource: String?
    var principal: String
    var action: String
    var target: String
    var context: [String: [String]] = [:]
    var expect: Decision
    var testDescription: String { name }
}

let roles: [String: [String]] = [
    ingestRole: [writeDynamo, readSQS],
    streamRole: [snsPublish, streamsRead],
    gatewayRole: [pushLogs],
]

func lab(_ name: String, _ principal: String, _ action: String, _ target: String, _ expect: Decision, queue: Bool = false) -> Case {
    Case(name: name, identity: roles[principal] ?? [], resource: queue ? queuePolicy : nil, principal: principal,
         action: action, target: target, expect: expect)
}

func one(_ statement: String) -> String { #"{"Version":"2012-10-17","Statement":[\#(statement)]}"# }

let cases: [Case] = [
    // The lab flow is allowed end to end.
    lab("gateway sends to POC-Queue through the queue policy", gatewayRole, "sqs:SendMessage", queueARN, .allow, queue: true),
    lab("gateway batch send is covered by SendMessage", gatewayRole, "sqs:SendMessageBatch", queueARN, .allow, queue: true),
    lab("ingest worker receives", ingestRole, "sqs:ReceiveMessage", queueARN, .allow, queue: true),
    lab("ingest worker deletes", ingestRole, "sqs:DeleteMessage", queueARN, .allow, queue: true),
    lab("ingest worker batch delete is covered by DeleteMessage", ingestRole, "sqs:DeleteMessageBatch", queueARN, .allow, queue: true),
    lab("ingest worker changes visibility in batch", ingestRole, "sqs:ChangeMessageVisibilityBatch", queueARN, .allow, queue: true),
    lab("ingest worker puts items", ingestRole, "dynamodb:PutItem", tableARN, .allow),
    lab("ingest worker describes the table", ingestRole, "dynamodb:DescribeTable", tableARN, .allow),
    lab("stream worker reads records", streamRole, "dynamodb:GetRecords", streamARN, .allow),
    lab("stream worker gets shard iterators", streamRole, "dynamodb:GetShardIterator", streamARN, .allow),
    lab("stream worker publishes", streamRole, "sns:Publish", topicARN, .allow),
    lab("stream worker publishes in batches (sns:Publish covers PublishBatch)", streamRole, "sns:PublishBatch", topicARN, .allow),
    lab("ingest worker cannot publish in batches either", ingestRole, "sns:PublishBatch", topicARN, .implicitDeny),
    lab("gateway pushes logs", gatewayRole, "logs:PutLogEvents", "arn:aws:logs:us-east-1:000000000000:log-group:x", .allow),
    // Each misuse is denied.
    lab("ingest worker cannot publish", ingestRole, "sns:Publish", topicARN, .implicitDeny),
    lab("ingest worker cannot read the stream", ingestRole, "dynamodb:GetRecords", streamARN, .implicitDeny),
    lab("stream worker cannot put items", streamRole, "dynamodb:PutItem", tableARN, .implicitDeny),
    lab("stream worker cannot receive", streamRole, "sqs:ReceiveMessage", queueARN, .implicitDeny, queue: true),
    lab("gateway cannot receive", gatewayRole, "sqs:ReceiveMessage", queueARN, .implicitDeny, queue: true),
    lab("gateway cannot put items", gatewayRole, "dynamodb:PutItem", tableARN, .implicitDeny),
    lab("a role not named in the queue policy cannot send", ingestRole, "sqs:SendMessage", queueARN, .implicitDeny, queue: true),
    lab("the account principal only delegates: no identity grant, no send", streamRole, "sqs:SendMessage", queueARN, .implicitDeny, queue: true),
    lab("the queue policy names POC-Queue only", gatewayRole, "sqs:SendMessage", "arn:aws:sqs:us-east-1:000000000000:Other", .implicitDeny, queue: true),
    lab("ReceiveMessage does not cover DeleteMessageBatch for the gateway", gatewayRole, "sqs:DeleteMessageBatch", queueARN, .implicitDeny, queue: true),
    // Wildcards and case.
    Case(name: "action wildcard *", identity: [one(#"{"Effect":"Allow","Action":"sqs:*","Resource":"*"}"#)], principal: ingestRole, action: "sqs:PurgeQueue", target: queueARN, expect: .allow),
    Case(name: "action wildcard ?", identity: [one(#"{"Effect":"Allow","Action":"sqs:?eleteMessage","Resource":"*"}"#)], principal: ingestRole, action: "sqs:DeleteMessage", target: queueARN, expect: .allow),
    Case(name: "action prefix wildcard", identity: [one(#"{"Effect":"Allow","Action":"dynamodb:Get*","Resource":"*"}"#)], principal: ingestRole, action: "dynamodb:GetItem", target: tableARN, expect: .allow),
    Case(name: "action prefix wildcard does not spill", identity: [one(#"{"Effect":"Allow","Action":"dynamodb:Get*","Resource":"*"}"#)], principal: ingestRole, action: "dynamodb:PutItem", target: tableARN, expect: .implicitDeny),
    Case(name: "actions match case-insensitively", identity: [one(#"{"Effect":"Allow","Action":"SQS:SENDMESSAGE","Resource":"*"}"#)], principal: ingestRole, action: "sqs:SendMessage", target: queueARN, expect: .allow),
    Case(name: "resources match case-sensitively", identity: [one(#"{"Effect":"Allow","Action":"sqs:*","Resource":"arn:aws:sqs:us-east-1:000000000000:poc-queue"}"#)], principal: ingestRole, action: "sqs:SendMessage", target: queueARN, expect: .implicitDeny),
    Case(name: "resource wildcard", identity: [one(#"{"Effect":"Allow","Action":"dynamodb:*","Resource":"arn:aws:dynamodb:*:*:table/orders*"}"#)], principal: ingestRole, action: "dynamodb:GetRecords", target: streamARN, expect: .allow),
    Case(name: "resource ? wildcard", identity: [one(#"{"Effect":"Allow","Action":"sqs:*","Resource":"arn:aws:sqs:us-east-1:000000000000:POC-Queu?"}"#)], principal: ingestRole, action: "sqs:SendMessage", target: queueARN, expect: .allow),
    Case(name: "an identity statement without Resource grants nothing", identity: [one(#"{"Effect":"Allow","Action":"sqs:*"}"#)], principal: ingestRole, action: "sqs:SendMessage", target: queueARN, expect: .implicitDeny),
    // Deny precedence.
    Case(name: "explicit deny beats allow in another policy", identity: [writeDynamo, one(#"{"Sid":"NoPut","Effect":"Deny","Action":"dynamodb:PutItem","Resource":"*"}"#)], principal: ingestRole, action: "dynamodb:PutItem", target: tableARN, expect: .explicitDeny(sid: "NoPut")),
    Case(name: "explicit deny in the resource policy beats identity allow", identity: [readSQS], resource: one(#"{"Sid":"X","Effect":"Deny","Principal":"*","Action":"sqs:ReceiveMessage","Resource":"*"}"#), principal: ingestRole, action: "sqs:ReceiveMessage", target: queueARN, expect: .explicitDeny(sid: "X")),
    Case(name: "deny naming the account covers its roles", identity: [readSQS], resource: one(#"{"Sid":"Acct","Effect":"Deny","Principal":{"AWS":"000000000000"},"Action":"sqs:*","Resource":"*"}"#), principal: ingestRole, action: "sqs:ReceiveMessage", target: queueARN, expect: .explicitDeny(sid: "Acct")),
    Case(name: "deny that does not match the action leaves the allow", identity: [writeDynamo, one(#"{"Effect":"Deny","Action":"dynamodb:DeleteItem","Resource":"*"}"#)], principal: ingestRole, action: "dynamodb:PutItem", target: tableARN, expect: .allow),
    Case(name: "nothing at all is an implicit deny", identity: [], principal: ingestRole, action: "sqs:SendMessage", target: queueARN, expect: .implicitDeny),
    // NotAction / NotResource / NotPrincipal.
    Case(name: "NotAction allows everything else", identity: [one(#"{"Effect":"Allow","NotAction":"sqs:DeleteQueue","Resource":"*"}"#)], principal: ingestRole, action: "sqs:SendMessage", target: queueARN, expect: .allow),
    Case(name: "NotAction excludes its own actions", identity: [one(#"{"Effect":"Allow","NotAction":"sqs:Delete*","Resource":"*"}"#)], principal: ingestRole, action: "sqs:DeleteQueue", target: queueARN, expect: .implicitDeny),
    Case(name: "Deny with NotAction denies all but the listed", identity: [one(#"{"Effect":"Allow","Action":"*","Resource":"*"}"#), one(#"{"Sid":"OnlyRead","Effect":"Deny","NotAction":"sqs:Receive*","Resource":"*"}"#)], principal: ingestRole, action: "sqs:SendMessage", target: queueARN, expect: .explicitDeny(sid: "OnlyRead")),
    Case(name: "NotResource allows other resources", identity: [one(#"{"Effect":"Allow","Action":"sqs:*","NotResource":"arn:aws:sqs:*:*:Secret*"}"#)], principal: ingestRole, action: "sqs:SendMessage", target: queueARN, expect: .allow),
    Case(name: "NotResource excludes its resources", identity: [one(#"{"Effect":"Allow","Action":"sqs:*","NotResource":"arn:aws:sqs:*:*:POC-*"}"#)], principal: ingestRole, action: "sqs:SendMessage", target: queueARN, expect: .implicitDeny),
    Case(name: "NotPrincipal in a resource policy", identity: [], resource: one(#"{"Effect":"Allow","NotPrincipal":{"AWS":"arn:aws:iam::000000000000:role/APIGateway-SQS"},"Action":"sqs:*","Resource":"*"}"#), principal: ingestRole, action: "sqs:SendMessage", target: queueARN, expect: .allow),
    Case(name: "NotPrincipal excludes the named role", identity: [], resource: one(#"{"Effect":"Allow","NotPrincipal":{"AWS":"arn:aws:iam::000000000000:role/APIGateway-SQS"},"Action":"sqs:*","Resource":"*"}"#), principal: gatewayRole, action: "sqs:SendMessage", target: queueARN, expect: .implicitDeny),
    // Principals.
    Case(name: "resource policy with Principal * allows anyone", identity: [], resource: one(#"{"Effect":"Allow","Principal":"*","Action":"sqs:SendMessage","Resource":"*"}"#), principal: streamRole, action: "sqs:SendMessage", target: queueARN, expect: .allow),
    Case(name: "an assumed-role session is its role", identity: [], resource: queuePolicy, principal: "arn:aws:sts::000000000000:assumed-role/APIGateway-SQS/gateway-1", action: "sqs:SendMessage", target: queueARN, expect: .allow),
    Case(name: "a resource statement without principal applies to no one", identity: [], resource: one(#"{"Effect":"Allow","Action":"sqs:*","Resource":"*"}"#), principal: ingestRole, action: "sqs:SendMessage", target: queueARN, expect: .implicitDeny),
    Case(name: "trust policy admits the Lambda service", identity: [], resource: one(#"{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}"#), principal: "lambda.amazonaws.com", action: "sts:AssumeRole", target: ingestRole, expect: .allow),
    Case(name: "trust policy refuses another service", identity: [], resource: one(#"{"Effect":"Allow","Principal":{"Service":"lambda.amazonaws.com"},"Action":"sts:AssumeRole"}"#), principal: "apigateway.amazonaws.com", action: "sts:AssumeRole", target: ingestRole, expect: .implicitDeny),
    // Conditions.
    Case(name: "StringEquals holds", identity: [one(#"{"Effect":"Allow","Action":"sqs:*","Resource":"*","Condition":{"StringEquals":{"aws:SourceAccount":"000000000000"}}}"#)], principal: ingestRole, action: "sqs:SendMessage", target: queueARN, context: ["aws:SourceAccount": ["000000000000"]], expect: .allow),
    Case(name: "StringEquals fails on another value", identity: [one(#"{"Effect":"Allow","Action":"sqs:*","Resource":"*","Condition":{"StringEquals":{"aws:SourceAccount":"000000000000"}}}"#)], principal: ingestRole, action: "sqs:SendMessage", target: queueARN, context: ["aws:SourceAccount": ["111111111111"]], expect: .implicitDeny),
    Case(name: "condition key names are case-insensitive", identity: [one(#"{"Effect":"Allow","Action":"sqs:*","Resource":"*","Condition":{"StringEquals":{"AWS:SOURCEACCOUNT":"000000000000"}}}"#)], principal: ingestRole, action: "sqs:SendMessage", target: queueARN, context: ["aws:SourceAccount": ["000000000000"]], expect: .allow),
    Case(name: "a missing key fails a positive condition", identity: [one(#"{"Effect":"Allow","Action":"sqs:*","Resource":"*","Condition":{"StringEquals":{"aws:SourceAccount":"000000000000"}}}"#)], principal: ingestRole, action: "sqs:SendMessage", target: queueARN, expect: .implicitDeny),
    Case(name: "IfExists passes when the key is missing", identity: [one(#"{"Effect":"Allow","Action":"sqs:*","Resource":"*","Condition":{"StringEqualsIfExists":{"aws:SourceAccount":"000000000000"}}}"#)], principal: ingestRole, action: "sqs:SendMessage", target: queueARN, expect: .allow),
    Case(name: "values within a key are OR-ed", identity: [one(#"{"Effect":"Allow","Action":"sqs:*","Resource":"*","Condition":{"StringEquals":{"aws:RequestedRegion":["eu-west-1","us-east-1"]}}}"#)], principal: ingestRole, action: "sqs:SendMessage", target: queueARN, context: ["aws:RequestedRegion": ["us-east-1"]], expect: .allow),
    Case(name: "keys are AND-ed", identity: [one(#"{"Effect":"Allow","Action":"sqs:*","Resource":"*","Condition":{"StringEquals":{"aws:RequestedRegion":"us-east-1","aws:SourceAccount":"000000000000"}}}"#)], principal: ingestRole, action: "sqs:SendMessage", target: queueARN, context: ["aws:RequestedRegion": ["us-east-1"], "aws:SourceAccount": ["9"]], expect: .implicitDeny),
    Case(name: "StringLike with wildcard", identity: [one(#"{"Effect":"Allow","Action":"sqs:*","Resource":"*","Condition":{"StringLike":{"aws:userid":"AROA*:gateway-*"}}}"#)], principal: ingestRole, action: "sqs:SendMessage", target: queueARN, context: ["aws:userid": ["AROAXYZ:gateway-1"]], expect: .allow),
    Case(name: "StringNotEquals passes on a missing key", identity: [one(#"{"Effect":"Allow","Action":"sqs:*","Resource":"*","Condition":{"StringNotEquals":{"aws:SourceAccount":"111111111111"}}}"#)], principal: ingestRole, action: "sqs:SendMessage", target: queueARN, expect: .allow),
    Case(name: "StringNotEquals fails on the named value", identity: [one(#"{"Effect":"Allow","Action":"sqs:*","Resource":"*","Condition":{"StringNotEquals":{"aws:SourceAccount":"111111111111"}}}"#)], principal: ingestRole, action: "sqs:SendMessage", target: queueARN, context: ["aws:SourceAccount": ["111111111111"]], expect: .implicitDeny),
    Case(name: "ArnLike on aws:SourceArn", identity: [], resource: one(#"{"Effect":"Allow","Principal":{"Service":"sns.amazonaws.com"},"Action":"sqs:SendMessage","Resource":"*","Condition":{"ArnLike":{"aws:SourceArn":"arn:aws:sns:*:000000000000:POC-*"}}}"#), principal: "sns.amazonaws.com", action: "sqs:SendMessage", target: queueARN, context: ["aws:SourceArn": [topicARN]], expect: .allow),
    Case(name: "ArnEquals rejects another topic", identity: [], resource: one(#"{"Effect":"Allow","Principal":{"Service":"sns.amazonaws.com"},"Action":"sqs:SendMessage","Resource":"*","Condition":{"ArnEquals":{"aws:SourceArn":"arn:aws:sns:us-east-1:000000000000:POC-Topic"}}}"#), principal: "sns.amazonaws.com", action: "sqs:SendMessage", target: queueARN, context: ["aws:SourceArn": ["arn:aws:sns:us-east-1:000000000000:Other"]], expect: .implicitDeny),
    Case(name: "Bool aws:SecureTransport false denies", identity: [readSQS], resource: one(#"{"Sid":"TLS","Effect":"Deny","Principal":"*","Action":"sqs:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":false}}}"#), principal: ingestRole, action: "sqs:ReceiveMessage", target: queueARN, context: ["aws:SecureTransport": ["false"]], expect: .explicitDeny(sid: "TLS")),
    Case(name: "Bool with true transport passes the deny", identity: [readSQS], resource: one(#"{"Sid":"TLS","Effect":"Deny","Principal":"*","Action":"sqs:*","Resource":"*","Condition":{"Bool":{"aws:SecureTransport":false}}}"#), principal: ingestRole, action: "sqs:ReceiveMessage", target: queueARN, context: ["aws:SecureTransport": ["true"]], expect: .allow),
    Case(name: "NumericLessThan holds", identity: [one(#"{"Effect":"Allow","Action":"sqs:ReceiveMessage","Resource":"*","Condition":{"NumericLessThan":{"sqs:MaxNumberOfMessages":"11"}}}"#)], principal: ingestRole, action: "sqs:ReceiveMessage", target: queueARN, context: ["sqs:MaxNumberOfMessages": ["10"]], expect: .allow),
    Case(name: "NumericLessThan fails at the bound", identity: [one(#"{"Effect":"Allow","Action":"sqs:ReceiveMessage","Resource":"*","Condition":{"NumericLessThan":{"sqs:MaxNumberOfMessages":"10"}}}"#)], principal: ingestRole, action: "sqs:ReceiveMessage", target: queueARN, context: ["sqs:MaxNumberOfMessages": ["10"]], expect: .implicitDeny),
    Case(name: "NumericGreaterThanEquals holds", identity: [one(#"{"Effect":"Allow","Action":"sqs:*","Resource":"*","Condition":{"NumericGreaterThanEquals":{"n":5}}}"#)], principal: ingestRole, action: "sqs:SendMessage", target: queueARN, context: ["n": ["5"]], expect: .allow),
    Case(name: "DateLessThan on aws:CurrentTime", identity: [one(#"{"Effect":"Allow","Action":"sqs:*","Resource":"*","Condition":{"DateLessThan":{"aws:CurrentTime":"2030-01-01T00:00:00Z"}}}"#)], principal: ingestRole, action: "sqs:SendMessage", target: queueARN, context: ["aws:CurrentTime": ["2026-11-26T12:00:00Z"]], expect: .allow),
    Case(name: "Null true requires the key to be absent", identity: [one(#"{"Effect":"Allow","Action":"sqs:*","Resource":"*","Condition":{"Null":{"aws:SourceArn":"true"}}}"#)], principal: ingestRole, action: "sqs:SendMessage", target: queueARN, context: ["aws:SourceArn": [topicARN]], expect: .implicitDeny),
    Case(name: "ForAllValues with all values allowed", identity: [one(#"{"Effect":"Allow","Action":"dynamodb:*","Resource":"*","Condition":{"ForAllValues:StringEquals":{"dynamodb:Attributes":["orderID","order"]}}}"#)], principal: ingestRole, action: "dynamodb:PutItem", target: tableARN, context: ["dynamodb:Attributes": ["orderID", "order"]], expect: .allow),
    Case(name: "ForAllValues with one value outside", identity: [one(#"{"Effect":"Allow","Action":"dynamodb:*","Resource":"*","Condition":{"ForAllValues:StringEquals":{"dynamodb:Attributes":["orderID","order"]}}}"#)], principal: ingestRole, action: "dynamodb:PutItem", target: tableARN, context: ["dynamodb:Attributes": ["orderID", "secret"]], expect: .implicitDeny),
    Case(name: "ForAnyValue with one value inside", identity: [one(#"{"Effect":"Allow","Action":"dynamodb:*","Resource":"*","Condition":{"ForAnyValue:StringEquals":{"dynamodb:Attributes":["orderID"]}}}"#)], principal: ingestRole, action: "dynamodb:PutItem", target: tableARN, context: ["dynamodb:Attributes": ["x", "orderID"]], expect: .allow),
    Case(name: "an unknown operator never matches", identity: [one(#"{"Effect":"Allow","Action":"sqs:*","Resource":"*","Condition":{"StringSoundsLike":{"k":"v"}}}"#)], principal: ingestRole, action: "sqs:SendMessage", target: queueARN, context: ["k": ["v"]], expect: .implicitDeny),
]

@Suite struct PolicyEvaluatorTests {
    @Test(arguments: cases)
    func evaluation(_ c: Case) throws {
        let identity = try c.identity.map { try PolicyDocument(json: $0) }
        let resource = try c.resource.map { try PolicyDocument(json: $0) }
        let decision = PolicyEvaluator.evaluate(
            AuthorizationRequest(principal: c.principal, action: c.action, resource: c.target, context: c.context),
            identityPolicies: identity, resourcePolicy: resource)
        #expect(decision == c.expect)
    }

    @Test func theTableIsLargeEnough() { #expect(cases.count >= 40) }

    @Test(arguments: [
        "not json", "[]", #"{"Statement": 5}"#,
        #"{"Statement":[{"Effect":"Maybe","Action":"*","Resource":"*"}]}"#,
        #"{"Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
        #"{"Statement":[{"Effect":"Allow","Action":"*","NotAction":"x","Resource":"*"}]}"#,
        #"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","NotResource":"*"}]}"#,
        #"{"Statement":[{"Effect":"Allow","Action":5,"Resource":"*"}]}"#,
        #"{"Version":"2099-01-01","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        #"{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*","Principal":5}]}"#,
    ])
    func malformedPoliciesAreRefused(text: String) {
        #expect(throws: PolicyError.self) { try PolicyDocument(json: text) }
    }

    @Test func globsBehave() {
        #expect(Glob.matches("*", "", caseInsensitive: false))
        #expect(Glob.matches("a*b*c", "aXXbYYc", caseInsensitive: false))
        #expect(!Glob.matches("a*b*c", "aXXbYY", caseInsensitive: false))
        #expect(Glob.matches("a?c", "abc", caseInsensitive: false))
        #expect(!Glob.matches("a?c", "ac", caseInsensitive: false))
        #expect(Glob.matches("SQS:*", "sqs:SendMessage", caseInsensitive: true))
    }
}

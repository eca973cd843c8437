"""The IAM authorizer: the lab's policies and roles exist at start, IAM actions work over the wire and
persist across a SIGKILL, and decisions (iam:SimulatePrincipalPolicy) follow attachments.

Signing and enforcement in the other services are not built yet; this covers the authorizer itself.
"""

from __future__ import annotations

import json
import os
import signal

from conftest import SQS, SQSError, process_by_name, wait_until

ACCOUNT = "000000000000"
LAB_POLICIES = ["Lambda-Write-DynamoDB", "Lambda-SNS-Publish", "Lambda-DynamoDBStreams-Read", "Lambda-Read-SQS"]
LAB_ROLES = {
    "Lambda-SQS-DynamoDB": ["Lambda-Write-DynamoDB", "Lambda-Read-SQS"],
    "Lambda-DynamoDBStreams-SNS": ["Lambda-SNS-Publish", "Lambda-DynamoDBStreams-Read"],
    "APIGateway-SQS": ["AmazonAPIGatewayPushToCloudWatchLogs"],
}
TRUST = {"lambda": "lambda.amazonaws.com", "apigateway": "apigateway.amazonaws.com"}


def role_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def policy_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:policy/{name}"


def iam(cluster) -> SQS:
    # The SQS helper is a generic request client; actions with a service prefix go as they are.
    return SQS(cluster.endpoint("iam"))


def decide(client: SQS, role: str, action: str, resource: str = "*", resource_policy: str | None = None) -> str:
    request = {"PolicySourceArn": role_arn(role), "ActionNames": [action], "ResourceArns": [resource]}
    if resource_policy is not None:
        request["ResourcePolicy"] = resource_policy
    return client("iam:SimulatePrincipalPolicy", request)["EvaluationResults"][0]["EvalDecision"]


def attached(client: SQS, role: str) -> list[str]:
    return sorted(p["PolicyName"] for p in client("iam:ListAttachedRolePolicies", {"RoleName": role})["AttachedPolicies"])


def test_the_lab_policies_and_roles_exist_at_start(cluster):
    with iam(cluster) as client:
        local = {p["PolicyName"]: p for p in client("iam:ListPolicies", {"Scope": "Local"})["Policies"]}
        assert sorted(local) == sorted(LAB_POLICIES)
        policy = client("iam:GetPolicy", {"PolicyArn": policy_arn("Lambda-Write-DynamoDB")})["Policy"]
        assert policy["Arn"] == policy_arn("Lambda-Write-DynamoDB") and policy["AttachmentCount"] == 1
        roles = {r["RoleName"]: r for r in client("iam:ListRoles")["Roles"]}
        assert sorted(roles) == sorted(LAB_ROLES)
        for role, policies in LAB_ROLES.items():
            assert attached(client, role) == sorted(policies)
        trust = json.loads(roles["APIGateway-SQS"]["AssumeRolePolicyDocument"])
        assert trust["Statement"][0]["Principal"] == {"Service": TRUST["apigateway"]}


def test_decisions_follow_the_lab_policies(cluster):
    with iam(cluster) as client:
        assert decide(client, "Lambda-SQS-DynamoDB", "dynamodb:PutItem") == "allowed"
        assert decide(client, "Lambda-SQS-DynamoDB", "sqs:ReceiveMessage") == "allowed"
        assert decide(client, "Lambda-SQS-DynamoDB", "sns:Publish") == "implicitDeny"
        assert decide(client, "Lambda-SQS-DynamoDB", "dynamodb:GetRecords") == "implicitDeny"
        assert decide(client, "Lambda-DynamoDBStreams-SNS", "sns:Publish") == "allowed"
        assert decide(client, "Lambda-DynamoDBStreams-SNS", "dynamodb:PutItem") == "implicitDeny"
        assert decide(client, "Lambda-DynamoDBStreams-SNS", "sqs:ReceiveMessage") == "implicitDeny"
        assert decide(client, "APIGateway-SQS", "sqs:ReceiveMessage") == "implicitDeny"
        assert decide(client, "APIGateway-SQS", "dynamodb:PutItem") == "implicitDeny"
        assert decide(client, "APIGateway-SQS", "logs:PutLogEvents") == "allowed"


def test_iam_errors_use_iam_codes(cluster):
    with iam(cluster) as client:
        assert client.error("iam:GetRole", {"RoleName": "Nope"}) == "NoSuchEntity"
        assert client.error("iam:CreatePolicy", {"PolicyName": "Lambda-Read-SQS", "PolicyDocument": "{}"}) == "EntityAlreadyExists"
        assert client.error("iam:CreatePolicy", {"PolicyName": "Broken", "PolicyDocument": "{not json"}) == "MalformedPolicyDocument"
        assert client.error("iam:DeletePolicy", {"PolicyArn": policy_arn("Lambda-Read-SQS")}) == "DeleteConflict"
        assert client.error("iam:DeleteRole", {"RoleName": "APIGateway-SQS"}) == "DeleteConflict"
        assert client.error("iam:CreateRole", {"RoleName": "bad name", "AssumeRolePolicyDocument": "{}"}) == "ValidationError"
        assert client.error("iam:NoSuchAction", {}) == "InvalidAction"


def test_detach_revokes_reattach_restores_and_both_survive_a_sigkill(cluster):
    with iam(cluster) as client:
        client("iam:DetachRolePolicy", {"RoleName": "Lambda-SQS-DynamoDB", "PolicyArn": policy_arn("Lambda-Write-DynamoDB")})
        assert decide(client, "Lambda-SQS-DynamoDB", "dynamodb:PutItem") == "implicitDeny"
        client("iam:CreatePolicy", {"PolicyName": "Extra", "PolicyDocument": json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:PurgeQueue", "Resource": "*"}]})})
        client("iam:AttachRolePolicy", {"RoleName": "Lambda-SQS-DynamoDB", "PolicyArn": policy_arn("Extra")})
    old = process_by_name(cluster.status(), "iam")
    os.kill(old["pid"], signal.SIGKILL)

    def back():
        p = process_by_name(cluster.status(), "iam")
        return p if p and p["state"] == "running" and p["pid"] != old["pid"] else None

    wait_until(back, timeout=10, message="iam restarted")
    with iam(cluster) as client:
        # The detach survived the restart (the stack only attaches when it creates the role).
        assert attached(client, "Lambda-SQS-DynamoDB") == ["Extra", "Lambda-Read-SQS"]
        assert decide(client, "Lambda-SQS-DynamoDB", "dynamodb:PutItem") == "implicitDeny"
        assert decide(client, "Lambda-SQS-DynamoDB", "sqs:PurgeQueue") == "allowed"
        client("iam:AttachRolePolicy", {"RoleName": "Lambda-SQS-DynamoDB", "PolicyArn": policy_arn("Lambda-Write-DynamoDB")})
        assert decide(client, "Lambda-SQS-DynamoDB", "dynamodb:PutItem") == "allowed"
        client("iam:DetachRolePolicy", {"RoleName": "Lambda-SQS-DynamoDB", "PolicyArn": policy_arn("Extra")})
        client("iam:DeletePolicy", {"PolicyArn": policy_arn("Extra")})
        try:
            client("iam:GetPolicy", {"PolicyArn": policy_arn("Extra")})
            raise AssertionError("a deleted policy is still there")
        except SQSError as error:
            assert error.code == "NoSuchEntity"


def test_the_queue_policy_admits_only_the_lab_roles(cluster):
    with SQS(cluster.endpoint("queue")) as queue:
        url = f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/POC-Queue"
        policy = wait_until(lambda: queue("GetQueueAttributes", {"QueueUrl": url, "AttributeNames": ["Policy"]})["Attributes"].get("Policy"),
                            timeout=10, message="POC-Queue has its access policy")
    document = json.loads(policy)
    senders = [s for s in document["Statement"] if s["Sid"] == "__sender_statement"][0]
    assert senders["Principal"] == {"AWS": [role_arn("APIGateway-SQS")]}
    queue_arn = f"arn:aws:sqs:us-east-1:{ACCOUNT}:POC-Queue"

    def decide_with_queue_policy(client: SQS, role: str, action: str) -> str:
        return decide(client, role, action, queue_arn, resource_policy=policy)

    with iam(cluster) as client:
        assert decide_with_queue_policy(client, "APIGateway-SQS", "sqs:SendMessage") == "allowed"
        assert decide_with_queue_policy(client, "APIGateway-SQS", "sqs:SendMessageBatch") == "allowed"
        assert decide_with_queue_policy(client, "Lambda-SQS-DynamoDB", "sqs:ReceiveMessage") == "allowed"
        assert decide_with_queue_policy(client, "Lambda-SQS-DynamoDB", "sqs:SendMessage") == "implicitDeny"
        assert decide_with_queue_policy(client, "APIGateway-SQS", "sqs:ReceiveMessage") == "implicitDeny"
        assert decide_with_queue_policy(client, "Lambda-DynamoDBStreams-SNS", "sqs:ReceiveMessage") == "implicitDeny"

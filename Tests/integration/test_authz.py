"""IAM enforcement end to end (docs/protocol.md "Authentication", docs/architecture.md "Credentials").

What is tested, following AWS's evaluation within one account (allowed when an identity policy OR
the resource policy allows, and nothing denies):
- each lab role is denied what its policies do not grant (AccessDenied naming principal, action
  and resource);
- a role with no sqs:SendMessage in its identity policies and not named in POC-Queue's policy
  cannot send; the same role granted sqs:SendMessage on * by an identity policy can (identity OR
  resource policy), as in AWS;
- unsigned, forged, stale, expired-credential and replayed frames get MissingAuthenticationToken,
  SignatureDoesNotMatch, RequestExpired, ExpiredToken and RequestReplayed;
- detaching Lambda-Write-DynamoDB from the ingest worker's role stops its PutItem within the
  decision cache's life, and re-attaching restores it.
"""

from __future__ import annotations

import json
import time

import pytest

from conftest import (ACCOUNT, PROTOCOL_TAG, NimbusClient, new_id, pid_alive, queue_url, root_credentials_for, sign_header, wait_until,
                      wait_for_queue)

POC = queue_url("POC-Queue")
ORDERS = "orders"
TOPIC = f"arn:aws:sns:us-east-1:{ACCOUNT}:POC-Topic"
LAMBDA = "lambda.amazonaws.com"
APIGW = "apigateway.amazonaws.com"


@pytest.fixture(scope="module", autouse=True)
def ready(cluster):
    wait_for_queue(cluster, "POC-Queue")


def call(cluster, node: str, action: str, body: dict, credentials: dict | None = None, timeout: float = 5.0):
    with NimbusClient(cluster.endpoint(node), credentials=credentials) as client:
        header, answer = client.request(action, body, timeout=timeout)
    return header["kind"], answer


def assume(cluster, role: str, service: str, session: str = "it", duration: int | None = None) -> dict:
    body = {"RoleArn": f"arn:aws:iam::{ACCOUNT}:role/{role}", "RoleSessionName": session, "ServicePrincipal": service}
    if duration:
        body["DurationSeconds"] = duration
    kind, answer = call(cluster, "iam", "sts:AssumeRole", body)
    assert kind == "reply", answer
    return answer["Credentials"]


def denied(kind: str, answer: dict, principal_part: str, action: str):
    assert kind == "error", answer
    assert answer["code"] == "AccessDenied", answer
    assert principal_part in answer["message"] and action in answer["message"] and "on resource:" in answer["message"], answer


PUT = {"TableName": ORDERS, "Item": {"orderID": {"S": "authz-test"}}}


@pytest.mark.parametrize("role,service,node,action,body", [
    ("Lambda-SQS-DynamoDB", LAMBDA, "notifier", "sns:Publish", {"TopicArn": TOPIC, "Message": "x"}),
    ("Lambda-SQS-DynamoDB", LAMBDA, "table", "dynamodb:GetRecords", {"ShardIterator": "x"}),
    ("Lambda-DynamoDBStreams-SNS", LAMBDA, "table", "dynamodb:PutItem", PUT),
    ("Lambda-DynamoDBStreams-SNS", LAMBDA, "queue", "sqs:ReceiveMessage", {"QueueUrl": POC}),
    ("APIGateway-SQS", APIGW, "queue", "sqs:ReceiveMessage", {"QueueUrl": POC}),
    ("APIGateway-SQS", APIGW, "table", "dynamodb:PutItem", PUT),
])
def test_each_lab_role_is_denied_what_it_is_not_granted(cluster, role, service, node, action, body):
    credentials = assume(cluster, role, service)
    kind, answer = call(cluster, node, action, body, credentials)
    denied(kind, answer, f"assumed-role/{role}/it", action)


def test_lab_roles_may_do_their_jobs(cluster):
    gateway = assume(cluster, "APIGateway-SQS", APIGW)
    kind, answer = call(cluster, "queue", "sqs:SendMessage", {"QueueUrl": POC, "MessageBody": "{\"item\":\"authz\"}"}, gateway)
    assert kind == "reply", answer  # allowed by the queue policy's __sender_statement only
    ingest = assume(cluster, "Lambda-SQS-DynamoDB", LAMBDA)
    kind, answer = call(cluster, "table", "dynamodb:PutItem", PUT, ingest)
    assert kind == "reply", answer


def test_a_role_needs_an_identity_or_resource_policy_to_send(cluster):
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": LAMBDA}, "Action": "sts:AssumeRole"}]}
    kind, answer = call(cluster, "iam", "iam:CreateRole", {"RoleName": "Outsider", "AssumeRolePolicyDocument": json.dumps(trust)})
    assert kind == "reply", answer
    outsider = assume(cluster, "Outsider", LAMBDA)
    send = {"QueueUrl": POC, "MessageBody": "from outside"}
    denied(*call(cluster, "queue", "sqs:SendMessage", send, outsider), "assumed-role/Outsider/it", "sqs:SendMessage")
    # A role not trusted for the service cannot be assumed at all.
    kind, answer = call(cluster, "iam", "sts:AssumeRole", {"RoleArn": f"arn:aws:iam::{ACCOUNT}:role/Outsider", "RoleSessionName": "xx",
                                                           "ServicePrincipal": APIGW})
    assert kind == "error" and answer["code"] == "AccessDenied", answer
    # AWS: within one account an identity policy alone is enough, even though the queue policy does not name the role.
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}]}
    kind, answer = call(cluster, "iam", "iam:CreatePolicy", {"PolicyName": "Outsider-Send", "PolicyDocument": json.dumps(doc)})
    assert kind == "reply", answer
    arn = answer["Policy"]["Arn"]
    kind, answer = call(cluster, "iam", "iam:AttachRolePolicy", {"RoleName": "Outsider", "PolicyArn": arn})
    assert kind == "reply", answer
    # SendMessageBatch is covered by the SendMessage permission.
    batch = {"QueueUrl": POC, "Entries": [{"Id": "a", "MessageBody": "b"}]}
    wait_until(lambda: call(cluster, "queue", "sqs:SendMessageBatch", batch, outsider)[0] == "reply", timeout=10,
               message="identity policy grants SendMessage(Batch)")
    call(cluster, "iam", "iam:DetachRolePolicy", {"RoleName": "Outsider", "PolicyArn": arn})


def raw_request(cluster, node: str, header: dict, body: bytes):
    with NimbusClient(cluster.endpoint(node), sign=False) as client:
        client.send_frames([PROTOCOL_TAG, json.dumps(header).encode(), body])
        return client.recv(5.0)


def test_unsigned_forged_stale_expired_and_replayed_frames_are_rejected(cluster):
    root = root_credentials_for(cluster.endpoint("queue"))
    body = json.dumps({"QueueUrl": POC}).encode()

    def header(**extra):
        return {"kind": "request", "id": new_id(), "action": "sqs:GetQueueAttributes", **extra}

    _, answer = raw_request(cluster, "queue", header(), body)
    assert answer["code"] == "MissingAuthenticationToken", answer
    h = sign_header(header(), body, root)
    h["auth"]["signature"] = "0" * 64
    assert raw_request(cluster, "queue", h, body)[1]["code"] == "SignatureDoesNotMatch"
    h = sign_header(header(), body, root)
    assert raw_request(cluster, "queue", h, body.replace(b"POC-Queue", b"POC-Queue-DLQ"))[1]["code"] == "SignatureDoesNotMatch"
    h = sign_header(header(), body, {**root, "AccessKeyId": "AKIANOTAKEYATALL0000"})
    assert raw_request(cluster, "queue", h, body)[1]["code"] == "InvalidClientTokenId"
    h = sign_header(header(), body, root, timestamp_ms=int(time.time() * 1000) - 600_000)
    assert raw_request(cluster, "queue", h, body)[1]["code"] == "RequestExpired"
    h = sign_header(header(), body, root)
    first = raw_request(cluster, "queue", dict(h), body)
    assert first[0]["kind"] == "reply", first
    assert raw_request(cluster, "queue", h, body)[1]["code"] == "RequestReplayed"
    short = assume(cluster, "Lambda-SQS-DynamoDB", LAMBDA, duration=5)
    time.sleep(5.5)
    h = sign_header(header(), body, short)
    assert raw_request(cluster, "queue", h, body)[1]["code"] == "ExpiredToken"


def test_detaching_a_policy_revokes_and_reattaching_restores(cluster):
    ingest = assume(cluster, "Lambda-SQS-DynamoDB", LAMBDA)
    arn = f"arn:aws:iam::{ACCOUNT}:policy/Lambda-Write-DynamoDB"
    assert call(cluster, "table", "dynamodb:PutItem", PUT, ingest)[0] == "reply"
    kind, answer = call(cluster, "iam", "iam:DetachRolePolicy", {"RoleName": "Lambda-SQS-DynamoDB", "PolicyArn": arn})
    assert kind == "reply", answer
    try:
        # the decision cache lives 5 s; the policy version poll usually drops it within ~1 s
        wait_until(lambda: call(cluster, "table", "dynamodb:PutItem", PUT, ingest)[1].get("code") == "AccessDenied", timeout=7,
                   message="PutItem denied after the detach")
    finally:
        kind, answer = call(cluster, "iam", "iam:AttachRolePolicy", {"RoleName": "Lambda-SQS-DynamoDB", "PolicyArn": arn})
        assert kind == "reply", answer
    wait_until(lambda: call(cluster, "table", "dynamodb:PutItem", PUT, ingest)[0] == "reply", timeout=7,
               message="PutItem allowed again after re-attaching")


def test_credentials_files_are_private_and_the_lab_flow_runs_as_the_roles(cluster):
    folder = cluster.directory / "data" / "credentials"
    assert oct(folder.stat().st_mode & 0o777) == "0o700"
    for name in ["root", "gateway", "ingest-worker-1", "stream-worker-1", "queue"]:
        path = folder / f"{name}.json"
        assert oct(path.stat().st_mode & 0o777) == "0o600", path
    assert "assumed-role/Lambda-SQS-DynamoDB/ingest-worker-1" in json.loads((folder / "ingest-worker-1.json").read_text())["Principal"]
    kind, answer = call(cluster, "iam", "sts:GetCallerIdentity", {})
    assert kind == "reply" and answer["Arn"] == f"arn:aws:iam::{ACCOUNT}:root", answer


def test_a_batch_is_authorized_on_each_table_it_names(cluster):
    """As in AWS, BatchWriteItem and BatchGetItem need the permission on every table in RequestItems."""
    spec = {"AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}], "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
            "BillingMode": "PAY_PER_REQUEST"}
    kind, answer = call(cluster, "table", "dynamodb:CreateTable", {"TableName": "authz-other", **spec})
    assert kind == "reply", answer
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": LAMBDA}, "Action": "sts:AssumeRole"}]}
    assert call(cluster, "iam", "iam:CreateRole", {"RoleName": "Batcher", "AssumeRolePolicyDocument": json.dumps(trust)})[0] == "reply"
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["dynamodb:BatchWriteItem", "dynamodb:BatchGetItem"],
                                                   "Resource": f"arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/{ORDERS}"}]}
    kind, answer = call(cluster, "iam", "iam:CreatePolicy", {"PolicyName": "Batch-Orders-Only", "PolicyDocument": json.dumps(doc)})
    assert kind == "reply", answer
    assert call(cluster, "iam", "iam:AttachRolePolicy", {"RoleName": "Batcher", "PolicyArn": answer["Policy"]["Arn"]})[0] == "reply"
    batcher = assume(cluster, "Batcher", LAMBDA)

    mine = {"PutRequest": {"Item": {"orderID": {"S": "batch-authz-1"}}}}
    kind, answer = call(cluster, "table", "dynamodb:BatchWriteItem", {"RequestItems": {ORDERS: [mine]}}, batcher)
    assert kind == "reply", answer
    # One table too many: denied as a whole, naming the table, and nothing of it is written.
    both = {"RequestItems": {ORDERS: [{"PutRequest": {"Item": {"orderID": {"S": "batch-authz-2"}}}}],
                             "authz-other": [{"PutRequest": {"Item": {"k": {"S": "x"}}}}]}}
    kind, answer = call(cluster, "table", "dynamodb:BatchWriteItem", both, batcher)
    denied(kind, answer, "assumed-role/Batcher/it", "dynamodb:BatchWriteItem")
    assert answer["message"].endswith("table/authz-other"), answer
    kind, answer = call(cluster, "table", "dynamodb:GetItem", {"TableName": ORDERS, "Key": {"orderID": {"S": "batch-authz-2"}}})
    assert kind == "reply" and "Item" not in answer, answer
    kind, answer = call(cluster, "table", "dynamodb:BatchGetItem",
                        {"RequestItems": {ORDERS: {"Keys": [{"orderID": {"S": "batch-authz-1"}}]}}}, batcher)
    assert kind == "reply" and len(answer["Responses"][ORDERS]) == 1, answer
    kind, answer = call(cluster, "table", "dynamodb:BatchGetItem", {"RequestItems": {"authz-other": {"Keys": [{"k": {"S": "x"}}]}}}, batcher)
    denied(kind, answer, "assumed-role/Batcher/it", "dynamodb:BatchGetItem")


def test_the_control_socket_takes_changes_from_the_root_only(cluster):
    """nimbus:Scale/Kill/Stop need the account root's signature (the CLI's); Status stays open."""
    def pid_of(name: str) -> int:
        kind, status = raw_request(cluster, "supervisor", {"kind": "request", "id": new_id(), "action": "nimbus:Status"}, b"{}")
        assert kind["kind"] == "reply", status
        return next(p["pid"] for p in status["processes"] if p["name"] == name)

    body = json.dumps({"name": "notifier"}).encode()
    before = pid_of("notifier")

    def kill(**extra):
        return raw_request(cluster, "supervisor", {"kind": "request", "id": new_id(), "action": "nimbus:Kill", **extra}, body)

    assert kill()[1]["code"] == "MissingAuthenticationToken"
    role = assume(cluster, "Lambda-SQS-DynamoDB", LAMBDA)
    kind, answer = raw_request(cluster, "supervisor", sign_header({"kind": "request", "id": new_id(), "action": "nimbus:Kill"}, body, role), body)
    assert answer["code"] == "AccessDenied" and "only the account root" in answer["message"], answer
    root = root_credentials_for(cluster.endpoint("queue"))
    forged = sign_header({"kind": "request", "id": new_id(), "action": "nimbus:Kill"}, body, {**root, "SecretAccessKey": "x" * 40})
    assert raw_request(cluster, "supervisor", forged, body)[1]["code"] == "SignatureDoesNotMatch"
    assert pid_of("notifier") == before and pid_alive(before)
    # The root's own signature (what `nimbus kill` sends) is obeyed.
    kind, answer = raw_request(cluster, "supervisor", sign_header({"kind": "request", "id": new_id(), "action": "nimbus:Kill"}, body, root), body)
    assert kind["kind"] == "reply" and answer["pid"] == before, answer
    wait_until(lambda: pid_of("notifier") not in (None, before), timeout=20, message="notifier restarted after the kill")


def test_get_records_is_authorized_on_the_stream_it_reads(cluster):
    """A policy naming the table's current stream ARN lets a role read it; one naming another
    stream label does not (the shard iterator carries its stream)."""
    kind, answer = call(cluster, "table", "dynamodb:DescribeTable", {"TableName": ORDERS})
    assert kind == "reply", answer
    stream = answer["Table"]["LatestStreamArn"]
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": LAMBDA}, "Action": "sts:AssumeRole"}]}
    for role, resource in [("ThisStream", stream), ("OldStream", stream.rsplit("/", 1)[0] + "/2001-01-01T00:00:00.000")]:
        assert call(cluster, "iam", "iam:CreateRole", {"RoleName": role, "AssumeRolePolicyDocument": json.dumps(trust)})[0] == "reply"
        doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": ["dynamodb:GetShardIterator", "dynamodb:GetRecords"],
                                                       "Resource": resource}]}
        kind, answer = call(cluster, "iam", "iam:CreatePolicy", {"PolicyName": f"{role}-Read", "PolicyDocument": json.dumps(doc)})
        assert kind == "reply", answer
        assert call(cluster, "iam", "iam:AttachRolePolicy", {"RoleName": role, "PolicyArn": answer["Policy"]["Arn"]})[0] == "reply"
    # The iterator comes from the root (GetShardIterator names the stream itself, so it is checked on it too).
    kind, answer = call(cluster, "table", "dynamodb:GetShardIterator",
                        {"StreamArn": stream, "ShardId": "shardId-00000000000000000000-00000000", "ShardIteratorType": "LATEST"})
    assert kind == "reply", answer
    read = {"ShardIterator": answer["ShardIterator"]}
    kind, answer = call(cluster, "table", "dynamodb:GetRecords", read, assume(cluster, "ThisStream", LAMBDA))
    assert kind == "reply" and "NextShardIterator" in answer, answer
    kind, answer = call(cluster, "table", "dynamodb:GetRecords", read, assume(cluster, "OldStream", LAMBDA))
    denied(kind, answer, "assumed-role/OldStream/it", "dynamodb:GetRecords")
    assert answer["message"].endswith(stream), answer


def test_a_topic_policy_takes_part_as_the_resource_policy(cluster):
    """As for queues: a topic's Policy can grant a role with no identity policy for it, and its
    explicit Deny wins over an identity policy that allows."""
    kind, answer = call(cluster, "notifier", "sns:CreateTopic", {"Name": "authz-topic"})
    assert kind == "reply", answer
    topic = answer["TopicArn"]
    publish = {"TopicArn": topic, "Message": "hello"}
    streams = assume(cluster, "Lambda-DynamoDBStreams-SNS", LAMBDA)  # Lambda-SNS-Publish: sns:Publish on *
    assert call(cluster, "notifier", "sns:Publish", publish, streams)[0] == "reply"

    def set_policy(statements: list[dict]):
        policy = json.dumps({"Version": "2012-10-17", "Statement": statements}) if statements else ""
        kind, answer = call(cluster, "notifier", "sns:SetTopicAttributes", {"TopicArn": topic, "AttributeName": "Policy", "AttributeValue": policy})
        assert kind == "reply", answer

    role = lambda name: {"AWS": f"arn:aws:iam::{ACCOUNT}:role/{name}"}  # noqa: E731
    set_policy([{"Effect": "Deny", "Principal": role("Lambda-DynamoDBStreams-SNS"), "Action": "sns:Publish", "Resource": topic}])
    kind, answer = call(cluster, "notifier", "sns:Publish", publish, streams)
    denied(kind, answer, "assumed-role/Lambda-DynamoDBStreams-SNS/it", "sns:Publish")
    assert "explicit deny" in answer["message"], answer
    # The ingest worker's role has no sns:Publish of its own; the topic's policy can grant it.
    ingest = assume(cluster, "Lambda-SQS-DynamoDB", LAMBDA)
    denied(*call(cluster, "notifier", "sns:Publish", publish, ingest), "assumed-role/Lambda-SQS-DynamoDB/it", "sns:Publish")
    set_policy([{"Effect": "Allow", "Principal": role("Lambda-SQS-DynamoDB"), "Action": "sns:Publish", "Resource": topic}])
    assert call(cluster, "notifier", "sns:Publish", publish, ingest)[0] == "reply"
    assert call(cluster, "notifier", "sns:Publish", publish, streams)[0] == "reply"  # the deny is gone
    set_policy([])
    denied(*call(cluster, "notifier", "sns:Publish", publish, ingest), "assumed-role/Lambda-SQS-DynamoDB/it", "sns:Publish")
    assert call(cluster, "notifier", "sns:DeleteTopic", {"TopicArn": topic})[0] == "reply"


def test_a_transaction_is_authorized_item_by_item(cluster):
    """As in AWS, TransactWriteItems and TransactGetItems need each item's own action (PutItem,
    UpdateItem, DeleteItem, ConditionCheckItem, GetItem) on its table: the ingest role's
    Lambda-Write-DynamoDB (PutItem, DescribeTable) may transact Puts, and nothing else."""
    ingest = assume(cluster, "Lambda-SQS-DynamoDB", LAMBDA)
    put = {"Put": {"TableName": ORDERS, "Item": {"orderID": {"S": "tx-authz-1"}}, "ConditionExpression": "attribute_not_exists(orderID)"}}
    kind, answer = call(cluster, "table", "dynamodb:TransactWriteItems", {"TransactItems": [put]}, ingest)
    assert kind == "reply", answer
    # A Delete beside the Put needs DeleteItem: denied as a whole, naming that action, and nothing is written.
    second = {"Put": {"TableName": ORDERS, "Item": {"orderID": {"S": "tx-authz-2"}}}}
    delete = {"Delete": {"TableName": ORDERS, "Key": {"orderID": {"S": "tx-authz-1"}}}}
    kind, answer = call(cluster, "table", "dynamodb:TransactWriteItems", {"TransactItems": [second, delete]}, ingest)
    denied(kind, answer, "assumed-role/Lambda-SQS-DynamoDB/it", "dynamodb:DeleteItem")
    kind, answer = call(cluster, "table", "dynamodb:TransactGetItems",
                        {"TransactItems": [{"Get": {"TableName": ORDERS, "Key": {"orderID": {"S": "tx-authz-1"}}}},
                                           {"Get": {"TableName": ORDERS, "Key": {"orderID": {"S": "tx-authz-2"}}}}]})
    assert kind == "reply" and answer["Responses"] == [{"Item": {"orderID": {"S": "tx-authz-1"}}}, {}], answer
    kind, answer = call(cluster, "table", "dynamodb:TransactGetItems",
                        {"TransactItems": [{"Get": {"TableName": ORDERS, "Key": {"orderID": {"S": "tx-authz-1"}}}}]}, ingest)
    denied(kind, answer, "assumed-role/Lambda-SQS-DynamoDB/it", "dynamodb:GetItem")
    # The stream role may not put through a transaction either.
    streams = assume(cluster, "Lambda-DynamoDBStreams-SNS", LAMBDA)
    kind, answer = call(cluster, "table", "dynamodb:TransactWriteItems", {"TransactItems": [second]}, streams)
    denied(kind, answer, "assumed-role/Lambda-DynamoDBStreams-SNS/it", "dynamodb:PutItem")

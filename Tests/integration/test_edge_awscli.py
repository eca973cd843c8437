"""nimbus-edge with the AWS CLI: the lab's own commands (`aws ... --endpoint-url`), keys in the
environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_DEFAULT_REGION), JSON output parsed.

The outputs asserted are the API replies as the AWS CLI prints them (the CLI reference's examples for
sqs send-message, dynamodb scan, dynamodbstreams describe-stream / get-records, sns subscribe /
list-subscriptions-by-topic / publish, iam list-roles, sts get-caller-identity, lambda invoke), and the
lab's Task 10 clean-up runs in a cluster of its own.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid

import pytest

import aws_compat
from aws_compat import (ACCOUNT, LAB_DLQ, LAB_FUNCTIONS, LAB_POLICIES, LAB_QUEUE, LAB_ROLES, LAB_TABLE, LAB_TOPIC,
                        policy_arn, role_arn, topic_arn)
from conftest import wait_until

# every worker runs: the lab's order goes through the pipeline, and the functions can be invoked
edge = aws_compat.edge_fixture()

LAB_TOPIC_ARN = topic_arn(LAB_TOPIC)


def aws(edge, *args: str, expect_ok: bool = True) -> dict | subprocess.CompletedProcess:
    """Runs the CLI; parsed JSON output (``{}`` when it prints nothing), or the process when ``expect_ok`` is False."""
    result = edge.aws(*args)
    if not expect_ok:
        return result
    assert result.returncode == 0, f"aws {' '.join(args)} exited {result.returncode}:\n{result.stderr}"
    return json.loads(result.stdout) if result.stdout.strip() else {}


def cli_error(edge, *args: str) -> str:
    """Runs a CLI command that must fail; returns its stderr ("An error occurred (Code) when calling ...")."""
    result = edge.aws(*args)
    assert result.returncode != 0, f"aws {' '.join(args)} succeeded: {result.stdout}"
    return result.stderr


def test_cli_is_installed():
    result = subprocess.run(["aws", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "aws-cli/" in result.stdout + result.stderr


# --------------------------------------------------------------------------------------------
# the lab's commands
# --------------------------------------------------------------------------------------------


def test_sts_get_caller_identity(edge):
    identity = aws(edge, "sts", "get-caller-identity")
    assert identity["Account"] == ACCOUNT
    if not edge.is_moto:  # moto maps unknown keys to user/moto; Nimbus's are the account root's
        assert identity["Arn"] == f"arn:aws:iam::{ACCOUNT}:root"


def test_sqs_send_message_with_the_lab_body(edge):
    url = aws(edge, "sqs", "get-queue-url", "--queue-name", LAB_QUEUE)["QueueUrl"]
    assert url.endswith(f"/{ACCOUNT}/{LAB_QUEUE}")
    reply = aws(edge, "sqs", "send-message", "--queue-url", url, "--message-body", aws_compat.LAB_ORDER)
    assert reply["MD5OfMessageBody"] == hashlib.md5(aws_compat.LAB_ORDER.encode()).hexdigest()
    uuid.UUID(reply["MessageId"])


def test_sqs_get_queue_attributes_and_a_missing_queue(edge):
    url = aws(edge, "sqs", "get-queue-url", "--queue-name", LAB_QUEUE)["QueueUrl"]
    attributes = aws(edge, "sqs", "get-queue-attributes", "--queue-url", url, "--attribute-names", "All")["Attributes"]
    assert attributes["QueueArn"] == aws_compat.queue_arn(LAB_QUEUE)
    assert json.loads(attributes["RedrivePolicy"])["deadLetterTargetArn"] == aws_compat.queue_arn(LAB_DLQ)
    stderr = cli_error(edge, "sqs", "get-queue-url", "--queue-name", "no-such-queue")
    assert "AWS.SimpleQueueService.NonExistentQueue" in stderr


@aws_compat.nimbus_only("the lab's pipeline runs (POC-Lambda-1 writes the order to the table)")
def test_the_lab_order_sent_with_the_cli_reaches_the_table(edge):
    url = aws(edge, "sqs", "get-queue-url", "--queue-name", LAB_QUEUE)["QueueUrl"]
    body = json.dumps({"item": "latex gloves", "customerID": "12345", "note": uuid.uuid4().hex})
    aws(edge, "sqs", "send-message", "--queue-url", url, "--message-body", body)

    def in_table():
        scan = aws(edge, "dynamodb", "scan", "--table-name", LAB_TABLE)
        return [i for i in scan["Items"] if any(v.get("S") == body for v in i.values())]

    items = wait_until(in_table, timeout=30, interval=0.5, message="the CLI's order in the orders table")
    assert len(items) == 1


def test_dynamodb_put_item_and_scan(edge):
    oid = f"cli-{uuid.uuid4().hex[:12]}"
    item = {"orderID": {"S": oid}, "item": {"S": "latex gloves"}, "customerID": {"S": "12345"}}
    aws(edge, "dynamodb", "put-item", "--table-name", LAB_TABLE, "--item", json.dumps(item))
    scan = aws(edge, "dynamodb", "scan", "--table-name", LAB_TABLE)
    assert item in scan["Items"]
    assert scan["Count"] == len(scan["Items"]) and scan["ScannedCount"] >= scan["Count"]
    got = aws(edge, "dynamodb", "get-item", "--table-name", LAB_TABLE, "--key", json.dumps({"orderID": {"S": oid}}))
    assert got["Item"] == item
    table = aws(edge, "dynamodb", "describe-table", "--table-name", LAB_TABLE)["Table"]
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert LAB_TABLE in aws(edge, "dynamodb", "list-tables")["TableNames"]


def test_dynamodbstreams_describe_stream_and_get_records(edge):
    oid = f"cli-stream-{uuid.uuid4().hex[:12]}"
    aws(edge, "dynamodb", "put-item", "--table-name", LAB_TABLE, "--item", json.dumps({"orderID": {"S": oid}}))
    streams = aws(edge, "dynamodbstreams", "list-streams", "--table-name", LAB_TABLE)["Streams"]
    arn = streams[0]["StreamArn"]
    description = aws(edge, "dynamodbstreams", "describe-stream", "--stream-arn", arn)["StreamDescription"]
    assert description["StreamStatus"] == "ENABLED"
    assert description["StreamViewType"] == "NEW_IMAGE"
    assert description["TableName"] == LAB_TABLE

    def records_for_oid():
        found = []
        for shard in aws(edge, "dynamodbstreams", "describe-stream", "--stream-arn", arn)["StreamDescription"]["Shards"]:
            iterator = aws(edge, "dynamodbstreams", "get-shard-iterator", "--stream-arn", arn, "--shard-id", shard["ShardId"],
                           "--shard-iterator-type", "TRIM_HORIZON")["ShardIterator"]
            for _ in range(100):
                page = aws(edge, "dynamodbstreams", "get-records", "--shard-iterator", iterator)
                found += [r for r in page["Records"] if r["dynamodb"]["Keys"] == {"orderID": {"S": oid}}]
                iterator = page.get("NextShardIterator")
                if not page["Records"] or not iterator:
                    break
        return found

    records = wait_until(records_for_oid, timeout=30, interval=0.5, message="the INSERT in the stream via the CLI")
    assert records[0]["eventName"] == "INSERT"
    assert records[0]["eventSource"] == "aws:dynamodb"
    assert records[0]["dynamodb"]["NewImage"] == {"orderID": {"S": oid}}


def test_sns_subscribe_email_then_list_subscriptions_by_topic(edge):
    address = f"cli-{uuid.uuid4().hex[:8]}@example.com"
    reply = aws(edge, "sns", "subscribe", "--topic-arn", LAB_TOPIC_ARN, "--protocol", "email",
                "--notification-endpoint", address)
    subscriptions = aws(edge, "sns", "list-subscriptions-by-topic", "--topic-arn", LAB_TOPIC_ARN)["Subscriptions"]
    mine = [s for s in subscriptions if s["Endpoint"] == address]
    assert len(mine) == 1
    assert mine[0]["Protocol"] == "email" and mine[0]["TopicArn"] == LAB_TOPIC_ARN and mine[0]["Owner"] == ACCOUNT
    if not edge.is_moto:  # moto confirms email subscriptions at once (API_Subscribe: "pending confirmation")
        assert reply == {"SubscriptionArn": "pending confirmation"}
        assert mine[0]["SubscriptionArn"] == "PendingConfirmation"


def test_sns_publish_with_message_structure_json(edge):
    message = json.dumps({"default": aws_compat.LAB_ORDER, "email": "New order: latex gloves"})
    reply = aws(edge, "sns", "publish", "--topic-arn", LAB_TOPIC_ARN, "--message-structure", "json", "--message", message)
    uuid.UUID(reply["MessageId"])
    topics = aws(edge, "sns", "list-topics")["Topics"]
    assert {"TopicArn": LAB_TOPIC_ARN} in topics
    attributes = aws(edge, "sns", "get-topic-attributes", "--topic-arn", LAB_TOPIC_ARN)["Attributes"]
    assert attributes["TopicArn"] == LAB_TOPIC_ARN


def test_iam_list_roles_and_attached_policies(edge):
    roles = {r["RoleName"]: r for r in aws(edge, "iam", "list-roles")["Roles"]}
    for name, (service, attached) in LAB_ROLES.items():
        assert roles[name]["Arn"] == role_arn(name)
        assert roles[name]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": service}
        listed = aws(edge, "iam", "list-attached-role-policies", "--role-name", name)["AttachedPolicies"]
        assert sorted(p["PolicyArn"] for p in listed) == sorted(policy_arn(p) for p in attached)
    policies = {p["PolicyName"] for p in aws(edge, "iam", "list-policies", "--scope", "Local")["Policies"]}
    assert set(LAB_POLICIES) <= policies
    assert "NoSuchEntity" in cli_error(edge, "iam", "get-role", "--role-name", "no-such-role")


def test_lambda_list_and_get(edge):
    names = {f["FunctionName"] for f in aws(edge, "lambda", "list-functions")["Functions"]}
    assert set(LAB_FUNCTIONS) <= names
    configuration = aws(edge, "lambda", "get-function", "--function-name", "POC-Lambda-2")["Configuration"]
    assert configuration["Environment"]["Variables"] == {"TOPIC_ARN": LAB_TOPIC_ARN}
    if not edge.is_moto:  # moto is seeded without the mappings here: it would run the functions (in Docker) on each send
        mappings = aws(edge, "lambda", "list-event-source-mappings", "--function-name", "POC-Lambda-1")["EventSourceMappings"]
        assert [m["EventSourceArn"] for m in mappings] == [aws_compat.queue_arn(LAB_QUEUE)]
    assert "ResourceNotFoundException" in cli_error(edge, "lambda", "get-function", "--function-name", "no-such-function")


@aws_compat.nimbus_only("the function runs for real (moto invokes through Docker)")
def test_lambda_invoke_with_the_console_sqs_event(edge, tmp_path):
    event = {"Records": [{"messageId": str(uuid.uuid4()), "receiptHandle": "MessageReceiptHandle",
                          "body": "Hello from SQS! " + uuid.uuid4().hex,
                          "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1523232000000",
                                         "SenderId": "123456789012", "ApproximateFirstReceiveTimestamp": "1523232000001"},
                          "messageAttributes": {}, "md5OfBody": "7b270e59b47ff90a553787216d55d91d", "eventSource": "aws:sqs",
                          "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:MyQueue", "awsRegion": "us-east-1"}]}
    payload = tmp_path / "event.json"
    payload.write_text(json.dumps(event))
    out = tmp_path / "response.json"
    reply = aws(edge, "lambda", "invoke", "--function-name", "POC-Lambda-1", "--payload", f"fileb://{payload}", str(out))
    assert reply["StatusCode"] == 200
    assert "FunctionError" not in reply
    assert reply["ExecutedVersion"] == "$LATEST"
    assert json.loads(out.read_text()) == {"batchItemFailures": []}


# --------------------------------------------------------------------------------------------
# Task 10: clean-up, in a cluster of its own
# --------------------------------------------------------------------------------------------


@pytest.fixture
def cleanup_edge(tmp_path):
    with aws_compat.edge_target(tmp_path / "cleanup", instances={"ingest-worker": 0, "stream-worker": 0}) as target:
        yield target


def test_task_10_clean_up(cleanup_edge):
    e = cleanup_edge

    # SQS: the queue and its dead-letter queue
    for name in (LAB_QUEUE, LAB_DLQ):
        url = aws(e, "sqs", "get-queue-url", "--queue-name", name)["QueueUrl"]
        assert aws(e, "sqs", "delete-queue", "--queue-url", url) == {}

    # DynamoDB: the table (its reply is the table's description, DELETING)
    deleted = aws(e, "dynamodb", "delete-table", "--table-name", LAB_TABLE)["TableDescription"]
    assert deleted["TableName"] == LAB_TABLE
    assert deleted["TableStatus"] in ("DELETING", "ACTIVE")

    # SNS: the topic
    assert aws(e, "sns", "delete-topic", "--topic-arn", LAB_TOPIC_ARN) == {}

    # IAM: a role's policies are detached before the role goes; then the policies themselves
    for role, (_, attached) in LAB_ROLES.items():
        for policy in attached:
            assert aws(e, "iam", "detach-role-policy", "--role-name", role, "--policy-arn", policy_arn(policy)) == {}
        assert aws(e, "iam", "delete-role", "--role-name", role) == {}
    for policy in LAB_POLICIES:
        assert aws(e, "iam", "delete-policy", "--policy-arn", policy_arn(policy)) == {}

    # and everything is gone
    def queues_gone():
        listed = aws(e, "sqs", "list-queues", "--queue-name-prefix", "POC-Queue").get("QueueUrls", [])
        return not listed

    wait_until(queues_gone, timeout=60, interval=0.5, message="POC-Queue and its DLQ deleted")
    assert "AWS.SimpleQueueService.NonExistentQueue" in cli_error(e, "sqs", "get-queue-url", "--queue-name", LAB_QUEUE)

    def table_gone():
        return "ResourceNotFoundException" in cli_error(e, "dynamodb", "describe-table", "--table-name", LAB_TABLE)

    wait_until(table_gone, timeout=60, interval=0.5, message="the orders table deleted")
    assert LAB_TABLE not in aws(e, "dynamodb", "list-tables")["TableNames"]
    assert {"TopicArn": LAB_TOPIC_ARN} not in aws(e, "sns", "list-topics")["Topics"]
    roles = {r["RoleName"] for r in aws(e, "iam", "list-roles")["Roles"]}
    assert not roles & set(LAB_ROLES)
    policies = {p["PolicyName"] for p in aws(e, "iam", "list-policies", "--scope", "Local")["Policies"]}
    assert not policies & set(LAB_POLICIES)
    assert "NoSuchEntity" in cli_error(e, "iam", "get-role", "--role-name", "Lambda-SQS-DynamoDB")

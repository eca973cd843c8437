"""nimbus-edge, Lambda's REST API (/2015-03-31/...) as boto3 and the AWS CLI use it, against the lab's
functions: POC-Lambda-1 (ingest-worker, fed by POC-Queue) and POC-Lambda-2 (stream-worker, fed by the
orders table's stream), whose configuration and triggers live with the workers that host them.

Sources (AWS Lambda API reference, 2015-03-31): API_ListFunctions, API_GetFunction,
API_GetFunctionConfiguration, API_Invoke (200 RequestResponse / 202 Event / 204 DryRun;
X-Amz-Executed-Version, X-Amz-Function-Error, X-Amz-Log-Result "the last 4 KB of the execution log,
base64-encoded"), API_ListEventSourceMappings, API_GetEventSourceMapping, API_UpdateEventSourceMapping
(202; State Enabling/Disabling/Updating while it changes), ResourceNotFoundException 404.

Run: NIMBUS_BIN=/work/main/.build/debug python3 -m pytest Tests/integration/test_edge_lambda_rest.py -q -p no:cacheprovider
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import uuid
from pathlib import Path

import pytest

boto3 = pytest.importorskip("boto3", reason="the edge tests need boto3 and awscli")
import botocore.config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from conftest import process_by_name, start_cluster, stop_cluster, wait_until  # noqa: E402

REGION = "us-east-1"
ACCOUNT = "000000000000"
QUEUE_ARN = f"arn:aws:sqs:{REGION}:{ACCOUNT}:POC-Queue"


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def sqs_test_event(body: str) -> dict:
    """The Lambda console's "SQS" test event (lab step 4.4), with its own message id and ``body``
    (POC-Lambda-1 writes each record's body as an order, named after the message id)."""
    return {"Records": [{
        "messageId": str(uuid.uuid4()), "receiptHandle": "MessageReceiptHandle", "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1523232000000", "SenderId": ACCOUNT,
                       "ApproximateFirstReceiveTimestamp": "1523232000001"},
        "messageAttributes": {}, "md5OfBody": hashlib.md5(body.encode()).hexdigest(), "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:MyQueue", "awsRegion": REGION}]}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = start_cluster(tmp_path_factory.mktemp("lambda-rest"))
    yield c
    stop_cluster(c)


def client(cluster, service: str):
    credentials = cluster.root_credentials()
    return boto3.client(service, endpoint_url=cluster.edge_url, region_name=REGION,
                        aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=credentials["SecretAccessKey"],
                        config=botocore.config.Config(retries={"max_attempts": 1}))


@pytest.fixture(scope="module")
def lam(cluster):
    lam = client(cluster, "lambda")
    # the workers load their function from the stack once the table's stream exists
    wait_until(lambda: len(lam.list_functions()["Functions"]) == 2, timeout=30, interval=0.25,
               message="both functions listed by the edge")
    return lam


def order_written(cluster, body: str):
    """The orders whose body is ``body`` (POC-Lambda-1's item: {orderID, order: body})."""
    return client(cluster, "dynamodb").scan(
        TableName="orders", ConsistentRead=True, FilterExpression="#o = :b", ExpressionAttributeNames={"#o": "order"},
        ExpressionAttributeValues={":b": {"S": body}})["Items"]


def error_of(caught) -> tuple[str, int, str]:
    response = caught.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Message"]


def sqs_mapping(lam) -> dict:
    mappings = lam.list_event_source_mappings(FunctionName="POC-Lambda-1")["EventSourceMappings"]
    assert len(mappings) == 1, mappings
    return mappings[0]


# --------------------------------------------------------------------------------------------
# functions
# --------------------------------------------------------------------------------------------


def test_list_functions_has_both_lab_functions(lam):
    functions = {f["FunctionName"]: f for f in lam.list_functions()["Functions"]}
    assert set(functions) == {"POC-Lambda-1", "POC-Lambda-2"}
    one, two = functions["POC-Lambda-1"], functions["POC-Lambda-2"]
    assert one["FunctionArn"] == function_arn("POC-Lambda-1")
    assert one["Role"] == f"arn:aws:iam::{ACCOUNT}:role/Lambda-SQS-DynamoDB"
    assert one["Handler"] == "LabFunctions.IngestOrders" and one["Runtime"] == "provided.al2023"
    assert one["Timeout"] == 3 and one["MemorySize"] == 128
    assert one["Environment"]["Variables"] == {"TABLE_NAME": "orders"}
    assert one["State"] == "Active" and one["PackageType"] == "Zip" and one["Version"] == "$LATEST"
    assert one["LastModified"].endswith("+0000")
    assert two["Role"] == f"arn:aws:iam::{ACCOUNT}:role/Lambda-DynamoDBStreams-SNS"
    assert two["Environment"]["Variables"] == {"TOPIC_ARN": f"arn:aws:sns:{REGION}:{ACCOUNT}:POC-Topic"}

    first = lam.list_functions(MaxItems=1)
    assert [f["FunctionName"] for f in first["Functions"]] == ["POC-Lambda-1"] and first["NextMarker"]
    second = lam.list_functions(MaxItems=1, Marker=first["NextMarker"])
    assert [f["FunctionName"] for f in second["Functions"]] == ["POC-Lambda-2"] and "NextMarker" not in second


def test_get_function_by_name_and_by_arn(lam):
    reply = lam.get_function(FunctionName="POC-Lambda-1")
    assert reply["ResponseMetadata"]["HTTPStatusCode"] == 200
    configuration = reply["Configuration"]
    assert configuration["FunctionName"] == "POC-Lambda-1"
    assert configuration["FunctionArn"] == function_arn("POC-Lambda-1")
    assert configuration["CodeSize"] > 0
    assert reply["Code"]["Location"]
    by_arn = lam.get_function(FunctionName=function_arn("POC-Lambda-2"))["Configuration"]
    assert by_arn["FunctionName"] == "POC-Lambda-2"
    assert by_arn["Handler"] == "LabFunctions.NotifyOrders"
    alone = lam.get_function_configuration(FunctionName=f"{ACCOUNT}:function:POC-Lambda-1")
    assert alone["FunctionArn"] == configuration["FunctionArn"] and alone["RevisionId"] == configuration["RevisionId"]


def test_an_unknown_function_is_resource_not_found(lam):
    for call in (lambda: lam.get_function(FunctionName="no-such-function"),
                 lambda: lam.invoke(FunctionName="no-such-function", Payload=b"{}"),
                 lambda: lam.get_function(FunctionName="POC-Lambda-1", Qualifier="prod")):
        with pytest.raises(lam.exceptions.ResourceNotFoundException) as caught:
            call()
        code, status, message = error_of(caught)
        assert (code, status) == ("ResourceNotFoundException", 404)
        assert message.startswith(f"Function not found: arn:aws:lambda:{REGION}:{ACCOUNT}:function:")


def test_create_function_is_refused_by_name(lam):
    with pytest.raises(ClientError) as caught:
        lam.create_function(FunctionName="mine", Runtime="python3.12", Role=f"arn:aws:iam::{ACCOUNT}:role/Lambda-SQS-DynamoDB",
                            Handler="index.handler", Code={"ZipFile": b"PK"})
    code, status, message = error_of(caught)
    assert (code, status) == ("InvalidParameterValueException", 400)
    assert "CreateFunction is not supported yet" in message


# --------------------------------------------------------------------------------------------
# invoking
# --------------------------------------------------------------------------------------------


def test_invoke_with_the_console_sqs_event_and_the_log_tail(cluster, lam):
    body = f"Hello from SQS! {uuid.uuid4().hex}"
    reply = lam.invoke(FunctionName="POC-Lambda-1", InvocationType="RequestResponse", LogType="Tail",
                       Payload=json.dumps(sqs_test_event(body)).encode())
    assert reply["StatusCode"] == 200
    assert reply["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in reply
    assert json.loads(reply["Payload"].read()) == {"batchItemFailures": []}
    log = base64.b64decode(reply["LogResult"], validate=True).decode()
    assert 0 < len(log.encode()) <= 4096
    assert "START RequestId: " in log and "END RequestId: " in log and "REPORT RequestId: " in log
    assert len(order_written(cluster, body)) == 1


def test_invoke_event_is_202_and_runs_afterwards(cluster, lam):
    body = f"asynchronous {uuid.uuid4().hex}"
    reply = lam.invoke(FunctionName="POC-Lambda-1", InvocationType="Event", Payload=json.dumps(sqs_test_event(body)).encode())
    assert reply["StatusCode"] == 202
    assert reply["Payload"].read() == b""
    wait_until(lambda: order_written(cluster, body), timeout=10, interval=0.2, message="the Event invocation's order in the table")


def test_invoke_dry_run_is_204_and_runs_nothing(cluster, lam):
    body = f"dry run {uuid.uuid4().hex}"
    reply = lam.invoke(FunctionName=function_arn("POC-Lambda-1"), InvocationType="DryRun", Payload=json.dumps(sqs_test_event(body)).encode())
    assert reply["StatusCode"] == 204
    assert order_written(cluster, body) == []


def test_an_event_that_does_not_fit_the_trigger_is_refused(lam):
    with pytest.raises(lam.exceptions.InvalidRequestContentException) as caught:
        lam.invoke(FunctionName="POC-Lambda-1", Payload=b"{not json")
    assert error_of(caught)[:2] == ("InvalidRequestContentException", 400)
    with pytest.raises(lam.exceptions.InvalidRequestContentException):
        lam.invoke(FunctionName="POC-Lambda-1", Payload=json.dumps({"hello": "world"}).encode())


def test_aws_cli_invoke(cluster, lam, tmp_path: Path):
    body = f"from the AWS CLI {uuid.uuid4().hex}"
    event = tmp_path / "event.json"
    event.write_text(json.dumps(sqs_test_event(body)))
    out = tmp_path / "out.json"
    credentials = cluster.root_credentials()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
           "AWS_DEFAULT_REGION": REGION, "AWS_MAX_ATTEMPTS": "1", "AWS_PAGER": "",
           "AWS_CONFIG_FILE": str(tmp_path / "no-config"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials")}
    env.pop("AWS_SESSION_TOKEN", None)
    env.pop("AWS_PROFILE", None)
    result = subprocess.run(["aws", "lambda", "invoke", "--endpoint-url", cluster.edge_url, "--function-name", function_arn("POC-Lambda-1"),
                             "--payload", f"fileb://{event}", "--log-type", "Tail", str(out)],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)
    assert printed["StatusCode"] == 200 and printed["ExecutedVersion"] == "$LATEST"
    assert "START RequestId" in base64.b64decode(printed["LogResult"]).decode()
    assert json.loads(out.read_text()) == {"batchItemFailures": []}
    assert len(order_written(cluster, body)) == 1

    listed = subprocess.run(["aws", "lambda", "list-functions", "--endpoint-url", cluster.edge_url],
                            env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert {f["FunctionName"] for f in json.loads(listed.stdout)["Functions"]} == {"POC-Lambda-1", "POC-Lambda-2"}


# --------------------------------------------------------------------------------------------
# event source mappings
# --------------------------------------------------------------------------------------------


def test_list_and_get_event_source_mappings(cluster, lam):
    sqs = sqs_mapping(lam)
    uuid.UUID(sqs["UUID"])
    assert sqs["EventSourceArn"] == QUEUE_ARN
    assert sqs["FunctionArn"] == function_arn("POC-Lambda-1")
    assert sqs["BatchSize"] == 10 and sqs["State"] == "Enabled"
    assert sqs["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert lam.get_event_source_mapping(UUID=sqs["UUID"])["EventSourceArn"] == QUEUE_ARN

    stream = client(cluster, "dynamodb").describe_table(TableName="orders")["Table"]["LatestStreamArn"]
    by_source = lam.list_event_source_mappings(EventSourceArn=stream)["EventSourceMappings"]
    assert [m["FunctionArn"] for m in by_source] == [function_arn("POC-Lambda-2")]
    assert by_source[0]["BatchSize"] == 100 and by_source[0]["StartingPosition"] == "TRIM_HORIZON"

    every = lam.list_event_source_mappings()["EventSourceMappings"]
    assert {m["FunctionArn"] for m in every} == {function_arn("POC-Lambda-1"), function_arn("POC-Lambda-2")}

    with pytest.raises(lam.exceptions.ResourceNotFoundException) as caught:
        lam.get_event_source_mapping(UUID=str(uuid.uuid4()))
    assert error_of(caught)[:2] == ("ResourceNotFoundException", 404)


def test_disable_and_enable_the_queue_trigger(cluster, lam):
    """Disabled, POC-Queue's messages stay in the queue (a message sent meanwhile is ours to receive);
    enabled again, POC-Lambda-1 takes them and writes the order."""
    mapping = sqs_mapping(lam)
    ident = mapping["UUID"]
    reply = lam.update_event_source_mapping(UUID=ident, Enabled=False)
    assert reply["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert reply["State"] in ("Disabling", "Disabled")
    wait_until(lambda: lam.get_event_source_mapping(UUID=ident)["State"] == "Disabled", timeout=15, interval=0.2,
               message="the trigger disabled (its pollers finish their long poll)")

    sqs = client(cluster, "sqs")
    url = sqs.get_queue_url(QueueName="POC-Queue")["QueueUrl"]
    body = json.dumps({"item": "latex gloves", "customerID": uuid.uuid4().hex})
    sqs.send_message(QueueUrl=url, MessageBody=body)
    got = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5, MaxNumberOfMessages=10).get("Messages", [])
    assert [m["Body"] for m in got] == [body], "no poller may take the message while the trigger is disabled"
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=got[0]["ReceiptHandle"], VisibilityTimeout=0)
    assert order_written(cluster, body) == []

    reply = lam.update_event_source_mapping(UUID=ident, Enabled=True)
    assert reply["State"] in ("Enabling", "Enabled")
    wait_until(lambda: lam.get_event_source_mapping(UUID=ident)["State"] == "Enabled", timeout=15, interval=0.2,
               message="the trigger enabled again")
    wait_until(lambda: order_written(cluster, body), timeout=20, interval=0.25, message="the queued order taken by POC-Lambda-1")


def test_batch_size_changes_and_bad_values_are_refused(lam):
    ident = sqs_mapping(lam)["UUID"]
    reply = lam.update_event_source_mapping(UUID=ident, BatchSize=5)
    assert reply["BatchSize"] == 5 and reply["State"] in ("Updating", "Enabled")
    wait_until(lambda: lam.get_event_source_mapping(UUID=ident)["State"] == "Enabled", timeout=15, interval=0.2,
               message="the trigger's pollers restarted with BatchSize 5")
    assert lam.get_event_source_mapping(UUID=ident)["BatchSize"] == 5
    # SQS: more than 10 a batch needs a batching window (Lambda's rule)
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as caught:
        lam.update_event_source_mapping(UUID=ident, BatchSize=100)
    assert error_of(caught)[:2] == ("InvalidParameterValueException", 400)
    with pytest.raises(lam.exceptions.InvalidParameterValueException) as caught:
        lam.update_event_source_mapping(UUID=ident, MaximumRetryAttempts=3)
    assert "MaximumRetryAttempts" in error_of(caught)[2]
    reply = lam.update_event_source_mapping(UUID=ident, BatchSize=10)
    assert reply["BatchSize"] == 10
    wait_until(lambda: lam.get_event_source_mapping(UUID=ident)["State"] == "Enabled", timeout=15, interval=0.2,
               message="the trigger back to BatchSize 10")


def test_a_disabled_trigger_stays_disabled_when_its_worker_restarts(cluster, lam):
    ident = sqs_mapping(lam)["UUID"]
    lam.update_event_source_mapping(UUID=ident, Enabled=False)
    wait_until(lambda: lam.get_event_source_mapping(UUID=ident)["State"] == "Disabled", timeout=15, interval=0.2,
               message="the trigger disabled")
    worker = process_by_name(cluster.status(), "ingest-worker-1")
    os.kill(worker["pid"], signal.SIGKILL)
    wait_until(lambda: (lambda p: p and p.get("pid") not in (None, worker["pid"]) and p["state"] == "running")(
        process_by_name(cluster.status(), "ingest-worker-1")), timeout=30, interval=0.2, message="ingest-worker-1 restarted")
    # while it loads the function again the edge answers ServiceException, naming the worker
    assert wait_until(lambda: lam.get_event_source_mapping(UUID=ident)["State"], timeout=30, interval=0.2,
                      message="the restarted worker describing its trigger") == "Disabled"
    lam.update_event_source_mapping(UUID=ident, Enabled=True)
    wait_until(lambda: lam.get_event_source_mapping(UUID=ident)["State"] == "Enabled", timeout=15, interval=0.2,
               message="the trigger enabled again")

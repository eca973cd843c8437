"""nimbus-edge, Lambda: what boto3 sees over Lambda's REST protocol (/2015-03-31/functions/...), as the
Lambda API reference describes it.

Sources (AWS docs): API_ListFunctions / API_GetFunction / API_GetFunctionConfiguration / API_Invoke
(RequestResponse -> 200 with X-Amz-Executed-Version, Event -> 202, DryRun -> 204; a function error
shows as X-Amz-Function-Error with status 200; ResourceNotFoundException 404) /
API_ListEventSourceMappings / API_GetEventSourceMapping; "Using Lambda with Amazon SQS" (the
console's SQS test event, ReportBatchItemFailures' {"batchItemFailures": [...]} reply).

The functions really run only in Nimbus (moto runs functions in Docker, absent here): the invoke tests
are Nimbus-only.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid

import pytest

import aws_compat
from aws_compat import ACCOUNT, LAB_FUNCTIONS, LAB_QUEUE, LAB_TABLE, REGION, error_code, function_arn, http_status, queue_arn, role_arn
from conftest import wait_until

edge = aws_compat.edge_fixture(mappings=True)  # every worker runs: the functions are hosted there

NO_DOCKER = "the function runs for real (moto invokes through Docker)"


def console_sqs_event(body: str, message_id: str | None = None) -> dict:
    """The Lambda console's "SQS" test event template (lab step 4.4), with ``body``."""
    return {"Records": [{
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": "MessageReceiptHandle",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1523232000000", "SenderId": "123456789012",
                       "ApproximateFirstReceiveTimestamp": "1523232000001"},
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body.encode()).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:MyQueue",
        "awsRegion": "us-east-1",
    }]}


# --------------------------------------------------------------------------------------------
# functions
# --------------------------------------------------------------------------------------------


def test_list_functions_has_the_lab_functions(edge):
    functions = {f["FunctionName"]: f for f in edge.client("lambda").list_functions()["Functions"]}
    for name, spec in LAB_FUNCTIONS.items():
        f = functions[name]
        assert f["FunctionArn"] == function_arn(name)
        assert f["Role"] == role_arn(spec["Role"])
        assert f["Handler"] == spec["Handler"]
        assert f["Timeout"] == 3
        assert f["Environment"]["Variables"] == spec["Environment"]
        assert f["Runtime"]
        assert f["LastModified"]


@aws_compat.moto_deviates("moto ignores MaxItems; API_ListFunctions: MaxItems 'The maximum number of functions to "
                          "return in the response', NextMarker 'The pagination token that's included if more results are available'")
def test_list_functions_paginates(edge):
    lam = edge.client("lambda")
    first = lam.list_functions(MaxItems=1)
    assert len(first["Functions"]) == 1 and first["NextMarker"]
    names = [first["Functions"][0]["FunctionName"]]
    marker = first["NextMarker"]
    for _ in range(100):
        page = lam.list_functions(MaxItems=1, Marker=marker)
        names += [f["FunctionName"] for f in page["Functions"]]
        marker = page.get("NextMarker")
        if not marker:
            break
    assert set(LAB_FUNCTIONS) <= set(names)


def test_get_function(edge):
    lam = edge.client("lambda")
    reply = lam.get_function(FunctionName="POC-Lambda-1")
    assert http_status(reply) == 200
    configuration = reply["Configuration"]
    assert configuration["FunctionName"] == "POC-Lambda-1"
    assert configuration["FunctionArn"] == function_arn("POC-Lambda-1")
    assert configuration["Role"] == role_arn("Lambda-SQS-DynamoDB")
    assert configuration["Timeout"] == 3
    assert configuration["Environment"]["Variables"] == {"TABLE_NAME": LAB_TABLE}
    assert configuration["State"] == "Active"
    assert configuration["Version"] == "$LATEST"
    # by ARN too, and GetFunctionConfiguration answers the same configuration
    assert lam.get_function(FunctionName=function_arn("POC-Lambda-1"))["Configuration"]["FunctionName"] == "POC-Lambda-1"
    alone = lam.get_function_configuration(FunctionName="POC-Lambda-1")
    assert alone["FunctionArn"] == configuration["FunctionArn"]
    assert alone["Handler"] == configuration["Handler"]


def test_a_missing_function_is_resource_not_found(edge):
    lam = edge.client("lambda")
    for call in (lambda: lam.get_function(FunctionName="no-such-function"),
                 lambda: lam.get_function_configuration(FunctionName="no-such-function"),
                 lambda: lam.invoke(FunctionName="no-such-function", Payload=b"{}")):
        with pytest.raises(lam.exceptions.ResourceNotFoundException) as caught:
            call()
        assert error_code(caught.value) == "ResourceNotFoundException"
        assert http_status(caught.value) == 404
        assert "no-such-function" in caught.value.response["Error"]["Message"]


# --------------------------------------------------------------------------------------------
# event source mappings
# --------------------------------------------------------------------------------------------


def test_list_event_source_mappings(edge):
    lam = edge.client("lambda")
    sqs_mappings = lam.list_event_source_mappings(FunctionName="POC-Lambda-1")["EventSourceMappings"]
    assert len(sqs_mappings) == 1
    m = sqs_mappings[0]
    uuid.UUID(m["UUID"])
    assert m["EventSourceArn"] == queue_arn(LAB_QUEUE)
    assert m["FunctionArn"] == function_arn("POC-Lambda-1")
    assert m["BatchSize"] == 10
    assert m["State"] == "Enabled"
    assert m["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert lam.get_event_source_mapping(UUID=m["UUID"])["EventSourceArn"] == queue_arn(LAB_QUEUE)

    stream = edge.client("dynamodb").describe_table(TableName=LAB_TABLE)["Table"]["LatestStreamArn"]
    by_source = lam.list_event_source_mappings(EventSourceArn=stream)["EventSourceMappings"]
    assert [x["FunctionArn"] for x in by_source] == [function_arn("POC-Lambda-2")]
    assert by_source[0]["BatchSize"] == 100
    assert by_source[0]["StartingPosition"] == "TRIM_HORIZON"

    every = lam.list_event_source_mappings()["EventSourceMappings"]
    assert {x["FunctionArn"] for x in every} >= {function_arn("POC-Lambda-1"), function_arn("POC-Lambda-2")}


# --------------------------------------------------------------------------------------------
# invoking
# --------------------------------------------------------------------------------------------


@aws_compat.nimbus_only(NO_DOCKER)
def test_invoke_request_response_with_the_console_sqs_event(edge):
    lam = edge.client("lambda")
    body = f"Hello from SQS! {uuid.uuid4().hex}"
    reply = lam.invoke(FunctionName="POC-Lambda-1", InvocationType="RequestResponse",
                       Payload=json.dumps(console_sqs_event(body)).encode())
    assert reply["StatusCode"] == 200
    assert "FunctionError" not in reply, reply["Payload"].read()
    assert reply["ExecutedVersion"] == "$LATEST"
    result = json.loads(reply["Payload"].read())
    assert result == {"batchItemFailures": []}  # ReportBatchItemFailures: nothing failed

    # the order is in the table (POC-Lambda-1 writes each record's body)
    ddb = edge.client("dynamodb")

    def written():
        items = ddb.scan(TableName=LAB_TABLE, ConsistentRead=True, FilterExpression="contains(#o, :b)",
                         ExpressionAttributeNames={"#o": "order"}, ExpressionAttributeValues={":b": {"S": body}})["Items"]
        return items

    items = wait_until(written, timeout=10, interval=0.2, message="the console event's order in the table")
    assert len(items) == 1


@aws_compat.nimbus_only(NO_DOCKER)
def test_invoke_with_log_tail(edge):
    reply = edge.client("lambda").invoke(FunctionName="POC-Lambda-1", LogType="Tail",
                                         Payload=json.dumps(console_sqs_event("log tail " + uuid.uuid4().hex)).encode())
    assert reply["StatusCode"] == 200
    # X-Amz-Log-Result: "The last 4 KB of the execution log, which is base64-encoded"
    log = base64.b64decode(reply["LogResult"], validate=True)
    assert 0 < len(log) <= 4096


@aws_compat.nimbus_only(NO_DOCKER)
def test_invoke_event_is_accepted_with_202(edge):
    reply = edge.client("lambda").invoke(FunctionName="POC-Lambda-1", InvocationType="Event",
                                         Payload=json.dumps(console_sqs_event("async " + uuid.uuid4().hex)).encode())
    assert reply["StatusCode"] == 202
    assert reply["Payload"].read() == b""


@aws_compat.nimbus_only(NO_DOCKER)
def test_invoke_dry_run_is_204(edge):
    reply = edge.client("lambda").invoke(FunctionName="POC-Lambda-2", InvocationType="DryRun", Payload=b"{}")
    assert reply["StatusCode"] == 204


@aws_compat.nimbus_only(NO_DOCKER)
def test_invoke_with_a_payload_that_is_not_json(edge):
    lam = edge.client("lambda")
    with pytest.raises(lam.exceptions.InvalidRequestContentException) as caught:
        lam.invoke(FunctionName="POC-Lambda-1", Payload=b"{not json")
    assert error_code(caught.value) == "InvalidRequestContentException"
    assert http_status(caught.value) == 400


@aws_compat.nimbus_only(NO_DOCKER)
def test_invoke_the_stream_function_with_the_console_dynamodb_event(edge):
    # the console's "DynamoDB Update" template: an INSERT, a MODIFY and a REMOVE of item Id 101
    def record(event_id: str, name: str, image: dict | None, sequence: str) -> dict:
        dynamodb = {"Keys": {"Id": {"N": "101"}}, "SequenceNumber": sequence, "SizeBytes": 26, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        if image:
            dynamodb["NewImage"] = image
        return {"eventID": event_id, "eventName": name, "eventVersion": "1.0", "eventSource": "aws:dynamodb",
                "awsRegion": REGION, "dynamodb": dynamodb,
                "eventSourceARN": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/ExampleTableWithStream/stream/2015-06-27T00:48:05.899"}

    unique_id = uuid.uuid4().hex
    event = {"Records": [
        record(f"1-{unique_id}", "INSERT", {"Message": {"S": "New item!"}, "Id": {"N": "101"}}, "111"),
        record(f"2-{unique_id}", "MODIFY", {"Message": {"S": "This item has changed"}, "Id": {"N": "101"}}, "222"),
        record(f"3-{unique_id}", "REMOVE", None, "333"),
    ]}
    reply = edge.client("lambda").invoke(FunctionName="POC-Lambda-2", Payload=json.dumps(event).encode())
    assert reply["StatusCode"] == 200
    assert "FunctionError" not in reply
    assert json.loads(reply["Payload"].read()) == {"batchItemFailures": []}

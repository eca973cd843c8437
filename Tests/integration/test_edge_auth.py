"""nimbus-edge, authentication and authorization: SigV4 checked against the cluster's keys, and a role's
temporary keys limited to what its policies allow.

What AWS answers (sources):
- an unknown access key: InvalidClientTokenId (403) for the query services and SQS ("Common Errors");
  UnrecognizedClientException for DynamoDB (HTTP 400, "Error handling with DynamoDB") and Lambda (403,
  Lambda "Common Errors");
- a wrong signature: SignatureDoesNotMatch (403) for the query services and SQS;
  InvalidSignatureException for DynamoDB (400) and Lambda (403);
- a stale X-Amz-Date (more than 15 minutes off): the Common Errors pages document RequestExpired (400);
  what SQS, SNS, STS and IAM are seen to answer is SignatureDoesNotMatch (403) "Signature expired: ...
  is now earlier than ... (... - 15 min.)", and DynamoDB and Lambda InvalidSignatureException
  "Signature expired: ..." (aws-cli #6676, aws-sdk-go #487, aws-sdk-js #265/#254): either is accepted;
- no signature at all: MissingAuthenticationToken (403; DynamoDB MissingAuthenticationTokenException, 400);
- denied by policy: AccessDenied (SQS 403, IAM/STS 403), AccessDeniedException (DynamoDB 400, Lambda 403),
  AuthorizationError (SNS 403); STS GetCallerIdentity needs no permission.
Everything that depends on Nimbus checking signatures is Nimbus-only (moto checks none).
"""

from __future__ import annotations

import datetime
import json
import uuid

import botocore
import pytest
from botocore.exceptions import ClientError

import aws_compat
from aws_compat import (ACCOUNT, LAB_QUEUE, LAB_TABLE, LAB_TOPIC, error_code, http_status, presigned_url, role_arn, send,
                        signed_request, signing_clock, topic_arn)

edge = aws_compat.edge_fixture(instances={"ingest-worker": 0, "stream-worker": 0})

SIGV4 = "SigV4 is not checked by moto"
# moto serves every service on one port and sends a GET without an Authorization header to S3
MOTO_ROUTES_PRESIGNED_TO_S3 = "moto's one-port server routes a presigned GET (no Authorization header) to S3"

# (service, call, the code for a bad key, for a bad signature, HTTP status of both)
QUERY_STALE = {"RequestExpired", "SignatureDoesNotMatch"}
JSON_STALE = {"RequestExpired", "InvalidSignatureException"}


def calls(edge, clients) -> dict[str, tuple]:
    """One harmless read per service, with the codes AWS answers for a bad key / bad signature / stale date."""
    sqs_url = edge.queue_url(LAB_QUEUE)
    return {
        "sqs": (lambda: clients("sqs").get_queue_attributes(QueueUrl=sqs_url, AttributeNames=["QueueArn"]),
                "InvalidClientTokenId", "SignatureDoesNotMatch", 403, QUERY_STALE),
        "sns": (lambda: clients("sns").list_topics(), "InvalidClientTokenId", "SignatureDoesNotMatch", 403, QUERY_STALE),
        "iam": (lambda: clients("iam").list_roles(), "InvalidClientTokenId", "SignatureDoesNotMatch", 403, QUERY_STALE),
        "sts": (lambda: clients("sts").get_caller_identity(), "InvalidClientTokenId", "SignatureDoesNotMatch", 403, QUERY_STALE),
        "dynamodb": (lambda: clients("dynamodb").describe_table(TableName=LAB_TABLE),
                     "UnrecognizedClientException", "InvalidSignatureException", 400, JSON_STALE),
        "dynamodbstreams": (lambda: clients("dynamodbstreams").list_streams(TableName=LAB_TABLE),
                            "UnrecognizedClientException", "InvalidSignatureException", 400, JSON_STALE),
        "lambda": (lambda: clients("lambda").list_functions(),
                   "UnrecognizedClientException", "InvalidSignatureException", 403, JSON_STALE),
    }


SERVICES = ["sqs", "sns", "iam", "sts", "dynamodb", "dynamodbstreams", "lambda"]


def failure(call) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value


# --------------------------------------------------------------------------------------------
# the root's keys work everywhere
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_root_keys_are_accepted(edge, service):
    call = calls(edge, edge.clients)[service][0]
    assert http_status(call()) == 200


# --------------------------------------------------------------------------------------------
# signatures
# --------------------------------------------------------------------------------------------


@aws_compat.nimbus_only(SIGV4)
@pytest.mark.parametrize("service", SERVICES)
def test_an_unknown_access_key(edge, service):
    stranger = edge.clients.with_keys("AKIA" + uuid.uuid4().hex[:16].upper(), "x" * 40)
    call, bad_key, _, status, _ = calls(edge, stranger)[service]
    error = failure(call)
    assert error_code(error) == bad_key, error.response["Error"]
    assert http_status(error) == status


@aws_compat.nimbus_only(SIGV4)
@pytest.mark.parametrize("service", SERVICES)
def test_a_wrong_secret(edge, service):
    wrong = edge.clients.with_keys(edge.root["AccessKeyId"], edge.root["SecretAccessKey"][::-1] + "x")
    call, _, bad_signature, status, _ = calls(edge, wrong)[service]
    error = failure(call)
    assert error_code(error) == bad_signature, error.response["Error"]
    assert http_status(error) == status


@aws_compat.nimbus_only(SIGV4)
@pytest.mark.parametrize("offset_minutes", [-20, 20])
@pytest.mark.parametrize("service", SERVICES)
def test_a_date_more_than_15_minutes_off(edge, service, offset_minutes):
    call, _, _, _, stale = calls(edge, edge.clients)[service]
    with signing_clock(datetime.timedelta(minutes=offset_minutes)):
        error = failure(call)
    code = error_code(error)
    assert code in stale, error.response["Error"]
    if code != "RequestExpired":
        # the signature itself is right: the message names the clock ("Signature expired" / "not yet current")
        message = error.response["Error"]["Message"].lower()
        assert "expired" in message or "not yet current" in message, message
    assert http_status(error) in (400, 403)


@aws_compat.nimbus_only(SIGV4)
def test_a_date_within_15_minutes_is_accepted(edge):
    with signing_clock(datetime.timedelta(minutes=-10)):
        assert edge.client("sts").get_caller_identity()["Account"] == ACCOUNT
        assert http_status(edge.client("dynamodb").describe_table(TableName=LAB_TABLE)) == 200


@aws_compat.nimbus_only(SIGV4)
def test_a_body_changed_after_signing_sqs_query(edge):
    request = signed_request("POST", edge.url + "/", "sqs", edge.clients.credentials,
                             data={"Action": "SendMessage", "Version": "2012-11-05", "QueueUrl": edge.queue_url(LAB_QUEUE),
                                   "MessageBody": "signed body"})
    request.data = request.data.replace(b"signed+body", b"forged+body")
    reply = send(request)
    assert reply.status == 403, reply.text
    error = aws_compat.query_error(reply)
    assert error["Code"] == "SignatureDoesNotMatch"
    assert error["Type"] == "Sender"


@aws_compat.nimbus_only(SIGV4)
def test_a_body_changed_after_signing_dynamodb(edge):
    body = json.dumps({"TableName": LAB_TABLE, "Key": {"orderID": {"S": "signed"}}})
    request = signed_request("POST", edge.url + "/", "dynamodb", edge.clients.credentials, data=body,
                             headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.GetItem"})
    request.data = request.data.replace(b"signed", b"forged")
    reply = send(request)
    assert reply.status == 400, reply.text
    assert reply.json()["__type"].rsplit("#", 1)[-1] == "InvalidSignatureException"


@aws_compat.nimbus_only(SIGV4)
def test_a_target_header_changed_after_signing(edge):
    # X-Amz-Target is a signed header: switching the operation breaks the signature
    body = json.dumps({"TableName": LAB_TABLE})
    request = signed_request("POST", edge.url + "/", "dynamodb", edge.clients.credentials, data=body,
                             headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.DescribeTable"})
    request.headers.replace_header("X-Amz-Target", "DynamoDB_20120810.DeleteTable")
    reply = send(request)
    assert reply.status == 400, reply.text
    assert reply.json()["__type"].rsplit("#", 1)[-1] == "InvalidSignatureException"
    assert LAB_TABLE in edge.client("dynamodb").list_tables()["TableNames"]


@aws_compat.nimbus_only(SIGV4)
@pytest.mark.parametrize("service,code,status", [
    ("sqs", "MissingAuthenticationToken", 403), ("sts", "MissingAuthenticationToken", 403),
    ("sns", "MissingAuthenticationToken", 403), ("dynamodb", "MissingAuthenticationTokenException", 400)])
def test_an_unsigned_request(edge, service, code, status):
    unsigned = edge.clients(service, signature_version=botocore.UNSIGNED)
    call = {"sqs": lambda: unsigned.list_queues(), "sts": lambda: unsigned.get_caller_identity(),
            "sns": lambda: unsigned.list_topics(), "dynamodb": lambda: unsigned.list_tables()}[service]
    error = failure(call)
    assert error_code(error) == code, error.response["Error"]
    assert http_status(error) == status


# --------------------------------------------------------------------------------------------
# presigned URLs (SigV4 in the query string)
# --------------------------------------------------------------------------------------------


@aws_compat.nimbus_only(MOTO_ROUTES_PRESIGNED_TO_S3)
def test_presigned_sqs_query_get(edge):
    url = edge.queue_url(LAB_QUEUE)
    presigned = presigned_url(url, "sqs", edge.clients.credentials,
                              {"Action": "GetQueueAttributes", "Version": "2012-11-05", "AttributeName.1": "QueueArn"})
    assert "X-Amz-Signature=" in presigned and "X-Amz-Credential=" in presigned
    reply = send(presigned)
    assert reply.status == 200, reply.text
    assert reply.xml().findtext("GetQueueAttributesResult/Attribute/Value") == aws_compat.queue_arn(LAB_QUEUE)


@aws_compat.nimbus_only(MOTO_ROUTES_PRESIGNED_TO_S3)
def test_presigned_sts_get_caller_identity(edge):
    # what EKS/Vault-style "prove who you are" logins send: a presigned sts:GetCallerIdentity
    presigned = edge.client("sts").generate_presigned_url("get_caller_identity", ExpiresIn=300)
    reply = send(presigned)
    assert reply.status == 200, reply.text
    assert reply.xml().findtext("GetCallerIdentityResult/Account") == ACCOUNT


@aws_compat.nimbus_only(SIGV4)
def test_a_presigned_url_with_a_forged_parameter(edge):
    presigned = presigned_url(edge.queue_url(LAB_QUEUE), "sqs", edge.clients.credentials,
                              {"Action": "GetQueueAttributes", "Version": "2012-11-05", "AttributeName.1": "QueueArn"})
    reply = send(presigned.replace("AttributeName.1=QueueArn", "AttributeName.1=All"))
    assert reply.status == 403, reply.text
    assert aws_compat.query_error(reply)["Code"] == "SignatureDoesNotMatch"


@aws_compat.nimbus_only(SIGV4)
def test_an_expired_presigned_url(edge):
    url = edge.queue_url(LAB_QUEUE)
    with signing_clock(datetime.timedelta(minutes=-30)):
        presigned = presigned_url(url, "sqs", edge.clients.credentials,
                                  {"Action": "GetQueueAttributes", "Version": "2012-11-05", "AttributeName.1": "QueueArn"},
                                  expires=60)
    reply = send(presigned)
    assert reply.status in (400, 403), reply.text
    error = aws_compat.query_error(reply)
    # "RequestExpired: ... more than 15 minutes after the request expiration date (such as for pre-signed URLs)"
    assert error["Code"] in ("RequestExpired", "AccessDenied", "SignatureDoesNotMatch"), error
    assert error["Code"] == "RequestExpired" or "expire" in error["Message"].lower(), error


# --------------------------------------------------------------------------------------------
# a role's temporary keys
# --------------------------------------------------------------------------------------------


def assume(edge, role: str) -> dict:
    return edge.client("sts").assume_role(RoleArn=role_arn(role), RoleSessionName="edge-auth")["Credentials"]


@pytest.fixture(scope="module")
def ingest_role(edge):
    """Clients signing with Lambda-SQS-DynamoDB's temporary keys (Lambda-Write-DynamoDB + Lambda-Read-SQS)."""
    if edge.is_moto:
        pytest.skip("Nimbus-specific: IAM decisions (moto allows everything)")
    return aws_compat.clients_for(edge.url, assume(edge, "Lambda-SQS-DynamoDB"))


@pytest.fixture(scope="module")
def stream_role(edge):
    """Clients signing with Lambda-DynamoDBStreams-SNS's keys (Lambda-SNS-Publish + Lambda-DynamoDBStreams-Read)."""
    if edge.is_moto:
        pytest.skip("Nimbus-specific: IAM decisions (moto allows everything)")
    return aws_compat.clients_for(edge.url, assume(edge, "Lambda-DynamoDBStreams-SNS"))


def test_role_keys_do_what_the_policies_allow(edge, ingest_role):
    url = edge.queue_url(LAB_QUEUE)
    sqs = ingest_role("sqs")
    # Lambda-Read-SQS: ReceiveMessage, DeleteMessage, GetQueueAttributes, ChangeMessageVisibility
    assert http_status(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])) == 200
    assert http_status(sqs.receive_message(QueueUrl=url, WaitTimeSeconds=0)) == 200
    # Lambda-Write-DynamoDB: PutItem, DescribeTable
    ddb = ingest_role("dynamodb")
    assert http_status(ddb.put_item(TableName=LAB_TABLE, Item={"orderID": {"S": f"role-{uuid.uuid4().hex[:8]}"}})) == 200
    assert ddb.describe_table(TableName=LAB_TABLE)["Table"]["TableName"] == LAB_TABLE
    # GetCallerIdentity needs no permission
    identity = ingest_role("sts").get_caller_identity()
    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/Lambda-SQS-DynamoDB/edge-auth"


def test_role_keys_are_denied_outside_the_policies(edge, ingest_role):
    url = edge.queue_url(LAB_QUEUE)
    denied = {
        # SendMessage: neither Lambda-Read-SQS nor the queue's policy (only APIGateway-SQS may send) allows it
        "sqs:SendMessage": (lambda: ingest_role("sqs").send_message(QueueUrl=url, MessageBody="not allowed"), "AccessDenied", 403),
        "sqs:PurgeQueue": (lambda: ingest_role("sqs").purge_queue(QueueUrl=url), "AccessDenied", 403),
        "dynamodb:Scan": (lambda: ingest_role("dynamodb").scan(TableName=LAB_TABLE), "AccessDeniedException", 400),
        "dynamodb:GetItem": (lambda: ingest_role("dynamodb").get_item(TableName=LAB_TABLE, Key={"orderID": {"S": "x"}}),
                             "AccessDeniedException", 400),
        "dynamodb:DeleteTable": (lambda: ingest_role("dynamodb").delete_table(TableName=LAB_TABLE), "AccessDeniedException", 400),
        "sns:Publish": (lambda: ingest_role("sns").publish(TopicArn=topic_arn(LAB_TOPIC), Message="x"), "AuthorizationError", 403),
        "iam:ListRoles": (lambda: ingest_role("iam").list_roles(), "AccessDenied", 403),
        "lambda:ListFunctions": (lambda: ingest_role("lambda").list_functions(), "AccessDeniedException", 403),
    }
    wrong = {}
    for action, (call, code, status) in denied.items():
        try:
            call()
        except ClientError as error:
            if (error_code(error), http_status(error)) != (code, status):
                wrong[action] = f"{error_code(error)} {http_status(error)} (AWS: {code} {status})"
        else:
            wrong[action] = f"allowed (AWS: {code} {status})"
    assert not wrong, "; ".join(f"{k}: {v}" for k, v in sorted(wrong.items()))
    # nothing was done
    assert LAB_TABLE in edge.client("dynamodb").list_tables()["TableNames"]


def test_the_stream_role(edge, stream_role):
    arn = edge.client("dynamodb").describe_table(TableName=LAB_TABLE)["Table"]["LatestStreamArn"]
    assert stream_role("dynamodbstreams").describe_stream(StreamArn=arn)["StreamDescription"]["StreamArn"] == arn
    assert {"TopicArn": topic_arn(LAB_TOPIC)} in stream_role("sns").list_topics()["Topics"]
    assert http_status(stream_role("sns").publish(TopicArn=topic_arn(LAB_TOPIC), Message=aws_compat.LAB_ORDER)) == 200
    error = failure(lambda: stream_role("dynamodb").put_item(TableName=LAB_TABLE, Item={"orderID": {"S": "nope"}}))
    assert error_code(error) == "AccessDeniedException"
    error = failure(lambda: stream_role("sqs").receive_message(QueueUrl=edge.queue_url(LAB_QUEUE)))
    assert error_code(error) == "AccessDenied"


@aws_compat.nimbus_only(SIGV4)
def test_role_keys_without_their_session_token(edge):
    credentials = assume(edge, "Lambda-SQS-DynamoDB")
    tokenless = edge.clients.with_keys(credentials["AccessKeyId"], credentials["SecretAccessKey"])
    error = failure(lambda: tokenless("sts").get_caller_identity())
    assert error_code(error) == "InvalidClientTokenId"
    error = failure(lambda: tokenless("dynamodb").describe_table(TableName=LAB_TABLE))
    assert error_code(error) == "UnrecognizedClientException"


@aws_compat.nimbus_only(SIGV4)
def test_role_keys_with_a_forged_session_token(edge):
    credentials = assume(edge, "Lambda-SQS-DynamoDB")
    forged = edge.clients.with_keys(credentials["AccessKeyId"], credentials["SecretAccessKey"],
                                    credentials["SessionToken"][:-4] + "AAAA")
    error = failure(lambda: forged("sts").get_caller_identity())
    assert error_code(error) == "InvalidClientTokenId", error.response["Error"]
    assert http_status(error) == 403

"""nimbus-edge, SQS: what boto3 (SQS's JSON 1.0 protocol, AmazonSQS.* targets) and a hand-signed query
protocol client (form POST, XML replies) see, as the SQS API reference describes it.

Sources (AWS docs): API_SendMessage / API_ReceiveMessage / API_DeleteMessage / API_ChangeMessageVisibility /
the *Batch actions / API_GetQueueUrl / API_GetQueueAttributes / API_ListQueues / API_PurgeQueue /
API_CreateQueue; "Interpreting Amazon SQS JSON API responses" (x-amzn-query-error:
AWS.SimpleQueueService.NonExistentQueue;Sender, __type com.amazonaws.sqs#QueueDoesNotExist);
"Interpreting Amazon SQS XML API responses" (<ActionResponse><ActionResult>.., <ErrorResponse><Error>
<Type>Sender</Type><Code>..); "Calculating the MD5 message digest for message attributes".

The cluster runs no ingest worker, so nothing but these tests reads POC-Queue.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
import urllib.parse
import uuid

import pytest
from botocore.exceptions import ClientError

import aws_compat
from aws_compat import ACCOUNT, LAB_DLQ, LAB_QUEUE, error_code, http_status, queue_arn, send, signed_request, unique
from conftest import wait_until

edge = aws_compat.edge_fixture(instances={"ingest-worker": 0})

QUERY_VERSION = "2012-11-05"


def md5_hex(text: str | bytes) -> str:
    return hashlib.md5(text.encode("utf-8") if isinstance(text, str) else text).hexdigest()


def md5_of_attributes(attributes: dict[str, dict]) -> str:
    """MD5OfMessageAttributes as the SQS Developer Guide computes it: attributes sorted by name; for each,
    the name and the data type, each as a 4-byte big-endian length and UTF-8 bytes, then one transport
    byte (1 String/Number, 2 Binary), then the value as length and bytes; MD5 of the concatenation."""
    def prefixed(data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + data

    out = b""
    for name in sorted(attributes):
        value = attributes[name]
        out += prefixed(name.encode()) + prefixed(value["DataType"].encode())
        if value["DataType"].split(".", 1)[0] == "Binary":
            raw = value["BinaryValue"]
            out += b"\x02" + prefixed(raw if isinstance(raw, bytes) else base64.b64decode(raw))
        else:
            out += b"\x01" + prefixed(value["StringValue"].encode())
    return hashlib.md5(out).hexdigest()


def test_md5_of_attributes_matches_published_vectors():
    # the values published with the aws-md5-of-message-attributes package (computed against SQS)
    assert md5_of_attributes({"attribName1": {"DataType": "String", "StringValue": "attribValue 1"}}) == \
        "19e27d4e946b072f3f58da80d94fd778"
    assert md5_of_attributes({"binaryAttribute": {"DataType": "Binary", "BinaryValue": b"Hello binary world!"}}) == \
        "31a92b15d92f8db860eda32aceb656c3"
    assert md5_of_attributes({
        "attribName1": {"DataType": "String", "StringValue": "attribValue 1"},
        "customNumberTypeAttrib": {"DataType": "Number.float", "StringValue": "4563442423554324324264524243.32543234"},
        "binaryAttribute": {"DataType": "Binary", "BinaryValue": b"Hello binary world!"},
    }) == "c932db14a896c663f83c260297d594ff"


@pytest.fixture
def queue(edge):
    """A fresh standard queue of this test's own (deleted afterwards)."""
    sqs = edge.client("sqs")
    url = sqs.create_queue(QueueName=unique("edge-q"), Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    yield url
    try:
        sqs.delete_queue(QueueUrl=url)
    except ClientError:
        pass


def receive_all(sqs, url: str, expected: int, timeout: float = 10, **kwargs) -> list[dict]:
    """Receives until ``expected`` distinct messages came (bounded)."""
    got: dict[str, dict] = {}

    def enough():
        reply = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, **kwargs)
        for m in reply.get("Messages", []):
            got[m["MessageId"]] = m
        return len(got) >= expected

    wait_until(enough, timeout=timeout, interval=0, message=f"{expected} messages received from {url}")
    return list(got.values())


def receive_id(sqs, url: str, message_id: str, timeout: float = 10, **kwargs) -> dict:
    """Receives from ``url`` until the message ``message_id`` comes; others received meanwhile are deleted."""
    def look():
        reply = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1, **kwargs)
        for m in reply.get("Messages", []):
            if m["MessageId"] == message_id:
                return m
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
        return None

    return wait_until(look, timeout=timeout, interval=0, message=f"message {message_id} received")


# --------------------------------------------------------------------------------------------
# the lab's queues
# --------------------------------------------------------------------------------------------


def test_get_queue_url_of_the_lab_queues(edge):
    sqs = edge.client("sqs")
    for name in (LAB_QUEUE, LAB_DLQ):
        reply = sqs.get_queue_url(QueueName=name)
        assert http_status(reply) == 200
        url = reply["QueueUrl"]
        assert urllib.parse.urlsplit(url).path == f"/{ACCOUNT}/{name}", url
    # QueueOwnerAWSAccountId names the account explicitly
    assert sqs.get_queue_url(QueueName=LAB_QUEUE, QueueOwnerAWSAccountId=ACCOUNT)["QueueUrl"] == edge.queue_url(LAB_QUEUE)


def test_get_queue_url_of_a_missing_queue_is_queue_does_not_exist(edge):
    sqs = edge.client("sqs")
    with pytest.raises(sqs.exceptions.QueueDoesNotExist) as caught:
        sqs.get_queue_url(QueueName="no-such-queue-" + uuid.uuid4().hex[:8])
    error = caught.value
    # JSON protocol: the query-compatible code rides in x-amzn-query-error ("code;Sender")
    assert error_code(error) == "AWS.SimpleQueueService.NonExistentQueue"
    assert error.response["Error"].get("Type") == "Sender"
    assert http_status(error) == 400
    headers = error.response["ResponseMetadata"]["HTTPHeaders"]
    assert headers.get("x-amzn-query-error") == "AWS.SimpleQueueService.NonExistentQueue;Sender"
    assert headers.get("x-amzn-requestid")


def test_operations_on_a_missing_queue_url_are_queue_does_not_exist(edge):
    sqs = edge.client("sqs")
    missing = edge.queue_url(LAB_QUEUE).rsplit("/", 1)[0] + "/no-such-queue-" + uuid.uuid4().hex[:8]
    for call in (lambda: sqs.send_message(QueueUrl=missing, MessageBody="x"),
                 lambda: sqs.receive_message(QueueUrl=missing),
                 lambda: sqs.get_queue_attributes(QueueUrl=missing, AttributeNames=["All"])):
        with pytest.raises(sqs.exceptions.QueueDoesNotExist) as caught:
            call()
        assert error_code(caught.value) == "AWS.SimpleQueueService.NonExistentQueue"


def test_lab_queue_attributes(edge):
    sqs = edge.client("sqs")
    attributes = sqs.get_queue_attributes(QueueUrl=edge.queue_url(LAB_QUEUE), AttributeNames=["All"])["Attributes"]
    assert attributes["QueueArn"] == queue_arn(LAB_QUEUE)
    assert attributes["VisibilityTimeout"] == "30"
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == queue_arn(LAB_DLQ)
    assert int(redrive["maxReceiveCount"]) == 5
    for name in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed",
                 "CreatedTimestamp", "LastModifiedTimestamp", "DelaySeconds", "MaximumMessageSize",
                 "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds"):
        assert name in attributes, f"{name} missing from {sorted(attributes)}"
    for name in ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed",
                 "DelaySeconds", "MaximumMessageSize", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds"):
        assert attributes[name].isdigit(), (name, attributes[name])  # numbers, as strings
    dlq = sqs.get_queue_attributes(QueueUrl=edge.queue_url(LAB_DLQ), AttributeNames=["MessageRetentionPeriod", "QueueArn"])
    assert dlq["Attributes"] == {"MessageRetentionPeriod": "1209600", "QueueArn": queue_arn(LAB_DLQ)}


@aws_compat.moto_deviates("moto answers fractional seconds ('1796671541.66'); API_GetQueueAttributes: CreatedTimestamp "
                          "and LastModifiedTimestamp are 'the time ... in seconds (epoch time)', whole seconds")
def test_lab_queue_timestamps_are_whole_epoch_seconds(edge):
    attributes = edge.client("sqs").get_queue_attributes(
        QueueUrl=edge.queue_url(LAB_QUEUE), AttributeNames=["CreatedTimestamp", "LastModifiedTimestamp"])["Attributes"]
    for name in ("CreatedTimestamp", "LastModifiedTimestamp"):
        assert attributes[name].isdigit(), (name, attributes[name])
        assert 1_500_000_000 < int(attributes[name]) <= time.time() + 60  # seconds, not milliseconds


def test_get_queue_attributes_returns_only_what_was_asked(edge):
    sqs = edge.client("sqs")
    reply = sqs.get_queue_attributes(QueueUrl=edge.queue_url(LAB_QUEUE), AttributeNames=["VisibilityTimeout"])
    assert reply["Attributes"] == {"VisibilityTimeout": "30"}


def test_list_queues_with_prefix(edge):
    sqs = edge.client("sqs")
    urls = sqs.list_queues(QueueNamePrefix="POC-Queue")["QueueUrls"]
    assert sorted(u.rsplit("/", 1)[1] for u in urls) == [LAB_QUEUE, LAB_DLQ]
    assert [u.rsplit("/", 1)[1] for u in sqs.list_queues(QueueNamePrefix="POC-Queue-")["QueueUrls"]] == [LAB_DLQ]
    # a prefix nothing has: no QueueUrls member at all (JSON protocol omits empty lists)
    assert sqs.list_queues(QueueNamePrefix="no-such-prefix-").get("QueueUrls", []) == []


@aws_compat.moto_deviates("moto ignores MaxResults; API_ListQueues: 'Maximum number of results to include in the "
                          "response ... You must set MaxResults to receive a value for NextToken in the response'")
def test_list_queues_paginates_with_max_results(edge):
    sqs = edge.client("sqs")
    first = sqs.list_queues(QueueNamePrefix="POC-Queue", MaxResults=1)
    assert len(first["QueueUrls"]) == 1 and first.get("NextToken")
    second = sqs.list_queues(QueueNamePrefix="POC-Queue", MaxResults=1, NextToken=first["NextToken"])
    assert len(second["QueueUrls"]) == 1
    assert {first["QueueUrls"][0], second["QueueUrls"][0]} == {edge.queue_url(LAB_QUEUE), edge.queue_url(LAB_DLQ)}


def test_lab_order_round_trip_on_poc_queue(edge):
    sqs = edge.client("sqs")
    url = edge.queue_url(LAB_QUEUE)
    sent = sqs.send_message(QueueUrl=url, MessageBody=aws_compat.LAB_ORDER)
    assert sent["MD5OfMessageBody"] == md5_hex(aws_compat.LAB_ORDER)
    message = receive_id(sqs, url, sent["MessageId"])
    assert message["Body"] == aws_compat.LAB_ORDER
    assert message["MD5OfBody"] == md5_hex(aws_compat.LAB_ORDER)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


# --------------------------------------------------------------------------------------------
# messages on queues of the tests' own
# --------------------------------------------------------------------------------------------


def test_create_queue_is_idempotent_and_differing_attributes_are_queue_name_exists(edge):
    sqs = edge.client("sqs")
    name = unique("edge-idem")
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "45"})["QueueUrl"]
    try:
        assert urllib.parse.urlsplit(url).path == f"/{ACCOUNT}/{name}"
        assert sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "45"})["QueueUrl"] == url
        with pytest.raises(sqs.exceptions.QueueNameExists) as caught:
            sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "60"})
        assert error_code(caught.value) == "QueueAlreadyExists"
        assert http_status(caught.value) == 400
    finally:
        sqs.delete_queue(QueueUrl=url)


def test_send_message_answers_md5_and_message_id(edge, queue):
    sqs = edge.client("sqs")
    body = "Hello from SQS! ünïcödé ✓ " + uuid.uuid4().hex
    reply = sqs.send_message(QueueUrl=queue, MessageBody=body)
    assert http_status(reply) == 200
    assert reply["MD5OfMessageBody"] == md5_hex(body)
    uuid.UUID(reply["MessageId"])  # SQS message ids are UUIDs
    assert "MD5OfMessageAttributes" not in reply  # only when attributes were sent


def test_send_message_with_attributes_answers_md5_of_attributes(edge, queue):
    sqs = edge.client("sqs")
    attributes = {
        "customerID": {"DataType": "String", "StringValue": "12345"},
        "quantity": {"DataType": "Number", "StringValue": "3"},
        "blob": {"DataType": "Binary", "BinaryValue": b"\x00\x01binary\xff"},
    }
    reply = sqs.send_message(QueueUrl=queue, MessageBody="with attributes", MessageAttributes=attributes)
    assert reply["MD5OfMessageAttributes"] == md5_of_attributes(attributes)
    message = receive_id(sqs, queue, reply["MessageId"], MessageAttributeNames=["All"])
    assert message["MD5OfMessageAttributes"] == md5_of_attributes(attributes)
    assert message["MessageAttributes"]["customerID"] == {"StringValue": "12345", "DataType": "String"}
    assert message["MessageAttributes"]["quantity"] == {"StringValue": "3", "DataType": "Number"}
    assert message["MessageAttributes"]["blob"] == {"BinaryValue": b"\x00\x01binary\xff", "DataType": "Binary"}


def test_receive_message_carries_system_attributes(edge, queue):
    sqs = edge.client("sqs")
    before_ms = int(time.time() * 1000)
    sent = sqs.send_message(QueueUrl=queue, MessageBody="system attributes")
    message = receive_id(sqs, queue, sent["MessageId"], MessageSystemAttributeNames=["All"])
    assert message["Body"] == "system attributes"
    assert message["MD5OfBody"] == md5_hex("system attributes")
    assert message["ReceiptHandle"]
    attributes = message["Attributes"]
    assert attributes["ApproximateReceiveCount"] == "1"
    sent_ms = int(attributes["SentTimestamp"])  # epoch milliseconds
    assert before_ms - 60_000 <= sent_ms <= int(time.time() * 1000) + 60_000
    assert int(attributes["ApproximateFirstReceiveTimestamp"]) >= sent_ms
    assert attributes["SenderId"]


def test_receive_on_an_empty_queue_long_polls_and_returns_no_messages(edge, queue):
    sqs = edge.client("sqs")
    started = time.monotonic()
    reply = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=2)
    elapsed = time.monotonic() - started
    assert reply.get("Messages", []) == []
    assert 1.5 <= elapsed < 10, elapsed


def test_a_received_message_is_invisible_until_its_visibility_changes(edge, queue):
    sqs = edge.client("sqs")
    sent = sqs.send_message(QueueUrl=queue, MessageBody="hide me")
    first = receive_id(sqs, queue, sent["MessageId"], VisibilityTimeout=30)
    assert sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []) == []
    # ChangeMessageVisibility to 0 makes it visible again at once; it comes back with a new receipt handle
    assert http_status(sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=first["ReceiptHandle"],
                                                     VisibilityTimeout=0)) == 200
    again = receive_id(sqs, queue, sent["MessageId"], MessageSystemAttributeNames=["ApproximateReceiveCount"])
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"
    assert again["ReceiptHandle"] != first["ReceiptHandle"]
    sqs.delete_message(QueueUrl=queue, ReceiptHandle=again["ReceiptHandle"])


def test_visibility_timeout_expiry_returns_the_message(edge, queue):
    sqs = edge.client("sqs")
    sent = sqs.send_message(QueueUrl=queue, MessageBody="short visibility")
    receive_id(sqs, queue, sent["MessageId"], VisibilityTimeout=1)
    again = receive_id(sqs, queue, sent["MessageId"], timeout=15)
    assert again["Body"] == "short visibility"


def test_delete_message_removes_it(edge, queue):
    sqs = edge.client("sqs")
    sent = sqs.send_message(QueueUrl=queue, MessageBody="delete me")
    message = receive_id(sqs, queue, sent["MessageId"], VisibilityTimeout=1)
    assert http_status(sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])) == 200
    # after the 1 s visibility timeout it must still be gone
    started = time.monotonic()
    while time.monotonic() - started < 2.5:
        assert sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", []) == []


def test_delete_with_an_invalid_receipt_handle_is_receipt_handle_is_invalid(edge, queue):
    sqs = edge.client("sqs")
    with pytest.raises(ClientError) as caught:
        sqs.delete_message(QueueUrl=queue, ReceiptHandle="not-a-receipt-handle")
    assert error_code(caught.value) == "ReceiptHandleIsInvalid"
    assert http_status(caught.value) == 400


def test_batch_send_receive_change_visibility_delete(edge, queue):
    sqs = edge.client("sqs")
    bodies = {f"m{i}": f"batch body {i} {uuid.uuid4().hex}" for i in range(3)}
    sent = sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": k, "MessageBody": v} for k, v in bodies.items()])
    assert sent.get("Failed", []) == []
    assert sorted(e["Id"] for e in sent["Successful"]) == sorted(bodies)
    for entry in sent["Successful"]:
        assert entry["MD5OfMessageBody"] == md5_hex(bodies[entry["Id"]])
        uuid.UUID(entry["MessageId"])

    received = receive_all(sqs, queue, 3, VisibilityTimeout=30)
    assert sorted(m["Body"] for m in received) == sorted(bodies.values())
    handles = {f"r{i}": m["ReceiptHandle"] for i, m in enumerate(received)}

    changed = sqs.change_message_visibility_batch(QueueUrl=queue, Entries=[
        {"Id": k, "ReceiptHandle": h, "VisibilityTimeout": 60} for k, h in handles.items()])
    assert changed.get("Failed", []) == []
    assert sorted(e["Id"] for e in changed["Successful"]) == sorted(handles)

    deleted = sqs.delete_message_batch(QueueUrl=queue, Entries=[{"Id": k, "ReceiptHandle": h} for k, h in handles.items()])
    assert deleted.get("Failed", []) == []
    assert sorted(e["Id"] for e in deleted["Successful"]) == sorted(handles)


def test_batch_delete_reports_a_bad_entry_in_failed(edge, queue):
    sqs = edge.client("sqs")
    sent = sqs.send_message(QueueUrl=queue, MessageBody="one good")
    good = receive_id(sqs, queue, sent["MessageId"])
    reply = sqs.delete_message_batch(QueueUrl=queue, Entries=[
        {"Id": "good", "ReceiptHandle": good["ReceiptHandle"]}, {"Id": "bad", "ReceiptHandle": "not-a-receipt-handle"}])
    assert [e["Id"] for e in reply["Successful"]] == ["good"]
    assert len(reply["Failed"]) == 1
    failed = reply["Failed"][0]
    assert failed["Id"] == "bad"
    assert failed["SenderFault"] is True
    assert failed["Code"] == "ReceiptHandleIsInvalid"


def test_batch_errors(edge, queue):
    sqs = edge.client("sqs")
    with pytest.raises(sqs.exceptions.BatchEntryIdsNotDistinct) as caught:
        sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": "same", "MessageBody": "a"}, {"Id": "same", "MessageBody": "b"}])
    assert error_code(caught.value) == "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"
    with pytest.raises(sqs.exceptions.TooManyEntriesInBatchRequest) as caught:
        sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": f"e{i}", "MessageBody": "x"} for i in range(11)])
    assert error_code(caught.value) == "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
    with pytest.raises(sqs.exceptions.EmptyBatchRequest) as caught:
        sqs.send_message_batch(QueueUrl=queue, Entries=[])
    assert error_code(caught.value) == "AWS.SimpleQueueService.EmptyBatchRequest"


def test_delay_seconds_holds_a_message_back(edge, queue):
    sqs = edge.client("sqs")
    sent = sqs.send_message(QueueUrl=queue, MessageBody="delayed", DelaySeconds=3)
    assert sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", []) == []
    message = receive_id(sqs, queue, sent["MessageId"], timeout=15)
    assert message["Body"] == "delayed"


def test_purge_queue_empties_it(edge, queue):
    sqs = edge.client("sqs")
    sqs.send_message_batch(QueueUrl=queue, Entries=[{"Id": f"p{i}", "MessageBody": f"purge {i}"} for i in range(3)])
    assert http_status(sqs.purge_queue(QueueUrl=queue)) == 200

    def empty():
        attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
        return attributes["ApproximateNumberOfMessages"] == "0"

    wait_until(empty, timeout=60, interval=0.5, message="purged queue empty")
    assert sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", []) == []


@aws_compat.moto_deviates("moto allows back-to-back purges; API_PurgeQueue: 'Only one PurgeQueue operation on "
                          "MyQueue is allowed every 60 seconds' -> PurgeQueueInProgress")
def test_a_second_purge_within_60_seconds_is_purge_queue_in_progress(edge, queue):
    sqs = edge.client("sqs")
    sqs.purge_queue(QueueUrl=queue)
    with pytest.raises(sqs.exceptions.PurgeQueueInProgress) as caught:
        sqs.purge_queue(QueueUrl=queue)
    assert error_code(caught.value) == "AWS.SimpleQueueService.PurgeQueueInProgress"
    # API_PurgeQueue (JSON-era reference) says 400; the older query-protocol model said 403
    assert http_status(caught.value) in (400, 403)


def test_deleted_queue_is_gone(edge):
    sqs = edge.client("sqs")
    name = unique("edge-del")
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    assert http_status(sqs.delete_queue(QueueUrl=url)) == 200

    def gone():
        try:
            sqs.get_queue_url(QueueName=name)
        except sqs.exceptions.QueueDoesNotExist:
            return True
        return False

    # "the queue might take up to 60 seconds to be deleted" (API_DeleteQueue)
    wait_until(gone, timeout=60, interval=0.5, message=f"{name} deleted")
    assert name not in [u.rsplit("/", 1)[1] for u in sqs.list_queues(QueueNamePrefix=name).get("QueueUrls", [])]


# --------------------------------------------------------------------------------------------
# the query protocol, by hand (form POST, SigV4 by botocore, XML replies)
# --------------------------------------------------------------------------------------------


def query(edge, params: dict[str, str], url: str | None = None):
    """A SigV4-signed query-protocol POST (Action=...&Version=2012-11-05&...) to the endpoint (or to
    a queue URL, the older path-addressed form)."""
    form = {"Version": QUERY_VERSION, **params}
    return send(signed_request("POST", url or edge.url + "/", "sqs", edge.clients.credentials, data=form))


def test_query_send_message(edge):
    url = edge.queue_url(LAB_QUEUE)
    reply = query(edge, {"Action": "SendMessage", "QueueUrl": url, "MessageBody": aws_compat.LAB_ORDER})
    assert reply.status == 200, reply.text
    assert "xml" in (reply.header("Content-Type") or "")
    root = reply.xml()
    assert root.tag == "SendMessageResponse"
    result = root.find("SendMessageResult")
    assert result is not None, reply.text
    assert result.findtext("MD5OfMessageBody") == md5_hex(aws_compat.LAB_ORDER)
    message_id = result.findtext("MessageId")
    uuid.UUID(message_id)
    assert root.findtext("ResponseMetadata/RequestId")
    # the JSON side sees the same message
    message = receive_id(edge.client("sqs"), url, message_id)
    assert message["Body"] == aws_compat.LAB_ORDER
    edge.client("sqs").delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_query_send_with_attributes_receive_and_delete(edge, queue):
    attributes = {"customerID": {"DataType": "String", "StringValue": "12345"},
                  "quantity": {"DataType": "Number", "StringValue": "2"}}
    sent = query(edge, {
        "Action": "SendMessage", "QueueUrl": queue, "MessageBody": "query body & <xml> chars",
        "MessageAttribute.1.Name": "customerID", "MessageAttribute.1.Value.DataType": "String",
        "MessageAttribute.1.Value.StringValue": "12345",
        "MessageAttribute.2.Name": "quantity", "MessageAttribute.2.Value.DataType": "Number",
        "MessageAttribute.2.Value.StringValue": "2"})
    assert sent.status == 200, sent.text
    result = sent.xml().find("SendMessageResult")
    assert result.findtext("MD5OfMessageBody") == md5_hex("query body & <xml> chars")
    assert result.findtext("MD5OfMessageAttributes") == md5_of_attributes(attributes)

    def receive():
        reply = query(edge, {"Action": "ReceiveMessage", "QueueUrl": queue, "AttributeName.1": "All",
                             "MessageAttributeName.1": "All", "WaitTimeSeconds": "1"})
        assert reply.status == 200, reply.text
        return reply.xml().find("ReceiveMessageResult/Message")

    message = wait_until(receive, timeout=10, interval=0, message="query ReceiveMessage returns the message")
    assert message.findtext("MessageId") == result.findtext("MessageId")
    assert message.findtext("Body") == "query body & <xml> chars"
    assert message.findtext("MD5OfBody") == md5_hex("query body & <xml> chars")
    system = {a.findtext("Name"): a.findtext("Value") for a in message.findall("Attribute")}
    assert system["ApproximateReceiveCount"] == "1"
    assert system["SentTimestamp"].isdigit()
    custom = {a.findtext("Name"): (a.findtext("Value/DataType"), a.findtext("Value/StringValue"))
              for a in message.findall("MessageAttribute")}
    assert custom == {"customerID": ("String", "12345"), "quantity": ("Number", "2")}

    deleted = query(edge, {"Action": "DeleteMessage", "QueueUrl": queue, "ReceiptHandle": message.findtext("ReceiptHandle")})
    assert deleted.status == 200, deleted.text
    assert deleted.xml().tag == "DeleteMessageResponse"


def test_query_get_queue_url_and_attributes(edge):
    reply = query(edge, {"Action": "GetQueueUrl", "QueueName": LAB_QUEUE})
    assert reply.status == 200, reply.text
    url = reply.xml().findtext("GetQueueUrlResult/QueueUrl")
    assert urllib.parse.urlsplit(url).path == f"/{ACCOUNT}/{LAB_QUEUE}"
    reply = query(edge, {"Action": "GetQueueAttributes", "QueueUrl": url, "AttributeName.1": "QueueArn",
                         "AttributeName.2": "VisibilityTimeout"})
    assert reply.status == 200, reply.text
    pairs = {a.findtext("Name"): a.findtext("Value") for a in reply.xml().findall("GetQueueAttributesResult/Attribute")}
    assert pairs == {"QueueArn": queue_arn(LAB_QUEUE), "VisibilityTimeout": "30"}


def test_query_request_addressed_to_the_queue_url(edge):
    # the older form: the queue URL is the request's path and QueueUrl is left out
    url = edge.queue_url(LAB_QUEUE)
    reply = query(edge, {"Action": "GetQueueAttributes", "AttributeName.1": "QueueArn"}, url=url)
    assert reply.status == 200, reply.text
    assert reply.xml().findtext("GetQueueAttributesResult/Attribute/Value") == queue_arn(LAB_QUEUE)


def test_query_list_queues(edge):
    reply = query(edge, {"Action": "ListQueues", "QueueNamePrefix": "POC-Queue"})
    assert reply.status == 200, reply.text
    urls = [e.text for e in reply.xml().findall("ListQueuesResult/QueueUrl")]
    assert sorted(u.rsplit("/", 1)[1] for u in urls) == [LAB_QUEUE, LAB_DLQ]


def test_query_error_reply_for_a_missing_queue(edge):
    reply = query(edge, {"Action": "GetQueueUrl", "QueueName": "no-such-queue-" + uuid.uuid4().hex[:8]})
    assert reply.status == 400, reply.text
    error = aws_compat.query_error(reply)
    assert error["Type"] == "Sender"
    assert error["Code"] == "AWS.SimpleQueueService.NonExistentQueue"
    assert error["Message"]


def test_query_batch_send(edge, queue):
    reply = query(edge, {"Action": "SendMessageBatch", "QueueUrl": queue,
                         "SendMessageBatchRequestEntry.1.Id": "a", "SendMessageBatchRequestEntry.1.MessageBody": "first",
                         "SendMessageBatchRequestEntry.2.Id": "b", "SendMessageBatchRequestEntry.2.MessageBody": "second"})
    assert reply.status == 200, reply.text
    entries = reply.xml().findall("SendMessageBatchResult/SendMessageBatchResultEntry")
    assert {e.findtext("Id"): e.findtext("MD5OfMessageBody") for e in entries} == {"a": md5_hex("first"), "b": md5_hex("second")}

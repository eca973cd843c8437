"""The queue broker over the wire: SQS semantics (`sqs:*` actions, AWS's JSON shapes and error codes).

Every test makes its own queues (unique names) on the module's cluster, with short visibility
timeouts, so tests do not depend on each other. Expected values are computed here, independently of
the broker: MD5s with hashlib, the MD5 of message attributes from the algorithm AWS documents.

The durability tests at the end SIGKILL the broker (once, shared by a module fixture) and run last.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from conftest import (
    PROTOCOL_TAG, SQS, md5_hex, md5_of_attributes, new_id, process_by_name, queue_arn, queue_url,
    root_credentials_for, sign_header, wait_for_queue, wait_until,
)

# The gateway durability test reads POC-Queue itself: no ingest worker (POC-Lambda-1) may consume it.
CLUSTER_INSTANCES = {"ingest-worker": 0}

NONEXISTENT = "AWS.SimpleQueueService.NonExistentQueue"
HTTP_TIMEOUT = 10


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module", autouse=True)
def stack_ready(cluster):
    """The lab's queues exist once the broker has applied the stack."""
    wait_for_queue(cluster, "POC-Queue")
    wait_for_queue(cluster, "POC-Queue-DLQ")


@pytest.fixture
def sqs(cluster):
    with SQS(cluster.endpoint("queue")) as client:
        yield client


def create(sqs: SQS, prefix: str = "q", **attributes) -> str:
    """Creates a queue with a unique name and the given attributes (values stringified); returns its URL."""
    name = unique(prefix)
    url = sqs("CreateQueue", {"QueueName": name, "Attributes": {k: str(v) for k, v in attributes.items()}})["QueueUrl"]
    assert url == queue_url(name)
    return url


def attributes(sqs: SQS, url: str, *names: str) -> dict:
    return sqs("GetQueueAttributes", {"QueueUrl": url, "AttributeNames": list(names) or ["All"]})["Attributes"]


def counts(sqs: SQS, url: str) -> tuple[int, int, int]:
    """(visible, in flight, delayed)."""
    a = attributes(sqs, url, "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
                   "ApproximateNumberOfMessagesDelayed")
    return (int(a["ApproximateNumberOfMessages"]), int(a["ApproximateNumberOfMessagesNotVisible"]),
            int(a["ApproximateNumberOfMessagesDelayed"]))


def send(sqs: SQS, url: str, body: str, **extra) -> dict:
    return sqs("SendMessage", {"QueueUrl": url, "MessageBody": body, **extra})


# ------------------------------------------------------------------------------------------------
# queues
# ------------------------------------------------------------------------------------------------


def test_stack_queues_exist_with_the_lab_attributes(sqs):
    poc = attributes(sqs, queue_url("POC-Queue"))
    assert poc["QueueArn"] == queue_arn("POC-Queue")
    assert poc["VisibilityTimeout"] == "30"
    assert json.loads(poc["RedrivePolicy"]) == {"deadLetterTargetArn": queue_arn("POC-Queue-DLQ"), "maxReceiveCount": 5}
    dlq = attributes(sqs, queue_url("POC-Queue-DLQ"))
    assert dlq["MessageRetentionPeriod"] == "1209600"
    assert "RedrivePolicy" not in dlq


def test_create_get_url_and_default_attributes(sqs):
    name = unique("create")
    before = int(time.time())
    url = sqs("CreateQueue", {"QueueName": name})["QueueUrl"]
    assert url == f"https://sqs.us-east-1.amazonaws.com/000000000000/{name}"
    assert sqs("GetQueueUrl", {"QueueName": name}) == {"QueueUrl": url}
    a = attributes(sqs, url)
    assert a["QueueArn"] == f"arn:aws:sqs:us-east-1:000000000000:{name}"
    assert (a["VisibilityTimeout"], a["MessageRetentionPeriod"], a["MaximumMessageSize"], a["DelaySeconds"],
            a["ReceiveMessageWaitTimeSeconds"]) == ("30", "345600", "1048576", "0", "0")
    assert (a["ApproximateNumberOfMessages"], a["ApproximateNumberOfMessagesNotVisible"],
            a["ApproximateNumberOfMessagesDelayed"]) == ("0", "0", "0")
    assert before - 1 <= int(a["CreatedTimestamp"]) <= time.time() + 1
    assert "RedrivePolicy" not in a
    # only what was asked for
    assert attributes(sqs, url, "VisibilityTimeout") == {"VisibilityTimeout": "30"}


def test_create_is_idempotent_with_the_same_attributes(sqs):
    name = unique("idem")
    first = sqs("CreateQueue", {"QueueName": name, "Attributes": {"VisibilityTimeout": "5"}})["QueueUrl"]
    assert sqs("CreateQueue", {"QueueName": name, "Attributes": {"VisibilityTimeout": "5"}})["QueueUrl"] == first
    assert sqs("CreateQueue", {"QueueName": name})["QueueUrl"] == first
    assert sqs.error("CreateQueue", {"QueueName": name, "Attributes": {"VisibilityTimeout": "6"}}) == "QueueAlreadyExists"
    assert attributes(sqs, first, "VisibilityTimeout") == {"VisibilityTimeout": "5"}


@pytest.mark.parametrize("name", ["bad name", "slash/name", "x" * 81, "", "emoji-\U0001F600", "dots.not.ok"])
def test_create_rejects_bad_queue_names(sqs, name):
    assert sqs.error("CreateQueue", {"QueueName": name}) == "InvalidParameterValue"


def test_create_accepts_an_80_character_name(sqs):
    name = ("n-" + uuid.uuid4().hex + "_" * 80)[:80]
    assert sqs("CreateQueue", {"QueueName": name})["QueueUrl"] == queue_url(name)


@pytest.mark.parametrize("attribute, value", [
    ("VisibilityTimeout", "43201"), ("VisibilityTimeout", "-1"), ("VisibilityTimeout", "abc"),
    ("MessageRetentionPeriod", "59"), ("MessageRetentionPeriod", "1209601"),
    ("MaximumMessageSize", "1023"), ("MaximumMessageSize", "1048577"),
    ("DelaySeconds", "901"), ("ReceiveMessageWaitTimeSeconds", "21"),
    ("RedrivePolicy", "not json"), ("RedrivePolicy", '{"maxReceiveCount": 5}'),
])
def test_out_of_range_attributes_are_invalid(sqs, attribute, value):
    assert sqs.error("CreateQueue", {"QueueName": unique("bad"), "Attributes": {attribute: value}}) == "InvalidParameterValue"
    url = create(sqs, "range")
    assert sqs.error("SetQueueAttributes", {"QueueUrl": url, "Attributes": {attribute: value}}) == "InvalidParameterValue"


def test_unknown_attribute_names(sqs):
    url = create(sqs, "unknown")
    assert sqs.error("CreateQueue", {"QueueName": unique("u"), "Attributes": {"Colour": "blue"}}) == "InvalidAttributeName"
    assert sqs.error("SetQueueAttributes", {"QueueUrl": url, "Attributes": {"Colour": "blue"}}) == "InvalidAttributeName"
    assert sqs.error("GetQueueAttributes", {"QueueUrl": url, "AttributeNames": ["Colour"]}) == "InvalidAttributeName"


def test_set_queue_attributes_round_trip_and_is_atomic(sqs):
    url = create(sqs, "set")
    dlq = create(sqs, "set-dlq")
    redrive = {"deadLetterTargetArn": queue_arn(dlq.rsplit("/", 1)[1]), "maxReceiveCount": 7}
    sqs("SetQueueAttributes", {"QueueUrl": url, "Attributes": {
        "VisibilityTimeout": "7", "DelaySeconds": "3", "MaximumMessageSize": "2048", "MessageRetentionPeriod": "120",
        "ReceiveMessageWaitTimeSeconds": "2", "RedrivePolicy": json.dumps(redrive)}})
    a = attributes(sqs, url)
    assert (a["VisibilityTimeout"], a["DelaySeconds"], a["MaximumMessageSize"], a["MessageRetentionPeriod"],
            a["ReceiveMessageWaitTimeSeconds"]) == ("7", "3", "2048", "120", "2")
    assert json.loads(a["RedrivePolicy"]) == redrive
    # one bad value: nothing changes
    assert sqs.error("SetQueueAttributes", {"QueueUrl": url, "Attributes": {"DelaySeconds": "1", "VisibilityTimeout": "99999"}}) \
        == "InvalidParameterValue"
    a = attributes(sqs, url, "DelaySeconds", "VisibilityTimeout")
    assert a == {"DelaySeconds": "3", "VisibilityTimeout": "7"}
    # an empty RedrivePolicy removes it
    sqs("SetQueueAttributes", {"QueueUrl": url, "Attributes": {"RedrivePolicy": ""}})
    assert "RedrivePolicy" not in attributes(sqs, url)


def test_redrive_policy_to_a_missing_queue_is_invalid(sqs):
    url = create(sqs, "dangling")
    policy = json.dumps({"deadLetterTargetArn": queue_arn(unique("missing")), "maxReceiveCount": 2})
    assert sqs.error("SetQueueAttributes", {"QueueUrl": url, "Attributes": {"RedrivePolicy": policy}}) == "InvalidParameterValue"


def test_list_queues_by_prefix_and_pages(sqs):
    prefix = unique("list")
    names = [f"{prefix}-{c}" for c in "abc"]
    for n in names:
        sqs("CreateQueue", {"QueueName": n})
    assert sqs("ListQueues", {"QueueNamePrefix": prefix})["QueueUrls"] == [queue_url(n) for n in names]
    assert sqs("ListQueues", {"QueueNamePrefix": prefix + "-b"})["QueueUrls"] == [queue_url(names[1])]
    assert not sqs("ListQueues", {"QueueNamePrefix": unique("none")}).get("QueueUrls")
    everything = sqs("ListQueues", {})["QueueUrls"]
    assert set(map(queue_url, names + ["POC-Queue", "POC-Queue-DLQ"])) <= set(everything)
    # pages of 2
    page = sqs("ListQueues", {"QueueNamePrefix": prefix, "MaxResults": 2})
    assert page["QueueUrls"] == [queue_url(n) for n in names[:2]] and page.get("NextToken")
    rest = sqs("ListQueues", {"QueueNamePrefix": prefix, "MaxResults": 2, "NextToken": page["NextToken"]})
    assert rest["QueueUrls"] == [queue_url(names[2])] and not rest.get("NextToken")
    assert sqs.error("ListQueues", {"MaxResults": 0}) == "InvalidParameterValue"


def test_delete_queue(sqs):
    url = create(sqs, "del")
    send(sqs, url, "doomed")
    assert sqs("DeleteQueue", {"QueueUrl": url}) == {}
    name = url.rsplit("/", 1)[1]
    assert sqs.error("GetQueueUrl", {"QueueName": name}) == NONEXISTENT
    assert sqs.error("SendMessage", {"QueueUrl": url, "MessageBody": "x"}) == NONEXISTENT
    assert sqs.error("DeleteQueue", {"QueueUrl": url}) == NONEXISTENT
    assert queue_url(name) not in (sqs("ListQueues", {"QueueNamePrefix": name}).get("QueueUrls") or [])


def test_purge_queue(sqs):
    url = create(sqs, "purge", VisibilityTimeout=30)
    for i in range(3):
        send(sqs, url, f"m{i}")
    assert len(sqs.receive(url, 1)) == 1  # one in flight too
    assert sqs("PurgeQueue", {"QueueUrl": url}) == {}
    assert counts(sqs, url) == (0, 0, 0)
    assert sqs.receive(url) == []
    # SQS allows one purge a minute per queue
    assert sqs.error("PurgeQueue", {"QueueUrl": url}) == "AWS.SimpleQueueService.PurgeQueueInProgress"
    send(sqs, url, "after")
    assert [m["Body"] for m in sqs.receive(url)] == ["after"]


@pytest.mark.parametrize("operation, body", [
    ("GetQueueUrl", {"QueueName": "no-such-queue-x"}),
    ("GetQueueAttributes", {"QueueUrl": queue_url("no-such-queue-x")}),
    ("SetQueueAttributes", {"QueueUrl": queue_url("no-such-queue-x"), "Attributes": {"DelaySeconds": "1"}}),
    ("SendMessage", {"QueueUrl": queue_url("no-such-queue-x"), "MessageBody": "x"}),
    ("SendMessageBatch", {"QueueUrl": queue_url("no-such-queue-x"), "Entries": [{"Id": "a", "MessageBody": "x"}]}),
    ("ReceiveMessage", {"QueueUrl": queue_url("no-such-queue-x")}),
    ("DeleteMessage", {"QueueUrl": queue_url("no-such-queue-x"), "ReceiptHandle": "x"}),
    ("ChangeMessageVisibility", {"QueueUrl": queue_url("no-such-queue-x"), "ReceiptHandle": "x", "VisibilityTimeout": 1}),
    ("PurgeQueue", {"QueueUrl": queue_url("no-such-queue-x")}),
    ("DeleteQueue", {"QueueUrl": queue_url("no-such-queue-x")}),
    # another account's queue, and a URL that is not one
    ("SendMessage", {"QueueUrl": "https://sqs.us-east-1.amazonaws.com/111111111111/POC-Queue", "MessageBody": "x"}),
    ("SendMessage", {"QueueUrl": "POC-Queue", "MessageBody": "x"}),
])
def test_nonexistent_queue(sqs, operation, body):
    assert sqs.error(operation, body) == NONEXISTENT


# ------------------------------------------------------------------------------------------------
# sending and receiving
# ------------------------------------------------------------------------------------------------


def test_send_receive_body_md5_and_message_id(sqs):
    url = create(sqs, "basic", VisibilityTimeout=30)
    body = json.dumps({"item": "latex gloves", "customerID": "12345"})
    sent = send(sqs, url, body)
    assert sent["MD5OfMessageBody"] == md5_hex(body)
    # a random (version 4) UUID in lowercase, as SQS's
    assert str(uuid.UUID(sent["MessageId"])) == sent["MessageId"] and uuid.UUID(sent["MessageId"]).version == 4
    assert not sent.get("MD5OfMessageAttributes")
    before = int(time.time() * 1000)
    [m] = sqs.receive(url, 10, attributes=["All"])
    assert (m["Body"], m["MD5OfBody"], m["MessageId"]) == (body, md5_hex(body), sent["MessageId"])
    assert m["ReceiptHandle"]
    assert m["Attributes"]["ApproximateReceiveCount"] == "1"
    assert before - 5000 <= int(m["Attributes"]["SentTimestamp"]) <= before + 1000
    assert int(m["Attributes"]["ApproximateFirstReceiveTimestamp"]) >= int(m["Attributes"]["SentTimestamp"])
    assert "SenderId" in m["Attributes"]
    assert counts(sqs, url) == (0, 1, 0)
    assert sqs("DeleteMessage", {"QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"]}) == {}
    assert counts(sqs, url) == (0, 0, 0)


def test_receive_only_the_system_attributes_asked_for(sqs):
    url = create(sqs, "sysattrs")
    send(sqs, url, "x")
    [m] = sqs.receive(url, attributes=["SentTimestamp"])
    assert set(m["Attributes"]) == {"SentTimestamp"}


SPECIAL_BODIES = [
    "a&b=c+d%20e%zz&&==++",
    "100% + 50% & more; <xml attr='x'>&amp;</xml> \"quoted\" \\backslash\\",
    "emoji \U0001F600\U0001F9EA\U0001F1EB\U0001F1F7 and ZWJ \U0001F468\u200D\U0001F469\u200D\U0001F467",
    "CJK 中文字符 日本語 한국어",
    "tab\tnewline\ncarriage\rend",
    "edges \uD7FF \uE000 \uFFFD \U00010000 \U0010FFFF",
    '{"item":"latex gloves & co + 5%","customerID":"12345","note":"ünïcødé"}',
    " leading and trailing spaces ",
]


@pytest.mark.parametrize("body", SPECIAL_BODIES)
def test_bodies_arrive_byte_for_byte(sqs, body):
    url = create(sqs, "bytes")
    sent = send(sqs, url, body)
    assert sent["MD5OfMessageBody"] == md5_hex(body)
    [m] = sqs.receive(url)
    assert m["Body"].encode("utf-8") == body.encode("utf-8")
    assert m["MD5OfBody"] == md5_hex(body)


@pytest.mark.parametrize("body", ["nul \u0000 here", "backspace \u0008", "escape \u001b[0m", "unit sep \u001f",
                                  "nonchar \uFFFE", "nonchar \uFFFF"])
def test_invalid_characters_are_refused(sqs, body):
    url = create(sqs, "invalid")
    assert sqs.error("SendMessage", {"QueueUrl": url, "MessageBody": body}) == "InvalidMessageContents"
    assert counts(sqs, url) == (0, 0, 0)


def test_empty_body_is_missing(sqs):
    url = create(sqs, "empty")
    assert sqs.error("SendMessage", {"QueueUrl": url, "MessageBody": ""}) == "MissingParameter"


def test_maximum_message_size_counts_utf8_bytes(sqs):
    url = create(sqs, "size", MaximumMessageSize=1024)
    assert send(sqs, url, "x" * 1024)["MD5OfMessageBody"] == md5_hex("x" * 1024)
    assert sqs.error("SendMessage", {"QueueUrl": url, "MessageBody": "x" * 1025}) == "InvalidParameterValue"
    # 342 characters but 1,026 bytes
    assert sqs.error("SendMessage", {"QueueUrl": url, "MessageBody": "€" * 342}) == "InvalidParameterValue"
    assert counts(sqs, url) == (1, 0, 0)


def test_default_maximum_message_size(sqs):
    url = create(sqs, "bigsize")
    body = "y" * 1_048_576
    assert send(sqs, url, body)["MD5OfMessageBody"] == md5_hex(body)
    assert sqs.error("SendMessage", {"QueueUrl": url, "MessageBody": body + "y"}) == "InvalidParameterValue"
    [m] = sqs.receive(url)
    assert m["MD5OfBody"] == md5_hex(body) and len(m["Body"]) == len(body)


ATTRIBUTES = {
    "customerID": {"DataType": "String", "StringValue": "12345"},
    "quantity": {"DataType": "Number", "StringValue": "-12.5e3"},
    "blob": {"DataType": "Binary", "BinaryValue": "AAECA/8="},
    "label": {"DataType": "String.custom", "StringValue": "ünï & +%"},
    "Zeta": {"DataType": "Number.int", "StringValue": "7"},
}


def test_message_attributes_round_trip_with_md5(sqs):
    url = create(sqs, "mattrs")
    expected_md5 = md5_of_attributes(ATTRIBUTES)
    sent = send(sqs, url, "with attributes", MessageAttributes=ATTRIBUTES)
    assert sent["MD5OfMessageAttributes"] == expected_md5
    assert sent["MD5OfMessageBody"] == md5_hex("with attributes")
    [m] = sqs.receive(url, message_attributes=["All"])
    assert m["MessageAttributes"] == ATTRIBUTES
    assert m["MD5OfMessageAttributes"] == expected_md5
    # without MessageAttributeNames, none come back
    sqs("ChangeMessageVisibility", {"QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0})
    [m] = sqs.receive(url)
    assert not m.get("MessageAttributes")


def test_message_attributes_md5_matches_a_single_attribute_computed_by_hand(sqs):
    """A fixed vector: the MD5 of {"a": String "b"}, bytes spelled out, not via the helper."""
    url = create(sqs, "vector")
    raw = b"\x00\x00\x00\x01a" + b"\x00\x00\x00\x06String" + b"\x01" + b"\x00\x00\x00\x01b"
    sent = send(sqs, url, "v", MessageAttributes={"a": {"DataType": "String", "StringValue": "b"}})
    assert sent["MD5OfMessageAttributes"] == hashlib.md5(raw).hexdigest()


def test_message_attributes_md5_covers_the_returned_subset(sqs):
    url = create(sqs, "subset")
    send(sqs, url, "subset", MessageAttributes=ATTRIBUTES)
    [m] = sqs.receive(url, message_attributes=["customerID"])
    assert m["MessageAttributes"] == {"customerID": ATTRIBUTES["customerID"]}
    assert m["MD5OfMessageAttributes"] == md5_of_attributes(m["MessageAttributes"])


@pytest.mark.parametrize("bad", [
    {"": {"DataType": "String", "StringValue": "x"}},
    {"AWS.reserved": {"DataType": "String", "StringValue": "x"}},
    {"n": {"DataType": "Number", "StringValue": "twelve"}},
    {"s": {"DataType": "String"}},
    {"b": {"DataType": "Binary", "BinaryValue": "not base64!"}},
    {"t": {"DataType": "Text", "StringValue": "x"}},
    {f"k{i}": {"DataType": "String", "StringValue": "v"} for i in range(11)},
])
def test_invalid_message_attributes(sqs, bad):
    url = create(sqs, "badattrs")
    assert sqs.error("SendMessage", {"QueueUrl": url, "MessageBody": "x", "MessageAttributes": bad}) == "InvalidParameterValue"


def test_receive_parameter_ranges(sqs):
    url = create(sqs, "ranges")
    for field, value in [("MaxNumberOfMessages", 0), ("MaxNumberOfMessages", 11), ("WaitTimeSeconds", 21),
                         ("WaitTimeSeconds", -1), ("VisibilityTimeout", 43201)]:
        assert sqs.error("ReceiveMessage", {"QueueUrl": url, field: value}) == "InvalidParameterValue", field
    assert sqs.error("SendMessage", {"QueueUrl": url, "MessageBody": "x", "DelaySeconds": 901}) == "InvalidParameterValue"
    assert sqs.error("SendMessage", {"QueueUrl": url, "MessageBody": "x", "DelaySeconds": -1}) == "InvalidParameterValue"


def test_receive_returns_at_most_max_number_of_messages(sqs):
    url = create(sqs, "max")
    sqs("SendMessageBatch", {"QueueUrl": url, "Entries": [{"Id": f"e{i}", "MessageBody": f"m{i}"} for i in range(10)]})
    assert len(sqs.receive(url, 3)) == 3
    assert len(sqs.receive(url, 1)) == 1
    # MaxNumberOfMessages defaults to 1
    assert len(sqs("ReceiveMessage", {"QueueUrl": url})["Messages"]) == 1
    rest = sqs.receive(url, 10)
    assert len(rest) == 5
    assert counts(sqs, url) == (0, 10, 0)


def test_visibility_zero_receive_returns_each_message_once(sqs):
    url = create(sqs, "vis0")
    send(sqs, url, "only one")
    messages = sqs.receive(url, 10, visibility=0)
    assert [m["Body"] for m in messages] == ["only one"]


# ------------------------------------------------------------------------------------------------
# visibility timeout
# ------------------------------------------------------------------------------------------------


def test_visibility_timeout_stale_handle_and_change_visibility(sqs):
    url = create(sqs, "vis", VisibilityTimeout=1)
    sent = send(sqs, url, "hide and seek")
    t_first = time.monotonic()
    [first] = sqs.receive(url)
    assert first["Attributes"]["ApproximateReceiveCount"] == "1"
    assert sqs.receive(url) == []  # invisible now
    assert counts(sqs, url) == (0, 1, 0)

    # back after the 1 s timeout, not before; a long poll wakes when it becomes visible
    [second] = sqs.receive(url, wait=5)
    elapsed = time.monotonic() - t_first
    assert 0.8 <= elapsed <= 3.0, elapsed
    assert second["MessageId"] == sent["MessageId"]
    assert second["Attributes"]["ApproximateReceiveCount"] == "2"
    assert second["ReceiptHandle"] != first["ReceiptHandle"]

    # the stale handle "succeeds" (as in SQS) but deletes nothing
    assert sqs("DeleteMessage", {"QueueUrl": url, "ReceiptHandle": first["ReceiptHandle"]}) == {}
    assert counts(sqs, url) == (0, 1, 0)

    # visibility 0: visible at once; then the handle is no longer in flight
    sqs("ChangeMessageVisibility", {"QueueUrl": url, "ReceiptHandle": second["ReceiptHandle"], "VisibilityTimeout": 0})
    assert sqs.error("ChangeMessageVisibility", {"QueueUrl": url, "ReceiptHandle": second["ReceiptHandle"],
                                                 "VisibilityTimeout": 10}) == "AWS.SimpleQueueService.MessageNotInflight"
    [third] = sqs.receive(url, visibility=30)
    assert third["MessageId"] == sent["MessageId"] and third["Attributes"]["ApproximateReceiveCount"] == "3"

    # the current handle deletes it
    assert sqs("DeleteMessage", {"QueueUrl": url, "ReceiptHandle": third["ReceiptHandle"]}) == {}
    assert counts(sqs, url) == (0, 0, 0)
    # a deleted message's handle cannot change anything (AWS/moto say one of these two)
    assert sqs.error("ChangeMessageVisibility", {"QueueUrl": url, "ReceiptHandle": third["ReceiptHandle"],
                                                 "VisibilityTimeout": 5}) in (
        "AWS.SimpleQueueService.MessageNotInflight", "ReceiptHandleIsInvalid")


def test_change_visibility_extends_the_timeout(sqs):
    url = create(sqs, "extend", VisibilityTimeout=1)
    send(sqs, url, "extend me")
    [m] = sqs.receive(url)
    sqs("ChangeMessageVisibility", {"QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 30})
    # well past the queue's 1 s: still hidden (time passing is the behaviour under test)
    time.sleep(1.5)
    assert sqs.receive(url) == []
    assert counts(sqs, url) == (0, 1, 0)
    assert sqs.error("ChangeMessageVisibility", {"QueueUrl": url, "ReceiptHandle": m["ReceiptHandle"],
                                                 "VisibilityTimeout": 43201}) == "InvalidParameterValue"


def test_receive_visibility_timeout_overrides_the_queue(sqs):
    url = create(sqs, "override", VisibilityTimeout=30)
    send(sqs, url, "short")
    t0 = time.monotonic()
    sqs.receive(url, visibility=1)
    [again] = sqs.receive(url, wait=5)
    assert 0.8 <= time.monotonic() - t0 <= 3.0
    assert again["Attributes"]["ApproximateReceiveCount"] == "2"


@pytest.mark.parametrize("handle", ["", "garbage", "bnExOg==", "bnExOjE6", "bnExOm5vdDpudW1iZXI=", "!!!not base64!!!",
                                    "A" * 2000])
def test_malformed_receipt_handles(sqs, handle):
    url = create(sqs, "handle")
    assert sqs.error("DeleteMessage", {"QueueUrl": url, "ReceiptHandle": handle}) == "ReceiptHandleIsInvalid"
    assert sqs.error("ChangeMessageVisibility", {"QueueUrl": url, "ReceiptHandle": handle, "VisibilityTimeout": 1}) \
        == "ReceiptHandleIsInvalid"


def test_competing_consumers_never_share_an_invisible_message(cluster, sqs):
    url = create(sqs, "compete", VisibilityTimeout=30)
    bodies = [f"job-{i}" for i in range(50)]
    for start in range(0, 50, 10):
        result = sqs("SendMessageBatch", {"QueueUrl": url, "Entries": [
            {"Id": f"e{i}", "MessageBody": b} for i, b in enumerate(bodies[start:start + 10])]})
        assert len(result["Successful"]) == 10, result
    received: list[list[str]] = [[] for _ in range(8)]
    total = [0]
    lock = threading.Lock()
    go = threading.Barrier(8)

    def consumer(index: int) -> None:
        deadline = time.monotonic() + 15
        with SQS(cluster.endpoint("queue")) as mine:
            go.wait(timeout=10)
            while time.monotonic() < deadline:
                with lock:
                    if total[0] >= 50:
                        return
                batch = mine.receive(url, 3, wait=0)
                with lock:
                    received[index] += [m["Body"] for m in batch]
                    total[0] += len(batch)

    with ThreadPoolExecutor(8) as pool:
        for f in [pool.submit(consumer, i) for i in range(8)]:
            f.result(timeout=30)
    everything = [b for r in received for b in r]
    assert sorted(everything) == sorted(bodies), f"duplicates or losses: {len(everything)} received"
    assert sum(1 for r in received if r) >= 2, "the consumers did not actually compete"
    assert sqs.receive(url) == []
    assert counts(sqs, url) == (0, 50, 0)


# ------------------------------------------------------------------------------------------------
# delays and long polling
# ------------------------------------------------------------------------------------------------


def test_delay_seconds_per_message_and_per_queue(sqs):
    url = create(sqs, "delay", DelaySeconds=2)
    t0 = time.monotonic()
    send(sqs, url, "queue delay")                       # the queue's 2 s
    send(sqs, url, "no delay", DelaySeconds=0)          # per message: overrides the queue
    send(sqs, url, "one second", DelaySeconds=1)
    assert [m["Body"] for m in sqs.receive(url)] == ["no delay"]
    assert counts(sqs, url) == (0, 1, 2)
    # a long poll wakes when a delayed message becomes visible
    [m] = sqs.receive(url, 1, wait=5)
    assert m["Body"] == "one second" and 0.8 <= time.monotonic() - t0 <= 1.9, time.monotonic() - t0
    [m] = sqs.receive(url, 1, wait=5)
    assert m["Body"] == "queue delay" and 1.8 <= time.monotonic() - t0 <= 3.0, time.monotonic() - t0
    assert counts(sqs, url) == (0, 3, 0)


def test_long_poll_returns_as_soon_as_a_message_is_sent(cluster, sqs):
    url = create(sqs, "longpoll")
    result: dict = {}

    def poll():
        with SQS(cluster.endpoint("queue")) as poller:
            start = time.monotonic()
            result["messages"] = poller.receive(url, 1, wait=10)
            result["done"] = time.monotonic()
            result["took"] = result["done"] - start

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.5)  # the poll is parked on the empty queue
    sent_at = time.monotonic()
    send(sqs, url, "wake up")
    thread.join(timeout=15)
    assert not thread.is_alive()
    assert [m["Body"] for m in result["messages"]] == ["wake up"]
    assert result["done"] - sent_at < 2.0, result
    assert result["took"] < 5.0, result


def test_a_batch_sent_to_parked_polls_goes_to_each_once(cluster, sqs):
    url = create(sqs, "parkedmany", VisibilityTimeout=30)
    polls = [SQS(cluster.endpoint("queue")) for _ in range(4)]
    try:
        for p in polls:  # four long polls for one message each, parked on the empty queue
            p.client.send("request", action="sqs:ReceiveMessage",
                          body={"QueueUrl": url, "WaitTimeSeconds": 2, "MaxNumberOfMessages": 1, "AttributeNames": ["All"]})
        time.sleep(0.3)  # parked (nothing to observe: a parked poll changes no count)
        result = sqs("SendMessageBatch", {"QueueUrl": url, "Entries": [{"Id": f"e{i}", "MessageBody": f"m{i}"} for i in range(3)]})
        assert len(result["Successful"]) == 3, result
        got = []
        for p in polls:
            header, body = p.client.recv(timeout=10)
            assert header["kind"] == "reply", body
            got.append(body.get("Messages", []))
    finally:
        for p in polls:
            p.close()
    bodies = sorted(m["Body"] for batch in got for m in batch)
    assert bodies == ["m0", "m1", "m2"], got
    assert sorted(len(batch) for batch in got) == [0, 1, 1, 1]
    assert all(m["Attributes"]["ApproximateReceiveCount"] == "1" for batch in got for m in batch)
    assert counts(sqs, url) == (0, 3, 0)


def test_long_poll_on_an_empty_queue_waits_its_time(sqs):
    url = create(sqs, "emptypoll")
    t0 = time.monotonic()
    assert sqs.receive(url, 1, wait=1) == []
    assert 0.9 <= time.monotonic() - t0 <= 3.0


def test_queue_receive_wait_time_is_the_default_wait(sqs):
    url = create(sqs, "defaultwait", ReceiveMessageWaitTimeSeconds=1)
    t0 = time.monotonic()
    assert not sqs("ReceiveMessage", {"QueueUrl": url}, timeout=10).get("Messages")
    assert 0.9 <= time.monotonic() - t0 <= 3.0
    # WaitTimeSeconds=0 in the request wins: a short poll
    t0 = time.monotonic()
    assert sqs.receive(url, 1, wait=0) == []
    assert time.monotonic() - t0 < 0.8


def test_deleting_a_queue_ends_its_long_polls(cluster, sqs):
    url = create(sqs, "dropped")
    with SQS(cluster.endpoint("queue")) as poller:
        poller.client.send("request", action="sqs:ReceiveMessage", body={"QueueUrl": url, "WaitTimeSeconds": 10})
        time.sleep(0.3)  # parked
        t0 = time.monotonic()
        sqs("DeleteQueue", {"QueueUrl": url})
        header, body = poller.client.recv(timeout=12)
        assert time.monotonic() - t0 < 2.0
        assert (header["kind"] == "reply" and not body.get("Messages")) or body.get("code") == NONEXISTENT, (header, body)


def test_parked_long_polls_do_not_block_other_requests(cluster, sqs):
    url = create(sqs, "parked")
    other = create(sqs, "other")
    clients = [SQS(cluster.endpoint("queue")) for _ in range(4)]
    try:
        for c in clients:  # four long polls outstanding on the same broker
            c.client.send("request", action="sqs:ReceiveMessage", body={"QueueUrl": url, "WaitTimeSeconds": 3})
        time.sleep(0.2)
        t0 = time.monotonic()
        for i in range(20):
            send(sqs, other, f"m{i}")
        assert time.monotonic() - t0 < 2.0
        for c in clients:
            header, body = c.client.recv(timeout=10)
            assert header["kind"] == "reply" and not body.get("Messages")
    finally:
        for c in clients:
            c.close()


# ------------------------------------------------------------------------------------------------
# redrive
# ------------------------------------------------------------------------------------------------


def test_redrive_moves_a_message_to_the_dead_letter_queue(sqs):
    dlq = create(sqs, "dlq")
    dlq_arn = attributes(sqs, dlq, "QueueArn")["QueueArn"]
    source = create(sqs, "src", VisibilityTimeout=1,
                    RedrivePolicy=json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 2}))
    sent = send(sqs, source, "poison pill")
    [m1] = sqs.receive(source)
    [m2] = sqs.receive(source, wait=5)
    assert (m1["MessageId"], m2["MessageId"]) == (sent["MessageId"], sent["MessageId"])
    assert m2["Attributes"]["ApproximateReceiveCount"] == "2"
    assert sqs.receive(source, wait=0) == []  # in flight again
    wait_until(lambda: counts(sqs, source)[0] == 1, timeout=5, message="visible again after the 1 s timeout")
    # the third receive attempt moves it instead of delivering it
    assert sqs.receive(source, wait=0) == []
    assert counts(sqs, source) == (0, 0, 0)
    [dead] = sqs.receive(dlq)
    assert (dead["MessageId"], dead["Body"], dead["MD5OfBody"]) == (sent["MessageId"], "poison pill", md5_hex("poison pill"))
    assert sqs.receive(source, wait=1) == []


def test_redrive_with_max_receive_count_one(sqs):
    dlq = create(sqs, "dlq1")
    source = create(sqs, "src1", RedrivePolicy=json.dumps(
        {"deadLetterTargetArn": queue_arn(dlq.rsplit("/", 1)[1]), "maxReceiveCount": "1"}))
    send(sqs, source, "once")
    [m] = sqs.receive(source, visibility=30)
    sqs("ChangeMessageVisibility", {"QueueUrl": source, "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0})
    assert sqs.receive(source) == []
    assert [d["Body"] for d in sqs.receive(dlq)] == ["once"]


# ------------------------------------------------------------------------------------------------
# batches
# ------------------------------------------------------------------------------------------------


def test_send_message_batch(sqs):
    url = create(sqs, "batch")
    entries = [{"Id": f"id_{i}-x", "MessageBody": f"body {i} & + % \U0001F600"} for i in range(10)]
    result = sqs("SendMessageBatch", {"QueueUrl": url, "Entries": entries})
    assert not result.get("Failed")
    by_id = {s["Id"]: s for s in result["Successful"]}
    assert set(by_id) == {e["Id"] for e in entries}
    for e in entries:
        assert by_id[e["Id"]]["MD5OfMessageBody"] == md5_hex(e["MessageBody"])
    assert len({s["MessageId"] for s in result["Successful"]}) == 10
    assert all(uuid.UUID(s["MessageId"]).version == 4 and str(uuid.UUID(s["MessageId"])) == s["MessageId"]
               for s in result["Successful"])
    got = sqs.receive(url, 10) + sqs.receive(url, 10)
    assert sorted(m["Body"] for m in got) == sorted(e["MessageBody"] for e in entries)
    assert {m["MessageId"] for m in got} == {s["MessageId"] for s in result["Successful"]}


def test_send_message_batch_request_errors(sqs):
    url = create(sqs, "batcherr")
    eleven = [{"Id": f"e{i}", "MessageBody": "x"} for i in range(11)]
    assert sqs.error("SendMessageBatch", {"QueueUrl": url, "Entries": eleven}) == \
        "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
    assert sqs.error("SendMessageBatch", {"QueueUrl": url, "Entries": [{"Id": "same", "MessageBody": "a"},
                                                                       {"Id": "same", "MessageBody": "b"}]}) == \
        "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"
    assert sqs.error("SendMessageBatch", {"QueueUrl": url, "Entries": []}) == "AWS.SimpleQueueService.EmptyBatchRequest"
    assert sqs.error("SendMessageBatch", {"QueueUrl": url, "Entries": [{"Id": "bad id!", "MessageBody": "a"}]}) == \
        "AWS.SimpleQueueService.InvalidBatchEntryId"
    assert sqs.error("SendMessageBatch", {"QueueUrl": url, "Entries": [{"Id": "x" * 81, "MessageBody": "a"}]}) == \
        "AWS.SimpleQueueService.InvalidBatchEntryId"
    assert counts(sqs, url) == (0, 0, 0)  # nothing of a refused batch was sent


def test_send_message_batch_total_size_is_limited(sqs):
    url = create(sqs, "batchsize")
    entries = [{"Id": f"e{i}", "MessageBody": "z" * 600_000} for i in range(2)]  # each fine, 1.2 MB in all
    assert sqs.error("SendMessageBatch", {"QueueUrl": url, "Entries": entries}) == \
        "AWS.SimpleQueueService.BatchRequestTooLong"
    assert counts(sqs, url) == (0, 0, 0)


def test_batch_total_limit_does_not_depend_on_maximum_message_size(sqs):
    url = create(sqs, "batchsmall", MaximumMessageSize=1024)
    entries = [{"Id": f"e{i}", "MessageBody": "z" * 200} for i in range(6)]  # 200 bytes each, 1,200 in all
    result = sqs("SendMessageBatch", {"QueueUrl": url, "Entries": entries})
    assert len(result["Successful"]) == 6 and not result.get("Failed")


def test_one_bad_batch_entry_fails_alone(sqs):
    url = create(sqs, "partial")
    entries = [{"Id": "good1", "MessageBody": "fine"},
               {"Id": "bad", "MessageBody": "nul \u0000"},
               {"Id": "good2", "MessageBody": "also fine", "DelaySeconds": 0},
               {"Id": "late", "MessageBody": "bad delay", "DelaySeconds": 901}]
    result = sqs("SendMessageBatch", {"QueueUrl": url, "Entries": entries})
    assert sorted(s["Id"] for s in result["Successful"]) == ["good1", "good2"]
    failed = {f["Id"]: f for f in result["Failed"]}
    assert set(failed) == {"bad", "late"}
    assert failed["bad"]["Code"] == "InvalidMessageContents" and failed["bad"]["SenderFault"] is True
    assert failed["late"]["Code"] == "InvalidParameterValue" and failed["late"]["Message"]
    assert sorted(m["Body"] for m in sqs.receive(url, 10)) == ["also fine", "fine"]


def test_delete_message_batch(sqs):
    url = create(sqs, "delbatch", VisibilityTimeout=30)
    sqs("SendMessageBatch", {"QueueUrl": url, "Entries": [{"Id": f"e{i}", "MessageBody": f"m{i}"} for i in range(5)]})
    got = sqs.receive(url, 10)
    assert len(got) == 5
    entries = [{"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got[:4])]
    entries.append({"Id": "broken", "ReceiptHandle": "not-a-handle"})
    result = sqs("DeleteMessageBatch", {"QueueUrl": url, "Entries": entries})
    assert sorted(s["Id"] for s in result["Successful"]) == ["d0", "d1", "d2", "d3"]
    assert [(f["Id"], f["Code"]) for f in result["Failed"]] == [("broken", "ReceiptHandleIsInvalid")]
    assert counts(sqs, url) == (0, 1, 0)
    assert sqs.error("DeleteMessageBatch", {"QueueUrl": url, "Entries": [
        {"Id": f"x{i}", "ReceiptHandle": got[0]["ReceiptHandle"]} for i in range(11)]}) == \
        "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"
    assert sqs.error("DeleteMessageBatch", {"QueueUrl": url, "Entries": [
        {"Id": "same", "ReceiptHandle": got[0]["ReceiptHandle"]}, {"Id": "same", "ReceiptHandle": got[1]["ReceiptHandle"]}]}) == \
        "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"


def test_change_message_visibility_batch(sqs):
    url = create(sqs, "cmvbatch", VisibilityTimeout=30)
    sqs("SendMessageBatch", {"QueueUrl": url, "Entries": [{"Id": f"e{i}", "MessageBody": f"m{i}"} for i in range(4)]})
    got = {m["Body"]: m for m in sqs.receive(url, 10)}
    assert set(got) == {"m0", "m1", "m2", "m3"}
    result = sqs("ChangeMessageVisibilityBatch", {"QueueUrl": url, "Entries": [
        {"Id": "a", "ReceiptHandle": got["m0"]["ReceiptHandle"], "VisibilityTimeout": 0},
        {"Id": "b", "ReceiptHandle": got["m1"]["ReceiptHandle"], "VisibilityTimeout": 0},
        {"Id": "c", "ReceiptHandle": got["m2"]["ReceiptHandle"], "VisibilityTimeout": 600},
        {"Id": "d", "ReceiptHandle": "junk", "VisibilityTimeout": 0},
        {"Id": "e", "ReceiptHandle": got["m3"]["ReceiptHandle"], "VisibilityTimeout": 99999},
    ]})
    assert sorted(s["Id"] for s in result["Successful"]) == ["a", "b", "c"]
    failed = {f["Id"]: f["Code"] for f in result["Failed"]}
    assert failed == {"d": "ReceiptHandleIsInvalid", "e": "InvalidParameterValue"}
    assert sorted(m["Body"] for m in sqs.receive(url, 10)) == ["m0", "m1"]
    assert sqs.error("ChangeMessageVisibilityBatch", {"QueueUrl": url, "Entries": []}) == \
        "AWS.SimpleQueueService.EmptyBatchRequest"


# ------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------


def test_unknown_action(sqs):
    assert sqs.error("sqs:Nope", {}) == "InvalidAction"
    assert sqs.error("sqs:CreateTopic", {}) == "InvalidAction"


def test_malformed_bodies(sqs):
    client = sqs.client
    credentials = root_credentials_for(client.endpoint)
    for raw in [b"not json", b"{\"QueueUrl\": ", b"[1, 2]", b"\"string\"", b"null", b"\xff\xfe"]:
        request_id = new_id("raw")
        # Signed, so the request gets past authentication to the body check.
        header = sign_header({"kind": "request", "id": request_id, "action": "sqs:SendMessage"}, raw, credentials)
        client.send_frames([PROTOCOL_TAG, json.dumps(header).encode(), raw])
        header, body = client.recv(timeout=5)
        assert header["id"] == request_id and header["kind"] == "error", (raw, header, body)
        assert body["code"] == "SerializationException", (raw, body)


@pytest.mark.parametrize("operation, body, code", [
    ("SendMessage", {"MessageBody": "x"}, "MissingParameter"),
    ("SendMessage", {"QueueUrl": queue_url("POC-Queue")}, "MissingParameter"),
    ("ReceiveMessage", {}, "MissingParameter"),
    ("DeleteMessage", {"QueueUrl": queue_url("POC-Queue")}, "MissingParameter"),
    ("CreateQueue", {}, "MissingParameter"),
    ("GetQueueAttributes", {"AttributeNames": ["All"]}, "MissingParameter"),
    ("SendMessageBatch", {"QueueUrl": queue_url("POC-Queue")}, "MissingParameter"),
    ("SendMessage", {"QueueUrl": 42, "MessageBody": "x"}, "InvalidParameterValue"),
    ("ReceiveMessage", {"QueueUrl": queue_url("POC-Queue"), "MaxNumberOfMessages": "ten"}, "InvalidParameterValue"),
])
def test_missing_and_mistyped_parameters(sqs, operation, body, code):
    assert sqs.error(operation, body) == code


def test_the_broker_survives_the_bad_input(cluster, sqs):
    status = process_by_name(cluster.status(), "queue")
    assert status["state"] == "running" and status["restarts"] == 0, status
    assert sqs("GetQueueUrl", {"QueueName": "POC-Queue"})["QueueUrl"] == queue_url("POC-Queue")


# ------------------------------------------------------------------------------------------------
# durability: one SIGKILL of the broker, shared by the tests below (they run last)
# ------------------------------------------------------------------------------------------------

DURABLE_COUNT = 1000
INFLIGHT_VISIBILITY = 8  # seconds


def post_many(base_url: str, bodies: list[str], threads: int = 16) -> list[dict]:
    """POSTs every body to the gateway concurrently; returns the SendMessageResults (all must be 200)."""
    local = threading.local()

    def post(body: str) -> dict:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        r = local.session.post(base_url + "/", data=body.encode(), timeout=HTTP_TIMEOUT,
                               headers={"Content-Type": "application/json"})
        assert r.status_code == 200, (r.status_code, r.text)
        return r.json()["SendMessageResponse"]["SendMessageResult"]

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(post, bodies, timeout=120))


def send_many_over_the_wire(sqs: SQS, url: str, bodies: list[str]) -> list[str]:
    """SendMessage for every body, pipelined on one DEALER; returns the MessageIds once all are acknowledged."""
    ids = {}
    for body in bodies:
        ids[sqs.client.send("request", action="sqs:SendMessage", body={"QueueUrl": url, "MessageBody": body})] = body
    message_ids = {}
    while len(message_ids) < len(ids):
        header, answer = sqs.client.recv(timeout=10)
        assert header["kind"] == "reply" and header["id"] in ids, (header, answer)
        assert answer["MD5OfMessageBody"] == md5_hex(ids[header["id"]])
        message_ids[header["id"]] = answer["MessageId"]
    return list(message_ids.values())


def receive_everything(sqs: SQS, url: str, expected: int) -> list[dict]:
    """Receives (hidden for 60 s, not deleted) until the queue answers empty; every message once."""
    got: list[dict] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        batch = sqs.receive(url, 10, wait=0 if len(got) < expected else 1, visibility=60, attributes=[])
        if not batch:
            return got
        got += batch
    raise AssertionError(f"still receiving from {url} after 60 s ({len(got)} messages)")


@pytest.fixture(scope="module")
def broker_killed(cluster):
    """1,000 POSTs through the gateway (to POC-Queue) and 1,000 SendMessage over the wire (to a queue of
    its own), all acknowledged; one message received (in flight); then SIGKILL of the broker, and the
    wait for the supervisor to restart it."""
    with SQS(cluster.endpoint("queue")) as sqs:
        poc = queue_url("POC-Queue")
        sqs.drain(poc)
        gateway_bodies = [json.dumps({"item": "latex gloves", "n": i, "tag": uuid.uuid4().hex}) for i in range(DURABLE_COUNT)]
        gateway_results = post_many(cluster.http_url, gateway_bodies)

        wire_url = create(sqs, "durable")
        wire_bodies = [f"wire {i} & + % \u00e9 \U0001F600 {uuid.uuid4().hex}" for i in range(DURABLE_COUNT)]
        wire_ids = send_many_over_the_wire(sqs, wire_url, wire_bodies)

        # queue metadata: attributes set, a queue deleted
        configured_url = create(sqs, "configured", VisibilityTimeout=17, DelaySeconds=3, MaximumMessageSize=4096)
        deleted_url = create(sqs, "deleted")
        send(sqs, deleted_url, "gone with its queue")
        sqs("DeleteQueue", {"QueueUrl": deleted_url})
        # a receipt handle handed out before the crash
        handle_url = create(sqs, "handle")
        send(sqs, handle_url, "delete me after the restart")
        [handled] = sqs.receive(handle_url, 1, visibility=60)

        # a message a send handed straight to a parked long poll (received in the send's commit)
        handed_url = create(sqs, "handed", VisibilityTimeout=60)
        handed: dict = {}
        with SQS(cluster.endpoint("queue")) as poller:
            poller.client.send("request", action="sqs:ReceiveMessage", body={"QueueUrl": handed_url, "WaitTimeSeconds": 10})
            time.sleep(0.3)  # parked (nothing to observe: a parked poll changes no count)
            send(sqs, handed_url, "handed to a parked poll")
            header, body = poller.client.recv(timeout=10)
            assert header["kind"] == "reply", body
            [handed] = body["Messages"]

        # last, so that its visibility timeout runs from just before the kill
        inflight_url = create(sqs, "inflight", VisibilityTimeout=30)
        inflight_sent = send(sqs, inflight_url, "in flight at the crash")
        received_at = time.monotonic()
        [inflight] = sqs.receive(inflight_url, 1, visibility=INFLIGHT_VISIBILITY)

    before = process_by_name(cluster.status(), "queue")
    assert before["state"] == "running"
    os.kill(before["pid"], signal.SIGKILL)

    def restarted():
        p = process_by_name(cluster.status(), "queue")
        return p if p["state"] == "running" and p["pid"] not in (None, before["pid"]) else None

    after = wait_until(restarted, timeout=10, interval=0.1, message="queue restarted after SIGKILL")
    wait_for_queue(cluster, "POC-Queue", timeout=10)
    return {
        "before": before, "after": after,
        "gateway_bodies": gateway_bodies, "gateway_results": gateway_results,
        "wire_url": wire_url, "wire_bodies": wire_bodies, "wire_ids": wire_ids,
        "inflight_url": inflight_url, "inflight_sent": inflight_sent, "inflight": inflight, "received_at": received_at,
        "configured_url": configured_url, "deleted_url": deleted_url, "handle_url": handle_url, "handled": handled,
        "handed_url": handed_url, "handed": handed,
    }


def test_in_flight_message_stays_hidden_until_its_timeout_after_a_restart(broker_killed, sqs):
    k = broker_killed
    assert k["after"]["restarts"] == k["before"]["restarts"] + 1
    url = k["inflight_url"]
    hidden_until = k["received_at"] + INFLIGHT_VISIBILITY
    assert time.monotonic() < hidden_until - 1, "the restart took too long to check invisibility"
    assert sqs.receive(url, 10, wait=0) == []
    assert counts(sqs, url) == (0, 1, 0)
    wait = min(20, int(hidden_until - time.monotonic()) + 4)
    [m] = sqs.receive(url, 1, wait=wait)
    arrived = time.monotonic()
    assert arrived >= hidden_until - 0.3, f"visible {hidden_until - arrived:.2f} s early"
    assert arrived <= hidden_until + 3.0
    assert m["MessageId"] == k["inflight_sent"]["MessageId"]
    assert m["Attributes"]["ApproximateReceiveCount"] == "2"
    assert m["ReceiptHandle"] != k["inflight"]["ReceiptHandle"]


def test_messages_posted_through_the_gateway_survive_sigkill(broker_killed, sqs):
    k = broker_killed
    got = receive_everything(sqs, queue_url("POC-Queue"), DURABLE_COUNT)
    bodies = [m["Body"] for m in got]
    assert len(bodies) == len(set(bodies)), f"{len(bodies) - len(set(bodies))} bodies delivered twice"
    missing = set(k["gateway_bodies"]) - set(bodies)
    assert not missing, f"{len(missing)} acknowledged POSTs lost, e.g. {sorted(missing)[:3]}"
    assert set(bodies) == set(k["gateway_bodies"])
    assert {m["MessageId"] for m in got} == {r["MessageId"] for r in k["gateway_results"]}
    for m in got:
        assert m["MD5OfBody"] == md5_hex(m["Body"])


def test_messages_sent_over_the_wire_survive_sigkill(broker_killed, sqs):
    k = broker_killed
    got = receive_everything(sqs, k["wire_url"], DURABLE_COUNT)
    bodies = [m["Body"] for m in got]
    assert len(bodies) == len(set(bodies)), f"{len(bodies) - len(set(bodies))} bodies delivered twice"
    assert sorted(bodies) == sorted(k["wire_bodies"])
    assert {m["MessageId"] for m in got} == set(k["wire_ids"])
    assert counts(sqs, k["wire_url"]) == (0, DURABLE_COUNT, 0)


def test_queues_and_receipt_handles_survive_sigkill(broker_killed, sqs):
    k = broker_killed
    a = attributes(sqs, k["configured_url"], "VisibilityTimeout", "DelaySeconds", "MaximumMessageSize")
    assert a == {"VisibilityTimeout": "17", "DelaySeconds": "3", "MaximumMessageSize": "4096"}
    assert sqs.error("GetQueueUrl", {"QueueName": k["deleted_url"].rsplit("/", 1)[1]}) == NONEXISTENT
    # a receive handed to a parked poll was committed with the send: in flight, its handle works
    assert counts(sqs, k["handed_url"]) == (0, 1, 0)
    assert sqs("DeleteMessage", {"QueueUrl": k["handed_url"], "ReceiptHandle": k["handed"]["ReceiptHandle"]}) == {}
    assert counts(sqs, k["handed_url"]) == (0, 0, 0)
    # the pre-crash handle is still the current one: it deletes the message
    assert counts(sqs, k["handle_url"]) == (0, 1, 0)
    assert sqs("DeleteMessage", {"QueueUrl": k["handle_url"], "ReceiptHandle": k["handled"]["ReceiptHandle"]}) == {}
    assert counts(sqs, k["handle_url"]) == (0, 0, 0)

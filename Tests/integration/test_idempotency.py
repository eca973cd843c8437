"""Idempotency-Key (issue 21): the same key within 5 minutes is enqueued once and answered with the
first answer, even when the gateway or the queue broker is SIGKILLed between the attempts.

The key travels to the broker as the `NimbusIdempotencyKey` extension of SendMessage(Batch)
(docs/protocol.md), which keeps it durably with the message. These tests kill processes, so they run
on a cluster of their own; no ingest worker reads POC-Queue under them, so "one message" is counted
in the queue itself. (The 5-minute expiry is the core's unit tests', with a hand-moved clock.)
"""

from __future__ import annotations

import os
import signal
import uuid

import pytest
import requests

from conftest import SQS, process_by_name, queue_url, wait_for_queue, wait_until

CLUSTER_INSTANCES = {"ingest-worker": 0}

HTTP_TIMEOUT = 10  # seconds, every HTTP call
RESTART_WAIT = 30  # seconds for the supervisor to restart a killed process (backoff starts at 1 s)
POC = queue_url("POC-Queue")
ORDER = b'{"item": "latex gloves", "customerID": "12345"}'


@pytest.fixture(scope="module", autouse=True)
def stack_ready(cluster):
    wait_for_queue(cluster, "POC-Queue")


@pytest.fixture
def sqs(cluster):
    with SQS(cluster.endpoint("queue")) as client:
        yield client


@pytest.fixture
def empty_poc(sqs):
    sqs.drain(POC)
    return POC


def post(cluster, key: str | None, body: bytes = ORDER, timeout: float = HTTP_TIMEOUT) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Idempotency-Key"] = key
    return requests.post(cluster.http_url + "/orders", data=body, headers=headers, timeout=timeout)


def message_id(r: requests.Response) -> str:
    return r.json()["SendMessageResponse"]["SendMessageResult"]["MessageId"]


def kill_and_wait_for_restart(cluster, name: str) -> None:
    """SIGKILLs a process and waits until the supervisor reports it running again with a new pid."""
    old = process_by_name(cluster.status(), name)
    assert old["state"] == "running" and old["pid"], old
    os.kill(old["pid"], signal.SIGKILL)

    def restarted():
        p = process_by_name(cluster.status(), name)
        return p["state"] == "running" and p["pid"] and p["pid"] != old["pid"]
    wait_until(restarted, timeout=RESTART_WAIT, interval=0.2, message=f"{name} running again with a new pid")


def post_until_answered(cluster, key: str, body: bytes = ORDER) -> requests.Response:
    """POSTs with ``key`` until an answer other than a refused connection or a 503 comes (the restarted
    process may need a moment): every attempt is a retry with the same key, as a client's would be."""
    def attempt():
        try:
            r = post(cluster, key, body, timeout=5)
        except requests.ConnectionError:
            return None
        return [r] if r.status_code != 503 else None  # (a Response is falsy when it is not a 2xx)
    return wait_until(attempt, timeout=RESTART_WAIT, interval=0.3, message=f"a POST with key {key} answered")[0]


def test_a_retry_after_the_gateway_is_killed_answers_the_first_answer(cluster, sqs, empty_poc):
    key = f"retry-{uuid.uuid4()}"
    first = post(cluster, key)
    assert first.status_code == 200, first.text
    again = post(cluster, key)
    assert again.status_code == 200 and again.content == first.content

    kill_and_wait_for_restart(cluster, "gateway")
    retried = post_until_answered(cluster, key)
    assert retried.status_code == 200, retried.text
    assert retried.content == first.content, "the restarted gateway answers the first answer"
    other = post_until_answered(cluster, f"other-{uuid.uuid4()}")
    assert other.status_code == 200 and message_id(other) != message_id(first)

    got = sqs.drain(POC)
    assert sorted(m["MessageId"] for m in got) == sorted([message_id(first), message_id(other)]), \
        "one message per key: the retries enqueued nothing"


def test_an_invalid_key_is_refused_by_the_restarted_gateway_too(cluster, sqs, empty_poc):
    r = post_until_answered(cluster, "not valid")
    assert r.status_code == 400 and "Idempotency-Key" in r.json()["message"], r.text
    assert sqs.receive(POC, 10, wait=0) == []


def test_the_broker_remembers_keys_across_a_sigkill(cluster, sqs, empty_poc):
    key = f"durable-{uuid.uuid4()}"
    first = post(cluster, key)
    assert first.status_code == 200, first.text
    # straight to the broker as well, with the extension itself
    direct = sqs("SendMessage", {"QueueUrl": POC, "MessageBody": "direct", "NimbusIdempotencyKey": key + "-direct"})

    kill_and_wait_for_restart(cluster, "queue")
    wait_for_queue(cluster, "POC-Queue")
    retried = post_until_answered(cluster, key)
    assert retried.status_code == 200 and retried.content == first.content, retried.text
    with SQS(cluster.endpoint("queue")) as client:  # a fresh socket to the new broker
        again = client("SendMessage", {"QueueUrl": POC, "MessageBody": "direct", "NimbusIdempotencyKey": key + "-direct"})
        assert again == direct
        got = client.drain(POC)
    assert sorted(m["MessageId"] for m in got) == sorted([message_id(first), direct["MessageId"]])


def test_the_extension_over_the_wire(sqs, empty_poc):
    key = uuid.uuid4().hex
    entries = [{"Id": "a", "MessageBody": "x", "NimbusIdempotencyKey": key},
               {"Id": "b", "MessageBody": "x", "NimbusIdempotencyKey": key},
               {"Id": "c", "MessageBody": "y", "NimbusIdempotencyKey": " bad"},
               {"Id": "d", "MessageBody": "z", "MessageDeduplicationId": "d"}]
    result = sqs("SendMessageBatch", {"QueueUrl": POC, "Entries": entries})
    ok = {e["Id"]: e["MessageId"] for e in result["Successful"]}
    assert set(ok) == {"a", "b"} and ok["a"] == ok["b"]
    assert sorted((f["Id"], f["Code"]) for f in result["Failed"]) == [("c", "InvalidParameterValue"), ("d", "InvalidParameterValue")]
    single = sqs("SendMessage", {"QueueUrl": POC, "MessageBody": "x", "NimbusIdempotencyKey": key})
    assert single["MessageId"] == ok["a"]
    # a standard queue takes no MessageDeduplicationId (as in AWS); a key must be a string
    assert sqs.error("SendMessage", {"QueueUrl": POC, "MessageBody": "x", "MessageDeduplicationId": "d"}) == "InvalidParameterValue"
    assert sqs.error("SendMessage", {"QueueUrl": POC, "MessageBody": "x", "NimbusIdempotencyKey": 7}) == "InvalidParameterValue"
    assert sqs.error("SendMessage", {"QueueUrl": POC, "MessageBody": "x", "NimbusIdempotencyKey": ""}) == "InvalidParameterValue"
    assert [m["MessageId"] for m in sqs.drain(POC)] == [ok["a"]]

"""Every socket of a running cluster survives garbage, answering as docs/protocol.md says.

For the supervisor's control socket and each of the 7 services, a DEALER client sends malformed
frames, bad headers, bad bodies, a 10 MB frame and unanswerable kinds. Where the "Errors and limits"
table promises an error reply, its code (and, where the id is recoverable, the id) is checked; where
it promises silence, none must arrive. Afterwards every node still answers `nimbus:Health` with the
same pid and incarnation, and the supervisor reports no restarts.
"""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
import zmq

from conftest import PROCESS_NAMES, PROTOCOL_TAG, NimbusClient, ask_health, new_id, process_by_name

NODES = ["supervisor", *PROCESS_NAMES]
ANSWER_TIMEOUT = 3.0  # an answer that is due
SILENCE_WAIT = 0.5  # how long we listen for an answer that must not come
HUGE = 10 * 1024 * 1024

# error answers received per node, to compare with its errorsSent counter afterwards
errors_received: Counter = Counter()


@pytest.fixture(scope="module")
def baseline(cluster):
    """Status and health counters before any garbage is thrown."""
    status = cluster.status()
    counters = {name: ask_health(cluster.endpoint(name))[1]["counters"] for name in NODES}
    return {"status": status, "counters": counters}


def header(**fields) -> bytes:
    return json.dumps(fields).encode()


def random_garbage(size: int, seed: int) -> bytes:
    data = random.Random(seed).randbytes(size)
    return data if not data.startswith(b"nimbus/") else b"\xff" + data


def expect_error(node: str, client: NimbusClient, code: str, id: str | None) -> dict:
    """The next answer is an error with `code` (and `id`, unless None); returns its body."""
    head, body = client.recv(timeout=ANSWER_TIMEOUT)
    assert head["kind"] == "error", f"expected an error {code}, got {head} {str(body)[:300]}"
    errors_received[node] += 1
    assert isinstance(body, dict) and set(body) >= {"code", "message"}, f"error body is {body!r}"
    assert body["code"] == code, f"expected {code}, got {body}"
    assert isinstance(body["message"], str) and body["message"], f"error message is {body['message']!r}"
    if id is not None:
        assert head["id"] == id, f"error id {head['id']!r}, expected {id!r}"
    else:
        assert isinstance(head.get("id"), str)
    return body


def expect_silence(client: NimbusClient) -> None:
    frames = client.recv_frames(timeout=SILENCE_WAIT)
    assert frames is None, f"expected no answer, got {frames!r}"


def still_healthy(cluster, node: str) -> None:
    _, body = ask_health(cluster.endpoint(node), timeout=ANSWER_TIMEOUT)
    assert body["status"] == "ok" and body["name"] == node


# -- the cases: each sends something to `node` over `client` and checks the answer ------------------


def case_random_bytes(node, client, cluster):
    client.send_frames([random_garbage(256, seed=1)])
    expect_error(node, client, "MalformedFrame", id="")


def expect_delimited_error(node: str, client: NimbusClient, code: str) -> None:
    """protocol.md: a leading empty frame is taken as a REQ delimiter and echoed in front of the answer."""
    frames = client.recv_frames(timeout=ANSWER_TIMEOUT)
    assert frames is not None, f"no answer from {node}"
    assert len(frames) == 4 and frames[0] == b"" and frames[1] == PROTOCOL_TAG, f"answer frames {frames!r}"
    head, body = json.loads(frames[2]), json.loads(frames[3])
    assert head["kind"] == "error" and head["id"] == "", head
    assert body["code"] == code and body["message"], body
    errors_received[node] += 1


def case_empty_frame(node, client, cluster):
    client.send_frames([b""])
    expect_delimited_error(node, client, "MalformedFrame")


def case_twenty_empty_frames(node, client, cluster):
    client.send_frames([b""] * 20)
    expect_delimited_error(node, client, "MalformedFrame")


def case_twenty_frames_after_valid_tag(node, client, cluster):
    request_id = new_id("many")
    client.send_frames([PROTOCOL_TAG, header(kind="request", id=request_id, action="nimbus:Health"), b"{}"] + [b"x"] * 17)
    expect_error(node, client, "MalformedFrame", id=None)


def case_two_frames(node, client, cluster):
    client.send_frames([PROTOCOL_TAG, header(kind="request", id=new_id(), action="nimbus:Health")])
    expect_error(node, client, "MalformedFrame", id=None)


def case_four_frames(node, client, cluster):
    client.send_frames([PROTOCOL_TAG, header(kind="request", id=new_id(), action="nimbus:Health"), b"{}", b"{}"])
    expect_error(node, client, "MalformedFrame", id=None)


def case_huge_frame(node, client, cluster):
    # a valid health request whose body (10 MB of JSON whitespace) is over the 8 MiB frame limit:
    # libzmq must drop the connection, so the request never reaches the node and nothing answers
    throwaway = NimbusClient(cluster.endpoint(node))
    try:
        body = b"{" + b" " * (HUGE - 2) + b"}"
        throwaway.send_frames([PROTOCOL_TAG, header(kind="request", id=new_id("huge"), action="nimbus:Health"), body])
        frames = throwaway.recv_frames(timeout=1.0)
        assert frames is None, f"a 10 MB frame was answered: {frames[:2]!r}"
    finally:
        throwaway.close()
    still_healthy(cluster, node)


def case_wrong_version(node, client, cluster):
    request_id = new_id("v2")
    client.send_frames([b"nimbus/2", header(kind="request", id=request_id, action="nimbus:Health"), b"{}"])
    expect_error(node, client, "UnsupportedProtocolVersion", id=request_id)


def case_unknown_action(node, client, cluster):
    request_id = client.send("request", action="sqs:NoSuchThing", body={})
    expect_error(node, client, "InvalidAction", id=request_id)


def case_malformed_action(node, client, cluster):
    request_id = client.send("request", action="garbage", body={})
    expect_error(node, client, "InvalidAction", id=request_id)


def case_request_without_action(node, client, cluster):
    request_id = client.send("request", body={})
    expect_error(node, client, "MissingParameter", id=request_id)


def case_truncated_header(node, client, cluster):
    full = header(kind="request", id=new_id("trunc"), action="nimbus:Health")
    client.send_frames([PROTOCOL_TAG, full[: len(full) // 2], b"{}"])
    expect_error(node, client, "SerializationException", id=None)


def case_binary_header(node, client, cluster):
    client.send_frames([PROTOCOL_TAG, random_garbage(64, seed=2), b"{}"])
    expect_error(node, client, "SerializationException", id=None)


def case_header_is_array(node, client, cluster):
    client.send_frames([PROTOCOL_TAG, json.dumps(["request", new_id(), "nimbus:Health"]).encode(), b"{}"])
    expect_error(node, client, "SerializationException", id=None)


def case_header_missing_id(node, client, cluster):
    client.send_frames([PROTOCOL_TAG, header(kind="request", action="nimbus:Health"), b"{}"])
    expect_error(node, client, "MissingParameter", id=None)


def case_header_empty_id(node, client, cluster):
    client.send_frames([PROTOCOL_TAG, header(kind="request", id="", action="nimbus:Health"), b"{}"])
    expect_error(node, client, "MissingParameter", id=None)


def case_header_missing_kind(node, client, cluster):
    request_id = new_id("nokind")
    client.send_frames([PROTOCOL_TAG, header(id=request_id, action="nimbus:Health"), b"{}"])
    expect_error(node, client, "MissingParameter", id=None)


def case_unknown_kind(node, client, cluster):
    request_id = new_id("kind")
    client.send_frames([PROTOCOL_TAG, header(kind="gossip", id=request_id, action="nimbus:Health"), b"{}"])
    expect_error(node, client, "InvalidParameterValue", id=None)


def case_id_of_wrong_type(node, client, cluster):
    client.send_frames([PROTOCOL_TAG, header(kind="request", id=42, action="nimbus:Health"), b"{}"])
    expect_error(node, client, "InvalidParameterValue", id=None)


def case_id_too_long(node, client, cluster):
    client.send_frames([PROTOCOL_TAG, header(kind="request", id="i" * 129, action="nimbus:Health"), b"{}"])
    expect_error(node, client, "InvalidParameterValue", id=None)


def case_resource_not_an_arn(node, client, cluster):
    request_id = client.send("request", action="nimbus:Health", body={}, resource="not-an-arn")
    expect_error(node, client, "InvalidParameterValue", id=request_id)


def case_truncated_body(node, client, cluster):
    request_id = new_id("body")
    client.send_frames([PROTOCOL_TAG, header(kind="request", id=request_id, action="nimbus:Health"), b'{"detail": tr'])
    expect_error(node, client, "SerializationException", id=request_id)


def case_body_not_an_object(node, client, cluster):
    # nimbus:Health takes "any JSON object"; an array is valid JSON but not valid for the action
    request_id = new_id("array")
    client.send_frames([PROTOCOL_TAG, header(kind="request", id=request_id, action="nimbus:Health"), b"[]"])
    expect_error(node, client, "SerializationException", id=request_id)


def case_reply_kind_is_dropped(node, client, cluster):
    client.send("reply", id=new_id("stray"), body={"status": "ok"})
    expect_silence(client)
    still_healthy(cluster, node)


def case_error_kind_is_dropped(node, client, cluster):
    client.send("error", id=new_id("stray"), body={"code": "InternalFailure", "message": "boo"})
    expect_silence(client)
    still_healthy(cluster, node)


def case_request_after_garbage_on_same_socket(node, client, cluster):
    """The connection that sent garbage is still served."""
    client.send_frames([random_garbage(32, seed=3), b"", b"\x00" * 5])
    expect_error(node, client, "MalformedFrame", id=None)
    request_id = client.send("request", action="nimbus:Health", body={})
    head, body = client.recv(timeout=ANSWER_TIMEOUT)
    assert (head["kind"], head["id"], body["name"]) == ("reply", request_id, node)


CASES = {name[len("case_"):]: fn for name, fn in globals().items() if name.startswith("case_")}

@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("node", NODES)
def test_garbage(cluster, baseline, node, case):
    with NimbusClient(cluster.endpoint(node)) as client:
        CASES[case](node, client, cluster)


@pytest.mark.parametrize("node", ["supervisor", "queue"])
def test_frame_at_the_size_limit_is_served(cluster, baseline, node):
    """8 MiB is the limit: a body frame of exactly 8 MiB is answered, one byte more is dropped."""
    limit = 8 * 1024 * 1024
    with NimbusClient(cluster.endpoint(node)) as client:
        request_id = new_id("limit")
        client.send_frames([PROTOCOL_TAG, header(kind="request", id=request_id, action="nimbus:Health"),
                            b"{" + b" " * (limit - 2) + b"}"])
        head, body = client.recv(timeout=5)
        assert (head["kind"], head["id"], body["name"]) == ("reply", request_id, node)
    with NimbusClient(cluster.endpoint(node)) as client:
        client.send_frames([PROTOCOL_TAG, header(kind="request", id=new_id("over"), action="nimbus:Health"),
                            b"{" + b" " * (limit - 1) + b"}"])
        assert client.recv_frames(timeout=1.0) is None
    still_healthy(cluster, node)


@pytest.mark.parametrize("node", NODES)
def test_node_survived_garbage(cluster, baseline, node):
    """Same pid and incarnation as before the garbage, no restarts, and the errors were counted."""
    before = baseline["status"]
    after = cluster.status()
    _, health = ask_health(cluster.endpoint(node), timeout=ANSWER_TIMEOUT)
    if node == "supervisor":
        assert after["supervisorPID"] == before["supervisorPID"]
        assert health["pid"] == before["supervisorPID"]
        assert health["incarnation"] == before["incarnation"]
    else:
        old, new = process_by_name(before, node), process_by_name(after, node)
        assert new["state"] == "running"
        assert new["pid"] == old["pid"] == health["pid"]
        assert new["incarnation"] == old["incarnation"] == health["incarnation"]
        assert new["restarts"] == 0
    assert all(p["restarts"] == 0 for p in after["processes"]), after["processes"]
    sent = health["counters"]["errorsSent"] - baseline["counters"][node]["errorsSent"]
    assert sent >= errors_received[node], (
        f"{node} answered {errors_received[node]} errors but its errorsSent counter grew by {sent}")

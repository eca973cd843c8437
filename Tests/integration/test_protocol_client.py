"""A client built only from docs/protocol.md talks to every process of a running cluster.

DEALER and REQ sockets get `nimbus:Health` replies, heartbeats get heartbeat answers with the
incarnation the supervisor reports, and the supervisor's control socket answers `nimbus:Status`.
"""

import json

import pytest
import zmq

from conftest import PROCESS_NAMES, PROTOCOL_TAG, NimbusClient, ask, ask_health, new_id, process_by_name

NODES = ["supervisor", *PROCESS_NAMES]
HEALTH_FIELDS = {"status", "name", "kind", "incarnation", "pid", "uptimeSeconds", "startedAt", "endpoint", "counters", "details"}
COUNTERS = {"requestsReceived", "repliesSent", "errorsSent", "malformedReceived", "heartbeatsAnswered",
            "outboundRequests", "outboundRetries", "outboundTimeouts"}


def expected_identity(status: dict, name: str) -> tuple[int, str]:
    """(pid, incarnation) of a process according to `nimbus status --json`."""
    if name == "supervisor":
        return status["supervisorPID"], status["incarnation"]
    process = process_by_name(status, name)
    assert process is not None, f"{name} missing from status: {status}"
    return process["pid"], process["incarnation"]


def expected_kind(name: str) -> str:
    return name.rsplit("-", 1)[0] if name[-1].isdigit() else name


@pytest.mark.parametrize("name", NODES)
def test_health_over_dealer(cluster, name):
    status = cluster.status()
    pid, incarnation = expected_identity(status, name)
    with NimbusClient(cluster.endpoint(name)) as client:
        request_id = new_id("health")
        client.send("request", id=request_id, action="nimbus:Health", body={})
        header, body = client.recv(timeout=3)
    assert header["id"] == request_id
    assert header["kind"] == "reply"
    assert header.get("sender", {}).get("name") == name
    assert header["sender"].get("incarnation") == incarnation
    assert HEALTH_FIELDS <= set(body), f"health body lacks {HEALTH_FIELDS - set(body)}: {body}"
    assert body["status"] == "ok"
    assert body["name"] == name
    assert body["kind"] == expected_kind(name)
    assert body["pid"] == pid
    assert body["incarnation"] == incarnation
    assert body["endpoint"] == cluster.endpoint(name)
    assert body["uptimeSeconds"] >= 0
    assert COUNTERS <= set(body["counters"]), f"counters lack {COUNTERS - set(body['counters'])}"


@pytest.mark.parametrize("name", ["supervisor", "queue", "ingest-worker-1"])
def test_health_over_req(cluster, name):
    pid, _ = expected_identity(cluster.status(), name)
    with NimbusClient(cluster.endpoint(name), zmq.REQ) as client:
        request_id = new_id("req")
        client.send("request", id=request_id, action="nimbus:Health", body={})
        header, body = client.recv(timeout=3)
        assert (header["kind"], header["id"]) == ("reply", request_id)
        assert body["name"] == name and body["pid"] == pid
        # REQ is strictly send/recv alternating: a second round trip proves the first completed cleanly
        second_id = client.send("request", action="nimbus:Health", body={})
        header, _ = client.recv(timeout=3)
        assert header["id"] == second_id


@pytest.mark.parametrize("name", NODES)
def test_heartbeat_answered(cluster, name):
    pid, incarnation = expected_identity(cluster.status(), name)
    with NimbusClient(cluster.endpoint(name)) as client:
        beat_id = client.send("heartbeat", id=new_id("hb"), body={})
        header, body = client.recv(timeout=3)
    assert header["kind"] == "heartbeat"
    assert header["id"] == beat_id
    assert body["name"] == name
    assert body["incarnation"] == incarnation
    assert body["pid"] == pid
    assert body["status"] == "ok"


@pytest.mark.parametrize("name", ["supervisor", "gateway"])
def test_burst_of_outstanding_requests_all_answered(cluster, name):
    with NimbusClient(cluster.endpoint(name)) as client:
        ids = [client.send("request", action="nimbus:Health", body={}) for _ in range(500)]
        answered = []
        for _ in range(500):
            header, body = client.recv(timeout=5)
            assert header["kind"] == "reply" and body["name"] == name
            answered.append(header["id"])
    assert sorted(answered) == sorted(ids)


def test_supervisor_status_lists_processes(cluster):
    cli_status = cluster.status()
    header, body = ask(cluster.endpoint("supervisor"), "nimbus:Status", {}, timeout=3)
    assert header["kind"] == "reply"
    assert body["supervisorPID"] == cli_status["supervisorPID"]
    assert body["incarnation"] == cli_status["incarnation"]
    assert body["stopping"] is False
    names = sorted(p["name"] for p in body["processes"])
    assert names == sorted(PROCESS_NAMES)
    for p in body["processes"]:
        assert p["state"] == "running", p
        assert {"name", "kind", "pid", "state", "restarts", "incarnation"} <= set(p), p
        assert p["pid"] == process_by_name(cli_status, p["name"])["pid"]


def test_unknown_header_fields_are_ignored(cluster):
    """'Unknown header fields are ignored' (protocol.md)."""
    with NimbusClient(cluster.endpoint("table")) as client:
        request_id = client.send("request", action="nimbus:Health", body={}, futureField={"x": [1, 2]})
        header, body = client.recv(timeout=3)
    assert (header["kind"], header["id"]) == ("reply", request_id)
    assert body["name"] == "table"


def test_health_via_cli_matches_wire(cluster):
    """`nimbus health <name>` prints the same health report the wire gives."""
    result = cluster.nimbus("health", "gateway")
    assert result.returncode == 0, result.stderr
    cli = json.loads(result.stdout)
    _, wire = ask_health(cluster.endpoint("gateway"))
    assert (cli["name"], cli["pid"], cli["incarnation"]) == (wire["name"], wire["pid"], wire["incarnation"])


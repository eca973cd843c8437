"""CurveZMQ on the links between processes (``security.curve``, docs/architecture.md "Links").

A cluster with ``curve: always`` (CURVE on loopback too) runs the lab's pipeline; every process has
its key pair with the right modes; a client whose key the nodes do not know gets nothing, however
right the server key it uses; and a capture of the loopback traffic while an order is posted shows
none of the order's bytes on the cluster's ZeroMQ ports, where the same capture on a cluster with
``curve: off`` does (so the capture itself is shown to see them).

conftest's pyzmq client speaks plain ZeroMQ, so this cluster is driven through the CLI and HTTP.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import struct
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests
import zmq
import zmq.auth

from conftest import (
    GATEWAY_HTTP_OFFSET, PORT_SPAN, PROCESS_NAMES, PROTOCOL_TAG, SMTP_OFFSET, Cluster, start_cluster, stop_cluster,
    wait_until,
)

CAPTURE_SECONDS = 40  # the most a capture runs, whatever happens


@pytest.fixture(scope="module")
def curve_cluster():
    with tempfile.TemporaryDirectory(prefix="nimbus-it-curve-") as tmp:
        c = start_cluster(Path(tmp), sections={"security": {"curve": "always"}})
        try:
            yield c
        finally:
            stop_cluster(c)


def keys_dir(cluster: Cluster) -> Path:
    return cluster.directory / "data" / "keys"


def health(cluster: Cluster, name: str) -> dict:
    result = cluster.nimbus("health", name)
    assert result.returncode == 0, f"nimbus health {name}: {result.stderr}"
    return json.loads(result.stdout)


def wait_ready(cluster: Cluster) -> None:
    """The gateway says it can take orders (its queue reachable, IAM too)."""
    def ready():
        r = requests.get(cluster.http_url + "/health", timeout=2)
        return r.status_code == 200 and r.json().get("ready") is True
    wait_until(ready, timeout=30, interval=0.2, message="gateway ready")


def post_order(cluster: Cluster, item: str) -> str:
    r = requests.post(cluster.http_url + "/", json={"item": item, "customerID": "12345"},
                      headers={"Idempotency-Key": f"curve-{uuid.uuid4().hex}"}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["SendMessageResponse"]["SendMessageResult"]["MessageId"]


def order_row(cluster: Cluster, marker: str) -> bool:
    """The order carrying ``marker`` is a row of ``orders`` (read with ``nimbus items``)."""
    result = cluster.nimbus("items", "--json")
    return result.returncode == 0 and any(marker in line for line in result.stdout.splitlines())


# --------------------------------------------------------------------------------------------------
# the pipeline and the keys
# --------------------------------------------------------------------------------------------------


def test_the_lab_pipeline_runs_over_curve(curve_cluster):
    wait_ready(curve_cluster)
    marker = f"gloves-{uuid.uuid4().hex[:12]}"
    post_order(curve_cluster, marker)
    wait_until(lambda: order_row(curve_cluster, marker), timeout=20, interval=0.3, message="order row written")
    for name in ["queue", "table", "iam", "supervisor", "ingest-worker-1"]:
        body = health(curve_cluster, name)
        assert body["details"].get("curve") == "on", f"{name}: {body['details']}"


def test_every_process_has_its_key_pair_secret_to_itself(curve_cluster):
    keys = keys_dir(curve_cluster)
    assert stat.S_IMODE((keys / "public").stat().st_mode) == 0o755
    for name in PROCESS_NAMES + ["supervisor", "nimbus-cli"]:
        secret, public = keys / f"{name}.secret", keys / "public" / f"{name}.key"
        assert secret.exists() and public.exists(), f"no key pair for {name}"
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, f"{secret} is {oct(secret.stat().st_mode)}"
        assert stat.S_IMODE(public.stat().st_mode) == 0o644, f"{public} is {oct(public.stat().st_mode)}"
        public_key, secret_key = zmq.auth.load_certificate(str(secret))
        assert secret_key and len(secret_key) == 40 and len(public_key) == 40
        assert zmq.curve_public(secret_key) == public_key, f"{secret}: the keys do not belong together"
        assert zmq.auth.load_certificate(str(public)) == (public_key, None)
        assert secret_key.decode() not in public.read_text()


def test_a_client_whose_key_the_nodes_do_not_know_gets_no_answer(curve_cluster):
    queue_key, _ = zmq.auth.load_certificate(str(keys_dir(curve_cluster) / "public" / "queue.key"))
    rejected_before = health(curve_cluster, "queue")["counters"]["handshakesRejected"]
    context = zmq.Context()
    try:
        stranger_public, stranger_secret = zmq.curve_keypair()  # fresh: in no keys/public/
        stranger = context.socket(zmq.DEALER)
        stranger.setsockopt(zmq.LINGER, 0)
        stranger.curve_serverkey = queue_key  # the right server key
        stranger.curve_publickey = stranger_public
        stranger.curve_secretkey = stranger_secret
        stranger.connect(curve_cluster.endpoint("queue"))
        plain = context.socket(zmq.DEALER)
        plain.setsockopt(zmq.LINGER, 0)
        plain.connect(curve_cluster.endpoint("queue"))
        for client in (stranger, plain):
            header = {"kind": "request", "id": f"stranger-{uuid.uuid4().hex[:8]}", "action": "nimbus:Health"}
            client.send_multipart([PROTOCOL_TAG, json.dumps(header).encode(), b"{}"], zmq.NOBLOCK)
        assert stranger.poll(3000, zmq.POLLIN) == 0, "a client with an unknown key got an answer"
        assert plain.poll(500, zmq.POLLIN) == 0, "a plain client got an answer from a CURVE socket"
    finally:
        context.destroy(linger=0)
    # The queue counted them (the stranger refused by ZAP, the plain client by the mechanism).
    wait_until(lambda: health(curve_cluster, "queue")["counters"]["handshakesRejected"] >= rejected_before + 2,
               timeout=10, interval=0.3, message="handshakesRejected counted")
    # The cluster is none the worse for it.
    assert health(curve_cluster, "queue")["status"] == "ok"


# --------------------------------------------------------------------------------------------------
# what the wire shows
# --------------------------------------------------------------------------------------------------

ETH_P_ALL = 0x0003
PACKET_HOST = 0  # as received: each loopback segment is seen once outgoing and once incoming


class LoopbackCapture:
    """Every TCP payload on ``lo`` to or from ``ports``, per connection direction, for at most
    CAPTURE_SECONDS (a raw AF_PACKET socket: needs root)."""

    def __init__(self, ports: set[int]):
        self.ports = ports
        self.streams: dict[tuple[int, int], bytearray] = {}
        self.stop = threading.Event()
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(ETH_P_ALL))
        self.sock.bind(("lo", 0))
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "LoopbackCapture":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.sock.close()

    def _run(self) -> None:
        deadline = time.monotonic() + CAPTURE_SECONDS
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                frame, address = self.sock.recvfrom(262144)
            except socket.timeout:
                continue
            except OSError:
                return
            if address[2] != PACKET_HOST or len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
            header_length = (ip[0] & 0x0F) * 4
            total_length = struct.unpack("!H", ip[2:4])[0]
            if ip[9] != socket.IPPROTO_TCP:
                continue
            tcp = ip[header_length:total_length]
            source, destination = struct.unpack("!HH", tcp[:4])
            if source not in self.ports and destination not in self.ports:
                continue
            payload = tcp[(tcp[12] >> 4) * 4:]
            if payload:
                self.streams.setdefault((source, destination), bytearray()).extend(payload)

    def total(self) -> int:
        return sum(len(s) for s in self.streams.values())

    def contains(self, marker: bytes) -> bool:
        return any(marker in s for s in self.streams.values())


def zeromq_ports(cluster: Cluster) -> set[int]:
    """The cluster's ZeroMQ ports (its port span less the gateway's HTTP and the sink's SMTP)."""
    return set(range(cluster.base, cluster.base + PORT_SPAN)) - {cluster.base + GATEWAY_HTTP_OFFSET, cluster.base + SMTP_OFFSET}


def capture_an_order(cluster: Cluster) -> tuple[LoopbackCapture, bytes]:
    """Posts an order with a unique marker while capturing; stops once its row is in ``orders``
    (by then the order crossed gateway → queue → ingest worker → table → stream worker)."""
    wait_ready(cluster)
    marker = f"MARKER{uuid.uuid4().hex}"
    with LoopbackCapture(zeromq_ports(cluster)) as capture:
        post_order(cluster, marker)
        wait_until(lambda: order_row(cluster, marker), timeout=CAPTURE_SECONDS - 10, interval=0.3, message="order row written")
    return capture, marker.encode()


needs_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0 or not hasattr(socket, "AF_PACKET"),
                                reason="capturing loopback traffic needs root and AF_PACKET (Linux)")


@needs_root
def test_no_order_bytes_cross_the_wire_with_curve(curve_cluster):
    capture, marker = capture_an_order(curve_cluster)
    assert capture.total() > 1000, f"captured only {capture.total()} bytes on the ZeroMQ ports: is the capture working?"
    assert not capture.contains(marker), "the order's text crossed a CURVE link in the clear"
    assert not capture.contains(PROTOCOL_TAG), "a Nimbus frame crossed a CURVE link in the clear"


@needs_root
def test_the_same_capture_sees_the_order_when_curve_is_off(tmp_path):
    plain = start_cluster(tmp_path, sections={"security": {"curve": "off"}})
    try:
        capture, marker = capture_an_order(plain)
        assert capture.contains(marker), "the capture did not see the order on a plain cluster: it would prove nothing"
        assert capture.contains(PROTOCOL_TAG)
        assert not (tmp_path / "data" / "keys").exists(), "curve: off made keys"
    finally:
        stop_cluster(plain)

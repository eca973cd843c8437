"""`nimbus health NAME --live / --ready [--endpoint tcp://HOST:PORT]`: the probes Kubernetes and compose
run inside each process's pod or container (deploy/kubernetes/, compose/). The answer is the exit
status: --live 0 when the process answers its health request, --ready 0 only when it answers ready
(else its notReady reason and 1)."""

from __future__ import annotations

import signal
import socket
import subprocess
import time

import pytest

from conftest import HOST, NIMBUS_BIN, find_base_port, nimbus, wait_until

READY_WAIT = 15.0  # a fresh cluster's nodes finish their first dependency round within a second or two
PROBE_LIMIT = 10.0  # a probe gives up after two 1 s attempts; this bounds it with room to spare


def closed_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on (bound once to pick it, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def test_ready_exits_0_on_a_running_cluster(cluster):
    result = wait_until(lambda: (r := cluster.nimbus("health", "queue", "--ready")).returncode == 0 and r,
                        timeout=READY_WAIT, interval=0.5, message="nimbus health queue --ready exits 0")
    assert result.stdout.strip() == "queue: ready"
    # the same probe as a pod runs it: addressed directly
    direct = cluster.nimbus("health", "queue", "--ready", "--endpoint", cluster.endpoint("queue"))
    assert (direct.returncode, direct.stdout.strip()) == (0, "queue: ready"), direct.stderr
    live = cluster.nimbus("health", "queue", "--live")
    assert (live.returncode, live.stdout.strip()) == (0, "queue: live"), live.stderr


def test_a_worker_kind_stands_for_the_instance_at_the_endpoint(cluster):
    """A worker's pod cannot know its ordinal in a probe: the kind names whichever instance answers."""
    endpoint = cluster.endpoint("ingest-worker-1")
    result = wait_until(lambda: (r := cluster.nimbus("health", "ingest-worker", "--ready", "--endpoint", endpoint)).returncode == 0 and r,
                        timeout=READY_WAIT, interval=0.5, message="ingest-worker --ready exits 0")
    assert result.stdout.strip() == "ingest-worker-1: ready"
    # without --endpoint a kind is not a process name
    assert cluster.nimbus("health", "ingest-worker", "--live").returncode == 1


def test_live_exits_1_for_a_stopped_endpoint(cluster):
    port = closed_port()
    started = time.monotonic()
    result = cluster.nimbus("health", "queue", "--live", "--endpoint", f"tcp://{HOST}:{port}")
    assert result.returncode == 1
    assert time.monotonic() - started < PROBE_LIMIT
    assert f"queue does not answer on tcp://{HOST}:{port}" in result.stderr, result.stderr
    assert result.stdout == ""


def test_a_probe_does_not_pass_on_another_process_answer(cluster):
    """A manifest with the wrong port must fail its probe, not pass on a neighbour's health."""
    result = cluster.nimbus("health", "table", "--live", "--endpoint", cluster.endpoint("queue"))
    assert result.returncode == 1
    assert "is queue, not table" in result.stderr, result.stderr


def test_live_and_ready_together_are_refused(cluster):
    result = cluster.nimbus("health", "queue", "--live", "--ready")
    assert result.returncode != 0 and "--live and --ready" in result.stderr


def test_ready_exits_1_with_the_reason_while_a_dependency_is_down(tmp_path):
    """A gateway on its own, its queue's endpoint closed: live, but not ready, saying why."""
    base = find_base_port()
    config = tmp_path / "nimbus.yaml"
    config.write_text("\n".join([
        f"dataDirectory: {tmp_path / 'data'}",
        'stack: ""',
        f"supervisor: {{ endpoint: tcp://{HOST}:{base} }}",
        "services:",
        f"  queue: {{ endpoint: tcp://{HOST}:{base + 2} }}",
        f"  gateway: {{ endpoint: tcp://{HOST}:{base + 5} }}",
        f'gateway: {{ http: "{HOST}:{base + 6}" }}',
        "iam: { enforce: false }",
    ]) + "\n")
    gateway = subprocess.Popen([str(NIMBUS_BIN / "nimbus-gateway"), "--config", str(config), "--log-stderr"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    probe = ["health", "gateway", "--endpoint", f"tcp://{HOST}:{base + 5}", "--config", str(config)]
    try:
        live = wait_until(lambda: (r := nimbus(*probe, "--live")).returncode == 0 and r,
                          timeout=READY_WAIT, interval=0.5, message="the lone gateway answers --live")
        assert live.stdout.strip() == "gateway: live"
        not_ready = wait_until(lambda: (r := nimbus(*probe, "--ready")).returncode == 1 and "queue unreachable" in r.stderr and r,
                               timeout=READY_WAIT, interval=0.5, message="--ready names the unreachable queue")
        assert "gateway is not ready: " in not_ready.stderr and not_ready.stdout == ""
    finally:
        gateway.send_signal(signal.SIGTERM)
        try:
            gateway.wait(timeout=15)
        except subprocess.TimeoutExpired:
            gateway.kill()
            gateway.wait(timeout=5)
            pytest.fail("the standalone gateway did not stop within 15 s of SIGTERM")

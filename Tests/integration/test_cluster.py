"""Lifecycle and chaos: the supervisor restarts what dies, scales workers, and leaves no orphans.

This module gets its own cluster (the `cluster` fixture is per module) because it kills processes,
ending with the supervisor itself. The tests run in file order; the supervisor SIGKILL is last.
"""

from __future__ import annotations

import os
import signal
import socket

import pytest

from conftest import HOST, PROCESS_NAMES, ask_health, pid_alive, process_by_name, wait_until

RESTART_WAIT = 5.0  # first restart: 1 s backoff + start + first heartbeat
SECOND_RESTART_WAIT = 10.0  # the backoff doubles per restart (2 s for the second)
GONE_WAIT = 5.0


def running_with_new_identity(cluster, name: str, old_pid: int, old_incarnation: str):
    """A predicate: `name` is running with a pid and incarnation different from the old ones."""

    def check():
        p = process_by_name(cluster.status(), name)
        if p and p["state"] == "running" and p.get("pid") not in (None, old_pid) \
                and p.get("incarnation") not in (None, old_incarnation):
            return p
        return None

    return check


def assert_others_untouched(before: dict, after: dict, except_name: str) -> None:
    for old in before["processes"]:
        if old["name"] == except_name:
            continue
        new = process_by_name(after, old["name"])
        assert new is not None, f"{old['name']} vanished"
        assert (new["pid"], new["incarnation"], new["state"]) == (old["pid"], old["incarnation"], "running"), \
            f"{old['name']} changed while {except_name} was killed: {old} -> {new}"
    assert after["supervisorPID"] == before["supervisorPID"]


def test_status_lists_every_process_running(cluster):
    status = cluster.status()
    assert isinstance(status["supervisorPID"], int) and pid_alive(status["supervisorPID"])
    assert sorted(p["name"] for p in status["processes"]) == sorted(PROCESS_NAMES)
    for p in status["processes"]:
        assert p["state"] == "running", p
        assert pid_alive(p["pid"]), p
        assert p["restarts"] == 0, p
    pids = [p["pid"] for p in status["processes"]] + [status["supervisorPID"]]
    assert len(set(pids)) == len(pids)
    assert len({p["incarnation"] for p in status["processes"]}) == len(PROCESS_NAMES)


@pytest.mark.parametrize("name", PROCESS_NAMES)
def test_sigkilled_process_is_restarted(cluster, name):
    before = cluster.status()
    old = process_by_name(before, name)
    assert old["state"] == "running"
    os.kill(old["pid"], signal.SIGKILL)
    new = wait_until(running_with_new_identity(cluster, name, old["pid"], old["incarnation"]),
                     timeout=RESTART_WAIT, interval=0.2, message=f"{name} restarted after SIGKILL")
    assert new["restarts"] == old["restarts"] + 1
    wait_until(lambda: not pid_alive(old["pid"]), timeout=GONE_WAIT, message=f"old {name} pid {old['pid']} gone")
    _, health = ask_health(cluster.endpoint(name))
    assert (health["pid"], health["incarnation"]) == (new["pid"], new["incarnation"])
    assert_others_untouched(before, cluster.status(), name)


def test_cli_kill_restarts_with_new_incarnation(cluster):
    name = "notifier"
    before = cluster.status()
    old = process_by_name(before, name)
    result = cluster.nimbus("kill", name)
    assert result.returncode == 0, result.stderr
    assert name in result.stdout and str(old["pid"]) in result.stdout, result.stdout
    new = wait_until(running_with_new_identity(cluster, name, old["pid"], old["incarnation"]),
                     timeout=SECOND_RESTART_WAIT, interval=0.2, message=f"{name} restarted after nimbus kill")
    assert new["restarts"] == old["restarts"] + 1
    wait_until(lambda: not pid_alive(old["pid"]), timeout=GONE_WAIT, message=f"old {name} pid gone")
    _, health = ask_health(cluster.endpoint(name))
    assert health["incarnation"] == new["incarnation"]
    assert_others_untouched(before, cluster.status(), name)


def test_cli_kill_of_unknown_process_fails(cluster):
    result = cluster.nimbus("kill", "no-such-process")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nimbus:"), result.stderr


def test_scale_ingest_workers_up_and_down(cluster):
    result = cluster.nimbus("scale", "ingest-worker=3")
    assert result.returncode == 0, result.stderr
    names = ["ingest-worker-1", "ingest-worker-2", "ingest-worker-3"]

    def all_three_running():
        status = cluster.status()
        ps = [process_by_name(status, n) for n in names]
        return ps if all(p and p["state"] == "running" for p in ps) else None

    workers = wait_until(all_three_running, timeout=15, interval=0.2, message="3 ingest workers running")
    pids = [p["pid"] for p in workers]
    assert len(set(pids)) == 3 and all(pid_alive(p) for p in pids), workers
    assert cluster.port("ingest-worker-3") == cluster.base + 12
    _, health = ask_health(f"tcp://{HOST}:{cluster.base + 12}")
    assert health["name"] == "ingest-worker-3"
    assert health["kind"] == "ingest-worker"
    assert health["pid"] == pids[2]

    result = cluster.nimbus("scale", "ingest-worker=1")
    assert result.returncode == 0, result.stderr

    def scaled_back():
        status = cluster.status()
        present = {p["name"] for p in status["processes"]}
        return status if not present & {"ingest-worker-2", "ingest-worker-3"} else None

    status = wait_until(scaled_back, timeout=15, interval=0.2, message="ingest-worker-2 and -3 removed")
    wait_until(lambda: not pid_alive(pids[1]) and not pid_alive(pids[2]), timeout=GONE_WAIT,
               message=f"pids {pids[1:]} of the removed workers gone")
    first = process_by_name(status, "ingest-worker-1")
    assert first["state"] == "running" and first["pid"] == pids[0]
    assert sorted(p["name"] for p in status["processes"]) == sorted(PROCESS_NAMES)


def test_scale_of_a_non_worker_kind_fails(cluster):
    before = cluster.status()
    result = cluster.nimbus("scale", "queue=2")
    assert result.returncode == 1, result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nimbus:"), result.stderr
    after = cluster.status()
    assert [p["name"] for p in after["processes"] if p["kind"] == "queue"] == ["queue"]
    assert process_by_name(after, "queue")["pid"] == process_by_name(before, "queue")["pid"]


def test_up_when_already_running_fails(cluster):
    before = cluster.status()
    result = cluster.up()
    assert result.returncode == 1, result.stdout
    assert "already running" in result.stderr
    after = cluster.status()
    assert after["supervisorPID"] == before["supervisorPID"]
    assert [p["pid"] for p in after["processes"]] == [p["pid"] for p in before["processes"]]


def test_status_when_not_running_fails(unstarted_cluster):
    result = unstarted_cluster.nimbus("status")
    assert result.returncode == 1
    assert "not running" in result.stderr
    result = unstarted_cluster.nimbus("status", "--json")
    assert result.returncode == 1 and result.stdout.strip() == ""
    assert "not running" in result.stderr


def test_up_with_a_port_taken_fails(unstarted_cluster):
    port = unstarted_cluster.port("table")
    blocker = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        blocker.bind((HOST, port))
        blocker.listen(1)
        result = unstarted_cluster.up()
    finally:
        blocker.close()
    assert result.returncode == 1, result.stdout
    assert "in use" in result.stderr
    assert str(port) in result.stderr
    assert unstarted_cluster.nimbus("status").returncode == 1  # nothing was started
    assert not unstarted_cluster.known_pids


def test_sigkilled_supervisor_leaves_no_orphans(cluster):
    """Last in this module: the cluster is gone afterwards."""
    status = cluster.status()
    supervisor = status["supervisorPID"]
    children = [p["pid"] for p in status["processes"]]
    assert children and all(pid_alive(p) for p in children)
    os.kill(supervisor, signal.SIGKILL)
    wait_until(lambda: not any(pid_alive(p) for p in [supervisor, *children]), timeout=GONE_WAIT, interval=0.1,
               message=f"supervisor {supervisor} and children {children} gone")

    result = cluster.nimbus("status")
    assert result.returncode == 1 and "not running" in result.stderr
    result = cluster.nimbus("down")
    assert result.returncode == 0, result.stderr
    assert "not running" in result.stdout

"""The CLI's healing tools (issue 21): ``nimbus load`` posts orders at a steady rate and records each
outcome, ``nimbus chaos`` SIGKILLs random processes through the supervisor, and ``nimbus verify`` waits
for the pipeline to drain and judges every recorded order (ok / lost / duplicated / unexpected).

One cluster for the module, with POC-Queue's visibility timeout shortened to 3 s (in a copy of the
lab's stack) so a message held by a killed worker comes back soon."""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from conftest import NIMBUS_BIN, SQS, STACK_FILE, process_by_name, start_cluster, stop_cluster, wait_for_queue, wait_until
from test_pipeline import subscribe_and_confirm

SUBSCRIBER = "healer@example.com"
VERIFY_TIMEOUT = 90  # seconds verify may wait for the pipeline to drain (its own --timeout)


@pytest.fixture(scope="module")
def cluster():
    with tempfile.TemporaryDirectory(prefix="nimbus-it-") as tmp:
        stack = Path(tmp) / "stack.yaml"
        stack.write_text(STACK_FILE.read_text().replace("VisibilityTimeout: 30", "VisibilityTimeout: 3"))
        (Path(tmp) / "c").mkdir()
        c = start_cluster(Path(tmp) / "c", stack=stack)
        try:
            wait_for_queue(c)
            # Confirmed before any load: verify expects every subscriber to get every order's mail.
            subscribe_and_confirm(c, SUBSCRIBER)
            yield c
        finally:
            stop_cluster(c)


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def verify(cluster, *args: str) -> subprocess.CompletedProcess:
    return cluster.nimbus("verify", "--timeout", f"{VERIFY_TIMEOUT}s", *args, timeout=VERIFY_TIMEOUT + 30)


def counts(output: str) -> dict[str, str]:
    """verify's ``name: value`` lines."""
    return dict(re.findall(r"(?m)^([a-z ]+): (.*)$", output))


@pytest.fixture(scope="module")
def load_run(cluster) -> dict:
    """One load at 20 orders/s for 3 s: its run id, record file and output."""
    result = cluster.nimbus("load", "--rate", "20", "--duration", "3s", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = re.search(r"nimbus: load (\w+): (\d+) sent, (\d+) acknowledged, (\d+) failed", result.stdout)
    records = re.search(r"nimbus: records: (\S+)", result.stdout)
    assert summary and records, result.stdout
    return {"run": summary.group(1), "file": Path(records.group(1)), "stdout": result.stdout,
            "sent": int(summary.group(2)), "acknowledged": int(summary.group(3))}


def test_load_records_every_order_acknowledged(cluster, load_run):
    run, file = load_run["run"], load_run["file"]
    assert file == cluster.directory / "data" / "load" / f"{run}.jsonl"
    records = read_records(file)
    assert load_run["sent"] == load_run["acknowledged"] == len(records) == 60, load_run["stdout"]
    assert sorted(r["id"] for r in records) == sorted(f"{run}-{n}" for n in range(60))
    for r in records:
        assert set(r) == {"id", "body", "sentAt", "status", "acknowledged", "attempts", "error"}, r
        assert (r["status"], r["acknowledged"], r["attempts"], r["error"]) == (200, True, 1, None), r
        assert json.loads(r["body"]) == {"item": "latex gloves", "customerID": "12345", "loadID": r["id"]}


def test_verify_finds_every_order_delivered_once(cluster, load_run):
    result = verify(cluster)
    assert result.returncode == 0, result.stdout + result.stderr
    found = counts(result.stdout)
    assert found["runs"] == load_run["run"]
    assert found["posted"] == found["acknowledged"] == found["ok"] == "60", result.stdout
    assert [found[k] for k in ("recovered", "lost", "duplicated", "unexpected", "failed")] == ["0"] * 5, result.stdout
    assert found["subscribers checked"] == f"1 ({SUBSCRIBER})"
    assert "nimbus: verify: ok" in result.stdout

    as_json = verify(cluster, "--json")
    assert as_json.returncode == 0, as_json.stdout + as_json.stderr
    report = json.loads(as_json.stdout)
    assert (report["verdict"], report["drained"], report["posted"], report["ok"]) == ("ok", True, 60, 60), report
    assert report["subscribersChecked"] == [SUBSCRIBER]


def test_verify_reports_a_lost_and_an_unexpected_order(cluster, load_run, tmp_path):
    run = load_run["run"]
    # A copy of the records claiming one more acknowledged order that was never posted ...
    records = tmp_path / "records"
    records.mkdir()
    never_posted = f"{run}-999999"
    body = json.dumps({"item": "latex gloves", "customerID": "12345", "loadID": never_posted})
    (records / f"{run}.jsonl").write_text(load_run["file"].read_text() + json.dumps(
        {"id": never_posted, "body": body, "sentAt": "2026-01-01T00:00:00.000Z", "status": 200,
         "acknowledged": True, "attempts": 1, "error": None}) + "\n")
    # ... and a row (then its mail) of the same run that no record mentions.
    stray = f"{run}-888888"
    with SQS(cluster.endpoint("table")) as table:
        table("dynamodb:PutItem", {"TableName": "orders", "Item": {
            "orderID": {"S": str(uuid.uuid4())},
            "order": {"S": json.dumps({"item": "latex gloves", "customerID": "12345", "loadID": stray})}}})

    result = verify(cluster, "--records", str(records))
    assert result.returncode == 1, result.stdout + result.stderr
    found = counts(result.stdout)
    assert (found["posted"], found["ok"], found["lost"], found["unexpected"], found["duplicated"]) == ("61", "60", "1", "1", "0"), result.stdout
    assert found["lost examples"] == never_posted
    assert found["unexpected examples"] == stray
    assert "nimbus: verify: FAILED" in result.stdout


def test_chaos_kills_the_chosen_kind_and_the_supervisor_restarts_it(cluster):
    result = cluster.nimbus("chaos", "--duration", "3s", "--interval", "1s", "--kinds", "ingest-worker", "--seed", "7", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "seed 7" in result.stdout
    kills = re.findall(r"(?m)^\S+Z  killed (\S+) \(pid (\d+)\)$", result.stdout)
    assert kills and all(name == "ingest-worker-1" for name, _ in kills), result.stdout
    assert f"(ingest-worker={len(kills)}); seed 7" in result.stdout, result.stdout
    restarted = wait_until(
        lambda: (p := process_by_name(cluster.status(), "ingest-worker-1")) and p["restarts"] >= 1 and p["state"] == "running" and p,
        timeout=30, message="ingest-worker-1 restarted and running")
    assert str(restarted["pid"]) not in [pid for _, pid in kills]


def test_orders_survive_chaos(cluster, tmp_path):
    """The point of the three: load while workers are killed, then every acknowledged order arrives once."""
    records = tmp_path / "records"
    loader = subprocess.Popen(
        [str(NIMBUS_BIN / "nimbus"), "load", "--rate", "25", "--duration", "6s", "--out", str(records / "chaos.jsonl"),
         "--config", str(cluster.config)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        chaos = cluster.nimbus("chaos", "--duration", "5s", "--interval", "2s", "--kinds", "ingest-worker,stream-worker",
                               "--seed", "3", timeout=60)
        out, err = loader.communicate(timeout=90)
    finally:
        if loader.poll() is None:
            loader.kill()
            loader.wait(timeout=10)
    assert chaos.returncode == 0, chaos.stdout + chaos.stderr
    assert re.search(r"killed (ingest|stream)-worker-1", chaos.stdout), chaos.stdout
    assert loader.returncode == 0, out + err
    assert len(read_records(records / "chaos.jsonl")) == 150

    result = verify(cluster, "--records", str(records))
    assert result.returncode == 0, chaos.stdout + out + result.stdout + result.stderr
    found = counts(result.stdout)
    assert found["posted"] == "150" and int(found["ok"]) + int(found["recovered"]) + int(found["failed"]) == 150, result.stdout


def test_verify_says_when_the_pipeline_does_not_drain(cluster, tmp_path):
    """With no ingest worker the orders stay in POC-Queue: verify gives up after --timeout with exit 2,
    and passes once a worker is back."""
    assert cluster.nimbus("scale", "ingest-worker=0").returncode == 0
    try:
        wait_until(lambda: process_by_name(cluster.status(), "ingest-worker-1") is None, timeout=30, message="ingest-worker-1 gone")
        records = tmp_path / "records"
        load = cluster.nimbus("load", "--rate", "4", "--duration", "1s", "--out", str(records / "stuck.jsonl"), timeout=60)
        assert load.returncode == 0, load.stdout + load.stderr
        stuck = cluster.nimbus("verify", "--timeout", "3s", "--records", str(records), timeout=60)
        assert stuck.returncode == 2, stuck.stdout + stuck.stderr
        assert "did not drain within 3s" in stuck.stderr and "POC-Queue holds 4 visible" in stuck.stderr, stuck.stderr
    finally:
        assert cluster.nimbus("scale", "ingest-worker=1").returncode == 0
    result = verify(cluster, "--records", str(records))
    assert result.returncode == 0, result.stdout + result.stderr
    assert counts(result.stdout)["ok"] == "4", result.stdout

"""What a SendMessage costs through the AWS-compatible endpoint against the same send over nimbus/1.

One cluster (IAM on, no workers consuming), then alternating rounds of:
  1. `edge`: SendMessage of the lab's order as the SDKs send it (SQS JSON 1.0, SigV4 signed by botocore
     with the root's keys), replayed by wrk over 64 kept HTTP/1.1 connections;
  2. `nimbus/1`: the same SendMessage as a signed nimbus/1 request over ZeroMQ (64 in flight).
For each, the CPU the cluster's processes take per message (from /proc: the edge, the queue, iam),
the ratio of the totals (the issue's budget: at most 1.5), and the client's rate. The clients'
own CPU is not counted (the cluster's work is what is compared).

NIMBUS_BIN names the binaries (normally the release build). NIMBUS_EDGE_BENCH_SECONDS (8: each edge
run), NIMBUS_EDGE_BENCH_MESSAGES (20000: each nimbus/1 run) and NIMBUS_EDGE_BENCH_ROUNDS (3) size it.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zmq
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Tests" / "integration"))

from conftest import PROTOCOL_TAG, new_id, sign_header, start_cluster, stop_cluster, wait_for_queue  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
BODY = '{"item": "latex gloves", "customerID": "12345"}'
MESSAGES = int(os.environ.get("NIMBUS_EDGE_BENCH_MESSAGES", "20000"))
SECONDS = int(os.environ.get("NIMBUS_EDGE_BENCH_SECONDS", "8"))
ROUNDS = int(os.environ.get("NIMBUS_EDGE_BENCH_ROUNDS", "3"))


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def measure(pids: dict[str, int], run) -> tuple[dict[str, float], float]:
    before = {name: cpu_ticks(pid) for name, pid in pids.items()}
    started = time.monotonic()
    sent = run()
    elapsed = time.monotonic() - started
    after = {name: cpu_ticks(pid) for name, pid in pids.items()}
    return {name: (after[name] - before[name]) / TICK / sent * 1e6 for name in pids}, sent / elapsed


def via_edge(url: str, queue_url: str, credentials: dict) -> int:
    """wrk with 64 connections replaying one signed SendMessage for SECONDS (a SigV4 signature stays
    good for 15 minutes, and every replay is a new message, as SQS would take it)."""
    creds = Credentials(credentials["AccessKeyId"], credentials["SecretAccessKey"])
    body = json.dumps({"QueueUrl": queue_url, "MessageBody": BODY})
    request = AWSRequest(method="POST", url=url + "/", data=body,
                         headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AmazonSQS.SendMessage"})
    SigV4Auth(creds, "sqs", "us-east-1").add_auth(request)
    headers = "".join(f'wrk.headers["{name}"] = {json.dumps(value)}\n' for name, value in request.headers.items())
    script = Path(tempfile.mkdtemp()) / "send.lua"
    script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(body)}\n{headers}')
    out = subprocess.run(["wrk", "-t2", "-c64", f"-d{SECONDS}s", "-s", str(script), url + "/"], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"edge SendMessage failed under wrk:\n{out}")
    return int(out.split(" requests in ")[0].split()[-1])


def via_nimbus(endpoint: str, queue_url: str, credentials: dict) -> int:
    context = zmq.Context.instance()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    socket.connect(endpoint)
    body = json.dumps({"QueueUrl": queue_url, "MessageBody": BODY}).encode()
    in_flight, sent, answered = 0, 0, 0
    try:
        while answered < MESSAGES:
            while in_flight < 64 and sent < MESSAGES:
                header = {"kind": "request", "id": new_id("b"), "action": "sqs:SendMessage"}
                sign_header(header, body, credentials)
                socket.send_multipart([PROTOCOL_TAG, json.dumps(header).encode(), body])
                in_flight += 1
                sent += 1
            if socket.poll(10_000) == 0:
                raise SystemExit("nimbus/1 SendMessage: no answer within 10 s")
            frames = socket.recv_multipart()
            if json.loads(frames[1]).get("kind") != "reply":
                raise SystemExit(f"nimbus/1 SendMessage failed: {frames[1:]}")
            in_flight -= 1
            answered += 1
    finally:
        socket.close()
    return answered


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="nimbus-edge-bench-"))
    cluster = start_cluster(tmp, instances={"ingest-worker": 0, "stream-worker": 0})
    try:
        queue_url = wait_for_queue(cluster)
        credentials = cluster.root_credentials()
        status = cluster.status()
        pids = {p["name"]: p["pid"] for p in status["processes"] if p["name"] in ("edge", "queue", "iam")}
        results: dict[str, list] = {"edge": [], "nimbus/1": []}
        for _ in range(ROUNDS):
            results["edge"].append(measure(pids, lambda: via_edge(cluster.edge_url, queue_url, credentials)))
            results["nimbus/1"].append(measure(pids, lambda: via_nimbus(cluster.endpoint("queue"), queue_url, credentials)))
        totals = {}
        for way, runs in results.items():
            per = {name: statistics.median(r[0][name] for r in runs) for name in pids}
            rate = statistics.median(r[1] for r in runs)
            totals[way] = sum(per.values())
            shown = ", ".join(f"{name} {us:.0f}" for name, us in per.items())
            print(f"edge bench {way}: {rate:,.0f} SendMessage/s; cluster CPU µs per message: "
                  f"{totals[way]:.0f} ({shown}); medians of {ROUNDS} rounds of {MESSAGES}")
        ratio = totals["edge"] / totals["nimbus/1"]
        print(f"edge bench: a SendMessage through the edge costs {ratio:.2f}x the cluster CPU of the same send over nimbus/1 "
              f"(budget: 1.5x)")
    finally:
        stop_cluster(cluster)


if __name__ == "__main__":
    main()

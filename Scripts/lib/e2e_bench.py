"""End-to-end benchmark: orders POSTed to the gateway until delivered by POC-Topic.

A cluster (the binaries in $NIMBUS_BIN, normally the release build) with two extra subscribers on
POC-Topic: an SQS queue (`bench-subscriber`, read here) and a confirmed email address (delivered to
the cluster's SMTP sink). Two phases:
  1. latency: 20 orders/s for --latency-seconds; each order's latency is from just before its POST to
     the moment its notification is received from the subscriber queue (p50 / p99). Measured three
     times: by `nimbus-bench latency` (a Swift client: raw keep-alive HTTP, the node runtime's long
     poll), which is the figure reported; by this script's Python clients, which add a few ms of
     their own; and by `nimbus-bench latency --via http`, whose notifications come to an http
     subscriber it serves (POST accepted -> delivered to an http subscriber);
  2. throughput: wrk POSTs for --seconds with 32 connections; sustained end-to-end orders/s is the
     number of orders accepted divided by the time until the last one was read from the subscriber
     queue (by `nimbus-bench drain`); emails/s likewise, until the sink's mailboxes last grew.
It reuses the integration tests' cluster helpers (Tests/integration/conftest.py).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Tests" / "integration"))

import requests  # noqa: E402

from conftest import (  # noqa: E402
    SQS, ask_health, create_topic_subscriber_queue, queue_url, sink_mails, start_cluster, stop_cluster, wait_for_queue, wait_until,
)


class Receiver(threading.Thread):
    """Drains the subscriber queue, noting when each order (by its `seq`) arrived."""

    def __init__(self, endpoint: str, url: str):
        super().__init__(daemon=True)
        self.endpoint, self.url = endpoint, url
        self.arrived: dict[int, float] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        with SQS(self.endpoint) as queue:
            while not self.stop.is_set():
                messages = queue.receive(self.url, max_messages=10, wait=1)
                now = time.monotonic()
                for m in messages:
                    notification = json.loads(m["Body"])
                    image = json.loads(notification["Message"])
                    order = json.loads(image["order"]["S"])
                    self.arrived.setdefault(order["seq"], now)
                if messages:
                    queue("sqs:DeleteMessageBatch", {"QueueUrl": self.url, "Entries": [
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)]})


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def mails_stored(cluster) -> int:
    """Mails the cluster's sink has kept (its health's count: cheaper than reading the mailboxes)."""
    return int(ask_health(cluster.endpoint("mail-sink"))[1]["details"]["mails"])


def confirm_email(cluster, address: str) -> None:
    assert cluster.nimbus("subscribe", "email", address).returncode == 0
    def link():
        for message in sink_mails(cluster.mail_directory, address):
            if found := re.search(r"http://\S+/sns/confirm\?\S+", message.get_content()):
                return found.group(0)
        return None
    url = wait_until(link, timeout=10, message="confirmation mail")
    assert requests.get(url, timeout=5).status_code == 200


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10, help="throughput phase length")
    parser.add_argument("--latency-seconds", type=int, default=10, help="latency phase length (at 20 orders/s)")
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="nimbus-e2e-") as tmp:
        cluster = start_cluster(Path(tmp), rateLimit=1_000_000, burst=1_000_000)
        drain: subprocess.Popen | None = None
        try:
            wait_for_queue(cluster)
            with SQS(cluster.endpoint("queue")) as queue:
                arn = create_topic_subscriber_queue(queue, "bench-subscriber")
            assert cluster.nimbus("subscribe", "sqs", arn).returncode == 0
            confirm_email(cluster, "bench@example.com")

            # Phase 1: latency at 20 orders/s, first through the Swift probe (it reads and deletes its
            # notifications from bench-subscriber), then through Python's clients, then through the
            # Swift probe with an http subscriber it serves and subscribes itself (the notifier POSTs
            # to it: no subscriber queue, and no second durable commit at the queue node).
            def probe(via: str) -> None:
                run = subprocess.run(
                    [str(Path(os.environ["NIMBUS_BIN"]) / "nimbus-bench"), "latency", "--http", cluster.http_url,
                     "--queue", cluster.endpoint("queue"), "--subscriber", queue_url("bench-subscriber"),
                     "--via", via, "--notifier", cluster.endpoint("notifier"),
                     "--credentials", str(cluster.directory / "data" / "credentials" / "root.json"),
                     "--rate", "20", "--seconds", str(args.latency_seconds)],
                    capture_output=True, text=True, timeout=args.latency_seconds + 60)
                assert run.returncode == 0, run.stderr
                print(run.stdout.strip())

            probe("sqs")
            receiver = Receiver(cluster.endpoint("queue"), queue_url("bench-subscriber"))
            receiver.start()
            sent: dict[int, float] = {}
            session = requests.Session()
            start = time.monotonic()
            count = 20 * args.latency_seconds
            for seq in range(count):
                due = start + seq / 20
                time.sleep(max(0.0, due - time.monotonic()))
                sent[seq] = time.monotonic()
                r = session.post(cluster.http_url + "/orders", data=json.dumps({"item": "latex gloves", "seq": seq}), timeout=5)
                assert r.status_code == 200, r.text
            wait_until(lambda: all(s in receiver.arrived for s in sent), timeout=30, message="latency-phase orders delivered")
            latencies = [(receiver.arrived[s] - sent[s]) * 1000 for s in sent]
            print(f"e2e latency at 20 orders/s ({count} orders, same path, Python clients: requests + pyzmq): "
                  f"p50 {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms, max {max(latencies):.1f} ms")

            receiver.stop.set()
            receiver.join(timeout=10)

            probe("http")
            # The http probe's orders went to bench-subscriber too: out of the queue before the
            # throughput phase counts what it drains, and their mails in before it counts mails.
            orders_so_far = 3 * count
            with SQS(cluster.endpoint("queue")) as queue:
                def queued() -> int:
                    return int(queue("sqs:GetQueueAttributes", {"QueueUrl": queue_url("bench-subscriber"),
                                                                "AttributeNames": ["ApproximateNumberOfMessages"]})["Attributes"]["ApproximateNumberOfMessages"])
                wait_until(lambda: queued() >= count, timeout=30, message="the http probe's orders in bench-subscriber")
                queue("sqs:PurgeQueue", {"QueueUrl": queue_url("bench-subscriber")})
            wait_until(lambda: mails_stored(cluster) >= orders_so_far + 1, timeout=30, message="the latency phase's mails")

            # Phase 2: sustained throughput under wrk, the subscriber queue drained by `nimbus-bench
            # drain` (compiled, and it does not parse the notifications: the Python receiver took
            # 14-19 % of a core at this rate, on the same two cores as the pipeline).
            drain = subprocess.Popen(
                [str(Path(os.environ["NIMBUS_BIN"]) / "nimbus-bench"), "drain", "--queue", cluster.endpoint("queue"),
                 "--subscriber", queue_url("bench-subscriber"),
                 "--credentials", str(cluster.directory / "data" / "credentials" / "root.json")],
                stdout=subprocess.PIPE, text=True)
            progress = {"orders": 0, "at": 0.0}

            def follow() -> None:
                for line in drain.stdout:
                    orders, at = line.split()
                    progress["orders"], progress["at"] = int(orders), float(at)

            threading.Thread(target=follow, daemon=True).start()
            mails_before = mails_stored(cluster)
            lua = Path(tmp) / "post.lua"
            lua.write_text("""
counter = 100000
request = function()
  counter = counter + 1
  return wrk.format("POST", "/orders", {["Content-Type"] = "application/json"},
                    '{"item": "latex gloves", "seq": ' .. counter .. ', "thread": "' .. tostring(wrk.thread) .. '"}')
end
""")
            began = time.monotonic()
            began_wall = time.time()
            out = subprocess.run(["wrk", "-t1", f"-c{args.connections}", f"-d{args.seconds}s", "--latency", "-s", str(lua), cluster.http_url + "/"],
                                 capture_output=True, text=True, timeout=args.seconds + 60).stdout
            posted_window = time.monotonic() - began
            total = int(re.search(r"(\d+) requests in", out).group(1))
            errors = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
            accepted = total - errors
            # One wrk thread, so every order has its own seq (threads would share the counter's start).
            wait_until(lambda: progress["orders"] >= accepted or drain.poll() is not None, timeout=300, interval=0.5,
                       message="throughput-phase orders delivered")
            assert drain.poll() is None, f"nimbus-bench drain exited with {drain.returncode}"
            e2e_seconds = progress["at"] - began_wall
            print(f"gateway accepted {accepted} orders in {posted_window:.1f} s ({accepted / posted_window:.0f}/s; non-2xx {errors})")
            print(f"e2e sustained: {accepted} orders delivered to the SQS subscriber in {e2e_seconds:.1f} s "
                  f"= {accepted / e2e_seconds:.0f} orders/s")
            wait_until(lambda: mails_stored(cluster) - mails_before >= accepted, timeout=300, interval=0.5,
                       message="throughput-phase emails delivered")
            newest = max(p.stat().st_mtime for p in cluster.mail_directory.glob("*.mbox"))
            mail_seconds = newest - began_wall
            print(f"emails: {accepted} delivered through SMTP to the sink in {mail_seconds:.1f} s = {accepted / mail_seconds:.0f} emails/s")
        finally:
            if drain is not None:
                drain.kill()
                drain.wait(timeout=10)
            stop_cluster(cluster)
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Measures each Nimbus process's memory and CPU on a local cluster under a short load, for the
Kubernetes manifests' resource requests (deploy/kubernetes/README.md, "Resource requests").

Starts a cluster the way the integration tests do (Tests/integration/conftest.py: the binaries in
$NIMBUS_BIN, default .build/debug), confirms one email subscriber (so every order also becomes a
mail through the notifier and the mail sink), then reads /proc/PID/status (VmRSS, VmHWM) and
/proc/PID/stat (utime + stime) of every process: idle after start, every 0.5 s during
`nimbus load --rate R --duration D`, and until `nimbus verify` has seen the pipeline drain.

    python3 deploy/kubernetes/measure.py [--rate 50] [--duration 10s] [--enforce] [--edge]

--enforce keeps IAM enforcement on (the local default); without it the cluster runs as the
Kubernetes config does (iam.enforce: false). --edge loads the edge (the AWS endpoint) instead of the
gateway, which the lab's orders never pass: boto3 sends R SQS SendMessage requests a second to a
queue of its own (measure-edge) and, after every 10, one ReceiveMessage and one DeleteMessageBatch
(so R * 1.2 requests a second); the table is read the same way, without an order or a verify.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "Tests" / "integration"))

from conftest import NIMBUS_BIN, start_cluster, stop_cluster, wait_for_queue  # noqa: E402
from test_pipeline import subscribe_and_confirm  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields["VmRSS"], fields["VmHWM"]


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process (all threads), in seconds."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    rest = stat[stat.rfind(")") + 2 :].split()
    return (int(rest[11]) + int(rest[12])) / TICKS


class EdgeLoad(threading.Thread):
    """--edge: SQS requests through the edge at `rate` SendMessage a second for `seconds`, from one
    boto3 client; poll() and stdout stand in for the `nimbus load` process's."""

    def __init__(self, url: str, credentials: dict, rate: float, seconds: float):
        super().__init__(daemon=True)
        import boto3  # only --edge needs it

        self.sqs = boto3.client("sqs", endpoint_url=url, region_name="us-east-1",
                                aws_access_key_id=credentials["AccessKeyId"],
                                aws_secret_access_key=credentials["SecretAccessKey"],
                                aws_session_token=credentials.get("SessionToken"))
        self.queue = self.sqs.create_queue(QueueName="measure-edge")["QueueUrl"]
        self.rate, self.seconds = rate, seconds
        self.sent = self.received = self.requests = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            started = time.monotonic()
            while self.sent < self.rate * self.seconds:
                pause = started + self.sent / self.rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                self.sqs.send_message(QueueUrl=self.queue, MessageBody=f'{{"n": {self.sent}}}')
                self.sent += 1
                self.requests += 1
                if self.sent % 10 == 0:
                    messages = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages", [])
                    self.requests += 1
                    if messages:
                        self.sqs.delete_message_batch(QueueUrl=self.queue, Entries=[
                            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
                        self.requests += 1
                        self.received += len(messages)
        except BaseException as error:  # reported by the caller
            self.error = error

    def poll(self) -> int | None:
        return None if self.is_alive() else (1 if self.error else 0)

    @property
    def stdout(self) -> io.StringIO:
        return io.StringIO(f"edge: {self.sent} SendMessage, {self.received} received and deleted, {self.requests} requests"
                           + (f"; failed: {self.error!r}" if self.error else ""))


def seconds_of(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60}
    for suffix in ("ms", "s", "m"):
        if duration.endswith(suffix):
            return float(duration[: -len(suffix)]) * units[suffix]
    return float(duration)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", default="50")
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--enforce", action="store_true", help="keep IAM enforcement on")
    parser.add_argument("--edge", action="store_true", help="load the edge (SQS through the AWS endpoint), not the gateway")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="nimbus-measure-") as tmp:
        sections = {} if args.enforce else {"iam": {"enforce": False}}
        cluster = start_cluster(Path(tmp), sections=sections)
        try:
            wait_for_queue(cluster)
            if not args.edge:
                subscribe_and_confirm(cluster, "measure@example.com")
            pids = {p["name"]: int(p["pid"]) for p in cluster.status()["processes"] if p.get("pid")}
            # --edge: its queue created before the idle reading
            edge_load = EdgeLoad(cluster.edge_url, cluster.root_credentials(), float(args.rate),
                                 seconds_of(args.duration)) if args.edge else None
            time.sleep(5)
            idle = {name: rss_kib(pid)[0] for name, pid in pids.items()}
            cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
            last = dict(cpu0)
            peak_rss = dict(idle)
            peak_cores = {name: 0.0 for name in pids}
            started = time.monotonic()
            previous = started
            nimbus = str(NIMBUS_BIN / "nimbus")
            config = ["--config", str(cluster.config)]
            if edge_load:
                load = edge_load
                load.start()
            else:
                load = subprocess.Popen([nimbus, "load", "--rate", args.rate, "--duration", args.duration, *config],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            verify = None
            load_seconds = 0.0
            load_cpu: dict[str, float] = {}
            while True:
                time.sleep(0.5)
                now = time.monotonic()
                for name, pid in pids.items():
                    peak_rss[name] = max(peak_rss[name], rss_kib(pid)[0])
                    c = cpu_seconds(pid)
                    peak_cores[name] = max(peak_cores[name], (c - last[name]) / (now - previous))
                    last[name] = c
                previous = now
                if verify is None and load.poll() is not None:
                    load_seconds = now - started
                    load_cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
                    print(load.stdout.read().strip())
                    if args.edge:
                        break
                    # verify waits for the drain (queue empty, stream read, outbox empty, counts still)
                    verify = subprocess.Popen([nimbus, "verify", "--timeout", "90s", *config],
                                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                elif verify is not None and verify.poll() is not None:
                    print(verify.stdout.read().strip())
                    break
            ended = time.monotonic()
            for name, pid in pids.items():
                rss, hwm = rss_kib(pid)
                peak_rss[name] = max(peak_rss[name], hwm)
            total_cpu = {name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()}
            what = "edge SendMessage" if args.edge else "load"
            print(f"\n{what} {args.rate}/s for {args.duration} ({load_seconds:.1f} s), drained after {ended - started:.1f} s; "
                  f"IAM enforcement {'on' if args.enforce else 'off'}; binaries: {NIMBUS_BIN}\n")
            print("| process | RSS idle (MiB) | RSS peak (MiB) | CPU s (load + drain) | mean cores (load) | peak cores (0.5 s) |")
            print("|---|---:|---:|---:|---:|---:|")
            for name in sorted(pids):
                print(f"| {name} | {idle[name] / 1024:.1f} | {peak_rss[name] / 1024:.1f} | {total_cpu[name]:.2f} | "
                      f"{load_cpu[name] / load_seconds:.3f} | {peak_cores[name]:.2f} |")
        finally:
            stop_cluster(cluster)
    return 0


if __name__ == "__main__":
    sys.exit(main())

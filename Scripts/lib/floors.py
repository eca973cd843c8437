"""What the unmet throughput targets stand on: the measurements behind the README's floors.

Two alternating pairs, each under the gateway bench's load (`wrk -t2 -c64`, the lab's order body),
with the CPU each process takes per POST read from /proc over the middle 8 s of a 12 s run:
  1. `nimbus-bench bare-http`: a bare Hummingbird 2 POST route that reads the body and answers "ok";
  2. the gateway with its cluster (throttle lifted, no workers consuming; every 200 a durable send).
Then SHA-256's speed on this CPU (`openssl speed`), which every signed request pays over its body.
The binaries are those in $NIMBUS_BIN (normally the release build); the cluster helpers are the
integration tests' (Tests/integration/conftest.py).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Tests" / "integration"))

from conftest import start_cluster, stop_cluster, wait_for_queue, wait_until  # noqa: E402

BIN = Path(os.environ["NIMBUS_BIN"])
TICK = os.sysconf("SC_CLK_TCK")
BODY = '{"item": "latex gloves", "customerID": "12345"}'


def cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def load(url: str, pids: dict[str, int], lua: Path) -> str:
    """wrk for 12 s; the CPU of `pids` and of wrk itself per request over its middle 8 s."""
    wrk = subprocess.Popen(["wrk", "-t2", "-c64", "-d12s", "--latency", "-s", str(lua), url], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        pids = {**pids, "wrk": wrk.pid}
        before, t0 = {name: cpu_ticks(pid) for name, pid in pids.items()}, time.monotonic()
        time.sleep(8)
        after, t1 = {name: cpu_ticks(pid) for name, pid in pids.items()}, time.monotonic()
        out, _ = wrk.communicate(timeout=30)
    finally:
        if wrk.poll() is None:
            wrk.kill()
            wrk.wait()
    rate = float(out.split("Requests/sec:")[1].split()[0])
    p99 = next(line.split()[1] for line in out.splitlines() if line.strip().startswith("99%"))
    requests = rate * (t1 - t0)
    cpu = {name: (after[name] - before[name]) / TICK / requests * 1e6 for name in pids}
    shown = " ".join(f"{name} {us:.1f}" for name, us in cpu.items() if us >= 0.5)
    errors = " (non-2xx answers!)" if "Non-2xx" in out else ""
    return f"{rate:,.0f} POSTs/s, p99 {p99}{errors}; CPU µs per POST: {shown}"


def bare(lua: Path, port: int = 18181) -> str:
    server = subprocess.Popen([str(BIN / "nimbus-bench"), "bare-http", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def answers() -> bool:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=BODY.encode(), method="POST")
            with urllib.request.urlopen(request, timeout=2) as answer:
                return answer.status == 200
        wait_until(answers, timeout=15.0, interval=0.1, message="the bare server answers")
        return "bare Hummingbird: " + load(f"http://127.0.0.1:{port}/", {"server": server.pid}, lua)
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def gateway(lua: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="nimbus-floors-") as tmp:
        cluster = start_cluster(Path(tmp), instances={"ingest-worker": 0, "stream-worker": 0}, rateLimit=1_000_000, burst=1_000_000)
        try:
            wait_for_queue(cluster)
            status = json.loads(cluster.nimbus("status", "--json").stdout)
            pids = {p["name"]: p["pid"] for p in status["processes"] if p.get("pid")}
            return "gateway and cluster: " + load(cluster.http_url + "/", pids, lua)
        finally:
            stop_cluster(cluster)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="nimbus-floors-lua-") as tmp:
        lua = Path(tmp) / "post.lua"
        lua.write_text(f"wrk.method = \"POST\"\nwrk.body = '{BODY}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n")
        print("floors: wrk -t2 -c64 -d12s POST /, CPU from /proc over the middle 8 s, two alternating pairs")
        for _ in range(2):
            print(bare(lua), flush=True)
            print(gateway(lua), flush=True)
    for size in (512, 4096):
        out = subprocess.run(["openssl", "speed", "-seconds", "2", "-bytes", str(size), "sha256"],
                             capture_output=True, text=True).stdout
        rate = out.strip().splitlines()[-1].split()[-1]  # "sha256  231843.89k" (thousands of bytes/s)
        print(f"SHA-256 (openssl speed), {size}-byte blocks: {float(rate.rstrip('k')) / 1000:.0f} MB/s")


if __name__ == "__main__":
    main()

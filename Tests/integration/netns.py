"""Hosts for multi-host tests: Linux network namespaces on one machine, and the faults of a real network.

``Hosts`` builds one network namespace per host (``nimbus-h1`` ...), each joined by a veth pair to a
bridge in the root namespace (``nimbr0``, 10.77.0.254/24), with its own address (10.77.0.N/24) and its
loopback up. Everything it makes is torn down by name and by pid in ``close()``, which is safe to call
after a failure half-way through ``open()``.

Faults, applied inside a host's namespace to its link (``eth0`` there):

- ``delay(host, 100, 20)``: every packet the host sends waits 100 +- 20 ms (uniform). This kernel has
  no ``sch_netem``, so ``tc qdisc ... netem`` is not available: packets are sent to an NFQUEUE
  (iptables, OUTPUT chain) and released by ``nfq_delay`` below, a small userspace delayer, after their
  delay. Unlike netem it keeps the packets' order (a packet never overtakes an earlier one).
- ``loss(host, 10)``: 10 % of the packets the host sends are dropped (iptables' statistic match, as
  netem's ``loss 10%`` on the same egress).
- ``cut(host)`` / ``restore(host)``: ``ip link set eth0 down`` / ``up`` inside the namespace.
- ``partition(a, b)`` / ``heal(a, b)``: ``ip route add prohibit`` of each one's address in the other's
  namespace, so a and b cannot reach each other while both still reach every other host.

Run as a script it is the delayer: ``python3 netns.py nfq-delay --queue N --delay-ms 100 --jitter-ms 20``.
"""

from __future__ import annotations

import os
from collections import deque
import random
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field

BRIDGE = "nimbr0"
SUBNET_PREFIX = "10.77.0"
BRIDGE_ADDRESS = f"{SUBNET_PREFIX}.254"
NETNS_PREFIX = "nimbus-"
LINK = "eth0"  # the host's link, inside its namespace


def sh(*args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess:
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
    return result


def netns_unavailable_reason() -> str | None:
    """Why namespaces cannot be made here (not root, no ip, no permission), or None when they can."""
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    probe = f"{NETNS_PREFIX}probe-{os.getpid()}"
    made = sh("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"ip netns add is not permitted here: {made.stderr.strip()}"
    sh("ip", "netns", "del", probe, check=False)
    return None


def faults_unavailable_reason() -> str | None:
    """Why the faults cannot be injected (iptables missing), or None."""
    if shutil.which("iptables") is None:
        return "iptables is not installed (Scripts/lib/deps.sh installs it)"
    return None


@dataclass
class Host:
    name: str
    index: int
    netns: str
    address: str
    outer: str  # the veth end in the root namespace, on the bridge

    def exec_args(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *args]


@dataclass
class Hosts:
    names: list[str]
    hosts: dict[str, Host] = field(default_factory=dict)
    made_bridge: bool = False
    # delayers by host name: (pid, iptables rule)
    delayers: dict[str, tuple[subprocess.Popen, list[str]]] = field(default_factory=dict)
    rules: list[tuple[str, list[str]]] = field(default_factory=list)
    routes: list[tuple[str, str]] = field(default_factory=list)

    def open(self) -> "Hosts":
        self._remove_leftovers()
        sh("ip", "link", "add", BRIDGE, "type", "bridge")
        self.made_bridge = True
        sh("ip", "addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        for index, name in enumerate(self.names, start=1):
            host = Host(name, index, f"{NETNS_PREFIX}{name}", f"{SUBNET_PREFIX}.{index}", f"nimv-{name}")
            self.hosts[name] = host
            sh("ip", "netns", "add", host.netns)
            inner = f"nimp-{name}"
            sh("ip", "link", "add", host.outer, "type", "veth", "peer", "name", inner)
            sh("ip", "link", "set", inner, "netns", host.netns)
            sh("ip", "-n", host.netns, "link", "set", inner, "name", LINK)
            sh("ip", "-n", host.netns, "addr", "add", f"{host.address}/24", "dev", LINK)
            sh("ip", "-n", host.netns, "link", "set", "lo", "up")
            sh("ip", "-n", host.netns, "link", "set", LINK, "up")
            sh("ip", "link", "set", host.outer, "master", BRIDGE)
            sh("ip", "link", "set", host.outer, "up")
        return self

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def run(self, name: str, *args: str, timeout: float = 30, check: bool = False) -> subprocess.CompletedProcess:
        return sh(*self.hosts[name].exec_args(*args), timeout=timeout, check=check)

    def popen(self, name: str, *args: str, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.hosts[name].exec_args(*args), **kwargs)

    def pids(self, name: str) -> list[int]:
        """Every process in the host's namespace."""
        out = sh("ip", "netns", "pids", self.hosts[name].netns, check=False).stdout
        return [int(p) for p in out.split() if p.isdigit()]

    # -- faults ----------------------------------------------------------------------------------

    def delay(self, name: str, delay_ms: int, jitter_ms: int) -> None:
        host = self.hosts[name]
        queue = 40 + host.index
        delayer = self.popen(name, sys.executable, os.path.abspath(__file__), "nfq-delay", "--queue", str(queue),
                             "--delay-ms", str(delay_ms), "--jitter-ms", str(jitter_ms),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # It says "bound" once its queue is open, before any packet is sent to it.
        line = delayer.stdout.readline()
        if "bound" not in line:
            delayer.kill()
            raise RuntimeError(f"the delayer did not start: {line}{delayer.stderr.read()}")
        rule = ["OUTPUT", "-o", LINK, "-j", "NFQUEUE", "--queue-num", str(queue), "--queue-bypass"]
        self.run(name, "iptables", "-A", *rule, check=True)
        self.delayers[name] = (delayer, rule)

    def undelay(self, name: str) -> None:
        delayer, rule = self.delayers.pop(name)
        self.run(name, "iptables", "-D", *rule)
        time.sleep(0.3)  # the packets it holds (up to delay + jitter) go out first
        delayer.terminate()
        try:
            delayer.wait(timeout=5)
        except subprocess.TimeoutExpired:
            delayer.kill()
            delayer.wait(timeout=5)

    def loss(self, name: str, percent: float) -> None:
        rule = ["OUTPUT", "-o", LINK, "-m", "statistic", "--mode", "random", "--probability", f"{percent / 100:.4f}", "-j", "DROP"]
        self.run(name, "iptables", "-A", *rule, check=True)
        self.rules.append((name, rule))

    def unloss(self, name: str) -> None:
        for entry in [r for r in self.rules if r[0] == name]:
            self.run(name, "iptables", "-D", *entry[1])
            self.rules.remove(entry)

    def cut(self, name: str) -> None:
        self.run(name, "ip", "link", "set", LINK, "down", check=True)

    def restore(self, name: str) -> None:
        self.run(name, "ip", "link", "set", LINK, "up", check=True)

    def partition(self, a: str, b: str) -> None:
        for here, there in ((a, b), (b, a)):
            self.run(here, "ip", "route", "add", "prohibit", f"{self.hosts[there].address}/32", check=True)
            self.routes.append((here, self.hosts[there].address))

    def heal(self, a: str, b: str) -> None:
        for here, there in ((a, b), (b, a)):
            address = self.hosts[there].address
            self.run(here, "ip", "route", "del", "prohibit", f"{address}/32")
            if (here, address) in self.routes:
                self.routes.remove((here, address))

    # -- teardown --------------------------------------------------------------------------------

    def close(self) -> list[str]:
        """Removes every fault, process, namespace and link this made; returns what it had to kill."""
        killed: list[str] = []
        for name in list(self.delayers):
            try:
                self.undelay(name)
            except Exception:  # noqa: BLE001 - best effort, the namespace goes anyway
                pass
        for name, host in self.hosts.items():
            for pid in self.pids(name):
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(f"{name}:{pid}")
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(self.pids(n) for n in self.hosts):
            time.sleep(0.1)
        for host in self.hosts.values():
            sh("ip", "link", "del", host.outer, check=False)
            sh("ip", "netns", "del", host.netns, check=False)
        if self.made_bridge:
            sh("ip", "link", "del", BRIDGE, check=False)
        self.hosts.clear()
        return killed

    def _remove_leftovers(self) -> None:
        """A previous run killed before its teardown may have left our bridge or namespaces behind."""
        for name in self.names:
            netns = f"{NETNS_PREFIX}{name}"
            if os.path.exists(f"/run/netns/{netns}"):
                for pid in sh("ip", "netns", "pids", netns, check=False).stdout.split():
                    try:
                        os.kill(int(pid), signal.SIGKILL)
                    except (ProcessLookupError, ValueError):
                        pass
                sh("ip", "netns", "del", netns, check=False)
            sh("ip", "link", "del", f"nimv-{name}", check=False)
        sh("ip", "link", "del", BRIDGE, check=False)


# ------------------------------------------------------------------------------------------------
# The delayer: an nfnetlink_queue client (linux/netfilter/nfnetlink_queue.h), standard library only
# ------------------------------------------------------------------------------------------------

NETLINK_NETFILTER = 12
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG, NFQNL_MSG_VERDICT_BATCH = 0, 1, 2, 3
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_QUEUE_MAXLEN, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 3, 4, 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN = 1
NFQA_PACKET_HDR, NFQA_VERDICT_HDR = 1, 2
NLM_F_REQUEST, NLM_F_ACK = 1, 4
NLMSG_ERROR = 2
NF_ACCEPT = 1


def _attr(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * ((4 - length % 4) % 4)


def _message(msg: int, queue: int, attributes: bytes, flags: int = NLM_F_REQUEST, seq: int = 0) -> bytes:
    body = struct.pack("=BBH", socket.AF_UNSPEC, 0, socket.htons(queue)) + attributes
    return struct.pack("=IHHII", 16 + len(body), (NFNL_SUBSYS_QUEUE << 8) | msg, flags, seq, 0) + body


def nfq_delay(queue: int, delay_ms: float, jitter_ms: float) -> None:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sock.bind((0, 0))
    config = [
        _attr(NFQA_CFG_CMD, struct.pack("=BxH", NFQNL_CFG_CMD_BIND, 0)),
        _attr(NFQA_CFG_PARAMS, struct.pack(">IB", 0, NFQNL_COPY_META)),
        _attr(NFQA_CFG_QUEUE_MAXLEN, struct.pack(">I", 65536)),
        # With the queue full (or this process slow), packets pass rather than drop: a delay, not a loss.
        _attr(NFQA_CFG_MASK, struct.pack(">I", NFQA_CFG_F_FAIL_OPEN)) + _attr(NFQA_CFG_FLAGS, struct.pack(">I", NFQA_CFG_F_FAIL_OPEN)),
    ]
    for seq, attrs in enumerate(config, start=1):
        sock.send(_message(NFQNL_MSG_CONFIG, queue, attrs, NLM_F_REQUEST | NLM_F_ACK, seq))
        reply = sock.recv(65536)
        length, kind = struct.unpack_from("=IH", reply)
        if kind == NLMSG_ERROR:
            error = struct.unpack_from("=i", reply, 16)[0]
            if error != 0:
                raise OSError(-error, f"nfqueue config {seq}: {os.strerror(-error)}")
    print("bound", flush=True)
    stop = False

    def on_term(*_):
        nonlocal stop
        stop = True
    signal.signal(signal.SIGTERM, on_term)
    rng = random.Random()
    held: deque[tuple[float, int]] = deque()  # (release time, packet id), in arrival and release order
    last_release = 0.0
    while not stop:
        now = time.monotonic()
        due = 0
        while held and held[0][0] <= now:
            due = held.popleft()[1]
        if due:
            # One verdict for every packet up to `due`: they are released in order.
            sock.send(_message(NFQNL_MSG_VERDICT_BATCH, queue, _attr(NFQA_VERDICT_HDR, struct.pack(">II", NF_ACCEPT, due))))
        timeout = max(0.0, held[0][0] - time.monotonic()) if held else 0.5
        ready, _, _ = select.select([sock], [], [], timeout)
        if not ready:
            continue
        for _ in range(256):
            try:
                data = sock.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            offset = 0
            while offset + 16 <= len(data):
                length, kind = struct.unpack_from("=IH", data, offset)
                if length < 16:
                    break
                if kind & 0xFF == NFQNL_MSG_PACKET and kind >> 8 == NFNL_SUBSYS_QUEUE:
                    position = offset + 20  # nlmsghdr + nfgenmsg
                    while position + 4 <= offset + length:
                        alen, atype = struct.unpack_from("=HH", data, position)
                        if alen < 4:
                            break
                        if atype & 0x7FFF == NFQA_PACKET_HDR:
                            packet_id = struct.unpack_from(">I", data, position + 4)[0]
                            release = time.monotonic() + (delay_ms + rng.uniform(-jitter_ms, jitter_ms)) / 1000
                            last_release = max(last_release, release)
                            held.append((last_release, packet_id))
                        position += (alen + 3) & ~3
                offset += (length + 3) & ~3
    if held:
        sock.send(_message(NFQNL_MSG_VERDICT_BATCH, queue, _attr(NFQA_VERDICT_HDR, struct.pack(">II", NF_ACCEPT, held[-1][1]))))
    sock.close()


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = parser.add_subparsers(dest="command", required=True)
    delay = sub.add_parser("nfq-delay", help="hold each packet of an NFQUEUE for a delay, then accept it")
    delay.add_argument("--queue", type=int, required=True)
    delay.add_argument("--delay-ms", type=float, required=True)
    delay.add_argument("--jitter-ms", type=float, default=0)
    arguments = parser.parse_args()
    nfq_delay(arguments.queue, arguments.delay_ms, arguments.jitter_ms)

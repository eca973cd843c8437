"""Shared fixtures and helpers for the Nimbus integration tests.

The tests drive the prebuilt binaries in ``$NIMBUS_BIN`` (default ``<repo>/.build/debug``): each
cluster gets its own temporary directory, a ``nimbus.yaml`` on free ports away from the default
7100-7129 (the gateway's HTTP port is base + 6), the lab's stack (``stacks/poc-lab.yaml``: POC-Queue and
POC-Queue-DLQ), and is started with ``nimbus up`` and stopped with ``nimbus down``. Teardown then checks
by PID that every process the cluster ever reported is gone, SIGKILLs survivors, and fails.

The ZeroMQ client here is written from ``docs/protocol.md`` alone: three frames
``[b"nimbus/1", header JSON, body JSON]`` over a DEALER (or REQ) socket.
"""

from __future__ import annotations

import base64
import email
import email.message
import email.policy
import fcntl
import hashlib
import hmac
import json
import os
import random
import re
import signal
import socket
import struct
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pytest
import zmq

REPO = Path(__file__).resolve().parents[2]
NIMBUS_BIN = Path(os.environ.get("NIMBUS_BIN", str(REPO / ".build" / "debug")))

PROTOCOL_TAG = b"nimbus/1"
HOST = "127.0.0.1"

# name -> offset from the cluster's base port (worker instance N binds the kind's port + N - 1)
SERVICE_OFFSETS = {
    "iam": 1,
    "queue": 2,
    "table": 3,
    "notifier": 4,
    "gateway": 5,
    "mail-sink": 7,
    "ingest-worker": 10,
    "stream-worker": 20,
    "edge": 9,
}
# the processes a default cluster runs (one instance of each worker kind)
PROCESS_NAMES = ["iam", "queue", "table", "notifier", "mail-sink", "gateway", "ingest-worker-1", "stream-worker-1", "edge"]
PORT_SPAN = 31  # base .. base+30
GATEWAY_HTTP_OFFSET = 6  # the gateway's HTTP port: base + 6 (inside the span, unused by the sockets)
SMTP_OFFSET = 8  # the mail sink's SMTP port: base + 8
EDGE_HTTP_OFFSET = 30  # the AWS endpoint's HTTP port: base + 30
# the lab's resources (POC-Queue, POC-Queue-DLQ, ...), created by the services at start
STACK_FILE = REPO / "stacks" / "poc-lab.yaml"

CLI_TIMEOUT = 30  # seconds, for every short CLI call
UP_TIMEOUT = 60  # `nimbus up --timeout`
DOWN_TIMEOUT = 60  # `nimbus down` waits up to stopTimeoutSeconds + 10 (+5) itself


# --------------------------------------------------------------------------------------------
# generic helpers
# --------------------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1, message: str = "") -> Any:
    """Polls ``predicate`` until it returns a truthy value (which is returned) or ``timeout`` passes.

    Exceptions raised by the predicate count as "not yet"; the last one is reported on timeout.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    last_value: Any = None
    while True:
        try:
            last_value = predicate()
            last_error = None
            if last_value:
                return last_value
        except Exception as error:  # noqa: BLE001 - reported below
            last_error = error
        if time.monotonic() >= deadline:
            detail = f"; last error: {last_error!r}" if last_error else f"; last value: {last_value!r}"
            raise AssertionError(f"condition not met within {timeout} s: {message}{detail}")
        time.sleep(interval)


def pid_alive(pid: int) -> bool:
    """True when ``pid`` is a live (non-zombie) process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    except OSError:
        # no /proc access: fall back to signal 0
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    # state is the field after the parenthesised command name
    state = stat[stat.rfind(b")") + 2 :].split(b" ", 1)[0]
    return state not in (b"Z", b"X")


def pid_is_nimbus(pid: int) -> bool:
    """True when ``pid`` runs one of the Nimbus binaries (guards against PID reuse before SIGKILL)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv0 = f.read().split(b"\0", 1)[0]
    except OSError:
        return False
    return os.path.basename(argv0).startswith(b"nimbus")


def ports_free(base: int, span: int = PORT_SPAN) -> bool:
    """True when every TCP port base..base+span-1 on 127.0.0.1 can be bound (and listened on)."""
    for port in range(base, base + span):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind((HOST, port))
            s.listen(1)
        except OSError:
            return False
        finally:
            s.close()
    return True


_claimed_bases: set[int] = set()


def find_base_port() -> int:
    """A base port (multiple of 100) whose 31 ports are all free, not used by another cluster here.

    Bases below the ephemeral range (32768+) are tried first, in random order, so two test runs on
    the same machine are unlikely to pick the same one.
    """
    low = list(range(20000, 32700, 100))
    high = list(range(32800, 60000, 100))
    rng = random.Random(os.getpid() ^ time.monotonic_ns())
    rng.shuffle(low)
    rng.shuffle(high)
    for base in low + high:
        if base in _claimed_bases:
            continue
        if ports_free(base):
            _claimed_bases.add(base)
            return base
    raise RuntimeError("no free block of 31 ports between 20000 and 60000")


def run(args: list[str], timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
    """Runs a command with a timeout, capturing text output."""
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def nimbus(*args: str, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
    """Runs ``$NIMBUS_BIN/nimbus args...``."""
    return run([str(NIMBUS_BIN / "nimbus"), *args], timeout=timeout)


def status_json(cfg: str | Path) -> dict:
    """``nimbus status --json --config cfg``, parsed; raises when the command fails."""
    result = nimbus("status", "--json", "--config", str(cfg))
    if result.returncode != 0:
        raise RuntimeError(f"nimbus status failed ({result.returncode}): {result.stderr.strip()}")
    return json.loads(result.stdout)


def process_by_name(status: dict, name: str) -> dict | None:
    for p in status["processes"]:
        if p["name"] == name:
            return p
    return None


# --------------------------------------------------------------------------------------------
# ZeroMQ client, from docs/protocol.md
# --------------------------------------------------------------------------------------------

_context: zmq.Context | None = None


def zmq_context() -> zmq.Context:
    global _context
    if _context is None:
        _context = zmq.Context()
    return _context


def new_id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


# --------------------------------------------------------------------------------------------
# request signing (docs/protocol.md, "Authentication"), written from the doc
# --------------------------------------------------------------------------------------------

SIGNING_ALGORITHM = "NIMBUS1-HMAC-SHA256"
# data directory of each cluster by its base port: a client signs with that cluster's root
# credentials (``<data>/credentials/root.json``, made by the IAM node at first start)
CLUSTER_DATA: dict[int, Path] = {}


def canonical_form(header: dict, auth: dict, body: bytes) -> bytes:
    sender = header.get("sender") or {}
    fields = [SIGNING_ALGORITHM, str(auth["timestamp"]), auth["accessKeyId"], auth.get("sessionToken") or "",
              header.get("action") or "", header.get("resource") or "", header["id"], sender.get("name") or "",
              sender.get("incarnation") or ""]
    out = b""
    for raw in [f.encode("utf-8") for f in fields] + [body]:
        out += str(len(raw)).encode() + b":" + raw + b"\n"
    return out


def signing_key(secret: str, timestamp_ms: int, service: str) -> bytes:
    day = time.strftime("%Y%m%d", time.gmtime(timestamp_ms / 1000))
    k_date = hmac.new(("NIMBUS1" + secret).encode(), day.encode(), hashlib.sha256).digest()
    return hmac.new(k_date, service.encode(), hashlib.sha256).digest()


def sign_header(header: dict, body: bytes, credentials: dict, timestamp_ms: int | None = None) -> dict:
    """Adds ``auth`` to a request header (returns it)."""
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    auth = {"accessKeyId": credentials["AccessKeyId"], "timestamp": ts}
    if credentials.get("SessionToken"):
        auth["sessionToken"] = credentials["SessionToken"]
    key = signing_key(credentials["SecretAccessKey"], ts, header["action"].split(":", 1)[0])
    auth["signature"] = hmac.new(key, canonical_form(header, auth, body), hashlib.sha256).hexdigest()
    header["auth"] = auth
    return header


def root_credentials_for(endpoint: str) -> dict | None:
    """The root credentials of the cluster ``endpoint`` belongs to, when known and present."""
    try:
        port = int(endpoint.rsplit(":", 1)[1])
    except (IndexError, ValueError):
        return None
    for base, data in CLUSTER_DATA.items():
        if base <= port < base + PORT_SPAN:
            try:
                return json.loads((data / "credentials" / "root.json").read_text())
            except (OSError, ValueError):
                return None
    return None


class NimbusClient:
    """A minimal Nimbus protocol client over one DEALER (or REQ) socket. Requests are signed with
    ``credentials`` (default: the cluster's root credentials, when the endpoint is a test
    cluster's); ``nimbus:*`` requests and those given an explicit ``auth`` are sent as they are."""

    def __init__(self, endpoint: str, socket_type: int = zmq.DEALER, credentials: dict | None = None, sign: bool = True):
        self.endpoint = endpoint
        self.credentials = credentials
        self.sign = sign
        self.socket = zmq_context().socket(socket_type)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)

    def close(self) -> None:
        self.socket.close(linger=0)

    def __enter__(self) -> "NimbusClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_frames(self, frames: list[bytes]) -> None:
        self.socket.send_multipart(frames)

    def recv_frames(self, timeout: float = 2.0) -> list[bytes] | None:
        """The next message's frames, or None when nothing arrives within ``timeout`` seconds."""
        if self.socket.poll(int(timeout * 1000), zmq.POLLIN) == 0:
            return None
        return self.socket.recv_multipart()

    def recv(self, timeout: float = 2.0) -> tuple[dict, Any]:
        """The next Nimbus message as (header, body); fails on timeout or a malformed answer."""
        frames = self.recv_frames(timeout)
        assert frames is not None, f"no answer from {self.endpoint} within {timeout} s"
        assert len(frames) == 3, f"answer from {self.endpoint} has {len(frames)} frames, not 3: {frames!r}"
        assert frames[0] == PROTOCOL_TAG, f"answer frame 0 is {frames[0]!r}, not {PROTOCOL_TAG!r}"
        header = json.loads(frames[1])
        body = json.loads(frames[2])
        assert isinstance(header, dict), f"answer header is not an object: {frames[1]!r}"
        return header, body

    def send(self, kind: str = "request", id: str | None = None, action: str | None = None,
             body: Any = None, **extra: Any) -> str:
        """Sends one well-formed message; returns its id."""
        id = id if id is not None else new_id()
        header: dict[str, Any] = {"kind": kind, "id": id}
        if action is not None:
            header["action"] = action
        header.update(extra)
        body_bytes = json.dumps(body if body is not None else {}).encode()
        if self.sign and kind == "request" and isinstance(action, str) and not action.startswith("nimbus:") \
                and "auth" not in header and isinstance(header.get("id"), str):
            credentials = self.credentials or root_credentials_for(self.endpoint)
            if credentials:
                sign_header(header, body_bytes, credentials)
        self.send_frames([PROTOCOL_TAG, json.dumps(header).encode(), body_bytes])
        return id

    def request(self, action: str, body: Any = None, timeout: float = 2.0, **extra: Any) -> tuple[dict, Any]:
        """Sends a request and returns the answer (reply or error) carrying its id."""
        id = self.send("request", action=action, body=body, **extra)
        header, answer = self.recv(timeout)
        assert header.get("id") == id, f"answer id {header.get('id')!r} does not match request id {id!r}"
        return header, answer


def ask(endpoint: str, action: str, body: Any = None, timeout: float = 2.0) -> tuple[dict, Any]:
    """One request on a fresh DEALER socket."""
    with NimbusClient(endpoint) as client:
        return client.request(action, body, timeout=timeout)


def ask_health(endpoint: str, timeout: float = 2.0) -> tuple[dict, dict]:
    """``nimbus:Health`` on a fresh DEALER socket; returns (header, body)."""
    return ask(endpoint, "nimbus:Health", {}, timeout=timeout)


def sink_mails(directory: Path, to: str | None = None) -> list[email.message.EmailMessage]:
    """Every mail a mail sink kept in ``directory`` (to ``to`` only, when given): one mbox file per
    recipient (mboxrd: a "From " line before each mail, body lines starting ">*From " quoted with one
    more ">"), read under a shared flock, since the sink appends each mail under an exclusive one."""
    found = []
    for path in sorted(directory.glob("*.mbox")):
        with open(path, "rb") as mailbox:
            fcntl.flock(mailbox, fcntl.LOCK_SH)
            data = mailbox.read()
        for chunk in re.split(rb"(?:\A|\n\n)From [^\n]*\n", data)[1:]:
            message = email.message_from_bytes(re.sub(rb"(?m)^>(>*From )", rb"\1", chunk), policy=email.policy.default)
            if to is None or message["X-Nimbus-Rcpt"] == to:
                found.append(message)
    return found


# --------------------------------------------------------------------------------------------
# SQS over the wire (the queue broker answers `sqs:<Operation>` in AWS's SQS JSON shapes)
# --------------------------------------------------------------------------------------------

ACCOUNT = "000000000000"
REGION = "us-east-1"
SQS_TIMEOUT = 10.0  # seconds to wait for a broker answer (long polls add their wait on top)


def queue_url(name: str) -> str:
    return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


def md5_hex(text: str | bytes) -> str:
    """SQS's MD5OfMessageBody: hex MD5 of the UTF-8 body."""
    return hashlib.md5(text.encode("utf-8") if isinstance(text, str) else text).hexdigest()


def md5_of_attributes(attributes: dict[str, dict]) -> str:
    """SQS's MD5OfMessageAttributes, computed independently from the AWS documentation: for each
    attribute, sorted by name, the length-prefixed (4-byte big-endian) name and data type, a transport
    byte (1 String/Number, 2 Binary) and the length-prefixed value bytes."""
    def prefixed(data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + data

    out = b""
    for name in sorted(attributes):
        value = attributes[name]
        out += prefixed(name.encode()) + prefixed(value["DataType"].encode())
        if value["DataType"].split(".", 1)[0] == "Binary":
            out += b"\x02" + prefixed(base64.b64decode(value["BinaryValue"]))
        else:
            out += b"\x01" + prefixed(value["StringValue"].encode())
    return hashlib.md5(out).hexdigest()


class SQSError(Exception):
    """An `error` answer from the broker: ``code`` and ``message`` as the body carries them."""

    def __init__(self, code: str, message: str, operation: str):
        super().__init__(f"{operation}: {code}: {message}")
        self.code = code
        self.message = message


class SQS:
    """An SQS client over one DEALER socket to the queue broker (one per thread)."""

    def __init__(self, endpoint: str, credentials: dict | None = None):
        self.client = NimbusClient(endpoint, credentials=credentials)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "SQS":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def answer(self, operation: str, body: Any = None, timeout: float = SQS_TIMEOUT) -> tuple[str, Any]:
        """(kind, body) of the answer to ``sqs:<operation>`` (or a full ``service:Op`` action)."""
        action = operation if ":" in operation else f"sqs:{operation}"
        header, answer = self.client.request(action, body if body is not None else {}, timeout=timeout)
        return header["kind"], answer

    def __call__(self, operation: str, body: Any = None, timeout: float = SQS_TIMEOUT) -> Any:
        """The reply body; raises SQSError on an error answer."""
        kind, answer = self.answer(operation, body, timeout)
        if kind == "error":
            raise SQSError(answer.get("code", "?"), answer.get("message", ""), operation)
        assert kind == "reply", f"{operation}: answer kind {kind!r}: {answer!r}"
        return answer

    def error(self, operation: str, body: Any = None, timeout: float = SQS_TIMEOUT) -> str:
        """The error code of an answer that must be an error."""
        kind, answer = self.answer(operation, body, timeout)
        assert kind == "error", f"{operation} {body!r}: expected an error, got {kind}: {answer!r}"
        assert set(answer) >= {"code", "message"}, answer
        return answer["code"]

    # -- conveniences --------------------------------------------------------------------------

    def receive(self, url: str, max_messages: int = 10, wait: int = 0, visibility: int | None = None,
                attributes: list[str] | None = None, message_attributes: list[str] | None = None) -> list[dict]:
        body: dict[str, Any] = {"QueueUrl": url, "MaxNumberOfMessages": max_messages, "WaitTimeSeconds": wait,
                                "AttributeNames": attributes if attributes is not None else ["All"]}
        if visibility is not None:
            body["VisibilityTimeout"] = visibility
        if message_attributes is not None:
            body["MessageAttributeNames"] = message_attributes
        return self("ReceiveMessage", body, timeout=SQS_TIMEOUT + wait).get("Messages") or []

    def drain(self, url: str, limit: int = 5000) -> list[dict]:
        """Receives (and deletes) every visible message of a queue; returns them."""
        seen: list[dict] = []
        while len(seen) < limit:
            batch = self.receive(url, 10, wait=0, visibility=60)
            if not batch:
                return seen
            seen += batch
            entries = [{"Id": f"d{i}", "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
            result = self("DeleteMessageBatch", {"QueueUrl": url, "Entries": entries})
            assert not result.get("Failed"), result
        raise AssertionError(f"queue {url} did not drain within {limit} messages")


def wait_for_queue(cluster: "Cluster", name: str = "POC-Queue", timeout: float = 15.0) -> str:
    """Waits until the broker answers GetQueueUrl for ``name`` (the stack is applied after start)."""
    def check():
        with SQS(cluster.endpoint("queue")) as sqs:
            return sqs("GetQueueUrl", {"QueueName": name}, timeout=2.0)["QueueUrl"]
    return wait_until(check, timeout=timeout, interval=0.2, message=f"queue {name} exists")


# --------------------------------------------------------------------------------------------
# clusters
# --------------------------------------------------------------------------------------------


@dataclass
class Cluster:
    """One Nimbus cluster's config (and, once started, what we know of its processes)."""

    directory: Path
    base: int
    # extra keys for the config's `gateway:` section (rateLimit, burst, queueTimeoutMilliseconds, ...)
    gateway_settings: dict[str, Any] = field(default_factory=dict)
    # other top-level sections of the config, e.g. {"table": {"streamShards": 4}}
    sections: dict[str, dict[str, Any]] = field(default_factory=dict)
    # a stack file other than the lab's (e.g. with shorter timeouts)
    stack: Path = STACK_FILE
    # instances per worker kind (default 1 each), e.g. {"ingest-worker": 0} for tests that read POC-Queue
    instances: dict[str, int] = field(default_factory=dict)
    config: Path = field(init=False)
    known_pids: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        CLUSTER_DATA[self.base] = self.directory / "data"
        self.config = self.directory / "nimbus.yaml"
        self.config.write_text(self.yaml())

    def port(self, name: str) -> int:
        """The port a process name binds: supervisor, a service, or a worker instance (ingest-worker-3)."""
        if name == "supervisor":
            return self.base
        if name in SERVICE_OFFSETS:
            return self.base + SERVICE_OFFSETS[name]
        kind, _, index = name.rpartition("-")
        if kind in SERVICE_OFFSETS and index.isdigit():
            return self.base + SERVICE_OFFSETS[kind] + int(index) - 1
        raise KeyError(name)

    def endpoint(self, name: str) -> str:
        return f"tcp://{HOST}:{self.port(name)}"

    @property
    def http_port(self) -> int:
        """The gateway's HTTP port."""
        return self.base + GATEWAY_HTTP_OFFSET

    @property
    def smtp_port(self) -> int:
        """The mail sink's SMTP port."""
        return self.base + SMTP_OFFSET

    @property
    def mail_directory(self) -> Path:
        """Where the cluster's mail sink keeps received mail (an mbox file per recipient; ``sink_mails``)."""
        return self.directory / "data" / "mail"

    @property
    def edge_url(self) -> str:
        """The AWS-compatible endpoint's URL, e.g. ``http://127.0.0.1:20030`` (what awscli and boto3 take)."""
        return f"http://{HOST}:{self.base + EDGE_HTTP_OFFSET}"

    def root_credentials(self) -> dict:
        """The account root's credentials (``<data>/credentials/root.json``): AccessKeyId, SecretAccessKey."""
        return json.loads((self.directory / "data" / "credentials" / "root.json").read_text())

    @property
    def http_url(self) -> str:
        """The gateway's base URL, e.g. ``http://127.0.0.1:20006``."""
        return f"http://{HOST}:{self.http_port}"

    def yaml(self) -> str:
        lines = [
            "# written by Tests/integration/conftest.py",
            f"dataDirectory: {self.directory / 'data'}",
            f"stack: {json.dumps(str(self.stack))}",
            "supervisor:",
            f"  endpoint: tcp://{HOST}:{self.base}",
            "services:",
        ]
        if "heartbeat" not in self.sections:
            lines.insert(5, "heartbeat: {intervalMilliseconds: 1000, liveness: 3}")
        for kind, offset in SERVICE_OFFSETS.items():
            instances = f", instances: {self.instances.get(kind, 1)}" if kind.endswith("-worker") else ""
            lines.append(f"  {kind}: {{ endpoint: tcp://{HOST}:{self.base + offset}{instances} }}")
        gateway = {"http": f"{HOST}:{self.http_port}", **self.gateway_settings}
        lines.append("gateway: {" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in gateway.items()) + "}")
        if "edge" not in self.sections:
            lines.append(f"edge: {{http: \"{HOST}:{self.base + EDGE_HTTP_OFFSET}\"}}")
        sections = {**self.sections}
        # mail goes to this cluster's own sink; confirmation links point at its gateway
        sections["notifier"] = {"smtpPort": self.smtp_port, "publicBaseURL": self.http_url, **sections.get("notifier", {})}
        for section, values in sections.items():
            lines.append(f"{section}: " + "{" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in values.items()) + "}")
        return "\n".join(lines) + "\n"

    # -- CLI --------------------------------------------------------------------------------

    def nimbus(self, *args: str, timeout: float = CLI_TIMEOUT) -> subprocess.CompletedProcess:
        return nimbus(*args, "--config", str(self.config), timeout=timeout)

    def status(self) -> dict:
        status = status_json(self.config)
        self.remember(status)
        return status

    def remember(self, status: dict) -> None:
        self.known_pids.add(int(status["supervisorPID"]))
        for p in status["processes"]:
            if p.get("pid"):
                self.known_pids.add(int(p["pid"]))

    def up(self) -> subprocess.CompletedProcess:
        result = self.nimbus("up", "--timeout", str(UP_TIMEOUT), timeout=UP_TIMEOUT + 30)
        try:
            # whatever happened, learn the pids so teardown can clean up
            self.status()
        except Exception:  # noqa: BLE001
            pass
        return result

    def down(self) -> list[int]:
        """``nimbus down``, then the pids (of all ever seen) that are still alive, SIGKILLed."""
        try:
            self.status()
        except Exception:  # noqa: BLE001 - not running (e.g. the chaos test killed it)
            pass
        result = self.nimbus("down", timeout=DOWN_TIMEOUT)
        self.down_result = result
        survivors: list[int] = []
        try:
            wait_until(lambda: not any(pid_alive(p) for p in self.known_pids), timeout=5,
                       message="every process gone after nimbus down")
        except AssertionError:
            pass
        for pid in sorted(self.known_pids):
            if pid_alive(pid) and pid_is_nimbus(pid):
                survivors.append(pid)
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        return survivors


def quick_redelivery_stack(tmp: Path) -> Path:
    """A copy of the lab's stack whose POC-Queue has a 3 s visibility timeout, so that messages held
    by a killed worker come back soon (for tests that kill workers under load)."""
    stack = tmp / "stack.yaml"
    stack.write_text(STACK_FILE.read_text().replace("VisibilityTimeout: 30", "VisibilityTimeout: 3"))
    return stack


def start_cluster(tmp: Path, sections: dict[str, dict[str, Any]] | None = None, stack: Path = STACK_FILE,
                  instances: dict[str, int] | None = None, **gateway_settings: Any) -> Cluster:
    cluster = Cluster(tmp, find_base_port(), gateway_settings, sections or {}, stack, instances or {})
    result = cluster.up()
    if result.returncode != 0:
        survivors = cluster.down()
        pytest.fail(f"nimbus up failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n"
                    f"(survivors killed: {survivors})")
    return cluster


def stop_cluster(cluster: Cluster) -> None:
    survivors = cluster.down()
    result = cluster.down_result
    problems = []
    if result.returncode != 0:
        problems.append(f"nimbus down exited {result.returncode}: {result.stdout}{result.stderr}")
    if survivors:
        problems.append(f"processes outlived nimbus down (SIGKILLed now): {survivors}")
    if problems:
        pytest.fail("; ".join(problems))


@pytest.fixture(scope="module")
def cluster(request):
    """A running cluster for one test module; stopped (and checked by PID) afterwards. A module sets
    ``CLUSTER_INSTANCES`` (e.g. ``{"ingest-worker": 0}``) to change how many workers run."""
    with tempfile.TemporaryDirectory(prefix="nimbus-it-") as tmp:
        c = start_cluster(Path(tmp), instances=getattr(request.module, "CLUSTER_INSTANCES", None))
        try:
            yield c
        finally:
            stop_cluster(c)


@pytest.fixture
def unstarted_cluster(tmp_path):
    """A cluster config on free ports that is never started (for CLI failure paths)."""
    c = Cluster(tmp_path, find_base_port())
    yield c
    # in case a test started it by mistake
    if c.nimbus("status").returncode == 0:
        c.status()
        stop_cluster(c)


def pytest_configure(config):
    config.addinivalue_line("markers", "multihost: the cluster across network namespaces with network faults (test_multihost.py; needs root)")


def pytest_sessionfinish(session, exitstatus):
    global _context
    if _context is not None:
        _context.destroy(linger=0)
        _context = None


def create_topic_subscriber_queue(sqs: "SQS", name: str) -> str:
    """A queue POC-Topic may deliver to: as in AWS, its access policy must let sns.amazonaws.com send
    (the notifier delivers with SNS's service identity). Returns the queue's ARN."""
    arn = queue_arn(name)
    policy = {"Version": "2012-10-17", "Statement": [{"Sid": "topic-delivery", "Effect": "Allow",
              "Principal": {"Service": "sns.amazonaws.com"}, "Action": "sqs:SendMessage", "Resource": arn}]}
    sqs("sqs:CreateQueue", {"QueueName": name, "Attributes": {"Policy": json.dumps(policy)}})
    return arn


def scan_all(client: "SQS", table: str = "orders") -> list[dict]:
    """Every item of a table, following LastEvaluatedKey (bounded)."""
    items: list[dict] = []
    start = None
    for _ in range(1000):
        request: dict[str, Any] = {"TableName": table}
        if start:
            request["ExclusiveStartKey"] = start
        page = client("dynamodb:Scan", request)
        items += page["Items"]
        start = page.get("LastEvaluatedKey")
        if not start:
            return items
    raise AssertionError(f"scanning {table} did not end")

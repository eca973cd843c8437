"""The notifier node (SNS, POC-Topic) over the wire, delivering email through ``nimbus-mail-sink``.

Each test module run starts its own ``nimbus-mail-sink`` and ``nimbus-notifier`` (no supervisor) on
free ports with their own data directory; mail arrives in the sink's folder, appended to an mbox file
per recipient (each mail with an ``X-Nimbus-Rcpt`` header; ``sink_mails`` reads them). "Everything was delivered" is read from the node's
health (``outboxDepth`` and ``sending`` both 0), so counting mails needs no sleeps.
"""

from __future__ import annotations

import contextlib
import email
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from conftest import HOST, NIMBUS_BIN, REGION, ACCOUNT, SQS, ask_health, find_base_port, pid_alive, sink_mails, wait_until

SNS_TIMEOUT = 10.0
CONFIRM_SUBJECT = "AWS Notification - Subscription Confirmation"


# ------------------------------------------------------------------------------------------------
# processes
# ------------------------------------------------------------------------------------------------


def port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


class Process:
    """One child process we started, stopped by its PID."""

    def __init__(self, args: list[str], log: Path, env: dict[str, str] | None = None):
        self.log = log
        self.handle = open(log, "ab")
        self.popen = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.handle, stderr=subprocess.STDOUT,
                                      env=None if env is None else {**os.environ, **env})

    @property
    def pid(self) -> int:
        return self.popen.pid

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.popen.poll() is None:
            os.kill(self.popen.pid, sig)
        try:
            self.popen.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.kill(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)
        self.handle.close()

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


class MailSink:
    def __init__(self, port: int, directory: Path, log: Path):
        self.port = port
        self.directory = directory
        self.log = log
        self.process: Process | None = None

    def start(self) -> None:
        # The sink is a cluster node: its SMTP port and folder come from the notifier section of the
        # config, its control socket from --bind (a free port next to the SMTP one).
        config = self.log.with_suffix(".yaml")
        config.write_text(f"dataDirectory: {self.directory.parent}\niam: {{enforce: false}}\n"
                          f"notifier: {{smtpHost: {HOST}, smtpPort: {self.port}, mailSinkDirectory: {json.dumps(str(self.directory))}}}\n")
        self.process = Process([str(NIMBUS_BIN / "nimbus-mail-sink"), "--config", str(config), "--bind", f"tcp://{HOST}:{self.port + 1}",
                                "--log-stderr"], self.log)
        wait_until(lambda: port_open(self.port), timeout=10, message=f"mail sink listening on {self.port}")

    def stop(self) -> None:
        if self.process:
            self.process.stop()
            self.process = None
        wait_until(lambda: not port_open(self.port), timeout=5, message="mail sink stopped")

    def mails(self, to: str | None = None) -> list[email.message.EmailMessage]:
        return sink_mails(self.directory, to)


class Notifier:
    def __init__(self, directory: Path, base: int, smtp_port: int, stack: str = "", smtp: dict | None = None):
        """``smtp``: more notifier settings (smtpTLS, smtpCAFile, smtpUsername, ...)."""
        self.directory = directory
        self.port = base + 4
        self.endpoint = f"tcp://{HOST}:{self.port}"
        self.config = directory / "nimbus.yaml"
        self.config.write_text("\n".join([
            f"dataDirectory: {directory / 'data'}",
            f"stack: {json.dumps(stack)}",
            "supervisor:",
            f"  endpoint: tcp://{HOST}:{base}",
            "services:",
            *[f"  {kind}: {{ endpoint: tcp://{HOST}:{base + offset} }}"
              for kind, offset in [("iam", 1), ("queue", 2), ("table", 3), ("notifier", 4), ("gateway", 5)]],
            f"  ingest-worker: {{ endpoint: tcp://{HOST}:{base + 10} }}",
            # The tests start their own SMTP server; none is supervised (and smtpTLS needs a relay).
            f"  mail-sink: {{ endpoint: tcp://{HOST}:{base + 9}, instances: 0 }}",
            f"  stream-worker: {{ endpoint: tcp://{HOST}:{base + 20} }}",
            f"gateway: {{http: \"{HOST}:{base + 6}\"}}",
            f"notifier: {{smtpHost: {HOST}, smtpPort: {smtp_port}, fromAddress: orders@nimbus.test, "
            f"publicBaseURL: \"http://{HOST}:{base + 6}\""
            + "".join(f", {key}: {json.dumps(value)}" for key, value in (smtp or {}).items()) + "}",
            # A lone notifier, no IAM node to sign against: SNS's semantics are tested here,
            # authorization in test_authz.py and test_pipeline.py.
            "iam: {enforce: false}",
        ]) + "\n")
        self.process: Process | None = None

    def start(self, env: dict[str, str] | None = None) -> None:
        """``env``: more environment for the process (SSL_CERT_FILE, to trust a test's CA)."""
        self.process = Process([str(NIMBUS_BIN / "nimbus-notifier"), "--config", str(self.config), "--log-stderr"],
                               self.directory / "notifier.log", env)
        wait_until(lambda: ask_health(self.endpoint, timeout=1.0)[1]["status"] == "ok", timeout=20, message="notifier healthy")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process:
            self.process.kill(sig)
            self.process = None

    def health(self) -> dict:
        return ask_health(self.endpoint, timeout=2.0)[1]["details"]

    def wait_idle(self, timeout: float = 20) -> dict:
        """Waits until nothing is queued or being sent; returns the health details."""
        return wait_until(lambda: (lambda d: d if d["outboxDepth"] == "0" and d["sending"] == "0" else None)(self.health()),
                          timeout=timeout, message="notifier outbox empty")


class SNS(SQS):
    """An SNS client over one DEALER socket (the SQS helper speaks any ``service:Op``)."""

    def __call__(self, operation: str, body=None, timeout: float = SNS_TIMEOUT):
        return super().__call__(f"sns:{operation}", body, timeout)

    def error(self, operation: str, body=None, timeout: float = SNS_TIMEOUT) -> str:
        return super().error(f"sns:{operation}", body, timeout)


@pytest.fixture(scope="module")
def env():
    with tempfile.TemporaryDirectory(prefix="nimbus-notifier-") as tmp:
        tmp = Path(tmp)
        base = find_base_port()
        sink = MailSink(base + 7, tmp / "mail", tmp / "sink.log")
        node = Notifier(tmp, base, sink.port)
        try:
            sink.start()
            node.start()
            yield sink, node
        finally:
            node.kill(signal.SIGTERM)
            sink.stop()


@pytest.fixture
def sns(env):
    with SNS(env[1].endpoint) as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def address(prefix: str = "user") -> str:
    return f"{unique(prefix)}@example.com"


def token_from(message: email.message.EmailMessage) -> str:
    match = re.search(r"Token: ([0-9a-f]{64})", message.get_content().replace("\r\n", "\n"))
    assert match, message.get_content().replace("\r\n", "\n")
    return match.group(1)


def subscribe_confirmed(sns: SNS, sink: MailSink, topic: str, to: str) -> str:
    assert sns("Subscribe", {"TopicArn": topic, "Protocol": "email", "Endpoint": to})["SubscriptionArn"] == "pending confirmation"
    confirmation = wait_until(lambda: sink.mails(to), timeout=15, message=f"confirmation mail to {to}")[0]
    return sns("ConfirmSubscription", {"TopicArn": topic, "Token": token_from(confirmation)})["SubscriptionArn"]


# ------------------------------------------------------------------------------------------------
# tests
# ------------------------------------------------------------------------------------------------


def test_subscribe_confirm_publish_delivers_exactly_one_mail(env, sns):
    sink, node = env
    name = unique("topic")
    topic = sns("CreateTopic", {"Name": name})["TopicArn"]
    assert topic == f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}"
    assert sns("CreateTopic", {"Name": name})["TopicArn"] == topic  # idempotent
    to = address()
    assert sns("Subscribe", {"TopicArn": topic, "Protocol": "email", "Endpoint": to})["SubscriptionArn"] == "pending confirmation"
    confirmation = wait_until(lambda: sink.mails(to), timeout=15, message="confirmation mail")[0]
    assert confirmation["Subject"] == CONFIRM_SUBJECT
    assert confirmation["To"] == f"<{to}>" or to in confirmation["To"]
    assert "orders@nimbus.test" in confirmation["From"]
    assert confirmation["Message-ID"] and confirmation["Date"]
    assert confirmation.get_content_type() == "text/plain"
    text = confirmation.get_content().replace("\r\n", "\n")
    assert "You have chosen to subscribe to the topic" in text and topic in text
    token = token_from(confirmation)
    assert f"/sns/confirm?TopicArn=arn%3Aaws%3Asns%3A{REGION}%3A{ACCOUNT}%3A{name}&Token={token}" in text

    arn = sns("ConfirmSubscription", {"TopicArn": topic, "Token": token})["SubscriptionArn"]
    assert arn.startswith(topic + ":")
    attributes = sns("GetTopicAttributes", {"TopicArn": topic})["Attributes"]
    assert attributes["SubscriptionsConfirmed"] == "1" and attributes["SubscriptionsPending"] == "0"

    message_id = sns("Publish", {"TopicArn": topic, "Message": "order 42: latex gloves\n.\nend", "Subject": "New order"})["MessageId"]
    assert uuid.UUID(message_id)
    node.wait_idle()
    mails = sink.mails(to)
    assert len(mails) == 2, [m["Subject"] for m in mails]
    notification = [m for m in mails if m["Subject"] == "New order"][0]
    body = notification.get_content().replace("\r\n", "\n")
    assert body.startswith("order 42: latex gloves\n.\nend\n")  # the lone "." survived SMTP
    assert "/sns/unsubscribe?SubscriptionArn=" in body


def test_unconfirmed_subscriber_gets_only_the_confirmation(env, sns):
    sink, node = env
    topic = sns("CreateTopic", {"Name": unique("topic")})["TopicArn"]
    pending, confirmed = address("pending"), address("confirmed")
    subscribe_confirmed(sns, sink, topic, confirmed)
    sns("Subscribe", {"TopicArn": topic, "Protocol": "email", "Endpoint": pending})
    listed = sns("ListSubscriptionsByTopic", {"TopicArn": topic})["Subscriptions"]
    assert sorted(s["SubscriptionArn"] == "PendingConfirmation" for s in listed) == [False, True]
    sns("Publish", {"TopicArn": topic, "Message": "hello"})
    node.wait_idle()
    assert [m["Subject"] for m in sink.mails(pending)] == [CONFIRM_SUBJECT]
    assert sorted(m["Subject"] for m in sink.mails(confirmed)) == sorted(["AWS Notification Message", CONFIRM_SUBJECT])


def test_message_structure_json_as_the_lab_lambda_publishes(env, sns):
    sink, node = env
    topic = sns("CreateTopic", {"Name": unique("topic")})["TopicArn"]
    plain, tailored = address("plain"), address("tailored")
    subscribe_confirmed(sns, sink, topic, plain)
    sns("SetTopicAttributes", {"TopicArn": topic, "AttributeName": "DisplayName", "AttributeValue": "Orders"})
    record = json.dumps({"orderID": {"S": "o-1"}, "item": {"S": "latex gloves"}})
    # POC-Lambda-2: TargetArn, Message=json.dumps({'default': json.dumps(new_record)}), MessageStructure='json'.
    sns("Publish", {"TargetArn": topic, "Message": json.dumps({"default": record}), "MessageStructure": "json"})
    node.wait_idle()
    mail = [m for m in sink.mails(plain) if m["Subject"] != CONFIRM_SUBJECT][0]
    assert mail.get_content().replace("\r\n", "\n").startswith(record + "\n")
    assert "Orders" in mail["From"]
    # A per-protocol key wins over default for that protocol.
    subscribe_confirmed(sns, sink, topic, tailored)
    sns("Publish", {"TopicArn": topic, "Message": json.dumps({"default": "d", "email": "for mail"}), "MessageStructure": "json"})
    node.wait_idle()
    assert [m.get_content().replace("\r\n", "\n").split("\n")[0] for m in sink.mails(tailored) if m["Subject"] != CONFIRM_SUBJECT] == ["for mail"]


def test_duplicate_deduplication_id_delivers_once(env, sns):
    sink, node = env
    topic = sns("CreateTopic", {"Name": unique("topic")})["TopicArn"]
    to = address()
    subscribe_confirmed(sns, sink, topic, to)
    key = unique("order")
    first = sns("Publish", {"TopicArn": topic, "Message": "once", "MessageDeduplicationId": key})["MessageId"]
    second = sns("Publish", {"TopicArn": topic, "Message": "once", "MessageDeduplicationId": key})["MessageId"]
    assert first == second
    node.wait_idle()
    assert len([m for m in sink.mails(to) if m["Subject"] != CONFIRM_SUBJECT]) == 1


def test_publish_batch(env, sns):
    sink, node = env
    topic = sns("CreateTopic", {"Name": unique("topic")})["TopicArn"]
    to = address()
    subscribe_confirmed(sns, sink, topic, to)
    result = sns("PublishBatch", {"TopicArn": topic, "PublishBatchRequestEntries": [
        {"Id": "a", "Message": "one"}, {"Id": "b", "Message": ""}, {"Id": "c", "Message": "three", "Subject": "Third"}]})
    assert [e["Id"] for e in result["Successful"]] == ["a", "c"]
    assert [(e["Id"], e["Code"], e["SenderFault"]) for e in result["Failed"]] == [("b", "InvalidParameter", True)]
    node.wait_idle()
    assert len([m for m in sink.mails(to) if m["Subject"] != CONFIRM_SUBJECT]) == 2
    assert sns.error("PublishBatch", {"TopicArn": topic, "PublishBatchRequestEntries": []}) == "EmptyBatchRequest"
    entries = [{"Id": f"e{i}", "Message": "m"} for i in range(11)]
    assert sns.error("PublishBatch", {"TopicArn": topic, "PublishBatchRequestEntries": entries}) == "TooManyEntriesInBatchRequest"


def test_topics_subscriptions_and_unsubscribe(env, sns):
    sink, node = env
    name = unique("topic")
    topic = sns("CreateTopic", {"Name": name})["TopicArn"]
    assert topic in [t["TopicArn"] for t in sns("ListTopics", {})["Topics"]]
    to = address()
    arn = subscribe_confirmed(sns, sink, topic, to)
    assert arn in [s["SubscriptionArn"] for s in sns("ListSubscriptions", {})["Subscriptions"]]
    sns("Unsubscribe", {"SubscriptionArn": arn})
    assert sns("ListSubscriptionsByTopic", {"TopicArn": topic})["Subscriptions"] == []
    assert sns.error("Unsubscribe", {"SubscriptionArn": arn}) == "NotFound"
    sns("Publish", {"TopicArn": topic, "Message": "nobody hears this"})
    node.wait_idle()
    assert [m["Subject"] for m in sink.mails(to)] == [CONFIRM_SUBJECT]
    sns("DeleteTopic", {"TopicArn": topic})
    assert topic not in [t["TopicArn"] for t in sns("ListTopics", {})["Topics"]]
    assert sns.error("GetTopicAttributes", {"TopicArn": topic}) == "NotFound"


def test_bad_inputs_get_aws_errors(env, sns):
    topic = sns("CreateTopic", {"Name": unique("topic")})["TopicArn"]
    missing = f"arn:aws:sns:{REGION}:{ACCOUNT}:{unique('missing')}"
    cases = [
        ("CreateTopic", {"Name": "bad name!"}, "InvalidParameter"),
        ("CreateTopic", {"Name": ""}, "InvalidParameter"),
        ("CreateTopic", {}, "MissingParameter"),
        ("CreateTopic", {"Name": 5}, "InvalidParameterValue"),
        ("Publish", {"TopicArn": missing, "Message": "m"}, "NotFound"),
        ("Publish", {"TopicArn": "not-an-arn", "Message": "m"}, "InvalidParameter"),
        ("Publish", {"Message": "m"}, "InvalidParameter"),
        ("Publish", {"TopicArn": topic}, "InvalidParameter"),
        ("Publish", {"TopicArn": topic, "Message": ""}, "InvalidParameter"),
        ("Publish", {"TopicArn": topic, "Message": "x" * 262_145}, "InvalidParameter"),
        ("Publish", {"TopicArn": topic, "Message": "m", "Subject": "a\nb"}, "InvalidParameter"),
        ("Publish", {"TopicArn": topic, "Message": "m", "Subject": "s" * 101}, "InvalidParameter"),
        ("Publish", {"TopicArn": topic, "Message": "{\"email\": \"x\"}", "MessageStructure": "json"}, "InvalidParameter"),
        ("Publish", {"TopicArn": topic, "Message": "not json", "MessageStructure": "json"}, "InvalidParameter"),
        ("Subscribe", {"TopicArn": topic, "Protocol": "email", "Endpoint": "not-an-address"}, "InvalidParameter"),
        ("Subscribe", {"TopicArn": topic, "Protocol": "sms", "Endpoint": "+15555550100"}, "InvalidParameter"),
        ("Subscribe", {"TopicArn": topic, "Protocol": "sqs", "Endpoint": "POC-Queue"}, "InvalidParameter"),
        ("Subscribe", {"TopicArn": missing, "Protocol": "email", "Endpoint": "a@example.com"}, "NotFound"),
        ("ConfirmSubscription", {"TopicArn": topic, "Token": "0" * 64}, "InvalidParameter"),
        ("SetTopicAttributes", {"TopicArn": topic, "AttributeName": "Bogus", "AttributeValue": "x"}, "InvalidParameter"),
        ("GetTopicAttributes", {"TopicArn": missing}, "NotFound"),
        ("GetSubscriptionAttributes", {"SubscriptionArn": topic + ":00000000-0000-0000-0000-000000000000"}, "NotFound"),
        ("GetSubscriptionAttributes", {"SubscriptionArn": "not-an-arn"}, "InvalidParameter"),
        ("SetSubscriptionAttributes", {"SubscriptionArn": topic + ":00000000-0000-0000-0000-000000000000",
                                       "AttributeName": "RawMessageDelivery", "AttributeValue": "true"}, "NotFound"),
        ("SetSubscriptionAttributes", {"SubscriptionArn": topic + ":x"}, "MissingParameter"),
    ]
    for operation, body, code in cases:
        assert sns.error(operation, body) == code, (operation, body)
    # Still healthy after all that.
    assert sns("GetTopicAttributes", {"TopicArn": topic})["Attributes"]["TopicArn"] == topic


def test_outbox_survives_sigkill_while_smtp_is_down(env, sns):
    """Publish while the SMTP server is down, SIGKILL the notifier, restart it, bring SMTP back: the
    acknowledged message is delivered (it was in the outbox on disk before Publish answered)."""
    sink, node = env
    topic = sns("CreateTopic", {"Name": unique("topic")})["TopicArn"]
    to = address("durable")
    subscribe_confirmed(sns, sink, topic, to)
    node.wait_idle()
    sink.stop()
    sns("Publish", {"TopicArn": topic, "Message": "survives a crash", "Subject": "Durable"})
    # The first attempt fails (connection refused); the delivery stays in the outbox.
    wait_until(lambda: node.health()["outboxDepth"] == "1" and "will retry" in node.process.log.read_text(),
               timeout=15, message="a failed attempt is logged")
    old_pid = node.process.pid
    node.kill(signal.SIGKILL)
    assert not pid_alive(old_pid)
    node.start()
    assert node.health()["outboxDepth"] == "1"
    sink.start()
    # Backoff is at most a few seconds here (1 s, 2 s, 4 s ... since the publish).
    mail = wait_until(lambda: [m for m in sink.mails(to) if m["Subject"] == "Durable"], timeout=75, message="the mail after restart")
    assert mail[0].get_content().replace("\r\n", "\n").startswith("survives a crash\n")
    node.wait_idle()
    assert len([m for m in sink.mails(to) if m["Subject"] == "Durable"]) == 1


def test_stack_creates_poc_topic_and_its_email_subscription(tmp_path):
    stack = tmp_path / "stack.yaml"
    stack.write_text("""
Parameters:
  NotificationEmail: {Type: String, Default: "lab@example.com"}
Resources:
  POCTopic:
    Type: AWS::SNS::Topic
    Properties: {TopicName: POC-Topic}
  POCTopicEmailSubscription:
    Type: AWS::SNS::Subscription
    Properties: {TopicArn: !Ref POCTopic, Protocol: email, Endpoint: !Ref NotificationEmail}
  POCTopicRawQueueSubscription:
    Type: AWS::SNS::Subscription
    Properties: {TopicArn: !Ref POCTopic, Protocol: sqs, Endpoint: "arn:aws:sqs:us-east-1:000000000000:raw", RawMessageDelivery: true}
""")
    base = find_base_port()
    sink = MailSink(base + 7, tmp_path / "mail", tmp_path / "sink.log")
    node = Notifier(tmp_path, base, sink.port, stack=str(stack))
    try:
        sink.start()
        node.start()
        topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:POC-Topic"
        with SNS(node.endpoint) as sns:
            subscriptions = wait_until(lambda: (lambda s: s if len(s) == 2 else None)(
                sns("ListSubscriptionsByTopic", {"TopicArn": topic})["Subscriptions"]), timeout=10, message="stack applied")
            queue_arn = next(s["SubscriptionArn"] for s in subscriptions if s["Protocol"] == "sqs")
            assert sns("GetSubscriptionAttributes", {"SubscriptionArn": queue_arn})["Attributes"]["RawMessageDelivery"] == "true"
            confirmation = wait_until(lambda: sink.mails("lab@example.com"), timeout=15, message="confirmation")[0]
            arn = sns("ConfirmSubscription", {"TopicArn": topic, "Token": token_from(confirmation)})["SubscriptionArn"]
            # A restart applies the stack again without a second subscription or confirmation mail.
            node.kill(signal.SIGTERM)
            node.start()
            node.wait_idle()
            assert sorted(s["SubscriptionArn"] for s in sns("ListSubscriptionsByTopic", {"TopicArn": topic})["Subscriptions"]) == sorted([arn, queue_arn])
            assert len(sink.mails("lab@example.com")) == 1
    finally:
        node.kill(signal.SIGTERM)
        sink.stop()


@contextlib.contextmanager
def tarpit(port: int):
    """A listener on ``port`` that accepts connections and never says a word; yields the list of
    the connections it holds (closed on exit)."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, port))
    listener.listen(16)
    held: list[socket.socket] = []

    def swallow() -> None:
        while True:
            try:
                held.append(listener.accept()[0])  # accepted, never answered
            except OSError:
                return

    threading.Thread(target=swallow, daemon=True).start()
    try:
        yield held
    finally:
        listener.close()
        for connection in held:
            connection.close()


@contextlib.contextmanager
def http_endpoint(port: int, tls: "ssl.SSLContext | None" = None, http10: bool = False):
    """An HTTP endpoint on ``port`` (HTTPS with ``tls``) that answers every POST 200; yields the list
    of the (lower-cased headers, JSON body) it was sent. ``http10``: answer as HTTP/1.0 without a
    length and close the connection (over TLS without close_notify, as many servers do)."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    received: list[tuple[dict, dict]] = []

    class Endpoint(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0" if http10 else "HTTP/1.1"

        def do_POST(self):  # noqa: N802 - http.server's naming
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(200)
            if not http10:
                self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):  # quiet
            pass

    server = HTTPServer((HOST, port), Endpoint)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield received
    finally:
        server.shutdown()
        server.server_close()


def test_a_stuck_smtp_relay_does_not_hold_up_http_deliveries(tmp_path):
    """Mail and the other protocols go out in separate lanes: while the confirmation mail waits on a
    relay that accepts the connection and never answers (the SMTP client gives up after 10 s), an
    http subscriber's confirmation and notification still arrive, before the mail's first attempt
    has even failed."""
    base = find_base_port()
    node = Notifier(tmp_path, base, base + 7)
    with tarpit(base + 7) as held, http_endpoint(base + 8) as received:
        try:
            node.start()
            with SNS(node.endpoint) as sns:
                topic = sns("CreateTopic", {"Name": unique("topic")})["TopicArn"]
                sns("Subscribe", {"TopicArn": topic, "Protocol": "email", "Endpoint": address("stuck")})
                wait_until(lambda: held, timeout=5, message="the confirmation mail's connection to the relay")
                sns("Subscribe", {"TopicArn": topic, "Protocol": "http", "Endpoint": f"http://{HOST}:{base + 8}/hook"})
                confirmation = wait_until(lambda: next((b for _, b in received if b.get("Type") == "SubscriptionConfirmation"), None),
                                          timeout=9, message="the http confirmation")
                sns("ConfirmSubscription", {"TopicArn": topic, "Token": confirmation["Token"]})
                sns("Publish", {"TopicArn": topic, "Message": "not behind the mail"})
                notification = wait_until(lambda: next((b for _, b in received if b.get("Type") == "Notification"), None),
                                          timeout=9, message="the http notification")
                assert notification["Message"] == "not behind the mail"
                # The mail is still in its first attempt: nothing about it has failed yet.
                assert "will retry" not in node.process.log.read_text()
                assert int(node.health()["sending"]) >= 1
            # Nor does the stuck mail hold up a graceful exit for the SMTP client's 10 s.
            stopping = time.monotonic()
            node.kill(signal.SIGTERM)
            assert time.monotonic() - stopping < 5, "the stuck relay held up the notifier's exit"
        finally:
            node.kill(signal.SIGTERM)


def test_an_http_endpoint_that_never_answers_does_not_hold_up_another(tmp_path):
    """HTTP deliveries are not waited for by the delivery round: while one endpoint accepts the
    connection and never answers (the HTTP client gives up after 15 s), another endpoint's
    confirmation arrives within seconds."""
    base = find_base_port()
    node = Notifier(tmp_path, base, base + 9)
    with tarpit(base + 7) as held, http_endpoint(base + 8) as received:
        try:
            node.start()
            with SNS(node.endpoint) as sns:
                topic = sns("CreateTopic", {"Name": unique("topic")})["TopicArn"]
                sns("Subscribe", {"TopicArn": topic, "Protocol": "http", "Endpoint": f"http://{HOST}:{base + 7}/stuck"})
                wait_until(lambda: held, timeout=5, message="the stuck endpoint's connection")
                sns("Subscribe", {"TopicArn": topic, "Protocol": "http", "Endpoint": f"http://{HOST}:{base + 8}/hook"})
                confirmation = wait_until(lambda: next((b for _, b in received if b.get("Type") == "SubscriptionConfirmation"), None),
                                          timeout=9, message="the second endpoint's confirmation")
                assert confirmation["TopicArn"] == topic
                # The stuck endpoint's confirmation is still in its first attempt.
                assert "will retry" not in node.process.log.read_text()
                assert int(node.health()["sending"]) >= 1
            # Nor does it hold up a graceful exit for the HTTP client's 15 s.
            stopping = time.monotonic()
            node.kill(signal.SIGTERM)
            assert time.monotonic() - stopping < 5, "the stuck endpoint held up the notifier's exit"
        finally:
            node.kill(signal.SIGTERM)


def test_an_unsubscribed_http_endpoint_gets_an_unsubscribe_confirmation_that_restores_it(tmp_path):
    """As in AWS: after Unsubscribe an http endpoint is POSTed an UnsubscribeConfirmation; nothing
    more is delivered to it, and no action lists it, until its token restores the subscription (same
    ARN) - across a SIGKILL of the notifier in between."""
    base = find_base_port()
    node = Notifier(tmp_path, base, base + 9)
    with http_endpoint(base + 8) as received:
        try:
            node.start()
            with SNS(node.endpoint) as sns:
                topic = sns("CreateTopic", {"Name": unique("topic")})["TopicArn"]
                sns("Subscribe", {"TopicArn": topic, "Protocol": "http", "Endpoint": f"http://{HOST}:{base + 8}/hook"})
                confirmation = wait_until(lambda: next((b for _, b in received if b.get("Type") == "SubscriptionConfirmation"), None),
                                          timeout=9, message="the http confirmation")
                arn = sns("ConfirmSubscription", {"TopicArn": topic, "Token": confirmation["Token"]})["SubscriptionArn"]
                sns("Unsubscribe", {"SubscriptionArn": arn})
                headers, goodbye = wait_until(lambda: next(((h, b) for h, b in received if b.get("Type") == "UnsubscribeConfirmation"), None),
                                              timeout=9, message="the UnsubscribeConfirmation")
                assert headers["x-amz-sns-message-type"] == "UnsubscribeConfirmation"
                assert headers["x-amz-sns-subscription-arn"] == arn
                assert goodbye["TopicArn"] == topic and arn in goodbye["Message"]
                assert f"/sns/confirm?TopicArn=" in goodbye["SubscribeURL"] and goodbye["Token"] in goodbye["SubscribeURL"]
                assert sns("ListSubscriptionsByTopic", {"TopicArn": topic})["Subscriptions"] == []
                assert sns.error("GetSubscriptionAttributes", {"SubscriptionArn": arn}) == "NotFound"
                sns("Publish", {"TopicArn": topic, "Message": "while unsubscribed"})
                node.wait_idle()
            node.kill(signal.SIGKILL)
            node.start()
            with SNS(node.endpoint) as sns:
                assert sns("ConfirmSubscription", {"TopicArn": topic, "Token": goodbye["Token"]})["SubscriptionArn"] == arn
                listed = sns("ListSubscriptionsByTopic", {"TopicArn": topic})["Subscriptions"]
                assert [s["SubscriptionArn"] for s in listed] == [arn]
                sns("Publish", {"TopicArn": topic, "Message": "restored"})
                wait_until(lambda: any(b.get("Message") == "restored" for _, b in received), timeout=9, message="the notification after restore")
                assert not any(b.get("Message") == "while unsubscribed" for _, b in received)
        finally:
            node.kill(signal.SIGTERM)

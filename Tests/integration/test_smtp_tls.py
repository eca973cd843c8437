"""The notifier's mail over TLS, against a real SMTP server (aiosmtpd) with a certificate made here.

Each test starts aiosmtpd in this process and a lone ``nimbus-notifier`` pointed at it:
  - ``smtpTLS: starttls`` against a server that requires STARTTLS and offers AUTH only after it;
  - ``smtpTLS: tls`` (SMTPS, TLS from the first byte);
  - a server whose certificate the notifier does not trust, and a server without STARTTLS: no mail
    leaves, and the notifier's log says why.
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import ssl
import subprocess
import tempfile
import threading
from pathlib import Path

import pytest

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from conftest import HOST, find_base_port, wait_until
from test_notifier import SNS, Notifier, token_from, unique

USER, PASSWORD = "nimbus", "s3cret-pass"


def make_certificate(directory: Path, name: str, names: str = "IP:127.0.0.1,DNS:localhost") -> tuple[Path, Path]:
    """A self-signed certificate (it is its own CA) for ``names``: (cert, key)."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", f"/CN={name}",
                    "-addext", f"subjectAltName={names}"],
                   check=True, capture_output=True, timeout=30)
    return cert, key


class Recorder:
    """aiosmtpd handler: keeps each message with whether its session was encrypted."""

    def __init__(self):
        self.lock = threading.Lock()
        self.messages: list[tuple[email.message.EmailMessage, bool]] = []
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, server, session, envelope):
        message = email.message_from_bytes(envelope.original_content or envelope.content, policy=email.policy.default)
        # session.ssl is set by STARTTLS; with TLS from the first byte the transport itself is TLS.
        encrypted = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
        with self.lock:
            self.messages.append((message, encrypted))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            with self.lock:
                self.logins.append((auth_data.login, auth_data.password))
            return AuthResult(success=auth_data.login == USER.encode() and auth_data.password == PASSWORD.encode())
        return AuthResult(success=False)

    def to(self, address: str) -> list[tuple[email.message.EmailMessage, bool]]:
        with self.lock:
            return [m for m in self.messages if m[0]["To"] == address]


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    return context


@pytest.fixture
def setup():
    """(tmp directory, base port, server certificate, its key)."""
    with tempfile.TemporaryDirectory(prefix="nimbus-smtp-tls-") as tmp:
        tmp = Path(tmp)
        cert, key = make_certificate(tmp, "smtp-server")
        yield tmp, find_base_port(), cert, key


@contextlib.contextmanager
def smtp_and_notifier(setup, smtp_options: dict, notifier_settings: dict):
    """aiosmtpd with ``smtp_options`` (TLS, STARTTLS) and a notifier pointed at it: (recorder, node)."""
    tmp, base, _, _ = setup
    recorder = Recorder()
    smtp = Controller(recorder, hostname=HOST, port=base + 7, authenticator=recorder.authenticate, **smtp_options)
    smtp.start()
    node = Notifier(tmp, base, base + 7, smtp=notifier_settings)
    try:
        node.start()
        yield recorder, node
    finally:
        node.kill()
        smtp.stop()


def subscribe(sns: SNS, address: str) -> str:
    topic = sns("CreateTopic", {"Name": unique("tls")})["TopicArn"]
    assert sns("Subscribe", {"TopicArn": topic, "Protocol": "email", "Endpoint": address})["SubscriptionArn"] == "pending confirmation"
    return topic


def log_mentions(node: Notifier, text: str) -> bool:
    return text in (node.directory / "notifier.log").read_text(errors="replace")


def test_starttls_with_auth_after_it_delivers_encrypted(setup):
    _, _, cert, key = setup
    # The server refuses mail before STARTTLS and offers AUTH only after it.
    server = {"tls_context": server_context(cert, key), "require_starttls": True, "auth_require_tls": True}
    settings = {"smtpTLS": "starttls", "smtpCAFile": str(cert), "smtpUsername": USER, "smtpPassword": PASSWORD}
    with smtp_and_notifier(setup, server, settings) as (recorder, node), SNS(node.endpoint) as sns:
        to = f"{unique('tls')}@example.com"
        topic = subscribe(sns, to)
        confirmation, encrypted = wait_until(lambda: recorder.to(to), timeout=15, message="confirmation mail over STARTTLS")[0]
        assert encrypted
        sns("ConfirmSubscription", {"TopicArn": topic, "Token": token_from(confirmation)})
        sns("Publish", {"TopicArn": topic, "Subject": "order", "Message": "order 7: latex gloves"})
        wait_until(lambda: len(recorder.to(to)) == 2, timeout=15, message="the published mail")
        node.wait_idle()
        mails = recorder.to(to)
        assert len(mails) == 2 and all(encrypted for _, encrypted in mails)
        assert "order 7: latex gloves" in mails[1][0].get_content()
        assert (USER.encode(), PASSWORD.encode()) in recorder.logins


def test_implicit_tls_delivers(setup):
    _, _, cert, key = setup
    with smtp_and_notifier(setup, {"ssl_context": server_context(cert, key)}, {"smtpTLS": "tls", "smtpCAFile": str(cert)}) as (recorder, node), \
            SNS(node.endpoint) as sns:
        to = f"{unique('smtps')}@example.com"
        subscribe(sns, to)
        confirmation, encrypted = wait_until(lambda: recorder.to(to), timeout=15, message="confirmation mail over SMTPS")[0]
        assert encrypted and "Token: " in confirmation.get_content()


@pytest.mark.parametrize("case", ["untrusted certificate", "certificate for another host", "no STARTTLS"])
def test_no_mail_leaves_without_the_tls_asked_for(setup, case):
    """Nothing is sent, in clear or otherwise; the mail stays in the outbox and the log says why."""
    tmp, _, cert, key = setup
    trusted, server, reason = str(cert), {"tls_context": server_context(cert, key), "require_starttls": True}, ""
    if case == "untrusted certificate":
        trusted, reason = str(make_certificate(tmp, "someone-else")[0]), "certificate verification failed"
    elif case == "certificate for another host":
        # Trusted, but issued to another name than the one the notifier connects to (127.0.0.1).
        other, other_key = make_certificate(tmp, "mail-example-org", names="DNS:mail.example.org")
        trusted, server = str(other), {"tls_context": server_context(other, other_key), "require_starttls": True}
        reason = "certificate verification failed: IP address mismatch"
    else:
        server, reason = {}, "does not offer STARTTLS"  # plain SMTP only
    with smtp_and_notifier(setup, server, {"smtpTLS": "starttls", "smtpCAFile": trusted}) as (recorder, node):
        with SNS(node.endpoint) as sns:
            subscribe(sns, f"{unique('refused')}@example.com")
        wait_until(lambda: log_mentions(node, reason), timeout=15, message=f"'{reason}' in the log")
        assert node.health()["outboxDepth"] == "1"  # kept for a retry, not dropped
        assert recorder.messages == []

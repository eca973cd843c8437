"""The notifier's mail over TLS, against a real SMTP server (aiosmtpd) with a certificate made here.

Each test starts aiosmtpd in this process and a lone ``nimbus-notifier`` pointed at it:
  - ``smtpTLS: starttls`` against a server that requires STARTTLS and offers AUTH only after it;
  - ``smtpTLS: tls`` (SMTPS, TLS from the first byte);
  - a server whose certificate the notifier does not trust, and a server without STARTTLS: no mail
    leaves, and the notifier's log says why.
"""

from __future__ import annotations

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


def start_smtp(port: int, recorder: Recorder, **options):
    controller = Controller(recorder, hostname=HOST, port=port, authenticator=recorder.authenticate, **options)
    controller.start()
    return controller


def run_notifier(tmp: Path, base: int, smtp_port: int, smtp: dict) -> Notifier:
    node = Notifier(tmp, base, smtp_port, smtp=smtp)
    node.start()
    return node


def subscribe(sns: SNS, address: str) -> str:
    topic = sns("CreateTopic", {"Name": unique("tls")})["TopicArn"]
    assert sns("Subscribe", {"TopicArn": topic, "Protocol": "email", "Endpoint": address})["SubscriptionArn"] == "pending confirmation"
    return topic


def log_mentions(node: Notifier, text: str) -> bool:
    return text in (node.directory / "notifier.log").read_text(errors="replace")


def test_starttls_with_auth_after_it_delivers_encrypted(setup):
    tmp, base, cert, key = setup
    recorder = Recorder()
    # The server refuses mail before STARTTLS and offers AUTH only after it.
    smtp = start_smtp(base + 7, recorder, tls_context=server_context(cert, key), require_starttls=True, auth_require_tls=True)
    node = run_notifier(tmp, base, base + 7, {"smtpTLS": "starttls", "smtpCAFile": str(cert),
                                              "smtpUsername": USER, "smtpPassword": PASSWORD})
    try:
        with SNS(node.endpoint) as sns:
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
    finally:
        node.kill()
        smtp.stop()


def test_implicit_tls_delivers(setup):
    tmp, base, cert, key = setup
    recorder = Recorder()
    smtp = start_smtp(base + 7, recorder, ssl_context=server_context(cert, key))
    node = run_notifier(tmp, base, base + 7, {"smtpTLS": "tls", "smtpCAFile": str(cert)})
    try:
        with SNS(node.endpoint) as sns:
            to = f"{unique('smtps')}@example.com"
            subscribe(sns, to)
            confirmation, encrypted = wait_until(lambda: recorder.to(to), timeout=15, message="confirmation mail over SMTPS")[0]
            assert encrypted and "Token: " in confirmation.get_content()
    finally:
        node.kill()
        smtp.stop()


def test_an_untrusted_certificate_gets_no_mail(setup):
    tmp, base, cert, key = setup
    other, _ = make_certificate(tmp, "someone-else")
    recorder = Recorder()
    smtp = start_smtp(base + 7, recorder, tls_context=server_context(cert, key), require_starttls=True)
    # The notifier trusts another certificate only: the handshake must fail, and nothing is sent in clear.
    node = run_notifier(tmp, base, base + 7, {"smtpTLS": "starttls", "smtpCAFile": str(other)})
    try:
        with SNS(node.endpoint) as sns:
            subscribe(sns, f"{unique('untrusted')}@example.com")
        wait_until(lambda: log_mentions(node, "certificate verification failed"), timeout=15, message="the handshake failure in the log")
        assert node.health()["outboxDepth"] == "1"  # kept for a retry, not dropped
        assert recorder.messages == []
    finally:
        node.kill()
        smtp.stop()


def test_a_trusted_certificate_for_another_host_gets_no_mail(setup):
    tmp, base, _, _ = setup
    cert, key = make_certificate(tmp, "mail-example-org", names="DNS:mail.example.org")
    recorder = Recorder()
    smtp = start_smtp(base + 7, recorder, tls_context=server_context(cert, key), require_starttls=True)
    # Trusted, but issued to another name than the one the notifier connects to (127.0.0.1).
    node = run_notifier(tmp, base, base + 7, {"smtpTLS": "starttls", "smtpCAFile": str(cert)})
    try:
        with SNS(node.endpoint) as sns:
            subscribe(sns, f"{unique('misnamed')}@example.com")
        wait_until(lambda: log_mentions(node, "certificate verification failed: IP address mismatch"), timeout=15,
                   message="the name check's failure in the log")
        assert recorder.messages == []
    finally:
        node.kill()
        smtp.stop()


def test_a_server_without_starttls_gets_no_mail_in_clear(setup):
    tmp, base, cert, _ = setup
    recorder = Recorder()
    smtp = start_smtp(base + 7, recorder)  # plain SMTP only
    node = run_notifier(tmp, base, base + 7, {"smtpTLS": "starttls", "smtpCAFile": str(cert)})
    try:
        with SNS(node.endpoint) as sns:
            subscribe(sns, f"{unique('plain')}@example.com")
        wait_until(lambda: log_mentions(node, "does not offer STARTTLS"), timeout=15, message="the refusal in the log")
        assert recorder.messages == []
    finally:
        node.kill()
        smtp.stop()

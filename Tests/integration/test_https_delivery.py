"""The notifier's https deliveries, against a real HTTPS server (Python's ssl) with certificates
made here: the endpoint's certificate is verified (chain and host name) against the CA store, which
the test points at its own CA through OpenSSL's SSL_CERT_FILE; user info in the URL goes as Basic
authentication; an endpoint whose certificate does not verify gets nothing."""

from __future__ import annotations

import base64
import ssl

from conftest import HOST, find_base_port, wait_until
from test_notifier import SNS, Notifier, http_endpoint, unique
from test_smtp_tls import make_certificate


def https_endpoint(port: int, cert, key, http10: bool = False):
    """test_notifier's http endpoint over TLS with ``cert``."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    return http_endpoint(port, tls=context, http10=http10)


def test_https_deliveries_verify_the_endpoint_and_send_basic_credentials(tmp_path):
    base = find_base_port()
    cert, key = make_certificate(tmp_path, "endpoint")
    stranger, stranger_key = make_certificate(tmp_path, "someone-else")
    node = Notifier(tmp_path, base, base + 9)
    with https_endpoint(base + 7, cert, key) as trusted, https_endpoint(base + 8, stranger, stranger_key, http10=True) as untrusted:
        try:
            node.start(env={"SSL_CERT_FILE": str(cert)})
            with SNS(node.endpoint) as sns:
                topic = sns("CreateTopic", {"Name": unique("topic")})["TopicArn"]
                sns("Subscribe", {"TopicArn": topic, "Protocol": "https", "Endpoint": f"https://hook:p%40ss@{HOST}:{base + 7}/sns"})
                sns("Subscribe", {"TopicArn": topic, "Protocol": "https", "Endpoint": f"https://{HOST}:{base + 8}/sns"})
                headers, confirmation = wait_until(lambda: next(iter(trusted), None), timeout=10, message="the confirmation POST")
                assert confirmation["Type"] == "SubscriptionConfirmation"
                assert headers["authorization"] == "Basic " + base64.b64encode(b"hook:p@ss").decode()
                assert headers["x-amz-sns-message-type"] == "SubscriptionConfirmation"
                sns("ConfirmSubscription", {"TopicArn": topic, "Token": confirmation["Token"]})
                sns("Publish", {"TopicArn": topic, "Message": "over TLS"})
                _, notification = wait_until(lambda: next((r for r in trusted if r[1].get("Type") == "Notification"), None),
                                             timeout=10, message="the notification POST")
                assert notification["Message"] == "over TLS"
                # The stranger's certificate is not in the store: its handshake fails, nothing is sent.
                wait_until(lambda: "certificate verification failed" in node.process.log.read_text(), timeout=10,
                           message="the untrusted endpoint's handshake refused")
                assert untrusted == []
        finally:
            node.kill()


def test_an_answer_that_ends_with_the_connection_counts(tmp_path):
    """An HTTP/1.0 answer without a length, over TLS, ended by a close without close_notify: the
    delivery is made (once), not failed and retried."""
    base = find_base_port()
    cert, key = make_certificate(tmp_path, "endpoint")
    node = Notifier(tmp_path, base, base + 9)
    with https_endpoint(base + 7, cert, key, http10=True) as received:
        try:
            node.start(env={"SSL_CERT_FILE": str(cert)})
            with SNS(node.endpoint) as sns:
                topic = sns("CreateTopic", {"Name": unique("topic")})["TopicArn"]
                sns("Subscribe", {"TopicArn": topic, "Protocol": "https", "Endpoint": f"https://{HOST}:{base + 7}/sns"})
                wait_until(lambda: received, timeout=10, message="the confirmation POST")
                wait_until(lambda: node.health()["delivered"] == "1", timeout=10, message="the confirmation counted as delivered")
                assert "will retry" not in node.process.log.read_text()
                assert len(received) == 1
        finally:
            node.kill()

"""The AWS endpoint's HTTP side, below what an SDK shows: bodies that come chunked, gzipped or after
`Expect: 100-continue`, header names in any case, and requests that are malformed, oversized,
unsigned or for something Nimbus does not serve, each answered in its protocol's error shape and
never with a hang or a dead process."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
from pathlib import Path
from urllib.parse import urlparse

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import process_by_name, start_cluster, stop_cluster, wait_for_queue

LAB_BODY = '{"item": "latex gloves", "customerID": "12345"}'


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    cluster = start_cluster(tmp_path_factory.mktemp("edge-http"), instances={"ingest-worker": 0, "stream-worker": 0})
    try:
        wait_for_queue(cluster)
        yield cluster
    finally:
        stop_cluster(cluster)


def signed(cluster, target: str, body: bytes, headers: dict[str, str] | None = None, service: str = "sqs",
           secret: str | None = None) -> tuple[str, dict[str, str]]:
    creds = cluster.root_credentials()
    request = AWSRequest(method="POST", url=cluster.edge_url + "/", data=body,
                         headers={"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": target, **(headers or {})})
    SigV4Auth(Credentials(creds["AccessKeyId"], secret or creds["SecretAccessKey"]), service, "us-east-1").add_auth(request)
    return cluster.edge_url, dict(request.headers.items())


def post(url: str, headers: dict[str, str], body: bytes, chunked: bool = False) -> tuple[int, dict[str, str], bytes]:
    parsed = urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=10)
    try:
        if chunked:
            connection.putrequest("POST", "/")
            for name, value in headers.items():
                connection.putheader(name, value)
            connection.putheader("Transfer-Encoding", "chunked")
            connection.endheaders()
            for start in range(0, len(body), 7):
                piece = body[start:start + 7]
                connection.send(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            connection.send(b"0\r\n\r\n")
        else:
            connection.request("POST", "/", body=body, headers=headers)
        answer = connection.getresponse()
        return answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
    finally:
        connection.close()


def send_body(cluster) -> bytes:
    queue_url = f"{cluster.edge_url}/000000000000/POC-Queue"
    return json.dumps({"QueueUrl": queue_url, "MessageBody": LAB_BODY}).encode()


def test_a_chunked_body_is_read_whole(edge):
    body = send_body(edge)
    url, headers = signed(edge, "AmazonSQS.SendMessage", body)
    status, _, answer = post(url, headers, body, chunked=True)
    assert status == 200, answer
    assert json.loads(answer)["MD5OfMessageBody"]


def test_a_gzipped_body_is_inflated_and_its_signature_is_over_the_bytes_sent(edge):
    packed = gzip.compress(send_body(edge))
    url, headers = signed(edge, "AmazonSQS.SendMessage", packed, {"Content-Encoding": "gzip"})
    status, _, answer = post(url, headers, packed)
    assert status == 200, answer
    assert "MessageId" in json.loads(answer)


def test_expect_100_continue_gets_the_body_sent_and_answered(edge):
    body = send_body(edge)
    url, headers = signed(edge, "AmazonSQS.SendMessage", body)
    parsed = urlparse(url)
    with socket.create_connection((parsed.hostname, parsed.port), timeout=10) as s:
        head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        s.sendall(f"POST / HTTP/1.1\r\nHost: {parsed.netloc}\r\n{head}Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n".encode())
        s.sendall(body)
        received = b""
        while b"MD5OfMessageBody" not in received:
            chunk = s.recv(65536)
            assert chunk, f"connection closed after {received!r}"
            received += chunk
    assert b"HTTP/1.1 200" in received, received


def test_header_names_in_any_case_are_the_same_headers(edge):
    body = send_body(edge)
    url, headers = signed(edge, "AmazonSQS.SendMessage", body)
    shouted = {name.upper() if name.lower() != "authorization" else "aUtHoRiZaTiOn": value for name, value in headers.items()}
    status, _, answer = post(url, shouted, body)
    assert status == 200, answer


def test_an_unsigned_request_is_refused_in_the_protocols_shape(edge):
    body = send_body(edge)
    status, headers, answer = post(edge.edge_url, {"Content-Type": "application/x-amz-json-1.0",
                                                   "X-Amz-Target": "AmazonSQS.SendMessage"}, body)
    assert status == 403
    assert headers.get("x-amzn-query-error", "").startswith("MissingAuthenticationToken;")
    assert json.loads(answer)["__type"].endswith("#MissingAuthenticationToken")


def test_a_wrong_secret_is_signature_does_not_match_for_sqs_and_invalid_signature_for_dynamodb(edge):
    body = send_body(edge)
    url, headers = signed(edge, "AmazonSQS.SendMessage", body, secret="not-the-secret")
    status, headers_out, _ = post(url, headers, body)
    assert status == 403 and headers_out["x-amzn-query-error"].startswith("SignatureDoesNotMatch;")
    url, headers = signed(edge, "DynamoDB_20120810.ListTables", b"{}", service="dynamodb", secret="not-the-secret")
    status, _, answer = post(url, headers, b"{}")
    # DynamoDB answers its authentication errors with 400 ("Error handling with DynamoDB").
    assert status == 400 and json.loads(answer)["__type"].endswith("#InvalidSignatureException")


def test_an_unknown_target_or_operation_is_named_not_hung(edge):
    url, headers = signed(edge, "DynamoDB_20120810.CreateBackup", b"{}", service="dynamodb")
    status, _, answer = post(url, headers, b"{}")
    assert status == 400 and json.loads(answer)["__type"].endswith("#UnknownOperationException")
    url, headers = signed(edge, "Kinesis_20131202.ListStreams", b"{}", service="kinesis")
    status, _, answer = post(url, headers, b"{}")
    assert status == 400 and "UnknownOperationException" in json.loads(answer)["__type"]


def test_a_malformed_json_body_is_a_client_error_and_the_nodes_live_on(edge):
    before = {p["name"]: p["pid"] for p in edge.status()["processes"]}
    for garbage in [b"{", b"[1,2", b"\xff\xfe", b'{"TableName": 5}', b"null"]:
        url, headers = signed(edge, "DynamoDB_20120810.Scan", garbage, service="dynamodb")
        status, _, answer = post(url, headers, garbage)
        assert 400 <= status < 500, (garbage, status, answer)
        assert "__type" in json.loads(answer), answer
    after = {p["name"]: p["pid"] for p in edge.status()["processes"]}
    assert before == after, "a process restarted"


def test_an_oversized_body_is_413_and_the_edge_lives_on(edge):
    huge = b"x" * (9 * 1024 * 1024)
    url, headers = signed(edge, "AmazonSQS.SendMessage", huge)
    try:
        status, _, _ = post(url, headers, huge)
        assert status == 413
    except (ConnectionResetError, BrokenPipeError):
        pass  # refusing mid-upload by closing is an answer too; the edge must still serve after it
    body = send_body(edge)
    url, headers = signed(edge, "AmazonSQS.SendMessage", body)
    assert post(url, headers, body)[0] == 200
    assert process_by_name(edge.status(), "edge")["state"] == "running"

"""Helpers for the nimbus-edge compatibility tests (``test_edge_*.py``).

The edge is Nimbus's AWS-compatible HTTP endpoint: one port speaking the wire protocols that current
SDKs send (SQS JSON 1.0 and query, DynamoDB and DynamoDB Streams JSON 1.0, SNS/IAM/STS query, Lambda
REST), checked with SigV4 against the cluster's keys. The tests drive it with the real clients
(boto3/botocore, the ``aws`` CLI) and assert what those clients see from AWS itself, as the AWS API
references describe it.

The same tests run against moto's server to check that they encode real AWS behaviour and not just
what Nimbus happens to do::

    NIMBUS_EDGE_AGAINST_MOTO=1 python3 -m pytest Tests/integration/test_edge_*.py -q -p no:cacheprovider

Under moto the lab's resources (``stacks/poc-lab.yaml``) are created through the API first
(``seed_lab``); tests that depend on Nimbus itself (SigV4 enforcement, IAM decisions, the lab's
functions really running) are marked ``nimbus_only`` and skipped there.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator
from unittest import mock

import pytest

boto3 = pytest.importorskip("boto3", reason="the edge tests need boto3 and awscli (pip install boto3 awscli moto)")
import botocore.auth  # noqa: E402
import botocore.awsrequest  # noqa: E402
import botocore.config  # noqa: E402
import botocore.credentials  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from conftest import wait_until  # noqa: E402

ACCOUNT = "000000000000"
REGION = "us-east-1"
AGAINST_MOTO = os.environ.get("NIMBUS_EDGE_AGAINST_MOTO", "") not in ("", "0", "false", "no")

# keys moto accepts (it checks no signature); Nimbus's come from <data>/credentials/root.json
MOTO_CREDENTIALS = {"AccessKeyId": "AKIAIOSFODNN7EXAMPLE", "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
                    "Principal": f"arn:aws:iam::{ACCOUNT}:root"}

# what the lab's stack creates (stacks/poc-lab.yaml)
LAB_QUEUE = "POC-Queue"
LAB_DLQ = "POC-Queue-DLQ"
LAB_TABLE = "orders"
LAB_TOPIC = "POC-Topic"
LAB_POLICIES = {
    "Lambda-Write-DynamoDB": ["dynamodb:PutItem", "dynamodb:DescribeTable"],
    "Lambda-SNS-Publish": ["sns:Publish", "sns:GetTopicAttributes", "sns:ListTopics"],
    "Lambda-DynamoDBStreams-Read": ["dynamodb:GetShardIterator", "dynamodb:DescribeStream", "dynamodb:ListStreams",
                                    "dynamodb:GetRecords"],
    "Lambda-Read-SQS": ["sqs:DeleteMessage", "sqs:ReceiveMessage", "sqs:GetQueueAttributes", "sqs:ChangeMessageVisibility"],
}
APIGATEWAY_LOGS_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
LAB_ROLES = {
    "Lambda-SQS-DynamoDB": ("lambda.amazonaws.com", ["Lambda-Write-DynamoDB", "Lambda-Read-SQS"]),
    "Lambda-DynamoDBStreams-SNS": ("lambda.amazonaws.com", ["Lambda-SNS-Publish", "Lambda-DynamoDBStreams-Read"]),
    "APIGateway-SQS": ("apigateway.amazonaws.com", [APIGATEWAY_LOGS_POLICY]),
}
LAB_FUNCTIONS = {
    "POC-Lambda-1": {"Role": "Lambda-SQS-DynamoDB", "Handler": "LabFunctions.IngestOrders",
                     "Environment": {"TABLE_NAME": LAB_TABLE}},
    "POC-Lambda-2": {"Role": "Lambda-DynamoDBStreams-SNS", "Handler": "LabFunctions.NotifyOrders",
                     "Environment": {"TOPIC_ARN": f"arn:aws:sns:{REGION}:{ACCOUNT}:{LAB_TOPIC}"}},
}
LAB_ORDER = '{"item": "latex gloves", "customerID": "12345"}'


def nimbus_only(reason: str):
    """Marks a test that needs Nimbus itself (not reproducible on moto); ``reason`` says why."""
    return pytest.mark.skipif(AGAINST_MOTO, reason=f"Nimbus-specific: {reason}")


def moto_deviates(reason: str):
    """Marks a test whose assertion is AWS's documented behaviour but which moto does not implement;
    ``reason`` names the AWS doc. Skipped against moto, run against Nimbus."""
    return pytest.mark.skipif(AGAINST_MOTO, reason=f"moto deviates from AWS: {reason}")


def role_arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def policy_arn(name: str) -> str:
    return name if name.startswith("arn:") else f"arn:aws:iam::{ACCOUNT}:policy/{name}"


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"


def topic_arn(name: str) -> str:
    return f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}"


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{time.monotonic_ns() % 10**9}"


# --------------------------------------------------------------------------------------------
# clients
# --------------------------------------------------------------------------------------------


def client_config(**overrides: Any) -> botocore.config.Config:
    settings: dict[str, Any] = {"retries": {"max_attempts": 1}, "connect_timeout": 5, "read_timeout": 30}
    settings.update(overrides)
    return botocore.config.Config(**settings)


@dataclass
class Clients:
    """boto3 clients for one endpoint and one set of keys (cached per service)."""

    endpoint_url: str
    access_key: str
    secret_key: str
    session_token: str | None = None
    region: str = REGION
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def __call__(self, service: str, **config: Any) -> Any:
        if config:
            return self._make(service, client_config(**config))
        if service not in self._cache:
            self._cache[service] = self._make(service, client_config())
        return self._cache[service]

    def _make(self, service: str, config: botocore.config.Config) -> Any:
        return boto3.session.Session().client(
            service, endpoint_url=self.endpoint_url, region_name=self.region, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key, aws_session_token=self.session_token, config=config)

    @property
    def credentials(self) -> botocore.credentials.Credentials:
        return botocore.credentials.Credentials(self.access_key, self.secret_key, self.session_token)

    def with_keys(self, access_key: str, secret_key: str, session_token: str | None = None) -> "Clients":
        return Clients(self.endpoint_url, access_key, secret_key, session_token, self.region)


def clients_for(endpoint_url: str, credentials: dict) -> Clients:
    """boto3 clients for ``endpoint_url`` signing with ``credentials`` (root.json's or STS's shape)."""
    return Clients(endpoint_url, credentials["AccessKeyId"], credentials["SecretAccessKey"],
                   credentials.get("SessionToken"))


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def http_status(error_or_response: Any) -> int:
    response = error_or_response.response if isinstance(error_or_response, ClientError) else error_or_response
    return response["ResponseMetadata"]["HTTPStatusCode"]


@contextlib.contextmanager
def signing_clock(offset: datetime.timedelta) -> Iterator[None]:
    """Makes botocore's SigV4 signers (headers and presigned URLs) sign as if the clock were off by
    ``offset`` (e.g. ``-timedelta(minutes=20)`` for a stale X-Amz-Date)."""
    real = botocore.auth.get_current_datetime

    def skewed(*args: Any, **kwargs: Any) -> datetime.datetime:
        return real(*args, **kwargs) + offset

    with mock.patch.object(botocore.auth, "get_current_datetime", skewed):
        yield


# --------------------------------------------------------------------------------------------
# raw signed HTTP (the query protocol by hand, tampering, presigning)
# --------------------------------------------------------------------------------------------


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def xml(self) -> ET.Element:
        return strip_namespaces(ET.fromstring(self.body))

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


def strip_namespaces(root: ET.Element) -> ET.Element:
    """The element tree with every ``{namespace}`` removed from tag names (replies carry xmlns)."""
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.startswith("{"):
            element.tag = element.tag.split("}", 1)[1]
    return root


def signed_request(method: str, url: str, service: str, credentials: botocore.credentials.Credentials,
                   data: bytes | str | dict | None = None, headers: dict[str, str] | None = None,
                   region: str = REGION) -> botocore.awsrequest.AWSRequest:
    """An AWSRequest signed with SigV4 (``botocore.auth.SigV4Auth``), ready for ``send``; a dict
    ``data`` is form-encoded (the query protocol's POST body)."""
    headers = dict(headers or {})
    if isinstance(data, dict):
        data = urllib.parse.urlencode(data)
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
    if isinstance(data, str):
        data = data.encode("utf-8")
    request = botocore.awsrequest.AWSRequest(method=method, url=url, data=data or b"", headers=headers)
    botocore.auth.SigV4Auth(credentials, service, region).add_auth(request)
    return request


def presigned_url(url: str, service: str, credentials: botocore.credentials.Credentials,
                  params: dict[str, str], expires: int = 300, region: str = REGION) -> str:
    """A GET URL carrying ``params`` and SigV4 in its query string (``botocore.auth.SigV4QueryAuth``)."""
    request = botocore.awsrequest.AWSRequest(method="GET", url=url, params=params)
    botocore.auth.SigV4QueryAuth(credentials, service, region, expires=expires).add_auth(request)
    return request.prepare().url


def send(request: botocore.awsrequest.AWSRequest | str, timeout: float = 30) -> RawResponse:
    """Sends a prepared AWSRequest (or GETs a URL) and returns the reply, errors included."""
    if isinstance(request, str):
        http_request = urllib.request.Request(request, method="GET")
    else:
        prepared = request.prepare()
        body = prepared.body
        if isinstance(body, str):
            body = body.encode("utf-8")
        http_request = urllib.request.Request(prepared.url, data=body if body else None, method=prepared.method,
                                              headers=dict(prepared.headers.items()))
    try:
        with urllib.request.urlopen(http_request, timeout=timeout) as reply:
            return RawResponse(reply.status, dict(reply.headers.items()), reply.read())
    except urllib.error.HTTPError as error:
        return RawResponse(error.code, dict(error.headers.items()), error.read())


def query_error(response: RawResponse) -> dict[str, str]:
    """``<ErrorResponse><Error><Type/><Code/><Message/></Error><RequestId/></ErrorResponse>`` as a dict
    (IAM/STS/SNS use the same shape; SNS and IAM name the id ``RequestId`` too)."""
    root = response.xml()
    assert root.tag == "ErrorResponse", f"not an ErrorResponse ({response.status}): {response.text[:500]}"
    error = root.find("Error")
    assert error is not None, response.text
    out = {child.tag: (child.text or "") for child in error}
    request_id = root.find("RequestId")
    out["RequestId"] = request_id.text if request_id is not None and request_id.text else ""
    return out


# --------------------------------------------------------------------------------------------
# the target: a Nimbus cluster's edge, or moto's server
# --------------------------------------------------------------------------------------------


@dataclass
class Edge:
    """Where the tests send their requests."""

    url: str
    root: dict  # {"AccessKeyId", "SecretAccessKey", ...}
    kind: str  # "nimbus" or "moto"
    cluster: Any = None
    clients: Clients = field(init=False)

    def __post_init__(self) -> None:
        self.clients = clients_for(self.url, self.root)

    def client(self, service: str, **config: Any) -> Any:
        return self.clients(service, **config)

    @property
    def is_moto(self) -> bool:
        return self.kind == "moto"

    def cli_env(self, credentials: dict | None = None) -> dict[str, str]:
        """Environment for the ``aws`` CLI: these keys, the region, and nothing from ~/.aws."""
        credentials = credentials or self.root
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"AWS_ACCESS_KEY_ID": credentials["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
                    "AWS_DEFAULT_REGION": REGION, "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                    "AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard", "AWS_PAGER": ""})
        if credentials.get("SessionToken"):
            env["AWS_SESSION_TOKEN"] = credentials["SessionToken"]
        return env

    def aws(self, *args: str, credentials: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        """Runs ``aws --endpoint-url URL args...`` (output JSON)."""
        return subprocess.run(["aws", "--endpoint-url", self.url, "--output", "json", *args], capture_output=True,
                              text=True, timeout=timeout, env=self.cli_env(credentials), stdin=subprocess.DEVNULL)

    def queue_url(self, name: str = LAB_QUEUE) -> str:
        return self.client("sqs").get_queue_url(QueueName=name)["QueueUrl"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def moto_server(log_directory: Path) -> Iterator[str]:
    """moto's server in a process of its own, with every request in account 000000000000."""
    port = free_port()
    env = dict(os.environ, MOTO_ACCOUNT_ID=ACCOUNT, MOTO_IAM_LOAD_MANAGED_POLICIES="true")
    log = open(log_directory / "moto.log", "wb")
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                               stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"moto exited {process.returncode}: {(log_directory / 'moto.log').read_text()[-2000:]}")
            with urllib.request.urlopen(f"{url}/moto-api/", timeout=2) as reply:
                return reply.status == 200
        wait_until(up, timeout=30, interval=0.2, message="moto server answering")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()


def tiny_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("index.py", "def handler(event, context):\n    return {'batchItemFailures': []}\n")
    return buffer.getvalue()


def seed_lab(edge: Edge, mappings: bool = False) -> None:
    """Creates the lab's resources (stacks/poc-lab.yaml) through the API; used against moto, where
    nothing exists at start. The event source mappings only when ``mappings``: moto runs a mapped
    function in Docker on every send or write (failing here) and then drops the records."""
    iam = edge.client("iam")
    for name, actions in LAB_POLICIES.items():
        iam.create_policy(PolicyName=name, PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Sid": "VisualEditor0", "Effect": "Allow", "Action": actions, "Resource": "*"}]}))
    for name, (service, policies) in LAB_ROLES.items():
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}))
        for policy in policies:
            iam.attach_role_policy(RoleName=name, PolicyArn=policy_arn(policy))

    sqs = edge.client("sqs")
    sqs.create_queue(QueueName=LAB_DLQ, Attributes={"MessageRetentionPeriod": "1209600"})
    sqs.create_queue(QueueName=LAB_QUEUE, Attributes={
        "VisibilityTimeout": "30",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": queue_arn(LAB_DLQ), "maxReceiveCount": 5})})

    dynamodb = edge.client("dynamodb")
    dynamodb.create_table(TableName=LAB_TABLE, AttributeDefinitions=[{"AttributeName": "orderID", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "orderID", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST",
                          StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
    dynamodb.create_table(TableName="nimbus-stream-leases",
                          AttributeDefinitions=[{"AttributeName": "leaseKey", "AttributeType": "S"}],
                          KeySchema=[{"AttributeName": "leaseKey", "KeyType": "HASH"}], BillingMode="PAY_PER_REQUEST")

    edge.client("sns").create_topic(Name=LAB_TOPIC)

    lam = edge.client("lambda")
    for name, spec in LAB_FUNCTIONS.items():
        lam.create_function(FunctionName=name, Runtime="python3.12", Handler=spec["Handler"], Role=role_arn(spec["Role"]),
                            Timeout=3, Environment={"Variables": spec["Environment"]}, Code={"ZipFile": tiny_zip()})
    if not mappings:
        return
    lam.create_event_source_mapping(FunctionName="POC-Lambda-1", EventSourceArn=queue_arn(LAB_QUEUE), BatchSize=10,
                                    MaximumBatchingWindowInSeconds=0, FunctionResponseTypes=["ReportBatchItemFailures"])
    stream = dynamodb.describe_table(TableName=LAB_TABLE)["Table"]["LatestStreamArn"]
    lam.create_event_source_mapping(FunctionName="POC-Lambda-2", EventSourceArn=stream, BatchSize=100,
                                    StartingPosition="TRIM_HORIZON", FunctionResponseTypes=["ReportBatchItemFailures"])


def wait_for_edge(edge: Edge, timeout: float = 30) -> None:
    """Until the edge answers a signed call on the lab's queue (its services may still be starting)."""
    wait_until(lambda: edge.queue_url(LAB_QUEUE), timeout=timeout, interval=0.25,
               message=f"the edge at {edge.url} answering GetQueueUrl for {LAB_QUEUE}")


@contextlib.contextmanager
def edge_target(directory: Path, instances: dict[str, int] | None = None, mappings: bool = False) -> Iterator[Edge]:
    """A fresh target for one test module: moto (seeded with the lab) under NIMBUS_EDGE_AGAINST_MOTO,
    otherwise a Nimbus cluster (``conftest.start_cluster``) and its edge."""
    directory.mkdir(parents=True, exist_ok=True)
    if AGAINST_MOTO:
        with moto_server(directory) as url:
            edge = Edge(url, dict(MOTO_CREDENTIALS), "moto")
            seed_lab(edge, mappings)
            yield edge
        return
    import conftest

    if not hasattr(conftest.Cluster, "edge_url"):
        pytest.skip("conftest.Cluster has no edge_url yet: the nimbus-edge harness is not in this tree")
    cluster = conftest.start_cluster(directory, instances=instances)
    try:
        edge = Edge(cluster.edge_url, cluster.root_credentials(), "nimbus", cluster)
        wait_for_edge(edge)
        yield edge
    finally:
        conftest.stop_cluster(cluster)


def edge_fixture(instances: dict[str, int] | None = None, name: str = "edge", mappings: bool = False) -> Callable:
    """A module-scoped fixture (assign it to a module global) yielding an ``Edge``; ``mappings`` seeds
    moto with the lab's event source mappings too (Nimbus always has them)."""

    @pytest.fixture(scope="module", name=name)
    def _edge(tmp_path_factory):
        with edge_target(tmp_path_factory.mktemp("edge"), instances, mappings) as edge:
            yield edge

    return _edge

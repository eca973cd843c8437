"""Lambda functions in Python: stacks/poc-lab-python.yaml runs the lab's two handlers, pasted verbatim,
as `python3 -m awslambdaric index.lambda_handler` children of the workers, speaking Lambda's Runtime API
to them, with boto3 reaching Nimbus through the AWS endpoint (nimbus-edge) with the workers' role
credentials. The lab's Task 9 end to end; print output in the worker's log; `nimbus invoke`; renewed
credentials restart the runtime; a handler that raises is retried and its message dead-lettered; one
past its Timeout is killed ("Task timed out"); one whose module does not import fails with the error
awslambdaric reports, and the worker stays up."""

from __future__ import annotations

import email
import json
import os
import re
import tempfile
import uuid
from pathlib import Path

import pytest
import requests

from conftest import REPO, SQS, queue_url, sink_mails, start_cluster, stop_cluster, wait_for_queue, wait_until

PYTHON_STACK = REPO / "stacks" / "poc-lab-python.yaml"
LAB_BODY = '{"item": "latex gloves", "customerID": "12345"}'
TOPIC_ARN = "arn:aws:sns:us-east-1:000000000000:POC-Topic"


@pytest.fixture(scope="module")
def cluster():
    with tempfile.TemporaryDirectory(prefix="nimbus-it-") as tmp:
        c = start_cluster(Path(tmp), stack=PYTHON_STACK)
        try:
            yield c
        finally:
            stop_cluster(c)


# -- helpers -------------------------------------------------------------------------------------

def log_text(cluster, name: str) -> str:
    path = cluster.directory / "data" / "logs" / f"{name}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def items(cluster) -> list[dict]:
    """The orders table through `nimbus items --json` (the console's Explore items)."""
    listing = cluster.nimbus("items", "--json")
    assert listing.returncode == 0, listing.stderr
    return [json.loads(line) for line in listing.stdout.splitlines() if line.strip()]


def mails(cluster, to: str) -> list[email.message.EmailMessage]:
    return sink_mails(cluster.mail_directory, to)


def subscribe_and_confirm(cluster, address: str) -> None:
    result = cluster.nimbus("subscribe", "email", address)
    assert result.returncode == 0, result.stderr
    confirmation = wait_until(lambda: next((m for m in mails(cluster, address) if "Subscription Confirmation" in m["Subject"]), None),
                              timeout=10, message=f"confirmation mail to {address}")
    link = re.search(r"http://\S+/sns/confirm\?\S+", confirmation.get_content())
    assert link, confirmation.get_content()
    page = requests.get(link.group(0), timeout=5)
    assert page.status_code == 200 and "Subscription confirmed!" in page.text, page.text


def notifications(cluster, to: str) -> list[email.message.EmailMessage]:
    return [m for m in mails(cluster, to) if "Subscription Confirmation" not in m["Subject"]]


def runtime_pids(cluster, worker: str) -> list[int]:
    return [int(p) for p in re.findall(r"Python runtime started \(pid (\d+)", log_text(cluster, worker))]


def environ_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(entry.split("=", 1) for entry in raw.decode(errors="replace").split("\0") if "=" in entry)


def python_stack_variant(tmp: Path, replacements: list[tuple[str, str]]) -> Path:
    """A copy of the Python stack with the given text replaced (each must occur)."""
    text = PYTHON_STACK.read_text()
    for old, new in replacements:
        assert old in text, old
        text = text.replace(old, new, 1)
    stack = tmp / "stack.yaml"
    stack.write_text(text)
    return stack


def invoke(cluster, worker: str, template: str):
    result = cluster.nimbus("invoke", worker, "--template", template)
    payload = json.loads(result.stdout.split("\n", 1)[1]) if "\n" in result.stdout else None
    return result, payload


# -- the lab, in Python --------------------------------------------------------------------------

def test_the_stack_carries_the_labs_code_verbatim():
    """The two handlers are the lab text's (steps 4.3 and 7.3), only the TargetArn placeholder filled."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    for tag in ("!Sub", "!Ref", "!GetAtt"):
        Loader.add_constructor(tag, lambda loader, node, tag=tag: (tag, loader.construct_scalar(node))
                               if isinstance(node, yaml.ScalarNode) else (tag, loader.construct_sequence(node)))
    resources = yaml.load(PYTHON_STACK.read_text(), Loader=Loader)["Resources"]
    one, two = resources["POCLambda1"]["Properties"], resources["POCLambda2"]["Properties"]
    for p in (one, two):
        assert p["Runtime"] == "python3.12" and p["Handler"] == "index.lambda_handler"
    assert one["Code"]["ZipFile"].startswith("import boto3, uuid\n\nclient = boto3.resource('dynamodb')\n")
    assert "        table.put_item(Item= {'orderID': str(uuid.uuid4()),'order':  payload})\n" in one["Code"]["ZipFile"]
    tag, source = two["Code"]["ZipFile"]
    assert tag == "!Sub" and "TargetArn='${POCTopic}'," in source and "<Enter" not in source
    assert "            new_record = record['dynamodb']['NewImage']    \n" in source  # the lab's trailing spaces too
    seed = REPO.parent / "shared" / "seed" / "000_09c9d70df1595db7.txt"
    if seed.exists():  # the lab text itself, where the checkout has it beside it
        text = seed.read_text()
        assert one["Code"]["ZipFile"].rstrip("\n") in text
        assert source.replace("${POCTopic}", "<Enter Amazon SNS ARN for the POC-Topic>").rstrip("\n") in text


def test_task_9_an_order_becomes_a_row_and_a_mail_through_the_python_functions(cluster):
    wait_for_queue(cluster)
    subscribe_and_confirm(cluster, "buyer@example.com")
    posted = requests.post(cluster.http_url + "/", data=LAB_BODY.encode(), timeout=5)
    assert posted.status_code == 200, posted.text

    # POC-Lambda-1 (verbatim): a row with a fresh uuid4 and the order as sent.
    rows = wait_until(lambda: [i for i in items(cluster) if i.get("order") == {"S": LAB_BODY}] or None,
                      timeout=20, message="the order written by the Python POC-Lambda-1")
    assert len(rows) == 1
    order_id = rows[0]["orderID"]["S"]
    assert uuid.UUID(order_id).version == 4

    # Its print output is in the ingest worker's log, with the invocation's request id.
    printed = 'msg="' + json.dumps(LAB_BODY)[1:-1] + '" function=POC-Lambda-1 requestId='
    log = wait_until(lambda: (lambda t: t if printed in t else None)(log_text(cluster, "ingest-worker-1")),
                     timeout=10, message="the handler's print(str(payload)) in the worker's log")
    assert re.search(r"msg=test function=POC-Lambda-1 requestId=[0-9a-f-]{36}", log), log[-2000:]

    # POC-Lambda-2 (verbatim): the new image published to POC-Topic (SNS through the edge's query
    # protocol), mailed to the confirmed subscriber.
    got = wait_until(lambda: notifications(cluster, "buyer@example.com") or None, timeout=20,
                     message="the order's mail, published by the Python POC-Lambda-2 through the AWS endpoint")
    image = json.loads(got[0].get_content().strip().splitlines()[0])
    assert image == {"orderID": {"S": order_id}, "order": {"S": LAB_BODY}}


def test_nimbus_invoke_runs_the_python_functions_with_the_console_events(cluster):
    before = sum(1 for i in items(cluster) if i.get("order") == {"S": "Hello from SQS!"})
    result, payload = invoke(cluster, "ingest-worker", "sqs")
    assert result.returncode == 0, result.stderr
    assert "Execution result: succeeded" in result.stdout
    assert payload == {"batchItemFailures": []}
    # The verbatim code is not idempotent: every test invocation writes a new order.
    wait_until(lambda: sum(1 for i in items(cluster) if i.get("order") == {"S": "Hello from SQS!"}) == before + 1,
               timeout=10, message="the SQS test event's order")
    streamed, _ = invoke(cluster, "stream-worker", "dynamodb-update")
    assert streamed.returncode == 0, streamed.stderr
    assert "Execution result: succeeded" in streamed.stdout
    log = log_text(cluster, "ingest-worker-1")
    assert "START RequestId:" in log and 'msg="Hello from SQS!" function=POC-Lambda-1' in log


def test_the_runtime_has_lambdas_environment_and_the_roles_credentials(cluster):
    pid = wait_until(lambda: next((p for p in reversed(runtime_pids(cluster, "ingest-worker-1")) if os.path.exists(f"/proc/{p}")), None),
                     timeout=10, message="a running Python runtime")
    env = environ_of(pid)
    credentials = json.loads((cluster.directory / "data" / "credentials" / "ingest-worker-1.json").read_text())
    assert env["AWS_ACCESS_KEY_ID"] == credentials["AccessKeyId"]
    assert env["AWS_SECRET_ACCESS_KEY"] == credentials["SecretAccessKey"]
    assert env["AWS_SESSION_TOKEN"] == credentials["SessionToken"]
    assert env["AWS_ENDPOINT_URL"] == cluster.edge_url
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "POC-Lambda-1"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    assert env["_HANDLER"] == "index.lambda_handler"
    assert re.fullmatch(r"127\.0\.0\.1:\d+", env["AWS_LAMBDA_RUNTIME_API"])
    assert env["LAMBDA_TASK_ROOT"] == str(cluster.directory / "data" / "functions" / "POC-Lambda-1")
    assert env["TABLE_NAME"] == "orders"  # the function's own Environment
    assert (Path(env["LAMBDA_TASK_ROOT"]) / "index.py").read_text().startswith("import boto3, uuid\n")
    # MemorySize as the address-space limit.
    limits = Path(f"/proc/{pid}/limits").read_text()
    assert re.search(r"Max address space\s+134217728\s+134217728", limits), limits


def test_renewed_credentials_restart_the_idle_runtime(cluster):
    """When the supervisor renews the worker's credentials, the idle runtime is replaced by one with
    the new keys (here the file is rewritten by hand: first with a changed key, then back)."""
    path = cluster.directory / "data" / "credentials" / "ingest-worker-1.json"
    original = path.read_text()
    renewed = json.loads(original)
    renewed["AccessKeyId"] = "ASIA" + uuid.uuid4().hex[:16].upper()
    started = len(runtime_pids(cluster, "ingest-worker-1"))
    try:
        path.write_text(json.dumps(renewed))
        pid = wait_until(lambda: (p := runtime_pids(cluster, "ingest-worker-1")) and len(p) > started and p[-1],
                         timeout=15, message="a runtime started with the renewed credentials")
        assert environ_of(pid)["AWS_ACCESS_KEY_ID"] == renewed["AccessKeyId"]
        assert "the role's credentials were renewed; restarting the idle Python runtime" in log_text(cluster, "ingest-worker-1")
    finally:
        path.write_text(original)
    try:
        restored = wait_until(lambda: (p := runtime_pids(cluster, "ingest-worker-1")) and len(p) > started + 1 and p[-1],
                              timeout=15, message="a runtime started with the original credentials again")
    except AssertionError as error:
        raise AssertionError(f"{error}\n{log_text(cluster, 'ingest-worker-1')[-4000:]}") from None
    assert environ_of(restored)["AWS_ACCESS_KEY_ID"] == json.loads(original)["AccessKeyId"]
    # And orders flow again, signed with them.
    body = json.dumps({"item": "gloves", "customerID": uuid.uuid4().hex})
    assert requests.post(cluster.http_url + "/orders", data=body.encode(), timeout=5).status_code == 200
    wait_until(lambda: any(i.get("order") == {"S": body} for i in items(cluster)), timeout=30, message="an order after the renewal")


# -- failures ------------------------------------------------------------------------------------

def test_a_handler_that_raises_is_retried_and_its_message_dead_lettered_and_one_past_its_timeout_is_killed(tmp_path: Path):
    """POC-Lambda-1 with `raise Exception("boom")` added: the batch fails, comes back after the
    visibility timeout (4 s here: as AWS requires, not under the function's 3 s Timeout) and after
    maxReceiveCount (2 here) receives sits in POC-Queue-DLQ.
    POC-Lambda-2 made to sleep past its 3 s Timeout: "Task timed out after 3.00 seconds", the runtime
    killed and replaced, the worker up."""
    stack = python_stack_variant(tmp_path, [
        ("VisibilityTimeout: 30", "VisibilityTimeout: 4"),
        ("maxReceiveCount: 5", "maxReceiveCount: 2"),
        ("                  print(str(payload))\n",
         "                  print(str(payload))\n                  raise Exception(\"boom\")\n"),
        ("          import boto3, json\n", "          import boto3, json, time\n"),
        ("              for record in event[\"Records\"]:\n",
         "              time.sleep(10)\n              for record in event[\"Records\"]:\n"),
    ])
    (tmp_path / "c").mkdir()
    c = start_cluster(tmp_path / "c", stack=stack)
    try:
        url = wait_for_queue(c)
        # Invoke shows the handler's error as Lambda does (and the runtime is warm afterwards).
        failed, payload = invoke(c, "ingest-worker", "sqs")
        assert failed.returncode == 2 and "Execution result: failed" in failed.stdout, failed.stdout + failed.stderr
        assert payload["errorType"] == "Exception" and payload["errorMessage"] == "boom"

        body = json.dumps({"item": "poison", "customerID": uuid.uuid4().hex})
        assert requests.post(c.http_url + "/", data=body.encode(), timeout=5).status_code == 200
        with SQS(c.endpoint("queue")) as queue:
            moved = wait_until(lambda: queue.receive(queue_url("POC-Queue-DLQ"), wait=1), timeout=60,
                               message="the failing message in POC-Queue-DLQ")
            assert [m["Body"] for m in moved] == [body]
            assert int(moved[0]["Attributes"]["ApproximateReceiveCount"]) >= 1
            assert queue("sqs:GetQueueAttributes", {"QueueUrl": url, "AttributeNames": ["All"]})["Attributes"]["ApproximateNumberOfMessages"] == "0"
        log = log_text(c, "ingest-worker-1")
        # Received twice, failed twice: the print before the raise, awslambdaric's error record, the poller's warning.
        assert log.count(json.dumps(body)[1:-1]) >= 2, log[-3000:]
        assert len(re.findall(r"function failed on a batch of 1: Exception: boom", log)) >= 2, log[-3000:]
        assert "[ERROR] Exception: boom" in log
        assert not any(i.get("order") == {"S": body} for i in items(c))

        # Past the Timeout: killed, failed, and the worker serves on with a new runtime.
        before = runtime_pids(c, "stream-worker-1")
        timed_out, payload = invoke(c, "stream-worker", "dynamodb-update")
        assert "Execution result: failed" in timed_out.stdout, timed_out.stdout + timed_out.stderr
        assert "Task timed out after 3.00 seconds" in payload["errorMessage"]
        wait_until(lambda: not os.path.exists(f"/proc/{before[-1]}"), timeout=5, message="the timed-out runtime killed")
        wait_until(lambda: len(runtime_pids(c, "stream-worker-1")) > len(before), timeout=10, message="a new runtime after the timeout")
        assert c.nimbus("health", "stream-worker-1").returncode == 0
    finally:
        stop_cluster(c)


def test_a_runtime_that_cannot_start_fails_the_invocation_with_its_error_and_the_worker_stays_up(tmp_path: Path):
    """POC-Lambda-1's module does not import: awslambdaric posts /runtime/init/error and exits; the
    invocation fails with Runtime.ImportModuleError, the worker keeps running. A handler name its
    module lacks gives Runtime.HandlerNotFound."""
    stack = python_stack_variant(tmp_path, [
        ("          import boto3, uuid\n", "          import boto3, uuid, no_such_module\n"),
        ("      FunctionName: POC-Lambda-2\n      Runtime: python3.12\n      Handler: index.lambda_handler\n",
         "      FunctionName: POC-Lambda-2\n      Runtime: python3.12\n      Handler: index.no_such_handler\n"),
    ])
    (tmp_path / "c").mkdir()
    c = start_cluster(tmp_path / "c", stack=stack)
    try:
        result, payload = invoke(c, "ingest-worker", "sqs")
        assert "Execution result: failed" in result.stdout, result.stdout + result.stderr
        assert payload["errorType"] == "Runtime.ImportModuleError", payload
        assert "No module named 'no_such_module'" in payload["errorMessage"]
        result, payload = invoke(c, "stream-worker", "dynamodb-update")
        assert payload["errorType"] == "Runtime.HandlerNotFound", payload
        for worker in ("ingest-worker-1", "stream-worker-1"):
            assert c.nimbus("health", worker).returncode == 0
        status = c.status()
        assert all(p["state"] == "running" and p["restarts"] == 0 for p in status["processes"] if p["name"].endswith("worker-1")), status
    finally:
        stop_cluster(c)

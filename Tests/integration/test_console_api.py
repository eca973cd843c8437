"""The web console's server side (docs/console.md): its static files and its JSON API on the gateway.

One cluster for the module, started without an ingest worker so that what the console sends to
POC-Queue stays there for its poll; the scale test takes ingest-worker to 2 and back to 0, and the
pipeline tests after it run with one. Every call carries the token ``nimbus up`` wrote to
``<data>/console-token``. Waits are on conditions (``wait_until``), each bounded.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from html.parser import HTMLParser

import pytest
import requests

from conftest import PROCESS_NAMES, Cluster, find_base_port, stop_cluster, wait_for_queue, wait_until

CLUSTER_INSTANCES = {"ingest-worker": 0}

HTTP_TIMEOUT = 15  # seconds, every HTTP call
PIPELINE_TIMEOUT = 90  # an order through a debug build's whole pipeline
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
LAB_ORDER = {"item": "latex gloves", "customerID": "12345"}


def token(cluster) -> str:
    return (cluster.directory / "data" / "console-token").read_text().strip()


def api(cluster, method: str, path: str, body=None, bearer: str | None = "", timeout: float = HTTP_TIMEOUT,
        raw: bytes | None = None) -> tuple[int, dict]:
    """(status, JSON body) of a console API call; ``bearer`` "" means the cluster's token, None none."""
    headers = {}
    if bearer is not None:
        headers["Authorization"] = f"Bearer {bearer or token(cluster)}"
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    if data is not None:
        headers["Content-Type"] = "application/json"
    r = requests.request(method, f"{cluster.http_url}/console/api/{path}", data=data, headers=headers, timeout=timeout)
    try:
        answer = r.json()
    except ValueError:
        raise AssertionError(f"{method} {path}: {r.status_code}, not JSON: {r.text[:300]!r}")
    return r.status_code, answer


def ok(cluster, method: str, path: str, body=None, timeout: float = HTTP_TIMEOUT) -> dict:
    status, answer = api(cluster, method, path, body, timeout=timeout)
    assert status == 200, f"{method} {path} {body!r}: {status} {answer}"
    return answer


def processes(cluster) -> dict[str, dict]:
    return {p["name"]: p for p in ok(cluster, "GET", "cluster")["processes"]}


def ready(cluster, name: str) -> dict | None:
    p = processes(cluster).get(name)
    return p if p and p["state"] == "running" and p["ready"] else None


@pytest.fixture(scope="module", autouse=True)
def stack_ready(cluster):
    wait_for_queue(cluster, "POC-Queue")


@pytest.fixture(scope="module")
def pipeline(cluster):
    """One ingest worker (the module starts with none), running and ready."""
    ok(cluster, "POST", "cluster/scale", {"kind": "ingest-worker", "count": 1})
    wait_until(lambda: ready(cluster, "ingest-worker-1"), timeout=45, interval=0.5, message="ingest-worker-1 ready")
    return cluster


# --------------------------------------------------------------------------------------------
# the page
# --------------------------------------------------------------------------------------------


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.scripts: list[dict] = []
        self.script_text: list[str] = []
        self.styles = 0
        self.style_attributes = 0
        self.handlers: list[str] = []
        self.links: list[dict] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts.append(a)
            self._in_script = True
        if tag == "style":
            self.styles += 1
        if tag == "link":
            self.links.append(a)
        if "style" in a:
            self.style_attributes += 1
        self.handlers += [name for name in a if name.startswith("on")]

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.script_text.append(data)


def test_page_is_served_with_its_security_headers_and_no_inline_script(cluster):
    r = requests.get(f"{cluster.http_url}/console/", timeout=HTTP_TIMEOUT)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert r.headers["Content-Security-Policy"] == CSP
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    tags = Tags()
    tags.feed(r.text)
    assert tags.scripts, "the page loads its script"
    assert all(s.get("src") for s in tags.scripts), f"a <script> without src: {tags.scripts}"
    assert not tags.script_text, f"inline script: {tags.script_text[:1]}"
    assert tags.styles == 0 and tags.style_attributes == 0, "inline style"
    assert not tags.handlers, f"inline event handlers: {tags.handlers}"
    # Every file the page refers to is served with its type and the same headers.
    types = {".js": "text/javascript", ".css": "text/css"}
    for ref in [s["src"] for s in tags.scripts] + [l["href"] for l in tags.links if not l.get("href", "").startswith("data:")]:
        f = requests.get(f"{cluster.http_url}/console/{ref}", timeout=HTTP_TIMEOUT)
        assert f.status_code == 200, ref
        suffix = ref[ref.rfind("."):]
        if suffix in types:
            assert f.headers["Content-Type"].startswith(types[suffix]), (ref, f.headers["Content-Type"])
        assert f.headers["Content-Security-Policy"] == CSP
        assert f.headers["X-Content-Type-Options"] == "nosniff"


def test_the_path_without_slash_redirects_and_anything_else_is_404(cluster):
    r = requests.get(f"{cluster.http_url}/console", timeout=HTTP_TIMEOUT, allow_redirects=False)
    assert r.status_code in (301, 308) and r.headers["Location"] == "/console/"
    for path in ["/console/nope.html", "/console/.hidden.js", "/console/index.exe", "/console/%2e%2e/Package.swift",
                 "/console/a/../../etc/passwd"]:
        r = requests.get(f"{cluster.http_url}{path}", timeout=HTTP_TIMEOUT)
        assert r.status_code == 404, (path, r.status_code)
    r = requests.post(f"{cluster.http_url}/console/index.html", data=b"x", timeout=HTTP_TIMEOUT)
    assert r.status_code == 405
    # POC-API itself is unchanged.
    r = requests.get(f"{cluster.http_url}/", timeout=HTTP_TIMEOUT)
    assert r.status_code == 405


# --------------------------------------------------------------------------------------------
# the token
# --------------------------------------------------------------------------------------------


def test_token_file_is_private_hex(cluster):
    path = cluster.directory / "data" / "console-token"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert re.fullmatch(r"[0-9a-f]{64}", token(cluster))


@pytest.mark.parametrize("method,path", [("GET", "cluster"), ("GET", "flow"), ("GET", "items"), ("POST", "queue/send"),
                                         ("GET", "inbox"), ("GET", "events"), ("GET", "no-such-route")])
def test_api_needs_the_token(cluster, method, path):
    status, answer = api(cluster, method, path, {"body": "x"}, bearer=None)
    assert status == 401 and answer["code"] == "MissingAuthenticationToken", answer
    status, answer = api(cluster, method, path, {"body": "x"}, bearer="0" * 64)
    assert status == 403 and answer["code"] == "InvalidToken", answer
    status, answer = api(cluster, method, path, {"body": "x"}, bearer=token(cluster)[:-1])
    assert status == 403 and answer["code"] == "InvalidToken", answer
    r = requests.request(method, f"{cluster.http_url}/console/api/{path}", headers={"Authorization": "Basic eDp5"}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 401


def test_bad_requests_are_validation_errors(cluster):
    status, answer = api(cluster, "POST", "queue/send", raw=b"{not json")
    assert (status, answer["code"]) == (400, "ValidationException"), answer
    status, answer = api(cluster, "POST", "queue/send", {"body": 5})
    assert (status, answer["code"]) == (400, "ValidationException"), answer
    status, answer = api(cluster, "POST", "cluster/scale", {"kind": "ingest-worker", "count": "two"})
    assert (status, answer["code"]) == (400, "ValidationException"), answer
    status, answer = api(cluster, "POST", "queue/poll", {"max": 11})
    assert (status, answer["code"]) == (400, "ValidationException"), answer
    status, answer = api(cluster, "GET", "items?limit=0")
    assert (status, answer["code"]) == (400, "ValidationException"), answer
    status, answer = api(cluster, "GET", "items?next=%%%")
    assert (status, answer["code"]) == (400, "ValidationException"), answer
    status, answer = api(cluster, "GET", "lab/trace?traceId=nope")
    assert status == 404, answer
    status, answer = api(cluster, "GET", "nothing/here")
    assert status == 404 and set(answer) == {"code", "message"}, answer
    status, answer = api(cluster, "GET", "cluster/scale")
    assert status == 405, answer
    # The supervisor's own refusal keeps its AWS code.
    status, answer = api(cluster, "POST", "cluster/scale", {"kind": "queue", "count": 2})
    assert (status, answer["code"]) == (400, "InvalidParameterValue"), answer
    status, answer = api(cluster, "POST", "cluster/kill", {"name": "no-such-process"})
    assert (status, answer["code"]) == (400, "InvalidParameterValue"), answer


# --------------------------------------------------------------------------------------------
# cluster
# --------------------------------------------------------------------------------------------


def test_cluster_lists_every_process_with_cpu_and_memory(cluster):
    expected = [n for n in PROCESS_NAMES if n != "ingest-worker-1"]
    answer = ok(cluster, "GET", "cluster")
    assert answer["supervisorPID"] > 0
    names = [p["name"] for p in answer["processes"]]
    assert set(expected) <= set(names), names
    for p in answer["processes"]:
        assert {"name", "kind", "pid", "state", "stateDescription", "ready", "notReadyReason", "restarts", "incarnation",
                "lastHeartbeatMillisecondsAgo", "uptimeSeconds", "lastExit", "cpuPercent", "rssBytes"} <= set(p), p
    # CPU needs two samples a second apart; memory is there at once.
    def measured():
        ps = [p for p in ok(cluster, "GET", "cluster")["processes"] if p["name"] in expected]
        return all(p["rssBytes"] and p["rssBytes"] > 0 and p["cpuPercent"] is not None for p in ps) and ps
    ps = wait_until(measured, timeout=10, interval=0.5, message="cpuPercent and rssBytes for every process")
    assert all(0 <= p["cpuPercent"] <= 200 * 8 for p in ps)


def test_queue_send_and_poll(cluster):
    queue = ok(cluster, "GET", "queue")
    assert queue["queue"]["name"] == "POC-Queue" and queue["dlq"]["name"] == "POC-Queue-DLQ"
    assert {"visible", "inFlight", "delayed", "attributes", "url"} <= set(queue["queue"])
    text = f"console test {uuid.uuid4()}"
    sent = ok(cluster, "POST", "queue/send", {"body": text})
    assert re.fullmatch(r"[0-9a-f-]{36}", sent["MessageId"]) and len(sent["MD5OfMessageBody"]) == 32
    wait_until(lambda: ok(cluster, "GET", "queue")["queue"]["visible"] >= 1, timeout=10, message="POC-Queue has the message")
    polled = ok(cluster, "POST", "queue/poll", {"max": 10, "waitSeconds": 2}, timeout=30)["messages"]
    mine = [m for m in polled if m["MessageId"] == sent["MessageId"]]
    assert mine and mine[0]["Body"] == text and mine[0]["ReceiveCount"] == 1 and mine[0]["SentTimestamp"] > 0, polled
    # Received, not deleted: now in flight.
    assert ok(cluster, "GET", "queue")["queue"]["inFlight"] >= 1
    assert ok(cluster, "POST", "queue/poll", {"max": 1, "waitSeconds": 0, "queue": "dlq"})["messages"] == []


def test_scale_ingest_worker_to_two_and_back(cluster):
    assert ok(cluster, "POST", "cluster/scale", {"kind": "ingest-worker", "count": 2}) == {"kind": "ingest-worker", "count": 2}
    wait_until(lambda: ready(cluster, "ingest-worker-1") and ready(cluster, "ingest-worker-2"), timeout=45, interval=0.5,
               message="two ingest workers running")
    assert ok(cluster, "POST", "cluster/scale", {"kind": "ingest-worker", "count": 0}) == {"kind": "ingest-worker", "count": 0}
    wait_until(lambda: not any(n.startswith("ingest-worker") and p["state"] not in ("stopped",)
                               for n, p in processes(cluster).items()),
               timeout=30, interval=0.5, message="ingest workers gone")


# --------------------------------------------------------------------------------------------
# the pipeline (one ingest worker from here on)
# --------------------------------------------------------------------------------------------


def test_functions_list_and_invoke_with_the_sqs_template(pipeline):
    cluster = pipeline
    functions = {f["name"]: f for f in ok(cluster, "GET", "functions")["functions"]}
    assert set(functions) == {"POC-Lambda-1", "POC-Lambda-2"}, functions
    one, two = functions["POC-Lambda-1"], functions["POC-Lambda-2"]
    assert one["worker"] == "ingest-worker" and one["handler"] == "LabFunctions.IngestOrders"
    assert one["trigger"]["source"].endswith(":POC-Queue") and one["trigger"]["enabled"] is True and one["trigger"]["batchSize"] == 10
    assert two["worker"] == "stream-worker" and "/stream/" in two["trigger"]["source"]
    templates = ok(cluster, "GET", "templates")
    assert set(templates) == {"sqs", "dynamodb-update"}
    assert templates["sqs"]["Records"][0]["body"] == "Hello from SQS!"
    result = ok(cluster, "POST", "functions/POC-Lambda-1/invoke", {"event": templates["sqs"]}, timeout=30)
    assert result["result"] == "succeeded", result
    assert result["payload"] == {"batchItemFailures": []}
    assert any("START RequestId" in line for line in result["log"]) and any("REPORT RequestId" in line for line in result["log"]), result["log"]
    # The statistics count it.
    wait_until(lambda: {f["name"]: f for f in ok(cluster, "GET", "functions")["functions"]}["POC-Lambda-1"]["statistics"]["invocations"] >= 1,
               timeout=10, interval=0.5, message="the invocation counted")
    # An event of the wrong shape is the function's refusal; an unknown function is 404.
    status, answer = api(cluster, "POST", "functions/POC-Lambda-1/invoke", {"event": {"nope": 1}})
    assert (status, answer["code"]) == (400, "InvalidRequestContentException"), answer
    status, answer = api(cluster, "POST", "functions/No-Such-Function/invoke", {"event": {}})
    assert status == 404, answer
    status, answer = api(cluster, "POST", "functions/POC-Lambda-1/invoke", {"event": "text"})
    assert (status, answer["code"]) == (400, "ValidationException"), answer


def test_items_after_a_post(pipeline):
    cluster = pipeline
    marker = f"console-items-{uuid.uuid4()}"
    r = requests.post(cluster.http_url + "/", data=json.dumps({**LAB_ORDER, "marker": marker}), timeout=HTTP_TIMEOUT,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text

    def find():
        next_key, seen = None, 0
        for _ in range(100):
            answer = ok(cluster, "GET", "items?limit=50" + (f"&next={next_key}" if next_key else ""))
            seen += answer["scanned"]
            for item in answer["items"]:
                if marker in item.get("order", {}).get("S", ""):
                    return item
            next_key = answer["next"]
            if not next_key:
                return None
        return None
    item = wait_until(find, timeout=PIPELINE_TIMEOUT, interval=0.5, message="the order in the items")
    order_id = item["orderID"]["S"]
    # The orderID filter keeps only matching items of the page scanned.
    filtered = ok(cluster, "GET", f"items?limit=1000&orderID={order_id}")
    assert [i["orderID"]["S"] for i in filtered["items"]] == [order_id]
    # Pages of one follow each other with an opaque next.
    first = ok(cluster, "GET", "items?limit=1")
    assert len(first["items"]) == 1 and first["next"] and re.fullmatch(r"[A-Za-z0-9_-]+", first["next"])
    second = ok(cluster, "GET", f"items?limit=1&next={first['next']}")
    assert second["items"] and second["items"][0] != first["items"][0]


SUBSCRIBER = f"console-{uuid.uuid4().hex[:8]}@example.com"


def test_topic_subscribe_and_the_confirmation_mail(pipeline):
    cluster = pipeline
    answer = ok(cluster, "POST", "topic/subscribe", {"protocol": "email", "endpoint": SUBSCRIBER})
    assert answer["SubscriptionArn"].startswith("arn:aws:sns:")
    topic = ok(cluster, "GET", "topic")
    assert topic["topicArn"].endswith(":POC-Topic")
    mine = [s for s in topic["subscriptions"] if s["Endpoint"] == SUBSCRIBER]
    assert mine and mine[0]["status"] == "PendingConfirmation" and mine[0]["Protocol"] == "email", topic

    def confirmation():
        for mail in ok(cluster, "GET", "inbox")["mails"]:
            if mail["to"] == SUBSCRIBER and any("/sns/confirm?" in link for link in mail["links"]):
                return mail
        return None
    mail = wait_until(confirmation, timeout=30, interval=0.5, message="the confirmation mail in the inbox")
    assert mail["subject"] and mail["date"] > 0 and "confirm" in mail["body"].lower()
    link = next(link for link in mail["links"] if "/sns/confirm?" in link)
    r = requests.get(link, timeout=HTTP_TIMEOUT)
    assert r.status_code == 200, r.text
    wait_until(lambda: any(s["Endpoint"] == SUBSCRIBER and s["status"] == "Confirmed" for s in ok(cluster, "GET", "topic")["subscriptions"]),
               timeout=10, interval=0.3, message="the subscription confirmed")


def test_publish_reaches_the_confirmed_subscriber(pipeline):
    cluster = pipeline
    text = f"hello from the console {uuid.uuid4()}"
    answer = ok(cluster, "POST", "topic/publish", {"subject": "Console test", "message": text})
    assert re.fullmatch(r"[0-9a-f-]{36}", answer["MessageId"])
    wait_until(lambda: any(m["to"] == SUBSCRIBER and text in m["body"] for m in ok(cluster, "GET", "inbox")["mails"]),
               timeout=30, interval=0.5, message="the published message in the inbox")
    status, answer = api(cluster, "POST", "topic/publish", {"subject": "no message"})
    assert (status, answer["code"]) == (400, "ValidationException")


def test_lab_order_is_traced_to_the_mail(pipeline):
    cluster = pipeline
    started = ok(cluster, "POST", "lab/order", {})
    assert re.fullmatch(r"[0-9a-f-]{36}", started["messageId"]) and started["postedAt"] > 0

    def finished():
        trace = ok(cluster, "GET", f"lab/trace?traceId={started['traceId']}")
        return trace if trace["done"] else None
    trace = wait_until(finished, timeout=PIPELINE_TIMEOUT, interval=0.5, message="the trace done")
    steps = {s["stage"]: s for s in trace["steps"]}
    assert list(steps) == ["posted", "queued", "row written", "stream record", "published", "mail delivered"]
    missing = [stage for stage, s in steps.items() if s["at"] is None]
    assert not missing, f"stages not reached: {missing}: {trace}"
    assert steps["posted"]["at"] == started["postedAt"]
    # Each stage no earlier than the one before, but for the whole-second times (stream record, mail).
    assert steps["row written"]["at"] >= steps["posted"]["at"]
    assert steps["stream record"]["at"] >= steps["posted"]["at"] - 1000
    assert steps["mail delivered"]["at"] >= steps["posted"]["at"] - 1000
    # The order went through with its marker, and the mail carries it.
    mails = [m for m in ok(cluster, "GET", "inbox")["mails"] if trace["orderID"] in m["body"]]
    assert mails and started["traceId"] in mails[0]["body"]


def test_flow_counts_posts_and_keeps_history(pipeline):
    cluster = pipeline
    for _ in range(5):
        requests.post(cluster.http_url + "/", data=json.dumps(LAB_ORDER), timeout=HTTP_TIMEOUT, headers={"Content-Type": "application/json"})

    def counted():
        flow = ok(cluster, "GET", "flow")
        rates = [next(e for e in sample["edges"] if e["from"] == "gateway")["perSecond"] for sample in flow["history"]]
        return flow if any(r > 0 for r in rates) else None
    flow = wait_until(counted, timeout=20, interval=0.5, message="gateway -> queue counted")
    assert [(e["from"], e["to"]) for e in flow["edges"]] == [
        ("gateway", "queue"), ("queue", "ingest-worker"), ("ingest-worker", "table"), ("table", "stream"),
        ("stream", "stream-worker"), ("stream-worker", "topic"), ("topic", "subscribers")]
    assert {"queue", "stream", "notifier"} <= set(flow["stages"])
    assert {"visible", "inFlight", "delayed", "dlq"} <= set(flow["stages"]["queue"])
    assert 1 <= len(flow["history"]) <= 300 and flow["at"] > 0
    # The orders went through: the downstream edges moved too at some point.
    def downstream():
        history = ok(cluster, "GET", "flow")["history"]
        moved = {(e["from"], e["to"]) for sample in history for e in sample["edges"] if e["perSecond"] > 0}
        return {("queue", "ingest-worker"), ("ingest-worker", "table"), ("table", "stream"), ("stream", "stream-worker")} <= moved
    wait_until(downstream, timeout=PIPELINE_TIMEOUT, interval=1, message="every edge up to the stream worker counted")


def test_events_stream_flow_samples(cluster):
    with requests.get(f"{cluster.http_url}/console/api/events", headers={"Authorization": f"Bearer {token(cluster)}"},
                      stream=True, timeout=HTTP_TIMEOUT) as r:
        assert r.status_code == 200
        assert r.headers["Content-Type"].startswith("text/event-stream")
        deadline = time.monotonic() + 15
        events: list[tuple[str, str]] = []
        event = None
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event:
                events.append((event, line[6:]))
            if sum(1 for e, _ in events if e == "flow") >= 2 or time.monotonic() > deadline:
                break
    flows = [json.loads(d) for e, d in events if e == "flow"]
    clusters = [json.loads(d) for e, d in events if e == "cluster"]
    assert len(flows) >= 2, events
    assert clusters and "processes" in clusters[0]
    assert flows[1]["at"] > flows[0]["at"]


def test_garbage_does_not_hurt_the_gateway(cluster):
    before = wait_until(lambda: ready(cluster, "gateway"), timeout=10, message="gateway running")
    bodies = [b"", b"[" * 100_000, b"\xff\xfe\x00garbage", b"{" + b'"a":' * 50_000, b"x" * (2 << 20), b'{"body": null}',
              b'{"event": ' + b"[" * 600 + b"]" * 600 + b"}", b"[]", b"123", b'{"max": 1e308}', b'{"count": NaN}']
    routes = ["cluster/scale", "cluster/kill", "cluster/restart", "queue/send", "queue/poll", "topic/subscribe", "topic/publish",
              "lab/order", "functions/POC-Lambda-1/invoke", "functions/%00/invoke"]
    for route in routes:
        for body in bodies:
            status, answer = api(cluster, "POST", route, raw=body, timeout=30)
            if route in ("queue/poll", "lab/order") and body in (b"", b'{"body": null}') or (route, body) == ("lab/order", b'{"max": 1e308}'):
                assert status == 200, (route, body, status, answer)
                continue  # nothing that counts given: the defaults (a poll, the lab's order)
            assert 400 <= status < 600 and set(answer) == {"code", "message"}, (route, body[:20], status, answer)
    for query in ["items?limit=99999999999999999999", "items?next=" + "A" * 20_000, "items?next=e30", "items?orderID=%ff%fe",
                  "lab/trace?traceId=" + "%00" * 100, "lab/trace", "inbox?x=1", "flow?history=-1"]:
        status, answer = api(cluster, "GET", query)
        assert status < 500 and ("code" in answer or status == 200), (query, status, answer)
    for header in ["Bearer", "Bearer ", "bearer  " + token(cluster), "Bearer " + "a" * 10_000, "Bearer \u00e9t\u00e9"]:
        r = requests.get(f"{cluster.http_url}/console/api/cluster", headers={"Authorization": header.encode("utf-8")}, timeout=HTTP_TIMEOUT)
        assert r.status_code in (200, 400, 401, 403, 431), (header[:20], r.status_code)
    for path in ["/console/" + "a/" * 500, "/console/%ff", "/console/api/%2e%2e/cluster", "/console//api//cluster", "/console/index.html%00"]:
        r = requests.get(f"{cluster.http_url}{path}", timeout=HTTP_TIMEOUT)
        assert r.status_code in (301, 400, 401, 404), (path, r.status_code)
    after = ready(cluster, "gateway")
    assert after and after["pid"] == before["pid"] and after["incarnation"] == before["incarnation"]


def test_kill_restarts_with_a_new_incarnation(cluster):
    before = wait_until(lambda: ready(cluster, "mail-sink"), timeout=10, message="mail-sink running")
    answer = ok(cluster, "POST", "cluster/kill", {"name": "mail-sink"})
    assert answer == {"name": "mail-sink", "pid": before["pid"]}

    def restarted():
        p = ready(cluster, "mail-sink")
        return p if p and p["incarnation"] != before["incarnation"] and p["pid"] != before["pid"] else None
    after = wait_until(restarted, timeout=30, interval=0.5, message="mail-sink restarted")
    assert after["restarts"] >= before["restarts"] + 1
    answer = ok(cluster, "POST", "cluster/restart", {"name": "mail-sink"})
    assert answer == {"restarting": ["mail-sink"]}
    wait_until(lambda: (p := ready(cluster, "mail-sink")) and p["incarnation"] != after["incarnation"], timeout=30, interval=0.5,
               message="mail-sink restarted again")


# --------------------------------------------------------------------------------------------
# console settings (clusters of their own)
# --------------------------------------------------------------------------------------------


def test_console_path_and_the_url_nimbus_up_prints(tmp_path):
    c = Cluster(tmp_path, find_base_port(), sections={"console": {"path": "/ops/console/"}}, instances={"ingest-worker": 0})
    result = c.up()
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        secret = (tmp_path / "data" / "console-token").read_text().strip()
        assert f"console: http://127.0.0.1:{c.http_port}/ops/console/#token={secret}" in result.stdout, result.stdout
        r = requests.get(f"{c.http_url}/ops/console/", timeout=HTTP_TIMEOUT)
        assert r.status_code == 200 and r.headers["Content-Security-Policy"] == CSP
        r = requests.get(f"{c.http_url}/ops/console/api/cluster", headers={"Authorization": f"Bearer {secret}"}, timeout=HTTP_TIMEOUT)
        assert r.status_code == 200 and r.json()["processes"]
        assert requests.get(f"{c.http_url}/console/", timeout=HTTP_TIMEOUT).status_code == 404
    finally:
        stop_cluster(c)


def test_console_off(tmp_path):
    c = Cluster(tmp_path, find_base_port(), sections={"console": {"enabled": False}}, instances={"ingest-worker": 0})
    result = c.up()
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "console:" not in result.stdout
        assert not (tmp_path / "data" / "console-token").exists()
        for path in ["/console/", "/console/api/cluster"]:
            assert requests.get(f"{c.http_url}{path}", headers={"Authorization": "Bearer x"}, timeout=HTTP_TIMEOUT).status_code == 404
        # POC-API itself works.
        r = requests.post(c.http_url + "/", data=json.dumps(LAB_ORDER), timeout=HTTP_TIMEOUT, headers={"Content-Type": "application/json"})
        assert r.status_code == 200
    finally:
        stop_cluster(c)

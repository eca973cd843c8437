"""The two lab functions as workers: POC-Lambda-1 fed by POC-Queue writes orders idempotently and
retries only failed records (ending in the dead-letter queue); the console's test events run through
`nimbus invoke`; `nimbus items` lists the table."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import requests

from conftest import (
    SQS, STACK_FILE, create_topic_subscriber_queue, queue_url, scan_all, start_cluster, stop_cluster, wait_for_queue,
    wait_until,
)

LAB_BODY = '{"item": "latex gloves", "customerID": "12345"}'
ORDER_NAMESPACE = "nimbus:POC-Lambda-1:order:"


def order_id(message_id: str) -> str:
    """The ingest function's order id: a version-5 UUID of the message id (computed independently here)."""
    import hashlib
    digest = bytearray(hashlib.sha1((ORDER_NAMESPACE + message_id).encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(digest)))


def get_order(client: SQS, oid: str) -> dict | None:
    return client("dynamodb:GetItem", {"TableName": "orders", "Key": {"orderID": {"S": oid}}}).get("Item")


def test_a_post_becomes_one_order_with_an_id_derived_from_the_message(cluster):
    wait_for_queue(cluster)
    r = requests.post(cluster.http_url + "/", data=LAB_BODY.encode(), timeout=5)
    assert r.status_code == 200, r.text
    message_id = r.json()["SendMessageResponse"]["SendMessageResult"]["MessageId"]
    with SQS(cluster.endpoint("table")) as table:
        item = wait_until(lambda: get_order(table, order_id(message_id)), timeout=10, message="order written by the ingest worker")
    assert item == {"orderID": {"S": order_id(message_id)}, "order": {"S": LAB_BODY}}
    # The queue is drained: the worker deleted what it handled.
    with SQS(cluster.endpoint("queue")) as queue:
        wait_until(lambda: queue("sqs:GetQueueAttributes", {"QueueUrl": queue_url("POC-Queue"), "AttributeNames": ["All"]})["Attributes"]
                   ["ApproximateNumberOfMessagesNotVisible"] == "0", timeout=10, message="message deleted after handling")


def test_console_test_events_and_items(cluster):
    first = cluster.nimbus("invoke", "ingest-worker", "--template", "sqs")
    assert first.returncode == 0, first.stderr
    assert "Execution result: succeeded" in first.stdout
    again = cluster.nimbus("invoke", "ingest-worker", "--template", "sqs")
    assert again.returncode == 0, again.stderr
    listing = cluster.nimbus("items")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.count("Hello from SQS!") == 1, "the same test event twice writes one order\n" + listing.stdout
    as_json = [json.loads(line) for line in cluster.nimbus("items", "--json").stdout.splitlines()]
    assert sum(1 for i in as_json if i["order"] == {"S": "Hello from SQS!"}) == 1
    wrong = cluster.nimbus("invoke", "stream-worker", "--template", "sqs")
    assert wrong.returncode == 1 and "InvalidRequestContentException" in wrong.stderr and "Records[0].eventID" in wrong.stderr
    assert cluster.nimbus("invoke", "queue", "--template", "sqs").returncode == 1
    assert "unknown template" in cluster.nimbus("invoke", "ingest-worker", "--template", "nope").stderr
    assert cluster.nimbus("items", "nope").returncode == 1


def test_only_the_failing_record_of_a_batch_is_retried(cluster, tmp_path: Path):
    """An oversize order (> DynamoDB's 400 KB item limit) fails alone; its neighbours are written."""
    event = {"Records": [
        {"messageId": mid, "receiptHandle": "h", "body": body, "attributes": {}, "messageAttributes": {}, "md5OfBody": "",
         "eventSource": "aws:sqs", "eventSourceARN": "arn:aws:sqs:us-east-1:000000000000:POC-Queue", "awsRegion": "us-east-1"}
        for mid, body in [("ok-1", "a"), ("too-big", "x" * 420_000), ("ok-2", "b")]]}
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event))
    result = cluster.nimbus("invoke", "ingest-worker", "--event", str(path))
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout.split("\n", 1)[1])
    assert payload == {"batchItemFailures": [{"itemIdentifier": "too-big"}]}
    with SQS(cluster.endpoint("table")) as table:
        assert get_order(table, order_id("ok-1")) and get_order(table, order_id("ok-2"))
        assert get_order(table, order_id("too-big")) is None


def test_scaled_ingest_workers_write_each_order_once_and_failures_end_in_the_dlq(tmp_path: Path):
    """Three ingest workers compete for 300 messages: 300 orders, none twice. A message that always
    fails is received maxReceiveCount times and then sits in POC-Queue-DLQ (visibility shortened to
    1 s and maxReceiveCount to 2 in a copy of the lab's stack, so the test is quick)."""
    stack = tmp_path / "stack.yaml"
    stack.write_text(STACK_FILE.read_text().replace("VisibilityTimeout: 30", "VisibilityTimeout: 1")
                     .replace("maxReceiveCount: 5", "maxReceiveCount: 2"))
    assert stack.read_text() != STACK_FILE.read_text()
    c = start_cluster(tmp_path / "c", stack=stack) if (tmp_path / "c").mkdir() is None else None
    try:
        scaled = c.nimbus("scale", "ingest-worker=3")
        assert scaled.returncode == 0, scaled.stderr
        url = wait_for_queue(c)
        with SQS(c.endpoint("queue")) as queue:
            bodies = [json.dumps({"item": "gloves", "n": i}) for i in range(300)]
            ids = []
            for start in range(0, 300, 10):
                answer = queue("sqs:SendMessageBatch", {"QueueUrl": url, "Entries": [
                    {"Id": f"e{i}", "MessageBody": b} for i, b in enumerate(bodies[start:start + 10])]})
                ids += [e["MessageId"] for e in answer["Successful"]]
            poison = queue("sqs:SendMessage", {"QueueUrl": url, "MessageBody": "x" * 420_000})["MessageId"]
            with SQS(c.endpoint("table")) as table:
                wait_until(lambda: len(scan_all(table)) >= 300, timeout=30, message="300 orders written")
                items = scan_all(table)
            assert sorted(i["orderID"]["S"] for i in items) == sorted(order_id(m) for m in ids), "each order exactly once"
            health = [c.nimbus("health", f"ingest-worker-{n}") for n in (1, 2, 3)]
            assert all(h.returncode == 0 for h in health)
            dlq = queue_url("POC-Queue-DLQ")
            moved = wait_until(lambda: queue.receive(dlq, wait=1), timeout=30, message="poison message in the DLQ")
            assert [m["MessageId"] for m in moved] == [poison]
            assert int(moved[0]["Attributes"]["ApproximateReceiveCount"]) >= 1
    finally:
        stop_cluster(c)


def test_a_second_stream_worker_takes_over_the_shard_of_a_killed_one(tmp_path: Path):
    """Two stream workers share the orders stream's one shard through a lease: one reads, the other
    waits. SIGKILL the reader: after its lease expires (10 s) a worker takes the shard over from the
    checkpoint, and new orders are published again; none is published twice."""
    import os
    import signal

    from conftest import process_by_name
    (tmp_path / "c").mkdir()
    c = start_cluster(tmp_path / "c")
    try:
        assert c.nimbus("scale", "stream-worker=2").returncode == 0
        wait_for_queue(c)
        with SQS(c.endpoint("queue")) as queue:
            arn = create_topic_subscriber_queue(queue, "watch")
        assert c.nimbus("subscribe", "sqs", arn).returncode == 0

        def post(n: int) -> None:
            assert requests.post(c.http_url + "/orders", data=json.dumps({"n": n}).encode(), timeout=5).status_code == 200

        def published(queue: SQS) -> list[int]:
            seen = []
            for m in queue.drain(queue_url("watch")):
                image = json.loads(json.loads(m["Body"])["Message"])
                seen.append(json.loads(image["order"]["S"])["n"])
            return seen

        with SQS(c.endpoint("queue")) as queue, SQS(c.endpoint("table")) as table:
            seen: list[int] = []
            post(1)
            wait_until(lambda: seen.extend(published(queue)) or 1 in seen, timeout=15, message="first order published")
            leases = scan_all(table, "nimbus-stream-leases")
            assert len(leases) == 1
            owner = leases[0]["owner"]["S"]
            holder = owner.split("/")[0]
            assert holder in ("stream-worker-1", "stream-worker-2")
            pid = process_by_name(c.status(), holder)["pid"]
            os.kill(pid, signal.SIGKILL)
            post(2)
            post(3)
            wait_until(lambda: seen.extend(published(queue)) or {2, 3} <= set(seen), timeout=40, message="orders published after the takeover")
            assert sorted(seen) == [1, 2, 3], "each order published once"
            new_owner = scan_all(table, "nimbus-stream-leases")[0]["owner"]["S"]
            assert new_owner != owner
    finally:
        stop_cluster(c)


def test_raw_message_delivery_gives_a_subscriber_queue_the_published_message_itself(cluster):
    wait_for_queue(cluster)
    topic = "arn:aws:sns:us-east-1:000000000000:POC-Topic"
    with SQS(cluster.endpoint("queue")) as queue, SQS(cluster.endpoint("notifier")) as sns:
        raw_arn = create_topic_subscriber_queue(queue, "raw-watch")
        wrapped_arn = create_topic_subscriber_queue(queue, "wrapped-watch")
        # The CLI's `subscribe --raw`, which sends Subscribe with the attribute.
        subscribed = cluster.nimbus("subscribe", "sqs", raw_arn, "--raw")
        assert subscribed.returncode == 0, subscribed.stderr
        raw = subscribed.stdout.strip().splitlines()[0]
        wrapped = sns("sns:Subscribe", {"TopicArn": topic, "Protocol": "sqs", "Endpoint": wrapped_arn})["SubscriptionArn"]
        attributes = sns("sns:GetSubscriptionAttributes", {"SubscriptionArn": raw})["Attributes"]
        assert attributes["RawMessageDelivery"] == "true" and attributes["Endpoint"] == raw_arn, attributes
        assert sns("sns:GetSubscriptionAttributes", {"SubscriptionArn": wrapped})["Attributes"]["RawMessageDelivery"] == "false"
        # Email cannot take raw delivery; attributes Nimbus does not implement are refused by name.
        assert sns.error("sns:SetSubscriptionAttributes", {"SubscriptionArn": wrapped, "AttributeName": "FilterPolicy",
                                                            "AttributeValue": "{}"}) == "InvalidParameter"
        assert sns.error("sns:Subscribe", {"TopicArn": topic, "Protocol": "email", "Endpoint": "raw@example.com",
                                           "Attributes": {"RawMessageDelivery": "true"}}) == "InvalidParameter"

        body = json.dumps({"item": "raw gloves", "n": 7})
        assert requests.post(cluster.http_url + "/orders", data=body.encode(), timeout=5).status_code == 200

        def order_of(message: str) -> dict:
            return json.loads(json.loads(message)["order"]["S"])

        def arrival(name: str, n: int, unwrap: bool) -> str:
            """The body of the notification for order ``n`` (earlier orders may still be on their way)."""
            seen: list[str] = []

            def find() -> str | None:
                seen.extend(m["Body"] for m in queue.drain(queue_url(name)))
                for found in seen:
                    try:
                        if order_of(json.loads(found)["Message"] if unwrap else found).get("n") == n:
                            return found
                    except (ValueError, KeyError, TypeError):
                        continue
                return None
            return wait_until(find, timeout=15, message=f"order {n}'s notification in {name}")

        raw_body = arrival("raw-watch", 7, unwrap=False)
        document = json.loads(arrival("wrapped-watch", 7, unwrap=True))
        assert document["Type"] == "Notification"
        assert raw_body == document["Message"], "the raw queue gets exactly the message the wrapped one carries"
        assert order_of(raw_body) == {"item": "raw gloves", "n": 7}

        # A raw delivery's message attributes become the SQS message's own.
        sns("sns:Publish", {"TopicArn": topic, "Message": "direct",
                            "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "order"}}})

        def direct() -> dict | None:
            answer = queue("ReceiveMessage", {"QueueUrl": queue_url("raw-watch"), "MaxNumberOfMessages": 10,
                                              "MessageAttributeNames": ["All"], "WaitTimeSeconds": 1})
            return next((m for m in answer.get("Messages", []) if m["Body"] == "direct"), None)
        message = wait_until(direct, timeout=15, message="the direct publish in the raw queue")
        assert message["MessageAttributes"] == {"kind": {"DataType": "String", "StringValue": "order"}}, message

        # Switched off, the next notification is SNS's document again.
        sns("sns:SetSubscriptionAttributes", {"SubscriptionArn": raw, "AttributeName": "RawMessageDelivery", "AttributeValue": "false"})
        assert requests.post(cluster.http_url + "/orders", data=b'{"n": 8}', timeout=5).status_code == 200
        assert json.loads(arrival("raw-watch", 8, unwrap=True))["Type"] == "Notification"
        for arn in (raw, wrapped):
            sns("sns:Unsubscribe", {"SubscriptionArn": arn})


def test_a_filter_policy_lets_only_matching_publishes_reach_a_subscriber_queue(cluster):
    wait_for_queue(cluster)
    topic = "arn:aws:sns:us-east-1:000000000000:POC-Topic"
    with SQS(cluster.endpoint("queue")) as queue, SQS(cluster.endpoint("notifier")) as sns:
        arn = create_topic_subscriber_queue(queue, "big-orders")
        subscription = sns("sns:Subscribe", {"TopicArn": topic, "Protocol": "sqs", "Endpoint": arn,
                                             "Attributes": {"RawMessageDelivery": "true"}})["SubscriptionArn"]
        policy = json.dumps({"total": [{"numeric": [">=", 100]}], "store": ["north", {"prefix": "south-"}]})
        sns("sns:SetSubscriptionAttributes", {"SubscriptionArn": subscription, "AttributeName": "FilterPolicy", "AttributeValue": policy})
        assert sns("sns:GetSubscriptionAttributes", {"SubscriptionArn": subscription})["Attributes"]["FilterPolicy"] == policy
        assert sns.error("sns:SetSubscriptionAttributes", {"SubscriptionArn": subscription, "AttributeName": "FilterPolicy",
                                                            "AttributeValue": '{"total": 5}'}) == "InvalidParameter"

        def publish(message: str, total: str | None, store: str) -> None:
            attributes = {"store": {"DataType": "String", "StringValue": store}}
            if total is not None:
                attributes["total"] = {"DataType": "Number", "StringValue": total}
            sns("sns:Publish", {"TopicArn": topic, "Message": message, "MessageAttributes": attributes})

        publish("small", "20", "north")
        publish("no total", None, "north")
        publish("wrong store", "500", "east")
        publish("big south", "150", "south-2")
        publish("big north", "100", "north")
        # Filtering happens at publish time: a publish that does not match puts nothing in the
        # outbox for this queue, so once the two matching ones are in, nothing else is on its way
        # (the orders the lab's pipeline publishes carry no attributes, so they never match).
        got: list[str] = []
        wait_until(lambda: got.extend(m["Body"] for m in queue.drain(queue_url("big-orders"))) or {"big north", "big south"} <= set(got),
                   timeout=15, message="the matching publishes")
        assert sorted(got) == ["big north", "big south"], got
        sns("sns:Unsubscribe", {"SubscriptionArn": subscription})

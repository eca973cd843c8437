"""The lab end to end: POST -> queue -> ingest worker -> orders table -> stream -> stream worker ->
POC-Topic -> email, through the cluster's own SMTP sink, with a subscriber confirmed by clicking the
link in its confirmation mail; and the same with workers and the notifier SIGKILLed under load."""

from __future__ import annotations

import email
import email.policy
import json
import os
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from conftest import SQS, STACK_FILE, process_by_name, start_cluster, stop_cluster, wait_for_queue, wait_until

LAB_BODY = '{"item": "latex gloves", "customerID": "12345"}'


def mails(cluster, to: str) -> list[email.message.EmailMessage]:
    out = []
    for path in sorted(cluster.mail_directory.glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["X-Nimbus-Rcpt"] == to:
            out.append(message)
    return out


def confirmation(cluster, to: str) -> email.message.EmailMessage:
    return wait_until(lambda: next((m for m in mails(cluster, to) if "Subscription Confirmation" in m["Subject"]), None),
                      timeout=10, message=f"confirmation mail to {to}")


def subscribe_and_confirm(cluster, address: str) -> None:
    result = cluster.nimbus("subscribe", "email", address)
    assert result.returncode == 0, result.stderr
    body = confirmation(cluster, address).get_content()
    link = re.search(r"http://\S+/sns/confirm\?\S+", body)
    assert link, body
    page = requests.get(link.group(0), timeout=5)
    assert page.status_code == 200 and "Subscription confirmed!" in page.text, page.text
    listing = cluster.nimbus("subscriptions", "--json")
    subscriptions = json.loads(listing.stdout)["Subscriptions"]
    assert any(s["Endpoint"] == address and s["SubscriptionArn"].startswith("arn:aws:sns:") for s in subscriptions), subscriptions


def notifications(cluster, to: str) -> list[email.message.EmailMessage]:
    return [m for m in mails(cluster, to) if "Subscription Confirmation" not in m["Subject"]]


def order_ids_in(messages: list[email.message.EmailMessage]) -> list[str]:
    """Each notification carries the new image as DynamoDB JSON (the lab's json.dumps(NewImage))."""
    return [json.loads(m.get_content().strip().splitlines()[0])["orderID"]["S"] for m in messages]


def test_a_post_becomes_an_order_and_one_email_to_the_confirmed_subscriber_only(cluster):
    wait_for_queue(cluster)
    subscribe_and_confirm(cluster, "buyer@example.com")
    assert cluster.nimbus("subscribe", "email", "pending@example.com").returncode == 0
    confirmation(cluster, "pending@example.com")
    bad = requests.get(cluster.http_url + "/sns/confirm?TopicArn=arn:aws:sns:us-east-1:000000000000:POC-Topic&Token=nope", timeout=5)
    assert bad.status_code == 400
    assert requests.get(cluster.http_url + "/sns/confirm", timeout=5).status_code == 400

    started = time.monotonic()
    r = requests.post(cluster.http_url + "/", data=LAB_BODY.encode(), timeout=5)
    assert r.status_code == 200, r.text
    got = wait_until(lambda: notifications(cluster, "buyer@example.com") or None, timeout=10, message="order email")
    elapsed = time.monotonic() - started
    assert elapsed < 2.0, f"the email took {elapsed:.2f} s"
    assert len(got) == 1
    image = json.loads(got[0].get_content().strip().splitlines()[0])
    assert image["order"] == {"S": LAB_BODY}
    with SQS(cluster.endpoint("table")) as table:
        item = table("dynamodb:GetItem", {"TableName": "orders", "Key": {"orderID": image["orderID"]}})["Item"]
        assert item["order"]["S"] == LAB_BODY
    # Nothing more arrives, and the unconfirmed subscriber has only its confirmation.
    time.sleep(0.5)  # a short grace period to catch a duplicate; the assertion itself needs no timing
    assert len(notifications(cluster, "buyer@example.com")) == 1
    assert [m["Subject"] for m in mails(cluster, "pending@example.com")] == ["AWS Notification - Subscription Confirmation"]


def test_a_thousand_orders_survive_killed_workers_and_notifier(tmp_path: Path):
    """1,000 orders posted while the ingest worker, the stream worker and the notifier are each
    SIGKILLed (twice): 1,000 rows and 1,000 emails, none twice. The queue's visibility timeout is
    shortened to 3 s (in a copy of the lab's stack) so messages held by a killed worker come back soon."""
    stack = tmp_path / "stack.yaml"
    stack.write_text(STACK_FILE.read_text().replace("VisibilityTimeout: 30", "VisibilityTimeout: 3"))
    (tmp_path / "c").mkdir()
    c = start_cluster(tmp_path / "c", stack=stack)
    try:
        wait_for_queue(c)
        subscribe_and_confirm(c, "chaos@example.com")
        victims = ["ingest-worker-1", "stream-worker-1", "notifier"]
        killed: dict[str, int] = {v: 0 for v in victims}
        stop = threading.Event()

        def chaos() -> None:
            round_ = 0
            while not stop.is_set() and round_ < 6:
                name = victims[round_ % len(victims)]
                p = process_by_name(c.status(), name)
                if p and p.get("pid") and p["state"] == "running":
                    os.kill(p["pid"], signal.SIGKILL)
                    killed[name] += 1
                    round_ += 1
                stop.wait(0.7)

        bodies = [json.dumps({"item": "latex gloves", "customerID": str(i)}) for i in range(1000)]
        killer = threading.Thread(target=chaos)
        killer.start()
        try:
            with ThreadPoolExecutor(max_workers=8) as pool:
                answers = list(pool.map(lambda b: requests.post(c.http_url + "/orders", data=b.encode(), timeout=10), bodies))
        finally:
            killer.join(timeout=30)
            stop.set()
        assert all(a.status_code == 200 for a in answers), {a.status_code for a in answers}
        assert all(n >= 1 for n in killed.values()), killed

        with SQS(c.endpoint("table")) as table:
            def rows() -> list[dict]:
                items, start = [], None
                for _ in range(100):
                    request = {"TableName": "orders", **({"ExclusiveStartKey": start} if start else {})}
                    page = table("dynamodb:Scan", request)
                    items += page["Items"]
                    start = page.get("LastEvaluatedKey")
                    if not start:
                        return items
                raise AssertionError("scan did not end")
            wait_until(lambda: len(rows()) >= 1000, timeout=120, message="1,000 rows")
            items = rows()
        assert len(items) == 1000
        assert sorted(i["order"]["S"] for i in items) == sorted(bodies), "every order once"
        wait_until(lambda: len(notifications(c, "chaos@example.com")) >= 1000, timeout=120, message="1,000 emails")
        ids = order_ids_in(notifications(c, "chaos@example.com"))
        assert len(ids) == 1000 and len(set(ids)) == 1000, "one email per order"
        assert set(ids) == {i["orderID"]["S"] for i in items}
    finally:
        stop_cluster(c)

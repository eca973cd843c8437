"""The write alarms (`storage.minFreeDiskMB`, `storage.maxMemoryPercent`): with less free space than
the reserve, or a node holding more memory than its limit, writes that grow durable state are refused
with ServiceUnavailable and the gateway answers 503; reads, receives and deletes go on, and no node
exits. The limits here are past any machine's, so each alarm is on from the start without filling a
disk or the memory (the unit tests cover measuring, re-measuring and clearing)."""

from __future__ import annotations

import pytest
import requests

from conftest import SQS, process_by_name, queue_url, start_cluster, stop_cluster, wait_for_queue

POC = queue_url("POC-Queue")
TOPIC = "arn:aws:sns:us-east-1:000000000000:POC-Topic"


@pytest.mark.parametrize("alarm, storage, says", [
    ("disk", {"minFreeDiskMB": 1 << 40}, "under the 1099511627776 MB reserve (storage.minFreeDiskMB)"),
    ("memory", {"maxMemoryPercent": 0.0001}, "MB limit (storage.maxMemoryPercent)"),
])
def test_an_alarm_refuses_writes_with_a_clear_error_and_keeps_every_node_up(tmp_path, alarm, storage, says):
    cluster = start_cluster(tmp_path, sections={"storage": storage})
    try:
        wait_for_queue(cluster, "POC-Queue")
        before = {p["name"]: p["pid"] for p in cluster.status()["processes"]}

        r = requests.post(cluster.http_url + "/orders", json={"item": "latex gloves", "customerID": "12345"}, timeout=10)
        assert r.status_code == 503, r.text
        assert says in r.json()["message"], r.text

        with SQS(cluster.endpoint("queue")) as sqs:
            assert sqs.error("SendMessage", {"QueueUrl": POC, "MessageBody": "x"}) == "ServiceUnavailable"
            entries = [{"Id": "a", "MessageBody": "x"}]
            assert sqs.error("SendMessageBatch", {"QueueUrl": POC, "Entries": entries}) == "ServiceUnavailable"
            assert sqs.receive(POC, wait=0) == []  # consumers go on
            assert sqs("GetQueueAttributes", {"QueueUrl": POC})["Attributes"]["ApproximateNumberOfMessages"] == "0"

        with SQS(cluster.endpoint("table")) as table:
            item = {"orderID": {"S": "o-1"}, "order": {"S": "{}"}}
            assert table.error("dynamodb:PutItem", {"TableName": "orders", "Item": item}) == "ServiceUnavailable"
            assert table.error("dynamodb:UpdateItem", {"TableName": "orders", "Key": {"orderID": {"S": "o-1"}},
                                                       "UpdateExpression": "SET n = :n",
                                                       "ExpressionAttributeValues": {":n": {"N": "1"}}}) == "ServiceUnavailable"
            assert table.error("dynamodb:BatchWriteItem",
                               {"RequestItems": {"orders": [{"PutRequest": {"Item": item}}]}}) == "ServiceUnavailable"
            assert table("dynamodb:GetItem", {"TableName": "orders", "Key": {"orderID": {"S": "o-1"}}}) == {}
            table("dynamodb:DeleteItem", {"TableName": "orders", "Key": {"orderID": {"S": "o-1"}}})
            assert table("dynamodb:Scan", {"TableName": "orders"})["Count"] == 0

        with SQS(cluster.endpoint("notifier")) as sns:
            assert sns.error("sns:Publish", {"TopicArn": TOPIC, "Message": "hi"}) == "ServiceUnavailable"
            assert sns.error("sns:PublishBatch", {"TopicArn": TOPIC, "PublishBatchRequestEntries": [
                {"Id": "a", "Message": "hi"}]}) == "ServiceUnavailable"
            assert TOPIC in [t["TopicArn"] for t in sns("sns:ListTopics", {})["Topics"]]

        after = {p["name"]: p["pid"] for p in cluster.status()["processes"]}
        assert after == before, "no node exited or was restarted"
        for node in ("queue", "table", "notifier"):
            assert process_by_name(cluster.status(), node)["state"] == "running"
            log = (cluster.directory / "data" / "logs" / f"{node}.log").read_text(errors="replace")
            assert f"{alarm} alarm" in log, f"{node} logs the {alarm} alarm"
    finally:
        stop_cluster(cluster)

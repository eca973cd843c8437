"""The disk alarm (`storage.minFreeDiskMB`): with less free space than the reserve, writes that grow
durable state are refused with ServiceUnavailable, and the gateway answers 503; reads, receives and
deletes go on, and no node exits. The reserve here is larger than any disk, so the alarm is on from the
start without filling one (the unit tests cover measuring, re-measuring and clearing)."""

from __future__ import annotations

import requests

from conftest import SQS, process_by_name, queue_url, start_cluster, stop_cluster, wait_for_queue

POC = queue_url("POC-Queue")
TOPIC = "arn:aws:sns:us-east-1:000000000000:POC-Topic"


def test_a_full_disk_refuses_writes_with_a_clear_error_and_keeps_every_node_up(tmp_path):
    cluster = start_cluster(tmp_path, sections={"storage": {"minFreeDiskMB": 1 << 40}})
    try:
        wait_for_queue(cluster, "POC-Queue")
        before = {p["name"]: p["pid"] for p in cluster.status()["processes"]}

        r = requests.post(cluster.http_url + "/orders", json={"item": "latex gloves", "customerID": "12345"}, timeout=10)
        assert r.status_code == 503, r.text
        assert "under the 1099511627776 MB reserve (storage.minFreeDiskMB)" in r.json()["message"], r.text

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
            assert "disk alarm" in log, f"{node} logs the alarm"
    finally:
        stop_cluster(cluster)

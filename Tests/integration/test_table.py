"""The table node: the lab's orders table with its NEW_IMAGE stream exists at start; writes are durable
with their stream records across a SIGKILL; stream iterators resume exactly after a checkpoint."""

from __future__ import annotations

import os
import signal

from conftest import SQS, SQSError, process_by_name, wait_until

SHARD = "shardId-00000000000000000000-00000000"


def table(cluster) -> SQS:
    return SQS(cluster.endpoint("table"))


def put(client: SQS, order_id: str, body: str) -> None:
    client("dynamodb:PutItem", {"TableName": "orders", "Item": {"orderID": {"S": order_id}, "order": {"S": body}},
                                "ConditionExpression": "attribute_not_exists(orderID)"})


def read_all(client: SQS, arn: str, iterator_type: str = "TRIM_HORIZON", sequence: str | None = None) -> list[dict]:
    request = {"StreamArn": arn, "ShardId": SHARD, "ShardIteratorType": iterator_type}
    if sequence:
        request["SequenceNumber"] = sequence
    iterator = client("dynamodb:GetShardIterator", request)["ShardIterator"]
    records: list[dict] = []
    for _ in range(100):  # bounded
        page = client("dynamodb:GetRecords", {"ShardIterator": iterator, "Limit": 100})
        records += page["Records"]
        iterator = page["NextShardIterator"]
        if not page["Records"]:
            break
    return records


def test_orders_table_and_stream_exist(cluster):
    with table(cluster) as client:
        description = wait_until(lambda: _describe(client), timeout=10, message="orders table exists")
        assert description["KeySchema"] == [{"AttributeName": "orderID", "KeyType": "HASH"}]
        assert description["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
        streams = client("dynamodb:ListStreams", {"TableName": "orders"})["Streams"]
        assert [s["StreamArn"] for s in streams] == [description["LatestStreamArn"]]


def _describe(client: SQS):
    try:
        return client("dynamodb:DescribeTable", {"TableName": "orders"})["Table"]
    except SQSError:
        return None


def test_errors_use_dynamodb_codes(cluster):
    with table(cluster) as client:
        assert client.error("dynamodb:PutItem", {"TableName": "nope", "Item": {"orderID": {"S": "x"}}}) == "ResourceNotFoundException"
        assert client.error("dynamodb:PutItem", {"TableName": "orders", "Item": {"orderID": {"N": "1"}}}) == "ValidationException"
        assert client.error("dynamodb:PutItem", {"TableName": "orders", "Item": {"orderID": {"S": "x"}, "n": {"N": "abc"}}}) == "ValidationException"
        assert client.error("dynamodb:PutItem", {"TableName": "orders", "Item": {"orderID": {"S": "x"}},
                                                 "ConditionExpression": "attribute_exists(("}) == "ValidationException"
        put(client, "dup", "first")
        assert client.error("dynamodb:PutItem", {"TableName": "orders", "Item": {"orderID": {"S": "dup"}},
                                                 "ConditionExpression": "attribute_not_exists(orderID)"}) == "ConditionalCheckFailedException"
        assert client.error("dynamodb:CreateTable", {"TableName": "orders", "KeySchema": [{"AttributeName": "orderID", "KeyType": "HASH"}],
                                                     "AttributeDefinitions": [{"AttributeName": "orderID", "AttributeType": "S"}]}) == "ResourceInUseException"


def test_writes_and_records_survive_sigkill_and_iterators_resume_exactly(cluster):
    with table(cluster) as client:
        arn = wait_until(lambda: _describe(client), timeout=10, message="orders table exists")["LatestStreamArn"]
        before = {r["dynamodb"]["Keys"]["orderID"]["S"] for r in read_all(client, arn)}
        ids = [f"kill-{i}" for i in range(200)]
        for order_id in ids:
            put(client, order_id, f'{{"item": "gloves", "n": {order_id[5:]}}}')
    old = process_by_name(cluster.status(), "table")
    os.kill(old["pid"], signal.SIGKILL)
    wait_until(lambda: (p := process_by_name(cluster.status(), "table")) and p["state"] == "running" and p["pid"] != old["pid"],
               timeout=10, message="table restarted")
    with table(cluster) as client:
        for order_id in ids:
            item = client("dynamodb:GetItem", {"TableName": "orders", "Key": {"orderID": {"S": order_id}}})["Item"]
            assert item["order"]["S"] == f'{{"item": "gloves", "n": {order_id[5:]}}}'
        records = [r for r in read_all(client, arn) if r["dynamodb"]["Keys"]["orderID"]["S"] not in before]
        assert [r["dynamodb"]["Keys"]["orderID"]["S"] for r in records] == ids, "every INSERT, in order, once"
        assert all(r["eventName"] == "INSERT" and r["eventSource"] == "aws:dynamodb" for r in records)
        assert all(r["dynamodb"]["NewImage"]["orderID"]["S"] == r["dynamodb"]["Keys"]["orderID"]["S"] for r in records)
        sequences = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
        assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
        checkpoint = records[99]["dynamodb"]["SequenceNumber"]
        resumed = read_all(client, arn, "AFTER_SEQUENCE_NUMBER", checkpoint)
        assert [r["dynamodb"]["Keys"]["orderID"]["S"] for r in resumed][:100] == ids[100:], "nothing skipped, nothing repeated"
        at = read_all(client, arn, "AT_SEQUENCE_NUMBER", checkpoint)
        assert at[0]["dynamodb"]["SequenceNumber"] == checkpoint
        assert read_all(client, arn, "LATEST") == []


def test_batch_write_scan_pages_and_query(cluster):
    with table(cluster) as client:
        wait_until(lambda: _describe(client), timeout=10, message="orders table exists")
        for chunk in range(2):
            client("dynamodb:BatchWriteItem", {"RequestItems": {"orders": [
                {"PutRequest": {"Item": {"orderID": {"S": f"batch-{chunk * 25 + i:03d}"}, "n": {"N": str(chunk * 25 + i)}}}} for i in range(25)]}})
        assert client.error("dynamodb:BatchWriteItem", {"RequestItems": {"orders": [
            {"PutRequest": {"Item": {"orderID": {"S": f"x{i}"}}}} for i in range(26)]}}) == "ValidationException"
        seen, start = [], None
        for _ in range(100):  # bounded
            request = {"TableName": "orders", "Limit": 7, "FilterExpression": "begins_with(orderID, :p)",
                       "ExpressionAttributeValues": {":p": {"S": "batch-"}}}
            if start:
                request["ExclusiveStartKey"] = start
            page = client("dynamodb:Scan", request)
            seen += [item["orderID"]["S"] for item in page["Items"]]
            start = page.get("LastEvaluatedKey")
            if not start:
                break
        assert seen == [f"batch-{i:03d}" for i in range(50)]
        got = client("dynamodb:Query", {"TableName": "orders", "KeyConditionExpression": "#k = :v",
                                        "ExpressionAttributeNames": {"#k": "orderID"}, "ExpressionAttributeValues": {":v": {"S": "batch-007"}}})
        assert got["Count"] == 1 and got["Items"][0]["n"] == {"N": "7"}
        got = client("dynamodb:BatchGetItem", {"RequestItems": {"orders": {"Keys": [{"orderID": {"S": "batch-001"}}, {"orderID": {"S": "nope"}}]}}})
        assert [i["orderID"]["S"] for i in got["Responses"]["orders"]] == ["batch-001"]


def test_update_item_set_remove_add_with_conditions_and_return_values(cluster):
    with table(cluster) as client:
        wait_until(lambda: _describe(client), timeout=10, message="orders table exists")
        key = {"orderID": {"S": "upd-1"}}
        got = client("dynamodb:UpdateItem", {"TableName": "orders", "Key": key, "UpdateExpression": "SET #s = :s, n = if_not_exists(n, :zero) + :one",
                                             "ExpressionAttributeNames": {"#s": "status"},
                                             "ExpressionAttributeValues": {":s": {"S": "new"}, ":zero": {"N": "0"}, ":one": {"N": "1"}},
                                             "ReturnValues": "ALL_NEW"})
        assert got["Attributes"] == {"orderID": {"S": "upd-1"}, "status": {"S": "new"}, "n": {"N": "1"}}
        got = client("dynamodb:UpdateItem", {"TableName": "orders", "Key": key, "UpdateExpression": "ADD n :one REMOVE #s",
                                             "ConditionExpression": "#s = :expected", "ExpressionAttributeNames": {"#s": "status"},
                                             "ExpressionAttributeValues": {":one": {"N": "1"}, ":expected": {"S": "new"}},
                                             "ReturnValues": "UPDATED_OLD"})
        assert got["Attributes"] == {"status": {"S": "new"}, "n": {"N": "1"}}
        item = client("dynamodb:GetItem", {"TableName": "orders", "Key": key})["Item"]
        assert item == {"orderID": {"S": "upd-1"}, "n": {"N": "2"}}
        # The condition no longer holds: nothing changes.
        assert client.error("dynamodb:UpdateItem", {"TableName": "orders", "Key": key, "UpdateExpression": "SET n = :one",
                                                    "ConditionExpression": "attribute_exists(#s)", "ExpressionAttributeNames": {"#s": "status"},
                                                    "ExpressionAttributeValues": {":one": {"N": "1"}}}) == "ConditionalCheckFailedException"
        for bad in [{"UpdateExpression": "SET orderID = :v", "ExpressionAttributeValues": {":v": {"S": "x"}}},  # a key attribute
                    {"UpdateExpression": "SET a = :v", "ExpressionAttributeValues": {":v": {"S": "x"}, ":unused": {"S": "y"}}},
                    {"UpdateExpression": "SET a = a +", "ExpressionAttributeValues": {}},
                    {"UpdateExpression": "SET n = n + :v", "ExpressionAttributeValues": {":v": {"S": "x"}}}]:
            assert client.error("dynamodb:UpdateItem", {"TableName": "orders", "Key": key, **bad}) == "ValidationException", bad
        assert client("dynamodb:GetItem", {"TableName": "orders", "Key": key})["Item"]["n"] == {"N": "2"}


def test_update_table_stream_and_delete_table(cluster):
    with table(cluster) as client:
        spec = {"AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
                "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}]}
        client("dynamodb:CreateTable", {"TableName": "scratch", **spec})
        assert "LatestStreamArn" not in client("dynamodb:DescribeTable", {"TableName": "scratch"})["Table"]
        on = client("dynamodb:UpdateTable", {"TableName": "scratch", "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}})
        arn = on["TableDescription"]["LatestStreamArn"]
        assert client.error("dynamodb:UpdateTable", {"TableName": "scratch", "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}}) == "ValidationException"
        client("dynamodb:PutItem", {"TableName": "scratch", "Item": {"k": {"S": "a"}, "v": {"S": "1"}}})
        records = client("dynamodb:GetRecords", {"ShardIterator": client("dynamodb:GetShardIterator", {
            "StreamArn": arn, "ShardId": SHARD, "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]})["Records"]
        assert [r["dynamodb"]["Keys"] for r in records] == [{"k": {"S": "a"}}] and "NewImage" not in records[0]["dynamodb"]
        client("dynamodb:UpdateTable", {"TableName": "scratch", "StreamSpecification": {"StreamEnabled": False}})
        assert client("dynamodb:DescribeStream", {"StreamArn": arn})["StreamDescription"]["StreamStatus"] == "DISABLED"
        gone = client("dynamodb:DeleteTable", {"TableName": "scratch"})["TableDescription"]
        assert gone["TableStatus"] == "DELETING" and gone["ItemCount"] == 1
        assert client.error("dynamodb:DescribeTable", {"TableName": "scratch"}) == "ResourceNotFoundException"
        assert client.error("dynamodb:DeleteTable", {"TableName": "scratch"}) == "ResourceNotFoundException"
        assert "scratch" not in client("dynamodb:ListTables", {})["TableNames"]


def test_a_recreated_table_s_long_poll_waits_for_its_own_records(cluster):
    """After DeleteTable, a new table of the same name numbers its records from 1 again: a long poll on
    its empty stream must wait, not return at once because the old table had got further."""
    import time

    spec = {"AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}], "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
            "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}}
    with table(cluster) as client:
        client("dynamodb:CreateTable", {"TableName": "again", **spec})
        for i in range(3):
            client("dynamodb:PutItem", {"TableName": "again", "Item": {"k": {"S": f"old-{i}"}}})
        client("dynamodb:DeleteTable", {"TableName": "again"})
        arn = client("dynamodb:CreateTable", {"TableName": "again", **spec})["TableDescription"]["LatestStreamArn"]
        iterator = client("dynamodb:GetShardIterator", {"StreamArn": arn, "ShardId": SHARD, "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
        started = time.monotonic()
        page = client("dynamodb:GetRecords", {"ShardIterator": iterator, "WaitTimeMilliseconds": 800})
        waited = time.monotonic() - started
        assert page["Records"] == []
        assert waited >= 0.6, f"the long poll came back after {waited:.3f} s instead of waiting"
        client("dynamodb:DeleteTable", {"TableName": "again"})


def test_deep_expressions_and_items_are_refused_without_harm(cluster):
    """A ConditionExpression of 2,000 nested parentheses once crashed the table node (its parser
    recursed off the end of the stack); now it, an expression over 4 KB and an item nested deeper
    than DynamoDB's 32 levels are ValidationExceptions, and the node keeps running."""
    before = process_by_name(cluster.status(), "table")["pid"]
    inner = "attribute_not_exists(orderID)"
    with table(cluster) as client:
        # A grammar error names the expression it is in.
        kind, answer = client.answer("dynamodb:Scan", {"TableName": "orders", "FilterExpression": "(((a = b"})
        assert kind == "error" and answer["message"].startswith("Invalid FilterExpression:"), answer
        for expression in ["(" * 2000 + inner + ")" * 2000, "(" * 101 + inner + ")" * 101, "NOT " * 101 + inner]:
            assert client.error("dynamodb:PutItem", {"TableName": "orders", "Item": {"orderID": {"S": "deep"}},
                                                     "ConditionExpression": expression}) == "ValidationException"
        doc = {"S": "x"}
        for _ in range(33):
            doc = {"M": {"a": doc}}
        assert client.error("dynamodb:PutItem", {"TableName": "orders", "Item": {"orderID": {"S": "deep"}, "doc": doc}}) == "ValidationException"
        client("dynamodb:PutItem", {"TableName": "orders", "Item": {"orderID": {"S": "deep"}, "doc": doc["M"]["a"]}})  # 32 levels
    assert process_by_name(cluster.status(), "table")["pid"] == before


def test_an_iterator_of_a_replaced_stream_is_refused(cluster):
    """An iterator names its stream: after the table is deleted and created again (a new stream
    label), the old iterator does not read the new stream."""
    spec = {"AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}], "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
            "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}}
    with table(cluster) as client:
        first = client("dynamodb:CreateTable", {"TableName": "replaced", **spec})["TableDescription"]["LatestStreamArn"]
        old = client("dynamodb:GetShardIterator", {"StreamArn": first, "ShardId": SHARD, "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
        assert client("dynamodb:GetRecords", {"ShardIterator": old})["Records"] == []
        client("dynamodb:DeleteTable", {"TableName": "replaced"})
        second = wait_until(lambda: client("dynamodb:CreateTable", {"TableName": "replaced", **spec})["TableDescription"]["LatestStreamArn"],
                            timeout=5, message="table created again")
        assert second != first
        client("dynamodb:PutItem", {"TableName": "replaced", "Item": {"k": {"S": "new"}}})
        assert client.error("dynamodb:GetRecords", {"ShardIterator": old}) == "ResourceNotFoundException"
        fresh = client("dynamodb:GetShardIterator", {"StreamArn": second, "ShardId": SHARD, "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
        assert [r["dynamodb"]["Keys"]["k"]["S"] for r in client("dynamodb:GetRecords", {"ShardIterator": fresh})["Records"]] == ["new"]
        client("dynamodb:DeleteTable", {"TableName": "replaced"})


def test_sharded_stream_and_trimming(tmp_path):
    """A cluster whose tables get 4 stream shards and keep records ~2 s: keys stay in their shard,
    expired records are trimmed (TrimmedDataAccessException), and sequence numbers never go back,
    not even after a SIGKILL with every record of a shard trimmed."""
    from conftest import start_cluster, stop_cluster
    c = start_cluster(tmp_path, sections={"table": {"streamShards": 4, "streamRetentionHours": 0.0005}})
    try:
        with table(c) as client:
            arn = wait_until(lambda: _describe(client), timeout=10, message="orders table exists")["LatestStreamArn"]
            shards = [s["ShardId"] for s in client("dynamodb:DescribeStream", {"StreamArn": arn})["StreamDescription"]["Shards"]]
            assert len(shards) == 4
            for i in range(40):
                put(client, f"s-{i}", "x")
            put_twice = {"TableName": "orders", "Item": {"orderID": {"S": "s-0"}, "order": {"S": "y"}}}
            client("dynamodb:PutItem", put_twice)

            def shard_records(shard: str) -> list[dict]:
                iterator = client("dynamodb:GetShardIterator", {"StreamArn": arn, "ShardId": shard, "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
                return client("dynamodb:GetRecords", {"ShardIterator": iterator})["Records"]

            by_shard = {shard: shard_records(shard) for shard in shards}
            keys = [r["dynamodb"]["Keys"]["orderID"]["S"] for records in by_shard.values() for r in records]
            assert sorted(keys) == sorted([f"s-{i}" for i in range(40)] + ["s-0"])
            assert sum(1 for records in by_shard.values() if records) > 1, "keys spread over shards"
            home = [shard for shard, records in by_shard.items() if any(r["dynamodb"]["Keys"]["orderID"]["S"] == "s-0" for r in records)]
            assert len(home) == 1, "both records of one key are in one shard"
            s0 = [r for r in by_shard[home[0]] if r["dynamodb"]["Keys"]["orderID"]["S"] == "s-0"]
            assert [r["eventName"] for r in s0] == ["INSERT", "MODIFY"]
            old_sequence = s0[0]["dynamodb"]["SequenceNumber"]
            wait_until(lambda: all(not shard_records(shard) for shard in shards), timeout=20, message="records trimmed")
            assert client.error("dynamodb:GetShardIterator", {"StreamArn": arn, "ShardId": home[0], "ShardIteratorType": "AT_SEQUENCE_NUMBER",
                                                              "SequenceNumber": old_sequence}) == "TrimmedDataAccessException"
        old = process_by_name(c.status(), "table")
        os.kill(old["pid"], signal.SIGKILL)
        wait_until(lambda: (p := process_by_name(c.status(), "table")) and p["state"] == "running" and p["pid"] != old["pid"],
                   timeout=10, message="table restarted")
        with table(c) as client:
            client("dynamodb:PutItem", {"TableName": "orders", "Item": {"orderID": {"S": "s-0"}, "order": {"S": "z"}}})
            iterator = client("dynamodb:GetShardIterator", {"StreamArn": arn, "ShardId": home[0], "ShardIteratorType": "TRIM_HORIZON"})["ShardIterator"]
            fresh = client("dynamodb:GetRecords", {"ShardIterator": iterator})["Records"]
            assert fresh and int(fresh[-1]["dynamodb"]["SequenceNumber"]) > int(s0[-1]["dynamodb"]["SequenceNumber"])
    finally:
        stop_cluster(c)


def test_get_records_long_poll_wakes_on_the_next_record(cluster):
    """Nimbus's GetRecords extension WaitTimeMilliseconds: an empty shard's answer waits for the next
    record instead of coming back empty (the stream workers use it instead of polling)."""
    import threading
    import time

    with table(cluster) as client:
        arn = wait_until(lambda: _describe(client), timeout=10, message="orders table exists")["LatestStreamArn"]
        latest = client("dynamodb:GetShardIterator", {"StreamArn": arn, "ShardId": SHARD, "ShardIteratorType": "LATEST"})["ShardIterator"]
        assert client("dynamodb:GetRecords", {"ShardIterator": latest, "WaitTimeMilliseconds": 200})["Records"] == []
        assert client.error("dynamodb:GetRecords", {"ShardIterator": latest, "WaitTimeMilliseconds": 20_001}) == "ValidationException"
        got: dict = {}

        def poll() -> None:
            with table(cluster) as poller:
                started = time.monotonic()
                got["page"] = poller("dynamodb:GetRecords", {"ShardIterator": latest, "WaitTimeMilliseconds": 20_000}, timeout=30)
                got["seconds"] = time.monotonic() - started

        reader = threading.Thread(target=poll)
        reader.start()
        time.sleep(0.3)  # let the poll start waiting; were it late, it would find the record at once
        put(client, "long-poll-1", "x")
        reader.join(timeout=30)
    assert [r["dynamodb"]["Keys"]["orderID"]["S"] for r in got["page"]["Records"]] == ["long-poll-1"]
    assert got["seconds"] < 10, "woken by the write, not by the 20 s timeout"


def test_transactions_write_all_or_nothing_and_survive_sigkill(cluster):
    """TransactWriteItems: a failed condition cancels the whole transaction (reasons in order) and
    writes nothing; a committed one is durable with a stream record per write, and its
    ClientRequestToken keeps a retry from applying it twice, across a restart; TransactGetItems
    reads the items back in order."""
    def key(order_id: str) -> dict:
        return {"orderID": {"S": order_id}}

    with table(cluster) as client:
        arn = wait_until(lambda: _describe(client), timeout=10, message="orders table exists")["LatestStreamArn"]
        before = len(read_all(client, arn))
        put(client, "tx-a", "first")
        new = {"Put": {"TableName": "orders", "Item": {**key("tx-b"), "order": {"S": "second"}},
                       "ConditionExpression": "attribute_not_exists(orderID)"}}
        again = {"Put": {"TableName": "orders", "Item": {**key("tx-a"), "order": {"S": "overwritten"}},
                         "ConditionExpression": "attribute_not_exists(orderID)"}}
        kind, answer = client.answer("dynamodb:TransactWriteItems", {"TransactItems": [new, again]})
        assert kind == "error" and answer["code"] == "TransactionCanceledException", answer
        assert answer["message"].endswith("[None, ConditionalCheckFailed]"), answer
        assert "Item" not in client("dynamodb:GetItem", {"TableName": "orders", "Key": key("tx-b")})
        update = {"Update": {"TableName": "orders", "Key": key("tx-a"), "UpdateExpression": "SET #s = :s",
                             "ConditionExpression": "attribute_exists(orderID)",
                             "ExpressionAttributeNames": {"#s": "status"}, "ExpressionAttributeValues": {":s": {"S": "paid"}}}}
        check = {"ConditionCheck": {"TableName": "orders", "Key": key("tx-a"), "ConditionExpression": "attribute_exists(orderID)"}}
        assert client("dynamodb:TransactWriteItems", {"TransactItems": [new, update]}) == {}
        for bad in [{"TransactItems": []},
                    {"TransactItems": [new, {"Delete": {"TableName": "orders", "Key": key("tx-b")}}]},  # one item twice
                    {"TransactItems": [{**new, **check}]},  # two operations in one entry
                    {"TransactItems": [{"Put": {**new["Put"], "ExpressionAttributeValues": {":unused": {"S": "x"}}}}]},
                    {"TransactItems": [{"ConditionCheck": {"TableName": "orders", "Key": key("tx-a")}}]}]:
            assert client.error("dynamodb:TransactWriteItems", bad) == "ValidationException", bad
        # A ClientRequestToken: a retry of the same request is answered without applying it again,
        # another request with the token is refused.
        add = {"TransactItems": [{"Update": {"TableName": "orders", "Key": key("tx-a"), "UpdateExpression": "ADD visits :one",
                                             "ExpressionAttributeValues": {":one": {"N": "1"}}}}], "ClientRequestToken": "retry-1"}
        for _ in range(2):
            assert client("dynamodb:TransactWriteItems", add) == {}
        assert client.error("dynamodb:TransactWriteItems", {**add, "TransactItems": [check]}) == "IdempotentParameterMismatchException"
        assert client.error("dynamodb:TransactWriteItems", {**add, "ClientRequestToken": "x" * 37}) == "ValidationException"
    old = process_by_name(cluster.status(), "table")
    os.kill(old["pid"], signal.SIGKILL)
    wait_until(lambda: (p := process_by_name(cluster.status(), "table")) and p["state"] == "running" and p["pid"] != old["pid"],
               timeout=10, message="table restarted")
    with table(cluster) as client:
        # The token outlives the restart too.
        assert client("dynamodb:TransactWriteItems", add) == {}
        got = client("dynamodb:TransactGetItems", {"TransactItems": [{"Get": {"TableName": "orders", "Key": key(k)}}
                                                                     for k in ("tx-a", "tx-b", "tx-none")]})
        assert got["Responses"] == [{"Item": {**key("tx-a"), "order": {"S": "first"}, "status": {"S": "paid"}, "visits": {"N": "1"}}},
                                    {"Item": {**key("tx-b"), "order": {"S": "second"}}}, {}]
        records = read_all(client, arn)[before:]
        assert [(r["eventName"], r["dynamodb"]["Keys"]["orderID"]["S"]) for r in records] == [
            ("INSERT", "tx-a"), ("INSERT", "tx-b"), ("MODIFY", "tx-a"), ("MODIFY", "tx-a")]

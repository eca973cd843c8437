"""nimbus-edge, DynamoDB and DynamoDB Streams: what boto3 sees over DynamoDB's JSON 1.0 protocol
(DynamoDB_20120810.* targets) and DynamoDB Streams' (DynamoDBStreams_20120810.*, signed for the service
name "dynamodb"), as the DynamoDB API reference describes it.

Sources (AWS docs): API_PutItem / API_GetItem / API_UpdateItem / API_DeleteItem (ReturnValues,
ConditionExpression -> ConditionalCheckFailedException, ReturnValuesOnConditionCheckFailure) /
API_Query / API_Scan (Limit is applied before FilterExpression; LastEvaluatedKey) / API_BatchWriteItem
(at most 25 requests) / API_BatchGetItem / API_TransactWriteItems (TransactionCanceledException with
CancellationReasons, "Transaction cancelled, please refer cancellation reasons for specific reasons
[...]") / API_TransactGetItems / API_DescribeTable / API_ListTables; "Supported data types" (numbers
lose leading and trailing zeroes); the Streams API reference (API_streams_ListStreams, DescribeStream,
GetShardIterator, GetRecords, Record: eventName INSERT|MODIFY|REMOVE, eventSource aws:dynamodb).

The cluster runs no workers: nothing but these tests reads the orders table's stream, and nothing
writes to the table.
"""

from __future__ import annotations

import datetime
import uuid

import pytest
from botocore.exceptions import ClientError

import aws_compat
from aws_compat import ACCOUNT, LAB_TABLE, REGION, error_code, http_status, unique
from conftest import wait_until

edge = aws_compat.edge_fixture(instances={"ingest-worker": 0, "stream-worker": 0})

TABLE_ARN = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{LAB_TABLE}"


def order_id(prefix: str = "edge") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def key(oid: str) -> dict:
    return {"orderID": {"S": oid}}


@pytest.fixture(scope="module")
def events_table(edge):
    """A table of the module's own with a partition and a sort key (for Query), deleted at the end."""
    ddb = edge.client("dynamodb")
    name = unique("edge-events")
    reply = ddb.create_table(TableName=name, BillingMode="PAY_PER_REQUEST",
                             AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                                   {"AttributeName": "sk", "AttributeType": "N"}],
                             KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])
    assert reply["TableDescription"]["TableName"] == name
    assert reply["TableDescription"]["TableStatus"] in ("CREATING", "ACTIVE")
    wait_until(lambda: ddb.describe_table(TableName=name)["Table"]["TableStatus"] == "ACTIVE", timeout=30, interval=0.2,
               message=f"{name} ACTIVE")
    yield name
    try:
        ddb.delete_table(TableName=name)
    except ClientError:
        pass


# --------------------------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------------------------


def test_describe_the_orders_table(edge):
    table = edge.client("dynamodb").describe_table(TableName=LAB_TABLE)["Table"]
    assert table["TableName"] == LAB_TABLE
    assert table["TableArn"] == TABLE_ARN
    assert table["TableStatus"] == "ACTIVE"
    assert table["KeySchema"] == [{"AttributeName": "orderID", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "orderID", "AttributeType": "S"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["StreamSpecification"] == {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
    assert table["LatestStreamArn"] == f"{TABLE_ARN}/stream/{table['LatestStreamLabel']}"
    assert isinstance(table["CreationDateTime"], datetime.datetime)
    assert isinstance(table["ItemCount"], int) and isinstance(table["TableSizeBytes"], int)


def test_list_tables(edge):
    ddb = edge.client("dynamodb")
    names = ddb.list_tables()["TableNames"]
    assert LAB_TABLE in names
    first = ddb.list_tables(Limit=1)
    assert len(first["TableNames"]) == 1
    assert first["LastEvaluatedTableName"] == first["TableNames"][0]
    rest = ddb.list_tables(ExclusiveStartTableName=first["LastEvaluatedTableName"])["TableNames"]
    assert first["TableNames"] + rest == names


def test_a_missing_table_is_resource_not_found(edge):
    ddb = edge.client("dynamodb")
    for call in (lambda: ddb.describe_table(TableName="no-such-table"),
                 lambda: ddb.get_item(TableName="no-such-table", Key=key("x")),
                 lambda: ddb.put_item(TableName="no-such-table", Item=key("x")),
                 lambda: ddb.scan(TableName="no-such-table")):
        with pytest.raises(ddb.exceptions.ResourceNotFoundException) as caught:
            call()
        assert error_code(caught.value) == "ResourceNotFoundException"
        assert http_status(caught.value) == 400


# --------------------------------------------------------------------------------------------
# items
# --------------------------------------------------------------------------------------------


def test_put_and_get_every_attribute_type(edge):
    ddb = edge.client("dynamodb")
    oid = order_id()
    item = {
        **key(oid),
        "item": {"S": "latex gloves"}, "customerID": {"S": "12345"}, "quantity": {"N": "3"},
        "price": {"N": "-12.5"}, "paid": {"BOOL": True}, "note": {"NULL": True}, "blob": {"B": b"\x00\xffbytes"},
        "tags": {"SS": ["a", "b"]}, "sizes": {"NS": ["1", "2.5"]}, "blobs": {"BS": [b"x", b"y"]},
        "lines": {"L": [{"S": "one"}, {"N": "2"}, {"M": {"deep": {"BOOL": False}}}]},
        "address": {"M": {"city": {"S": "Seattle"}, "zip": {"S": "98101"}}},
    }
    reply = ddb.put_item(TableName=LAB_TABLE, Item=item)
    assert http_status(reply) == 200
    assert "Attributes" not in reply  # ReturnValues defaults to NONE
    got = ddb.get_item(TableName=LAB_TABLE, Key=key(oid), ConsistentRead=True)["Item"]
    # sets are unordered
    for name in ("tags", "sizes", "blobs"):
        kind = next(iter(item[name]))
        assert sorted(got.pop(name)[kind]) == sorted(item[name][kind])
    assert got == {k: v for k, v in item.items() if k not in ("tags", "sizes", "blobs")}


def test_get_item_of_a_missing_key_has_no_item(edge):
    reply = edge.client("dynamodb").get_item(TableName=LAB_TABLE, Key=key(order_id("missing")))
    assert http_status(reply) == 200
    assert "Item" not in reply


def test_projection_expression(edge):
    ddb = edge.client("dynamodb")
    oid = order_id()
    ddb.put_item(TableName=LAB_TABLE, Item={**key(oid), "item": {"S": "gloves"}, "customerID": {"S": "1"},
                                            "address": {"M": {"city": {"S": "Seattle"}, "zip": {"S": "1"}}}})
    got = ddb.get_item(TableName=LAB_TABLE, Key=key(oid), ProjectionExpression="#i, address.city",
                       ExpressionAttributeNames={"#i": "item"})["Item"]
    assert got == {"item": {"S": "gloves"}, "address": {"M": {"city": {"S": "Seattle"}}}}


@aws_compat.moto_deviates("moto keeps numbers as sent; 'Supported data types' (DynamoDB Developer Guide): numbers "
                          "'Leading and trailing zeroes are trimmed'")
def test_numbers_come_back_normalized(edge):
    ddb = edge.client("dynamodb")
    oid = order_id()
    ddb.put_item(TableName=LAB_TABLE, Item={**key(oid), "price": {"N": "012.50"}, "qty": {"N": "1.0"}})
    got = ddb.get_item(TableName=LAB_TABLE, Key=key(oid), ConsistentRead=True)["Item"]
    assert got["price"] == {"N": "12.5"}
    assert got["qty"] == {"N": "1"}


def test_put_with_return_values_all_old(edge):
    ddb = edge.client("dynamodb")
    oid = order_id()
    first = ddb.put_item(TableName=LAB_TABLE, Item={**key(oid), "v": {"N": "1"}}, ReturnValues="ALL_OLD")
    assert "Attributes" not in first  # nothing was there
    second = ddb.put_item(TableName=LAB_TABLE, Item={**key(oid), "v": {"N": "2"}}, ReturnValues="ALL_OLD")
    assert second["Attributes"] == {**key(oid), "v": {"N": "1"}}


def test_condition_expression_failing_is_conditional_check_failed(edge):
    ddb = edge.client("dynamodb")
    oid = order_id()
    ddb.put_item(TableName=LAB_TABLE, Item={**key(oid), "status": {"S": "new"}},
                 ConditionExpression="attribute_not_exists(orderID)")
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException) as caught:
        ddb.put_item(TableName=LAB_TABLE, Item={**key(oid), "status": {"S": "dup"}},
                     ConditionExpression="attribute_not_exists(orderID)")
    assert error_code(caught.value) == "ConditionalCheckFailedException"
    assert http_status(caught.value) == 400
    # the item is unchanged
    assert ddb.get_item(TableName=LAB_TABLE, Key=key(oid), ConsistentRead=True)["Item"]["status"] == {"S": "new"}


def test_conditional_check_failure_can_return_the_item(edge):
    ddb = edge.client("dynamodb")
    oid = order_id()
    ddb.put_item(TableName=LAB_TABLE, Item={**key(oid), "status": {"S": "shipped"}})
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException) as caught:
        ddb.update_item(TableName=LAB_TABLE, Key=key(oid), UpdateExpression="SET #s = :c",
                        ConditionExpression="#s = :n", ExpressionAttributeNames={"#s": "status"},
                        ExpressionAttributeValues={":c": {"S": "cancelled"}, ":n": {"S": "new"}},
                        ReturnValuesOnConditionCheckFailure="ALL_OLD")
    assert caught.value.response["Item"] == {**key(oid), "status": {"S": "shipped"}}


def test_update_item_set_add_remove_and_return_values(edge):
    ddb = edge.client("dynamodb")
    oid = order_id()
    # UpdateItem on a missing item creates it
    created = ddb.update_item(TableName=LAB_TABLE, Key=key(oid), UpdateExpression="SET #s = :s, qty = :q",
                              ExpressionAttributeNames={"#s": "status"},
                              ExpressionAttributeValues={":s": {"S": "new"}, ":q": {"N": "1"}}, ReturnValues="ALL_NEW")
    assert created["Attributes"] == {**key(oid), "status": {"S": "new"}, "qty": {"N": "1"}}

    # "lines" is one of DynamoDB's reserved words: it goes through ExpressionAttributeNames
    updated = ddb.update_item(TableName=LAB_TABLE, Key=key(oid),
                              UpdateExpression="ADD qty :two SET #l = list_append(if_not_exists(#l, :empty), :line)",
                              ExpressionAttributeNames={"#l": "lines"},
                              ExpressionAttributeValues={":two": {"N": "2"}, ":empty": {"L": []}, ":line": {"L": [{"S": "gloves"}]}},
                              ReturnValues="UPDATED_NEW")
    assert updated["Attributes"] == {"qty": {"N": "3"}, "lines": {"L": [{"S": "gloves"}]}}

    old = ddb.update_item(TableName=LAB_TABLE, Key=key(oid), UpdateExpression="REMOVE #l SET #s = :s",
                          ExpressionAttributeNames={"#s": "status", "#l": "lines"}, ExpressionAttributeValues={":s": {"S": "paid"}},
                          ReturnValues="UPDATED_OLD")
    assert old["Attributes"] == {"status": {"S": "new"}, "lines": {"L": [{"S": "gloves"}]}}

    final = ddb.get_item(TableName=LAB_TABLE, Key=key(oid), ConsistentRead=True)["Item"]
    assert final == {**key(oid), "status": {"S": "paid"}, "qty": {"N": "3"}}


def test_delete_item_with_condition_and_return_values(edge):
    ddb = edge.client("dynamodb")
    oid = order_id()
    ddb.put_item(TableName=LAB_TABLE, Item={**key(oid), "status": {"S": "new"}})
    with pytest.raises(ddb.exceptions.ConditionalCheckFailedException):
        ddb.delete_item(TableName=LAB_TABLE, Key=key(oid), ConditionExpression="#s = :x",
                        ExpressionAttributeNames={"#s": "status"}, ExpressionAttributeValues={":x": {"S": "shipped"}})
    gone = ddb.delete_item(TableName=LAB_TABLE, Key=key(oid), ReturnValues="ALL_OLD")
    assert gone["Attributes"] == {**key(oid), "status": {"S": "new"}}
    assert "Item" not in ddb.get_item(TableName=LAB_TABLE, Key=key(oid), ConsistentRead=True)
    # deleting what is not there succeeds, without Attributes
    assert "Attributes" not in ddb.delete_item(TableName=LAB_TABLE, Key=key(oid), ReturnValues="ALL_OLD")


def test_a_key_not_matching_the_schema_is_a_validation_error(edge):
    ddb = edge.client("dynamodb")
    with pytest.raises(ClientError) as caught:
        ddb.get_item(TableName=LAB_TABLE, Key={"wrongKey": {"S": "x"}})
    assert error_code(caught.value) == "ValidationException"
    assert http_status(caught.value) == 400
    with pytest.raises(ClientError) as caught:
        ddb.put_item(TableName=LAB_TABLE, Item={"orderID": {"N": "1"}})  # orderID is a string
    assert error_code(caught.value) == "ValidationException"


def test_query_on_the_partition_key(edge):
    ddb = edge.client("dynamodb")
    oid = order_id()
    ddb.put_item(TableName=LAB_TABLE, Item={**key(oid), "item": {"S": "gloves"}})
    reply = ddb.query(TableName=LAB_TABLE, KeyConditionExpression="orderID = :id",
                      ExpressionAttributeValues={":id": {"S": oid}})
    assert reply["Count"] == 1 and reply["ScannedCount"] == 1
    assert reply["Items"] == [{**key(oid), "item": {"S": "gloves"}}]
    assert "LastEvaluatedKey" not in reply
    empty = ddb.query(TableName=LAB_TABLE, KeyConditionExpression="orderID = :id",
                      ExpressionAttributeValues={":id": {"S": order_id("none")}})
    assert empty["Count"] == 0 and empty["Items"] == []


def test_query_with_a_sort_key(edge, events_table):
    ddb = edge.client("dynamodb")
    pk = order_id("pk")
    for sk in range(1, 8):
        ddb.put_item(TableName=events_table, Item={"pk": {"S": pk}, "sk": {"N": str(sk)}, "kind": {"S": "odd" if sk % 2 else "even"}})
    ddb.put_item(TableName=events_table, Item={"pk": {"S": pk + "-other"}, "sk": {"N": "1"}})

    everything = ddb.query(TableName=events_table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": pk}})
    assert [i["sk"]["N"] for i in everything["Items"]] == [str(n) for n in range(1, 8)]  # ascending by sort key

    backwards = ddb.query(TableName=events_table, KeyConditionExpression="pk = :p AND sk BETWEEN :a AND :b",
                          ExpressionAttributeValues={":p": {"S": pk}, ":a": {"N": "2"}, ":b": {"N": "5"}},
                          ScanIndexForward=False)
    assert [i["sk"]["N"] for i in backwards["Items"]] == ["5", "4", "3", "2"]

    filtered = ddb.query(TableName=events_table, KeyConditionExpression="pk = :p AND sk > :a",
                         FilterExpression="kind = :k",
                         ExpressionAttributeValues={":p": {"S": pk}, ":a": {"N": "2"}, ":k": {"S": "odd"}})
    assert [i["sk"]["N"] for i in filtered["Items"]] == ["3", "5", "7"]
    assert filtered["Count"] == 3 and filtered["ScannedCount"] == 5  # the filter runs after the key condition

    # Limit pages; LastEvaluatedKey is the last key read
    pages, start = [], None
    for _ in range(10):
        kwargs = {"ExclusiveStartKey": start} if start else {}
        page = ddb.query(TableName=events_table, KeyConditionExpression="pk = :p",
                         ExpressionAttributeValues={":p": {"S": pk}}, Limit=3, **kwargs)
        pages.append([i["sk"]["N"] for i in page["Items"]])
        start = page.get("LastEvaluatedKey")
        if not start:
            break
        assert start == {"pk": {"S": pk}, "sk": page["Items"][-1]["sk"]}
    assert [sk for page in pages for sk in page] == [str(n) for n in range(1, 8)]
    assert pages[:3] == [["1", "2", "3"], ["4", "5", "6"], ["7"]]

    count = ddb.query(TableName=events_table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": pk}},
                      Select="COUNT")
    assert count["Count"] == 7 and "Items" not in count


def test_scan_pages_with_limit_before_filter(edge):
    ddb = edge.client("dynamodb")
    marker = uuid.uuid4().hex
    ids = {order_id("scan") for _ in range(7)}
    for oid in ids:
        ddb.put_item(TableName=LAB_TABLE, Item={**key(oid), "marker": {"S": marker}})
    found: set[str] = set()
    pages = 0
    start = None
    while True:
        kwargs = {"ExclusiveStartKey": start} if start else {}
        page = ddb.scan(TableName=LAB_TABLE, Limit=2, FilterExpression="marker = :m",
                        ExpressionAttributeValues={":m": {"S": marker}}, ConsistentRead=True, **kwargs)
        pages += 1
        assert page["ScannedCount"] <= 2  # Limit caps the items read, before the filter
        assert page["Count"] == len(page["Items"]) <= page["ScannedCount"]
        found |= {i["orderID"]["S"] for i in page["Items"]}
        start = page.get("LastEvaluatedKey")
        if not start:
            break
        assert set(start) == {"orderID"}
        assert pages < 10_000
    assert found == ids
    assert pages >= 4


@aws_compat.moto_deviates("moto's Scan returns Items with Select=COUNT; API_Scan: COUNT 'Returns the number of "
                          "matching items, rather than the matching items themselves'")
def test_scan_select_count(edge):
    ddb = edge.client("dynamodb")
    marker = uuid.uuid4().hex
    for _ in range(3):
        ddb.put_item(TableName=LAB_TABLE, Item={**key(order_id("count")), "marker": {"S": marker}})
    reply = ddb.scan(TableName=LAB_TABLE, Select="COUNT", FilterExpression="marker = :m",
                     ExpressionAttributeValues={":m": {"S": marker}}, ConsistentRead=True)
    assert reply["Count"] == 3 and "Items" not in reply


def test_batch_write_and_batch_get(edge):
    ddb = edge.client("dynamodb")
    ids = [order_id("batch") for _ in range(25)]
    reply = ddb.batch_write_item(RequestItems={LAB_TABLE: [
        {"PutRequest": {"Item": {**key(oid), "n": {"N": str(i)}}}} for i, oid in enumerate(ids)]})
    assert reply["UnprocessedItems"] == {}

    got = ddb.batch_get_item(RequestItems={LAB_TABLE: {"Keys": [key(oid) for oid in ids[:10]] + [key(order_id("absent"))],
                                                       "ConsistentRead": True}})
    assert got["UnprocessedKeys"] == {}
    items = got["Responses"][LAB_TABLE]
    assert sorted(i["orderID"]["S"] for i in items) == sorted(ids[:10])  # missing keys are just left out
    assert {i["orderID"]["S"]: i["n"]["N"] for i in items} == {oid: str(ids.index(oid)) for oid in ids[:10]}

    deleted = ddb.batch_write_item(RequestItems={LAB_TABLE: [{"DeleteRequest": {"Key": key(oid)}} for oid in ids[:5]]})
    assert deleted["UnprocessedItems"] == {}
    left = ddb.batch_get_item(RequestItems={LAB_TABLE: {"Keys": [key(oid) for oid in ids[:6]], "ConsistentRead": True}})
    assert [i["orderID"]["S"] for i in left["Responses"][LAB_TABLE]] == [ids[5]]


@aws_compat.moto_deviates("moto takes 26 requests; API_BatchWriteItem rejects the whole batch with ValidationException "
                          "when 'There are more than 25 requests in the batch'")
def test_batch_write_of_more_than_25_requests_is_a_validation_error(edge):
    ddb = edge.client("dynamodb")
    with pytest.raises(ClientError) as caught:
        ddb.batch_write_item(RequestItems={LAB_TABLE: [{"PutRequest": {"Item": key(order_id("many"))}} for _ in range(26)]})
    assert error_code(caught.value) == "ValidationException"


def test_batch_write_of_one_key_twice_is_a_validation_error(edge):
    ddb = edge.client("dynamodb")
    oid = order_id("dup")
    with pytest.raises(ClientError) as caught:
        ddb.batch_write_item(RequestItems={LAB_TABLE: [{"PutRequest": {"Item": key(oid)}}, {"PutRequest": {"Item": key(oid)}}]})
    assert error_code(caught.value) == "ValidationException"  # "Provided list of item keys contains duplicates"


def test_transact_write_applies_all_or_nothing(edge):
    ddb = edge.client("dynamodb")
    a, b, c = order_id("tx"), order_id("tx"), order_id("tx")
    ddb.put_item(TableName=LAB_TABLE, Item={**key(b), "stock": {"N": "5"}})
    ddb.put_item(TableName=LAB_TABLE, Item={**key(c), "status": {"S": "open"}})
    ddb.transact_write_items(TransactItems=[
        {"Put": {"TableName": LAB_TABLE, "Item": {**key(a), "status": {"S": "new"}},
                 "ConditionExpression": "attribute_not_exists(orderID)"}},
        {"Update": {"TableName": LAB_TABLE, "Key": key(b), "UpdateExpression": "SET stock = stock - :one",
                    "ConditionExpression": "stock > :zero", "ExpressionAttributeValues": {":one": {"N": "1"}, ":zero": {"N": "0"}}}},
        {"ConditionCheck": {"TableName": LAB_TABLE, "Key": key(c), "ConditionExpression": "#s = :open",
                            "ExpressionAttributeNames": {"#s": "status"}, "ExpressionAttributeValues": {":open": {"S": "open"}}}},
    ])
    got = ddb.transact_get_items(TransactItems=[{"Get": {"TableName": LAB_TABLE, "Key": key(a)}},
                                                {"Get": {"TableName": LAB_TABLE, "Key": key(b)}},
                                                {"Get": {"TableName": LAB_TABLE, "Key": key(order_id("none"))}}])
    responses = got["Responses"]
    assert len(responses) == 3  # one per Get, in order; {} for a missing item
    assert responses[0]["Item"] == {**key(a), "status": {"S": "new"}}
    assert responses[1]["Item"] == {**key(b), "stock": {"N": "4"}}
    assert "Item" not in responses[2]

    # the second action's condition fails: nothing is written, reasons in order
    d = order_id("tx")
    with pytest.raises(ddb.exceptions.TransactionCanceledException) as caught:
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": LAB_TABLE, "Item": {**key(d), "status": {"S": "new"}}}},
            {"Update": {"TableName": LAB_TABLE, "Key": key(b), "UpdateExpression": "SET stock = stock - :one",
                        "ConditionExpression": "stock > :big",
                        "ExpressionAttributeValues": {":one": {"N": "1"}, ":big": {"N": "100"}}}},
        ])
    error = caught.value
    assert error_code(error) == "TransactionCanceledException"
    assert http_status(error) == 400
    assert "[None, ConditionalCheckFailed]" in error.response["Error"]["Message"]
    assert [r["Code"] for r in error.response["CancellationReasons"]] == ["None", "ConditionalCheckFailed"]
    assert "Item" not in ddb.get_item(TableName=LAB_TABLE, Key=key(d), ConsistentRead=True)
    assert ddb.get_item(TableName=LAB_TABLE, Key=key(b), ConsistentRead=True)["Item"]["stock"] == {"N": "4"}


def test_transact_write_may_not_touch_one_item_twice(edge):
    ddb = edge.client("dynamodb")
    oid = order_id("twice")
    with pytest.raises(ClientError) as caught:
        ddb.transact_write_items(TransactItems=[
            {"Put": {"TableName": LAB_TABLE, "Item": {**key(oid), "v": {"N": "1"}}}},
            {"Update": {"TableName": LAB_TABLE, "Key": key(oid), "UpdateExpression": "SET v = :v",
                        "ExpressionAttributeValues": {":v": {"N": "2"}}}},
        ])
    # "Transaction request cannot include multiple operations on one item"
    assert error_code(caught.value) == "ValidationException"


# --------------------------------------------------------------------------------------------
# DynamoDB Streams
# --------------------------------------------------------------------------------------------


def stream_arn(edge) -> str:
    return edge.client("dynamodb").describe_table(TableName=LAB_TABLE)["Table"]["LatestStreamArn"]


def read_stream(edge, arn: str, iterator_type: str = "TRIM_HORIZON", iterators: dict[str, str] | None = None) -> list[dict]:
    """Every record readable now from every shard (following NextShardIterator until a page is empty)."""
    streams = edge.client("dynamodbstreams")
    shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    records: list[dict] = []
    for shard in shards:
        iterator = (iterators or {}).get(shard["ShardId"]) or streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType=iterator_type)["ShardIterator"]
        for _ in range(1000):
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records += page["Records"]
            iterator = page.get("NextShardIterator")
            if not page["Records"] or not iterator:
                break
    return records


def test_list_streams_of_the_orders_table(edge):
    streams = edge.client("dynamodbstreams")
    listed = streams.list_streams(TableName=LAB_TABLE)["Streams"]
    assert len(listed) >= 1
    latest = stream_arn(edge)
    entry = next(s for s in listed if s["StreamArn"] == latest)
    assert entry["TableName"] == LAB_TABLE
    assert latest.endswith("/stream/" + entry["StreamLabel"])
    assert any(s["StreamArn"] == latest for s in streams.list_streams()["Streams"])


def test_describe_stream(edge):
    description = edge.client("dynamodbstreams").describe_stream(StreamArn=stream_arn(edge))["StreamDescription"]
    assert description["StreamArn"] == stream_arn(edge)
    assert description["TableName"] == LAB_TABLE
    assert description["StreamStatus"] == "ENABLED"
    assert description["StreamViewType"] == "NEW_IMAGE"
    assert description["KeySchema"] == [{"AttributeName": "orderID", "KeyType": "HASH"}]
    assert isinstance(description["CreationRequestDateTime"], datetime.datetime)
    assert description["Shards"], description
    for shard in description["Shards"]:
        assert shard["ShardId"]
        assert shard["SequenceNumberRange"]["StartingSequenceNumber"].isdigit()


def test_stream_records_an_insert_modify_and_remove(edge):
    ddb = edge.client("dynamodb")
    arn = stream_arn(edge)
    oid = order_id("stream")
    ddb.put_item(TableName=LAB_TABLE, Item={**key(oid), "item": {"S": "latex gloves"}, "customerID": {"S": "12345"}})
    ddb.update_item(TableName=LAB_TABLE, Key=key(oid), UpdateExpression="SET qty = :q", ExpressionAttributeValues={":q": {"N": "2"}})
    ddb.delete_item(TableName=LAB_TABLE, Key=key(oid))

    def mine():
        records = [r for r in read_stream(edge, arn) if r["dynamodb"]["Keys"] == key(oid)]
        return records if len(records) >= 3 else None

    records = wait_until(mine, timeout=20, interval=0.3, message=f"three stream records for {oid}")
    assert [r["eventName"] for r in records] == ["INSERT", "MODIFY", "REMOVE"]
    for r in records:
        assert r["eventSource"] == "aws:dynamodb"
        if not edge.is_moto:  # moto says "1.0"; the Streams API's Record: eventVersion "Currently, this is 1.1"
            assert r["eventVersion"] == "1.1"
        assert r["awsRegion"] == REGION
        assert r["eventID"]
        assert r["dynamodb"]["StreamViewType"] == "NEW_IMAGE"
        assert r["dynamodb"]["SequenceNumber"].isdigit()
        assert r["dynamodb"]["SizeBytes"] > 0
        assert isinstance(r["dynamodb"]["ApproximateCreationDateTime"], datetime.datetime)
        assert "OldImage" not in r["dynamodb"]  # NEW_IMAGE only
    assert records[0]["dynamodb"]["NewImage"] == {**key(oid), "item": {"S": "latex gloves"}, "customerID": {"S": "12345"}}
    assert records[1]["dynamodb"]["NewImage"]["qty"] == {"N": "2"}
    assert "NewImage" not in records[2]["dynamodb"]  # a removal has no new image
    sequence = [int(r["dynamodb"]["SequenceNumber"]) for r in records]
    assert sequence == sorted(sequence)


def test_latest_iterator_sees_only_later_writes(edge):
    ddb = edge.client("dynamodb")
    streams = edge.client("dynamodbstreams")
    arn = stream_arn(edge)
    before = order_id("before")
    ddb.put_item(TableName=LAB_TABLE, Item=key(before))
    shards = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    latest = {s["ShardId"]: streams.get_shard_iterator(StreamArn=arn, ShardId=s["ShardId"], ShardIteratorType="LATEST")["ShardIterator"]
              for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]}
    after = order_id("after")
    ddb.put_item(TableName=LAB_TABLE, Item=key(after))

    def seen():
        records = read_stream(edge, arn, iterators=latest)
        keys = [r["dynamodb"]["Keys"]["orderID"]["S"] for r in records]
        return keys if after in keys else None

    keys = wait_until(seen, timeout=20, interval=0.3, message="the later write on a LATEST iterator")
    assert before not in keys


def test_get_shard_iterator_after_sequence_number(edge):
    ddb = edge.client("dynamodb")
    streams = edge.client("dynamodbstreams")
    arn = stream_arn(edge)
    first, second = order_id("seq1"), order_id("seq2")
    ddb.put_item(TableName=LAB_TABLE, Item=key(first))
    ddb.put_item(TableName=LAB_TABLE, Item=key(second))

    def both():
        records = {r["dynamodb"]["Keys"]["orderID"]["S"]: r for r in read_stream(edge, arn)}
        return records if first in records and second in records else None

    records = wait_until(both, timeout=20, interval=0.3, message="both writes in the stream")
    record = records[first]
    shard = next(s["ShardId"] for s in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
                 if _shard_holds(edge, arn, s["ShardId"], record))
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="AT_SEQUENCE_NUMBER",
                                          SequenceNumber=record["dynamodb"]["SequenceNumber"])["ShardIterator"]
    page = streams.get_records(ShardIterator=iterator, Limit=1)
    assert page["Records"][0]["eventID"] == record["eventID"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                                          SequenceNumber=record["dynamodb"]["SequenceNumber"])["ShardIterator"]
    page = streams.get_records(ShardIterator=iterator, Limit=1000)
    assert record["eventID"] not in [r["eventID"] for r in page["Records"]]


def _shard_holds(edge, arn: str, shard_id: str, record: dict) -> bool:
    streams = edge.client("dynamodbstreams")
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    for _ in range(1000):
        page = streams.get_records(ShardIterator=iterator, Limit=1000)
        if any(r["eventID"] == record["eventID"] for r in page["Records"]):
            return True
        iterator = page.get("NextShardIterator")
        if not page["Records"] or not iterator:
            return False
    return False


def test_a_missing_stream_is_resource_not_found(edge):
    streams = edge.client("dynamodbstreams")
    missing = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/no-such-table/stream/2020-01-01T00:00:00.000"
    with pytest.raises(streams.exceptions.ResourceNotFoundException) as caught:
        streams.describe_stream(StreamArn=missing)
    assert error_code(caught.value) == "ResourceNotFoundException"
    assert http_status(caught.value) == 400

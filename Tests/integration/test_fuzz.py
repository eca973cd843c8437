"""Random request bodies to every action of every node, signed by the account root.

test_garbage.py breaks the frames; this breaks what is inside valid, signed frames: JSON of random
shapes built from the actions' own member names (wrong types, nulls, huge and tiny numbers, odd
unicode, expressions, deep-ish nesting) and some bodies that are not JSON at all. Seeded, so a
failure repeats. Every request must be answered, none with InternalFailure (an unhandled error),
and no node may die: the supervisor reports the same pids afterwards.

Each mishap found this way became a test of its own (test_table.py: deep expressions).
"""

from __future__ import annotations

import json
import random
import string

import pytest

from conftest import PROTOCOL_TAG, NimbusClient, new_id, process_by_name, root_credentials_for, sign_header, wait_for_queue

ROUNDS = 150  # requests per node
QUEUE = "https://sqs.us-east-1.amazonaws.com/000000000000/POC-Queue"
TOPIC = "arn:aws:sns:us-east-1:000000000000:POC-Topic"
ACTIONS = {
    "queue": ("sqs", "CreateQueue GetQueueUrl ListQueues GetQueueAttributes SetQueueAttributes SendMessage SendMessageBatch "
                     "ReceiveMessage DeleteMessage DeleteMessageBatch ChangeMessageVisibility ChangeMessageVisibilityBatch PurgeQueue"),
    "table": ("dynamodb", "CreateTable DescribeTable UpdateTable ListTables PutItem GetItem UpdateItem DeleteItem Scan Query "
                          "BatchWriteItem BatchGetItem TransactWriteItems TransactGetItems ListStreams DescribeStream GetShardIterator "
                          "GetRecords"),
    "notifier": ("sns", "CreateTopic ListTopics GetTopicAttributes SetTopicAttributes Subscribe ConfirmSubscription Unsubscribe "
                        "ListSubscriptions ListSubscriptionsByTopic Publish PublishBatch"),
    "iam": ("iam", "CreatePolicy GetPolicy ListPolicies CreateRole GetRole ListRoles AttachRolePolicy DetachRolePolicy "
                   "ListAttachedRolePolicies SimulatePrincipalPolicy"),
    "ingest-worker-1": ("lambda", "Invoke"),
    "stream-worker-1": ("lambda", "Invoke"),
}
# Nothing that deletes the lab's own resources: the cluster must still be whole at the end.
MEMBERS = ("QueueUrl QueueName MessageBody Entries Id ReceiptHandle Attributes AttributeNames MaxNumberOfMessages WaitTimeSeconds "
           "VisibilityTimeout DelaySeconds MessageAttributes TableName Item Key KeySchema AttributeDefinitions ConditionExpression "
           "UpdateExpression ExpressionAttributeNames ExpressionAttributeValues FilterExpression KeyConditionExpression Limit "
           "ExclusiveStartKey RequestItems StreamArn ShardId ShardIteratorType ShardIterator SequenceNumber StreamSpecification "
           "TopicArn Name Message Subject MessageStructure Protocol Endpoint Token SubscriptionArn PublishBatchRequestEntries "
           "AttributeName AttributeValue PolicyName PolicyDocument PolicyArn RoleName AssumeRolePolicyDocument PolicySourceArn "
           "ActionNames ResourceArns ResourcePolicy ContextEntries NextToken MessageDeduplicationId ReturnValues S N B M L SS NS "
           "BOOL NULL DataType StringValue BinaryValue Records messageId receiptHandle body eventSource eventSourceARN eventName "
           "dynamodb NewImage Keys eventID TransactItems Put Update Delete ConditionCheck Get ClientRequestToken").split()


class Fuzzer:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)

    def scalar(self):
        rng = self.rng
        pick = rng.randrange(10)
        if pick == 0:
            return rng.randint(-2**63, 2**63 - 1)
        if pick == 1:
            return rng.random() * 10 ** rng.randint(-300, 300)
        if pick == 2:
            return rng.choice([True, False, None])
        if pick == 3:
            return "".join(rng.choice(string.printable) for _ in range(rng.randint(0, 40)))
        if pick == 4:
            return "".join(chr(c) for c in (rng.randint(0x80, 0x10FFFF) for _ in range(8)) if not 0xD800 <= c <= 0xDFFF)
        if pick == 5:
            return rng.choice([QUEUE, TOPIC, "arn:aws:dynamodb:us-east-1:000000000000:table/orders", "orders", "*", "", "\u0000", "x" * 70000])
        if pick == 6:
            return rng.choice(["attribute_not_exists(orderID)", "SET a = :v", "#n = :v", "a BETWEEN :a AND :b", "size(a) > :n", "(((",
                               "NOT NOT a", ":v IN (:v)", "REMOVE a[99999999999]", "ADD s :v"])
        if pick == 7:
            return rng.choice(["TRIM_HORIZON", "LATEST", "AT_SEQUENCE_NUMBER", "email", "sqs", "http", "json", "String", "Number.x"])
        return rng.randint(-5, 100)

    def value(self, depth: int = 0):
        pick = self.rng.randrange(10)
        if depth < 6 and pick < 3:
            return {self.rng.choice(MEMBERS): self.value(depth + 1) for _ in range(self.rng.randint(0, 5))}
        if depth < 6 and pick < 5:
            return [self.value(depth + 1) for _ in range(self.rng.randint(0, 5))]
        return self.scalar()

    def body(self) -> bytes:
        pick = self.rng.randrange(10)
        if pick == 0:
            return json.dumps(self.value()).encode()
        if pick == 1:
            return "".join(self.rng.choice('{}[]":,0123456789truefalsenull \\') for _ in range(self.rng.randint(0, 60))).encode()
        return json.dumps({self.rng.choice(MEMBERS): self.value(1) for _ in range(self.rng.randint(0, 8))}).encode()


@pytest.mark.parametrize("node", list(ACTIONS))
def test_random_bodies_get_answers_not_crashes(cluster, node):
    wait_for_queue(cluster, "POC-Queue")
    before = process_by_name(cluster.status(), node)["pid"]
    root = root_credentials_for(cluster.endpoint("queue"))
    prefix, names = ACTIONS[node]
    fuzz = Fuzzer(seed=sum(map(ord, node)))
    internal = []
    with NimbusClient(cluster.endpoint(node), sign=False) as client:
        for _ in range(ROUNDS):
            action = f"{prefix}:{fuzz.rng.choice(names.split())}"
            body = fuzz.body()
            header = sign_header({"kind": "request", "id": new_id("fuzz"), "action": action}, body, root)
            client.send_frames([PROTOCOL_TAG, json.dumps(header).encode(), body])
            # ReceiveMessage may hold its answer up to 20 s (WaitTimeSeconds), GetRecords up to 20 s.
            answer_header, answer = client.recv(25.0)
            assert answer_header["id"] == header["id"]
            if answer_header["kind"] == "error" and answer.get("code") == "InternalFailure":
                internal.append((action, body[:200], answer))
    assert internal == []
    assert process_by_name(cluster.status(), node)["pid"] == before

"""nimbus-edge, AWS's query protocol (form-encoded ``Action=...``, XML answers) end to end: boto3's
``sns``, ``iam`` and ``sts`` clients (every SDK speaks query to those), SQS's query protocol by hand
(a form POST signed with botocore's ``SigV4Auth``, as older SDKs send it) and through a botocore
client built on the query-era SQS model the edge itself is driven by (Sources/EdgeService/Models).

The cluster runs no ingest worker: nothing but these tests reads the queues.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

boto3 = pytest.importorskip("boto3", reason="the edge tests need boto3 (pip install boto3)")
import botocore.auth  # noqa: E402
import botocore.awsrequest  # noqa: E402
import botocore.config  # noqa: E402
import botocore.credentials  # noqa: E402
import botocore.session  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from conftest import REPO, wait_until  # noqa: E402

CLUSTER_INSTANCES = {"ingest-worker": 0}
ACCOUNT = "000000000000"
REGION = "us-east-1"
SQS_NS = "{http://queue.amazonaws.com/doc/2012-11-05/}"
CLIENT_CONFIG = botocore.config.Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=30)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def edge(cluster):
    """The module's cluster once its edge answers a signed STS call (bounded wait)."""
    sts = client(cluster, "sts")
    wait_until(lambda: sts.get_caller_identity()["Account"] == ACCOUNT, timeout=30, message="the edge answers sts:GetCallerIdentity")
    return cluster


def client(cluster, service: str, credentials: dict | None = None, session: botocore.session.Session | None = None):
    keys = credentials or cluster.root_credentials()
    return boto3.session.Session(botocore_session=session).client(
        service, endpoint_url=cluster.edge_url, region_name=REGION, aws_access_key_id=keys["AccessKeyId"],
        aws_secret_access_key=keys["SecretAccessKey"], aws_session_token=keys.get("SessionToken"), config=CLIENT_CONFIG)


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


# --------------------------------------------------------------------------------------------
# SQS's query protocol by hand
# --------------------------------------------------------------------------------------------


class QueryReply:
    def __init__(self, status: int, body: bytes):
        self.status = status
        self.body = body
        self.root = ET.fromstring(body)

    def find(self, path: str) -> ET.Element | None:
        return self.root.find(path.replace("sqs:", SQS_NS))

    def findall(self, path: str) -> list[ET.Element]:
        return self.root.findall(path.replace("sqs:", SQS_NS))

    def text(self, path: str) -> str | None:
        element = self.find(path)
        return None if element is None else element.text

    @property
    def error_code(self) -> str | None:
        return self.text("sqs:Error/sqs:Code")


def sqs_query(cluster, params: dict[str, str], path: str = "/", credentials: dict | None = None) -> QueryReply:
    """A query-protocol SQS request: a form POST signed with SigV4 (botocore's SigV4Auth) for sqs."""
    keys = credentials or cluster.root_credentials()
    form = {"Version": "2012-11-05", **params}
    request = botocore.awsrequest.AWSRequest(
        method="POST", url=cluster.edge_url + path, data=urllib.parse.urlencode(form).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(keys["AccessKeyId"], keys["SecretAccessKey"], keys.get("SessionToken")),
                            "sqs", REGION).add_auth(request)
    prepared = request.prepare()
    http_request = urllib.request.Request(prepared.url, data=prepared.body, method="POST", headers=dict(prepared.headers.items()))
    try:
        with urllib.request.urlopen(http_request, timeout=30) as reply:
            return QueryReply(reply.status, reply.read())
    except urllib.error.HTTPError as error:
        return QueryReply(error.code, error.read())


def subscriber_queue(cluster, name: str) -> tuple[str, str]:
    """A queue (created through the query protocol, its policy as Attribute.1) a topic may deliver to:
    its policy lets sns.amazonaws.com send. Returns (url, arn)."""
    arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}"
    policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "sns.amazonaws.com"},
                                                      "Action": "sqs:SendMessage", "Resource": arn}]}
    reply = sqs_query(cluster, {"Action": "CreateQueue", "QueueName": name, "Attribute.1.Name": "Policy",
                                "Attribute.1.Value": json.dumps(policy)})
    assert reply.status == 200, reply.body
    return reply.text("sqs:CreateQueueResult/sqs:QueueUrl"), arn


def query_era_sqs_session(tmp: Path) -> botocore.session.Session:
    """A botocore session whose sqs model is the query-era one the edge is driven by (Models/sqs.json,
    botocore 1.31.0's, turned back into botocore's format): its client speaks the query protocol."""
    trimmed = json.loads((REPO / "Sources" / "EdgeService" / "Models" / "sqs.json").read_text())
    shapes = {}
    for name, shape in trimmed["shapes"].items():
        shapes[name] = {k: v for k, v in shape.items() if k != "members"}
        if "members" in shape:
            shapes[name]["members"] = {m["name"]: {k: v for k, v in m.items() if k != "name"} for m in shape["members"]}
    operations = {}
    for name, operation in trimmed["operations"].items():
        entry = {"name": name, "http": {"method": "POST", "requestUri": "/"}}
        if "input" in operation:
            entry["input"] = {"shape": operation["input"]}
        if "output" in operation:
            entry["output"] = {"shape": operation["output"], "resultWrapper": operation["resultWrapper"]}
        operations[name] = entry
    metadata = {**trimmed["metadata"], "endpointPrefix": "sqs", "signatureVersion": "v4", "uid": "sqs-2012-11-05"}
    directory = tmp / "sqs" / "2012-11-05"
    directory.mkdir(parents=True)
    (directory / "service-2.json").write_text(json.dumps({"version": "2.0", "metadata": metadata, "operations": operations,
                                                          "shapes": shapes}))
    session = botocore.session.Session()
    session.get_component("data_loader").search_paths.insert(0, str(tmp))
    return session


# --------------------------------------------------------------------------------------------
# STS
# --------------------------------------------------------------------------------------------


def test_sts_get_caller_identity_names_the_root(edge):
    identity = client(edge, "sts").get_caller_identity()
    assert identity["Account"] == ACCOUNT
    assert identity["Arn"] == edge.root_credentials()["Principal"]
    assert identity["UserId"] == ACCOUNT  # the root user's UserId is the account id
    assert identity["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert identity["ResponseMetadata"]["RequestId"]


def test_sts_assume_role_gives_working_credentials(edge):
    iam = client(edge, "iam")
    name = unique("edge-query-role")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}]}
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]
    try:
        assumed = client(edge, "sts").assume_role(RoleArn=role["Arn"], RoleSessionName="query-test", DurationSeconds=900)
        credentials = assumed["Credentials"]
        assert credentials["AccessKeyId"] and credentials["SecretAccessKey"] and credentials["SessionToken"]
        # Expiration is a timestamp botocore parsed (the node gives epoch milliseconds)
        assert credentials["Expiration"].year >= 2024
        session_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/{name}/query-test"
        assert assumed["AssumedRoleUser"]["Arn"] == session_arn
        assert assumed["AssumedRoleUser"]["AssumedRoleId"].endswith(":query-test")
        # the temporary credentials sign the next call, which runs as the session
        as_session = client(edge, "sts", credentials={"AccessKeyId": credentials["AccessKeyId"],
                                                      "SecretAccessKey": credentials["SecretAccessKey"],
                                                      "SessionToken": credentials["SessionToken"]})
        # no permission is needed to ask who one is (the role has no policies attached)
        identity = as_session.get_caller_identity()
        assert identity["Arn"] == session_arn and identity["UserId"] == assumed["AssumedRoleUser"]["AssumedRoleId"]
    finally:
        iam.delete_role(RoleName=name)


def test_sts_nimbus_internal_actions_are_not_served(edge):
    sts = client(edge, "sts")
    for action in ("GetSigningKey", "GetAWSSigningKey", "GetServiceCredentials"):
        request = botocore.awsrequest.AWSRequest(
            method="POST", url=edge.edge_url + "/", data=urllib.parse.urlencode({"Action": action, "Version": "2011-06-15"}).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
        keys = edge.root_credentials()
        botocore.auth.SigV4Auth(botocore.credentials.Credentials(keys["AccessKeyId"], keys["SecretAccessKey"]), "sts",
                                REGION).add_auth(request)
        prepared = request.prepare()
        try:
            urllib.request.urlopen(urllib.request.Request(prepared.url, data=prepared.body, method="POST",
                                                          headers=dict(prepared.headers.items())), timeout=30)
            pytest.fail(f"sts:{action} answered through the edge")
        except urllib.error.HTTPError as error:
            assert error.code == 400
            body = error.read()
            assert ET.fromstring(body).find("{https://sts.amazonaws.com/doc/2011-06-15/}Error/"
                                            "{https://sts.amazonaws.com/doc/2011-06-15/}Code").text == "InvalidAction", body
    assert sts.get_caller_identity()["Account"] == ACCOUNT


# --------------------------------------------------------------------------------------------
# IAM
# --------------------------------------------------------------------------------------------


def test_iam_policies_and_roles(edge):
    iam = client(edge, "iam")
    policy_name, role_name = unique("edge-query-policy"), unique("edge-query-role")
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}]}
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"},
                                                     "Action": "sts:AssumeRole"}]}
    policy = iam.create_policy(PolicyName=policy_name, PolicyDocument=json.dumps(document), Description="edge test")["Policy"]
    assert policy["PolicyName"] == policy_name
    assert policy["Arn"] == f"arn:aws:iam::{ACCOUNT}:policy/{policy_name}"
    assert policy["CreateDate"].year >= 2024  # a timestamp, parsed
    fetched = iam.get_policy(PolicyArn=policy["Arn"])["Policy"]
    assert fetched["AttachmentCount"] == 0 and fetched["IsAttachable"] is True
    assert policy_name in [p["PolicyName"] for p in iam.list_policies(Scope="Local")["Policies"]]

    role = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust), Description="edge test",
                           Tags=[{"Key": "team", "Value": "lab"}])["Role"]
    assert role["RoleName"] == role_name and role["Arn"] == f"arn:aws:iam::{ACCOUNT}:role/{role_name}"
    # IAM gives policy documents URL-encoded; botocore decodes them into a dict
    assert iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"] == trust
    listed = iam.list_roles()
    assert listed["IsTruncated"] is False
    mine = [r for r in listed["Roles"] if r["RoleName"] == role_name]
    assert len(mine) == 1 and mine[0]["CreateDate"].year >= 2024 and mine[0]["AssumeRolePolicyDocument"] == trust
    # the lab's roles are there too (stacks/poc-lab.yaml)
    assert "Lambda-SQS-DynamoDB" in [r["RoleName"] for r in listed["Roles"]]

    iam.attach_role_policy(RoleName=role_name, PolicyArn=policy["Arn"])
    attached = iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"]
    assert attached == [{"PolicyName": policy_name, "PolicyArn": policy["Arn"]}]
    assert iam.get_policy(PolicyArn=policy["Arn"])["Policy"]["AttachmentCount"] == 1
    iam.detach_role_policy(RoleName=role_name, PolicyArn=policy["Arn"])
    assert iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"] == []

    iam.delete_role(RoleName=role_name)
    iam.delete_policy(PolicyArn=policy["Arn"])
    with pytest.raises(ClientError) as missing:
        iam.get_role(RoleName=role_name)
    assert error_code(missing.value) == "NoSuchEntity"
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_iam_missing_parameter_is_an_aws_error(edge):
    iam = client(edge, "iam")
    # botocore validates required members itself: send the form by hand without RoleName
    keys = edge.root_credentials()
    request = botocore.awsrequest.AWSRequest(
        method="POST", url=edge.edge_url + "/",
        data=urllib.parse.urlencode({"Action": "GetRole", "Version": "2010-05-08"}).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})
    botocore.auth.SigV4Auth(botocore.credentials.Credentials(keys["AccessKeyId"], keys["SecretAccessKey"]), "iam",
                            REGION).add_auth(request)
    prepared = request.prepare()
    with pytest.raises(urllib.error.HTTPError) as failure:
        urllib.request.urlopen(urllib.request.Request(prepared.url, data=prepared.body, method="POST",
                                                      headers=dict(prepared.headers.items())), timeout=30)
    assert failure.value.code == 400
    ns = "{https://iam.amazonaws.com/doc/2010-05-08/}"
    error = ET.fromstring(failure.value.read()).find(f"{ns}Error")
    assert error.find(f"{ns}Code").text == "MissingParameter"
    assert error.find(f"{ns}Message").text == "The request must contain the parameter RoleName."
    assert iam.list_roles()["IsTruncated"] is False


# --------------------------------------------------------------------------------------------
# SNS (with an SQS subscriber, through the query protocol too)
# --------------------------------------------------------------------------------------------


def test_sns_topics_subscriptions_and_publish(edge):
    sns = client(edge, "sns")
    topic_name = unique("edge-query-topic")
    queue_url, queue_arn = subscriber_queue(edge, unique("edge-query-sub"))

    topic_arn = sns.create_topic(Name=topic_name, Attributes={"DisplayName": "Edge & Query"})["TopicArn"]
    assert topic_arn == f"arn:aws:sns:{REGION}:{ACCOUNT}:{topic_name}"
    assert topic_arn in [t["TopicArn"] for t in sns.list_topics()["Topics"]]
    sns.set_topic_attributes(TopicArn=topic_arn, AttributeName="DisplayName", AttributeValue="Orders <1>")
    attributes = sns.get_topic_attributes(TopicArn=topic_arn)["Attributes"]
    assert attributes["TopicArn"] == topic_arn and attributes["DisplayName"] == "Orders <1>"

    subscription_arn = sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, ReturnSubscriptionArn=True,
                                     Attributes={"RawMessageDelivery": "true"})["SubscriptionArn"]
    assert subscription_arn.startswith(topic_arn + ":")
    by_topic = sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"]
    assert [(s["SubscriptionArn"], s["Protocol"], s["Endpoint"], s["TopicArn"]) for s in by_topic] == \
        [(subscription_arn, "sqs", queue_arn, topic_arn)]
    assert subscription_arn in [s["SubscriptionArn"] for s in sns.list_subscriptions()["Subscriptions"]]
    sns.set_subscription_attributes(SubscriptionArn=subscription_arn, AttributeName="FilterPolicy",
                                    AttributeValue=json.dumps({"kind": ["order"]}))
    subscription = sns.get_subscription_attributes(SubscriptionArn=subscription_arn)["Attributes"]
    assert subscription["RawMessageDelivery"] == "true" and json.loads(subscription["FilterPolicy"]) == {"kind": ["order"]}

    message_id = sns.publish(TopicArn=topic_arn, Message="order 1", Subject="new",
                             MessageAttributes={"kind": {"DataType": "String", "StringValue": "order"},
                                                "count": {"DataType": "Number", "StringValue": "3"}})["MessageId"]
    assert message_id
    filtered_out = sns.publish(TopicArn=topic_arn, Message="not an order",
                               MessageAttributes={"kind": {"DataType": "String", "StringValue": "refund"}})["MessageId"]
    assert filtered_out
    batch = sns.publish_batch(TopicArn=topic_arn, PublishBatchRequestEntries=[
        {"Id": "a", "Message": "order 2", "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "order"}}},
        {"Id": "b", "Message": "order 3", "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "order"}}},
    ])
    assert sorted(entry["Id"] for entry in batch["Successful"]) == ["a", "b"] and batch["Failed"] == []

    # raw delivery: the queue gets the bodies and the message attributes (read through the query protocol)
    received: dict[str, dict] = {}

    def receive_three():
        reply = sqs_query(edge, {"Action": "ReceiveMessage", "QueueUrl": queue_url, "MaxNumberOfMessages": "10",
                                 "MessageAttributeName.1": "All", "WaitTimeSeconds": "1"})
        assert reply.status == 200, reply.body
        for message in reply.findall("sqs:ReceiveMessageResult/sqs:Message"):
            attributes = {a.find(f"{SQS_NS}Name").text: a.find(f"{SQS_NS}Value/{SQS_NS}StringValue").text
                          for a in message.findall(f"{SQS_NS}MessageAttribute")}
            received[message.find(f"{SQS_NS}Body").text] = attributes
            sqs_query(edge, {"Action": "DeleteMessage", "QueueUrl": queue_url,
                             "ReceiptHandle": message.find(f"{SQS_NS}ReceiptHandle").text})
        return len(received) >= 3

    wait_until(receive_three, timeout=30, message="the topic's three orders reach the queue")
    assert set(received) == {"order 1", "order 2", "order 3"}
    assert received["order 1"] == {"kind": "order", "count": "3"}

    sns.unsubscribe(SubscriptionArn=subscription_arn)
    assert sns.list_subscriptions_by_topic(TopicArn=topic_arn)["Subscriptions"] == []
    sns.delete_topic(TopicArn=topic_arn)
    with pytest.raises(ClientError) as missing:
        sns.get_topic_attributes(TopicArn=topic_arn)
    assert error_code(missing.value) == "NotFound"
    sqs_query(edge, {"Action": "DeleteQueue", "QueueUrl": queue_url})


# --------------------------------------------------------------------------------------------
# SQS
# --------------------------------------------------------------------------------------------


def test_sqs_query_protocol_by_hand(edge):
    name = unique("edge-query-q")
    created = sqs_query(edge, {"Action": "CreateQueue", "QueueName": name, "Attribute.1.Name": "VisibilityTimeout",
                               "Attribute.1.Value": "45", "Tag.1.Key": "team", "Tag.1.Value": "lab"})
    assert created.status == 200, created.body
    url = created.text("sqs:CreateQueueResult/sqs:QueueUrl")
    assert url == f"{edge.edge_url}/{ACCOUNT}/{name}"
    assert created.text("sqs:ResponseMetadata/sqs:RequestId")
    assert sqs_query(edge, {"Action": "GetQueueUrl", "QueueName": name}).text("sqs:GetQueueUrlResult/sqs:QueueUrl") == url
    listed = sqs_query(edge, {"Action": "ListQueues", "QueueNamePrefix": name})
    assert [e.text for e in listed.findall("sqs:ListQueuesResult/sqs:QueueUrl")] == [url]

    sent = sqs_query(edge, {"Action": "SendMessage", "QueueUrl": url, "MessageBody": "<order id=\"1\"/> & more",
                            "MessageAttribute.1.Name": "kind", "MessageAttribute.1.Value.DataType": "String",
                            "MessageAttribute.1.Value.StringValue": "order",
                            "MessageAttribute.2.Name": "raw", "MessageAttribute.2.Value.DataType": "Binary",
                            "MessageAttribute.2.Value.BinaryValue": "AAEC"})
    assert sent.status == 200, sent.body
    assert sent.text("sqs:SendMessageResult/sqs:MessageId")
    assert sent.text("sqs:SendMessageResult/sqs:MD5OfMessageAttributes")

    received = sqs_query(edge, {"Action": "ReceiveMessage", "QueueUrl": url, "AttributeName.1": "All",
                                "MessageAttributeName.1": "All", "WaitTimeSeconds": "2"})
    message = received.find("sqs:ReceiveMessageResult/sqs:Message")
    assert message is not None, received.body
    assert message.find(f"{SQS_NS}Body").text == "<order id=\"1\"/> & more"
    system = {a.find(f"{SQS_NS}Name").text: a.find(f"{SQS_NS}Value").text for a in message.findall(f"{SQS_NS}Attribute")}
    assert system["ApproximateReceiveCount"] == "1" and int(system["SentTimestamp"]) > 0
    custom = {a.find(f"{SQS_NS}Name").text: (a.find(f"{SQS_NS}Value/{SQS_NS}DataType").text,
                                            (a.find(f"{SQS_NS}Value/{SQS_NS}StringValue") if a.find(f"{SQS_NS}Value/{SQS_NS}StringValue")
                                             is not None else a.find(f"{SQS_NS}Value/{SQS_NS}BinaryValue")).text)
              for a in message.findall(f"{SQS_NS}MessageAttribute")}
    assert custom == {"kind": ("String", "order"), "raw": ("Binary", "AAEC")}
    handle = message.find(f"{SQS_NS}ReceiptHandle").text
    assert sqs_query(edge, {"Action": "ChangeMessageVisibility", "QueueUrl": url, "ReceiptHandle": handle,
                            "VisibilityTimeout": "0"}).status == 200
    assert sqs_query(edge, {"Action": "DeleteMessage", "QueueUrl": url, "ReceiptHandle": handle}).status == 200

    assert sqs_query(edge, {"Action": "SetQueueAttributes", "QueueUrl": url, "Attribute.1.Name": "DelaySeconds",
                            "Attribute.1.Value": "0", "Attribute.2.Name": "MaximumMessageSize", "Attribute.2.Value": "2048"}).status == 200
    attributes = sqs_query(edge, {"Action": "GetQueueAttributes", "QueueUrl": url, "AttributeName.1": "All"})
    values = {a.find(f"{SQS_NS}Name").text: a.find(f"{SQS_NS}Value").text
              for a in attributes.findall("sqs:GetQueueAttributesResult/sqs:Attribute")}
    assert values["VisibilityTimeout"] == "45" and values["MaximumMessageSize"] == "2048" and values["DelaySeconds"] == "0"

    # the queue named by the path instead of QueueUrl (http://HOST/ACCOUNT/NAME), as older SDKs send it
    by_path = sqs_query(edge, {"Action": "SendMessage", "MessageBody": "by path"}, path=f"/{ACCOUNT}/{name}")
    assert by_path.status == 200, by_path.body
    assert sqs_query(edge, {"Action": "PurgeQueue", "QueueUrl": url}).status == 200

    # errors: the query protocol's <ErrorResponse>
    missing = sqs_query(edge, {"Action": "SendMessage", "QueueUrl": url})
    assert missing.status == 400 and missing.error_code == "MissingParameter"
    assert missing.text("sqs:Error/sqs:Message") == "The request must contain the parameter MessageBody."
    assert missing.text("sqs:Error/sqs:Type") == "Sender" and missing.text("sqs:RequestId")
    bad = sqs_query(edge, {"Action": "SendMessage", "QueueUrl": url, "MessageBody": "x", "DelaySeconds": "soon"})
    assert bad.status == 400 and bad.error_code == "InvalidParameterValue"
    unknown = sqs_query(edge, {"Action": "TagQueue", "QueueUrl": url})
    assert unknown.status == 400 and unknown.error_code == "InvalidAction"

    assert sqs_query(edge, {"Action": "DeleteQueue", "QueueUrl": url}).status == 200
    gone = sqs_query(edge, {"Action": "GetQueueUrl", "QueueName": name})
    assert gone.status == 400 and gone.error_code == "AWS.SimpleQueueService.NonExistentQueue"


def test_sqs_botocore_query_client(edge, tmp_path):
    """Every SQS action through botocore's own query serializer and parser (the query-era model)."""
    sqs = client(edge, "sqs", session=query_era_sqs_session(tmp_path))
    assert sqs.meta.service_model.protocol == "query"
    name = unique("edge-query-boto")
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "30"}, tags={"team": "lab"})["QueueUrl"]
    assert url == f"{edge.edge_url}/{ACCOUNT}/{name}"
    assert sqs.get_queue_url(QueueName=name)["QueueUrl"] == url
    assert sqs.list_queues(QueueNamePrefix=name)["QueueUrls"] == [url]

    sent = sqs.send_message(QueueUrl=url, MessageBody="one", DelaySeconds=0,
                            MessageAttributes={"kind": {"DataType": "String", "StringValue": "order"},
                                               "raw": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}})
    assert sent["MessageId"] and sent["MD5OfMessageBody"] == "f97c5d29941bfb1b2fdab0874906ab82"
    batch = sqs.send_message_batch(QueueUrl=url, Entries=[{"Id": "a", "MessageBody": "two"}, {"Id": "b", "MessageBody": "three"}])
    assert sorted(e["Id"] for e in batch["Successful"]) == ["a", "b"] and not batch.get("Failed")

    messages: dict[str, dict] = {}

    def receive_all():
        for message in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"],
                                           MessageAttributeNames=["All"], WaitTimeSeconds=1).get("Messages", []):
            messages[message["Body"]] = message
        return len(messages) == 3

    wait_until(receive_all, timeout=20, message="the three messages are received")
    one = messages["one"]
    assert one["MessageAttributes"]["kind"] == {"DataType": "String", "StringValue": "order"}
    assert one["MessageAttributes"]["raw"] == {"DataType": "Binary", "BinaryValue": b"\x00\x01"}
    assert one["Attributes"]["ApproximateReceiveCount"] == "1"

    changed = sqs.change_message_visibility_batch(QueueUrl=url, Entries=[
        {"Id": "t", "ReceiptHandle": messages["two"]["ReceiptHandle"], "VisibilityTimeout": 0},
        {"Id": "bad", "ReceiptHandle": "not-a-handle", "VisibilityTimeout": 0}])
    assert [e["Id"] for e in changed["Successful"]] == ["t"]
    assert [(e["Id"], e["SenderFault"]) for e in changed["Failed"]] == [("bad", True)]
    sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=messages["three"]["ReceiptHandle"], VisibilityTimeout=0)
    sqs.delete_message(QueueUrl=url, ReceiptHandle=one["ReceiptHandle"])
    deleted = sqs.delete_message_batch(QueueUrl=url, Entries=[{"Id": "x", "ReceiptHandle": messages["two"]["ReceiptHandle"]}])
    assert [e["Id"] for e in deleted["Successful"]] == ["x"]

    sqs.set_queue_attributes(QueueUrl=url, Attributes={"DelaySeconds": "1"})
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["DelaySeconds", "VisibilityTimeout"])["Attributes"]
    assert attributes == {"DelaySeconds": "1", "VisibilityTimeout": "30"}
    sqs.purge_queue(QueueUrl=url)
    sqs.delete_queue(QueueUrl=url)
    with pytest.raises(ClientError) as gone:
        sqs.get_queue_url(QueueName=name)
    assert error_code(gone.value) == "AWS.SimpleQueueService.NonExistentQueue"

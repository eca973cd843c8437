"""nimbus-edge, IAM and STS: what boto3 sees over their query protocols, as the IAM and STS API
references describe it.

Sources (AWS docs): STS API_GetCallerIdentity (for the root user, UserId is the account id and Arn
arn:aws:iam::ACCOUNT:root) / API_AssumeRole (Credentials, AssumedRoleUser arn:aws:sts::ACCOUNT:
assumed-role/ROLE/SESSION); IAM API_ListRoles / API_GetRole / API_ListPolicies (Scope Local|AWS|All) /
API_GetPolicy / API_GetPolicyVersion / API_ListAttachedRolePolicies / API_DeleteRole and API_DeletePolicy
(DeleteConflict, 409, while policies are attached) / NoSuchEntity (404); IAM common errors; the IAM
query API's <ErrorResponse><Error><Type>Sender</Type><Code>NoSuchEntity</Code>.

Note: in AWS the lab roles trust only lambda.amazonaws.com / apigateway.amazonaws.com, and the STS
reference (older editions) says "You cannot call AssumeRole by using AWS root account credentials;
access is denied". Nimbus lets the account root assume the lab roles so that their keys can be tried
from outside; those tests are Nimbus-only.
"""

from __future__ import annotations

import datetime
import json
import urllib.parse

import pytest

import aws_compat
from aws_compat import (ACCOUNT, APIGATEWAY_LOGS_POLICY, LAB_POLICIES, LAB_ROLES, error_code, http_status, policy_arn,
                        role_arn, send, signed_request, unique)

edge = aws_compat.edge_fixture(instances={"ingest-worker": 0, "stream-worker": 0})

TRUST_THE_ACCOUNT = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"}, "Action": "sts:AssumeRole"}]})


# --------------------------------------------------------------------------------------------
# STS
# --------------------------------------------------------------------------------------------


def test_get_caller_identity_names_the_account(edge):
    identity = edge.client("sts").get_caller_identity()
    assert http_status(identity) == 200
    assert identity["Account"] == ACCOUNT
    assert identity["Arn"].split(":")[4] == ACCOUNT
    assert identity["UserId"]


@aws_compat.nimbus_only("the edge's keys are the account root's (root.json); moto maps unknown keys to user/moto")
def test_get_caller_identity_of_the_root_keys(edge):
    identity = edge.client("sts").get_caller_identity()
    assert identity["Arn"] == f"arn:aws:iam::{ACCOUNT}:root"
    assert identity["UserId"] == ACCOUNT  # the root user's UserId is the account id
    assert edge.root.get("Principal", identity["Arn"]) == identity["Arn"]


@aws_compat.nimbus_only("AWS refuses AssumeRole with root credentials and the lab roles trust only services; Nimbus "
                        "lets the account root assume them")
def test_assume_the_lab_role_and_use_its_keys(edge):
    sts = edge.client("sts")
    before = datetime.datetime.now(datetime.timezone.utc)
    reply = sts.assume_role(RoleArn=role_arn("Lambda-SQS-DynamoDB"), RoleSessionName="edge-test", DurationSeconds=900)
    credentials = reply["Credentials"]
    assert credentials["AccessKeyId"].startswith("ASIA")  # temporary keys
    assert credentials["SecretAccessKey"] and credentials["SessionToken"]
    expiration = credentials["Expiration"]
    assert before + datetime.timedelta(minutes=14) <= expiration <= before + datetime.timedelta(minutes=16)
    user = reply["AssumedRoleUser"]
    assert user["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/Lambda-SQS-DynamoDB/edge-test"
    assert user["AssumedRoleId"].startswith("AROA") and user["AssumedRoleId"].endswith(":edge-test")

    role = aws_compat.clients_for(edge.url, credentials)
    identity = role("sts").get_caller_identity()
    assert identity["Arn"] == user["Arn"]
    assert identity["UserId"] == user["AssumedRoleId"]
    assert identity["Account"] == ACCOUNT


@aws_compat.nimbus_only("moto lets anyone assume anything")
def test_assuming_a_missing_role_is_access_denied(edge):
    sts = edge.client("sts")
    with pytest.raises(sts.exceptions.ClientError) as caught:
        sts.assume_role(RoleArn=role_arn("no-such-role"), RoleSessionName="edge-test")
    assert error_code(caught.value) == "AccessDenied"
    assert http_status(caught.value) == 403


# --------------------------------------------------------------------------------------------
# IAM: the lab's roles and policies
# --------------------------------------------------------------------------------------------


def test_list_roles_has_the_lab_roles(edge):
    roles = {r["RoleName"]: r for r in edge.client("iam").list_roles()["Roles"]}
    for name, (service, _) in LAB_ROLES.items():
        role = roles[name]
        assert role["Arn"] == role_arn(name)
        assert role["Path"] == "/"
        assert role["RoleId"].startswith("AROA")
        assert isinstance(role["CreateDate"], datetime.datetime)
        # botocore URL-decodes and parses the policy document
        trust = role["AssumeRolePolicyDocument"]
        assert trust["Statement"][0]["Principal"] == {"Service": service}
        assert trust["Statement"][0]["Action"] == "sts:AssumeRole"


def test_list_roles_paginates(edge):
    iam = edge.client("iam")
    first = iam.list_roles(MaxItems=1)
    assert len(first["Roles"]) == 1
    assert first["IsTruncated"] is True and first["Marker"]
    names = [first["Roles"][0]["RoleName"]]
    marker = first["Marker"]
    for _ in range(100):
        page = iam.list_roles(MaxItems=1, Marker=marker)
        names += [r["RoleName"] for r in page["Roles"]]
        if not page["IsTruncated"]:
            break
        marker = page["Marker"]
    assert set(LAB_ROLES) <= set(names)
    assert len(names) == len(set(names))


def test_get_role(edge):
    role = edge.client("iam").get_role(RoleName="Lambda-SQS-DynamoDB")["Role"]
    assert role["RoleName"] == "Lambda-SQS-DynamoDB"
    assert role["Arn"] == role_arn("Lambda-SQS-DynamoDB")
    assert role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}
    assert role["MaxSessionDuration"] == 3600


def test_a_missing_role_is_no_such_entity(edge):
    iam = edge.client("iam")
    for call in (lambda: iam.get_role(RoleName="no-such-role"),
                 lambda: iam.list_attached_role_policies(RoleName="no-such-role")):
        with pytest.raises(iam.exceptions.NoSuchEntityException) as caught:
            call()
        assert error_code(caught.value) == "NoSuchEntity"
        assert http_status(caught.value) == 404
        assert caught.value.response["Error"]["Type"] == "Sender"


def test_list_local_policies(edge):
    policies = {p["PolicyName"]: p for p in edge.client("iam").list_policies(Scope="Local")["Policies"]}
    assert set(LAB_POLICIES) <= set(policies)
    for name in LAB_POLICIES:
        policy = policies[name]
        assert policy["Arn"] == policy_arn(name)
        if not edge.is_moto:  # moto's ids are random; "IAM identifiers", unique ID prefixes: ANPA = managed policy
            assert policy["PolicyId"].startswith("ANPA")
        assert policy["Path"] == "/"
        assert policy["DefaultVersionId"] == "v1"
        assert policy["IsAttachable"] is True
        assert policy["AttachmentCount"] == 1  # each is attached to one lab role
        assert isinstance(policy["CreateDate"], datetime.datetime)
    # Scope=Local lists only customer managed policies
    assert all(p["Arn"].startswith(f"arn:aws:iam::{ACCOUNT}:policy/") for p in policies.values())


def test_list_attached_role_policies(edge):
    iam = edge.client("iam")
    for name, (_, attached) in LAB_ROLES.items():
        reply = iam.list_attached_role_policies(RoleName=name)
        assert reply["IsTruncated"] is False
        assert sorted(p["PolicyArn"] for p in reply["AttachedPolicies"]) == sorted(policy_arn(p) for p in attached)
        for p in reply["AttachedPolicies"]:
            assert p["PolicyArn"].endswith("/" + p["PolicyName"])
    apigateway = iam.list_attached_role_policies(RoleName="APIGateway-SQS")["AttachedPolicies"]
    assert apigateway == [{"PolicyName": "AmazonAPIGatewayPushToCloudWatchLogs", "PolicyArn": APIGATEWAY_LOGS_POLICY}]


def test_get_policy_and_its_document(edge):
    iam = edge.client("iam")
    policy = iam.get_policy(PolicyArn=policy_arn("Lambda-Read-SQS"))["Policy"]
    assert policy["PolicyName"] == "Lambda-Read-SQS"
    assert policy["DefaultVersionId"] == "v1"
    version = iam.get_policy_version(PolicyArn=policy_arn("Lambda-Read-SQS"), VersionId="v1")["PolicyVersion"]
    assert version["IsDefaultVersion"] is True
    statement = version["Document"]["Statement"][0]
    assert statement["Effect"] == "Allow"
    assert sorted(statement["Action"]) == sorted(LAB_POLICIES["Lambda-Read-SQS"])
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_policy(PolicyArn=policy_arn("no-such-policy"))


# --------------------------------------------------------------------------------------------
# IAM: a role and a policy of the test's own
# --------------------------------------------------------------------------------------------


def role_with_policy(iam) -> tuple[str, str]:
    role_name, policy_name = unique("edge-role"), unique("edge-policy")
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sqs:ReceiveMessage", "Resource": "*"}]}
    created = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=TRUST_THE_ACCOUNT, Description="edge test")["Role"]
    assert created["Arn"] == role_arn(role_name)
    policy = iam.create_policy(PolicyName=policy_name, PolicyDocument=json.dumps(document))["Policy"]
    assert policy["Arn"] == policy_arn(policy_name)
    assert policy["AttachmentCount"] == 0
    iam.attach_role_policy(RoleName=role_name, PolicyArn=policy["Arn"])
    assert iam.get_policy(PolicyArn=policy["Arn"])["Policy"]["AttachmentCount"] == 1
    return role_name, policy["Arn"]


@aws_compat.moto_deviates("moto deletes both; API_DeleteRole: 'Make sure that the role doesn't have any attached "
                          "policies' and API_DeletePolicy: detach it first, else DeleteConflict (409)")
def test_deleting_an_attached_role_or_policy_is_delete_conflict(edge):
    iam = edge.client("iam")
    role_name, arn = role_with_policy(iam)
    try:
        with pytest.raises(iam.exceptions.DeleteConflictException) as caught:
            iam.delete_role(RoleName=role_name)
        assert error_code(caught.value) == "DeleteConflict"
        assert http_status(caught.value) == 409
        with pytest.raises(iam.exceptions.DeleteConflictException):
            iam.delete_policy(PolicyArn=arn)
    finally:
        iam.detach_role_policy(RoleName=role_name, PolicyArn=arn)
        iam.delete_role(RoleName=role_name)
        iam.delete_policy(PolicyArn=arn)


def test_role_and_policy_lifecycle(edge):
    iam = edge.client("iam")
    role_name, arn = role_with_policy(iam)
    iam.detach_role_policy(RoleName=role_name, PolicyArn=arn)
    assert iam.list_attached_role_policies(RoleName=role_name)["AttachedPolicies"] == []
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 0
    iam.delete_role(RoleName=role_name)
    iam.delete_policy(PolicyArn=arn)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_role(RoleName=role_name)
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.get_policy(PolicyArn=arn)


def test_creating_an_existing_role_is_entity_already_exists(edge):
    iam = edge.client("iam")
    with pytest.raises(iam.exceptions.EntityAlreadyExistsException) as caught:
        iam.create_role(RoleName="Lambda-SQS-DynamoDB", AssumeRolePolicyDocument=TRUST_THE_ACCOUNT)
    assert error_code(caught.value) == "EntityAlreadyExists"
    assert http_status(caught.value) == 409


def test_detaching_a_policy_that_is_not_attached_is_no_such_entity(edge):
    iam = edge.client("iam")
    with pytest.raises(iam.exceptions.NoSuchEntityException):
        iam.detach_role_policy(RoleName="APIGateway-SQS", PolicyArn=policy_arn("Lambda-Read-SQS"))


# --------------------------------------------------------------------------------------------
# the query protocol by hand
# --------------------------------------------------------------------------------------------


def test_iam_query_error_reply(edge):
    reply = send(signed_request("POST", edge.url + "/", "iam", edge.clients.credentials,
                                data={"Action": "GetRole", "Version": "2010-05-08", "RoleName": "no-such-role"}))
    assert reply.status == 404, reply.text
    error = aws_compat.query_error(reply)
    assert error["Type"] == "Sender"
    assert error["Code"] == "NoSuchEntity"
    assert error["Message"]


def test_sts_query_get_caller_identity(edge):
    reply = send(signed_request("POST", edge.url + "/", "sts", edge.clients.credentials,
                                data={"Action": "GetCallerIdentity", "Version": "2011-06-15"}))
    assert reply.status == 200, reply.text
    root = reply.xml()
    assert root.tag == "GetCallerIdentityResponse"
    assert root.findtext("GetCallerIdentityResult/Account") == ACCOUNT
    assert root.findtext("ResponseMetadata/RequestId")


def test_iam_query_list_roles(edge):
    reply = send(signed_request("POST", edge.url + "/", "iam", edge.clients.credentials,
                                data={"Action": "ListRoles", "Version": "2010-05-08"}))
    assert reply.status == 200, reply.text
    root = reply.xml()
    assert root.tag == "ListRolesResponse"
    names = [m.findtext("RoleName") for m in root.findall("ListRolesResult/Roles/member")]
    assert set(LAB_ROLES) <= set(names)
    assert root.findtext("ListRolesResult/IsTruncated") == "false"
    # API_Role: the trust policy "is URL-encoded compliant with RFC 3986" in the XML (botocore decodes it)
    document = next(m.findtext("AssumeRolePolicyDocument") for m in root.findall("ListRolesResult/Roles/member")
                    if m.findtext("RoleName") == "Lambda-SQS-DynamoDB")
    if not edge.is_moto:  # moto sends it as plain JSON
        assert document.startswith("%7B"), document[:40]
    assert json.loads(urllib.parse.unquote(document))["Statement"][0]["Principal"] == {"Service": "lambda.amazonaws.com"}

"""TagResource, UntagResource, ListResourceTags over boto3: limits and AWS's messages, key states, and tags as
the input of ABAC decisions (aws:ResourceTag, aws:RequestTag, aws:TagKeys)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from keys.models import Tag
from kmsconsole.audit.models import AuditEvent
from tests.conftest import Persona

pytestmark = pytest.mark.django_db(transaction=True)

ACCOUNT = "111122223333"


def error_of(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call()
    error = raised.value.response["Error"]
    return error["Code"], error.get("Message", "")


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def tags(**pairs: str) -> list[dict[str, str]]:
    return [{"TagKey": name, "TagValue": value} for name, value in pairs.items()]


def tags_of(client: Any, key_id: str) -> dict[str, str]:
    return {t["TagKey"]: t["TagValue"] for t in client.list_resource_tags(KeyId=key_id)["Tags"]}


def test_tag_retag_untag_and_list(admin_kms: Any, create_key: Callable[..., dict[str, Any]]) -> None:
    key = create_key(Tags=tags(team="blue"))
    admin_kms.tag_resource(KeyId=key["KeyId"], Tags=tags(cost="42", empty=""))
    assert tags_of(admin_kms, key["KeyId"]) == {"team": "blue", "cost": "42", "empty": ""}
    admin_kms.tag_resource(
        KeyId=key["Arn"], Tags=tags(team="green")
    )  # an existing key: the value is replaced
    assert tags_of(admin_kms, key["Arn"])["team"] == "green"
    admin_kms.untag_resource(KeyId=key["KeyId"], TagKeys=["cost", "never-set"])  # unknown keys are ignored
    listed = admin_kms.list_resource_tags(KeyId=key["KeyId"])
    assert listed["Truncated"] is False and "NextMarker" not in listed
    assert {t["TagKey"] for t in listed["Tags"]} == {"team", "empty"}
    tagged = AuditEvent.objects.filter(operation="TagResource", decision="allowed").first()
    assert tagged is not None and tagged.key_arn == key["Arn"]
    assert tagged.request_parameters["Tags"] == tags(team="green")  # tags are not secret: audited in clear
    assert AuditEvent.objects.filter(operation="UntagResource", decision="allowed").count() == 1


def test_tag_errors(admin_kms: Any, create_key: Callable[..., dict[str, Any]]) -> None:
    key_id = create_key()["KeyId"]
    assert error_of(lambda: admin_kms.tag_resource(KeyId=key_id, Tags=tags(**{"aws:owner": "x"}))) == (
        "TagException",
        "Tags beginning with aws: are reserved",
    )
    duplicate = [{"TagKey": "a", "TagValue": "1"}, {"TagKey": "a", "TagValue": "2"}]
    assert error_of(lambda: admin_kms.tag_resource(KeyId=key_id, Tags=duplicate)) == (
        "TagException",
        "Duplicate tag keys",
    )
    assert error_of(lambda: admin_kms.untag_resource(KeyId=key_id, TagKeys=["aws:owner"])) == (
        "TagException",
        "Tags beginning with aws: are reserved",
    )
    assert error_of(
        lambda: admin_kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "k" * 129, "TagValue": "v"}])
    ) == (
        "ValidationException",
        f"1 validation error detected: Value '{'k' * 129}' at 'tags.1.member.tagKey' failed to satisfy "
        "constraint: Member must have length less than or equal to 128",
    )
    missing = "11111111-2222-3333-4444-555555555555"
    assert error_of(lambda: admin_kms.tag_resource(KeyId=missing, Tags=tags(a="1"))) == (
        "NotFoundException",
        f"Key 'arn:aws:kms:us-east-1:{ACCOUNT}:key/{missing}' does not exist",
    )
    assert error_of(lambda: admin_kms.list_resource_tags(KeyId="alias/none")) == (
        "NotFoundException",
        "Invalid keyId 'alias/none'",
    )
    assert not Tag.objects.exists()


def test_fifty_tags_per_key(admin_kms: Any, create_key: Callable[..., dict[str, Any]]) -> None:
    key_id = create_key(Tags=tags(**{f"t{i}": str(i) for i in range(30)}))["KeyId"]
    admin_kms.tag_resource(KeyId=key_id, Tags=tags(**{f"t{i}": "again" for i in range(30)}))  # replaces
    admin_kms.tag_resource(KeyId=key_id, Tags=tags(**{f"u{i}": str(i) for i in range(19)}))
    assert error_of(lambda: admin_kms.tag_resource(KeyId=key_id, Tags=tags(v1="1", v2="2"))) == (
        "TagException",
        "Too many tags",
    )
    admin_kms.tag_resource(KeyId=key_id, Tags=tags(v1="1"))
    assert Tag.objects.filter(key__key_id=key_id).count() == 50
    assert error_of(lambda: admin_kms.tag_resource(KeyId=key_id, Tags=tags(v2="2"))) == (
        "TagException",
        "Too many tags",
    )


def test_list_resource_tags_pages_and_limits(
    kms_client: Callable[..., Any], admin: Persona, admin_kms: Any, create_key: Callable[..., dict[str, Any]]
) -> None:
    names = [f"k{i}" for i in range(5)]
    key_id = create_key(Tags=tags(**dict.fromkeys(names, "v")))["KeyId"]
    first = admin_kms.list_resource_tags(KeyId=key_id, Limit=2)
    assert first["Truncated"] and len(first["Tags"]) == 2
    seen = [t["TagKey"] for t in first["Tags"]]
    marker = first["NextMarker"]
    while marker:
        page = admin_kms.list_resource_tags(KeyId=key_id, Limit=2, Marker=marker)
        seen += [t["TagKey"] for t in page["Tags"]]
        marker = page.get("NextMarker")
    assert sorted(seen) == names
    assert error_of(lambda: admin_kms.list_resource_tags(KeyId=key_id, Limit=51)) == (
        "ValidationException",
        "1 validation error detected: Value '51' at 'limit' failed to satisfy constraint: "
        "Member must have value less than or equal to 50",
    )
    unchecked = kms_client(admin, parameter_validation=False)
    assert error_of(lambda: unchecked.list_resource_tags(KeyId=key_id, Limit=0))[0] == "ValidationException"
    other = create_key()["KeyId"]
    assert error_of(lambda: admin_kms.list_resource_tags(KeyId=other, Marker=first["NextMarker"]))[0] == (
        "InvalidMarkerException"
    )


def test_tags_in_key_states(admin_kms: Any, create_key: Callable[..., dict[str, Any]]) -> None:
    key = create_key(Tags=tags(team="blue"))
    admin_kms.disable_key(KeyId=key["KeyId"])
    admin_kms.tag_resource(KeyId=key["KeyId"], Tags=tags(state="disabled"))  # Disabled: allowed
    admin_kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    pending = ("KMSInvalidStateException", f"{key['Arn']} is pending deletion.")
    assert error_of(lambda: admin_kms.tag_resource(KeyId=key["KeyId"], Tags=tags(a="1"))) == pending
    assert error_of(lambda: admin_kms.untag_resource(KeyId=key["KeyId"], TagKeys=["team"])) == pending
    assert tags_of(admin_kms, key["KeyId"]) == {
        "team": "blue",
        "state": "disabled",
    }  # listing works in any state


def test_resource_tags_grant_and_revoke_access_through_the_key_policy(
    kms_client: Callable[..., Any], admin_kms: Any, make_user: Callable[..., Persona]
) -> None:
    user = make_user("tag-reader")
    key_policy = policy(
        {
            "Sid": "root",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Sid": "blue team reads",
            "Effect": "Allow",
            "Principal": {"AWS": user.arn},
            "Action": "kms:DescribeKey",
            "Resource": "*",
            "Condition": {"StringEquals": {"aws:ResourceTag/team": "blue"}},
        },
    )
    key_id = admin_kms.create_key(Policy=key_policy)["KeyMetadata"]["KeyId"]
    client = kms_client(user)
    assert error_of(lambda: client.describe_key(KeyId=key_id))[0] == "AccessDeniedException"
    admin_kms.tag_resource(KeyId=key_id, Tags=tags(team="blue"))
    assert client.describe_key(KeyId=key_id)["KeyMetadata"]["KeyId"] == key_id
    admin_kms.tag_resource(KeyId=key_id, Tags=tags(team="red"))
    assert error_of(lambda: client.describe_key(KeyId=key_id))[0] == "AccessDeniedException"
    admin_kms.tag_resource(KeyId=key_id, Tags=tags(team="blue"))
    assert client.describe_key(KeyId=key_id)["KeyMetadata"]["KeyId"] == key_id
    admin_kms.untag_resource(KeyId=key_id, TagKeys=["team"])
    assert error_of(lambda: client.describe_key(KeyId=key_id))[0] == "AccessDeniedException"


def test_resource_tags_in_identity_policies(
    kms_client: Callable[..., Any],
    admin_kms: Any,
    create_key: Callable[..., dict[str, Any]],
    make_user: Callable[..., Persona],
) -> None:
    user = make_user(
        "abac-user",
        policy(
            {
                "Effect": "Allow",
                "Action": "kms:DescribeKey",
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:ResourceTag/project": "apollo"}},
            }
        ),
    )
    key_id = create_key()["KeyId"]
    client = kms_client(user)
    assert error_of(lambda: client.describe_key(KeyId=key_id))[0] == "AccessDeniedException"
    admin_kms.tag_resource(KeyId=key_id, Tags=tags(project="apollo"))
    assert client.describe_key(KeyId=key_id)["KeyMetadata"]["KeyId"] == key_id
    admin_kms.untag_resource(KeyId=key_id, TagKeys=["project"])
    assert error_of(lambda: client.describe_key(KeyId=key_id))[0] == "AccessDeniedException"


def test_request_tags_and_tag_keys_conditions(
    kms_client: Callable[..., Any],
    create_key: Callable[..., dict[str, Any]],
    make_user: Callable[..., Persona],
) -> None:
    user = make_user(
        "tagger",
        policy(
            {
                "Effect": "Allow",
                "Action": "kms:TagResource",
                "Resource": "*",
                "Condition": {
                    "ForAllValues:StringEquals": {"aws:TagKeys": ["team", "cost"]},
                    "StringEqualsIfExists": {"aws:RequestTag/team": ["blue", "red"]},
                },
            },
            {
                "Effect": "Allow",
                "Action": "kms:UntagResource",
                "Resource": "*",
                "Condition": {"ForAllValues:StringEquals": {"aws:TagKeys": ["cost"]}},
            },
        ),
    )
    key_id = create_key(Tags=tags(owner="ops"))["KeyId"]
    client = kms_client(user)
    client.tag_resource(KeyId=key_id, Tags=tags(team="blue", cost="7"))
    code, message = error_of(lambda: client.tag_resource(KeyId=key_id, Tags=tags(team="green")))
    assert code == "AccessDeniedException" and "kms:TagResource" in message
    assert (
        error_of(lambda: client.tag_resource(KeyId=key_id, Tags=tags(owner="me")))[0]
        == "AccessDeniedException"
    )
    assert (
        error_of(lambda: client.untag_resource(KeyId=key_id, TagKeys=["owner"]))[0] == "AccessDeniedException"
    )
    client.untag_resource(KeyId=key_id, TagKeys=["cost"])
    assert Tag.objects.filter(key__key_id=key_id).count() == 2
    denied = AuditEvent.objects.filter(operation="UntagResource", decision="denied").get()
    assert denied.request_parameters == {"KeyId": key_id, "TagKeys": ["owner"]}

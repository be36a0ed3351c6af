"""CreateAlias, UpdateAlias, DeleteAlias, ListAliases over boto3: naming rules, errors with AWS's messages, the
two-sided authorization (IAM on the alias ARN, key policy on the key), and aliases as KeyId."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from keys.models import Alias
from keys.services.aliases import PREFIX_MESSAGE, RESERVED_PREFIX_MESSAGE
from kmsconsole.audit.models import AuditEvent
from tests.conftest import Persona

pytestmark = pytest.mark.django_db(transaction=True)

ACCOUNT = "111122223333"
ALIAS_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/"


def error_of(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call()
    error = raised.value.response["Error"]
    return error["Code"], error.get("Message", "")


def identity_policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(actions: str | list[str], resources: str | list[str], **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": actions, "Resource": resources, **extra}


def test_create_list_update_delete(admin_kms: Any, create_key: Callable[..., dict[str, Any]]) -> None:
    first, second = create_key(), create_key()
    admin_kms.create_alias(AliasName="alias/app", TargetKeyId=first["KeyId"])
    admin_kms.create_alias(AliasName="alias/app/reports", TargetKeyId=first["Arn"])
    listed = admin_kms.list_aliases()
    assert listed["Truncated"] is False and "NextMarker" not in listed
    entries = {entry["AliasName"]: entry for entry in listed["Aliases"]}
    assert set(entries) == {"alias/app", "alias/app/reports"}
    entry = entries["alias/app"]
    assert entry["AliasArn"] == f"{ALIAS_ARN}app" and entry["TargetKeyId"] == first["KeyId"]
    assert entry["CreationDate"] and entry["LastUpdatedDate"]

    admin_kms.update_alias(AliasName="alias/app", TargetKeyId=second["Arn"])
    assert admin_kms.describe_key(KeyId="alias/app")["KeyMetadata"]["KeyId"] == second["KeyId"]
    by_key = admin_kms.list_aliases(KeyId=second["KeyId"])["Aliases"]
    assert [a["AliasName"] for a in by_key] == ["alias/app"]
    assert by_key[0]["LastUpdatedDate"] >= entry["LastUpdatedDate"]
    assert [a["AliasName"] for a in admin_kms.list_aliases(KeyId=first["Arn"])["Aliases"]] == [
        "alias/app/reports"
    ]

    admin_kms.delete_alias(AliasName="alias/app")
    assert [a["AliasName"] for a in admin_kms.list_aliases()["Aliases"]] == ["alias/app/reports"]
    assert error_of(lambda: admin_kms.describe_key(KeyId="alias/app")) == (
        "NotFoundException",
        f"Alias {ALIAS_ARN}app is not found.",
    )
    events = AuditEvent.objects.filter(operation="CreateAlias", decision="allowed")
    assert events.count() == 2 and {e.key_arn for e in events} == {first["Arn"]}
    assert events.filter(request_parameters__AliasName="alias/app").exists()


def test_aliases_name_keys_for_describe_key_but_not_for_management(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]]
) -> None:
    key = create_key()
    admin_kms.create_alias(AliasName="alias/orders", TargetKeyId=key["KeyId"])
    for identifier in ("alias/orders", f"{ALIAS_ARN}orders"):
        assert admin_kms.describe_key(KeyId=identifier)["KeyMetadata"]["Arn"] == key["Arn"]
    for call in (
        lambda: admin_kms.enable_key(KeyId="alias/orders"),
        lambda: admin_kms.tag_resource(KeyId="alias/orders", Tags=[{"TagKey": "a", "TagValue": "b"}]),
        lambda: admin_kms.get_key_rotation_status(KeyId="alias/orders"),
        lambda: admin_kms.create_alias(AliasName="alias/again", TargetKeyId="alias/orders"),
    ):
        assert error_of(call) == ("NotFoundException", "Invalid keyId 'alias/orders'")
    assert error_of(lambda: admin_kms.disable_key(KeyId=f"{ALIAS_ARN}orders")) == (
        "NotFoundException",
        f"Invalid keyId '{ALIAS_ARN}orders'",
    )


@pytest.mark.parametrize(
    ("name", "code", "message"),
    [
        ("orders", "ValidationException", PREFIX_MESSAGE),
        ("alias/aws/s3", "InvalidAliasNameException", RESERVED_PREFIX_MESSAGE),
        ("alias/", "InvalidAliasNameException", 'Alias names must include a name after the "alias/" prefix.'),
        ("alias/a:b", "ValidationException", "alias/a:b contains invalid characters for an alias"),
        (
            "alias/has space",
            "ValidationException",
            "1 validation error detected: Value 'alias/has space' at 'aliasName' failed to satisfy constraint: "
            "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$",
        ),
        (
            "alias/" + "x" * 251,
            "ValidationException",
            "1 validation error detected: Value '"
            + "alias/"
            + "x" * 250
            + "...' at 'aliasName' failed to satisfy constraint: Member must have length less than or equal to 256",
        ),
    ],
)
def test_alias_name_rules(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]], name: str, code: str, message: str
) -> None:
    key_id = create_key()["KeyId"]
    assert error_of(lambda: admin_kms.create_alias(AliasName=name, TargetKeyId=key_id)) == (code, message)
    assert not Alias.objects.exists()


def test_reserved_prefix_is_refused_by_every_alias_operation(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]]
) -> None:
    key_id = create_key()["KeyId"]
    refused = ("InvalidAliasNameException", RESERVED_PREFIX_MESSAGE)
    assert error_of(lambda: admin_kms.update_alias(AliasName="alias/aws/ebs", TargetKeyId=key_id)) == refused
    assert error_of(lambda: admin_kms.delete_alias(AliasName="alias/aws/ebs")) == refused
    # alias/aws (no slash) and alias/awsome are ordinary names.
    admin_kms.create_alias(AliasName="alias/aws", TargetKeyId=key_id)
    admin_kms.create_alias(AliasName="alias/awsome", TargetKeyId=key_id)


def test_create_alias_errors(admin_kms: Any, create_key: Callable[..., dict[str, Any]]) -> None:
    key = create_key()
    admin_kms.create_alias(AliasName="alias/dup", TargetKeyId=key["KeyId"])
    other = create_key()
    assert error_of(lambda: admin_kms.create_alias(AliasName="alias/dup", TargetKeyId=other["KeyId"])) == (
        "AlreadyExistsException",
        f"An alias with the name {ALIAS_ARN}dup already exists",
    )
    missing = "11111111-2222-3333-4444-555555555555"
    assert error_of(lambda: admin_kms.create_alias(AliasName="alias/x", TargetKeyId=missing)) == (
        "NotFoundException",
        f"Key 'arn:aws:kms:us-east-1:{ACCOUNT}:key/{missing}' does not exist",
    )
    admin_kms.disable_key(KeyId=other["KeyId"])
    admin_kms.create_alias(AliasName="alias/on-disabled", TargetKeyId=other["KeyId"])  # allowed when Disabled
    admin_kms.schedule_key_deletion(KeyId=other["KeyId"], PendingWindowInDays=7)
    assert error_of(lambda: admin_kms.create_alias(AliasName="alias/late", TargetKeyId=other["KeyId"])) == (
        "KMSInvalidStateException",
        f"{other['Arn']} is pending deletion.",
    )
    # DeleteAlias works in every key state.
    admin_kms.delete_alias(AliasName="alias/on-disabled")
    assert error_of(lambda: admin_kms.delete_alias(AliasName="alias/on-disabled")) == (
        "NotFoundException",
        f"Alias {ALIAS_ARN}on-disabled is not found.",
    )
    failed = AuditEvent.objects.filter(operation="CreateAlias", decision="failed")
    assert set(failed.values_list("error_code", flat=True)) == {
        "AlreadyExistsException",
        "NotFoundException",
        "KMSInvalidStateException",
    }


def test_fifty_aliases_per_key(admin_kms: Any, create_key: Callable[..., dict[str, Any]]) -> None:
    key, other = create_key(), create_key()
    for index in range(50):
        admin_kms.create_alias(AliasName=f"alias/many-{index}", TargetKeyId=key["KeyId"])
    code, message = error_of(
        lambda: admin_kms.create_alias(AliasName="alias/one-more", TargetKeyId=key["KeyId"])
    )
    assert code == "LimitExceededException" and key["Arn"] in message
    admin_kms.create_alias(AliasName="alias/elsewhere", TargetKeyId=other["KeyId"])
    code, _ = error_of(lambda: admin_kms.update_alias(AliasName="alias/elsewhere", TargetKeyId=key["KeyId"]))
    assert code == "LimitExceededException"
    assert Alias.objects.filter(key__key_id=key["KeyId"]).count() == 50


SYMMETRIC: dict[str, str] = {}
RSA_ENCRYPT = {"KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT_DECRYPT"}
RSA_SIGN = {"KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"}
ECC_SIGN = {"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}
HMAC_256 = {"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"}
HMAC_512 = {"KeySpec": "HMAC_512", "KeyUsage": "GENERATE_VERIFY_MAC"}


# The refusal is this service's own sentence (AWS's reference gives none), so plain English: "an asymmetric", "an
# HMAC". "" where the move is allowed.
@pytest.mark.parametrize(
    ("old", "new", "refusal"),
    [
        (SYMMETRIC, SYMMETRIC, ""),
        (SYMMETRIC, RSA_ENCRYPT, "from a symmetric ENCRYPT_DECRYPT key to an asymmetric ENCRYPT_DECRYPT key"),
        (RSA_SIGN, ECC_SIGN, ""),
        (RSA_SIGN, RSA_ENCRYPT, "from an asymmetric SIGN_VERIFY key to an asymmetric ENCRYPT_DECRYPT key"),
        (HMAC_256, HMAC_512, ""),
        (HMAC_256, SYMMETRIC, "from an HMAC GENERATE_VERIFY_MAC key to a symmetric ENCRYPT_DECRYPT key"),
    ],
)
def test_update_alias_needs_the_same_key_type_and_usage(
    admin_kms: Any,
    create_key: Callable[..., dict[str, Any]],
    old: dict[str, str],
    new: dict[str, str],
    refusal: str,
) -> None:
    old_key, new_key = create_key(**old), create_key(**new)
    admin_kms.create_alias(AliasName="alias/moving", TargetKeyId=old_key["KeyId"])
    if not refusal:
        admin_kms.update_alias(AliasName="alias/moving", TargetKeyId=new_key["KeyId"])
        assert Alias.objects.get(name="alias/moving").key.arn == new_key["Arn"]
    else:
        code, message = error_of(
            lambda: admin_kms.update_alias(AliasName="alias/moving", TargetKeyId=new_key["KeyId"])
        )
        assert code == "ValidationException" and "same type and key usage" in message and refusal in message
        assert Alias.objects.get(name="alias/moving").key.arn == old_key["Arn"]


def test_update_alias_key_states(admin_kms: Any, create_key: Callable[..., dict[str, Any]]) -> None:
    first, second, third = create_key(), create_key(), create_key()
    admin_kms.create_alias(AliasName="alias/svc", TargetKeyId=first["KeyId"])
    assert error_of(lambda: admin_kms.update_alias(AliasName="alias/nope", TargetKeyId=first["KeyId"])) == (
        "NotFoundException",
        f"Alias {ALIAS_ARN}nope is not found.",
    )
    # The current key pending deletion does not stop the alias from moving away (kms-spec §4.2 footnote 10)...
    admin_kms.schedule_key_deletion(KeyId=first["KeyId"], PendingWindowInDays=7)
    admin_kms.update_alias(AliasName="alias/svc", TargetKeyId=second["KeyId"])
    # ...but it cannot move onto a key pending deletion.
    admin_kms.schedule_key_deletion(KeyId=third["KeyId"], PendingWindowInDays=7)
    assert error_of(lambda: admin_kms.update_alias(AliasName="alias/svc", TargetKeyId=third["KeyId"])) == (
        "KMSInvalidStateException",
        f"{third['Arn']} is pending deletion.",
    )
    # Pointing an alias at the key it already names is accepted.
    admin_kms.update_alias(AliasName="alias/svc", TargetKeyId=second["Arn"])
    assert Alias.objects.get(name="alias/svc").key.arn == second["Arn"]


def test_list_aliases_pages_and_limits(
    kms_client: Callable[..., Any], admin: Persona, admin_kms: Any, create_key: Callable[..., dict[str, Any]]
) -> None:
    key_id = create_key()["KeyId"]
    names = [f"alias/page-{index}" for index in range(5)]
    for name in names:
        admin_kms.create_alias(AliasName=name, TargetKeyId=key_id)
    first = admin_kms.list_aliases(Limit=2)
    assert first["Truncated"] and len(first["Aliases"]) == 2
    seen = [a["AliasName"] for a in first["Aliases"]]
    marker = first["NextMarker"]
    while marker:
        page = admin_kms.list_aliases(Limit=2, Marker=marker)
        seen += [a["AliasName"] for a in page["Aliases"]]
        marker = page.get("NextMarker")
    assert seen == names
    assert len(admin_kms.list_aliases()["Aliases"]) == 5  # default Limit 50
    assert error_of(lambda: admin_kms.list_aliases(Limit=101)) == (
        "ValidationException",
        "1 validation error detected: Value '101' at 'limit' failed to satisfy constraint: "
        "Member must have value less than or equal to 100",
    )
    unchecked = kms_client(admin, parameter_validation=False)  # boto3 itself refuses Limit=0
    assert error_of(lambda: unchecked.list_aliases(Limit=0))[0] == "ValidationException"
    assert error_of(lambda: admin_kms.list_aliases(Marker="bogus"))[0] == "InvalidMarkerException"
    # A marker of the unfiltered listing is not a position in one key's listing.
    assert error_of(lambda: admin_kms.list_aliases(KeyId=key_id, Marker=first["NextMarker"]))[0] == (
        "InvalidMarkerException"
    )
    assert error_of(lambda: admin_kms.list_aliases(KeyId="alias/page-0")) == (
        "NotFoundException",
        "Invalid keyId 'alias/page-0'",
    )


def test_alias_operations_need_iam_on_the_alias_and_key_policy_on_the_key(
    kms_client: Callable[..., Any], admin_kms: Any, make_user: Callable[..., Persona]
) -> None:
    key = admin_kms.create_key()["KeyMetadata"]
    only_other_alias = make_user(
        "alias-other",
        identity_policy(
            allow("kms:CreateAlias", [f"{ALIAS_ARN}other", f"arn:aws:kms:us-east-1:{ACCOUNT}:key/*"])
        ),
    )
    client = kms_client(only_other_alias)
    code, message = error_of(lambda: client.create_alias(AliasName="alias/mine", TargetKeyId=key["KeyId"]))
    assert code == "AccessDeniedException"
    assert message == (
        f"User: {only_other_alias.arn} is not authorized to perform: kms:CreateAlias on resource: "
        f"{ALIAS_ARN}mine because no identity-based policy allows the kms:CreateAlias action"
    )
    client.create_alias(AliasName="alias/other", TargetKeyId=key["KeyId"])

    # IAM allows the alias but not the key: the key's policy delegates to IAM, which says no for the key.
    alias_only = make_user("alias-only", identity_policy(allow("kms:CreateAlias", f"{ALIAS_ARN}*")))
    code, message = error_of(
        lambda: kms_client(alias_only).create_alias(AliasName="alias/x", TargetKeyId=key["KeyId"])
    )
    assert code == "AccessDeniedException" and f"on resource: {key['Arn']}" in message
    event = AuditEvent.objects.filter(
        operation="CreateAlias", decision="denied", caller_arn=alias_only.arn
    ).get()
    assert event.key_arn == key["Arn"]
    assert not Alias.objects.filter(name="alias/x").exists()


def test_a_key_policy_naming_the_user_is_enough_for_the_key_half(
    kms_client: Callable[..., Any], admin_kms: Any, make_user: Callable[..., Persona]
) -> None:
    user = make_user(
        "alias-admin", identity_policy(allow(["kms:CreateAlias", "kms:DeleteAlias"], f"{ALIAS_ARN}*"))
    )
    policy = identity_policy(
        {
            "Sid": "root",
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
            "Action": "kms:*",
            "Resource": "*",
        },
        {
            "Sid": "alias admin",
            "Effect": "Allow",
            "Principal": {"AWS": user.arn},
            "Action": ["kms:CreateAlias", "kms:DeleteAlias"],
            "Resource": "*",
        },
    )
    key = admin_kms.create_key(Policy=policy)["KeyMetadata"]
    client = kms_client(user)
    client.create_alias(AliasName="alias/by-key-policy", TargetKeyId=key["KeyId"])
    event = AuditEvent.objects.filter(operation="CreateAlias", decision="allowed").get()
    assert "alias admin" in event.decided_by
    # ListAliases is IAM-only, and this user's IAM policy does not allow it.
    code, message = error_of(client.list_aliases)
    assert code == "AccessDeniedException" and "kms:ListAliases" in message
    client.delete_alias(AliasName="alias/by-key-policy")
    assert not Alias.objects.exists()


def test_update_alias_needs_permission_on_both_keys(
    kms_client: Callable[..., Any], admin_kms: Any, make_user: Callable[..., Persona]
) -> None:
    old, new = admin_kms.create_key()["KeyMetadata"], admin_kms.create_key()["KeyMetadata"]
    admin_kms.create_alias(AliasName="alias/blue", TargetKeyId=old["KeyId"])
    old_only = make_user(
        "old-only", identity_policy(allow("kms:UpdateAlias", [f"{ALIAS_ARN}blue", old["Arn"]]))
    )
    code, message = error_of(
        lambda: kms_client(old_only).update_alias(AliasName="alias/blue", TargetKeyId=new["KeyId"])
    )
    assert code == "AccessDeniedException" and f"on resource: {new['Arn']}" in message
    new_only = make_user(
        "new-only", identity_policy(allow("kms:UpdateAlias", [f"{ALIAS_ARN}blue", new["Arn"]]))
    )
    code, message = error_of(
        lambda: kms_client(new_only).update_alias(AliasName="alias/blue", TargetKeyId=new["KeyId"])
    )
    assert code == "AccessDeniedException" and f"on resource: {old['Arn']}" in message
    both = make_user(
        "both-keys", identity_policy(allow("kms:UpdateAlias", [f"{ALIAS_ARN}blue", old["Arn"], new["Arn"]]))
    )
    kms_client(both).update_alias(AliasName="alias/blue", TargetKeyId=new["KeyId"])
    assert Alias.objects.get(name="alias/blue").key.arn == new["Arn"]


def test_aliases_change_access_through_kms_resource_aliases(
    kms_client: Callable[..., Any], admin_kms: Any, make_user: Callable[..., Persona]
) -> None:
    key = admin_kms.create_key()["KeyMetadata"]
    user = make_user(
        "abac-alias",
        identity_policy(
            allow(
                "kms:DescribeKey",
                "*",
                Condition={"ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/finance"}},
            )
        ),
    )
    client = kms_client(user)
    assert error_of(lambda: client.describe_key(KeyId=key["KeyId"]))[0] == "AccessDeniedException"
    admin_kms.create_alias(AliasName="alias/finance", TargetKeyId=key["KeyId"])
    assert client.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["Arn"] == key["Arn"]
    admin_kms.delete_alias(AliasName="alias/finance")
    assert error_of(lambda: client.describe_key(KeyId=key["KeyId"]))[0] == "AccessDeniedException"

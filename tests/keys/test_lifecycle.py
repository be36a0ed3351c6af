"""CreateKey, DescribeKey, ListKeys, Enable/Disable, UpdateKeyDescription over boto3, with their errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from keys.default_policies import default_key_policy
from keys.models import Key, KeyMaterial
from kmsconsole.audit.models import AuditEvent
from kmsconsole.core.rootkey import sealer
from tests.conftest import Persona
from tests.tampering import tampered_urlsafe_b64

pytestmark = pytest.mark.django_db(transaction=True)


def error_of(call: Callable[[], Any]) -> tuple[str, str]:
    with pytest.raises(ClientError) as raised:
        call()
    error = raised.value.response["Error"]
    return error["Code"], error.get("Message", "")


def test_create_key_defaults_to_a_symmetric_key_with_the_default_policy(admin_kms: Any) -> None:
    metadata = admin_kms.create_key(Description="orders")["KeyMetadata"]
    assert metadata["KeySpec"] == metadata["CustomerMasterKeySpec"] == "SYMMETRIC_DEFAULT"
    assert (
        metadata["KeyUsage"] == "ENCRYPT_DECRYPT"
        and metadata["KeyState"] == "Enabled"
        and metadata["Enabled"]
    )
    assert metadata["Arn"] == f"arn:aws:kms:us-east-1:111122223333:key/{metadata['KeyId']}"
    assert metadata["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    assert metadata["Origin"] == "AWS_KMS" and metadata["KeyManager"] == "CUSTOMER"
    assert len(metadata["CurrentKeyMaterialId"]) == 64
    assert "SigningAlgorithms" not in metadata and "DeletionDate" not in metadata
    policy = admin_kms.get_key_policy(KeyId=metadata["KeyId"])["Policy"]
    assert policy == default_key_policy("111122223333")
    assert admin_kms.list_key_policies(KeyId=metadata["KeyId"])["PolicyNames"] == ["default"]


def test_key_material_is_sealed_and_bound_to_its_key(create_key: Callable[..., dict[str, Any]]) -> None:
    first, second = create_key(), create_key()
    material = KeyMaterial.objects.get(key__key_id=first["KeyId"])
    assert sealer().open(bytes(material.sealed), bound_to=material.sealing_identity)
    other = KeyMaterial.objects.get(key__key_id=second["KeyId"])
    from keys.crypto.sealing import SealingError

    with pytest.raises(SealingError):
        sealer().open(bytes(material.sealed), bound_to=other.sealing_identity)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"}, {"SigningAlgorithms"}),
        ({"KeySpec": "RSA_3072", "KeyUsage": "ENCRYPT_DECRYPT"}, {"EncryptionAlgorithms"}),
        ({"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}, {"SigningAlgorithms"}),
        ({"KeySpec": "ECC_SECG_P256K1", "KeyUsage": "SIGN_VERIFY"}, {"SigningAlgorithms"}),
        ({"KeySpec": "HMAC_256", "KeyUsage": "GENERATE_VERIFY_MAC"}, {"MacAlgorithms"}),
    ],
)
def test_asymmetric_and_hmac_keys(admin_kms: Any, params: dict[str, str], expected: set[str]) -> None:
    metadata = admin_kms.create_key(**params)["KeyMetadata"]
    assert metadata["KeySpec"] == params["KeySpec"] and metadata["KeyUsage"] == params["KeyUsage"]
    algorithm_fields = {f for f in metadata if f.endswith("Algorithms")}
    assert algorithm_fields == expected


@pytest.mark.parametrize(
    ("params", "code", "message"),
    [
        (
            {"KeySpec": "RSA_2048"},
            "ValidationException",
            "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.",
        ),
        (
            {"KeySpec": "RSA_2048", "KeyUsage": "KEY_AGREEMENT"},
            "ValidationException",
            "KeyUsage KEY_AGREEMENT is not compatible with KeySpec RSA_2048",
        ),
        ({"Policy": "{not json"}, "MalformedPolicyDocumentException", None),
        (
            {
                "Policy": json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Principal": {"AWS": "arn:aws:iam::111122223333:user/nobody"},
                                "Action": "kms:*",
                                "Resource": "*",
                            }
                        ],
                    }
                )
            },
            "MalformedPolicyDocumentException",
            "Policy contains a statement with one or more invalid principals.",
        ),
        (
            {"Tags": [{"TagKey": "aws:x", "TagValue": "1"}]},
            "TagException",
            "Tags beginning with aws: are reserved",
        ),
        (
            {"Tags": [{"TagKey": "a", "TagValue": "1"}, {"TagKey": "a", "TagValue": "2"}]},
            "TagException",
            "Duplicate tag keys",
        ),
        ({"MultiRegion": True}, "UnsupportedOperationException", None),
    ],
)
def test_create_key_errors(admin_kms: Any, params: dict[str, Any], code: str, message: str | None) -> None:
    before = Key.objects.count()
    got_code, got_message = error_of(lambda: admin_kms.create_key(**params))
    assert got_code == code
    if message is not None:
        assert got_message == message
    assert Key.objects.count() == before


def test_a_missing_principal_of_another_account_is_not_named(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]], partner: Callable[..., Persona]
) -> None:
    """PutKeyPolicy and CreateKey refuse a policy naming another account's principal that does not exist as AWS
    does, naming none: the same answer whichever is missing and whether the others exist."""
    partner("bob")
    other = "arn:aws:iam::444455556666:user/"
    root = {"Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::111122223333:root"}, "Action": "kms:*"}

    def naming(*names: str) -> str:
        statements = [root] + [
            {"Effect": "Allow", "Principal": {"AWS": f"{other}{name}"}, "Action": "kms:Decrypt"}
            for name in names
        ]
        return json.dumps(
            {"Version": "2012-10-17", "Statement": [{**s, "Resource": "*"} for s in statements]}
        )

    key_id = create_key()["KeyId"]
    refused = (
        "MalformedPolicyDocumentException",
        "Policy contains a statement with one or more invalid principals.",
    )
    put = lambda policy: admin_kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy)  # noqa: E731
    for names in (("bob", "gh1"), ("gh2", "bob"), ("gh3", "gh4")):
        policy = naming(*names)
        assert error_of(lambda p=policy: put(p)) == refused
        assert error_of(lambda p=policy: admin_kms.create_key(Policy=p)) == refused
    put(naming("bob"))  # one that exists is accepted


def test_lockout_safety_check(admin_kms: Any, make_user: Callable[..., Persona]) -> None:
    make_user("someone-else")
    only_someone_else = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::111122223333:user/someone-else"},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ],
        }
    )
    code, message = error_of(lambda: admin_kms.create_key(Policy=only_someone_else))
    assert (code, message) == (
        "MalformedPolicyDocumentException",
        "The new key policy will not allow you to update the key policy in the future.",
    )
    key = admin_kms.create_key(Policy=only_someone_else, BypassPolicyLockoutSafetyCheck=True)["KeyMetadata"]
    # And now the admin cannot manage it: its identity policy does not count without the root statement.
    code, message = error_of(lambda: admin_kms.describe_key(KeyId=key["KeyId"]))
    assert code == "AccessDeniedException"
    assert message.endswith("because no resource-based policy allows the kms:DescribeKey action")


def test_the_lockout_check_decides_the_next_put_as_it_would_be_made(admin_kms: Any, admin: Persona) -> None:
    """The check asks whether the caller could put the next policy: a PutKeyPolicy request without the bypass,
    with its condition values, on the key with its tags. A statement conditioned on either is judged as that
    request would meet it (it was judged without them, so such a policy always "locked the caller out")."""

    def only_admin(**condition: Any) -> str:
        statement = {"Effect": "Allow", "Principal": {"AWS": admin.arn}, "Action": "kms:*", "Resource": "*"}
        return json.dumps({"Version": "2012-10-17", "Statement": [{**statement, "Condition": condition}]})

    lockout = (
        "MalformedPolicyDocumentException",
        "The new key policy will not allow you to update the key policy in the future.",
    )
    unless_bypassed = only_admin(Bool={"kms:BypassPolicyLockoutSafetyCheck": "false"})
    key_id = admin_kms.create_key(Policy=unless_bypassed)["KeyMetadata"]["KeyId"]
    admin_kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=unless_bypassed)
    only_bypassed = only_admin(Bool={"kms:BypassPolicyLockoutSafetyCheck": "true"})
    assert error_of(lambda: admin_kms.create_key(Policy=only_bypassed)) == lockout

    blue_keys = only_admin(StringEquals={"aws:ResourceTag/team": "blue"})
    blue = [{"TagKey": "team", "TagValue": "blue"}]
    key_id = admin_kms.create_key(Policy=blue_keys, Tags=blue)["KeyMetadata"]["KeyId"]
    admin_kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=blue_keys)
    assert error_of(lambda: admin_kms.create_key(Policy=blue_keys)) == lockout  # untagged: no later put

    # The key's own condition values too (kms:KeySpec, ...): allowed only on such keys, and denied on them.
    symmetric_only = only_admin(StringEquals={"kms:KeySpec": "SYMMETRIC_DEFAULT"})
    key_id = admin_kms.create_key(Policy=symmetric_only)["KeyMetadata"]["KeyId"]
    admin_kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=symmetric_only)
    no_put_on_symmetric = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": admin.arn}, "Action": "kms:*", "Resource": "*"},
                {
                    "Effect": "Deny",
                    "Principal": {"AWS": admin.arn},
                    "Action": "kms:PutKeyPolicy",
                    "Resource": "*",
                    "Condition": {"StringEquals": {"kms:KeySpec": "SYMMETRIC_DEFAULT"}},
                },
            ],
        }
    )
    assert error_of(lambda: admin_kms.create_key(Policy=no_put_on_symmetric)) == lockout
    assert (
        error_of(
            lambda: admin_kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=no_put_on_symmetric)
        )
        == lockout
    )


def test_put_key_policy_keeps_every_version(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]]
) -> None:
    key_id = create_key()["KeyId"]
    new_policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "root",
                    "Effect": "Allow",
                    "Principal": {"AWS": "111122223333"},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ],
        }
    )
    admin_kms.put_key_policy(KeyId=key_id, Policy=new_policy, PolicyName="default")
    assert admin_kms.get_key_policy(KeyId=key_id)["Policy"] == new_policy
    versions = list(
        Key.objects.get(key_id=key_id).policy_versions.order_by("version").values_list("version", "document")
    )
    assert [v for v, _ in versions] == [1, 2] and versions[1][1] == new_policy
    assert versions[0][1] == default_key_policy("111122223333")
    assert error_of(
        lambda: admin_kms.put_key_policy(KeyId=key_id, Policy=new_policy, PolicyName="AWS_RAM")
    ) == ("ValidationException", "The AWS_RAM policy can only be managed by the RAM service")


def test_describe_key_by_every_identifier(admin_kms: Any, create_key: Callable[..., dict[str, Any]]) -> None:
    metadata = create_key()
    key_id, arn = metadata["KeyId"], metadata["Arn"]
    for identifier in (key_id, arn):
        assert admin_kms.describe_key(KeyId=identifier)["KeyMetadata"]["KeyId"] == key_id
    assert error_of(lambda: admin_kms.describe_key(KeyId="not-a-key")) == (
        "NotFoundException",
        "Invalid keyId 'not-a-key'",
    )
    missing = "11111111-2222-3333-4444-555555555555"
    assert error_of(lambda: admin_kms.describe_key(KeyId=missing)) == (
        "NotFoundException",
        f"Key 'arn:aws:kms:us-east-1:111122223333:key/{missing}' does not exist",
    )
    assert error_of(lambda: admin_kms.describe_key(KeyId=arn.replace("us-east-1", "eu-west-1"))) == (
        "NotFoundException",
        "Invalid arn eu-west-1",
    )
    for partition in ("aws-cn", "aws-us-gov"):
        other = arn.replace("arn:aws:", f"arn:{partition}:")
        assert error_of(lambda other=other: admin_kms.describe_key(KeyId=other)) == (
            "NotFoundException",
            f"Invalid arn {partition}",
        )
    assert error_of(lambda: admin_kms.enable_key(KeyId="alias/anything"))[0] == "NotFoundException"


def test_list_keys_pages_with_markers(admin_kms: Any, create_key: Callable[..., dict[str, Any]]) -> None:
    created = [create_key()["KeyId"] for _ in range(5)]
    first = admin_kms.list_keys(Limit=2)
    assert first["Truncated"] and len(first["Keys"]) == 2
    seen = [k["KeyId"] for k in first["Keys"]]
    marker = first["NextMarker"]
    while marker:
        page = admin_kms.list_keys(Limit=2, Marker=marker)
        seen += [k["KeyId"] for k in page["Keys"]]
        marker = page.get("NextMarker")
    assert seen == created
    assert error_of(lambda: admin_kms.list_keys(Marker="bogus"))[0] == "InvalidMarkerException"
    assert (
        error_of(lambda: admin_kms.list_keys(Marker=tampered_urlsafe_b64(first["NextMarker"])))[0]
        == "InvalidMarkerException"
    )


def test_enable_disable_and_description(admin_kms: Any, create_key: Callable[..., dict[str, Any]]) -> None:
    key_id = create_key()["KeyId"]
    admin_kms.disable_key(KeyId=key_id)
    admin_kms.disable_key(KeyId=key_id)  # idempotent, as on AWS
    assert admin_kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    admin_kms.enable_key(KeyId=key_id)
    admin_kms.update_key_description(KeyId=key_id, Description="renamed")
    metadata = admin_kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (metadata["KeyState"], metadata["Description"]) == ("Enabled", "renamed")
    event = AuditEvent.objects.filter(operation="UpdateKeyDescription").get()
    assert event.key_arn == metadata["Arn"] and event.decision == "allowed"


def test_key_users_and_outsiders(
    kms_client: Callable[..., Any], admin_kms: Any, outsider: Persona, make_user: Callable[..., Persona]
) -> None:
    user = make_user("key-user")
    policy = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "Enable IAM User Permissions",
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "Allow use of the key",
                    "Effect": "Allow",
                    "Principal": {"AWS": user.arn},
                    "Action": ["kms:DescribeKey"],
                    "Resource": "*",
                },
            ],
        }
    )
    key_id = admin_kms.create_key(Policy=policy)["KeyMetadata"]["KeyId"]
    assert kms_client(user).describe_key(KeyId=key_id)["KeyMetadata"]["KeyId"] == key_id
    code, message = error_of(lambda: kms_client(user).disable_key(KeyId=key_id))
    assert code == "AccessDeniedException"
    code, message = error_of(lambda: kms_client(outsider).describe_key(KeyId=key_id))
    assert code == "AccessDeniedException" and outsider.arn in message
    event = AuditEvent.objects.filter(operation="DescribeKey", decision="allowed").get()
    assert "Allow use of the key" in event.decided_by


def test_credentials_and_material_lookups_take_one_query_each(
    create_key: Callable[..., dict[str, Any]], admin: Persona, django_assert_num_queries: Any
) -> None:
    from keys.materials import current_material, open_material
    from policies.selectors import credentials_for
    from tests.conftest import operator_context

    with django_assert_num_queries(1):
        credentials = credentials_for(admin.access_key_id)
        assert credentials is not None and credentials.caller.arn == admin.arn
    key = Key.objects.select_related("account").get(key_id=create_key()["KeyId"])
    with django_assert_num_queries(1):
        assert open_material(operator_context("Encrypt"), current_material(key))

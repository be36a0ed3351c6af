"""The key-state table (kms-spec §4.2) for the management operations: each succeeds or fails with AWS's
exception and message in each state. (Cryptographic, alias, tag and rotation operations have theirs in their
own modules.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from keys.default_policies import console_key_policy
from keys.models import Key
from policies import engine

pytestmark = pytest.mark.django_db(transaction=True)

OK = None
PENDING = ("KMSInvalidStateException", "{arn} is pending deletion.")
NOT_PENDING = ("KMSInvalidStateException", "{arn} is not pending deletion.")

# operation -> (call, {state: expected error or OK})
TABLE: dict[str, tuple[Callable[[Any, str], Any], dict[str, Any]]] = {
    "DescribeKey": (
        lambda c, k: c.describe_key(KeyId=k),
        {"Enabled": OK, "Disabled": OK, "PendingDeletion": OK},
    ),
    "GetKeyPolicy": (
        lambda c, k: c.get_key_policy(KeyId=k),
        {"Enabled": OK, "Disabled": OK, "PendingDeletion": OK},
    ),
    "ListKeyPolicies": (
        lambda c, k: c.list_key_policies(KeyId=k),
        {"Enabled": OK, "Disabled": OK, "PendingDeletion": OK},
    ),
    "PutKeyPolicy": (
        lambda c, k: c.put_key_policy(KeyId=k, Policy=c.get_key_policy(KeyId=k)["Policy"]),
        {"Enabled": OK, "Disabled": OK, "PendingDeletion": OK},
    ),
    "EnableKey": (
        lambda c, k: c.enable_key(KeyId=k),
        {"Enabled": OK, "Disabled": OK, "PendingDeletion": PENDING},
    ),
    "DisableKey": (
        lambda c, k: c.disable_key(KeyId=k),
        {"Enabled": OK, "Disabled": OK, "PendingDeletion": PENDING},
    ),
    "UpdateKeyDescription": (
        lambda c, k: c.update_key_description(KeyId=k, Description="d"),
        {"Enabled": OK, "Disabled": OK, "PendingDeletion": PENDING},
    ),
    "ScheduleKeyDeletion": (
        lambda c, k: c.schedule_key_deletion(KeyId=k, PendingWindowInDays=7),
        {"Enabled": OK, "Disabled": OK, "PendingDeletion": PENDING},
    ),
    "CancelKeyDeletion": (
        lambda c, k: c.cancel_key_deletion(KeyId=k),
        {"Enabled": NOT_PENDING, "Disabled": NOT_PENDING, "PendingDeletion": OK},
    ),
}


@pytest.mark.parametrize("state", ["Enabled", "Disabled", "PendingDeletion"])
@pytest.mark.parametrize("operation", sorted(TABLE))
def test_management_operation_in_state(admin_kms: Any, operation: str, state: str) -> None:
    key = admin_kms.create_key()["KeyMetadata"]
    if state == "Disabled":
        admin_kms.disable_key(KeyId=key["KeyId"])
    elif state == "PendingDeletion":
        admin_kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    call, expected_by_state = TABLE[operation]
    expected = expected_by_state[state]
    if expected is OK:
        call(admin_kms, key["KeyId"])
        return
    with pytest.raises(ClientError) as raised:
        call(admin_kms, key["KeyId"])
    error = raised.value.response["Error"]
    assert (error["Code"], error["Message"]) == (expected[0], expected[1].format(arn=key["Arn"]))
    assert Key.objects.get(key_id=key["KeyId"]).state == state  # a refused call changes nothing


@pytest.mark.parametrize(
    ("spec", "usage", "user_actions"),
    [
        ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT",
         ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]),
        ("RSA_2048", "SIGN_VERIFY", ["kms:DescribeKey", "kms:GetPublicKey", "kms:Sign", "kms:Verify"]),
        ("HMAC_256", "GENERATE_VERIFY_MAC", ["kms:DescribeKey", "kms:GenerateMac", "kms:VerifyMac"]),
    ],
)  # fmt: skip
def test_the_console_default_policy(spec: str, usage: str, user_actions: list[str]) -> None:
    admin, user = "arn:aws:iam::111122223333:role/KMSAdmin", "arn:aws:iam::111122223333:user/app"
    document = console_key_policy(
        account_id="111122223333", key_spec=spec, key_usage=usage, administrators=[admin], users=[user],
        allow_administrators_to_delete=False,
    )  # fmt: skip
    engine.parse_key_policy(document)  # a valid key policy
    statements = {s["Sid"]: s for s in json.loads(document)["Statement"]}
    assert statements["Enable IAM User Permissions"]["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"}
    admin_actions = statements["Allow access for Key Administrators"]["Action"]
    assert "kms:ScheduleKeyDeletion" not in admin_actions and "kms:Put*" in admin_actions
    assert statements["Allow use of the key"]["Action"] == user_actions
    grants = statements["Allow attachment of persistent resources"]
    assert grants["Condition"] == {"Bool": {"kms:GrantIsForAWSResource": "true"}}
    with_delete = json.loads(
        console_key_policy(
            account_id="111122223333", key_spec=spec, key_usage=usage, administrators=[admin], users=[]
        )
    )
    admin_statement = with_delete["Statement"][1]
    assert admin_statement["Action"][-2:] == ["kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"]
    assert len(with_delete["Statement"]) == 2  # no users, no user statements

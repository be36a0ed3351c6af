"""The key policies KMS writes for you: the API's default (kms-spec §6.2) and the console's (§6.3)."""

from __future__ import annotations

import json
from collections.abc import Sequence

from policies.arns import account_root_arn

DEFAULT_POLICY_TEMPLATE = """{
  "Version" : "2012-10-17",
  "Id" : "key-default-1",
  "Statement" : [ {
    "Sid" : "Enable IAM User Permissions",
    "Effect" : "Allow",
    "Principal" : {
      "AWS" : "arn:aws:iam::%(account_id)s:root"
    },
    "Action" : "kms:*",
    "Resource" : "*"
  } ]
}"""

ADMIN_ACTIONS = (
    "kms:Create*",
    "kms:Describe*",
    "kms:Enable*",
    "kms:List*",
    "kms:Put*",
    "kms:Update*",
    "kms:Revoke*",
    "kms:Disable*",
    "kms:Get*",
    "kms:Delete*",
    "kms:TagResource",
    "kms:UntagResource",
)
ADMIN_DELETE_ACTIONS = ("kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion")
USER_ACTIONS_BY_USAGE = {
    ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"): (
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:ReEncrypt*",
        "kms:GenerateDataKey*",
        "kms:DescribeKey",
    ),
    ("ASYMMETRIC", "ENCRYPT_DECRYPT"): (
        "kms:Encrypt",
        "kms:Decrypt",
        "kms:ReEncrypt*",
        "kms:DescribeKey",
        "kms:GetPublicKey",
    ),
    ("ASYMMETRIC", "SIGN_VERIFY"): ("kms:DescribeKey", "kms:GetPublicKey", "kms:Sign", "kms:Verify"),
    ("ASYMMETRIC", "KEY_AGREEMENT"): ("kms:DescribeKey", "kms:GetPublicKey", "kms:DeriveSharedSecret"),
    ("ASYMMETRIC", "ENCAPSULATE_DECAPSULATE"): (
        "kms:DescribeKey",
        "kms:GetPublicKey",
        "kms:Encapsulate",
        "kms:Decapsulate",
    ),
    ("HMAC", "GENERATE_VERIFY_MAC"): ("kms:DescribeKey", "kms:GenerateMac", "kms:VerifyMac"),
}
GRANT_ACTIONS = ("kms:CreateGrant", "kms:ListGrants", "kms:RevokeGrant")


def default_key_policy(account_id: str) -> str:
    """The exact text CreateKey applies when no Policy is given (pretty-printed as KMS does)."""
    return DEFAULT_POLICY_TEMPLATE % {"account_id": account_id}


def _family(key_spec: str) -> str:
    if key_spec == "SYMMETRIC_DEFAULT":
        return "SYMMETRIC_DEFAULT"
    return "HMAC" if key_spec.startswith("HMAC_") else "ASYMMETRIC"


def console_key_policy(
    *,
    account_id: str,
    key_spec: str,
    key_usage: str,
    administrators: Sequence[str],
    users: Sequence[str],
    allow_administrators_to_delete: bool = True,
) -> str:
    """The policy the console's create wizard generates: the root statement, key administrators (who manage
    but do not use the key), key users, and the grant statement for integrated services (kms-spec §6.3)."""
    statements: list[dict[str, object]] = [
        {
            "Sid": "Enable IAM User Permissions",
            "Effect": "Allow",
            "Principal": {"AWS": account_root_arn(account_id)},
            "Action": "kms:*",
            "Resource": "*",
        }
    ]
    if administrators:
        actions = list(ADMIN_ACTIONS) + (list(ADMIN_DELETE_ACTIONS) if allow_administrators_to_delete else [])
        statements.append(
            {
                "Sid": "Allow access for Key Administrators",
                "Effect": "Allow",
                "Principal": {"AWS": list(administrators)},
                "Action": actions,
                "Resource": "*",
            }
        )
    if users:
        user_actions = USER_ACTIONS_BY_USAGE.get((_family(key_spec), key_usage), ("kms:DescribeKey",))
        statements.append(
            {
                "Sid": "Allow use of the key",
                "Effect": "Allow",
                "Principal": {"AWS": list(users)},
                "Action": list(user_actions),
                "Resource": "*",
            }
        )
        statements.append(
            {
                "Sid": "Allow attachment of persistent resources",
                "Effect": "Allow",
                "Principal": {"AWS": list(users)},
                "Action": list(GRANT_ACTIONS),
                "Resource": "*",
                "Condition": {"Bool": {"kms:GrantIsForAWSResource": "true"}},
            }
        )
    return json.dumps(
        {"Version": "2012-10-17", "Id": "key-consolepolicy-3", "Statement": statements}, indent=2
    )

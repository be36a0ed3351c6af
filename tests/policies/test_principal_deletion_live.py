"""Deleting principals, seen over the AWS endpoint with a real boto3 client against the live server: a deleted
role's session credentials are refused at once, and a new user of a deleted user's name gets none of its access
(neither the key policy's nor its grants'), while the key policy shows the old user's unique id, which
PutKeyPolicy refuses as AWS does."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError
from django.conf import settings

from policies import services
from policies.models import Account, IamUser
from tests.conftest import ALLOW_ALL, Persona, as_operator, create_user

pytestmark = pytest.mark.django_db(transaction=True)

ACCOUNT = settings.KMS_ACCOUNT_ID
ROOT = f"arn:aws:iam::{ACCOUNT}:root"


def key_policy(*users: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "Root",
                    "Effect": "Allow",
                    "Principal": {"AWS": ROOT},
                    "Action": "kms:*",
                    "Resource": "*",
                },
                {
                    "Sid": "Use",
                    "Effect": "Allow",
                    "Principal": {"AWS": list(users)},
                    "Action": ["kms:Encrypt", "kms:DescribeKey"],
                    "Resource": "*",
                },
            ],
        }
    )


def code_of(call: Callable[[], Any]) -> str:
    try:
        call()
    except ClientError as error:
        return str(error.response["Error"]["Code"])
    return "ok"


def test_a_deleted_roles_session_is_refused(
    account: Account, kms_client: Callable[..., Any], role_session: Callable[..., Persona]
) -> None:
    admin = kms_client(create_user(account, "admin", ALLOW_ALL))
    session = role_session("app")
    role_arn = f"arn:aws:iam::{ACCOUNT}:role/app"
    key = admin.create_key(Policy=key_policy(role_arn))["KeyMetadata"]["KeyId"]
    app = kms_client(session)
    for _ in range(3):  # served from the caches by now
        assert code_of(lambda: app.encrypt(KeyId=key, Plaintext=b"x")) == "ok"
    as_operator("iam:DeleteRole", lambda ctx: services.role_delete(ctx=ctx, account=account, role_name="app"))
    assert code_of(lambda: app.encrypt(KeyId=key, Plaintext=b"x")) == "UnrecognizedClientException"
    assert code_of(lambda: app.describe_key(KeyId=key)) == "UnrecognizedClientException"


def test_a_new_user_of_the_same_name_inherits_nothing(
    account: Account, kms_client: Callable[..., Any], settings: Any
) -> None:
    settings.KMS_GRANT_PROPAGATION_SECONDS = 0  # grants take effect at once
    admin = kms_client(create_user(account, "admin", ALLOW_ALL))
    old_persona = create_user(account, "alice")
    old = IamUser.objects.get(name="alice")
    key = admin.create_key(Policy=key_policy(old.arn))["KeyMetadata"]["KeyId"]
    admin.create_grant(KeyId=key, GranteePrincipal=old.arn, Operations=["Decrypt"])
    blob = admin.encrypt(KeyId=key, Plaintext=b"payroll")["CiphertextBlob"]
    alice = kms_client(old_persona)
    for _ in range(3):
        assert code_of(lambda: alice.encrypt(KeyId=key, Plaintext=b"x")) == "ok"
        assert code_of(lambda: alice.decrypt(CiphertextBlob=blob)) == "ok"

    as_operator(
        "iam:DeleteAccessKey",
        lambda ctx: services.access_key_delete(
            ctx=ctx, account=account, access_key_id=old_persona.access_key_id
        ),
    )
    as_operator(
        "iam:DeleteUser", lambda ctx: services.user_delete(ctx=ctx, account=account, user_name="alice")
    )
    new_alice = kms_client(create_user(account, "alice"))
    assert IamUser.objects.get(name="alice").arn == old.arn
    assert code_of(lambda: new_alice.encrypt(KeyId=key, Plaintext=b"x")) == "AccessDeniedException"
    assert code_of(lambda: new_alice.decrypt(CiphertextBlob=blob)) == "AccessDeniedException"
    assert admin.list_grants(KeyId=key)["Grants"] == []

    stored = admin.get_key_policy(KeyId=key, PolicyName="default")["Policy"]
    assert json.loads(stored)["Statement"][1]["Principal"]["AWS"] == [old.unique_id]
    with pytest.raises(ClientError) as refused:
        admin.put_key_policy(KeyId=key, PolicyName="default", Policy=stored)
    error = refused.value.response["Error"]
    assert error["Code"] == "MalformedPolicyDocumentException"
    assert error["Message"].startswith("Policy contains a statement with one or more invalid principals.")
    # The admin removes the orphaned id (and names the new Alice, if meant): then the new Alice may.
    admin.put_key_policy(KeyId=key, PolicyName="default", Policy=key_policy(old.arn))
    assert code_of(lambda: new_alice.encrypt(KeyId=key, Plaintext=b"x")) == "ok"

"""Grant tokens across a root-key rotation: a token from before it still authorizes (through the AWS endpoint)
until the previous key is retired; after that it is InvalidGrantToken, like any token this service never
issued, while a token issued since works."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Persona
from tests.grants.conftest import DENIED, error_of
from tests.rootkeys import reseal_others, retire_previous

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_grant_token_from_before_a_rotation_works_until_the_key_is_retired(
    settings: Any,
    admin_kms: Any,
    key_arn: Callable[..., str],
    make_user: Callable[..., Persona],
    kms_client: Any,
    root_key_file: Any,
) -> None:
    settings.KMS_GRANT_PROPAGATION_SECONDS = 3600  # no worker: only the token makes the grant count
    arn = key_arn()
    grantee = make_user("grantee")
    grantee_kms = kms_client(grantee)
    old = [
        admin_kms.create_grant(KeyId=arn, GranteePrincipal=grantee.arn, Operations=["DescribeKey"])[
            "GrantToken"
        ]
    ]
    assert error_of(lambda: grantee_kms.describe_key(KeyId=arn))[0] == DENIED
    root_key_file.rotate()
    assert grantee_kms.describe_key(KeyId=arn, GrantTokens=old)["KeyMetadata"]["Arn"] == arn
    new = [
        admin_kms.create_grant(KeyId=arn, GranteePrincipal=grantee.arn, Operations=["DescribeKey"])[
            "GrantToken"
        ]
    ]
    reseal_others()
    retire_previous(root_key_file)
    assert error_of(lambda: grantee_kms.describe_key(KeyId=arn, GrantTokens=old)) == (
        "InvalidGrantTokenException",
        "The grant token is not valid.",
    )
    assert grantee_kms.describe_key(KeyId=arn, GrantTokens=new)["KeyMetadata"]["Arn"] == arn

"""A key administrator who gives itself use of a key, by editing the key policy or by a grant, is allowed (AWS
allows it) but its event is marked notable, and the audit dashboard's notable panel lists it.

The administrator here may manage the key through the key policy alone (no identity policy), with the default
key policy's "Allow access for Key Administrators" actions.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from keys.default_policies import ADMIN_ACTIONS
from keys.services.lifecycle import key_create
from kmsconsole.audit.marks import SELF_GRANTED_USE
from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.notable import notable_sections
from tests.conftest import Persona, as_operator
from tests.grants.conftest import allow, last_event, policy

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def people(make_user: Callable[..., Persona]) -> dict[str, Persona]:
    return {"keeper": make_user("key-keeper"), "bob": make_user("bob")}


def admin_only_policy(keeper: Persona, *extra: dict[str, Any]) -> str:
    return policy(allow(keeper.arn, *ADMIN_ACTIONS, sid="Allow access for Key Administrators"), *extra)


@pytest.fixture
def key_id(people: dict[str, Persona]) -> str:
    key = as_operator(
        "CreateKey",
        lambda ctx: key_create(ctx=ctx, policy=admin_only_policy(people["keeper"]), description="t"),
    )
    return str(key.key_id)


def notable_rows() -> list[int]:
    [section] = [s for s in notable_sections(AuditEvent.objects.all()) if s.name == "self-granted-use"]
    return [row.event.seq for row in section.rows]


def test_an_administrator_adding_itself_as_key_user_is_notable(
    kms_client: Callable[..., Any], people: dict[str, Persona], key_id: str
) -> None:
    keeper = kms_client(people["keeper"])
    use = ("kms:Encrypt", "kms:Decrypt")
    # Someone else made a key user: a policy change, nothing more.
    keeper.put_key_policy(
        KeyId=key_id,
        PolicyName="default",
        Policy=admin_only_policy(people["keeper"], allow(people["bob"].arn, *use)),
    )
    for_bob = last_event("PutKeyPolicy")
    assert for_bob.decision == "allowed" and for_bob.notable == ""
    # The administrator makes itself a key user: allowed, as on AWS, and marked.
    keeper.put_key_policy(
        KeyId=key_id,
        PolicyName="default",
        Policy=admin_only_policy(
            people["keeper"], allow(people["keeper"].arn, *use, sid="Allow use of the key")
        ),
    )
    for_itself = last_event("PutKeyPolicy")
    assert for_itself.decision == "allowed" and for_itself.notable == SELF_GRANTED_USE
    assert keeper.encrypt(KeyId=key_id, Plaintext=b"now it can")["KeyId"].endswith(key_id)
    # A later change that keeps the use it already has gains it nothing.
    keeper.put_key_policy(
        KeyId=key_id,
        PolicyName="default",
        Policy=admin_only_policy(people["keeper"], allow(people["keeper"].arn, *use, sid="Renamed")),
    )
    assert last_event("PutKeyPolicy").notable == ""
    assert notable_rows() == [for_itself.seq]


def test_an_administrator_granting_itself_use_is_notable(
    kms_client: Callable[..., Any], people: dict[str, Persona], key_id: str
) -> None:
    keeper = kms_client(people["keeper"])
    keeper.create_grant(KeyId=key_id, GranteePrincipal=people["bob"].arn, Operations=["Decrypt"])
    assert last_event("CreateGrant").notable == ""
    keeper.create_grant(KeyId=key_id, GranteePrincipal=people["keeper"].arn, Operations=["DescribeKey"])
    assert last_event("CreateGrant").notable == "", "describing the key is not a use of it"
    keeper.create_grant(
        KeyId=key_id, GranteePrincipal=people["keeper"].arn, Operations=["Encrypt", "DescribeKey"]
    )
    to_itself = last_event("CreateGrant")
    assert to_itself.decision == "allowed" and to_itself.notable == SELF_GRANTED_USE
    assert keeper.encrypt(KeyId=key_id, Plaintext=b"through its own grant")["KeyId"].endswith(key_id)
    assert notable_rows() == [to_itself.seq]


def test_the_operator_is_not_marked(people: dict[str, Persona], key_id: str) -> None:
    from keys.services.key_policy import key_policy_put

    as_operator(
        "PutKeyPolicy",
        lambda ctx: key_policy_put(
            ctx=ctx,
            key_id=key_id,
            policy=admin_only_policy(people["keeper"], allow(people["bob"].arn, "kms:Decrypt")),
        ),
    )
    assert last_event("PutKeyPolicy").notable == ""

"""What real decisions record as "decided by" (what decided the outcome: policies.engine.Decision.decided_by), and
the event page's "other events it decided", which never mixes allows and refusals."""

from __future__ import annotations

import contextlib
import html
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from grants.services.creation import grant_create
from grants.services.removal import grant_retire
from keys.models import Key
from keys.services.lifecycle import key_create, key_describe
from kmsconsole.api.authentication import user_caller
from kmsconsole.audit.models import AuditEvent
from kmsconsole.core import errors
from kmsconsole.core.context import RequestMeta
from kmsconsole.operations import OperationContext, perform
from policies import services
from policies.models import IamUser
from tests.audit.dashboard_support import add
from tests.conftest import ALLOW_ALL, PARTNER_ACCOUNT, Persona, as_operator
from tests.grants.conftest import allow
from tests.grants.conftest import policy as key_policy

pytestmark = pytest.mark.django_db

ACCOUNT = "111122223333"
ADMINS = allow(f"arn:aws:iam::{ACCOUNT}:user/admin", "kms:*", sid="Key administrators")
ROOT = allow(f"arn:aws:iam::{ACCOUNT}:root", "kms:*", sid="Enable IAM User Permissions")


def _deny(principal: str, *actions: str, sid: str) -> dict[str, Any]:
    return {**allow(principal, *actions, sid=sid), "Effect": "Deny"}


def _put_policy(name: str, policy_name: str, document: str) -> None:
    user = IamUser.objects.get(account__account_id=ACCOUNT, name=name)
    as_operator(
        "iam:PutUserPolicy",
        lambda ctx: services.identity_policy_put(
            ctx=ctx, owner=user, policy_name=policy_name, document=document
        ),
    )


def _key(*statements: dict[str, Any]) -> Key:
    return as_operator(
        "CreateKey", lambda ctx: key_create(ctx=ctx, policy=key_policy(*statements), description="t")
    )


def _as(
    persona: Persona,
    operation: str,
    params: dict[str, Any],
    work: Callable[[OperationContext], Any],
    account: str = ACCOUNT,
) -> AuditEvent:
    user = IamUser.objects.get(account__account_id=account, name=persona.name)
    with contextlib.suppress(errors.KmsError):  # a refusal is an event too
        perform(
            operation,
            caller=user_caller(user),
            meta=RequestMeta(interface="kms"),
            params=params,
            service=work,
        )
    event = AuditEvent.objects.filter(operation=operation).order_by("-seq").first()
    assert event is not None
    return event


def _describe(persona: Persona, key: Key) -> AuditEvent:
    return _as(
        persona,
        "DescribeKey",
        {"KeyId": key.arn},
        lambda ctx: {"KeyId": key_describe(ctx=ctx, key_id=key.arn).arn},
    )


@pytest.fixture
def alice(make_user: Callable[..., Persona]) -> Persona:
    persona = make_user("alice")
    _put_policy("alice", "dev-access", ALLOW_ALL)
    return persona


def _other_events_link(client: Client, event: AuditEvent) -> dict[str, list[str]]:
    body = html.unescape(client.get(f"/console/audit/events/{event.event_id}/").content.decode())
    start = body.index("other events it decided")
    href = body[
        body.rindex('href="', 0, start) + len('href="') : body.index('"', body.rindex('href="', 0, start) + 6)
    ]
    return parse_qs(urlsplit(href).query)


def test_a_refusal_by_a_missing_key_policy_allow_names_what_was_missing(
    console: Callable[..., Client], admin: Persona, alice: Persona
) -> None:
    key = _key(ADMINS)  # nothing lets the account's IAM count: alice's identity allow does not
    event = _describe(alice, key)
    assert event.decision == "denied"
    assert event.decided_by == "missing: a key-policy allow for the caller's account"
    assert "'dev-access' did not count" in event.reason
    query = _other_events_link(console(admin), event)
    assert query["decided_by"] == [event.decided_by]
    assert query["decision"] == ["denied"] and query["key"] == [key.arn] and query["range"] == ["all"]


def test_an_explicit_deny_in_the_key_policy_is_named(
    console: Callable[..., Client], admin: Persona, alice: Persona
) -> None:
    key = _key(ADMINS, ROOT, _deny(alice.arn, "kms:DescribeKey", sid="NoAlice"))
    event = _describe(alice, key)
    assert (event.decision, event.decided_by) == ("denied", "statement 'NoAlice' in the key policy")
    query = _other_events_link(console(admin), event)
    assert query["decision"] == ["denied"] and "key" not in query


def test_an_explicit_deny_in_an_identity_policy_is_named(admin: Persona, alice: Persona) -> None:
    _put_policy(
        "alice",
        "guard",
        json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Sid": "NoDescribe", "Effect": "Deny", "Action": "kms:DescribeKey", "Resource": "*"}
                ],
            }
        ),
    )
    event = _describe(alice, _key(ADMINS, ROOT))
    assert (event.decision, event.decided_by) == (
        "denied",
        "statement 'NoDescribe' in the identity policy 'guard'",
    )


def test_an_allow_names_the_statement_and_its_other_events_are_allows(
    console: Callable[..., Client], admin: Persona, alice: Persona
) -> None:
    key = _key(ADMINS, ROOT)
    event = _describe(alice, key)
    assert (event.decision, event.decided_by) == (
        "allowed",
        "statement #1 in the identity policy 'dev-access'",
    )
    # An event recorded before the rule, refused with the Allow that did not count as its "decided by".
    old = add(
        operation="DescribeKey",
        caller_arn=alice.arn,
        key_arn=key.arn,
        decision="denied",
        reason="denied: the key policy does not let IAM policies grant access, so the identity policy "
        "'dev-access' did not count",
        decided_by=event.decided_by,
        error_code="AccessDeniedException",
    )
    client = console(admin)
    query = _other_events_link(client, event)
    assert query["decision"] == ["allowed"]
    listed = html.unescape(
        client.get("/console/audit/", {k: v[0] for k, v in query.items()}).content.decode()
    )
    assert str(event.event_id) in listed
    assert str(old.event_id) not in listed


def _retiring(grantee: Persona) -> tuple[dict[str, Any], Callable[[OperationContext], Any]]:
    """A grant to `grantee` on a new key: RetireGrant's parameters for it, and the work that retires it."""
    key = _key(ADMINS, ROOT)
    created = as_operator(
        "CreateGrant",
        lambda ctx: grant_create(
            ctx=ctx, key_id=key.arn, grantee_principal=grantee.arn, operations=["Decrypt"]
        ),
    )
    grant_id = created.grant.grant_id

    def retire(ctx: OperationContext) -> Any:
        grant_retire(ctx=ctx, key_id=key.arn, grant_id=grant_id)
        return {}

    return {"KeyId": key.arn, "GrantId": grant_id}, retire


def test_retire_grant_refusals_and_allows_name_no_stand_in_statement(
    make_user: Callable[..., Persona], admin: Persona, alice: Persona
) -> None:
    bob = make_user("bob")  # no identity policy
    params, retire = _retiring(admin)
    refused = _as(bob, "RetireGrant", params, retire)
    assert refused.decision == "denied"
    assert refused.decided_by == "missing: an identity-policy allow"
    assert "RetireGrantIsDelegatedToIAM" not in refused.reason + refused.decided_by
    allowed = _as(alice, "RetireGrant", params, retire)
    assert allowed.decision == "allowed"
    assert allowed.decided_by == "statement #1 in the identity policy 'dev-access'"
    assert "RetireGrantIsDelegatedToIAM" not in allowed.reason


def test_a_third_accounts_retire_grant_refusal_points_at_no_key_policy(
    admin: Persona, partner: Callable[..., Persona], console: Callable[..., Client]
) -> None:
    """A principal of neither the key's nor the grant's account, whose own IAM allows kms:RetireGrant: what was
    missing is not a key-policy allow (no key policy has a say in RetireGrant), and the event's page says what
    would let it retire the grant."""
    erin = partner("erin", ALLOW_ALL)
    refused = _as(erin, "RetireGrant", *_retiring(admin), account=PARTNER_ACCOUNT)
    assert (refused.decision, refused.decided_by) == ("denied", "missing: an identity-policy allow")
    assert "not by key policies" in refused.reason and "the key policy does not let" not in refused.reason
    body = html.unescape(console(admin).get(f"/console/audit/events/{refused.event_id}/").content.decode())
    assert "Retiring a grant is up to the grant" in body
    assert "Identity policies only count when the key policy lets them" not in body

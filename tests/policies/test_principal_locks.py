"""A write naming principals (PutKeyPolicy, CreateGrant) is authorized on its key before it looks up any of them
(`policies.principal_locks`), and looks them up in one query per kind (users, roles), however many it names: a
refused caller's request costs a small, fixed number of queries, and an allowed one's does not grow with the
number of principals it names. The decision on the locked key is the one recorded: one event, one decision."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from grants import services as grant_services
from keys.models import Key
from keys.services import key_policy
from kmsconsole.audit.models import AuditEvent
from kmsconsole.console import policy_check
from kmsconsole.core import errors
from policies.models import Account
from tests.conftest import Persona
from tests.policies.analyzer_support import run_as
from tests.policies.test_principal_deletion import key_naming, plain_user, policy_naming

pytestmark = pytest.mark.django_db

ACCOUNT = settings.KMS_ACCOUNT_ID


def named(count: int) -> list[str]:
    """`count` principal ARNs nobody has: users, roles and assumed roles, of this account and another."""
    kinds = [
        lambda i: f"arn:aws:iam::{ACCOUNT}:user/nobody-{i}",
        lambda i: f"arn:aws:iam::444455556666:user/team/nobody-{i}",
        lambda i: f"arn:aws:iam::{ACCOUNT}:role/nobody-{i}",
        lambda i: f"arn:aws:sts::{ACCOUNT}:assumed-role/nobody-{i}/session",
    ]
    return [kinds[index % len(kinds)](index) for index in range(count)]


def queries_of(call: Callable[[], Any], refused_with: type[errors.KmsError] | None) -> int:
    """How many queries `call` runs (the audit event of its refusal included; savepoints left out), refused as
    expected (or not, with None)."""
    with CaptureQueriesContext(connection) as captured:
        if refused_with is None:
            call()
        else:
            with pytest.raises(refused_with):
                call()
    savepoints = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")
    return sum(1 for query in captured.captured_queries if not query["sql"].startswith(savepoints))


def put_naming(persona: Persona, key: Key, arns: list[str]) -> Callable[[], Any]:
    policy = policy_naming(*arns)
    return lambda: run_as(
        persona,
        "PutKeyPolicy",
        lambda ctx: key_policy.key_policy_put(ctx=ctx, key_id=str(key.key_id), policy=policy),
    )


def test_a_refused_put_key_policy_costs_the_same_few_queries_whatever_it_names(
    admin: Persona, outsider: Persona
) -> None:
    """At a1ddacf a refused caller was refused before any principal lookup; then one query per ARN came first (a
    policy naming 401 users ran 415 queries before AccessDeniedException). Now the authorization comes first."""
    key = key_naming(admin.arn)
    refused = errors.AccessDeniedException
    queries_of(put_naming(outsider, key, named(1)), refused)  # the caller's identity, cached
    one = queries_of(put_naming(outsider, key, named(1)), refused)
    many = queries_of(put_naming(outsider, key, named(400)), refused)
    assert many == one and one <= 12, (one, many)
    assert [event.decision for event in AuditEvent.objects.filter(operation="PutKeyPolicy")] == ["denied"] * 3


def test_an_allowed_put_key_policy_looks_principals_up_in_one_query_per_kind(admin: Persona) -> None:
    key = key_naming(admin.arn)
    invalid = errors.MalformedPolicyDocumentException  # nobody has those names: refused after the lookup
    queries_of(put_naming(admin, key, named(4)), invalid)
    few = queries_of(put_naming(admin, key, named(4)), invalid)
    many = queries_of(put_naming(admin, key, named(400)), invalid)
    assert many == few, (few, many)


def test_an_allowed_write_records_one_event_with_the_decision_on_the_locked_key(
    account: Account, admin: Persona
) -> None:
    """The key is authorized twice (unlocked, before the principals are looked up; locked, after): one event, its
    decision the second's."""
    alice = plain_user(account, "alice")
    key = key_naming(admin.arn)
    policy = json.loads(key.policy)
    run_as(
        admin,
        "PutKeyPolicy",
        lambda ctx: key_policy.key_policy_put(
            ctx=ctx, key_id=str(key.key_id), policy=policy_naming(admin.arn, alice.arn)
        ),
    )
    run_as(
        admin,
        "CreateGrant",
        lambda ctx: grant_services.grant_create(
            ctx=ctx, key_id=str(key.key_id), grantee_principal=alice.arn, operations=["Decrypt"]
        ),
    )
    for operation in ("PutKeyPolicy", "CreateGrant"):
        [event] = AuditEvent.objects.filter(operation=operation)
        assert event.decision == "allowed" and event.key_arn == key.arn, operation
        assert event.reason and event.decided_by, operation
    assert policy != json.loads(Key.objects.get(pk=key.pk).policy)


def test_the_check_of_a_draft_looks_principals_up_in_one_query_per_kind(admin: Persona) -> None:
    """The console's live check (a PutKeyPolicy dry run) marks each principal of the caller's own account that does
    not exist where it is named, and says once, naming none, that a principal of another account does not
    (`key_policy.missing_principals`), all found in one query per kind."""
    key = key_naming(admin.arn)

    def check(arns: list[str]) -> Callable[[], Any]:
        return lambda: run_as(
            admin,
            "kmsconsole:ValidateKeyPolicy",
            lambda ctx: policy_check.key_policy_check(
                ctx, key=key_policy.key_for_policy_check(ctx, str(key.key_id)), document=policy_naming(*arns)
            ),
        )

    queries_of(check(named(4)), None)
    few = queries_of(check(named(4)), None)
    many = queries_of(check(named(400)), None)
    assert many == few, (few, many)
    result = check(named(400))()
    messages = [error["message"] for error in result["errors"]]
    assert (
        len(messages) == 300 + 1
    )  # 300 of this account, each named; 100 of another, one message naming none
    assert any("assumed-role/nobody-399/session does not exist" in message for message in messages)
    assert not any("444455556666" in message for message in messages)

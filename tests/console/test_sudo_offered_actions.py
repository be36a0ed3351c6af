"""The key page offers Disable and Schedule deletion exactly when the request would be allowed
(`keys.services.lifecycle.key_actions_allowed`), under the conditions a key policy may set: the key's tags and
aliases, the caller's address, and the deletion's waiting period (offered when some period would be allowed)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from keys.models import Key
from keys.services import aliases, tags
from tests.conftest import Persona, as_operator
from tests.console.test_keys import make_key
from tests.policies.analyzer_support import ROOT, allow, identity_policy, policy

pytestmark = pytest.mark.django_db


@dataclass(frozen=True)
class Case:
    id: str
    condition: dict[str, Any]
    tagged: bool = False
    aliased: bool = False
    days: str = "7"
    offered: bool = True
    allowed: bool = True
    in_iam: bool = False  # the condition is in the caller's identity policy, not the key policy


TAG = {"StringEquals": {"aws:ResourceTag/team": "payments"}}
ALIAS = {"ForAnyValue:StringEquals": {"kms:ResourceAliases": ["alias/payments"]}}
CASES = [
    Case("tag-matches", TAG, tagged=True),
    Case("tag-missing", TAG, offered=False, allowed=False),
    # kms:ResourceAliases counts in IAM policies only (a key policy sees it as absent).
    Case("alias-matches", ALIAS, aliased=True, in_iam=True),
    Case("alias-missing", ALIAS, offered=False, allowed=False, in_iam=True),
    Case("alias-in-key-policy", ALIAS, aliased=True, offered=False, allowed=False),
    Case("address-matches", {"IpAddress": {"aws:SourceIp": "127.0.0.1/32"}}),
    Case("address-elsewhere", {"IpAddress": {"aws:SourceIp": "10.0.0.0/8"}}, offered=False, allowed=False),
]
WINDOW = {"NumericGreaterThanEquals": {"kms:ScheduleKeyDeletionPendingWindowInDays": "20"}}
WINDOW_CASES = [
    Case("window-too-short", WINDOW, days="7", offered=True, allowed=False),
    Case("window-long-enough", WINDOW, days="25", offered=True, allowed=True),
    Case(
        "no-window-allowed",
        {"NumericGreaterThan": {"kms:ScheduleKeyDeletionPendingWindowInDays": "30"}},
        days="30",
        offered=False,
        allowed=False,
    ),
]


def alice_and_key(
    case: Case, make_user: Callable[..., Persona], actions: tuple[str, ...]
) -> tuple[Persona, Key]:
    alice = (
        make_user("alice", identity_policy(*actions, **case.condition)) if case.in_iam else make_user("alice")
    )
    statements = [ROOT, allow(alice.arn, "kms:DescribeKey")]
    if not case.in_iam:
        statements.append(allow(alice.arn, *actions, **case.condition))
    key = make_key(policy=policy(*statements))
    if case.tagged:
        pair = {"TagKey": "team", "TagValue": "payments"}
        as_operator("TagResource", lambda ctx: tags.key_tag(ctx=ctx, key_id=str(key.key_id), tags=[pair]))
    if case.aliased:
        as_operator(
            "CreateAlias",
            lambda ctx: aliases.alias_create(
                ctx=ctx, alias_name="alias/payments", target_key_id=str(key.key_id)
            ),
        )
    return alice, key


def outcome(response: Any) -> bool:
    assert response.status_code in (302, 403), response.status_code
    return response.status_code == 302


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_disable_is_offered_exactly_when_it_would_be_allowed(
    case: Case, make_user: Callable[..., Persona], console: Callable[..., Client]
) -> None:
    alice, key = alice_and_key(case, make_user, ("kms:DisableKey",))
    client = console(alice)
    page = client.get(reverse("console:key", args=[str(key.key_id)]))
    allowed = outcome(client.post(reverse("console:key-disable", args=[str(key.key_id)])))
    assert ((b"Disable key" in page.content), allowed) == (case.offered, case.allowed)


@pytest.mark.parametrize("case", CASES + WINDOW_CASES, ids=[c.id for c in CASES + WINDOW_CASES])
def test_schedule_deletion_is_offered_when_some_window_would_be_allowed(
    case: Case, make_user: Callable[..., Persona], console: Callable[..., Client]
) -> None:
    alice, key = alice_and_key(case, make_user, ("kms:ScheduleKeyDeletion",))
    client = console(alice)
    page = client.get(reverse("console:key", args=[str(key.key_id)]))
    posted = {"pending_window_days": case.days, "confirm_key_id": str(key.key_id)}
    allowed = outcome(client.post(reverse("console:key-schedule-deletion", args=[str(key.key_id)]), posted))
    assert ((b"Schedule deletion" in page.content), allowed) == (case.offered, case.allowed)

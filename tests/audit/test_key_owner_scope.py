"""The key owner's side of the audit trail (kmsconsole.audit.scope): another account's requests on the reader's keys,
allowed or refused, listed for the key's owner on every reader of the trail, with the owner's own statements named and
the caller's account's identity policies and access key id not (kmsconsole.audit.shown), and the caller's side as it
was."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from botocore.exceptions import ClientError
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from keys.models import Key
from keys.services import crypto, lifecycle
from kmsconsole.audit.charts import trail_charts
from kmsconsole.audit.derived import DERIVED_FIELDS, derived_values
from kmsconsole.audit.derived import reindex as reindex_key_owners
from kmsconsole.audit.models import AuditContextEntry, AuditEvent
from kmsconsole.audit.scope import Scope, key_owner_account, scope_events
from kmsconsole.audit.shown import (
    CALLER_IDENTITY_POLICY,
    DESTINATION_GRANT,
    DESTINATION_STATEMENT,
    KEY_OWNER_STATEMENT,
    decided_by_matches,
    shown_decided_by,
    shown_decision,
)
from kmsconsole.audit.trail import Page, TrailQuery, narrowed, page, resolve
from kmsconsole.core import errors
from policies import services
from policies.models import Account, IamUser
from tests.api.conftest import client_with, make_key, token_for
from tests.audit.dashboard_support import (
    ACCOUNT,
    ALLOW_STATEMENT,
    KEY_1,
    KEY_2,
    OTHER_ACCOUNT,
    PARTNER_KEY,
    add,
    append,
    event_values,
)
from tests.conftest import ALLOW_ALL, PARTNER_ACCOUNT, Persona, as_operator, create_user, postgresql_only
from tests.grants.conftest import ROOT, allow, policy
from tests.policies.analyzer_support import run_as

pytestmark = pytest.mark.django_db

TRAIL = "/console/audit/"
OWNER_SCOPE = {"scope": "key-owner"}
THIRD_ACCOUNT = "777788889999"

# The key owner's (account 111122223333) key policy statements: the owner's to read.
ALLOWING_SID = "Partner encrypts payroll"
DENYING_SID = "Never for the blocked tenant"
# The caller's (account 444455556666) identity policies: the owner may not read them.
PARTNER_POLICY = "partner-payroll-crypto"
PARTNER_SID = "PartnerMayEncrypt"
GUARD_POLICY = "partner-guard-rail"
GUARD_SID = "PartnerNeverTenantNine"
PARTNERS_OWN = (PARTNER_POLICY, PARTNER_SID, GUARD_POLICY, GUARD_SID)


def owners_key() -> Key:
    """A key of the main account that lets the partner account encrypt, but never for tenant "blocked"."""
    partner_root = f"arn:aws:iam::{PARTNER_ACCOUNT}:root"
    never_blocked = {
        **allow(partner_root, "kms:Encrypt", sid=DENYING_SID),
        "Effect": "Deny",
        "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": "blocked"}},
    }
    return make_key(
        "payroll",
        policy=policy(
            ROOT, allow(partner_root, "kms:Encrypt", "kms:DescribeKey", sid=ALLOWING_SID), never_blocked
        ),
    )


def account_with_user(account_id: str, user_name: str, policies: dict[str, str]) -> Persona:
    """A user of `account_id` (created if need be) with the named inline identity policies."""
    account = Account.objects.filter(account_id=account_id).first() or as_operator(
        "iam:CreateAccount", lambda ctx: services.account_create(ctx=ctx, account_id=account_id)
    )
    persona = create_user(account, user_name)
    user = IamUser.objects.get(account=account, name=user_name)
    for name, document in policies.items():
        as_operator(
            "iam:PutUserPolicy",
            lambda ctx, n=name, d=document: services.identity_policy_put(
                ctx=ctx, owner=user, policy_name=n, document=d
            ),
        )
    return persona


def partner_app() -> Persona:
    """The partner's application: allowed to encrypt anywhere by one policy, never for tenant 9 by another."""
    return account_with_user(
        PARTNER_ACCOUNT,
        "payroll-app",
        {
            PARTNER_POLICY: policy(
                {"Sid": PARTNER_SID, "Effect": "Allow", "Action": ["kms:*", "kmsconsole:*"], "Resource": "*"}
            ),
            GUARD_POLICY: policy(
                {
                    "Sid": GUARD_SID,
                    "Effect": "Deny",
                    "Action": "kms:Encrypt",
                    "Resource": "*",
                    "Condition": {"StringEquals": {"kms:EncryptionContext:tenant": "9"}},
                }
            ),
        },
    )


@dataclass(frozen=True)
class CrossAccount:
    key: Key
    partner: Persona
    allowed: AuditEvent  # allowed by the owner's statement together with the partner's identity statement
    denied_by_owner: AuditEvent  # the owner's Deny statement
    denied_by_partner: AuditEvent  # the partner's own identity policy's Deny
    not_delegated: (
        AuditEvent  # a key whose policy does not let the partner's IAM count: named by the partner's policy
    )

    @property
    def events(self) -> tuple[AuditEvent, ...]:
        return (self.allowed, self.denied_by_owner, self.denied_by_partner, self.not_delegated)


def _encrypt(partner: Persona, key: Key, tenant: str) -> None:
    run_as(
        partner,
        "Encrypt",
        lambda ctx: crypto.key_encrypt(
            ctx=ctx, key_id=key.arn, plaintext=b"pay", encryption_context={"tenant": tenant}
        ),
    )


def cross_account_requests() -> CrossAccount:
    key = owners_key()
    other_key = make_key("not shared")  # the default key policy: only the owner's account's IAM counts
    partner = partner_app()
    _encrypt(partner, key, "ok")
    for tenant in ("blocked", "9"):
        with pytest.raises(errors.AccessDeniedException):
            _encrypt(partner, key, tenant)
    with pytest.raises(errors.AccessDeniedException):
        run_as(partner, "DescribeKey", lambda ctx: lifecycle.key_describe(ctx=ctx, key_id=other_key.arn))
    by_partner = list(
        AuditEvent.objects.filter(caller_arn=partner.arn, key_arn__contains=":key/").order_by("seq")
    )
    allowed, denied_by_owner, denied_by_partner, not_delegated = by_partner
    return CrossAccount(key, partner, allowed, denied_by_owner, denied_by_partner, not_delegated)


@pytest.fixture
def cross(account: Account) -> CrossAccount:
    return cross_account_requests()


def _ids(text: str, events: tuple[AuditEvent, ...]) -> set[AuditEvent]:
    """The events a page, an export or a REST list shows as rows (a reader's own read of an event records its id
    among its parameters: that is not a row)."""
    rows: set[str] = set()
    for line in text.splitlines():
        if line.startswith("{") and '"hash"' in line:  # a JSON Lines record
            rows.add(json.loads(line)["event_id"])
    if text.startswith('{"'):
        with contextlib.suppress(json.JSONDecodeError):  # a REST page (JSON Lines are several documents)
            rows |= {row["event_id"] for row in json.loads(text).get("results", [])}
    if text.startswith("seq,"):  # CSV
        rows |= {row["event_id"] for row in csv.DictReader(io.StringIO(text))}
    return {
        event
        for event in events
        if str(event.event_id) in rows or f"/console/audit/events/{event.event_id}/" in text
    }


def _api(persona: Persona) -> Any:
    account_id = persona.arn.split(":")[4]
    return client_with(token_for(Account.objects.get(account_id=account_id), persona.name))


def _export(client: Client, view: str, **params: str) -> str:
    response = client.get(reverse(view), params)
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode()


def _reads(operation: str, caller_arn: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(operation=operation, caller_arn=caller_arn).order_by("seq"))


def test_what_was_stored_and_derived(cross: CrossAccount) -> None:
    """The events are the real engine's decisions, stored whole, each with the key owner's account derived."""
    assert ALLOWING_SID in cross.allowed.reason and PARTNER_SID in cross.allowed.reason
    assert cross.denied_by_owner.decided_by == f"statement '{DENYING_SID}' in the key policy"
    assert (
        cross.denied_by_partner.decided_by
        == f"statement '{GUARD_SID}' in the identity policy '{GUARD_POLICY}'"
    )
    assert f"the identity policy '{PARTNER_POLICY}' did not count" in cross.not_delegated.reason
    for event in cross.events:
        assert event.key_owner_account == ACCOUNT and event.caller_account == PARTNER_ACCOUNT
        assert event.access_key_id == cross.partner.access_key_id
    # The owner's own requests, and events without a key, are nobody else's.
    own = AuditEvent.objects.filter(caller_account=ACCOUNT)
    assert own.exists() and not own.exclude(key_owner_account="").exists()


def test_the_key_owner_reads_another_accounts_requests_on_its_keys(
    console: Callable[..., Client], admin: Persona, cross: CrossAccount
) -> None:
    owner = console(admin)
    page = owner.get(TRAIL, OWNER_SCOPE)
    assert page.status_code == 200
    body = page.content.decode()
    assert _ids(body, cross.events) == set(cross.events)
    # The owner's statements are named (the decided-by column, the refusals chart); the partner's are not.
    assert escape(ALLOWING_SID) in body and escape(DENYING_SID) in body
    assert escape(f"Refused: {CALLER_IDENTITY_POLICY}") in body
    assert not [name for name in (*PARTNERS_OWN, cross.partner.access_key_id) if name in body]
    assert escape(cross.partner.arn) in body  # who it was is the owner's to know

    for event in cross.events:
        detail = owner.get(f"{TRAIL}events/{event.event_id}/")
        assert detail.status_code == 200
        shown = detail.content.decode()
        assert not [name for name in (*PARTNERS_OWN, cross.partner.access_key_id) if name in shown]
        assert "Not shown: the caller's account's." in shown
        assert "Requests by other accounts on this account&#x27;s keys" in shown
    allowed = owner.get(f"{TRAIL}events/{cross.allowed.event_id}/").content.decode()
    assert (
        escape(
            f"allowed across accounts by statement '{ALLOWING_SID}' in the key policy together with "
            f"{CALLER_IDENTITY_POLICY}"
        )
        in allowed
    )
    assert "The caller belongs to another account" in allowed
    not_delegated = owner.get(f"{TRAIL}events/{cross.not_delegated.event_id}/").content.decode()
    assert escape(f"so {CALLER_IDENTITY_POLICY} did not count") in not_delegated

    for view in ("console:audit-export-csv", "console:audit-export-jsonl"):
        exported = _export(owner, view, **OWNER_SCOPE)
        assert _ids(exported, cross.events) == set(cross.events)
        assert escape(ALLOWING_SID) in exported or ALLOWING_SID in exported
        assert not [name for name in (*PARTNERS_OWN, cross.partner.access_key_id) if name in exported]
    rows = list(csv.DictReader(io.StringIO(_export(owner, "console:audit-export-csv", **OWNER_SCOPE))))
    assert {row["access_key_id"] for row in rows} == {""}
    assert {row["caller_account"] for row in rows} == {PARTNER_ACCOUNT}

    api = _api(admin)
    listed = api.get("/api/v1/audit-events", OWNER_SCOPE)
    assert listed.status_code == 200
    results = listed.json()["results"]
    assert {row["event_id"] for row in results} == {str(event.event_id) for event in cross.events}
    assert {row["scope"] for row in results} == {"key-owner"} and {
        row["access_key_id"] for row in results
    } == {""}
    one = api.get(f"/api/v1/audit-events/{cross.denied_by_partner.event_id}")
    assert one.status_code == 200 and one.json()["scope"] == "key-owner"
    assert one.json()["decided_by"] == CALLER_IDENTITY_POLICY
    assert (
        one.json()["reason"] == f"denied by {CALLER_IDENTITY_POLICY}: an explicit deny overrides every allow"
    )
    by_owner = api.get(f"/api/v1/audit-events/{cross.denied_by_owner.event_id}").json()
    assert by_owner["decided_by"] == f"statement '{DENYING_SID}' in the key policy"
    for text in (listed.content.decode(), one.content.decode()):
        assert not [name for name in (*PARTNERS_OWN, cross.partner.access_key_id) if name in text]

    # Each read records the scope it read.
    (console_read,) = [e for e in _reads("kmsconsole:ListAuditEvents", admin.arn) if e.interface == "console"]
    assert console_read.request_parameters["Query"]["scope"] == "key-owner"
    (api_read,) = [e for e in _reads("kmsconsole:ListAuditEvents", admin.arn) if e.interface == "api"]
    assert api_read.request_parameters["Query"]["scope"] == "key-owner"
    exports = _reads("kmsconsole:ExportAuditEvents", admin.arn)
    assert {e.request_parameters["Filters"]["scope"] for e in exports} == {"key-owner"}
    details = _reads("kmsconsole:GetAuditEvent", admin.arn)
    assert {e.response_elements["Scope"] for e in details} == {"key-owner"}


def test_the_owners_own_side_does_not_list_them_and_the_callers_side_is_unchanged(
    console: Callable[..., Client], admin: Persona, cross: CrossAccount
) -> None:
    owner = console(admin)
    assert not _ids(owner.get(TRAIL).content.decode(), cross.events)
    assert not _ids(_export(owner, "console:audit-export-jsonl"), cross.events)
    assert not _ids(_api(admin).get("/api/v1/audit-events").content.decode(), cross.events)

    # The partner reads its own requests as before: its own policies named, the owner's statements not.
    partner = console(cross.partner)
    body = partner.get(TRAIL).content.decode()
    assert _ids(body, cross.events) == set(cross.events)
    assert escape(KEY_OWNER_STATEMENT) in body and escape(GUARD_SID) in body
    assert ALLOWING_SID not in body and escape(ALLOWING_SID) not in body and escape(DENYING_SID) not in body
    detail = partner.get(f"{TRAIL}events/{cross.allowed.event_id}/").content.decode()
    assert escape(PARTNER_POLICY) in detail and escape(cross.partner.access_key_id) in detail
    assert escape(ALLOWING_SID) not in detail
    api = _api(cross.partner)
    rows = api.get("/api/v1/audit-events", {"key_arn": cross.key.arn}).json()["results"]
    assert {row["scope"] for row in rows} == {"caller"}
    assert {row["access_key_id"] for row in rows} == {cross.partner.access_key_id}
    # The partner owns none of these keys: its key-owner side has none of them.
    assert not _ids(partner.get(TRAIL, OWNER_SCOPE).content.decode(), cross.events)
    assert not _ids(api.get("/api/v1/audit-events", OWNER_SCOPE).content.decode(), cross.events)


def test_a_third_account_sees_them_in_neither_scope_even_with_the_derived_column_set_to_it(
    console: Callable[..., Client], admin: Persona, cross: CrossAccount
) -> None:
    third = account_with_user(THIRD_ACCOUNT, "third-auditor", {"all": ALLOW_ALL})
    client, api = console(third), _api(third)

    def seen_by_third() -> set[AuditEvent]:
        seen: set[AuditEvent] = set()
        for params in ({}, OWNER_SCOPE):
            seen |= _ids(client.get(TRAIL, {**params, "range": "all"}).content.decode(), cross.events)
            seen |= _ids(_export(client, "console:audit-export-jsonl", **params), cross.events)
            seen |= _ids(api.get("/api/v1/audit-events", params).content.decode(), cross.events)
        for event in cross.events:
            for response in (
                client.get(f"{TRAIL}events/{event.event_id}/"),
                api.get(f"/api/v1/audit-events/{event.event_id}"),
            ):
                if response.status_code != 404:
                    seen.add(event)
        return seen

    assert not seen_by_third()
    # The column is not chained: someone with database access points it at the third account. The chained
    # key_arn still names the owner's key, so the third account is shown nothing.
    tampered = AuditEvent.objects.filter(pk__in=[event.pk for event in cross.events])
    assert tampered.update(key_owner_account=THIRD_ACCOUNT) == 4
    assert not seen_by_third()
    # The owner loses sight of them until the column is rebuilt from the chained fields.
    owner = console(admin)
    assert not _ids(owner.get(TRAIL, OWNER_SCOPE).content.decode(), cross.events)
    assert reindex_key_owners() == 4
    assert _ids(owner.get(TRAIL, OWNER_SCOPE).content.decode(), cross.events) == set(cross.events)
    assert reindex_key_owners() == 0


@pytest.mark.parametrize("reader", ["console", "rest"])
def test_the_key_owners_filters_match_only_what_it_shows(
    console: Callable[..., Client], admin: Persona, cross: CrossAccount, reader: str
) -> None:
    """The console's trail and the REST list alike (one query, kmsconsole.audit.trail)."""
    owner, path = (console(admin), TRAIL) if reader == "console" else (_api(admin), "/api/v1/audit-events")

    def listed(**query: str) -> set[AuditEvent]:
        response = owner.get(path, {**OWNER_SCOPE, **query})
        assert response.status_code == 200, response.content
        return _ids(response.content.decode(), cross.events)

    def found(decided_by: str) -> set[AuditEvent]:
        return listed(decided_by=decided_by)

    # The principal and the account filters are the caller's: its ARN finds its requests, and so does its account
    # (on this side the account filter is the caller's account, every key being the reader's); a name is resolved
    # in the reader's account, which has no such user; the reader's own account is never a caller here.
    everything = set(cross.events)
    assert listed(principal=cross.partner.arn) == everything
    assert listed(account=PARTNER_ACCOUNT) == everything
    assert not listed(account=THIRD_ACCOUNT)
    assert not listed(account=admin.arn.split(":")[4])
    assert not listed(principal=cross.partner.arn.rsplit("/", 1)[-1])

    # The partner's stored names find nothing: guessing them from the owner's side is no use.
    assert not found(cross.denied_by_partner.decided_by)
    # What a refusal was missing names nothing of the partner's: both sides see it, and find it.
    assert cross.not_delegated.decided_by == "missing: a key-policy allow for the caller's account"
    assert found(cross.not_delegated.decided_by) == {cross.not_delegated}
    assert not found(f"statement '{PARTNER_SID}' in the identity policy '{PARTNER_POLICY}'")
    # The label finds every event it labels; the owner's own statements find theirs.
    assert found(CALLER_IDENTITY_POLICY) == {cross.denied_by_partner}
    assert found(cross.denied_by_owner.decided_by) == {cross.denied_by_owner}
    assert found(cross.allowed.decided_by) == {cross.allowed}
    # The labels of the caller's side mean nothing here (the owner is shown its own names).
    assert not found(KEY_OWNER_STATEMENT)


def test_the_key_owners_charts_group_the_callers_identity_policies_under_the_label(
    console: Callable[..., Client], admin: Persona
) -> None:
    partner = f"arn:aws:iam::{OTHER_ACCOUNT}:user/zed"
    for sid, name in (("QuokkaOne", "quokka-a"), ("QuokkaTwo", "quokka-b")):
        add(
            caller_arn=partner,
            caller_account=OTHER_ACCOUNT,
            decision="denied",
            reason=f"denied by statement '{sid}' in the identity policy '{name}': an explicit deny overrides",
            decided_by=f"statement '{sid}' in the identity policy '{name}'",
        )
    mine = "statement 'Keep the partner out' in the key policy"
    add(
        caller_arn=partner,
        caller_account=OTHER_ACCOUNT,
        decision="denied",
        reason=f"denied by {mine}",
        decided_by=mine,
    )
    page = console(admin).get(TRAIL, OWNER_SCOPE).content.decode()
    assert "Quokka" not in page and "quokka" not in page
    assert page.count(escape(f"Refused: {CALLER_IDENTITY_POLICY}")) == 1
    assert escape(f"Refused: {mine}") in page
    marker = '<script id="audit-chart-data" type="application/json">'
    start = page.index(marker) + len(marker)
    reasons = json.loads(page[start : page.index("</script>", start)])["reasons"]
    assert dict(zip(reasons["labels"], reasons["counts"], strict=True)) == {
        f"Refused: {CALLER_IDENTITY_POLICY}": 2,
        f"Refused: {mine}": 1,
    }


# decided_by values of every kind, for the SQL and Python rules to agree on.
DECIDED_BY = (
    "",
    "operator",
    "own account",
    "grant 0123abcd",
    "statement 'S' in the key policy",
    "statement #3 in the key policy",
    "statement 'S' in the key policy 'other'",
    f"statement '{'A' * 600}' in the key policy"[:512],
    "statement 'x' in the identity policy 'y' in the key policy",  # the owner's Sid dressed as an identity one
    "statement 'NoDecrypt' in the identity policy 'guard'",
    "statement #1 in the identity policy 'guard'",
    "statement 'x' in the key policy' in the identity policy 'guard'",  # the caller's Sid dressed as the owner's
    f"statement '{'B' * 600}' in the identity policy 'guard'"[
        :512
    ],  # the caller's, cut at the column's length
    "something this module does not know",
)


def _on_both_keys(values: tuple[str, ...]) -> list[AuditEvent]:
    """Another account's request for each decided_by: on the reader's key, and an allowed ReEncrypt out of the
    reader's key into the caller's own (the event's key is then another account's)."""
    partner = f"arn:aws:iam::{OTHER_ACCOUNT}:user/zed"
    return [
        add(caller_arn=partner, caller_account=OTHER_ACCOUNT, decided_by=value, **where)
        for where in (
            {},
            {
                "operation": "ReEncrypt",
                "key_arn": PARTNER_KEY,
                "response_elements": {"SourceKeyId": KEY_1, "KeyId": PARTNER_KEY},
            },
        )
        for value in values
    ]


def test_the_key_owners_charts_and_rows_show_decided_by_alike() -> None:
    """The SQL expression the charts group by and the Python rule the rows are shown by agree on every kind, on the
    reader's key and as the owner of a ReEncrypt's source; the filter matches exactly what each value is shown as."""
    events = _on_both_keys(DECIDED_BY)
    assert {event.pk for event in events} == set(
        scope_events(ACCOUNT, Scope.KEY_OWNER)
        .filter(pk__in=[e.pk for e in events])
        .values_list("pk", flat=True)
    )
    grouped = dict(
        AuditEvent.objects.filter(pk__in=[event.pk for event in events])
        .annotate(shown=shown_decided_by(ACCOUNT, Scope.KEY_OWNER))
        .values_list("pk", "shown")
    )
    python = {
        event.pk: shown_decision(
            key_arn=event.key_arn,
            reason="",
            decided_by=event.decided_by,
            account_id=ACCOUNT,
            scope=Scope.KEY_OWNER,
        ).decided_by
        for event in events
    }
    assert grouped == python
    for shown in set(python.values()):
        matching = AuditEvent.objects.filter(
            decided_by_matches(shown, ACCOUNT, Scope.KEY_OWNER), pk__in=[event.pk for event in events]
        )
        assert set(matching.values_list("pk", flat=True)) == {pk for pk, s in python.items() if s == shown}, (
            shown
        )
    # Out of the reader's key into another account's: the destination's statements and grants are labels too.
    assert {python[event.pk] for event in events if event.key_arn == PARTNER_KEY} == {
        "",
        "operator",
        "own account",
        DESTINATION_GRANT,
        DESTINATION_STATEMENT,
        CALLER_IDENTITY_POLICY,
    }
    grouped = {event.decided_by: python[event.pk] for event in events if event.key_arn == KEY_1}
    hidden = {value for value in DECIDED_BY if grouped[value] == CALLER_IDENTITY_POLICY}
    assert hidden == {
        # Any statement cut at the column's length: the owner's and the caller's look alike then (fail closed).
        f"statement '{'A' * 600}' in the key policy"[:512],
        "statement 'NoDecrypt' in the identity policy 'guard'",
        "statement #1 in the identity policy 'guard'",
        "statement 'x' in the key policy' in the identity policy 'guard'",
        f"statement '{'B' * 600}' in the identity policy 'guard'"[:512],
        "something this module does not know",
    }


@pytest.mark.parametrize(
    ("reason", "decided_by", "shown_reason", "shown_by"),
    [
        (  # ALLOWED_CROSS_ACCOUNT: the owner's statement stays, the caller's supporting statement goes
            "allowed across accounts by statement 'S' in the key policy together with statement 'P' in the "
            "identity policy 'mine' in account 444455556666",
            "statement 'S' in the key policy",
            f"allowed across accounts by statement 'S' in the key policy together with {CALLER_IDENTITY_POLICY}",
            "statement 'S' in the key policy",
        ),
        (  # ... or the caller's root user, which is no secret
            "allowed across accounts by statement 'S' in the key policy together with the root user of account "
            "444455556666",
            "statement 'S' in the key policy",
            None,
            "statement 'S' in the key policy",
        ),
        (  # ALLOWED_BY_GRANT to the caller's account, with the identity statement that passed it on
            "allowed by grant g1, for the caller's account, together with statement #2 in the identity policy 'p'",
            "grant g1",
            f"allowed by grant g1, for the caller's account, together with {CALLER_IDENTITY_POLICY}",
            "grant g1",
        ),
        (  # EXPLICIT_DENY_IDENTITY_POLICY
            "denied by statement 'NoDecrypt' in the identity policy 'guard': an explicit deny overrides every allow",
            "statement 'NoDecrypt' in the identity policy 'guard'",
            f"denied by {CALLER_IDENTITY_POLICY}: an explicit deny overrides every allow",
            CALLER_IDENTITY_POLICY,
        ),
        (  # IAM_NOT_DELEGATED: the policy that did not count is named without its statement
            "denied: the key policy does not let IAM policies of account 444455556666 grant access, so the identity "
            "policy 'guard' did not count",
            "statement #1 in the identity policy 'guard'",
            "denied: the key policy does not let IAM policies of account 444455556666 grant access, so "
            f"{CALLER_IDENTITY_POLICY} did not count",
            CALLER_IDENTITY_POLICY,
        ),
        (  # the owner's own explicit deny and NO_IDENTITY_POLICY_ALLOWS: all the owner's, shown whole
            "denied by statement 'D' in the key policy: an explicit deny overrides every allow",
            "statement 'D' in the key policy",
            None,
            "statement 'D' in the key policy",
        ),
        (
            "denied: statement #3 in the key policy allows it, but a caller from account 444455556666 also needs "
            "an identity policy in its account that allows kms:Encrypt on arn:x, and none does",
            "statement #3 in the key policy",
            None,
            "statement #3 in the key policy",
        ),
        (  # the owner's own Sid may quote anything: it is the owner's
            "denied by statement 'x' in the identity policy 'y' in the key policy: an explicit deny overrides",
            "statement 'x' in the identity policy 'y' in the key policy",
            None,
            "statement 'x' in the identity policy 'y' in the key policy",
        ),
        (  # the caller's name cut at the column's length: the reason would keep the rest, so it is cut too
            f"denied by statement '{'B' * 600}' in the identity policy 'guard': an explicit deny overrides",
            f"statement '{'B' * 600}' in the identity policy 'guard'"[:512],
            f"denied: decided by {CALLER_IDENTITY_POLICY}",
            CALLER_IDENTITY_POLICY,
        ),
        (  # a sentence this module does not know that names an identity policy: cut to its outcome
            "allowed by statement 'S' in the key policy, and the identity policy 'secret' was glad",
            "statement 'S' in the key policy",
            "allowed: decided by statement 'S' in the key policy",
            "statement 'S' in the key policy",
        ),
        (  # IAM_NOT_DELEGATED since "decided by" names what was missing: the policy in the reason still goes
            "denied: the key policy does not let IAM policies of account 444455556666 grant access, so the identity "
            "policy 'guard' did not count",
            "missing: a key-policy allow for the caller's account",
            "denied: the key policy does not let IAM policies of account 444455556666 grant access, so "
            f"{CALLER_IDENTITY_POLICY} did not count",
            "missing: a key-policy allow for the caller's account",
        ),
        (  # what was missing is shown whole, with the owner's own statement the reason names
            "denied: statement #3 in the key policy allows it, but a caller from account 444455556666 also needs "
            "an identity policy in its account that allows kms:Encrypt on arn:x, and none does",
            "missing: an identity-policy allow",
            None,
            "missing: an identity-policy allow",
        ),
        ("denied: no statement in the key policy allows it, and no grant does", "", None, ""),
    ],
)
def test_what_the_key_owner_is_shown(
    reason: str, decided_by: str, shown_reason: str | None, shown_by: str
) -> None:
    shown = shown_decision(
        key_arn=KEY_1, reason=reason, decided_by=decided_by, account_id=ACCOUNT, scope=Scope.KEY_OWNER
    )
    assert (shown.reason, shown.decided_by) == (shown_reason or reason, shown_by)


def test_the_column_is_derived_from_the_chained_fields_and_rebuilt() -> None:
    assert key_owner_account(key_arn=KEY_1, caller_account=OTHER_ACCOUNT) == ACCOUNT
    assert key_owner_account(key_arn=KEY_1, caller_account=ACCOUNT) == ""
    assert key_owner_account(key_arn="", caller_account=OTHER_ACCOUNT) == ""
    assert key_owner_account(key_arn=KEY_1, caller_account="") == ACCOUNT  # an anonymous attempt on the key
    assert key_owner_account(key_arn="arn:aws:kms:us-east-1:12345:key/x", caller_account="") == ""
    # Events written before the column existed (or by a process running older code) have it blank.
    events = [
        add(
            caller_account=OTHER_ACCOUNT,
            caller_arn=f"arn:aws:iam::{OTHER_ACCOUNT}:user/zed",
            key_owner_account="",
        ),
        add(key_owner_account=""),
        add(caller_account=ACCOUNT, key_arn="", key_owner_account=""),
    ]
    assert reindex_key_owners(batch=2) == 1
    assert [AuditEvent.objects.get(pk=e.pk).key_owner_account for e in events] == [ACCOUNT, "", ""]
    assert reindex_key_owners() == 0
    # The command does the same (after a rolling deploy, or to undo an edit).
    AuditEvent.objects.filter(pk=events[0].pk).update(key_owner_account="")
    out = io.StringIO()
    call_command("audit", "reindex-key-owners", stdout=out)
    assert out.getvalue() == "Set the key owner columns of 1 events from their chained fields.\n"
    assert AuditEvent.objects.get(pk=events[0].pk).key_owner_account == ACCOUNT


@pytest.mark.django_db(transaction=True)
def test_the_migration_fills_the_columns_as_the_recorder_would() -> None:
    """audit.0008 carries its own copy of the rules (a later change to them must not change a migration): on events
    of every kind written before the columns, it gives what the recorder's rules give today."""
    executor = MigrationExecutor(connection)
    executor.migrate([("audit", "0006_arn_prefix_indexes")])
    old_event = executor.loader.project_state([("audit", "0006_arn_prefix_indexes")]).apps.get_model(
        "audit", "AuditEvent"
    )
    partner = f"arn:aws:iam::{OTHER_ACCOUNT}:user/zed"
    guard = "statement 'Guard' in the identity policy 'guard'"
    kinds: list[dict[str, Any]] = [
        {},  # the reader's own request on its own key
        {"caller_arn": partner, "caller_account": OTHER_ACCOUNT},  # another account's, on the reader's key
        {"caller_arn": partner, "caller_account": OTHER_ACCOUNT, "decided_by": guard},
        {"caller_arn": partner, "caller_account": OTHER_ACCOUNT, "key_arn": PARTNER_KEY, "decided_by": guard},
        {"caller_arn": partner, "caller_account": OTHER_ACCOUNT, "decided_by": "grant 0123abcd"},
        {"key_arn": "", "decided_by": guard},  # no key (an account-level operation)
        {  # an allowed ReEncrypt out of the reader's key into the partner's own
            "caller_arn": partner,
            "caller_account": OTHER_ACCOUNT,
            "operation": "ReEncrypt",
            "key_arn": PARTNER_KEY,
            "response_elements": {"SourceKeyId": KEY_1, "KeyId": PARTNER_KEY},
            "decided_by": guard,
        },
        {  # the same response on another operation names no source
            "caller_arn": partner,
            "caller_account": OTHER_ACCOUNT,
            "operation": "Decrypt",
            "key_arn": PARTNER_KEY,
            "response_elements": {"SourceKeyId": KEY_1},
        },
    ]
    chained = [event_values(**kind) for kind in kinds]
    for seq, values in enumerate(chained, start=1):
        old_event.objects.create(
            seq=seq,
            prev_hash="0" * 64,
            hash="0" * 64,
            **{name: value for name, value in values.items() if name not in DERIVED_FIELDS},
        )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    filled = list(AuditEvent.objects.order_by("seq").values(*DERIVED_FIELDS))
    assert filled == [derived_values(values) for values in chained]
    assert [row["key_owner_account"] for row in filled] == [
        "",
        ACCOUNT,
        ACCOUNT,
        "",
        ACCOUNT,
        "",
        ACCOUNT,
        "",
    ]
    assert [row["decided_by_caller_policy"] for row in filled] == [
        False,
        False,
        True,
        False,
        False,
        False,
        True,
        False,
    ]


def test_verify_reports_derived_columns_that_differ_as_a_finding_not_a_broken_chain() -> None:
    partner = f"arn:aws:iam::{OTHER_ACCOUNT}:user/zed"
    theirs = add(caller_arn=partner, caller_account=OTHER_ACCOUNT)
    guarded = add(
        caller_arn=partner,
        caller_account=OTHER_ACCOUNT,
        decided_by="statement 'Guard' in the identity policy 'guard'",
    )
    assert (theirs.key_owner_account, guarded.decided_by_caller_policy) == (ACCOUNT, True)
    add()

    def verify() -> str:
        out = io.StringIO()
        call_command("audit", "verify", stdout=out)
        return out.getvalue()

    assert verify() == "Audit chain intact: 3 events verified.\n"
    # Someone with database access hides the first from its key's owner and the second from the label's filter.
    AuditEvent.objects.filter(pk=theirs.pk).update(key_owner_account="")
    AuditEvent.objects.filter(pk=guarded.pk).update(decided_by_caller_policy=False)
    assert verify() == (
        "Audit chain intact: 4 events verified.\n"  # the first verify's own event too
        f"Found: 2 events' key owner columns differ from their chained fields (first: event #{theirs.seq} "
        f"({theirs.event_id}): key_owner_account differ from the chained fields); `manage.py audit "
        "reindex-key-owners` sets them again.\n"
    )
    assert reindex_key_owners() == 2
    # The two verifies' own events (each command is an audited operation) are walked too.
    assert verify() == "Audit chain intact: 5 events verified.\n"


def test_an_unknown_scope_is_refused_and_audited(console: Callable[..., Client], admin: Persona) -> None:
    """On every reader of the trail, as the REST API does: the read fails inside its operation (ValidationException,
    a 400), and the failed read is an event with the scope as it was asked."""
    client = console(admin)
    page = client.get(TRAIL, {"scope": "everyone", "range": "7d"})
    assert page.status_code == 400
    body = page.content.decode()
    assert (
        '<p class="message error" role="alert">Choose one side of the trail: scope must be one of caller, '
        "key-owner, not &#x27;everyone&#x27;.</p>" in body
    )
    assert 'aria-label="Side of the trail"' in body  # the trail's own page, with its switch
    for view in ("console:audit-export-csv", "console:audit-export-jsonl"):
        exported = client.get(reverse(view), {"scope": "everyone"})
        assert exported.status_code == 400
        assert (
            "scope must be one of caller, key-owner, not &#x27;everyone&#x27;." in exported.content.decode()
        )
    response = _api(admin).get("/api/v1/audit-events", {"scope": "everyone"})
    assert response.status_code == 400 and "scope" in response.json()["error"]["detail"]

    by_interface = {
        (event.operation, event.interface, (event.request_parameters or {}).get("Format", "")): event
        for event in AuditEvent.objects.filter(
            caller_arn=admin.arn,
            operation__in=("kmsconsole:ListAuditEvents", "kmsconsole:ExportAuditEvents"),
        )
    }
    assert set(by_interface) == {
        ("kmsconsole:ListAuditEvents", "console", ""),
        ("kmsconsole:ExportAuditEvents", "console", "csv"),
        ("kmsconsole:ExportAuditEvents", "console", "jsonl"),
        ("kmsconsole:ListAuditEvents", "api", ""),
    }
    for (operation, interface, _), event in by_interface.items():
        assert (event.decision, event.error_code) == ("failed", "ValidationException"), event
        query = event.request_parameters["Filters" if "Export" in operation else "Query"]
        assert query["scope"] == "everyone"
        if interface == "console":
            assert event.error_message == "scope must be one of caller, key-owner, not 'everyone'."
    assert (
        by_interface["kmsconsole:ListAuditEvents", "console", ""].request_parameters["Query"]["range"] == "7d"
    )


def test_the_console_switches_between_the_two_sides(console: Callable[..., Client], admin: Persona) -> None:
    mine = add(caller_arn=f"arn:aws:iam::{ACCOUNT}:user/alice")
    theirs = add(caller_arn=f"arn:aws:iam::{OTHER_ACCOUNT}:user/zed", caller_account=OTHER_ACCOUNT)
    client = console(admin)
    own = client.get(TRAIL, {"range": "7d", "decision": "allowed"}).content.decode()
    assert f"/console/audit/events/{mine.event_id}/" in own
    assert f"/console/audit/events/{theirs.event_id}/" not in own
    # The switch: this side is current; the other keeps the time range, not the filters of this side.
    assert '<a href="/console/audit/?range=7d" data-scope="caller" aria-current="page">' in own
    assert '<a href="/console/audit/?range=7d&amp;scope=key-owner" data-scope="key-owner">' in own
    assert 'name="scope"' not in own

    other = client.get(TRAIL, {"range": "7d", "scope": "key-owner"}).content.decode()
    assert f"/console/audit/events/{theirs.event_id}/" in other
    assert f"/console/audit/events/{mine.event_id}/" not in other
    assert (
        '<a href="/console/audit/?range=7d&amp;scope=key-owner" data-scope="key-owner" aria-current="page">'
        in other
    )
    # Applying filters, paging, exporting, clearing and narrowing from a row stay on this side.
    assert '<input type="hidden" name="scope" value="key-owner">' in other
    exports = re.findall(r'href="(/console/audit/export\.(?:csv|jsonl)\?[^"]*)"', other)
    assert len(exports) == 2 and all("scope=key-owner" in url and "range=7d" in url for url in exports)
    assert '<a class="button secondary" href="/console/audit/?scope=key-owner">Clear</a>' in other
    principal = re.search(
        r'href="([^"]*)" title="Only the events of arn:aws:iam::444455556666:user/zed"', other
    )
    assert principal is not None and "scope=key-owner" in principal[1]
    # Every key on this side is the reader's: the account filter narrows by the caller's account.
    third = add(caller_arn=f"arn:aws:iam::{THIRD_ACCOUNT}:user/eve", caller_account=THIRD_ACCOUNT)
    assert "Caller&#x27;s account" in other or "Caller's account" in other
    for account_id, shown in ((OTHER_ACCOUNT, theirs), (THIRD_ACCOUNT, third)):
        narrowed = client.get(TRAIL, {**OWNER_SCOPE, "account": account_id}).content.decode()
        assert f"/console/audit/events/{shown.event_id}/" in narrowed
        assert f"/console/audit/events/{({theirs, third} - {shown}).pop().event_id}/" not in narrowed
    # An event's page is reached from either side, and leads back to its own.
    detail = client.get(f"/console/audit/events/{theirs.event_id}/").content.decode()
    assert '<a href="/console/audit/?scope=key-owner">Audit trail</a>' in detail
    assert "scope=key-owner" in detail.split("its events", 1)[0].rsplit("<a href=", 1)[-1]


def test_the_rest_schema_documents_the_scope(admin: Persona) -> None:
    schema = _api(admin).get("/api/schema/", {"format": "json"}).json()
    parameters = schema["paths"]["/api/v1/audit-events"]["get"]["parameters"]
    (scope,) = [parameter for parameter in parameters if parameter["name"] == "scope"]
    assert scope["in"] == "query" and scope["schema"]["enum"] == ["caller", "key-owner"]
    assert "key-owner" in scope["description"]
    fields = schema["components"]["schemas"]["AuditEventOutput"]["properties"]
    assert "scope" in fields


def test_the_owners_own_request_is_never_on_the_key_owners_side(
    console: Callable[..., Client], admin: Persona
) -> None:
    """Its own requests are the account's own side; a derived column that says otherwise is not believed."""
    own = add(key_owner_account=ACCOUNT)  # alice's Encrypt on the account's own key, the column edited
    client = console(admin)
    assert f"/console/audit/events/{own.event_id}/" not in client.get(TRAIL, OWNER_SCOPE).content.decode()
    assert f"/console/audit/events/{own.event_id}/" in client.get(TRAIL).content.decode()
    detail = client.get(f"/console/audit/events/{own.event_id}/").content.decode()
    assert "AKIAEXAMPLE" in detail  # read on its own side: its access key id is the account's own


@pytest.mark.django_db(transaction=True)
def test_a_cross_account_encrypt_over_the_kms_endpoint_reaches_the_key_owner(
    kms_client: Callable[..., Any], admin: Persona
) -> None:
    """boto3 against the live server: the events go through the process's group commit (on PostgreSQL, the
    one-statement batch), which writes the derived column too."""
    key = owners_key()
    partner = partner_app()
    client = kms_client(partner)
    client.encrypt(KeyId=key.arn, Plaintext=b"pay", EncryptionContext={"tenant": "ok"})
    with pytest.raises(ClientError) as refused:
        client.encrypt(KeyId=key.arn, Plaintext=b"pay", EncryptionContext={"tenant": "blocked"})
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    stored = list(AuditEvent.objects.filter(caller_arn=partner.arn, interface="kms").order_by("seq"))
    assert [(e.decision, e.key_owner_account) for e in stored] == [("allowed", ACCOUNT), ("denied", ACCOUNT)]

    rows = _api(admin).get("/api/v1/audit-events", {**OWNER_SCOPE, "key_arn": key.arn}).json()["results"]
    assert [row["event_id"] for row in rows] == [str(e.event_id) for e in reversed(stored)]
    assert [row["decided_by"] for row in rows] == [
        f"statement '{DENYING_SID}' in the key policy",
        f"statement '{ALLOWING_SID}' in the key policy",
    ]
    assert not [name for name in (*PARTNERS_OWN, partner.access_key_id) if name in json.dumps(rows)]


def _plans(work: Callable[[], Any]) -> list[str]:
    """PostgreSQL's plan of every query on the events that `work` runs, as it ran them."""
    with CaptureQueriesContext(connection) as captured:
        work()
    plans = []
    for query in captured.captured_queries:
        if query["sql"].startswith("SELECT") and AuditEvent._meta.db_table in query["sql"]:
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN {query['sql']}")
                plans.append("\n".join(row[0] for row in cursor.fetchall()))
    return plans


def _owner_side_values(index: int, now: datetime) -> dict[str, Any]:
    """One of a trail where other accounts' requests on the reader's keys are a small share (1 in 40), of every
    kind the filters ask for; the rest are the reader's own requests and another account's on its own keys."""
    partner = f"arn:aws:iam::{OTHER_ACCOUNT}:user/zed"
    time = now - timedelta(seconds=index)
    if index % 40:
        if index % 2:
            return event_values(
                time=time, caller_arn=partner, caller_account=OTHER_ACCOUNT, key_arn=PARTNER_KEY
            )
        return event_values(time=time)
    identity = index % 400 == 0
    return event_values(
        time=time,
        caller_arn=partner,
        caller_account=OTHER_ACCOUNT,
        key_arn=KEY_2 if index % 120 == 0 else KEY_1,
        operation="GenerateDataKey" if index % 200 == 0 else "Encrypt",
        decision="denied" if identity else "allowed",
        reason="denied by statement 'Guard' in the identity policy 'guard'" if identity else "allowed",
        decided_by="statement 'Guard' in the identity policy 'guard'" if identity else ALLOW_STATEMENT,
        request_parameters={"KeyId": KEY_1, "EncryptionContext": {"tenant": str(index % 13)}},
    )


@postgresql_only
def test_the_key_owners_side_reads_its_partial_indexes(
    django_assert_num_queries: Any, admin: Persona
) -> None:
    """With a trail where other accounts' requests on the reader's keys are a small share (and statistics that say
    so), every read of the key owner's side is index range scans, never a sequential scan of the events: a page,
    an older page, each filter (the caller's account, key, operation, decision, the "decided by" label and a
    statement, an encryption-context pair), the charts, and the REST list, which pages by seq."""
    now = timezone.now()
    append(_owner_side_values(index, now) for index in range(6000))
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {AuditEvent._meta.db_table}")
        cursor.execute(f"ANALYZE {AuditContextEntry._meta.db_table}")
    events = scope_events(ACCOUNT, Scope.KEY_OWNER)
    assert events.count() == 150

    def first_page(**filters: Any) -> Page:
        query = TrailQuery(since=now - timedelta(days=1), scope=Scope.KEY_OWNER, **filters)
        return page(narrowed(events, resolve(query, account_id=ACCOUNT)))

    found = first_page()
    assert len(found.events) == 50 and found.older is not None
    # Pages in the order of the key owner's partial indexes: no sort.
    for plan in [
        *_plans(first_page),
        *_plans(lambda: first_page(account=OTHER_ACCOUNT)),
        *_plans(lambda: page(events, before=found.older)),
    ]:
        assert "audit_key_owner_time_idx" in plan and "Seq Scan" not in plan and "Sort" not in plan, plan
    label = first_page(decided_by=CALLER_IDENTITY_POLICY)
    assert len(label.events) == 15
    assert {event.decided_by for event in label.events} == {
        "statement 'Guard' in the identity policy 'guard'"
    }
    (plan,) = _plans(lambda: first_page(decided_by=CALLER_IDENTITY_POLICY))
    assert "audit_key_owner_policy_idx" in plan and "Seq Scan" not in plan and "Sort" not in plan, plan
    # The other filters: the key owner's index or the filter's own (column, time, seq) one, never a whole scan of
    # the events (the context pairs here are only the key owner's 150 events' few: read whole, as cheap).
    filters: dict[str, dict[str, str]] = {
        "key": {"key": KEY_2},
        "operation": {"operation": "GenerateDataKey"},
        "decision": {"decision": "denied"},
        "statement": {"decided_by": ALLOW_STATEMENT},
        "context": {"context_key": "tenant", "context_value": "3"},
    }
    for name, values in filters.items():
        assert first_page(**values).events, name
        for plan in _plans(lambda v=values: first_page(**v)):
            assert f"Seq Scan on {AuditEvent._meta.db_table}" not in plan, (name, plan)
            assert re.search(r"Index (Only )?Scan", plan), (name, plan)

    def charts() -> None:
        trail_charts(
            events, since=now - timedelta(days=1), until=now, account_id=ACCOUNT, scope=Scope.KEY_OWNER
        )

    with django_assert_num_queries(4):  # still one query each
        charts()
    for plan in _plans(charts):
        assert "audit_key_owner_" in plan and "Seq Scan" not in plan, plan

    # The REST list, newest first by seq (kmsconsole.api.filters.AuditCursor): the (key_owner_account, seq) index
    # walked back, one page read.
    api = _api(admin)
    with CaptureQueriesContext(connection) as captured:
        listed = api.get("/api/v1/audit-events", OWNER_SCOPE)
    assert listed.status_code == 200 and len(listed.json()["results"]) == 50
    (listing,) = [
        query["sql"]
        for query in captured.captured_queries
        if query["sql"].startswith("SELECT")
        and f'FROM "{AuditEvent._meta.db_table}"' in query["sql"]
        and '"seq" DESC' in query["sql"]
    ]
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {listing}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Scan Backward using audit_key_owner_seq_idx" in plan, plan
    assert "Seq Scan" not in plan and "Sort" not in plan, plan

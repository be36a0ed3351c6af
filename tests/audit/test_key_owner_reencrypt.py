"""ReEncrypt on the two sides of the audit trail, across three accounts: the partner (account A, 444455556666) calls,
re-encrypting between a key of the main account (B, 111122223333, whose admin reads the console) and a key of a third
account (C, 777788889999). A refusal or failure is filed under the key whose check or step failed, with the decision
on that key (keys.services.crypto), so it reaches that key's owner and nobody else; an allowed ReEncrypt is filed
under the destination and its response names the source, whose owner reads it (kmsconsole.audit.scope), without the
destination's statements or the caller's identity policies (kmsconsole.audit.shown)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.test import Client

from keys.models import Key
from keys.services import crypto, deletion, key_policy, lifecycle
from kmsconsole.audit.derived import reindex as reindex_key_owners
from kmsconsole.audit.marks import PENDING_DELETION_USE
from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.scope import (
    Scope,
    event_key_owner,
    key_owner_account,
    scope_events,
    scope_of,
)
from kmsconsole.audit.shown import (
    CALLER_IDENTITY_POLICY,
    DESTINATION_STATEMENT,
    KEY_OWNER_STATEMENT,
)
from kmsconsole.awskms.handlers.crypto import re_encrypt
from kmsconsole.core import errors
from kmsconsole.core.context import RequestMeta
from kmsconsole.operations import perform
from policies.models import Account
from policies.selectors import credentials_for
from tests.api.conftest import make_key
from tests.audit.dashboard_support import ACCOUNT, add
from tests.audit.test_key_owner_scope import (
    OWNER_SCOPE,
    PARTNER_POLICY,
    PARTNER_SID,
    THIRD_ACCOUNT,
    TRAIL,
    _api,
    _export,
    _ids,
    account_with_user,
    partner_app,
)
from tests.conftest import ALLOW_ALL, PARTNER_ACCOUNT, Persona
from tests.grants.conftest import ROOT, allow, policy
from tests.policies.analyzer_support import run_as

pytestmark = pytest.mark.django_db

PARTNER_ROOT = f"arn:aws:iam::{PARTNER_ACCOUNT}:root"
THIRD_ROOT = f"arn:aws:iam::{THIRD_ACCOUNT}:root"
# Each key owner's statement letting the partner in: its own to read, nobody else's.
MAIN_SID = "Main lets the partner re-encrypt"
THIRD_SID = "Third lets the partner re-encrypt"
MAIN_STATEMENT = f"statement '{MAIN_SID}' in the key policy"
THIRD_STATEMENT = f"statement '{THIRD_SID}' in the key policy"
PARTNERS_OWN = (PARTNER_POLICY, PARTNER_SID)
PENDING_SECTION = "Recent uses of keys pending deletion"


@dataclass(frozen=True)
class Three:
    partner: Persona  # A, the caller: kms:* in its identity policy
    third: Persona  # C's administrator
    main_key: Key  # B's
    third_key: Key  # C's

    def blob(self, key: Key) -> bytes:
        """A ciphertext the partner made under `key`."""
        return bytes(
            run_as(
                self.partner,
                "Encrypt",
                lambda ctx: crypto.key_encrypt(ctx=ctx, key_id=key.arn, plaintext=b"payroll"),
            ).blob
        )


def main_key(description: str) -> Key:
    return make_key(
        description,
        policy=policy(ROOT, allow(PARTNER_ROOT, "kms:Encrypt", "kms:ReEncrypt*", sid=MAIN_SID)),
    )


def third_key(third: Persona, description: str) -> Key:
    document = policy(
        allow(THIRD_ROOT, "kms:*", sid="Third's own"),
        allow(PARTNER_ROOT, "kms:Encrypt", "kms:ReEncrypt*", sid=THIRD_SID),
    )
    return run_as(  # type: ignore[no-any-return]
        third,
        "CreateKey",
        lambda ctx: lifecycle.key_create(ctx=ctx, description=description, policy=document),
    )


@pytest.fixture
def three(account: Account) -> Three:
    third = account_with_user(THIRD_ACCOUNT, "third-admin", {"all": ALLOW_ALL})
    return Three(partner_app(), third, main_key("main"), third_key(third, "third"))


def reencrypt(caller: Persona, blob: bytes, source: Key, destination: Key, **extra: Any) -> dict[str, Any]:
    """ReEncrypt through the KMS endpoint's own handler, so the event stores what the endpoint stores."""
    credentials = credentials_for(caller.access_key_id)
    assert credentials is not None
    params = {"CiphertextBlob": blob, "SourceKeyId": source.arn, "DestinationKeyId": destination.arn, **extra}
    return perform(
        "ReEncrypt",
        caller=credentials.caller,
        meta=RequestMeta(interface="kms"),
        params=params,
        service=lambda ctx: re_encrypt(ctx, params),
    )


def last_reencrypt() -> AuditEvent:
    event = AuditEvent.objects.filter(operation="ReEncrypt").order_by("-seq").first()
    assert event is not None
    return event


def seen_by(client: Client, api: Any, events: tuple[AuditEvent, ...]) -> dict[str, set[AuditEvent]]:
    """Where a reader finds the events: each scope's page, export and REST list, and each event's own page."""
    seen: dict[str, set[AuditEvent]] = {}
    for name, params in (("caller", {}), ("key-owner", OWNER_SCOPE)):
        found = _ids(client.get(TRAIL, {**params, "range": "all"}).content.decode(), events)
        found |= _ids(_export(client, "console:audit-export-jsonl", **params), events)
        found |= _ids(api.get("/api/v1/audit-events", params).content.decode(), events)
        seen[name] = found
    seen["detail"] = {
        event
        for event in events
        if client.get(f"{TRAIL}events/{event.event_id}/").status_code != 404
        or api.get(f"/api/v1/audit-events/{event.event_id}").status_code != 404
    }
    return seen


def pending_section(client: Client) -> str:
    overview = client.get("/").content.decode()
    return overview.split(PENDING_SECTION, 1)[1] if PENDING_SECTION in overview else ""


def schedule_deletion(owner: Persona | None, key: Key) -> None:
    run_as(
        owner,
        "ScheduleKeyDeletion",
        lambda ctx: deletion.key_schedule_deletion(ctx=ctx, key_id=key.arn, pending_window_days=7),
    )


def out_of_a_key_pending_deletion(
    three: Three, source: Key, destination: Key, owner: Persona | None
) -> AuditEvent:
    """The partner's refused ReEncrypt out of `source`, which its `owner` scheduled for deletion: the event, filed
    under the source with the decision on it and marked notable."""
    blob = three.blob(source)
    schedule_deletion(owner, source)
    with pytest.raises(errors.KMSInvalidStateException):
        reencrypt(three.partner, blob, source, destination)
    event = last_reencrypt()
    assert (event.key_arn, event.key_owner_account, event.notable) == (
        source.arn,
        source.arn.split(":")[4],
        PENDING_DELETION_USE,
    )
    return event


def test_a_source_pending_deletion_is_filed_under_the_source_for_its_owner_alone(
    console: Callable[..., Client], admin: Persona, three: Three
) -> None:
    """Out of B's key (pending deletion) into C's: the event is B's, with B's decision; C never sees it."""
    event = out_of_a_key_pending_deletion(three, three.main_key, three.third_key, None)
    assert event.decided_by == MAIN_STATEMENT and THIRD_SID not in event.reason  # the decision on the source
    assert three.main_key.arn in event.error_message

    main = seen_by(console(admin), _api(admin), (event,))
    assert main == {"caller": set(), "key-owner": {event}, "detail": {event}}
    shown = _api(admin).get(f"/api/v1/audit-events/{event.event_id}").json()
    assert (shown["scope"], shown["decided_by"], shown["notable"]) == (
        "key-owner",
        MAIN_STATEMENT,
        PENDING_DELETION_USE,
    )
    assert str(three.main_key.key_id) in pending_section(console(admin))
    # C, whose key was only the destination, is shown nothing of B's key or its state.
    third = seen_by(console(three.third), _api(three.third), (event,))
    assert third == {"caller": set(), "key-owner": set(), "detail": set()}
    assert str(three.main_key.key_id) not in pending_section(console(three.third))
    # The partner reads its own request without B's statement named.
    mine = _api(three.partner).get(f"/api/v1/audit-events/{event.event_id}").json()
    assert (mine["scope"], mine["decided_by"]) == ("caller", KEY_OWNER_STATEMENT)


def test_a_third_accounts_source_pending_deletion_is_never_shown_to_the_destinations_owner(
    console: Callable[..., Client], admin: Persona, three: Three
) -> None:
    """Out of C's key (pending deletion) into B's: C reads it, B (the destination's owner) does not."""
    event = out_of_a_key_pending_deletion(three, three.third_key, three.main_key, three.third)
    assert event.decided_by == THIRD_STATEMENT
    assert not scope_events(ACCOUNT, Scope.KEY_OWNER).filter(pk=event.pk).exists()
    main = seen_by(console(admin), _api(admin), (event,))
    assert main == {"caller": set(), "key-owner": set(), "detail": set()}
    assert str(three.third_key.key_id) not in pending_section(console(admin))
    third = seen_by(console(three.third), _api(three.third), (event,))
    assert third == {"caller": set(), "key-owner": {event}, "detail": {event}}
    assert str(three.third_key.key_id) in pending_section(console(three.third))
    detail = console(three.third).get(f"{TRAIL}events/{event.event_id}/").content.decode()
    assert MAIN_SID not in detail and not [name for name in PARTNERS_OWN if name in detail]


def _disable(owner: Persona | None, key: Key) -> None:
    run_as(owner, "DisableKey", lambda ctx: lifecycle.key_disable(ctx=ctx, key_id=key.arn))


@pytest.mark.parametrize(
    ("case", "error", "filed_under"),
    [
        ("source disabled", errors.DisabledException, "source"),
        ("ciphertext of another key", errors.IncorrectKeyException, "source"),
        ("source context differs", errors.InvalidCiphertextException, "source"),
        ("destination disabled", errors.DisabledException, "destination"),
        ("destination pending deletion", errors.KMSInvalidStateException, "destination"),
    ],
)
def test_each_failure_is_filed_under_the_key_it_is_about(
    three: Three, case: str, error: type[errors.KmsError], filed_under: str
) -> None:
    source, destination = three.main_key, three.third_key
    blob = three.blob(source)
    extra: dict[str, Any] = {}
    if case == "source disabled":
        _disable(None, source)
    elif case == "ciphertext of another key":
        blob = three.blob(main_key("another of B's keys"))
    elif case == "source context differs":
        extra = {"SourceEncryptionContext": {"tenant": "not the one"}}
    elif case == "destination disabled":
        _disable(three.third, destination)
    else:
        schedule_deletion(three.third, destination)
    with pytest.raises(error):
        reencrypt(three.partner, blob, source, destination, **extra)
    event = last_reencrypt()
    key, owner, statement = (
        (source, ACCOUNT, MAIN_STATEMENT)
        if filed_under == "source"
        else (destination, THIRD_ACCOUNT, THIRD_STATEMENT)
    )
    assert (event.key_arn, event.key_owner_account, event.decided_by) == (key.arn, owner, statement)
    assert event.notable == (PENDING_DELETION_USE if case.endswith("pending deletion") else "")
    other = THIRD_ACCOUNT if owner == ACCOUNT else ACCOUNT
    assert scope_of(event, owner) is Scope.KEY_OWNER and scope_of(event, other) is None


def test_refusals_are_filed_under_the_key_that_refused(three: Three) -> None:
    """Denied at the source (B's policy no longer lets the partner): B's; denied at the destination: C's."""
    blob = three.blob(three.main_key)
    closed = policy(ROOT, allow(PARTNER_ROOT, "kms:Encrypt", sid=MAIN_SID))
    run_as(
        None,
        "PutKeyPolicy",
        lambda ctx: key_policy.key_policy_put(ctx=ctx, key_id=three.main_key.arn, policy=closed),
    )
    with pytest.raises(errors.AccessDeniedException):
        reencrypt(three.partner, blob, three.main_key, three.third_key)
    denied_at_source = last_reencrypt()
    assert (denied_at_source.key_arn, denied_at_source.key_owner_account) == (three.main_key.arn, ACCOUNT)

    other_blob = three.blob(three.third_key)
    with pytest.raises(errors.AccessDeniedException):
        reencrypt(three.partner, other_blob, three.third_key, three.main_key)
    denied_at_destination = last_reencrypt()
    assert denied_at_destination.key_arn == three.main_key.arn
    assert denied_at_destination.key_owner_account == ACCOUNT
    assert THIRD_SID not in denied_at_destination.reason


def test_an_allowed_reencrypt_out_of_a_key_reaches_the_source_keys_owner(
    console: Callable[..., Client], admin: Persona, three: Three
) -> None:
    """Out of B's key into C's, and into the partner's own key: B reads both (its data left its key), shown
    without C's statements or the partner's identity policies; C, the destination's owner in the first, does not
    (one key owner per event: the source's)."""
    own_key = run_as(three.partner, "CreateKey", lambda ctx: lifecycle.key_create(ctx=ctx, description="own"))
    blob = three.blob(three.main_key)
    into_third = reencrypt(three.partner, blob, three.main_key, three.third_key)
    to_third = last_reencrypt()
    reencrypt(three.partner, blob, three.main_key, own_key)
    to_own = last_reencrypt()
    assert into_third["SourceKeyId"] == three.main_key.arn
    # Stored: filed under the destination with its decision; the chained response names the source.
    assert (to_third.key_arn, to_third.decided_by) == (three.third_key.arn, THIRD_STATEMENT)
    assert to_third.response_elements["SourceKeyId"] == three.main_key.arn
    assert "CiphertextBlob" not in to_third.response_elements
    assert to_own.key_arn == own_key.arn and PARTNER_POLICY in to_own.decided_by
    assert {to_third.key_owner_account, to_own.key_owner_account} == {ACCOUNT}
    events = (to_third, to_own)

    owner = console(admin)
    assert seen_by(owner, _api(admin), events) == {
        "caller": set(),
        "key-owner": set(events),
        "detail": set(events),
    }
    rows = {
        row["event_id"]: row
        for row in _api(admin).get("/api/v1/audit-events", OWNER_SCOPE).json()["results"]
        if row["operation"] == "ReEncrypt"
    }
    assert (rows[str(to_third.event_id)]["decided_by"], rows[str(to_third.event_id)]["reason"]) == (
        DESTINATION_STATEMENT,
        f"allowed: decided by {DESTINATION_STATEMENT}",
    )
    assert rows[str(to_own.event_id)]["decided_by"] == CALLER_IDENTITY_POLICY
    assert {row["access_key_id"] for row in rows.values()} == {""}
    texts = [
        owner.get(TRAIL, {**OWNER_SCOPE, "range": "all"}).content.decode(),
        _export(owner, "console:audit-export-csv", **OWNER_SCOPE),
        _export(owner, "console:audit-export-jsonl", **OWNER_SCOPE),
        *(owner.get(f"{TRAIL}events/{event.event_id}/").content.decode() for event in events),
        _api(admin).get("/api/v1/audit-events", OWNER_SCOPE).content.decode(),
    ]
    for text in texts:
        assert not [name for name in (THIRD_SID, *PARTNERS_OWN, three.partner.access_key_id) if name in text]
    detail = owner.get(f"{TRAIL}events/{to_third.event_id}/").content.decode()
    assert "the event records the decision on the destination key" in detail
    # The label is a filter of its own, and the destination's names match nothing on this side.
    found = owner.get(TRAIL, {**OWNER_SCOPE, "decided_by": DESTINATION_STATEMENT}).content.decode()
    assert _ids(found, events) == {to_third}
    assert not _ids(owner.get(TRAIL, {**OWNER_SCOPE, "decided_by": THIRD_STATEMENT}).content.decode(), events)
    assert _ids(
        owner.get(TRAIL, {**OWNER_SCOPE, "decided_by": CALLER_IDENTITY_POLICY}).content.decode(), events
    ) == {to_own}

    # C owns only the destination of the first: one key owner per event, the source's.
    assert seen_by(console(three.third), _api(three.third), events) == {
        "caller": set(),
        "key-owner": set(),
        "detail": set(),
    }
    # The partner reads both as its own requests, C's statement not named.
    partner = _api(three.partner)
    mine = partner.get(f"/api/v1/audit-events/{to_third.event_id}").json()
    assert (mine["scope"], mine["decided_by"]) == ("caller", KEY_OWNER_STATEMENT)


def test_the_source_rule_and_its_rebuild() -> None:
    a_key = f"arn:aws:kms:us-east-1:{PARTNER_ACCOUNT}:key/a"
    b_key = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/b"
    c_key = f"arn:aws:kms:us-east-1:{THIRD_ACCOUNT}:key/c"
    cases = [
        (c_key, b_key, ACCOUNT),  # B's data into C's key: the source's owner
        (a_key, b_key, ACCOUNT),  # B's data into the caller's own key
        (b_key, a_key, ACCOUNT),  # the caller's data into B's key: the destination's owner
        (a_key, a_key, ""),  # the caller's own keys
        (b_key, "", ACCOUNT),  # no source named (a dry run, or another operation)
    ]
    for key_arn, source, expected in cases:
        assert (
            key_owner_account(key_arn=key_arn, caller_account=PARTNER_ACCOUNT, source_key_arn=source)
            == expected
        )
    values = {
        "key_arn": a_key,
        "caller_account": PARTNER_ACCOUNT,
        "response_elements": {"SourceKeyId": b_key},
    }
    assert event_key_owner({**values, "operation": "ReEncrypt"}) == ACCOUNT
    # Only ReEncrypt's response names a source.
    assert event_key_owner({**values, "operation": "Decrypt"}) == ""

    # Written blank (a process running older code) or edited: rebuilt from the chained response elements.
    event = add(
        operation="ReEncrypt",
        caller_arn=f"arn:aws:iam::{PARTNER_ACCOUNT}:user/app",
        caller_account=PARTNER_ACCOUNT,
        key_arn=a_key,
        response_elements={"SourceKeyId": b_key, "KeyId": a_key},
        key_owner_account="",
    )
    assert scope_of(event, ACCOUNT) is None
    assert reindex_key_owners() == 1
    event.refresh_from_db()
    assert event.key_owner_account == ACCOUNT and scope_of(event, ACCOUNT) is Scope.KEY_OWNER
    assert scope_events(ACCOUNT, Scope.KEY_OWNER).filter(pk=event.pk).exists()
    # A column pointing at an account that owns neither key shows it nothing.
    AuditEvent.objects.filter(pk=event.pk).update(key_owner_account="999999999999")
    assert not scope_events("999999999999", Scope.KEY_OWNER).filter(pk=event.pk).exists()

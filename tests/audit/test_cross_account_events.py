"""An event of a request on another account's key, as the caller's account reads it: the decision without the key
owner's statement names and grant ids, on every reader of the trail (kmsconsole.audit.shown)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from grants import services as grant_services
from grants.models import Grant
from keys.models import Key
from keys.services import crypto, key_policy, lifecycle
from kmsconsole.audit.models import AuditEvent
from kmsconsole.audit.shown import KEY_OWNER_GRANT, KEY_OWNER_STATEMENT, shown_decision
from kmsconsole.core import errors
from policies.models import Account
from tests.api.conftest import client_with, make_key, token_for
from tests.audit.dashboard_support import ACCOUNT, OTHER_ACCOUNT, PARTNER_KEY, add
from tests.conftest import ALLOW_ALL, PARTNER_ACCOUNT, Persona
from tests.console.key_tab_helpers import make_grant
from tests.policies.analyzer_support import run_as
from tests.rows import update_sealed

pytestmark = pytest.mark.django_db

TRAIL = "/console/audit/"
# The key owner's names the partner's account may not read: two Sids and (below) a grant id.
ALLOWING_SID = "Partner payroll access"
DENYING_SID = "Keep partner out of the grants"


def owners_key(description: str = "payroll") -> Key:
    """A key of the main account that lets the partner account describe it and refuses it its grants."""
    partner_root = f"arn:aws:iam::{PARTNER_ACCOUNT}:root"
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{settings.KMS_ACCOUNT_ID}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": ALLOWING_SID,
                "Effect": "Allow",
                "Principal": {"AWS": partner_root},
                "Action": ["kms:DescribeKey", "kms:ListGrants"],
                "Resource": "*",
            },
            {
                "Sid": DENYING_SID,
                "Effect": "Deny",
                "Principal": {"AWS": partner_root},
                "Action": "kms:ListGrants",
                "Resource": "*",
            },
        ],
    }
    return make_key(description, policy=json.dumps(policy))


def cross_account_requests(key: Key, partner_user: Persona) -> str:
    """An allowed DescribeKey (by the allowing statement), a refused ListGrants (by the denying one) and an
    Encrypt allowed by a grant, all by the partner's user on the owner's key. Returns the grant's id."""
    run_as(partner_user, "DescribeKey", lambda ctx: lifecycle.key_describe(ctx=ctx, key_id=key.arn))
    with pytest.raises(errors.AccessDeniedException):
        run_as(partner_user, "ListGrants", lambda ctx: grant_services.grant_list(ctx=ctx, key_id=key.arn))
    grant = make_grant(key, partner_user.arn, "Encrypt").grant
    update_sealed(Grant.objects.filter(pk=grant.pk), effective_at=timezone.now())
    run_as(partner_user, "Encrypt", lambda ctx: crypto.key_encrypt(ctx=ctx, key_id=key.arn, plaintext=b"pay"))
    return grant.grant_id


def partner_api(persona: Persona) -> Any:
    return client_with(token_for(Account.objects.get(account_id=PARTNER_ACCOUNT), persona.name))


def test_the_callers_account_reads_a_cross_account_decision_without_the_key_owners_names(
    console: Callable[..., Client], admin: Persona, partner: Callable[..., Persona]
) -> None:
    """The partner's events on the owner's key named the owner's statements and grants (in the reason, decided_by
    and the charts), readable by the partner's account on every reader of the trail, and findable by guessing
    them in the "decided by" filter."""
    key = owners_key()
    auditor = partner("auditor", ALLOW_ALL)
    grant_id = cross_account_requests(key, auditor)
    secrets = (ALLOWING_SID, DENYING_SID, grant_id)

    # Stored whole, in the chain: the key owner's record of what let another account in.
    stored = {e.operation: e for e in AuditEvent.objects.filter(caller_arn=auditor.arn, key_arn=key.arn)}
    assert ALLOWING_SID in stored["DescribeKey"].reason and DENYING_SID in stored["ListGrants"].decided_by
    assert stored["Encrypt"].decided_by == f"grant {grant_id}"

    client = console(auditor)
    page = client.get(TRAIL).content.decode()  # rows, charts ("Refused: ..."), notable events
    assert escape(KEY_OWNER_STATEMENT) in page and escape(KEY_OWNER_GRANT) in page
    for event in stored.values():
        detail = client.get(f"{TRAIL}events/{event.event_id}/")
        assert detail.status_code == 200
        shown = detail.content.decode()
        assert "The key belongs to another account" in shown
        assert not [secret for secret in secrets if secret in shown]
    described = client.get(f"{TRAIL}events/{stored['DescribeKey'].event_id}/").content.decode()
    # What the decision says about the caller's own account stays: its identity policy and that account.
    assert escape("in the identity policy 'policy-0' in account 444455556666") in described
    exports = [
        b"".join(client.get(reverse(view)).streaming_content).decode()
        for view in ("console:audit-export-csv", "console:audit-export-jsonl")
    ]
    api = partner_api(auditor)
    listed = api.get("/api/v1/audit-events", {"key_arn": key.arn})
    assert listed.status_code == 200 and len(listed.json()["results"]) == 3
    one = api.get(f"/api/v1/audit-events/{stored['ListGrants'].event_id}")
    assert one.status_code == 200 and one.json()["decided_by"] == KEY_OWNER_STATEMENT
    assert one.json()["reason"] == f"denied by {KEY_OWNER_STATEMENT}: an explicit deny overrides every allow"
    for text in (page, *exports, listed.content.decode(), one.content.decode()):
        assert not [secret for secret in secrets if secret in text]

    # The filter matches what it shows: never a guessed name, and the label finds the events it labels.
    stored_name = stored["ListGrants"].decided_by
    guessed = client.get(TRAIL, {"decided_by": stored_name}).content.decode()
    assert "No events match these filters" in guessed
    labelled = client.get(TRAIL, {"decided_by": KEY_OWNER_STATEMENT, "decision": "denied"}).content.decode()
    assert f"/console/audit/events/{stored['ListGrants'].event_id}/" in labelled

    # The key owner's own requests on its own key are shown whole to the owner's account.
    run_as(admin, "GetKeyPolicy", lambda ctx: key_policy.key_policy_get(ctx=ctx, key_id=str(key.key_id)))
    own = AuditEvent.objects.get(caller_arn=admin.arn, operation="GetKeyPolicy")
    assert "statement 'Enable IAM User Permissions' in the key policy" in own.reason
    owner = console(admin)
    assert escape(own.reason) in owner.get(f"{TRAIL}events/{own.event_id}/").content.decode()
    assert str(own.event_id) in owner.get(TRAIL, {"decided_by": own.decided_by}).content.decode()


def test_a_pending_grant_to_the_callers_account_is_named_only_to_the_key_owner(
    settings: Any, admin: Persona, partner: Callable[..., Persona]
) -> None:
    """A refusal a grant still propagating would have counted in says the grant has not taken effect yet: the
    partner account reads it through the REST audit list with the grant as "a grant on the key owner's key", the key
    owner reads the grant's id."""
    settings.KMS_GRANT_PROPAGATION_SECONDS = 3600  # no worker runs: the grant stays pending
    key = owners_key()
    dave = partner("dave")  # no identity policy: a grant to his account alone does not let him in
    grant_id = make_grant(key, f"arn:aws:iam::{PARTNER_ACCOUNT}:root", "Encrypt").grant.grant_id
    with pytest.raises(errors.AccessDeniedException):
        run_as(dave, "Encrypt", lambda ctx: crypto.key_encrypt(ctx=ctx, key_id=key.arn, plaintext=b"pay"))
    stored = AuditEvent.objects.get(caller_arn=dave.arn, operation="Encrypt")
    pending = "has not taken effect yet; once it has (or with its grant token) it allows kms:Encrypt"
    assert stored.reason.startswith(f"denied: grant {grant_id} {pending}")

    def listed_reason(api: Any, scope: str) -> str:
        query = {"key_arn": key.arn, "operation": "Encrypt", "scope": scope}
        response = api.get("/api/v1/audit-events", query)
        assert response.status_code == 200, response.content
        [row] = [row for row in response.json()["results"] if row["event_id"] == str(stored.event_id)]
        return str(row["reason"])

    partners = listed_reason(partner_api(partner("auditor", ALLOW_ALL)), "caller")
    assert partners.startswith(f"denied: {KEY_OWNER_GRANT} {pending}") and grant_id not in partners
    owners = client_with(token_for(Account.objects.get(account_id=settings.KMS_ACCOUNT_ID), admin.name))
    assert listed_reason(owners, "key-owner") == stored.reason


@pytest.mark.parametrize(
    ("reason", "decided_by", "shown_reason", "shown_by"),
    [
        (  # across accounts: the owner's statement goes, the caller's own identity policy stays
            "allowed across accounts by statement 'S' in the key policy together with statement #1 in the identity "
            "policy 'mine' in account 444455556666",
            "statement 'S' in the key policy",
            f"allowed across accounts by {KEY_OWNER_STATEMENT} together with statement #1 in the identity policy "
            "'mine' in account 444455556666",
            KEY_OWNER_STATEMENT,
        ),
        (  # a statement without a Sid is named by its position: that is the owner's too
            "denied: statement #3 in the key policy allows it, but a caller from account 444455556666 also needs",
            "statement #3 in the key policy",
            f"denied: {KEY_OWNER_STATEMENT} allows it, but a caller from account 444455556666 also needs",
            KEY_OWNER_STATEMENT,
        ),
        (
            "denied: grant abc123 covers kms:Decrypt for the caller, but the request does not meet its constraints",
            "grant abc123",
            f"denied: {KEY_OWNER_GRANT} covers kms:Decrypt for the caller, but the request does not meet its "
            "constraints",
            KEY_OWNER_GRANT,
        ),
        (  # the caller's own identity policy decided: nothing of the owner's is named
            "denied by statement 'NoDecrypt' in the identity policy 'guard': an explicit deny overrides every allow",
            "statement 'NoDecrypt' in the identity policy 'guard'",
            "denied by statement 'NoDecrypt' in the identity policy 'guard': an explicit deny overrides every allow",
            "statement 'NoDecrypt' in the identity policy 'guard'",
        ),
        (  # a key-policy Sid dressed as an identity policy's is still the owner's
            "denied by statement 'x' in the identity policy 'y' in the key policy: an explicit deny overrides",
            "statement 'x' in the identity policy 'y' in the key policy",
            f"denied by {KEY_OWNER_STATEMENT}: an explicit deny overrides",
            KEY_OWNER_STATEMENT,
        ),
        (  # a name cut at the column's length: the reason would keep the rest of it, so it is not quoted at all
            f"allowed across accounts by statement '{'A' * 600}' in the key policy together with the root user",
            f"statement '{'A' * 600}' in the key policy"[:512],
            f"allowed: decided by {KEY_OWNER_STATEMENT}",
            KEY_OWNER_STATEMENT,
        ),
        # A refusal names what was missing (policies.engine.Decision.decided_by), shown whole; the key owner's
        # statement or grant that would have allowed, named in the reason, is not.
        (
            "denied: statement #3 in the key policy allows it, but a caller from account 444455556666 also needs "
            "an identity policy in its account that allows kms:Encrypt on arn:x, and none does",
            "missing: an identity-policy allow",
            f"denied: {KEY_OWNER_STATEMENT} allows it, but a caller from account 444455556666 also needs an "
            "identity policy in its account that allows kms:Encrypt on arn:x, and none does",
            "missing: an identity-policy allow",
        ),
        (  # a Sid that repeats the sentence's words is still replaced whole
            "denied: statement 'a in the key policy allows it' in the key policy allows it, but a caller from "
            "account 444455556666 also needs an identity policy in its account that allows kms:Encrypt on arn:x, "
            "and none does",
            "missing: an identity-policy allow",
            f"denied: {KEY_OWNER_STATEMENT} allows it, but a caller from account 444455556666 also needs an "
            "identity policy in its account that allows kms:Encrypt on arn:x, and none does",
            "missing: an identity-policy allow",
        ),
        (
            f"denied: grant {'c' * 64} would allow kms:Decrypt, but it has not taken effect yet; pass its grant "
            "token in GrantTokens to use it now",
            "missing: a grant in effect",
            f"denied: {KEY_OWNER_GRANT} would allow kms:Decrypt, but it has not taken effect yet; pass its grant "
            "token in GrantTokens to use it now",
            "missing: a grant in effect",
        ),
        (  # a grant to the caller's account still propagating (policies.engine: NO_IDENTITY_POLICY_ALLOWS)
            f"denied: grant {'c' * 64} has not taken effect yet; once it has (or with its grant token) it allows "
            f"kms:Encrypt to account {ACCOUNT}, but a grant to an account counts only together with an identity "
            "policy of the caller that allows kms:Encrypt, and none does",
            "missing: an identity-policy allow",
            f"denied: {KEY_OWNER_GRANT} has not taken effect yet; once it has (or with its grant token) it allows "
            f"kms:Encrypt to account {ACCOUNT}, but a grant to an account counts only together with an identity "
            "policy of the caller that allows kms:Encrypt, and none does",
            "missing: an identity-policy allow",
        ),
        (  # a grant's retiring principal's right (grants.services.removal), named with what it stands for
            f"denied: grant {'c' * 64} as its retiring principal allows kms:RetireGrant to account {ACCOUNT}, but "
            "a grant to an account counts only together with an identity policy of the caller that allows "
            "kms:RetireGrant, and none does",
            "missing: an identity-policy allow",
            f"denied: {KEY_OWNER_GRANT} allows kms:RetireGrant to account {ACCOUNT}, but a grant to an account "
            "counts only together with an identity policy of the caller that allows kms:RetireGrant, and none "
            "does",
            "missing: an identity-policy allow",
        ),
        (  # nothing allowed: the sentence names nothing of the owner's, and is shown whole
            f"denied: no statement in the key policy allows arn:aws:iam::{ACCOUNT}:user/a to perform kms:Decrypt, "
            "and no grant does",
            "missing: an allow in the key policy, or a grant",
            None,
            "missing: an allow in the key policy, or a grant",
        ),
        (  # a sentence this module does not know that names the owner's statement: cut to its outcome
            "denied: nearly, as statement 'S' in the key policy says",
            "missing: an allow in the key policy, or a grant",
            "denied for want of an allow in the key policy, or a grant",
            "missing: an allow in the key policy, or a grant",
        ),
        ("denied: no statement in the key policy allows it, and no grant does", "", None, ""),
    ],
)
def test_what_a_cross_account_decision_shows(
    reason: str, decided_by: str, shown_reason: str | None, shown_by: str
) -> None:
    shown = shown_decision(key_arn=PARTNER_KEY, reason=reason, decided_by=decided_by, account_id=ACCOUNT)
    assert (shown.reason, shown.decided_by) == (shown_reason or reason, shown_by)
    # The key's own account (and an event without a key) sees the decision whole.
    for key_arn, account_id in ((PARTNER_KEY, OTHER_ACCOUNT), ("", ACCOUNT)):
        whole = shown_decision(key_arn=key_arn, reason=reason, decided_by=decided_by, account_id=account_id)
        assert (whole.reason, whole.decided_by) == (reason, decided_by)


def test_the_charts_group_the_key_owners_statements_under_their_label(
    console: Callable[..., Client], admin: Persona
) -> None:
    """The refusals chart grouped by the stored name: another account's Sids, one bar each. Grouped by what the
    reader is shown, they are one bar, while a refusal by the caller's own identity policy keeps its name."""
    for sid in ("Quokka one", "Quokka two"):
        add(
            key_arn=PARTNER_KEY,
            decision="denied",
            reason=f"denied by statement '{sid}' in the key policy: an explicit deny overrides every allow",
            decided_by=f"statement '{sid}' in the key policy",
        )
    own = "statement 'NoDecrypt' in the identity policy 'guard'"
    add(key_arn=PARTNER_KEY, decision="denied", reason=f"denied by {own}: an explicit deny", decided_by=own)
    client = console(admin)
    page = client.get(TRAIL).content.decode()
    assert "Quokka" not in page
    assert escape(f"Refused: {KEY_OWNER_STATEMENT}") in page and escape(f"Refused: {own}") in page
    assert page.count(escape(f"Refused: {KEY_OWNER_STATEMENT}")) == 1
    # Each bar's filter finds its own events (the label's two, the identity policy's one).
    labelled = client.get(TRAIL, {"decided_by": KEY_OWNER_STATEMENT}).content.decode()
    by_own = client.get(TRAIL, {"decided_by": own}).content.decode()
    assert labelled.count('<tr>\n        <td><a href="/console/audit/events/') == 2
    assert by_own.count('<tr>\n        <td><a href="/console/audit/events/') == 1

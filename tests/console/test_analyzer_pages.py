"""The access analyzer's pages (findings of every key, a key's who-can-do-what), the policy simulator, and the
access diff on the key policy editor's review step.

Anonymous is sent to sign in; a principal without permission sees the refusal (audited as denied); the admin sees
the answer (audited with interface "console"); bad input is a 400 with the words beside the field and what was
typed kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from html import unescape
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from keys.models import Key
from policies.models import AccessKey
from tests.conftest import Persona
from tests.console.conftest import audit_events
from tests.policies.analyzer_support import (
    PARTNER_ROOT,
    ROOT,
    ROOT_ARN,
    allow,
    identity_policy,
    make_key,
    policy,
    user_arn,
)

pytestmark = pytest.mark.django_db

Console = Callable[..., Client]


def page(response: Any) -> str:
    return unescape(response.content.decode())


@pytest.fixture
def public_key(admin: Persona) -> Key:
    return make_key(policy(ROOT, allow("*", "kms:DescribeKey", sid="Public")), description="public one")


def simulation(**fields: str) -> dict[str, str]:
    return {"principal": "", "action": "kms:Encrypt", "key": "", **fields}


@pytest.mark.parametrize("name", ["analyzer", "simulator"])
def test_anonymous_is_sent_to_sign_in(name: str) -> None:
    response = Client().get(reverse(f"console:{name}"))
    assert response.status_code == 302 and response["Location"].startswith("/signin/")


def test_anonymous_key_access_is_sent_to_sign_in(public_key: Key) -> None:
    response = Client().get(reverse("console:key-access", args=[public_key.key_id]))
    assert response.status_code == 302 and response["Location"].startswith("/signin/")
    response = Client().post(
        reverse("console:simulator"), simulation(principal=ROOT_ARN, key=str(public_key.key_id))
    )
    assert response.status_code == 302 and response["Location"].startswith("/signin/")


def test_outsider_is_refused_on_every_page(public_key: Key, outsider: Persona, console: Console) -> None:
    client = console(outsider)
    response = client.get(reverse("console:analyzer"))
    assert response.status_code == 403 and "Refused." in page(response)
    assert [event.decision for event in audit_events("kmsconsole:ListFindings")] == ["denied"]
    response = client.get(reverse("console:key-access", args=[public_key.key_id]))
    assert (
        response.status_code == 403
        and "Refused." in page(response)
        and "Who can do what" not in page(response)
    )
    assert [event.decision for event in audit_events("kmsconsole:AnalyzeKeyAccess")] == ["denied"]
    response = client.post(
        reverse("console:simulator"), simulation(principal=outsider.arn, key=str(public_key.key_id))
    )
    assert response.status_code == 403 and 'id="simulation-result"' not in page(response)
    assert [event.decision for event in audit_events("kmsconsole:SimulatePolicy")] == ["denied"]


def test_findings_of_every_key_by_severity(public_key: Key, admin: Persona, console: Console) -> None:
    quiet = make_key(policy(ROOT), description="quiet one")
    client = console(admin)
    body = page(client.get(reverse("console:analyzer")))
    assert "Anyone can use this access" in body and "Automatic rotation is off" in body
    assert "2 keys analysed" in body
    assert reverse("console:key-access", args=[quiet.key_id]) in body
    high = client.get(reverse("console:analyzer"), {"severity": "high"})
    assert high.status_code == 200
    assert "Anyone can use this access" in page(high) and "Automatic rotation is off" not in page(high)
    assert '<option value="high" selected>' in page(high)
    bad = client.get(reverse("console:analyzer"), {"severity": "urgent"})
    assert bad.status_code == 400 and "Severity must be one of high, medium, low." in page(bad)
    # The bad filter was refused after the caller was allowed: a failed request.
    decisions = [event.decision for event in audit_events("kmsconsole:ListFindings")]
    assert decisions == ["allowed", "allowed", "failed"]


def test_findings_page_names_access_keys_due_for_rotation(
    admin: Persona, make_user: Callable[..., Persona], console: Console
) -> None:
    old = make_user("old")
    AccessKey.objects.filter(access_key_id=old.access_key_id).update(
        created_at=timezone.now() - timedelta(days=100)
    )
    body = page(console(admin).get(reverse("console:analyzer")))
    assert "Access keys" in body and f"access key <code>{old.access_key_id}</code>" in body
    assert "An access key has not been used for a long time" in body and old.arn in body


def test_findings_page_says_when_there_are_none(admin: Persona, console: Console) -> None:
    body = page(console(admin).get(reverse("console:analyzer"), {"severity": "low"}))
    assert "No findings of low severity on these keys." in body and "0 keys analysed" in body


def test_a_keys_matrix_routes_and_findings(
    public_key: Key, admin: Persona, console: Console, partner: Callable[..., Persona]
) -> None:
    partner(None)
    key = make_key(policy(ROOT, allow(PARTNER_ROOT, "kms:Decrypt", sid="Partner")))
    response = console(admin).get(reverse("console:key-access", args=[key.key_id]))
    body = page(response)
    assert response.status_code == 200
    assert "Who can do what" in body and '<th scope="col">Decrypt</th>' in body
    assert "User admin" in body and "Account 444455556666 (its principals)" in body and "Anyone (*)" in body
    assert "allowed by statement 'Partner' in the key policy (the caller is its account's root user" in body
    assert "A principal of another account has access" in body

    def simulate_link(arn: str) -> str:
        return f"{reverse('console:simulator')}?principal={arn.replace(':', '%3A')}"  # urlencode keeps /

    # Own principals link to the simulator; another account's cannot be simulated by this caller (not linked).
    assert simulate_link(admin.arn) in body
    assert simulate_link(PARTNER_ROOT) not in body
    assert 'aria-current="page">Who has access</a>' in body
    assert [event.decision for event in audit_events("kmsconsole:AnalyzeKeyAccess")] == ["allowed"]
    # The key policy tab links to it.
    policy_tab = page(console(admin).get(reverse("console:key-policy", args=[key.key_id])))
    assert reverse("console:key-access", args=[key.key_id]) in policy_tab


def test_an_unknown_key_is_not_found(admin: Persona, console: Console) -> None:
    response = console(admin).get(
        reverse("console:key-access", args=["00000000-0000-0000-0000-000000000000"])
    )
    assert response.status_code == 404 and "does not exist" in page(response)


def test_the_simulator_prefills_decides_and_explains(
    public_key: Key, admin: Persona, console: Console, make_user: Callable[..., Persona]
) -> None:
    dev = make_user("dev", identity_policy("kms:Encrypt"))
    client = console(admin)
    form = client.get(
        reverse("console:simulator"), {"principal": dev.arn, "action": "kms:Decrypt", "key": "k"}
    )
    assert form.status_code == 200 and f'value="{dev.arn}"' in page(form)
    assert '<option value="kms:Decrypt" selected>' in page(form)
    key_id = str(public_key.key_id)
    allowed = client.post(
        reverse("console:simulator"),
        simulation(
            principal=dev.arn, key=key_id, encryption_context="dept=fin\napp = web", source_ip="10.0.0.1"
        ),
    )
    body = page(allowed)
    assert allowed.status_code == 200 and 'class="decision allowed">Allowed' in body
    assert "allowed by statement #1 in the identity policy 'policy-0'; it counts because statement" in body
    assert "Every statement and grant the engine looked at" in body
    denied = client.post(
        reverse("console:simulator"), simulation(principal=dev.arn, key=key_id, action="kms:Decrypt")
    )
    assert denied.status_code == 200 and 'class="decision denied">Denied' in page(denied)
    assert "A real request gets" in page(denied)
    events = audit_events("kmsconsole:SimulatePolicy")
    assert [event.decision for event in events] == ["allowed", "allowed"]
    assert events[0].request_parameters["EncryptionContext"] == {"dept": "fin", "app": "web"}


def test_the_simulator_refuses_bad_input_inline_and_keeps_it(
    public_key: Key, admin: Persona, console: Console
) -> None:
    client = console(admin)
    key_id = str(public_key.key_id)
    cases = [
        (simulation(key=key_id), "This field is required."),
        (
            simulation(principal=ROOT_ARN, key=key_id, encryption_context="no-equals-sign"),
            "Write each pair as",
        ),
        (
            simulation(principal=ROOT_ARN, key=key_id, source_ip="somewhere"),
            "Enter a valid IPv4 or IPv6 address.",
        ),
        (simulation(principal=ROOT_ARN, key=key_id, time="tomorrow"), "Enter a valid date/time."),
        (simulation(principal=ROOT_ARN, key=key_id, action="kms:Fly"), "Select a valid choice."),
        (
            simulation(principal=ROOT_ARN, key=key_id, draft_identity_document='{"Statement": []}'),
            "Name the identity policy the draft replaces or adds.",
        ),
    ]
    for fields, message in cases:
        response = client.post(reverse("console:simulator"), fields)
        assert response.status_code == 400, fields
        assert message in page(response), fields
        assert 'class="field-error"' in page(response)
        if fields.get("encryption_context"):
            assert fields["encryption_context"] in page(response)
    assert audit_events("kmsconsole:SimulatePolicy") == []  # refused before any service call
    unknown = client.post(reverse("console:simulator"), simulation(principal=user_arn("ghost"), key=key_id))
    assert unknown.status_code == 404 and f"The principal {user_arn('ghost')} does not exist" in page(unknown)
    malformed = client.post(
        reverse("console:simulator"), simulation(principal=ROOT_ARN, key=key_id, draft_key_policy="{not json")
    )
    assert (
        malformed.status_code == 400 and 'role="alert"' in page(malformed) and "{not json" in page(malformed)
    )


def test_the_simulator_shows_who_a_draft_key_policy_changes(
    public_key: Key, admin: Persona, console: Console, partner: Callable[..., Persona]
) -> None:
    partner(None)
    draft = policy(ROOT, allow(PARTNER_ROOT, "kms:Encrypt", sid="Partner"))
    response = console(admin).post(
        reverse("console:simulator"),
        simulation(principal=admin.arn, key=str(public_key.key_id), draft_key_policy=draft),
    )
    body = page(response)
    assert 'class="decision allowed">Allowed' in body
    assert "Who gains or loses access" in body and "Gain access" in body and "Lose access" in body
    assert "Anyone (*): any principal of any account" in body  # loses DescribeKey
    assert [event.decision for event in audit_events("kmsconsole:AnalyzeKeyAccess")] == ["allowed"]


def test_the_policy_review_shows_who_gains_and_who_loses(
    admin: Persona, console: Console, make_user: Callable[..., Persona]
) -> None:
    make_user("named")
    key = make_key(policy(ROOT, allow(user_arn("named"), "kms:Encrypt", sid="Named")))
    draft = json.dumps(
        json.loads(policy(ROOT, allow(user_arn("named"), "kms:Decrypt", sid="Named"))), indent=2
    )
    response = console(admin).post(reverse("console:key-policy-review", args=[key.key_id]), {"policy": draft})
    body = page(response)
    assert response.status_code == 200 and "Who gains or loses access" in body
    gains = body.split("<h3>Gain access</h3>")[1].split("</table>")[0]
    losses = body.split("<h3>Lose access</h3>")[1].split("</table>")[0]
    assert "kms:Decrypt" in gains and "User named" in gains
    assert "kms:Encrypt" in losses and "allowed by statement 'Named' in the key policy" in losses
    assert [event.decision for event in audit_events("kmsconsole:AnalyzeKeyAccess")] == ["allowed"]
    # Unchanged: nothing to compare.
    same = console(admin).post(
        reverse("console:key-policy-review", args=[key.key_id]), {"policy": key.policy}
    )
    assert "Who gains or loses access" not in page(same)


def test_the_policy_review_without_permission_to_analyze_says_so_and_asks_nothing(
    console: Console, make_user: Callable[..., Persona]
) -> None:
    editor = make_user("editor", identity_policy("kms:GetKeyPolicy", "kms:PutKeyPolicy"))
    key = make_key(policy(ROOT))
    draft = policy(ROOT, allow(editor.arn, "kms:DescribeKey", sid="Read"))
    response = console(editor).post(
        reverse("console:key-policy-review", args=[key.key_id]), {"policy": draft}
    )
    assert response.status_code == 200
    assert "it needs kmsconsole:AnalyzeKeyAccess" in page(response)
    assert audit_events("kmsconsole:AnalyzeKeyAccess") == []


def test_the_policy_review_without_reading_the_keys_tags_says_so_and_asks_nothing(
    console: Console, make_user: Callable[..., Persona]
) -> None:
    """The comparison's results depend on conditions on the key's tags: it also needs kms:ListResourceTags, and
    a caller without it is told so before any attempt (no refused compare in the trail at every review)."""
    editor = make_user(
        "editor",
        identity_policy("kms:GetKeyPolicy", "kms:PutKeyPolicy", "kmsconsole:AnalyzeKeyAccess"),
    )
    key = make_key(policy(ROOT))
    draft = policy(ROOT, allow(editor.arn, "kms:DescribeKey", sid="Read"))
    response = console(editor).post(
        reverse("console:key-policy-review", args=[key.key_id]), {"policy": draft}
    )
    assert response.status_code == 200
    assert "kms:ListResourceTags" in page(response)
    assert "Who gains or loses access" in page(response)
    assert audit_events("kmsconsole:AnalyzeKeyAccess") == []


def test_the_policy_review_without_reading_the_keys_grants_says_so_and_asks_nothing(
    console: Console, make_user: Callable[..., Persona]
) -> None:
    """Grants allow too, and the comparison's routes name them: it also needs kms:ListGrants, and a caller without
    it is told so before any attempt; the key's own analysis (its findings report rotation) needs
    kms:GetKeyRotationStatus as well, and the access page says which read was refused."""
    rules = ("kms:GetKeyPolicy", "kms:PutKeyPolicy", "kms:ListResourceTags", "kmsconsole:AnalyzeKeyAccess")
    editor = make_user("editor", identity_policy(*rules))
    key = make_key(policy(ROOT))
    draft = policy(ROOT, allow(editor.arn, "kms:DescribeKey", sid="Read"))
    response = console(editor).post(
        reverse("console:key-policy-review", args=[key.key_id]), {"policy": draft}
    )
    assert response.status_code == 200
    assert "kms:ListGrants" in page(response) and "it needs kmsconsole:AnalyzeKeyAccess" in page(response)
    assert audit_events("kmsconsole:AnalyzeKeyAccess") == []
    # With the grants, the comparison answers; the key's analysis still needs the rotation status.
    grant_reader = make_user("grant-reader", identity_policy(*rules, "kms:ListGrants"))
    compared = console(grant_reader).post(
        reverse("console:key-policy-review", args=[key.key_id]), {"policy": draft}
    )
    assert "Gain access" in page(compared)
    matrix = console(grant_reader).get(reverse("console:key-access", args=[key.key_id]))
    assert matrix.status_code == 403 and "kms:GetKeyRotationStatus" in page(matrix)
    assert [event.decision for event in audit_events("kmsconsole:AnalyzeKeyAccess")] == ["allowed", "denied"]


def test_another_account_is_shown_without_what_does_not_work_across_accounts(
    admin: Persona, console: Console, partner: Callable[..., Persona]
) -> None:
    partner(None)
    key = make_key(policy(ROOT, allow(PARTNER_ROOT, "kms:*", sid="Partner")))
    body = page(console(admin).get(reverse("console:key-access", args=[key.key_id])))
    partner_routes = body.split(f"<code>{PARTNER_ROOT}</code>", 1)[1].split("</details>", 1)[0]
    lines = partner_routes.split("<tr>")[2:]  # after the header row
    refused = "".join(line for line in lines if "not allowed</span>" in line)
    allowed = "".join(line for line in lines if "not allowed</span>" not in line)
    assert "<code>kms:Encrypt</code>" in allowed and "<code>kms:PutKeyPolicy</code>" not in allowed
    for action in ("PutKeyPolicy", "ScheduleKeyDeletion", "DisableKey", "GetKeyPolicy", "TagResource"):
        assert f"<code>kms:{action}</code>" in refused
    assert "not available across accounts" in refused
    # The findings name only what works across accounts.
    finding = body.split("A principal of another account has access", 1)[1].split("</li>", 1)[0]
    assert "Encrypt" in finding and "PutKeyPolicy" not in finding


def test_a_key_owner_is_shown_other_accounts_without_their_principals_or_identity_policies(
    admin: Persona, console: Console, partner: Callable[..., Persona]
) -> None:
    from tests.policies.analyzer_support import PARTNER_SECRETS, partner_with_secrets

    key = partner_with_secrets(partner)
    body = page(console(admin).get(reverse("console:key-access", args=[key.key_id])))
    assert "Account 444455556666 (its principals)" in body
    assert (
        "allowed by statement 'Partner' in the key policy, together with an identity policy of the caller's account"
        in body
    )
    for secret in PARTNER_SECRETS:
        assert secret not in body, secret
    findings = page(console(admin).get(reverse("console:analyzer")))
    assert "Account 444455556666 (its principals)" in findings
    for secret in PARTNER_SECRETS:
        assert secret not in findings, secret


def test_another_accounts_identity_policy_conditions_are_not_on_the_key_owners_pages(
    admin: Persona, console: Console, partner: Callable[..., Persona]
) -> None:
    from tests.api.test_analyzer import B_CONDITION_SECRETS, conditioned_partner_key

    key = conditioned_partner_key(partner)
    body = page(console(admin).get(reverse("console:key-access", args=[key.key_id])))
    assert "Account 444455556666 (its principals)" in body
    findings = page(console(admin).get(reverse("console:analyzer")))
    for text in (body, findings):
        assert "aws:SourceIp" not in text
        for secret in B_CONDITION_SECRETS:
            assert secret not in text, secret


def _routes_of(body: str, arn: str) -> str:
    return body.split(f"<code>{arn}</code>", 1)[1].split("</details>", 1)[0]


def test_a_principal_refused_only_what_does_not_work_across_accounts_has_no_action(
    admin: Persona, console: Console, partner: Callable[..., Persona]
) -> None:
    """The refusals listed for principals outside the key's account (what does not work across accounts) are not
    ways in: anyone (*), given nothing, has "No action on this key" under them, its summary's count at 0; another
    account with a way in lists both, and is not said to have no action."""
    partner(None)
    key = make_key(policy(ROOT, allow(PARTNER_ROOT, "kms:Encrypt", "kms:PutKeyPolicy", sid="Partner")))
    body = page(console(admin).get(reverse("console:key-access", args=[key.key_id])))
    anyone = _routes_of(body, "*")
    assert anyone.startswith(" · 0 actions</summary>")
    assert "not available across accounts" in anyone and "No action on this key." in anyone
    assert "allowed</span>" not in anyone.replace("not allowed</span>", "")
    both = _routes_of(body, PARTNER_ROOT)
    assert both.startswith(" · 1 action</summary>") and "No action on this key." not in both
    assert "not available across accounts" in both and "<code>kms:Encrypt</code>" in both

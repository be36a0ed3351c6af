"""Every view behind sudo mode, found in the URLconf (not listed by hand), posted without a fresh password: each
ends with the prompt or a refusal and changes nothing, even when a view's change would not stop at its decision
(the console's `run()` fails closed). And the review's regressions: the replay is confirmed once whatever
KMS_SUDO_SECONDS says, carries no password in its body, the prompt shows what is done in full and is recorded,
the decision is taken again after the password, and the original POST's CSRF is checked before anything is kept.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.checks import run_checks
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from keys.models import Alias, Key, KeyPolicyVersion, KeyState
from keys.services import aliases, key_policy, lifecycle, tags
from kmsconsole.audit.models import AuditEvent
from kmsconsole.console import sudo
from kmsconsole.console.dispatch import DECIDED_NOT_STOPPED
from kmsconsole.console.sudo import PENDING, REQUEST_CONFIRMATION, Pending
from kmsconsole.operations import OperationContext, operation
from policies import services as iam
from policies.models import Account, ConsoleIdentity, IamUser
from tests.conftest import Persona, as_operator
from tests.console import key_tab_helpers as keytabs
from tests.console.conftest import audit_events
from tests.console.principals_support import ACCOUNT, POLICY, principals_state, seed_group, seed_policy
from tests.console.test_sudo_completion import SUDO, confirm, prompt_of
from tests.policies.analyzer_support import ROOT, policy

pytestmark = pytest.mark.django_db


def sudo_url_names() -> set[str]:
    """The console URL names whose view is behind `sudo_required`, from the URLconf."""

    def walk(patterns: list[Any], namespace: str) -> Iterator[str]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, pattern.namespace or namespace)
            elif isinstance(pattern, URLPattern) and getattr(pattern.callback, "sudo_required", False):
                yield f"{namespace}:{pattern.name}"

    return set(walk(get_resolver().url_patterns, ""))


@dataclass(frozen=True)
class World:
    key: Key
    other_key: Key
    outsider: Persona
    grant_id: str


@pytest.fixture
def world(admin: Persona, outsider: Persona) -> World:
    key, other_key = keytabs.make_key(), keytabs.make_key()
    as_operator(
        "CreateAlias",
        lambda ctx: aliases.alias_create(ctx=ctx, alias_name="alias/payments", target_key_id=str(key.key_id)),
    )
    as_operator(
        "TagResource",
        lambda ctx: tags.key_tag(
            ctx=ctx, key_id=str(key.key_id), tags=[{"TagKey": "team", "TagValue": "payments"}]
        ),
    )
    second = json.loads(policy(ROOT))
    second["Statement"][0]["Sid"] = "Second"
    as_operator(
        "PutKeyPolicy",
        lambda ctx: key_policy.key_policy_put(ctx=ctx, key_id=str(key.key_id), policy=json.dumps(second)),
    )
    seed_policy(seed_group("devs", "admin"))
    seed_policy(IamUser.objects.get(name="outsider"))
    account = Account.objects.get(account_id=ACCOUNT)
    doomed = as_operator(
        "iam:CreateUser", lambda ctx: iam.user_create(ctx=ctx, account=account, user_name="doomed")
    )
    login = get_user_model().objects.create_user(username="doomed-login")
    ConsoleIdentity.objects.create(login=login, iam_user=doomed)
    grant = keytabs.make_grant(key, outsider.arn, "Encrypt").grant
    return World(key=key, other_key=other_key, outsider=outsider, grant_id=grant.grant_id)


def _k(name: str, *more: Any) -> Callable[[World], str]:
    return lambda w: reverse(name, args=[str(w.key.key_id), *[m(w) if callable(m) else m for m in more]])


def _p(name: str, *args: Any) -> Callable[[World], str]:
    return lambda w: reverse(name, args=[a(w) if callable(a) else a for a in args])


# One request per sudo view: (path, posted fields). A view added behind sudo without a case here fails
# `test_every_sudo_view_has_a_case`.
CASES: dict[str, tuple[Callable[[World], str], Callable[[World], dict[str, Any]]]] = {
    "console:key-disable": (_k("console:key-disable"), lambda w: {}),
    "console:key-schedule-deletion": (
        _k("console:key-schedule-deletion"),
        lambda w: {"pending_window_days": "7", "confirm_key_id": str(w.key.key_id)},
    ),
    "console:key-policy-save": (_k("console:key-policy-save"), lambda w: {"policy": policy(ROOT)}),
    "console:key-policy-restore": (_k("console:key-policy-restore", 1), lambda w: {}),
    "console:key-grant-revoke": (_k("console:key-grant-revoke", lambda w: w.grant_id), lambda w: {}),
    "console:key-grant-create": (
        _k("console:key-grant-create"),
        lambda w: {"grantee_principal": w.outsider.arn, "operations": ["Encrypt"]},
    ),
    "console:key-tag-put": (_k("console:key-tag-put"), lambda w: {"tag_key": "env", "tag_value": "prod"}),
    "console:key-tag-remove": (_k("console:key-tag-remove"), lambda w: {"tag_key": "team"}),
    "console:key-alias-create": (_k("console:key-alias-create"), lambda w: {"alias_name": "alias/new"}),
    "console:key-alias-update": (
        _k("console:key-alias-update"),
        lambda w: {"alias_name": "alias/payments", "target_key_id": str(w.other_key.key_id)},
    ),
    "console:key-alias-delete": (_k("console:key-alias-delete"), lambda w: {"alias_name": "alias/payments"}),
    "console:identity-policy-create": (
        _p("console:identity-policy-create", ACCOUNT, "user", "outsider"),
        lambda w: {"policy_name": "decrypt", "policy": POLICY.replace("kms:Encrypt", "kms:Decrypt")},
    ),
    "console:identity-policy": (
        _p("console:identity-policy", ACCOUNT, "user", "outsider", "encrypt"),
        lambda w: {"policy": POLICY.replace("kms:Encrypt", "kms:Decrypt")},
    ),
    "console:identity-policy-delete": (
        _p("console:identity-policy-delete", ACCOUNT, "group", "devs", "encrypt"),
        lambda w: {},
    ),
    "console:group-member-add": (
        _p("console:group-member-add", ACCOUNT, "devs"),
        lambda w: {"user_name": "doomed"},
    ),
    "console:group-member-remove": (
        _p("console:group-member-remove", ACCOUNT, "devs", "admin"),
        lambda w: {},
    ),
    "console:access-key-create": (_p("console:access-key-create", ACCOUNT, "outsider"), lambda w: {}),
    "console:access-key-status": (
        _p("console:access-key-status", ACCOUNT, "outsider", lambda w: w.outsider.access_key_id),
        lambda w: {"status": "Inactive"},
    ),
    "console:access-key-delete": (
        _p("console:access-key-delete", ACCOUNT, "outsider", lambda w: w.outsider.access_key_id),
        lambda w: {},
    ),
    "console:entity-delete": (_p("console:entity-delete", ACCOUNT, "user", "doomed"), lambda w: {}),
    "console:console-login-delete": (_p("console:console-login-delete", ACCOUNT, "doomed"), lambda w: {}),
}


def state() -> tuple[Any, ...]:
    return (
        principals_state(),
        keytabs.snapshot(),
        sorted(Key.objects.values_list("pk", "state", "policy", "deletion_date", "description"), key=repr),
        KeyPolicyVersion.objects.count(),
        sorted(Alias.objects.values_list("name", "key_id"), key=repr),
        ConsoleIdentity.objects.count(),
        sorted(IamUser.objects.values_list("name", flat=True)),
    )


def changes_since(seq: int) -> list[tuple[str, str]]:
    """Console events after `seq` that allowed something other than a read or the prompt's own record."""
    return [
        (event.operation, event.decision)
        for event in AuditEvent.objects.filter(seq__gt=seq, interface="console").order_by("seq")
        if event.decision == "allowed" and event.operation not in (REQUEST_CONFIRMATION, *READS)
    ]


# Reads a sensitive form does before its change (the grant form reads the key it is for).
READS = ("DescribeKey",)


def last_seq() -> int:
    event = AuditEvent.objects.order_by("-seq").first()
    return event.seq if event else 0


def test_every_sudo_view_has_a_case() -> None:
    found = sudo_url_names()
    assert len(found) >= 20 and found == set(CASES), found ^ set(CASES)
    assert len(sudo.SUDO_VIEWS) >= len(found)


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_sudo_view_without_a_password_asks_and_changes_nothing(
    name: str, world: World, admin: Persona, console: Callable[..., Client]
) -> None:
    path, data = CASES[name][0](world), CASES[name][1](world)
    client = console(admin, sudo=False)
    before, seq = state(), last_seq()
    response = client.post(path, data)
    assert response.status_code == 302 and response["Location"].startswith(f"{SUDO}?"), name
    assert state() == before
    [prompt] = AuditEvent.objects.filter(seq__gt=seq, operation=REQUEST_CONFIRMATION)
    assert (prompt.caller_arn, prompt.decision) == (admin.arn, "allowed")
    assert not operation(prompt.request_parameters["AwaitedOperation"]).read_only  # the change, not a read
    assert changes_since(seq) == []


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_change_that_does_not_stop_at_its_decision_fails_closed(
    name: str,
    world: World,
    admin: Persona,
    console: Callable[..., Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As if a view or service changed something without (or before) the decision that stops it: `run()` sees the
    change return while only deciding, and rolls it back."""
    monkeypatch.setattr(OperationContext, "stop_if_deciding_only", lambda self: None)
    path, data = CASES[name][0](world), CASES[name][1](world)
    client = console(admin, sudo=False)
    before, seq = state(), last_seq()
    response = client.post(path, data)
    assert state() == before, name
    assert not response.get("Location", "").startswith(SUDO) and PENDING not in client.session
    # Failed closed and recorded (a view that fails earlier, as deleting a user with a login does, is refused).
    failed = AuditEvent.objects.filter(seq__gt=seq, decision="failed", error_message=DECIDED_NOT_STOPPED)
    assert failed.exists() or response.status_code >= 400, name


def test_zero_sudo_seconds_asks_every_time_and_the_replay_completes_once(
    console: Callable[..., Client], admin: Persona, settings: Any
) -> None:
    settings.KMS_SUDO_SECONDS = 0
    key = keytabs.make_key()
    client = console(admin, sudo=False)
    prompt = prompt_of(client.post(keytabs.url("key-alias-create", key), {"alias_name": "alias/zero"}))
    done = confirm(client, prompt)
    assert done.status_code == 302 and not done["Location"].startswith(SUDO)
    assert Alias.objects.filter(name="alias/zero").exists()
    assert len(audit_events("kmsconsole:ConfirmPassword")) == 1
    # 0 asks again for the next action.
    again = client.post(keytabs.url("key-alias-create", key), {"alias_name": "alias/zero-2"})
    assert again["Location"].startswith(SUDO)
    assert not Alias.objects.filter(name="alias/zero-2").exists()


@pytest.mark.parametrize(("value", "errors"), [(0, 0), (300, 0), (-1, 1)])
def test_sudo_seconds_is_checked_at_startup(settings: Any, value: int, errors: int) -> None:
    settings.KMS_SUDO_SECONDS = value
    found = [m for m in run_checks(include_deployment_checks=False) if m.id == "kmsconsole.E007"]
    assert len(found) == errors


def test_the_replayed_request_carries_only_the_kept_fields(
    rf: RequestFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    confirmation = rf.post(SUDO, {"password": "typed-to-confirm", "action": "x", "next": "/"})
    pending = Pending(
        id="x",
        login=None,
        at=0,
        path="/p",
        path_info="/p",
        query="",
        fields={"alias_name": ["alias/a"]},
        operation="CreateAlias",
        parameters={},
    )
    request = _replayed_request(confirmation, pending, monkeypatch)
    assert request.body == b"alias_name=alias%2Fa" and b"typed-to-confirm" not in request.body
    assert request.content_type == "application/x-www-form-urlencoded"
    assert request.META["CONTENT_LENGTH"] == str(len(request.body))
    assert request.POST.dict() == {"alias_name": "alias/a"}


def _replayed_request(original: Any, pending: Pending, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The request `replay` hands the view it resolves (a stand-in view that only keeps it)."""
    captured: list[Any] = []

    def view(request: Any) -> HttpResponse:
        captured.append(request)
        return HttpResponse()

    monkeypatch.setattr(sudo, "resolve", lambda path: SimpleNamespace(func=view, args=(), kwargs={}))
    sudo.replay(original, pending)
    return captured[0]


def test_an_empty_field_the_view_does_not_name_is_dropped(
    console: Callable[..., Client], admin: Persona
) -> None:
    """(A field it does not name posted with a value is never kept: test_sudo_completion.py.)"""
    key = keytabs.make_key()
    client = console(admin, sudo=False)
    kept = prompt_of(
        client.post(keytabs.url("key-alias-create", key), {"alias_name": "alias/y", "extra": ""})
    )
    assert "action" in kept and client.session[PENDING]["fields"] == {"alias_name": ["alias/y"]}


def test_the_prompt_shows_a_key_policy_in_full_with_its_diff(
    console: Callable[..., Client], admin: Persona
) -> None:
    key = keytabs.make_key()
    client = console(admin, sudo=False)
    document = json.loads(policy(ROOT))
    document["Statement"].append(
        {
            "Sid": "zzzz-hidden-tail",
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": "kms:*",
            "Resource": "*",
        }
    )
    prompt = prompt_of(client.post(keytabs.url("key-policy-save", key), {"policy": json.dumps(document)}))
    page = client.get(SUDO, prompt).content.decode()
    assert "zzzz-hidden-tail" in page and "…" not in page.split('id="sudo-pending"')[1].split("</div>")[0]
    diff = page.split('id="sudo-policy-diff"')[1]
    assert '<span class="diff-add">+      &quot;Sid&quot;: &quot;zzzz-hidden-tail&quot;,</span>' in diff


def test_each_prompt_is_one_recorded_event_naming_the_awaited_operation(
    console: Callable[..., Client], admin: Persona
) -> None:
    key = keytabs.make_key()
    client = console(admin, sudo=False)
    client.post(keytabs.url("key-tag-put", key), {"tag_key": "env", "tag_value": "prod"})
    [event] = audit_events(REQUEST_CONFIRMATION)
    assert (event.caller_arn, event.decision) == (admin.arn, "allowed")
    assert event.request_parameters["AwaitedOperation"] == "TagResource"
    assert event.request_parameters["AwaitedParameters"]["KeyId"] == str(key.key_id)
    assert not audit_events("TagResource")


def test_the_decision_is_taken_again_after_a_policy_change(
    console: Callable[..., Client], admin: Persona
) -> None:
    key = keytabs.make_key()
    client = console(admin, sudo=False)
    prompt = prompt_of(client.post(reverse("console:key-disable", args=[str(key.key_id)])))
    deny = json.loads(policy(ROOT))
    deny["Statement"].append(
        {
            "Sid": "d",
            "Effect": "Deny",
            "Principal": {"AWS": admin.arn},
            "Action": "kms:DisableKey",
            "Resource": "*",
        }
    )

    def put(ctx: OperationContext) -> Any:
        return key_policy.key_policy_put(ctx=ctx, key_id=str(key.key_id), policy=json.dumps(deny))

    as_operator("PutKeyPolicy", put)
    confirm(client, prompt)
    key.refresh_from_db()
    assert key.state == KeyState.ENABLED
    assert [event.decision for event in audit_events("DisableKey")] == ["denied"]


def test_the_original_posts_csrf_is_checked_before_anything_is_kept(
    console: Callable[..., Client], admin: Persona
) -> None:
    key = keytabs.make_key()
    client = console(admin, sudo=False)
    client.handler.enforce_csrf_checks = True
    response = client.post(keytabs.url("key-alias-create", key), {"alias_name": "alias/csrf0"})
    assert response.status_code == 403 and PENDING not in client.session
    assert not audit_events(REQUEST_CONFIRMATION)


def test_the_keys_state_is_checked_after_the_password(console: Callable[..., Client], admin: Persona) -> None:
    """The chosen boundary (README): the caller's permission for the operation is decided before the password;
    the key's state and other checks after it (disabling a disabled key asks, then does nothing more)."""
    key = keytabs.make_key()
    as_operator("DisableKey", lambda ctx: lifecycle.key_disable(ctx=ctx, key_id=str(key.key_id)))
    client = console(admin, sudo=False)
    prompt = prompt_of(client.post(reverse("console:key-disable", args=[str(key.key_id)])))
    assert confirm(client, prompt).status_code == 302
    assert audit_events("kmsconsole:ConfirmPassword") and audit_events("DisableKey")[-1].decision == "allowed"
    key.refresh_from_db()
    assert key.state == KeyState.DISABLED

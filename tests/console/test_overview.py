"""The overview (GET /): keys by state, keys pending deletion, keys without rotation, recent refusals, uses of keys
pending deletion and worker health; each panel is one audited read, refused on its own."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.http import HttpResponse
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from grants.services.creation import grant_create
from grants.services.propagation import PROPAGATION_SWEEP_JOB
from keys.models import Key, KeyState
from keys.services import aliases, crypto, deletion, lifecycle, rotation
from keys.services.deletion import DELETION_SWEEP_JOB
from keys.services.rotation import ROTATION_SWEEP_JOB
from kmsconsole.api.authentication import user_caller
from kmsconsole.audit.marks import PENDING_DELETION_USE
from kmsconsole.audit.models import AuditEvent
from kmsconsole.console.views.overview import OVERVIEW_KEYS, PANEL_ROWS, time_left
from kmsconsole.core import errors
from kmsconsole.core.context import RequestMeta
from kmsconsole.jobs.models import FAILED_FOR_THE_OPERATOR, JobRun, WorkerHeartbeat
from kmsconsole.operations import perform
from policies.models import IamUser
from tests.api.conftest import make_key
from tests.api.test_key_list import counting
from tests.conftest import ALLOW_ALL, PARTNER_ACCOUNT, Persona, as_operator
from tests.console.conftest import audit_events
from tests.console.principals_support import ACCOUNT
from tests.console.test_keys import BENCH_KEYS, query_cost, seed_benchmark_keys, seed_keys
from tests.grants import conftest as key_policies

pytestmark = pytest.mark.django_db

OVERVIEW_READS = ("ListKeys", "kmsconsole:ListAuditEvents", "kmsconsole:ListJobRuns")


def allow(*actions: str) -> str:
    statement = {"Effect": "Allow", "Action": list(actions), "Resource": "*"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def panel(response: HttpResponse, heading_id: str) -> str:
    """The HTML of the overview panel whose heading has this id."""
    html = response.content.decode()
    found = re.search(rf'<section[^>]*aria-labelledby="{heading_id}">(.*?)</section>', html, re.S)
    assert found, f"no panel {heading_id}"
    return found.group(1)


def body_rows(html: str) -> list[str]:
    tbody = re.search(r"<tbody>(.*?)</tbody>", html, re.S)
    return re.findall(r"<tr>(.*?)</tr>", tbody.group(1), re.S) if tbody else []


def key_id(key: Key) -> str:
    return str(key.key_id)


def schedule_deletion(key: Key, days: int) -> None:
    as_operator(
        "ScheduleKeyDeletion",
        lambda ctx: deletion.key_schedule_deletion(ctx=ctx, key_id=key_id(key), pending_window_days=days),
    )


def encrypt_as(persona: Persona, key: Key) -> None:
    """An SDK's Encrypt as the persona (interface "api"), failing or not (the key by its ARN: the persona may be of
    another account)."""
    user = IamUser.objects.select_related("account").get(
        account__account_id=persona.arn.split(":")[4], name=persona.arn.rsplit("/", 1)[-1]
    )

    def service(ctx: Any) -> dict[str, Any]:
        crypto.key_encrypt(ctx=ctx, key_id=key.arn, plaintext=b"secret")
        return {}

    with contextlib.suppress(errors.KmsError):
        perform(
            "Encrypt",
            caller=user_caller(user),
            meta=RequestMeta(interface="api"),
            params={"KeyId": key_id(key)},
            service=service,
        )


# --- Access ------------------------------------------------------------------------------------------------------


def test_anonymous_is_sent_to_sign_in(client: Client) -> None:
    response = client.get("/")
    assert response.status_code == 302 and response["Location"] == "/signin/?next=/"


def test_post_to_the_root_stays_the_kms_endpoint(console: Callable[..., Client], admin: Persona) -> None:
    response = console(admin).post("/", data="{}", content_type="application/x-amz-json-1.1")
    # The AWS JSON error shape, not the console: an unsigned request is refused by SigV4.
    assert response.status_code == 400 and "__type" in json.loads(response.content)


def test_only_safe_methods_render_the_overview(console: Callable[..., Client], admin: Persona) -> None:
    client = console(admin)
    assert client.head("/").status_code == 200
    assert client.put("/").status_code == 405


def test_an_unlinked_login_sees_the_refusal_page(client: Client, django_user_model: Any) -> None:
    client.force_login(django_user_model.objects.create_user("nobody", password="x" * 20))
    response = client.get("/")
    assert response.status_code == 403 and b"not linked to an IAM principal" in response.content
    assert not AuditEvent.objects.filter(operation__in=OVERVIEW_READS).exists()


# --- The server panel and empty states ---------------------------------------------------------------------------


def test_empty_account_shows_every_panel_empty(console: Callable[..., Client], admin: Persona) -> None:
    response = console(admin).get("/")
    assert response.status_code == 200
    assert f"<code>{admin.arn}</code>".encode() in response.content
    assert b"http://testserver/" in response.content and b"boto3.client" in response.content
    assert "This account has no keys yet." in panel(response, "states-heading")
    assert "No key is scheduled for deletion." in panel(response, "pending-heading")
    assert "This account has no keys yet." in panel(response, "rotation-heading")
    assert "No request has been denied." in panel(response, "denied-heading")
    assert "Nothing has tried to use a key pending deletion." in panel(response, "uses-heading")
    workers = panel(response, "workers-heading")
    assert "No worker has ever reported" in workers
    assert workers.count("Never run") == 5  # every periodic job: deletion, rotation, propagation, audit x2


def test_each_read_is_one_audited_console_operation(console: Callable[..., Client], admin: Persona) -> None:
    console(admin).get("/")
    for operation in OVERVIEW_READS:
        [event] = audit_events(operation)
        assert event.decision == "allowed" and event.caller_arn == admin.arn


# --- Keys ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def keys(admin: Persona) -> dict[str, Key]:
    """Two enabled symmetric keys (one rotating, one with an alias), a disabled one, an RSA key, and three keys
    pending deletion in 7, 30 and 10 days."""
    made = {
        "rotating": make_key("rotating"),
        "plain": make_key("plain"),
        "disabled": make_key("disabled"),
        "rsa": make_key("rsa", key_spec="RSA_2048", key_usage="ENCRYPT_DECRYPT"),
        "soon": make_key("soon"),
        "late": make_key("late"),
        "middle": make_key("middle"),
    }
    as_operator(
        "EnableKeyRotation",
        lambda ctx: rotation.key_rotation_enable(ctx=ctx, key_id=key_id(made["rotating"])),
    )
    as_operator(
        "CreateAlias",
        lambda ctx: aliases.alias_create(
            ctx=ctx, alias_name="alias/payroll", target_key_id=key_id(made["plain"])
        ),
    )
    as_operator("DisableKey", lambda ctx: lifecycle.key_disable(ctx=ctx, key_id=key_id(made["disabled"])))
    schedule_deletion(made["soon"], 7)
    schedule_deletion(made["late"], 30)
    schedule_deletion(made["middle"], 10)
    return {name: Key.objects.get(pk=key.pk) for name, key in made.items()}


def test_keys_are_counted_by_state(
    console: Callable[..., Client], admin: Persona, keys: dict[str, Key]
) -> None:
    states = panel(console(admin).get("/"), "states-heading")
    counted = dict(
        re.findall(r'<span class="badge (\w+)">[\w ]+</span></td>\s*<td>(?:<a[^>]*>)?(\d+)', states)
    )
    assert counted == {KeyState.ENABLED: "3", KeyState.DISABLED: "1", KeyState.PENDING_DELETION: "3"}
    assert re.search(r"All keys</th><td>7<", states)


def test_pending_deletion_lists_the_soonest_first_with_the_time_left(
    console: Callable[..., Client], admin: Persona, keys: dict[str, Key]
) -> None:
    rows = body_rows(panel(console(admin).get("/"), "pending-heading"))
    assert [next(k for k in ("soon", "middle", "late") if key_id(keys[k]) in row) for row in rows] == [
        "soon",
        "middle",
        "late",
    ]
    soon = keys["soon"]
    assert soon.deletion_date is not None
    assert f"{soon.deletion_date:%Y-%m-%d %H:%M:%S}" in rows[0]
    assert re.search(r"<td>(6 days 23 hours|7 days)</td>", rows[0])
    assert re.search(r"<td>(29 days 23 hours|30 days)</td>", rows[2])


def test_pending_deletion_shows_the_soonest_rows_and_says_how_many_there_are(
    console: Callable[..., Client], admin: Persona
) -> None:
    for index in range(PANEL_ROWS + 2):
        schedule_deletion(make_key(f"k{index}"), 7 + index % 20)
    pending = panel(console(admin).get("/"), "pending-heading")
    assert len(body_rows(pending)) == PANEL_ROWS
    assert f"The {PANEL_ROWS} soonest of {PANEL_ROWS + 2} keys pending deletion." in pending


def test_only_symmetric_keys_without_rotation_are_listed_oldest_first(
    console: Callable[..., Client], admin: Persona, keys: dict[str, Key]
) -> None:
    unrotated = panel(console(admin).get("/"), "rotation-heading")
    rows = body_rows(unrotated)
    # Not the rotating key, not the RSA key (it cannot rotate), not the keys pending deletion.
    assert len(rows) == 2
    assert "alias/payroll" in rows[0] and key_id(keys["plain"]) in rows[0] and "Enabled" in rows[0]
    assert key_id(keys["disabled"]) in rows[1] and "Disabled" in rows[1]
    for name in ("rotating", "rsa", "soon", "middle", "late"):
        assert key_id(keys[name]) not in unrotated


def test_every_symmetric_key_rotating_is_an_empty_state(
    console: Callable[..., Client], admin: Persona
) -> None:
    key = make_key("rotating")
    as_operator("EnableKeyRotation", lambda ctx: rotation.key_rotation_enable(ctx=ctx, key_id=key_id(key)))
    assert "Every symmetric key whose rotation status you may read rotates automatically." in panel(
        console(admin).get("/"), "rotation-heading"
    )


def test_the_empty_state_says_keys_pending_deletion_are_not_counted(
    console: Callable[..., Client], admin: Persona
) -> None:
    """The only symmetric key without rotation is pending deletion, so it is not listed: the sentence must not
    claim that every symmetric key rotates."""
    schedule_deletion(make_key("doomed"), 7)
    unrotated = panel(console(admin).get("/"), "rotation-heading")
    assert body_rows(unrotated) == []
    assert "Keys pending deletion are not counted." in unrotated and "imported" not in unrotated


def test_keys_without_rotation_are_listed_only_where_the_caller_may_read_their_rotation_status(
    console: Callable[..., Client], make_user: Callable[..., Persona]
) -> None:
    hidden, shown = make_key("hidden"), make_key("shown")
    statement = {"Effect": "Allow", "Action": "kms:GetKeyRotationStatus", "Resource": shown.arn}
    reader = make_user(
        "reader",
        allow("kms:ListKeys", "kms:DescribeKey"),
        json.dumps({"Version": "2012-10-17", "Statement": [statement]}),
    )
    unrotated = panel(console(reader).get("/"), "rotation-heading")
    [row] = body_rows(unrotated)
    assert key_id(shown) in row and key_id(hidden) not in unrotated
    # kms:ListKeys and kms:DescribeKey: the panel is the same as when every key rotates, and names no key.
    lister = make_user("lister", allow("kms:ListKeys", "kms:DescribeKey"))
    response = console(lister).get("/")
    unrotated = panel(response, "rotation-heading")
    assert "Every symmetric key whose rotation status you may read rotates automatically." in unrotated
    assert key_id(shown) not in unrotated and key_id(hidden) not in unrotated
    assert re.search(r"All keys</th><td>2<", panel(response, "states-heading"))  # ListKeys still counts them
    [event] = audit_events("ListKeys", caller_arn=lister.arn)  # the questions are recorded on its event only
    assert event.decision == "allowed" and not audit_events("GetKeyRotationStatus")


def test_the_key_panels_show_only_keys_the_caller_may_describe(
    console: Callable[..., Client], make_user: Callable[..., Persona], keys: dict[str, Key], settings: Any
) -> None:
    """ListKeys gives key ids only: a key's state, spec, dates (and its deletion date) are DescribeKey's answer, a
    key policy decision that grants may allow, and its aliases ListAliases'. The panels counted, listed and filtered
    every key of the account by them for anyone allowed kms:ListKeys."""
    lister = make_user("lister", allow("kms:ListKeys", "kms:GetKeyRotationStatus"))
    response = console(lister).get("/")
    states = panel(response, "states-heading")
    counted = dict(
        re.findall(r'<span class="badge (\w+)">[\w ]+</span></td>\s*<td>(?:<a[^>]*>)?(\d+)', states)
    )
    assert counted == {KeyState.ENABLED: "0", KeyState.DISABLED: "0", KeyState.PENDING_DELETION: "0"}
    assert re.search(r"needs kms:DescribeKey</td><td>7<", states) and re.search(
        r"All keys</th><td>7<", states
    )
    pending, unrotated = panel(response, "pending-heading"), panel(response, "rotation-heading")
    assert not body_rows(pending) and not body_rows(unrotated)
    for key in keys.values():
        assert key_id(key) not in response.content.decode()
    assert "alias/payroll" not in response.content.decode()

    # A grant allowing DescribeKey makes its key counted and listed, still without its alias (ListAliases).
    settings.KMS_GRANT_PROPAGATION_SECONDS = 0
    as_operator(
        "CreateGrant",
        lambda ctx: grant_create(
            ctx=ctx, key_id=key_id(keys["plain"]), grantee_principal=lister.arn, operations=["DescribeKey"]
        ),
    )
    response = console(lister).get("/")
    states = panel(response, "states-heading")
    counted = dict(
        re.findall(r'<span class="badge (\w+)">[\w ]+</span></td>\s*<td>(?:<a[^>]*>)?(\d+)', states)
    )
    assert counted == {KeyState.ENABLED: "1", KeyState.DISABLED: "0", KeyState.PENDING_DELETION: "0"}
    assert re.search(r"needs kms:DescribeKey</td><td>6<", states)
    assert not body_rows(panel(response, "pending-heading"))
    [unrotated] = body_rows(panel(response, "rotation-heading"))
    assert key_id(keys["plain"]) in unrotated and "alias/payroll" not in unrotated
    # DescribeKey on one key pending deletion (an identity policy the key policy delegates to): that key only.
    soon = {"Effect": "Allow", "Action": "kms:DescribeKey", "Resource": keys["soon"].arn}
    one = make_user("one", allow("kms:ListKeys"), json.dumps({"Version": "2012-10-17", "Statement": [soon]}))
    [pending] = body_rows(panel(console(one).get("/"), "pending-heading"))
    assert key_id(keys["soon"]) in pending and key_id(keys["late"]) not in pending
    with_aliases = make_user(
        "alias-reader",
        allow("kms:ListKeys", "kms:DescribeKey", "kms:ListAliases", "kms:GetKeyRotationStatus"),
    )
    assert "alias/payroll" in panel(console(with_aliases).get("/"), "rotation-heading")
    [event] = audit_events("ListKeys", caller_arn=lister.arn)[-1:]
    assert event.decision == "allowed"
    assert not audit_events("DescribeKey") and not audit_events("ListAliases")


def test_keys_of_another_account_are_not_counted(
    console: Callable[..., Client], admin: Persona, partner: Callable[..., Persona]
) -> None:
    make_key("ours")
    response = console(partner("partner-admin", allow("*"))).get("/")
    assert "This account has no keys yet." in panel(response, "states-heading")


# --- Links to the key list and the key pages ---------------------------------------------------------------------


def test_states_link_to_the_filtered_key_list_and_keys_to_their_pages(
    console: Callable[..., Client], admin: Persona, keys: dict[str, Key]
) -> None:
    response = console(admin).get("/")
    states = panel(response, "states-heading")
    for state in (KeyState.ENABLED, KeyState.DISABLED, KeyState.PENDING_DELETION):
        assert f'href="/console/keys/?state={state}"' in states
    assert f'href="/console/keys/{keys["soon"].key_id}/"' in panel(response, "pending-heading")
    assert f'href="/console/keys/{keys["plain"].key_id}/"' in panel(response, "rotation-heading")


def test_a_state_link_opens_the_key_list_filtered_by_that_state(
    console: Callable[..., Client], admin: Persona, keys: dict[str, Key]
) -> None:
    client = console(admin)
    states = panel(client.get("/"), "states-heading")
    link = re.search(rf'href="([^"]*\?state={KeyState.PENDING_DELETION})"', states)
    assert link is not None
    listing = client.get(link.group(1))
    assert listing.status_code == 200
    for name in ("soon", "middle", "late"):
        assert key_id(keys[name]).encode() in listing.content
    assert key_id(keys["plain"]).encode() not in listing.content


# --- Audit panels -------------------------------------------------------------------------------------------------


def test_recent_denials_show_the_last_ten_newest_first(
    console: Callable[..., Client], admin: Persona, outsider: Persona
) -> None:
    outsider_client = console(outsider)
    for _ in range(4):  # three refused reads per visit: twelve denials
        outsider_client.get("/")
    newest = AuditEvent.objects.filter(decision="denied").order_by("-seq").first()
    assert newest is not None and newest.operation == "kmsconsole:ListJobRuns"

    rows = body_rows(panel(console(admin).get("/"), "denied-heading"))
    assert len(rows) == PANEL_ROWS
    assert outsider.arn in rows[0] and "kmsconsole:ListJobRuns" in rows[0]
    assert "AccessDeniedException" in rows[0]
    assert f"{timezone.localtime(newest.time):%Y-%m-%d %H:%M:%S}" in rows[0]
    assert "kmsconsole:ListAuditEvents" in rows[1] and "ListKeys" in rows[2]


def test_denied_requests_name_the_key(
    console: Callable[..., Client], admin: Persona, outsider: Persona
) -> None:
    key = make_key("guarded")
    encrypt_as(outsider, key)
    rows = body_rows(panel(console(admin).get("/"), "denied-heading"))
    assert "Encrypt" in rows[0] and outsider.arn in rows[0]
    assert f'<a href="/console/keys/{key_id(key)}/"><code>{key_id(key)}</code></a>' in rows[0]


def test_scheduling_the_deletion_of_a_key_pending_deletion_again_is_not_a_use(
    console: Callable[..., Client], admin: Persona
) -> None:
    """A refused ScheduleKeyDeletion (the key is already pending deletion) is its administrator at work, not
    something that depends on the key: not marked, not listed. A refused Encrypt still is."""
    doomed = make_key("doomed")
    schedule_deletion(doomed, 7)
    with pytest.raises(errors.KMSInvalidStateException):
        schedule_deletion(doomed, 7)
    assert AuditEvent.objects.filter(notable=PENDING_DELETION_USE).count() == 0
    assert body_rows(panel(console(admin).get("/"), "uses-heading")) == []

    encrypt_as(admin, doomed)
    [use] = AuditEvent.objects.filter(notable=PENDING_DELETION_USE)
    assert use.operation == "Encrypt"


def test_uses_of_keys_pending_deletion_are_listed(console: Callable[..., Client], admin: Persona) -> None:
    doomed, fine = make_key("doomed"), make_key("fine")
    schedule_deletion(doomed, 7)
    encrypt_as(admin, fine)
    encrypt_as(admin, doomed)
    assert AuditEvent.objects.filter(notable=PENDING_DELETION_USE).count() == 1

    uses = panel(console(admin).get("/"), "uses-heading")
    rows = body_rows(uses)
    assert len(rows) == 1
    assert key_id(doomed) in rows[0] and admin.arn in rows[0] and "KMSInvalidStateException" in rows[0]
    assert key_id(fine) not in uses
    assert "Cancel the deletion if it is needed" in uses


def test_other_accounts_refused_or_using_a_key_pending_deletion_are_listed_for_the_keys_owner(
    console: Callable[..., Client], admin: Persona, partner: Callable[..., Persona]
) -> None:
    """The key owner's side of the trail (kmsconsole.audit.scope): another account's requests on the account's
    keys. The partner may use the shared key, not the guarded one."""
    partner_app = partner("partner-app", ALLOW_ALL)
    partner_root = f"arn:aws:iam::{PARTNER_ACCOUNT}:root"
    shared = make_key(
        "shared",
        policy=key_policies.policy(key_policies.ROOT, key_policies.allow(partner_root, "kms:Encrypt")),
    )
    guarded = make_key("guarded")
    encrypt_as(partner_app, guarded)  # refused by the guarded key's policy
    schedule_deletion(shared, 7)
    encrypt_as(partner_app, shared)  # allowed by the policy, refused by the key's state: notable

    response = console(admin).get("/")
    refused = body_rows(panel(response, "refused-others-heading"))
    assert len(refused) == 1 and partner_app.arn in refused[0] and "AccessDeniedException" in refused[0]
    assert f'<a href="/console/keys/{key_id(guarded)}/"><code>{key_id(guarded)}</code></a>' in refused[0]
    assert partner_app.arn not in panel(
        response, "denied-heading"
    )  # that panel is the account's own requests
    uses = body_rows(panel(response, "uses-heading"))
    assert len(uses) == 1 and partner_app.arn in uses[0] and key_id(shared) in uses[0]
    assert "scope=key-owner&amp;decision=denied" in panel(response, "refused-others-heading")

    # The partner sees its refusal among its own, and nothing on the owner's side: it owns none of these keys.
    theirs = console(partner_app).get("/")
    assert partner_app.arn in panel(theirs, "denied-heading")
    assert "No other account has been refused" in panel(theirs, "refused-others-heading")


# --- Worker health ------------------------------------------------------------------------------------------------


def run(
    job: str,
    started: datetime,
    *,
    finished: bool = True,
    error: str = "",
    processed: int = 0,
    account_id: str = ACCOUNT,
) -> JobRun:
    """A run whose count and error are about `account_id`'s keys (as a sweep records them)."""
    return JobRun.objects.create(
        job=job,
        started_at=started,
        finished_at=started + timedelta(seconds=1) if finished else None,
        error=error,
        processed=processed,
        by_account={account_id: {"processed": processed, "errors": [error] if error else []}},
        counts_by_account=True,
    )


def test_worker_health_shows_heartbeats_and_each_jobs_last_run(
    console: Callable[..., Client], admin: Persona, settings: Any
) -> None:
    settings.KMS_WORKER_STALE_SECONDS = 60
    now = timezone.now()
    WorkerHeartbeat.objects.create(hostname="celery@fresh", seen_at=now - timedelta(seconds=5))
    WorkerHeartbeat.objects.create(hostname="celery@gone", seen_at=now - timedelta(hours=2))
    run(DELETION_SWEEP_JOB, now - timedelta(minutes=5), error="an old failure")
    run(DELETION_SWEEP_JOB, now - timedelta(minutes=1), processed=4)
    run(ROTATION_SWEEP_JOB, now - timedelta(minutes=3))
    run(ROTATION_SWEEP_JOB, now - timedelta(minutes=2), error="NotFoundException: key gone")
    run("some-other-job", now)

    workers = panel(console(admin).get("/"), "workers-heading")
    assert "A worker is running" in workers
    heartbeats, jobs = re.findall(r"<tbody>(.*?)</tbody>", workers, re.S)
    fresh, gone = re.findall(r"<tr>(.*?)</tr>", heartbeats, re.S)
    assert "celery@fresh" in fresh and "Alive" in fresh
    assert "celery@gone" in gone and "Silent" in gone
    deletion_row, rotation_row, propagation_row, verify_row, archive_row = re.findall(
        r"<tr>(.*?)</tr>", jobs, re.S
    )
    assert "verify-audit-chain" in verify_row and "archive-audit-events" in archive_row
    assert DELETION_SWEEP_JOB in deletion_row and "Succeeded" in deletion_row and "<td>4</td>" in deletion_row
    assert "an old failure" not in workers
    assert "Failed" in rotation_row and "NotFoundException: key gone" in rotation_row
    assert PROPAGATION_SWEEP_JOB in propagation_row and "Never run" in propagation_row
    assert "some-other-job" not in workers


def test_worker_health_shows_only_the_callers_share_of_each_run(
    console: Callable[..., Client], admin: Persona, partner: Callable[..., Persona]
) -> None:
    now = timezone.now()
    theirs = f"arn:aws:kms:us-east-1:{PARTNER_ACCOUNT}:key/11111111-1111-1111-1111-111111111111"
    sweep = run(DELETION_SWEEP_JOB, now - timedelta(minutes=1), processed=2, account_id=PARTNER_ACCOUNT)
    sweep.by_account[ACCOUNT] = {"processed": 3, "errors": ["ours went wrong"]}
    sweep.by_account[PARTNER_ACCOUNT]["errors"] = [f"{theirs}: KMSInternalException"]
    sweep.processed, sweep.error = 5, f"ours went wrong; {theirs}: KMSInternalException"
    sweep.save()
    # A run that failed for a reason about no account (or was recorded before runs named their accounts).
    JobRun.objects.create(
        job=ROTATION_SWEEP_JOB,
        started_at=now - timedelta(minutes=2),
        finished_at=now - timedelta(minutes=2),
        processed=7,
        error=f"{theirs}: NotFoundException",
    )
    deletion_row, rotation_row, *_ = body_rows_of_jobs(console(admin).get("/"))
    assert "<td>3</td>" in deletion_row and "ours went wrong" in deletion_row and "Failed" in deletion_row
    assert "Failed" in rotation_row and FAILED_FOR_THE_OPERATOR in rotation_row and "—" in rotation_row
    assert theirs not in deletion_row + rotation_row and "<td>7</td>" not in rotation_row

    partner_admin = partner("partner-admin", allow("kmsconsole:ListJobRuns"))
    deletion_row, *_ = body_rows_of_jobs(console(partner_admin).get("/"))
    assert "<td>2</td>" in deletion_row and theirs in deletion_row and "ours went wrong" not in deletion_row


def body_rows_of_jobs(response: HttpResponse) -> list[str]:
    *_, jobs = re.findall(r"<tbody>(.*?)</tbody>", panel(response, "workers-heading"), re.S)
    return list(re.findall(r"<tr>(.*?)</tr>", jobs, re.S))


def test_a_silent_worker_and_an_unfinished_run_are_flagged(
    console: Callable[..., Client], admin: Persona, settings: Any
) -> None:
    settings.KMS_WORKER_STALE_SECONDS = 30
    now = timezone.now()
    WorkerHeartbeat.objects.create(hostname="celery@quiet", seen_at=now - timedelta(seconds=45))
    run(PROPAGATION_SWEEP_JOB, now - timedelta(minutes=10), finished=False)
    workers = panel(console(admin).get("/"), "workers-heading")
    assert "No worker has reported in the last 30 seconds" in workers
    assert "Running or stopped" in workers and "not recorded" in workers


# --- Refusals, panel by panel -------------------------------------------------------------------------------------


def test_an_outsider_sees_each_panel_refused_and_nothing_else(
    console: Callable[..., Client], outsider: Persona, admin: Persona
) -> None:
    make_key("secret-key")
    response = console(outsider).get("/")
    assert response.status_code == 200
    assert "You are not allowed to list keys." in panel(response, "states-heading")
    assert "You are not allowed to list keys." in panel(response, "pending-heading")
    assert "You are not allowed to list audit events." in panel(response, "denied-heading")
    assert "You are not allowed to list audit events." in panel(response, "uses-heading")
    assert "You are not allowed to list job runs." in panel(response, "workers-heading")
    assert b"secret-key" not in response.content
    for operation in OVERVIEW_READS:
        [event] = audit_events(operation)
        assert event.decision == "denied" and event.caller_arn == outsider.arn


def test_a_principal_allowed_some_reads_sees_those_panels(
    console: Callable[..., Client], make_user: Callable[..., Persona], outsider: Persona
) -> None:
    make_key("visible")
    console(outsider).get("/")  # a denial the key reader may not see
    reader = make_user("key-reader", allow("kms:ListKeys", "kmsconsole:ListJobRuns"))
    response = console(reader).get("/")
    assert re.search(r"All keys</th><td>1<", panel(response, "states-heading"))
    assert "You are not allowed to list audit events." in panel(response, "denied-heading")
    assert outsider.arn not in response.content.decode()
    assert "Never run" in panel(response, "workers-heading")


# --- Cost ---------------------------------------------------------------------------------------------------------


def grow(admin: Persona, outsider_client: Client, round_: int) -> None:
    for index in range(4):
        key = make_key(f"r{round_}-{index}")
        as_operator(
            "CreateAlias",
            lambda ctx, k=key, n=f"alias/r{round_}-{index}": aliases.alias_create(
                ctx=ctx, alias_name=n, target_key_id=key_id(k)
            ),
        )
        if index % 2:
            schedule_deletion(key, 7 + index)
            encrypt_as(admin, key)
        run(DELETION_SWEEP_JOB, timezone.now())
        run(ROTATION_SWEEP_JOB, timezone.now(), error="x")
        WorkerHeartbeat.objects.create(hostname=f"celery@{round_}-{index}", seen_at=timezone.now())
    outsider_client.get("/")


def test_the_overview_costs_a_constant_number_of_queries(
    console: Callable[..., Client],
    admin: Persona,
    outsider: Persona,
    django_assert_max_num_queries: Callable[..., Any],
) -> None:
    client, outsider_client = console(admin), console(outsider)
    client.get("/")  # warm the per-process caches (compiled policies)
    grow(admin, outsider_client, 1)
    with CaptureQueriesContext(connection) as captured:
        assert client.get("/").status_code == 200
    small = len(captured)  # now: the next request clears the connection's query log
    for round_ in range(2, 7):
        grow(admin, outsider_client, round_)
    with django_assert_max_num_queries(small):
        response = client.get("/")
    # The lists are full now (twelve keys pending deletion, eighteen denials, twelve uses of them).
    pending = panel(response, "pending-heading")
    assert len(body_rows(pending)) == PANEL_ROWS and f"The {PANEL_ROWS} soonest of 12 keys" in pending
    assert len(body_rows(panel(response, "denied-heading"))) == PANEL_ROWS
    assert len(body_rows(panel(response, "uses-heading"))) == PANEL_ROWS


def test_the_key_panels_decide_a_bounded_number_of_keys_read_by_the_listing_index(
    console: Callable[..., Client], make_user: Callable[..., Persona]
) -> None:
    """The review measured 1,004 engine decisions per load at 100,000 keys (GetKeyRotationStatus asked about every
    described key, asymmetric and pending deletion ones too) and a window query filtered through the join on the
    account's id, which scanned and sorted every key."""
    seed_keys(OVERVIEW_KEYS + 40)  # mixed specs and states, the account's default key policy
    reader = make_user("reader", allow("kms:ListKeys", "kms:DescribeKey", "kms:GetKeyRotationStatus"))
    client = console(reader)
    client.get("/")  # warm the per-process caches
    with counting() as (decisions, queries):
        assert client.get("/").status_code == 200
    window = Key.objects.order_by("-created_at", "-pk")[:OVERVIEW_KEYS]
    may_rotate = sum(
        1
        for key in window
        if key.key_spec == "SYMMETRIC_DEFAULT"
        and key.origin == "AWS_KMS"
        and key.state != KeyState.PENDING_DELETION
    )
    assert 0 < may_rotate < OVERVIEW_KEYS * 2 // 3
    # The three reads, the ListAliases question, DescribeKey on each key of the window, and GetKeyRotationStatus
    # only on the described keys that can rotate and are not pending deletion.
    assert decisions.count == len(OVERVIEW_READS) + 1 + OVERVIEW_KEYS + may_rotate
    assert (
        len(queries.captured_queries) < 50
    )  # about 45 with the savepoints and the three events, at any size
    # The window and the count filter keys by the account's primary key (the listing index's first column).
    listing = [
        query["sql"]
        for query in queries.captured_queries
        if 'FROM "keys_key"' in query["sql"]
        and ("COUNT(*)" in query["sql"] or f"LIMIT {OVERVIEW_KEYS}" in query["sql"])
    ]
    assert len(listing) == 2
    for sql in listing:
        assert '"keys_key"."account_id" = ' in sql and '"policies_account"."account_id" =' not in sql, sql


@pytest.mark.benchmark
def test_the_overview_at_100000_keys(
    request: pytest.FixtureRequest, console: Callable[..., Client], admin: Persona
) -> None:
    """The root page as the admin (every key described) at 100,000 keys: whole request (best of 3), engine
    decisions, queries, and the key window's and count's own times and plans."""
    seed_benchmark_keys(request)
    client = console(admin)
    client.get("/")
    times = []
    for _ in range(3):
        started = time.perf_counter()
        assert client.get("/").status_code == 200
        times.append((time.perf_counter() - started) * 1000)
    with counting() as (decisions, queries):
        client.get("/")
    keys = [query["sql"] for query in queries.captured_queries if 'FROM "keys_key"' in query["sql"]]
    window = next(sql for sql in keys if f"LIMIT {OVERVIEW_KEYS}" in sql)
    count = next(sql for sql in keys if "COUNT(*)" in sql)
    print(
        f"\nOverview at {BENCH_KEYS:,} keys on {connection.vendor}: {min(times):.1f} ms request (best of 3: "
        f"{', '.join(f'{t:.1f}' for t in times)}), {decisions.count} decisions, {len(queries)} queries"
    )
    for label, sql in (("window", window), ("count", count)):
        query_ms, plan = query_cost(sql)
        print(f"  {label}: {query_ms:.1f} ms\n    {plan}")
    assert decisions.count < len(OVERVIEW_READS) + 1 + 2 * OVERVIEW_KEYS


# --- The countdown ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (7 * 86400, "7 days"),
        (7 * 86400 - 1, "6 days 23 hours"),
        (86400 + 120, "1 day"),
        (3 * 3600 + 12 * 60 + 5, "3 hours 12 minutes"),
        (250, "4 minutes 10 seconds"),
        (1, "1 second"),
        (0, "due now"),
        (-30, "due now"),
    ],
)
def test_time_left(seconds: int, text: str) -> None:
    now = timezone.now()
    assert time_left(now + timedelta(seconds=seconds), now) == text

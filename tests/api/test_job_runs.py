"""GET /api/v1/job-runs (kmsconsole:ListJobRuns): the sweeps run over every account, and each account is shown its
own share of each run (how many of its keys and grants the run processed, what failed there), never another
account's; a failure about no account shows that the run failed, not why. The operator sees every run whole."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from keys.models import Key
from keys.services import deletion, lifecycle
from kmsconsole.api import reads
from kmsconsole.core import errors
from kmsconsole.core.context import RequestMeta, operator_caller
from kmsconsole.jobs.models import FAILED_FOR_THE_OPERATOR, JobRun
from kmsconsole.jobs.runs import job_run
from kmsconsole.operations import perform
from policies.models import Account
from tests.api.conftest import client_with, make_key, token_for
from tests.conftest import ALLOW_ALL, PARTNER_ACCOUNT, Persona, as_operator

pytestmark = pytest.mark.django_db


def key_in(account_id: str, description: str) -> Key:
    """A key of `account_id`, created as the operator acting in that account."""
    holder: dict[str, Key] = {}

    def service(ctx: Any) -> dict[str, Any]:
        holder["key"] = lifecycle.key_create(ctx=ctx, description=description)
        return {}

    perform(
        "CreateKey",
        caller=operator_caller(account_id, "tests"),
        meta=RequestMeta(interface="cli"),
        params={},
        service=service,
    )
    return holder["key"]


def schedule_deletion(key: Key) -> None:
    def service(ctx: Any) -> dict[str, Any]:
        deletion.key_schedule_deletion(ctx=ctx, key_id=str(key.key_id), pending_window_days=7)
        return {}

    perform(
        "ScheduleKeyDeletion",
        caller=operator_caller(key.account.account_id, "tests"),
        meta=RequestMeta(interface="cli"),
        params={},
        service=service,
    )


@pytest.fixture
def sweep(monkeypatch: pytest.MonkeyPatch, partner: Callable[..., Persona]) -> tuple[Key, Key, Key]:
    """A real deletion sweep over three due keys: one of ours destroyed, one of the partner's destroyed, one of
    the partner's failing (its ARN in the run's error)."""
    partner(None)  # the partner account exists
    ours, theirs, failing = make_key("ours"), key_in(PARTNER_ACCOUNT, "theirs"), key_in(PARTNER_ACCOUNT, "x")
    for key in (ours, theirs, failing):
        schedule_deletion(key)
    destroy = deletion.key_destroy

    def flaky(**kwargs: Any) -> Any:
        if kwargs["key_pk"] == failing.pk:
            raise errors.KMSInternalException(f"Could not destroy {kwargs['key_arn']}.")
        return destroy(**kwargs)

    monkeypatch.setattr(deletion, "key_destroy", flaky)
    run = deletion.keys_destroy_due(now=timezone.now() + timedelta(days=8))
    # The run's own record is whole (the operator's): every account's count and failure.
    assert run.processed == 2 and failing.arn in run.error
    return ours, theirs, failing


def only_run(client: Any) -> dict[str, Any]:
    response = client.get("/api/v1/job-runs")
    assert response.status_code == 200
    [row] = response.json()["results"]
    return dict(row)


def test_a_sweep_shows_each_account_its_own_share(
    sweep: tuple[Key, Key, Key], admin_api: Any, partner: Callable[..., Persona]
) -> None:
    _, _, failing = sweep
    ours = only_run(admin_api)
    assert ours["job"] == deletion.DELETION_SWEEP_JOB and ours["finished_at"]
    # One of our keys destroyed; nothing of the partner's failure (its key ARN) reaches us.
    assert (ours["processed"], ours["error"], ours["succeeded"]) == (1, "", True)
    assert PARTNER_ACCOUNT not in str(ours)

    partner("partner-admin", ALLOW_ALL)
    theirs = only_run(
        client_with(token_for(Account.objects.get(account_id=PARTNER_ACCOUNT), "partner-admin"))
    )
    assert theirs["processed"] == 1 and theirs["succeeded"] is False
    assert failing.arn in theirs["error"] and settings.KMS_ACCOUNT_ID not in theirs["error"]


def test_a_failure_about_no_account_says_the_run_failed_not_why(admin_api: Any) -> None:
    secret = "arn:aws:kms:us-east-1:444455556666:key/00000000-0000-0000-0000-000000000000"
    with pytest.raises(errors.KMSInternalException), job_run("verify-audit-chain") as run:
        run.processed += 5  # a count of the whole trail, about no account
        raise errors.KMSInternalException(f"Chain broken near {secret}.")
    # A run recorded before runs were attributed to accounts is treated the same way.
    JobRun.objects.create(
        job="rotate-due-keys",
        started_at=timezone.now() - timedelta(hours=1),
        finished_at=timezone.now() - timedelta(hours=1),
        processed=3,
        error=f"{secret}: NotFoundException",
    )
    rows = admin_api.get("/api/v1/job-runs").json()["results"]
    assert [row["job"] for row in rows] == ["verify-audit-chain", "rotate-due-keys"]
    for row in rows:
        assert row["error"] == FAILED_FOR_THE_OPERATOR and row["succeeded"] is False
        assert row["processed"] is None
    assert secret not in str(rows)


def test_a_count_of_the_whole_trail_is_shown_to_no_account(admin_api: Any) -> None:
    """A job that does not count per account shows no account its count, none or some alike (a 0 shown for an
    idle run and nothing for a busy one told every account whether the whole trail was archived or verified)."""
    for processed in (0, 5):
        with job_run("archive-audit-events") as run:
            run.processed = processed
    rows = admin_api.get("/api/v1/job-runs").json()["results"]
    assert [(row["job"], row["processed"], row["succeeded"]) for row in rows] == [
        ("archive-audit-events", None, True)
    ] * 2
    assert [run.shown_to(None).processed for run in JobRun.objects.order_by("started_at")] == [0, 5]


def test_the_operator_sees_every_run_whole(sweep: tuple[Key, Key, Key]) -> None:
    _, _, failing = sweep

    def work(ctx: Any) -> dict[str, Any]:
        runs = list(reads.job_runs(ctx))
        return {"shown": reads.shown_runs(ctx, runs)}

    [shown] = as_operator("kmsconsole:ListJobRuns", work)["shown"].values()
    assert shown.processed == 2 and failing.arn in shown.error

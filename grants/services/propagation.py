"""The workers' propagation of grants: the task enqueued after commit, one grant's step (made effective, or its
delayed removal completed), and the beat sweeper over every due grant."""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial
from typing import Any

from django.db import transaction
from django.utils import timezone

from grants.models import Grant
from grants.selectors import due_grant_ids
from kmsconsole.audit.recorder import NothingToDo
from kmsconsole.core import errors
from kmsconsole.core.context import RequestMeta, operator_caller
from kmsconsole.jobs.models import JobRun
from kmsconsole.jobs.runs import describe_error, job_run
from kmsconsole.operations import OperationContext, perform
from policies.authorization import authorize

logger = logging.getLogger(__name__)


# The workers: the service event, the operator name they act under, the sweeper's job name and batch size.
PROPAGATION_EVENT = "PropagateGrant"
PROPAGATION_WORKER = "grant-propagation"
PROPAGATION_SWEEP_JOB = "propagate-due-grants"
PROPAGATION_SWEEP_BATCH = 1000
TOOK_EFFECT = "effective"
REMOVED = "removed"


def _enqueue_propagation(grant_id: str, eta: datetime) -> None:
    """Ask a worker to propagate the grant at `eta`. This only makes it prompt: the sweeper finds the grant by its
    columns anyway, so a broker that is down costs a delay, never the grant."""
    from grants.tasks import propagate_grant  # the tasks module imports this one
    from kmsconsole.celery import publish_or_skip

    if not publish_or_skip(propagate_grant, (grant_id,), eta=eta):
        logger.warning(
            "Could not enqueue the propagation of grant %s; the sweeper will propagate it", grant_id
        )


def _propagate_after_commit(grant_id: str, eta: datetime) -> None:
    transaction.on_commit(partial(_enqueue_propagation, grant_id, eta), robust=True)


def grant_propagate(*, grant_id: str, now: datetime | None = None) -> str | None:
    """The worker's step for one grant: make it effective once due, or delete it once its delayed removal is due.
    Returns what changed, or None when nothing was due (not yet, already done, or the grant is gone). Safe to run
    twice and concurrently: a conditional UPDATE (or DELETE) claims the change, and the loser writes nothing."""
    grant = Grant.objects.select_related("key__account").filter(grant_id=grant_id).first()
    if grant is None:
        return None
    grant.check_row()
    moment = now or timezone.now()
    if grant.removal_requested_at is not None:
        if grant.remove_after is None or grant.remove_after > moment:
            return None
        change = REMOVED
    elif grant.effective_at is None and grant.propagate_after <= moment:
        change = TOOK_EFFECT
    else:
        return None

    def apply(ctx: OperationContext) -> dict[str, Any]:
        authorize(ctx, resource=grant.key.arn)  # the operator: recorded as such
        ctx.audit.key_arn = grant.key.arn
        rows = Grant.objects.filter(pk=grant.pk)
        if change == REMOVED:
            done, _ = rows.filter(remove_after__lte=moment).delete()
        else:
            # The claim writes the grant's new MAC in the same statement (the row was checked when loaded).
            grant.effective_at = moment
            grant.refresh_mac()
            done = rows.filter(
                effective_at__isnull=True, removal_requested_at__isnull=True, propagate_after__lte=moment
            ).update(effective_at=moment, mac=grant.mac)
        if not done:
            raise NothingToDo
        return {"GrantId": grant.grant_id, "Change": change}

    try:
        perform(
            PROPAGATION_EVENT,
            caller=operator_caller(grant.key.account.account_id, PROPAGATION_WORKER),
            meta=RequestMeta(interface="worker"),
            params={"GrantId": grant.grant_id, "Change": change},
            service=apply,
        )
    except NothingToDo:
        return None
    return change


def grants_propagate_due(*, now: datetime | None = None, batch: int = PROPAGATION_SWEEP_BATCH) -> JobRun:
    """The beat sweeper: propagate every grant that is due (its message may have been lost) and complete every
    delayed removal that is due. Leaves a JobRun with how many grants it changed and which failed."""
    with job_run(PROPAGATION_SWEEP_JOB, counts_by_account=True) as run:
        moment = now or timezone.now()
        for grant_id, account_id in due_grant_ids(moment, limit=batch):
            try:
                if grant_propagate(grant_id=grant_id, now=moment):
                    run.count(account_id)
            except errors.KmsError as error:
                run.fail(f"grant {grant_id}: {describe_error(error)}", account_id=account_id)
    return run.run

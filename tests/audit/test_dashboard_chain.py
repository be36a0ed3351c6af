"""The chain's state on the dashboard: the periodic verification records a JobRun and a result, detects an
edited or foreign event, does not mistake concurrent writes for tampering, and answers queued requests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from kmsconsole.audit import tasks, verification
from kmsconsole.audit.models import AuditChainHead, AuditEvent, ChainVerification
from kmsconsole.jobs.models import JobRun
from tests.audit.dashboard_support import append, event_values
from tests.conftest import Persona

pytestmark = pytest.mark.django_db


@pytest.fixture
def trail() -> list[AuditEvent]:
    append(event_values() for _ in range(12))
    return list(AuditEvent.objects.order_by("seq"))


def test_the_periodic_job_records_a_run_and_an_intact_result(trail: list[AuditEvent]) -> None:
    assert tasks.verify_audit_chain() == len(trail)
    run = JobRun.objects.get(job="verify-audit-chain")
    assert (run.processed, run.error, run.succeeded) == (len(trail), "", True)
    result = ChainVerification.objects.get()
    assert (result.trigger, result.status, result.events_verified) == ("periodic", "intact", len(trail))
    assert (result.first_seq, result.last_seq, result.problem_seq) == (1, len(trail), None)


def test_an_edited_event_is_found_and_shown(
    trail: list[AuditEvent], console: Callable[..., Client], admin: Persona
) -> None:
    target = trail[6]
    AuditEvent.objects.filter(pk=target.pk).update(decision="allowed", reason="allowed by nobody")
    tasks.verify_audit_chain()
    result = ChainVerification.objects.get()
    assert (result.status, result.problem_seq, result.problem_event_id) == ("broken", 7, str(target.event_id))
    assert result.problem.startswith("its contents were changed")
    run = JobRun.objects.get(job="verify-audit-chain")
    assert f"Audit chain broken at event #7 ({target.event_id})" in run.error and not run.succeeded

    body = console(admin).get("/console/audit/").content.decode()
    assert "The chain is broken" in body and "at event #7" in body
    assert f'href="/console/audit/events/{target.event_id}/"' in body


def test_an_event_the_service_did_not_write_is_found(trail: list[AuditEvent]) -> None:
    head = AuditChainHead.objects.get()
    AuditEvent.objects.create(
        **{**event_values(), "seq": head.last_seq + 1, "prev_hash": head.last_hash, "hash": "0" * 64}
    )
    result = verification.verify_chain()
    assert result.problem is not None and result.problem.seq == head.last_seq + 1
    assert "beyond the chain head" in result.problem.what


def test_events_written_during_the_walk_are_not_mistaken_for_tampering(
    trail: list[AuditEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk reads the head first: requests that commit meanwhile are verified next, from where it ended."""
    stale = (trail[8].seq, trail[8].hash, "")
    real = verification._head
    calls: list[int] = []

    def head() -> tuple[int, str, str]:
        calls.append(1)
        if len(calls) == 1:  # the head as it was when the walk began, before 3 more requests committed
            from kmsconsole.audit.chain import head_mac

            return stale[0], stale[1], head_mac(stale[0], stale[1])
        return real()

    monkeypatch.setattr(verification, "_head", head)
    result = verification.verify_chain()
    assert result.problem is None and result.verified == len(trail) and result.last_seq == trail[-1].seq
    assert len(calls) == 3  # the first walk, the catch-up walk, and the check that the head stopped


def test_queued_requests_are_answered_by_the_next_run(trail: list[AuditEvent]) -> None:
    asked = ChainVerification.objects.create(
        trigger="on demand", requested_by="x", requested_at=timezone.now()
    )
    tasks.verify_audit_chain()
    asked.refresh_from_db()
    assert (asked.status, asked.events_verified) == ("intact", len(trail))
    # Its own message, arriving late, finds nothing to do.
    assert verification.verify_requested(asked.pk) is None
    last, pending = verification.latest_verification()
    assert last is not None and last.status == "intact" and pending is None


def test_a_run_that_cannot_read_is_an_error_not_a_broken_chain(
    trail: list[AuditEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable(**_: Any) -> Any:
        raise ConnectionError("database went away")

    monkeypatch.setattr(verification, "verify_chain", unreachable)
    with pytest.raises(ConnectionError):
        verification.verify_periodically()
    result = ChainVerification.objects.get()
    assert result.status == "error" and "ConnectionError" in result.problem
    assert JobRun.objects.get(job="verify-audit-chain").error


def test_archiving_during_a_walk_is_not_reported_as_removed_events(
    trail: list[AuditEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retention deletes the oldest events while the walk runs: the walk starts again from the new boundary."""
    from kmsconsole.audit.models import AuditChainBase

    real = verification._walk
    calls: list[int] = []

    def archived_meanwhile(events: Any, head: Any, start: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:  # what retention does between the walk's start and its read of the first rows
            last = trail[4]
            AuditEvent.objects.filter(seq__lte=last.seq).delete()
            AuditChainBase.objects.create(
                pk=1, seq=last.seq, hash=last.hash, mac=verification.base_mac(last.seq, last.hash)
            )
        return real(events, head, start)

    monkeypatch.setattr(verification, "_walk", archived_meanwhile)
    result = verification.verify_chain()
    assert result.problem is None and result.first_seq == trail[5].seq
    assert result.verified == len(trail) - 5

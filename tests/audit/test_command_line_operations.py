"""`manage.py audit verify`, `reindex-context` and `reindex-key-owners` are operations like any other: run
through perform() as the operator, each writes one audit event naming who ran it where; a command-line verify is
kept where the dashboard's chain status and the overview's verification job read it."""

from __future__ import annotations

import io
import os
import pwd
import socket
from collections.abc import Callable

import pytest
from django.core.management import CommandError, call_command

from kmsconsole.audit.dashboard import chain_state
from kmsconsole.audit.models import AuditEvent, ChainVerification
from kmsconsole.audit.verification import COMMAND_LINE, VERIFY_JOB
from kmsconsole.jobs.models import JobRun
from tests.conftest import Persona

pytestmark = pytest.mark.django_db


@pytest.fixture
def trail(make_user: Callable[..., Persona]) -> list[AuditEvent]:
    for name in ("alice", "bob"):
        make_user(name)
    return list(AuditEvent.objects.order_by("seq"))


def audit(*args: str) -> str:
    out = io.StringIO()
    call_command("audit", *args, stdout=out)
    return out.getvalue()


def last_event() -> AuditEvent:
    return AuditEvent.objects.latest("seq")


def test_a_command_line_verify_is_audited_and_shown_where_the_dashboard_reads(
    trail: list[AuditEvent],
) -> None:
    assert f"{len(trail)} events verified" in audit("verify")
    event = last_event()
    assert (event.operation, event.interface, event.decision) == (
        "kmsconsole:VerifyAuditChain",
        "cli",
        "allowed",
    )
    assert event.user_agent.startswith("manage.py audit verify (os-user=")
    verification = ChainVerification.objects.get()
    assert (verification.trigger, verification.status) == (COMMAND_LINE, ChainVerification.Status.INTACT)
    assert verification.requested_by == event.caller_arn
    assert event.response_elements["VerificationId"] == verification.pk
    assert event.response_elements["EventsVerified"] == len(trail)
    assert chain_state().last == verification  # the dashboard's "chain verified"
    run = JobRun.objects.get(job=VERIFY_JOB)  # the overview's verification job
    assert run.finished_at is not None and run.processed == len(trail) and not run.error


def test_a_command_line_verify_of_a_broken_chain_is_kept_as_broken(trail: list[AuditEvent]) -> None:
    target = trail[1]
    AuditEvent.objects.filter(pk=target.pk).update(decision="denied")
    with pytest.raises(CommandError, match=f"event #{target.seq} "):
        audit("verify")
    verification = ChainVerification.objects.get()
    assert (verification.status, verification.problem_seq) == (ChainVerification.Status.BROKEN, target.seq)
    assert chain_state().last == verification
    event = last_event()
    assert (event.operation, event.decision) == ("kmsconsole:VerifyAuditChain", "allowed")
    assert (
        event.response_elements["Status"] == "broken" and event.response_elements["ProblemSeq"] == target.seq
    )
    assert JobRun.objects.get(job=VERIFY_JOB).error


@pytest.mark.parametrize(
    ("action", "operation", "printed"),
    [
        ("reindex-context", "kmsconsole:ReindexAuditContext", "Indexed the encryption contexts of 0 events."),
        ("reindex-key-owners", "kmsconsole:ReindexAuditKeyOwners", "Set the key owner columns of 0 events"),
    ],
)
def test_a_reindex_is_audited(trail: list[AuditEvent], action: str, operation: str, printed: str) -> None:
    before = AuditEvent.objects.count()
    assert printed in audit(action)
    assert AuditEvent.objects.count() == before + 1
    event = last_event()
    assert (event.operation, event.interface, event.decision) == (operation, "cli", "allowed")
    assert event.user_agent.startswith(f"manage.py audit {action} (os-user=")
    assert list(event.response_elements.values()) == [0]
    audit("verify")  # the events they wrote are chained like every other


def test_a_command_line_event_names_the_os_user_the_sudo_user_and_the_host(
    trail: list[AuditEvent], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUDO_USER", "bob")  # anyone can set it: recorded as claimed
    monkeypatch.setenv("USER", "mallory")  # the environment's claim is not the OS user
    audit("reindex-context")
    user_agent = last_event().user_agent
    me = pwd.getpwuid(os.getuid()).pw_name
    assert user_agent == (
        f"manage.py audit reindex-context (os-user={me}; sudo-user(claimed)=bob; host={socket.gethostname()[:64]})"
    )
    monkeypatch.delenv("SUDO_USER")
    audit("reindex-context")
    assert "sudo-user" not in last_event().user_agent


def test_a_verify_whose_event_cannot_be_written_still_reports_and_keeps_the_broken_chain(
    trail: list[AuditEvent],
) -> None:
    """A chain head removed behind the service's back refuses new events (fail closed): the verify's own event is
    not written, but the walk's finding is printed first and kept for the dashboard."""
    from kmsconsole.audit.models import AuditChainHead

    AuditChainHead.objects.all().delete()
    with pytest.raises(CommandError) as raised:
        audit("verify")
    assert str(raised.value).startswith("Audit chain broken at ")
    assert "its audit event could not be written" in str(raised.value)
    verification = ChainVerification.objects.get()
    assert verification.status == ChainVerification.Status.BROKEN and chain_state().last == verification

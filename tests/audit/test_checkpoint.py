"""The audit chain's anchor outside the database (kmsconsole/audit/checkpoint.py): after a verification vouched
for event #N, a database writer can no longer delete the whole trail, or the newest events behind an old genuine
chain head, without `audit verify` naming what went missing; a forged checkpoint file is refused. The periodic
job starts from the checkpoint while a whole walk is recent (kmsconsole/audit/verification.py)."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from kmsconsole.audit.checkpoint import Checkpoint, read_checkpoint
from kmsconsole.audit.checkpoint import _mac as checkpoint_mac
from kmsconsole.audit.models import AuditChainHead, AuditEvent
from kmsconsole.audit.verification import verify_periodically
from policies import services
from tests.conftest import as_operator

pytestmark = pytest.mark.django_db


@pytest.fixture
def checkpoint_file(settings: Any, tmp_path: Path) -> Path:
    settings.KMS_AUDIT_CHECKPOINT_FILE = str(tmp_path / "audit-checkpoint.json")
    return tmp_path / "audit-checkpoint.json"


def add_events(account: Any, count: int, prefix: str) -> None:
    for index in range(count):
        as_operator(
            "iam:CreateGroup",
            lambda ctx, i=index: services.group_create(ctx=ctx, account=account, group_name=f"{prefix}{i}"),
        )


def verify() -> str:
    out = StringIO()
    call_command("audit", "verify", stdout=out)
    return out.getvalue()


def test_a_verification_writes_a_checkpoint_that_only_moves_forward(
    account: Any, checkpoint_file: Path
) -> None:
    add_events(account, 3, "g")
    verify()
    # The checkpoint is the last event walked: the one before the verification's own event (written after it).
    last = AuditEvent.objects.order_by("-seq")[1]
    assert AuditEvent.objects.order_by("-seq").first().operation == "kmsconsole:VerifyAuditChain"  # type: ignore[union-attr]
    checkpoint, problem = read_checkpoint()
    assert problem is None and checkpoint is not None
    assert (checkpoint.seq, checkpoint.hash) == (last.seq, last.hash)  # type: ignore[union-attr]
    assert oct(checkpoint_file.stat().st_mode & 0o777) == "0o600"
    add_events(account, 2, "h")
    verify()
    assert read_checkpoint()[0].seq == last.seq + 3  # type: ignore[union-attr]  # the first verify's event too


def test_wiping_the_whole_trail_is_named(account: Any, checkpoint_file: Path) -> None:
    add_events(account, 3, "g")
    verify()
    # The last event walked (the verification's own event is written after it).
    verified = AuditEvent.objects.order_by("-seq").first().seq - 1  # type: ignore[union-attr]
    AuditEvent.objects.all().delete()
    AuditChainHead.objects.all().delete()
    with pytest.raises(CommandError, match=f"#{verified}.*no longer in the database: events were removed"):
        verify()


def test_an_old_genuine_head_put_back_after_deleting_the_newest_events_is_named(
    account: Any, checkpoint_file: Path
) -> None:
    add_events(account, 2, "g")
    old_head = AuditChainHead.objects.values().get(pk=1)
    add_events(account, 3, "h")
    verify()
    AuditEvent.objects.filter(seq__gt=old_head["last_seq"]).delete()
    AuditChainHead.objects.filter(pk=1).update(**{k: v for k, v in old_head.items() if k != "id"})
    with pytest.raises(CommandError, match="events were removed"):
        verify()


def test_a_forged_checkpoint_is_refused(account: Any, checkpoint_file: Path) -> None:
    add_events(account, 2, "g")
    verify()
    forged = json.loads(checkpoint_file.read_text())
    forged["seq"] = 1
    checkpoint_file.write_text(json.dumps(forged))
    with pytest.raises(CommandError, match=r"checkpoint file .* was altered"):
        verify()


# The periodic job walks only what was written since the checkpoint while a whole walk is recent.


def test_the_periodic_job_walks_only_the_events_since_a_recent_whole_walk(
    account: Any, checkpoint_file: Path
) -> None:
    add_events(account, 4, "g")
    whole = verify_periodically()  # no checkpoint yet: the whole chain
    assert whole.status == "intact" and whole.first_seq == 1
    walked_to = whole.last_seq
    assert read_checkpoint()[0].full_at  # type: ignore[union-attr]
    add_events(account, 2, "h")
    since = verify_periodically()
    assert (since.status, since.first_seq, since.last_seq) == ("intact", walked_to + 1, walked_to + 2)
    assert since.events_verified == 2
    full_at = read_checkpoint()[0].full_at  # type: ignore[union-attr]
    assert read_checkpoint()[0].seq == walked_to + 2 and full_at  # type: ignore[union-attr]
    nothing_new = verify_periodically()
    assert (nothing_new.status, nothing_new.events_verified) == ("intact", 0)
    assert read_checkpoint()[0].full_at == full_at, "an incremental walk does not renew the whole walk's time"  # type: ignore[union-attr]


def test_an_old_event_edited_is_named_by_the_next_whole_walk(
    account: Any, checkpoint_file: Path, settings: Any
) -> None:
    add_events(account, 4, "g")
    verify_periodically()
    AuditEvent.objects.filter(seq=2).update(error_message="edited by a database writer")
    add_events(account, 1, "h")
    # Between whole walks the periodic job looks at the new events only, so it does not see the edit...
    assert verify_periodically().status == "intact"
    # ...but "Verify now" and `audit verify` always walk the whole chain,
    with pytest.raises(CommandError, match="#2"):
        verify()
    # and so does the periodic job once the last whole walk is older than KMS_AUDIT_FULL_VERIFY_SECONDS.
    settings.KMS_AUDIT_FULL_VERIFY_SECONDS = 0
    broken = verify_periodically()
    assert (broken.status, broken.problem_seq, broken.first_seq) == ("broken", 2, 1)


def test_a_new_event_edited_is_named_by_the_incremental_walk(account: Any, checkpoint_file: Path) -> None:
    add_events(account, 3, "g")
    verify_periodically()
    add_events(account, 2, "h")
    last = AuditEvent.objects.order_by("-seq").first().seq  # type: ignore[union-attr]
    AuditEvent.objects.filter(seq=last).update(error_message="edited")
    broken = verify_periodically()
    assert (broken.status, broken.problem_seq) == ("broken", last)


def test_a_checkpoint_without_a_whole_walk_time_means_a_whole_walk(
    account: Any, checkpoint_file: Path
) -> None:
    """A file written before `full_at` existed (MAC over seq and hash only) still verifies, and starts nothing."""
    add_events(account, 3, "g")
    last = AuditEvent.objects.order_by("-seq").first()
    legacy = {"seq": last.seq, "hash": last.hash, "written_at": "2026-11-01T00:00:00+00:00"}  # type: ignore[union-attr]
    legacy["mac"] = checkpoint_mac(Checkpoint(last.seq, last.hash, ""))  # type: ignore[union-attr]
    checkpoint_file.write_text(json.dumps(legacy))
    assert read_checkpoint()[1] is None
    run = verify_periodically()
    assert (run.status, run.first_seq) == ("intact", 1)
    assert read_checkpoint()[0].full_at  # type: ignore[union-attr]

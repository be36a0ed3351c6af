"""The audit chain's anchor outside the database (kmsconsole/audit/checkpoint.py): after a verification vouched
for event #N, a database writer can no longer delete the whole trail, or the newest events behind an old genuine
chain head, without `audit verify` naming what went missing; a forged checkpoint file is refused."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from kmsconsole.audit.checkpoint import read_checkpoint
from kmsconsole.audit.models import AuditChainHead, AuditEvent
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
    last = AuditEvent.objects.order_by("-seq").first()
    checkpoint, problem = read_checkpoint()
    assert problem is None and checkpoint is not None
    assert (checkpoint.seq, checkpoint.hash) == (last.seq, last.hash)  # type: ignore[union-attr]
    assert oct(checkpoint_file.stat().st_mode & 0o777) == "0o600"
    add_events(account, 2, "h")
    verify()
    assert read_checkpoint()[0].seq == last.seq + 2  # type: ignore[union-attr]


def test_wiping_the_whole_trail_is_named(account: Any, checkpoint_file: Path) -> None:
    add_events(account, 3, "g")
    verify()
    verified = AuditEvent.objects.order_by("-seq").first().seq  # type: ignore[union-attr]
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

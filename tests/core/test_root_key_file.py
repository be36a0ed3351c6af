"""The key file as `manage.py rootkey rotate` and `retire` rewrite it (kmsconsole.core.rootkey_rotation): its
owner and mode kept, written atomically under the folder lock, and nothing audited for a rewrite that did not
happen."""

from __future__ import annotations

import os
import secrets
import stat
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from keys.crypto.sealing import root_key_id
from kmsconsole.audit.models import AuditEvent
from kmsconsole.core import errors, rootkey_dependents, rootkey_rotation
from kmsconsole.core.rootkey import root_keys
from kmsconsole.core.rootkey_rotation import write_key_file
from tests.conftest import RootKeyFile
from tests.core.conftest import Rootkey
from tests.secrets_watch import WATCH

pytestmark = pytest.mark.django_db

SERVICE_USER = 1234


def temporary_files(folder: Path) -> list[str]:
    return [path.name for path in folder.iterdir() if path.name.endswith(".tmp")]


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file another owner needs root")
def test_a_rewrite_by_root_keeps_the_service_users_ownership(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    path.write_text("aa" * 32 + "\n")
    os.chown(path, SERVICE_USER, SERVICE_USER)
    path.chmod(0o640)
    before = path.stat().st_ino
    write_key_file(path, "bb" * 32 + "\n" + "aa" * 32 + "\n")
    found = path.stat()
    assert (found.st_uid, found.st_gid) == (SERVICE_USER, SERVICE_USER)
    assert stat.S_IMODE(found.st_mode) == 0o600
    assert found.st_ino != before, "renamed over, never written in place"
    assert path.read_text().startswith("bb" * 32) and not temporary_files(tmp_path)


def test_a_file_that_cannot_keep_its_owner_is_not_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "root.key"
    path.write_text("aa" * 32 + "\n")

    def refused(*args: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(rootkey_rotation.os, "fchown", refused)
    with pytest.raises(errors.KMSInvalidStateException, match="cannot be given the owner"):
        write_key_file(path, "bb" * 32 + "\n")
    assert path.read_text() == "aa" * 32 + "\n" and not temporary_files(tmp_path)


def test_a_rotation_sweeps_the_temporary_files_a_crash_left(
    rootkey: Rootkey, root_key_file: RootKeyFile
) -> None:
    stale = root_key_file.path.parent / f".{root_key_file.path.name}.crashed.tmp"
    stale.write_text("aa" * 32 + "\n")  # every key in full, left by a rewrite that never renamed it
    rootkey("rotate")
    assert not temporary_files(root_key_file.path.parent)


@pytest.mark.django_db(transaction=True)
def test_a_rotation_that_wrote_nothing_is_not_audited_as_allowed(
    root_key_file: RootKeyFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file changes (by hand) while the rotation plans: refused before its event commits, one failed event."""

    def edited_by_hand(ring: Any) -> None:
        WATCH.register("ab" * 32)
        root_key_file.path.write_text("ab" * 32 + "\n" + root_key_file.path.read_text())

    fake = rootkey_dependents.RootKeyDependent(
        name="zz edited", remaining=lambda ring: rootkey_dependents.Remaining(0), stamp=edited_by_hand
    )
    monkeypatch.setitem(rootkey_dependents._DEPENDENTS, fake.name, fake)
    with pytest.raises(CommandError, match="changed while"):
        call_command("rootkey", "rotate", stdout=StringIO())
    events = AuditEvent.objects.filter(operation="kmsconsole:RotateRootKey")
    assert [event.decision for event in events] == ["failed"]
    assert not temporary_files(root_key_file.path.parent)


@pytest.mark.django_db(transaction=True)
def test_a_rename_failing_after_the_commit_is_told_once_and_not_audited_twice(
    root_key_file: RootKeyFile, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    before = root_key_file.path.read_text()

    def full_disk(*args: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(rootkey_rotation.os, "replace", full_disk)
    with pytest.raises(CommandError, match=r"was recorded, but .* was not rewritten as planned"):
        call_command("rootkey", "rotate", stdout=StringIO())
    events = AuditEvent.objects.filter(operation="kmsconsole:RotateRootKey")
    assert [event.decision for event in events] == ["allowed"], "one operation, one event"
    assert root_key_file.path.read_text() == before and not temporary_files(root_key_file.path.parent)
    assert any("rewrite after the audit event committed failed" in r.getMessage() for r in caplog.records)


def test_retire_waits_until_every_process_has_read_the_rotated_file(
    rootkey: Rootkey, root_key_file: RootKeyFile, monkeypatch: pytest.MonkeyPatch
) -> None:
    ended: list[str] = []
    fake = rootkey_dependents.RootKeyDependent(
        name="zz unmovable",
        remaining=lambda ring: rootkey_dependents.Remaining(0 if ended else 1, "revoked", movable=False),
        end_unmovable=lambda ring: ended.append("ended") or 1,
    )
    monkeypatch.setitem(rootkey_dependents._DEPENDENTS, fake.name, fake)
    monkeypatch.setattr(rootkey_rotation, "RETIRE_SETTLE_SECONDS", 60.0)
    rootkey("rotate")
    rootkey("reseal")
    with pytest.raises(CommandError, match=r"rewritten less than 60 seconds ago.*retire again from 20"):
        rootkey("retire", "--end-unmovable")
    assert not ended and root_keys().previous
    assert not AuditEvent.objects.filter(operation="kmsconsole:RetireRootKeys", decision="allowed").exists()

    rewritten = root_key_file.path.stat().st_mtime
    os.utime(root_key_file.path, (rewritten - 61, rewritten - 61))  # as a minute later
    assert "Retired root key" in rootkey("retire", "--end-unmovable")
    assert ended and not root_keys().previous


def test_retire_drops_a_hand_written_retired_key_with_no_previous_key(
    rootkey: Rootkey, root_key_file: RootKeyFile
) -> None:
    current, old = root_keys().current.secret.hex(), secrets.token_hex(32)
    root_key_file.write(f"{current}\nretired:{old}\n")
    out = rootkey("retire")
    text = root_key_file.path.read_text()
    old_id = root_key_id(bytes.fromhex(old)).hex()
    assert old not in text and text.splitlines()[1].startswith(f"retired:{old_id}:audit-chain/v1=")
    assert f"Retired root key: {old_id}" in out
    assert "No previous root key to retire" in rootkey("retire")

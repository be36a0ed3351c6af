"""Root-key rotation, the operator's side: rotate, re-seal, status, retire (`manage.py rootkey`).

The procedure (README, "Rotating the root key"):

1. `root_key_rotate`: every dependent's `stamp` under the ring as it is, then a new random key first in the key
   file, the others kept in their order.
2. No restart: every process reads the rewritten file within RECHECK_SECONDS, and at once when it meets something
   under a key it does not have (`kmsconsole.core.rootkey.refresh_root_keys`); until then it seals under the key
   that was current, which stays readable. Only keys in KMS_ROOT_KEY need every process stopped and started
   together.
3. `root_keys_reseal`: every dependent moves what it keeps under a previous key to the current one, in batches;
   idempotent, resumable, safe while the service runs.
4. `root_keys_status`: the ring (ids and roles, never keys) and what each dependent still keeps under a previous
   key.
5. `root_keys_retire`: refused while anything remains (named, with how it moves) and for RETIRE_SETTLE_SECONDS
   after the last rewrite of the file; then every previous key is
   written retired in the file, as its id and audit subkeys only (`RootKey.retire`): it opens and verifies
   nothing but the audit trail written under it, and the key itself is gone from the file.

Only the operator may rotate, re-seal or retire (`Operation.operator_only`; the services check it too), and
only a key file can be rewritten in place: with the keys in KMS_ROOT_KEY the operator edits the variable by hand
(the refusal says how). The folder of the key file is locked from the reading the operation plans on to the
rename (`key_file_held`); the new file (the old one's owner, 0600) is written, fsynced and read back before the
operation's event commits, and only the rename (then an fsync of the folder) is left for after the commit: the
trail never lacks a rotation that happened, and a rename that still fails is logged and told to the operator.
No key is ever logged, audited or printed: only its public id (`RootKey.key_id`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext, suppress
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from keys.crypto.sealing import ROOT_KEY_BYTES, root_key_id
from kmsconsole.core import errors
from kmsconsole.core.durable import fsync_folder
from kmsconsole.core.rootkey import (
    RECHECK_SECONDS,
    RETIRED_PREFIX,
    RootKeyRing,
    encode_root_key,
    parse_root_keys,
    reload_root_keys,
    root_key_path,
    root_keys,
    root_keys_in_environment,
)
from kmsconsole.core.rootkey_dependents import Remaining, RootKeyDependent, dependents
from kmsconsole.core.rootkey_movers import MAX_NAMED
from kmsconsole.operations import OperationContext, require_operator
from policies.authorization import authorize

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 500

# How long after the key file was last rewritten `retire` refuses. Every process reads a rewritten file again
# within RECHECK_SECONDS (5 s, kmsconsole.core.rootkey); until it has, it still seals and MACs under the key that
# was current before, and a transaction that sealed under that key just before the rotation may commit after
# retire has counted what remains. Retiring the key then would make what they wrote unreadable for good. Twelve
# times RECHECK_SECONDS leaves every process time to look, with ample room for the longest request's transaction.
RETIRE_SETTLE_SECONDS = 12 * RECHECK_SECONDS
MAX_BATCH_SIZE = 10_000

NEW_KEY_HINT = "python -c 'import secrets; print(secrets.token_hex(32))'"
ROTATE_BY_HAND = (
    "The root keys are in the KMS_ROOT_KEY environment variable, which this command cannot rewrite. Rotate by "
    f"hand: make a new key ({NEW_KEY_HINT}), set KMS_ROOT_KEY to the new key, a comma, then the keys it holds "
    "now in their order; restart every process together (stop all of web, worker and beat, then start them all: "
    "one on the old value cannot verify what one on the new value writes); then run `manage.py rootkey reseal`. "
    "Alternatively, move the keys into a file named by KMS_ROOT_KEY_FILE (mode 0600), one per line, and let "
    "this command rotate it."
)
RETIRE_BY_HAND = (
    "The root keys are in the KMS_ROOT_KEY environment variable, which this command cannot rewrite. Retire by "
    "hand: once `manage.py rootkey status` shows nothing remaining, write `retired:` before every key but the "
    "first in KMS_ROOT_KEY, and restart every process together (stop all of web, worker and beat, then start "
    "them all)."
)


# --- who may ----------------------------------------------------------------------------------------------


def _authorized(ctx: OperationContext) -> None:
    """The operator, and no one else: refused before any engine is asked, then the one authorization check
    (which records the operator's decision)."""
    require_operator(ctx)
    authorize(ctx, resource="*")


# --- the services -----------------------------------------------------------------------------------------


def root_key_rotate(*, ctx: OperationContext) -> dict[str, Any]:
    """Put a new random root key first in the key file (the others kept, in order), after every dependent's
    `stamp` under the ring as it is. Answers the new and the previous key ids."""
    _authorized(ctx)
    held, ring = _planning(ROTATE_BY_HAND)
    for dependent in dependents():
        dependent.stamp(ring)
    new_key = secrets.token_bytes(ROOT_KEY_BYTES)
    new_id = root_key_id(new_key).hex()

    text = held.text
    rotated = new_key.hex() + "\n" + (text if text.endswith("\n") or not text else text + "\n")
    _prepare(held, rotated, lambda fresh: fresh.current.key_id == new_id)
    return {"CurrentKeyId": new_id, "PreviousKeyIds": [key.key_id for key in ring.readable]}


def root_keys_reseal(*, ctx: OperationContext, batch_size: int = DEFAULT_BATCH_SIZE) -> dict[str, Any]:
    """Move everything every dependent keeps under a previous root key to the current one, `batch_size` items
    per transaction (the operation commits in batches: `Operation.commits_in_batches`). Items that verify under
    no readable key stay as they are and are named (kind and primary key)."""
    _authorized(ctx)
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise errors.ValidationException(f"The batch size must be between 1 and {MAX_BATCH_SIZE}.")
    ring = root_keys()
    report: list[dict[str, Any]] = []
    for dependent in dependents():
        # Batches commit as they go: the counts so far ride on the record, for the failure event if one comes.
        ctx.audit.failure_response = {**_resealed(ring, report), "StoppedIn": dependent.name}
        moved = dependent.reseal(ring, batch_size)
        report.append(
            {
                "Name": dependent.name,
                "Moved": moved.moved,
                "Failed": len(moved.failed),
                "FailedItems": list(moved.failed[:MAX_NAMED]),
            }
        )
    ctx.audit.failure_response = None
    return _resealed(ring, report)


def _resealed(ring: RootKeyRing, report: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "CurrentKeyId": ring.current.key_id,
        "Moved": sum(entry["Moved"] for entry in report),
        "Failed": sum(entry["Failed"] for entry in report),
        "Dependents": list(report),
    }


def root_keys_status() -> dict[str, Any]:
    """The ring (ids and roles, never keys), where it comes from, and each dependent's remaining items. A read
    of the shell's own: no caller, nothing recorded."""
    ring = root_keys()
    return {
        "Source": "KMS_ROOT_KEY" if root_keys_in_environment() else str(root_key_path()),
        "Keys": _ring_ids(ring),
        "Dependents": [_remaining_entry(dependent, dependent.remaining(ring)) for dependent in dependents()],
    }


def root_keys_retire(*, ctx: OperationContext, end_unmovable: bool = False) -> dict[str, Any]:
    """Write every previous root key retired in the key file (its audit subkeys only, `RootKey.retire`).
    Refused (KMSInvalidStateException, naming each dependent with items left and how they move) while any
    dependent keeps an item under a previous key; with `end_unmovable`, the items no re-seal can move are ended
    first (`RootKeyDependent.end_unmovable`), in this operation's transaction, so a refusal ends nothing."""
    _authorized(ctx)
    held, ring = _planning(RETIRE_BY_HAND)
    dropped: set[str] = set()
    retired = "".join(_retired_line(line, ring, dropped) for line in held.text.splitlines(keepends=True))
    if not ring.previous:
        # Nothing to wait for or to move, but a retired key written whole by hand is still dropped from the file.
        if dropped:
            _prepare(held, retired, lambda fresh: not fresh.previous)
        return {"CurrentKeyId": ring.current.key_id, "RetiredKeyIds": sorted(dropped), "Ended": {}}
    _settled(held)
    left = _left(ring)
    movable = [(dependent, remaining) for dependent, remaining in left if remaining.movable]
    if movable or (left and not end_unmovable):
        raise errors.KMSInvalidStateException(_refusal(left, end_unmovable))
    ended = {dependent.name: dependent.end_unmovable(ring) for dependent, _remaining in left}
    still = _left(ring)
    if still:
        raise errors.KMSInvalidStateException(_refusal(still, end_unmovable))
    _prepare(held, retired, lambda fresh: not fresh.previous)
    return {"CurrentKeyId": ring.current.key_id, "RetiredKeyIds": sorted(dropped), "Ended": ended}


def _settled(held: KeyFileHeld) -> None:
    """Refuse (KMSInvalidStateException, naming when it may run) while the key file was rewritten less than
    RETIRE_SETTLE_SECONDS ago: a process may still seal under a key retire would drop."""
    rewritten = held.path.stat().st_mtime
    if time.time() < rewritten + RETIRE_SETTLE_SECONDS:
        when = datetime.fromtimestamp(rewritten + RETIRE_SETTLE_SECONDS, tz=UTC).strftime(
            "%Y-%m-%d %H:%M:%S UTC"
        )
        raise errors.KMSInvalidStateException(
            f"Nothing was retired: {held.path} was rewritten less than {RETIRE_SETTLE_SECONDS:.0f} seconds ago, "
            f"and a process may still seal under a previous key. Run `manage.py rootkey status`, then retire "
            f"again from {when}."
        )


# --- what is left -----------------------------------------------------------------------------------------


def _ring_ids(ring: RootKeyRing) -> list[dict[str, str]]:
    return [
        {"KeyId": ring.current.key_id, "Role": "current"},
        *({"KeyId": key.key_id, "Role": "previous"} for key in ring.previous),
        *({"KeyId": key.key_id, "Role": "retired"} for key in ring.retired),
    ]


def _remaining_entry(dependent: RootKeyDependent, remaining: Remaining) -> dict[str, Any]:
    return {
        "Name": dependent.name,
        "Remaining": remaining.count,
        "HowTheyMove": remaining.how_they_move,
        "Movable": remaining.movable,
    }


def _left(ring: RootKeyRing) -> list[tuple[RootKeyDependent, Remaining]]:
    found = [(dependent, dependent.remaining(ring)) for dependent in dependents()]
    return [(dependent, remaining) for dependent, remaining in found if remaining.count]


def _refusal(left: list[tuple[RootKeyDependent, Remaining]], end_unmovable: bool) -> str:
    lines = []
    for dependent, remaining in left:
        how = remaining.how_they_move
        if not remaining.movable and not end_unmovable:
            how += "; `rootkey retire --end-unmovable` ends them"
        lines.append(f"{dependent.name}: {remaining.count} ({how})")
    return "Nothing was retired: items still need a previous root key. " + "; ".join(lines) + "."


# --- the key file -----------------------------------------------------------------------------------------


def _retired_line(line: str, ring: RootKeyRing, dropped: set[str]) -> str:
    """`line` of a key file with each previous key, and each retired key written whole by hand, written as
    `rootkey retire` keeps a retired key: its id and its audit subkeys, the key itself dropped (`RootKey.retire`,
    `encode_root_key`); their ids added to `dropped`. Comments, blank lines and the other entries are kept."""
    body = line.rstrip("\r\n")
    if not body.strip() or body.strip().startswith("#"):
        return line
    entries = []
    for entry in body.split(","):
        text = entry.strip()
        whole = text[len(RETIRED_PREFIX) :] if text.lower().startswith(RETIRED_PREFIX) else text
        if text and ":" not in whole:  # a key itself (a retired one written by hand too), not its subkeys
            one = parse_root_keys(whole, "the key file")
            key = ring.find(one.current.key_id) if one is not None else None
            if key is not None and key is not ring.current:
                entry = entry.replace(text, encode_root_key(key.retire()))
                dropped.add(key.key_id)
        entries.append(entry)
    return ",".join(entries) + line[len(body) :]


@dataclass
class KeyFileHeld:
    """The key file while `rotate` or `retire` runs (`key_file_held`): its text when the operation read it, the
    rewrite prepared beside it, and what went wrong after the commit, for the operator."""

    path: Path
    locked: bool = False
    text: str = ""
    temporary: Path | None = None
    failure: str = ""


_HELD: ContextVar[KeyFileHeld | None] = ContextVar("key_file_held", default=None)


@contextmanager
def key_file_held() -> Iterator[KeyFileHeld | None]:
    """Around the whole of `perform()` for `rotate` and `retire` (the command's): the key file's folder locked from
    the reading the operation plans on, through its event's commit, to the rename, so no other rotation or
    retirement reads or writes the file in between. Stale temporary files are swept first; a prepared rewrite that
    was never committed is removed at the end. `failure` says, afterwards, whether the rename after the commit
    failed (logged, and to be told to the operator; no second event). None with the keys in the environment."""
    if root_keys_in_environment():
        yield None  # the services refuse, and say how to do it by hand
        return
    held = KeyFileHeld(root_key_path().resolve())
    with _folder_locked(held.path.parent):
        sweep_temporary_key_files(held.path)
        token, held.locked = _HELD.set(held), True
        try:
            yield held
        finally:
            _HELD.reset(token)
            held.locked = False
            # Inside a transaction of the caller's (a test's), the commit, and the rename, come later: the rename
            # takes the lock again then, and a rewrite that never commits is swept by the next run.
            if held.temporary is not None and not transaction.get_connection().in_atomic_block:
                with suppress(FileNotFoundError):
                    held.temporary.unlink()
                held.temporary = None


def _planning(by_hand: str) -> tuple[KeyFileHeld, RootKeyRing]:
    """The locked key file and the ring it holds now (this process reads it again too), for a rewrite."""
    if root_keys_in_environment():
        raise errors.UnsupportedOperationException(by_hand)
    held = _HELD.get()
    if held is None:
        raise errors.KMSInternalException(
            "The key file is rewritten only under its lock (`manage.py rootkey`)."
        )
    try:
        held.text = held.path.read_text()
    except OSError as exc:
        raise errors.KMSInvalidStateException(f"{held.path} cannot be read: {exc.strerror}.") from None
    ring = _ring_of(held.text, held.path)
    reload_root_keys()  # the file as it is now, not as this process read it at its start
    return held, ring


def _ring_of(text: str, path: Path) -> RootKeyRing:
    try:
        ring = parse_root_keys(text, str(path))
    except ImproperlyConfigured as exc:
        raise errors.KMSInvalidStateException(f"Nothing was written: {exc}") from None
    if ring is None:
        raise errors.KMSInvalidStateException(f"Nothing was written: {path} holds no root key.")
    return ring


def _prepare(held: KeyFileHeld, text: str, done: Callable[[RootKeyRing], bool]) -> None:
    """Before the operation's event commits: `text` written beside the key file (its owner, 0600, fsynced) and
    read back as the ring `done` expects, so that after the commit only the rename is left (`_install`): the
    trail never records a rotation whose file could not even be written."""
    if held.path.read_text() != held.text:
        raise errors.ConflictException(
            f"Nothing was written: {held.path} changed while the operation ran. Run it again."
        )
    held.temporary = temporary = write_temporary_key_file(held.path, text)
    if not done(_ring_of(temporary.read_text(), temporary)):
        raise errors.KMSInternalException(
            f"Nothing was written: the new {held.path} does not read as intended."
        )
    transaction.on_commit(lambda: _install(held, temporary, done))


def _install(held: KeyFileHeld, temporary: Path, done: Callable[[RootKeyRing], bool]) -> None:
    """After the commit: the prepared file renamed over the key file, and this process's keys read again. A
    failure is logged and kept in `held.failure` for the operator; it raises nothing (the event has committed,
    and a second one would contradict it)."""
    with nullcontext() if held.locked else _folder_locked(held.path.parent):
        try:
            if held.path.read_text() != held.text:
                raise OSError(0, "it was changed by hand meanwhile")
            os.replace(temporary, held.path)
            held.temporary = None
            fsync_folder(held.path.parent)
            fresh: RootKeyRing | None = reload_root_keys()
        except (OSError, ImproperlyConfigured) as exc:
            reason, fresh = getattr(exc, "strerror", None) or str(exc), None
        else:
            reason = "" if fresh is not None and done(fresh) else "it does not read back as intended"
    if reason:
        held.failure = (
            f"The operation was recorded, but {held.path} was not rewritten as planned ({reason}). Check the file "
            "(`manage.py rootkey status`) and run the command again."
        )
        logger.error("Root key file rewrite after the audit event committed failed: %s", reason)


def write_key_file(path: Path, text: str) -> None:
    """Replace the key file `path` with `text` atomically: a new file in the same folder, with the old file's
    owner and group and mode 0600, written and fsynced, renamed over it, then the folder fsynced, so a crash
    leaves either the old file or the new one. Refused (KMSInvalidStateException, nothing written) when the new
    file cannot be given the old one's owner: the service reads the file as its own user, and a file owned by
    whoever ran the command (root, often) would lock it out of its own keys."""
    os.replace(write_temporary_key_file(path, text), path)
    fsync_folder(path.parent)


def write_temporary_key_file(path: Path, text: str) -> Path:
    """`text` in a new file beside `path` (owner and group of `path`, mode 0600), written and fsynced: what
    `write_key_file` renames over `path`. Removed again if anything fails."""
    try:
        owner = path.stat()
    except OSError as exc:
        raise errors.KMSInvalidStateException(
            f"Nothing was written: {path} cannot be read ({exc.strerror})."
        ) from None
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as out:
            try:
                os.fchown(out.fileno(), owner.st_uid, owner.st_gid)
            except OSError as exc:
                raise errors.KMSInvalidStateException(
                    f"Nothing was written: the new key file cannot be given the owner of {path} (uid "
                    f"{owner.st_uid}, gid {owner.st_gid}): {exc.strerror}. Run the command as that user (the "
                    "service's), or as root."
                ) from None
            os.fchmod(out.fileno(), 0o600)
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return Path(temporary)


def sweep_temporary_key_files(path: Path) -> None:
    """Remove the temporary files a rewrite of `path` interrupted by a crash left beside it (each holds every
    key in full). Only under the folder lock, where no rewrite is under way."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        with suppress(FileNotFoundError):
            stale.unlink()


@contextmanager
def _folder_locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on the key file's folder: two rotations (or a rotation and a retirement) never both
    rewrite the file from the same reading of it, and no lock file is left beside the keys."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # releases the lock

"""An anchor for the audit chain outside the database.

Everything the chain's own checks rely on lives in the database: an operator who deletes every event and the
chain head (or puts back an old, genuine head after deleting the newest events) leaves a chain that verifies.
So each successful verification also writes a checkpoint — the last verified event's seq and hash, with a MAC
under a key derived from the root key — to a file on the server's disk (KMS_AUDIT_CHECKPOINT_FILE, by default
in KMS_DATA_DIR beside the root key). Verification then also requires the database to still hold that event
with that hash (or to have archived past it): a database-only attacker can neither delete verified history
unnoticed nor forge a checkpoint. The file only moves forward.

The checkpoint also says when a walk of the whole chain (from the archive boundary) last ended there
(`full_at`, under the same MAC): the periodic verification starts from the checkpoint while that is recent, so
its cost follows the events written since, not the size of the trail (kmsconsole.audit.verification).

Root keys rotate (kmsconsole.core.rootkey): the file is written under the current key and read under any readable
one. A successful verification rewrites it, so after a rotation the next one moves it to the current key; `rootkey
reseal` moves it at once (`reseal_checkpoint`, kmsconsole.audit.rootkeys). A file under a retired key no longer
verifies, which is why `rootkey retire` waits until nothing is left under a previous key.

The checkpoint also names the root key the chain head was under when it was verified (`key_id`, under the MAC).
Until `rootkey retire`, the previous key still MACs heads: its holder could delete every event written since the
rotation and MAC the head under it. A chain whose head is under an older key than the checkpoint's is refused,
and `rootkey reseal` records a checkpoint at the head once the head is under the current key
(kmsconsole.audit.rootkeys), so that rewind is named from the re-seal on. Before it, the previous key's holder can
still rewind the chain to the checkpoint (as anyone holding the current key can).

Verifications (workers, `audit verify`) and `rootkey reseal` read, decide on and write the file under an exclusive
lock on a file beside it (`<checkpoint>.lock`), so one never writes back an older reading over another's newer
checkpoint.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from kmsconsole.audit.chain import ChainProblem, mac_under
from kmsconsole.audit.models import AuditEvent
from kmsconsole.core.rootkey import RootKey, RootKeyRing, mac_matches, root_keys, subkey

PURPOSE = "audit-checkpoint"


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    written_at: str
    # When a walk of the whole chain last ended at (or before) this checkpoint; "" if none is known.
    full_at: str = ""
    # The id of the root key the chain head's MAC was under when it was verified here; "" in older files.
    key_id: str = ""


def checkpoint_path() -> Path | None:
    configured = settings.KMS_AUDIT_CHECKPOINT_FILE
    return Path(configured) if configured else None


def _message(checkpoint: Checkpoint) -> bytes:
    # Files written before `full_at` (or `key_id`) existed carry a MAC without it, and still verify.
    full_at, key_id = checkpoint.full_at, checkpoint.key_id
    return (
        f"{checkpoint.seq}:{checkpoint.hash}"
        + (f":{full_at}" if full_at else "")
        + (f";{key_id}" if key_id else "")
    ).encode()


def _mac(checkpoint: Checkpoint, key: bytes | None = None) -> str:
    """The file's MAC under the current root key (`key`: another root key's PURPOSE subkey)."""
    return hmac.new(key or subkey(PURPOSE), _message(checkpoint), hashlib.sha256).hexdigest()


def _read() -> tuple[Checkpoint | None, str, ChainProblem | None]:
    """The checkpoint and its MAC as the file holds them (unchecked), or the problem that it cannot be read."""
    path = checkpoint_path()
    if path is None or not path.exists():
        return None, "", None
    try:
        data = json.loads(path.read_text())
        checkpoint = Checkpoint(
            int(data["seq"]),
            str(data["hash"]),
            str(data.get("written_at", "")),
            str(data.get("full_at", "")),
            str(data.get("key_id", "")),
        )
        return checkpoint, str(data["mac"]), None
    except (ValueError, KeyError, TypeError, OSError, AttributeError):
        return None, "", ChainProblem(0, "", f"the checkpoint file {path} was altered or is unreadable")


def read_checkpoint() -> tuple[Checkpoint | None, ChainProblem | None]:
    """The checkpoint, if its MAC is under a readable root key; else the problem (a retired key's is refused)."""
    checkpoint, mac, problem = _read()
    if checkpoint is None or problem is not None:
        return None, problem
    if not mac_matches(PURPOSE, _message(checkpoint), mac):
        return None, ChainProblem(
            0,
            "",
            f"the checkpoint file {checkpoint_path()} was altered or is unreadable (its MAC does not match)",
        )
    return checkpoint, None


def _under(checkpoint: Checkpoint, mac: str, keys: tuple[RootKey, ...]) -> bool:
    return mac_under(mac, keys, lambda key: _mac(checkpoint, key.subkey(PURPOSE)))


def under_current_key(ring: RootKeyRing) -> bool | None:
    """Whether the file's MAC is under `ring`'s current key (None: there is no file). One HMAC, no chain walk."""
    checkpoint, mac, problem = _read()
    if checkpoint is None:
        return None if problem is None else False
    return _under(checkpoint, mac, (ring.current,))


def head_key_problem(head_seq: int, head_key: str) -> ChainProblem | None:
    """Whether the chain head (verified under `head_key`) is under an older root key than the one the checkpoint
    saw the head under: the head was rewound by a holder of the older key (everything written since removed)."""
    checkpoint, problem = read_checkpoint()
    if problem is not None or checkpoint is None or not checkpoint.key_id or not head_key:
        return problem
    if not _older(head_key, checkpoint.key_id):
        return None
    return ChainProblem(
        head_seq,
        "",
        f"the chain head's MAC is under an older root key ({head_key}) than the head verified on "
        f"{checkpoint.written_at} (checkpoint file, {checkpoint.key_id}): it was rewound",
    )


def _older(key_id: str, than: str) -> bool:
    """Whether root key `key_id` is older than `than` in the ring (newest first); an unconfigured one is."""
    ids = [key.key_id for key in root_keys().everything]
    if than not in ids:
        return (
            False  # `than` unknown: nothing to compare with (a file under no readable key is refused anyway)
        )
    return key_id not in ids or ids.index(key_id) > ids.index(than)


def check_checkpoint(*, archived_through: int) -> ChainProblem | None:
    """Whether the database still holds the last event a verification vouched for (or archived past it)."""
    checkpoint, problem = read_checkpoint()
    if problem is not None or checkpoint is None or checkpoint.seq <= archived_through:
        return problem
    stored = AuditEvent.objects.filter(seq=checkpoint.seq).values_list("hash", "event_id").first()
    if stored is None:
        return ChainProblem(
            checkpoint.seq,
            "",
            f"it was verified on {checkpoint.written_at} (checkpoint file) and is no longer in the database: "
            "events were removed",
        )
    if not hmac.compare_digest(stored[0], checkpoint.hash):
        return ChainProblem(
            checkpoint.seq, str(stored[1]), "its hash differs from the one verified earlier (checkpoint file)"
        )
    return None


def record_checkpoint(seq: int, chain_hash: str, *, whole_chain: bool = True, key_id: str = "") -> None:
    """Move the checkpoint forward to a verified event (never backward), atomically, readable by the owner only.
    `whole_chain`: the walk started at the archive boundary (it renews `full_at`); otherwise `full_at` is kept.
    `key_id`: the root key the head at `seq` was verified under (a newer one at the same seq is recorded)."""
    path = checkpoint_path()
    if path is None or seq <= 0:
        return
    # Read, decide and write as one: a concurrent writer's newer checkpoint is never undone.
    with _locked(path):
        _record(path, seq, chain_hash, whole_chain=whole_chain, key_id=key_id)


def _record(path: Path, seq: int, chain_hash: str, *, whole_chain: bool, key_id: str) -> None:
    """`record_checkpoint` under the lock: the file as it is now, re-read."""
    current, problem = read_checkpoint()
    if (
        problem is None
        and current is not None
        and (
            current.seq > seq
            or (current.seq == seq and not whole_chain and not _newer_key(key_id, current.key_id))
        )
    ):
        # Nothing to move; but every successful verification leaves the file under the current root key.
        if not under_current_key(root_keys()):
            _write(path, current)
        return
    now = timezone.now().isoformat()
    full_at = now if whole_chain else (current.full_at if current is not None and problem is None else "")
    if current is not None and problem is None and current.seq == seq and _newer_key(current.key_id, key_id):
        key_id = current.key_id  # a verification that saw the head under a newer key got here first
    _write(path, Checkpoint(seq, chain_hash, now, full_at, key_id))


def _newer_key(key_id: str, than: str) -> bool:
    return bool(key_id) and key_id != than and (not than or _older(than, key_id))


def reseal_checkpoint(ring: RootKeyRing) -> bool | None:
    """`rootkey reseal`: the checkpoint, verified under `ring`'s readable keys, written again under its current
    key, unchanged (recomputed from the verified content, never a MAC copied). True if it was rewritten, False if
    it is under the current key already (or there is none), None if it does not verify under a readable key (left
    as it is: `audit verify` reports it)."""
    path = checkpoint_path()
    if path is None:
        return False
    with _locked(path):  # what is rewritten is what the file holds now, never an older reading of it
        checkpoint, mac, problem = _read()
        if checkpoint is None:
            return None if problem is not None else False
        if _under(checkpoint, mac, (ring.current,)):
            return False
        if not _under(checkpoint, mac, ring.readable):
            return None
        if ring.current.key_id != root_keys().current.key_id:
            return False  # `ring` is no longer this process's: the next verification moves the file
        _write(path, checkpoint, ring.current)
    return True


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock (flock) on a file beside the checkpoint, held while it is read, decided on and written:
    verifications (workers, `audit verify`) and `rootkey reseal` run in separate processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # releases the lock


def _write(path: Path, checkpoint: Checkpoint, key: RootKey | None = None) -> None:
    """Write the file atomically (readable by the owner only), MACed under the current root key (or `key`)."""
    document = {
        "seq": checkpoint.seq,
        "hash": checkpoint.hash,
        "written_at": checkpoint.written_at,
        "full_at": checkpoint.full_at,
        "key_id": checkpoint.key_id,
        "mac": _mac(checkpoint, key and key.subkey(PURPOSE)),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".audit-checkpoint-")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(json.dumps(document))
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

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
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from kmsconsole.audit.chain import ChainProblem
from kmsconsole.audit.models import AuditEvent
from kmsconsole.core.rootkey import subkey


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    written_at: str
    # When a walk of the whole chain last ended at (or before) this checkpoint; "" if none is known.
    full_at: str = ""


def checkpoint_path() -> Path | None:
    configured = settings.KMS_AUDIT_CHECKPOINT_FILE
    return Path(configured) if configured else None


def _mac(seq: int, chain_hash: str, full_at: str = "") -> str:
    # Files written before `full_at` existed carry a MAC over seq and hash only, and still verify.
    message = f"{seq}:{chain_hash}" + (f":{full_at}" if full_at else "")
    return hmac.new(subkey("audit-checkpoint"), message.encode(), hashlib.sha256).hexdigest()


def read_checkpoint() -> tuple[Checkpoint | None, ChainProblem | None]:
    path = checkpoint_path()
    if path is None or not path.exists():
        return None, None
    try:
        data = json.loads(path.read_text())
        checkpoint = Checkpoint(
            int(data["seq"]), str(data["hash"]), str(data.get("written_at", "")), str(data.get("full_at", ""))
        )
        valid = hmac.compare_digest(
            str(data["mac"]), _mac(checkpoint.seq, checkpoint.hash, checkpoint.full_at)
        )
    except (ValueError, KeyError, TypeError, OSError):
        valid, checkpoint = False, None
    if not valid:
        return None, ChainProblem(0, "", f"the checkpoint file {path} was altered or is unreadable")
    return checkpoint, None


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


def record_checkpoint(seq: int, chain_hash: str, *, whole_chain: bool = True) -> None:
    """Move the checkpoint forward to a verified event (never backward), atomically, readable by the owner only.
    `whole_chain`: the walk started at the archive boundary (it renews `full_at`); otherwise `full_at` is kept."""
    path = checkpoint_path()
    if path is None or seq <= 0:
        return
    current, problem = read_checkpoint()
    if (
        problem is None
        and current is not None
        and (current.seq > seq or (current.seq == seq and not whole_chain))
    ):
        return
    now = timezone.now().isoformat()
    full_at = now if whole_chain else (current.full_at if current is not None and problem is None else "")
    document = {
        "seq": seq,
        "hash": chain_hash,
        "written_at": now,
        "full_at": full_at,
        "mac": _mac(seq, chain_hash, full_at),
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

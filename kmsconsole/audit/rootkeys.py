"""What the audit trail keeps under a root key besides its links, and how each moves to the current key: the
trail's dependents in the rotation registry (kmsconsole.core.rootkey_dependents), registered when the audit app is
ready.

The links themselves are not dependents: each stays under the key that was current when it was written, and the
verifier walks them epoch by epoch (kmsconsole.audit.chain), retired keys included. What must move before a key is
retired are the anchors that are checked under readable keys only:

- "audit chain head": its MAC is under the key of its newest link. It moves with the next event written (the
  re-seal's own audit event, for one), so the re-seal does nothing to it.
- "audit retention base": the archive boundary's MAC (kmsconsole.audit.verification), verified under the ring and
  MACed again under the current key.
- "audit checkpoint": the file outside the database (kmsconsole.audit.checkpoint), verified under the ring and
  written again under the current key (every successful verification also does).

Each `remaining` is one row or one file and one HMAC: no chain walk.
"""

from __future__ import annotations

import hmac

from django.db import transaction

from kmsconsole.audit.chain import HEAD_PURPOSE, head_mac
from kmsconsole.audit.checkpoint import reseal_checkpoint, under_current_key
from kmsconsole.audit.models import AuditChainBase, AuditChainHead
from kmsconsole.audit.verification import BASE_PURPOSE, base_mac
from kmsconsole.core.rootkey import RootKeyRing
from kmsconsole.core.rootkey_dependents import Moved, Remaining, RootKeyDependent, register

HEAD_MOVES = "the next audit event moves it (rootkey reseal writes one)"
BASE_MOVES = "rootkey reseal MACs it again"
CHECKPOINT_MOVES = (
    "rootkey reseal (or the next successful audit verification) writes it again; if it does not verify under a "
    "readable key, `audit verify` names it"
)


def head_remaining(ring: RootKeyRing) -> Remaining:
    """1 while the head's MAC is not under the current key (before the first event after a rotation)."""
    head = AuditChainHead.objects.filter(pk=1).values_list("last_seq", "last_hash", "head_mac").first()
    if head is None or not head[0]:
        return Remaining(0, HEAD_MOVES)
    current = head_mac(head[0], head[1], ring.current.subkey(HEAD_PURPOSE))
    return Remaining(0 if hmac.compare_digest(str(head[2]), current) else 1, HEAD_MOVES)


def _base_under(row: AuditChainBase, ring: RootKeyRing, *, readable: bool) -> bool:
    found = False
    for key in ring.readable if readable else (ring.current,):  # each compared in constant time
        expected = base_mac(row.seq, row.hash, key.subkey(BASE_PURPOSE), epoch=row.key_id)
        found |= hmac.compare_digest(str(row.mac), expected)
    return found


def base_remaining(ring: RootKeyRing) -> Remaining:
    row = AuditChainBase.objects.filter(pk=1).first()
    return Remaining(0 if row is None or _base_under(row, ring, readable=False) else 1, BASE_MOVES)


def reseal_base(ring: RootKeyRing, batch_size: int) -> Moved:
    """MAC the boundary again under the current key, recomputed from its seq and hash once they verify under a
    readable key; a boundary that does not is left as it is (`audit verify` reports it). Locked against
    retention, which moves it."""
    with transaction.atomic():
        row = AuditChainBase.objects.select_for_update().filter(pk=1).first()
        if row is None or _base_under(row, ring, readable=False):
            return Moved()
        if not _base_under(row, ring, readable=True):
            return Moved(failed=(f"AuditChainBase {row.pk}",))
        row.mac = base_mac(row.seq, row.hash, ring.current.subkey(BASE_PURPOSE), epoch=row.key_id)
        row.save(update_fields=["mac"])
    return Moved(moved=1)


def checkpoint_remaining(ring: RootKeyRing) -> Remaining:
    return Remaining(0 if under_current_key(ring) in (None, True) else 1, CHECKPOINT_MOVES)


def reseal_checkpoint_file(ring: RootKeyRing, batch_size: int) -> Moved:
    moved = reseal_checkpoint(ring)
    if moved is None:
        return Moved(failed=("audit checkpoint",))
    return Moved(moved=int(moved))


register(RootKeyDependent("audit chain head", head_remaining))
register(RootKeyDependent("audit retention base", base_remaining, reseal=reseal_base))
register(RootKeyDependent("audit checkpoint", checkpoint_remaining, reseal=reseal_checkpoint_file))

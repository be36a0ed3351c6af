"""What the audit trail keeps under a root key besides its links, and how each moves to the current key: the
trail's dependents in the rotation registry (kmsconsole.core.rootkey_dependents), registered when the audit app is
ready.

The links themselves are not dependents: each stays under the key that was current when it was written, and the
verifier walks them epoch by epoch (kmsconsole.audit.chain), retired keys included. What must move before a key is
retired are the anchors that are checked under readable keys only:

- "audit chain head": its MAC is under the key of its newest link. It moves with the next event written; the
  re-seal MACs it again under the current key (verified under a readable key first: a head may be under a newer
  key than its last link, never an older one).
- "audit retention base": the archive boundary's MAC (kmsconsole.audit.verification), verified under the ring and
  MACed again under the current key.
- "audit checkpoint": the file outside the database (kmsconsole.audit.checkpoint), verified under the ring and
  written again under the current key (every successful verification also does). Handled after the head: once
  the head is under the current key, the re-seal verifies the chain, which records the checkpoint at the head
  with that key, so from then on a head MACed under a previous key again (a rewind behind the rotation by that
  key's holder) is refused.

Each `remaining` is one row or one file and one HMAC: no chain walk.
"""

from __future__ import annotations

import hmac

from django.db import transaction

from kmsconsole.audit.chain import HEAD_PURPOSE, head_key, head_mac, mac_under
from kmsconsole.audit.checkpoint import checkpoint_path, reseal_checkpoint, under_current_key
from kmsconsole.audit.models import AuditChainBase, AuditChainHead
from kmsconsole.audit.verification import BASE_PURPOSE, base_mac, verify_chain
from kmsconsole.core.rootkey import RootKeyRing
from kmsconsole.core.rootkey_dependents import Moved, Remaining, RootKeyDependent, register

HEAD_MOVES = "rootkey reseal MACs it again (so does the next audit event)"
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


def reseal_head(ring: RootKeyRing, batch_size: int) -> Moved:
    """MAC the head again under the current key, recomputed from its seq and hash once its MAC verifies under a
    readable key (a retired key's or none: left as it is, `audit verify` reports it). Locked as the writers lock
    it; a writer holding the old MAC finds the new one in the batch statement's answer (kmsconsole.audit.headkeys)."""
    with transaction.atomic():
        head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
        if head is None or not head.last_seq:
            return Moved()
        key = head_key(ring, head.last_seq, head.last_hash, head.head_mac)
        if key is not None and key.key_id == ring.current.key_id:
            return Moved()
        if key is None or key.retired:
            return Moved(failed=(f"AuditChainHead {head.pk}",))
        head.head_mac = head_mac(head.last_seq, head.last_hash, ring.current.subkey(HEAD_PURPOSE))
        head.save(update_fields=["head_mac"])
    return Moved(moved=1)


def _base_under(row: AuditChainBase, ring: RootKeyRing, *, readable: bool) -> bool:
    return mac_under(
        row.mac,
        ring.readable if readable else (ring.current,),
        lambda key: base_mac(row.seq, row.hash, key.subkey(BASE_PURPOSE), epoch=row.key_id),
    )


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
    """Once the head is under the current key, a verification (from the checkpoint while a whole walk is recent)
    records the checkpoint at the head, naming that key; then the file is moved to the current key if it is not
    there yet. A chain that does not verify leaves the file as it is (`audit verify` names the problem)."""
    before = under_current_key(ring)
    head_moved = checkpoint_path() is not None and head_remaining(ring).count == 0
    if head_moved and verify_chain(since_checkpoint=True).problem is not None:
        return Moved(failed=("audit checkpoint",))
    moved = reseal_checkpoint(ring)
    if moved is None:
        return Moved(failed=("audit checkpoint",))
    return Moved(moved=int(moved or (before is False and under_current_key(ring) is True)))


register(RootKeyDependent("audit chain head", head_remaining, reseal=reseal_head))
register(RootKeyDependent("audit retention base", base_remaining, reseal=reseal_base))
# After the head (it records a checkpoint at the head once the head is under the current key).
register(RootKeyDependent("audit checkpoint", checkpoint_remaining, reseal=reseal_checkpoint_file, order=101))

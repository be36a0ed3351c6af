"""Hashing and verifying the audit chain, across root-key rotations.

Each link is an HMAC-SHA256 under a subkey (`audit-chain/v1`) of the root key that was current when the event was
written, and the chain head's own MAC (`audit-chain/head/v1`) is under the key of its newest link: no field says
which key, the verifier finds it. A rotation (kmsconsole.core.rootkey) starts a new **epoch**: the key of a
chain's links may change between two events only *forward*, to a key newer in the ring (`RootKeyRing.everything`
lists the newest first). So `ChainWalk` walks with the epoch key: each link must verify under the key of the link
before it, or under a newer key (the new epoch), never under an older or an unconfigured one. Links may be under
retired keys (old events stay verifiable once their key is retired); the head must be under a readable key no
older than its last link's. Whoever still holds a previous or a retired key therefore cannot link an event after
the chain moved past that key, nor rewind the head to behind an event under a newer key while that event stays.
The walk alone does not stop a previous key's holder (until `rootkey retire`) from deleting every event written
since the rotation and MACing the head under that key: the checkpoint does (kmsconsole.audit.checkpoint, which
also names the key the head was under), once it has been recorded past the rotation.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kmsconsole.core.rootkey import RootKey, RootKeyRing, refresh_root_keys, root_keys, subkey

GENESIS_HASH = "0" * 64
LINK_PURPOSE = "audit-chain/v1"
HEAD_PURPOSE = "audit-chain/head/v1"
# The fields a link covers, in a fixed order; adding one is a new chain version.
CHAINED_FIELDS = (
    "seq",
    "event_id",
    "time",
    "request_id",
    "interface",
    "operation",
    "caller_arn",
    "caller_account",
    "access_key_id",
    "source_ip",
    "user_agent",
    "key_arn",
    "request_parameters",
    "response_elements",
    "error_code",
    "error_message",
    "decision",
    "reason",
    "decided_by",
    "notable",
)


# Built once: json.dumps would build an encoder per call for these options.
_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def canonical_event(values: dict[str, Any]) -> bytes:
    """A byte string that is the same whether the event comes from memory, SQLite or PostgreSQL (jsonb)."""
    material = {name: values[name] for name in CHAINED_FIELDS}
    material["event_id"] = str(material["event_id"])
    material["time"] = values["time"].isoformat(timespec="microseconds")
    return _CANONICAL_JSON.encode(material).encode()


def head_mac(last_seq: int, last_hash: str, key: bytes | None = None) -> str:
    """The chain head's own MAC: without it, deleting the newest events and rewinding the head would pass. `key`:
    a root key's `HEAD_PURPOSE` subkey (the current one's by default)."""
    return hmac.new(
        key or subkey(HEAD_PURPOSE), f"{last_seq}:{last_hash}".encode(), hashlib.sha256
    ).hexdigest()


def link_hash(prev_hash: str, values: dict[str, Any], key: bytes | None = None) -> str:
    """An event's link: `key` is a root key's `LINK_PURPOSE` subkey (the current one's by default)."""
    return hmac.new(
        key or subkey(LINK_PURPOSE), prev_hash.encode() + b"\n" + canonical_event(values), hashlib.sha256
    ).hexdigest()


def mac_under(mac: str, keys: Iterable[RootKey], mac_of: Callable[[RootKey], str]) -> bool:
    """Whether `mac` is `mac_of(key)` for one of `keys` (the trail's anchors: boundary, checkpoint, manifests).
    Every candidate is compared in constant time, and all are compared whichever matches."""
    found = False
    for key in keys:
        found |= hmac.compare_digest(str(mac), mac_of(key))
    return found


def head_key(ring: RootKeyRing, last_seq: int, last_hash: str, mac: str) -> RootKey | None:
    """The configured root key (retired ones included) the head's MAC is under, or None. The current key is
    tried first: on the writers' path one HMAC decides."""
    for key in ring.everything:
        if hmac.compare_digest(str(mac), head_mac(last_seq, last_hash, key.subkey(HEAD_PURPOSE))):
            return key
    return None


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    event_id: str
    what: str

    def __str__(self) -> str:
        return f"event #{self.seq} ({self.event_id}): {self.what}"


class ChainWalk:
    """A walk along the chain from (`seq`, `hash`): each `events()` call continues where the last one ended, in
    the epoch it ended in (see the module docstring). `epoch`: the id of the key the start's own link is under,
    when known ("": the first link may be under any configured key).

    The walk uses this process's ring. A link or a head under none of its keys makes it look at the key file once
    (`refresh_root_keys`: another process may have rotated it since this one read it, or since the walk began)
    and, if the file gave a new ring, take that ring up; the epoch is kept by key id, so it holds across the new
    ring."""

    def __init__(self, *, seq: int = 0, hash: str = GENESIS_HASH, epoch: str = "") -> None:
        self._use(root_keys())
        self.seq, self.hash = seq, hash
        # The id of the last link's key ("" until a link has been walked, unless the start's was given).
        self.epoch = epoch
        self.last_event_id = ""
        # The id of the key the head's MAC was under, once `up_to_head` checked it.
        self.head_key = ""

    def _use(self, ring: RootKeyRing) -> None:
        self.ring = ring
        self._keys = ring.everything
        self._link_keys = tuple(key.subkey(LINK_PURPOSE) for key in self._keys)

    def _refreshed(self) -> bool:
        """Take up the key file's ring if it was rewritten since this process read it (True: there is a new one)."""
        if not refresh_root_keys():
            return False
        self._use(root_keys())
        return True

    def rank(self, key_id: str) -> int | None:
        """The age rank of a configured key (0: the current one; `RootKeyRing.everything` is newest first)."""
        return next((i for i, key in enumerate(self._keys) if key.key_id == key_id), None)

    def key_of(self, prev_hash: str, event: dict[str, Any]) -> RootKey | None:
        """The configured key `event`'s link (after `prev_hash`) is under, or None (after a look at the key file).
        The epoch's is tried first, so a walk costs one HMAC an event."""
        found = self._key_of(prev_hash, event)
        if found is None and self._refreshed():
            found = self._key_of(prev_hash, event)
        return found

    def _key_of(self, prev_hash: str, event: dict[str, Any]) -> RootKey | None:
        stored = str(event["hash"])
        epoch = self.rank(self.epoch) if self.epoch else None
        if epoch is not None and hmac.compare_digest(
            stored, link_hash(prev_hash, event, self._link_keys[epoch])
        ):
            return self._keys[epoch]
        for index, key in enumerate(self._link_keys):
            if index != epoch and hmac.compare_digest(stored, link_hash(prev_hash, event, key)):
                return self._keys[index]
        return None

    def _older_than_epoch(self, key: RootKey) -> bool:
        """Whether `key` is older than the epoch's (an epoch key no longer configured: every key is, fail closed)."""
        if not self.epoch:
            return False
        if self.rank(self.epoch) is None:
            self._refreshed()  # the start's epoch (given by the caller) may be a key this process has not read
        epoch, rank = self.rank(self.epoch), self.rank(key.key_id)
        return epoch is None or rank is None or rank > epoch

    def events(self, events: Iterable[dict[str, Any]]) -> ChainProblem | None:
        """Walk `events` in seq order from where the walk stands; return the first broken link, or None."""
        for event in events:
            seq, event_id = event["seq"], str(event["event_id"])
            if seq != self.seq + 1:
                return ChainProblem(
                    seq,
                    event_id,
                    f"expected event #{self.seq + 1} here: an event before it was removed or reordered",
                )
            if event["prev_hash"] != self.hash:
                return ChainProblem(seq, event_id, "its link to the previous event is broken")
            key = self.key_of(self.hash, event)
            if key is None:
                return ChainProblem(
                    seq, event_id, "its contents were changed, or it is linked under no configured root key"
                )
            if self._older_than_epoch(key):
                return ChainProblem(
                    seq,
                    event_id,
                    f"it is linked under an older root key ({key.key_id}) than the event before it "
                    f"({self.epoch})",
                )
            self.epoch, self.seq, self.hash, self.last_event_id = key.key_id, seq, event["hash"], event_id
        return None

    def head_problem(
        self, head_seq: int, head_hash: str, mac: str
    ) -> tuple[RootKey | None, ChainProblem | None]:
        """The key the head's MAC is under, and a problem unless that is a readable root key (a retired key MACs
        no head: the chain has moved past it). A head at #0 (no event yet) has no MAC."""
        if not head_seq:
            return None, None
        key = head_key(self.ring, head_seq, head_hash, mac)
        if key is None and self._refreshed():
            key = head_key(self.ring, head_seq, head_hash, mac)
        if key is None:
            return None, ChainProblem(
                head_seq, "", "the chain head was altered (its MAC does not match): events may be missing"
            )
        if key.retired:
            return key, ChainProblem(
                head_seq,
                "",
                f"the chain head's MAC is under a retired root key ({key.key_id}): it was rewound or forged",
            )
        return key, None

    def up_to_head(
        self, events: Iterable[dict[str, Any]], head_seq: int, head_hash: str, mac: str
    ) -> ChainProblem | None:
        """Check the head's MAC, walk `events`, and check that they end where the head says, under a key no older
        than the last link's (the writer MACs the head under the key it links under)."""
        key, problem = self.head_problem(head_seq, head_hash, mac)
        self.head_key = "" if key is None else key.key_id
        problem = problem or self.events(events)
        if problem is not None:
            return problem
        if head_seq != self.seq or not hmac.compare_digest(head_hash, self.hash):
            return ChainProblem(
                self.seq,
                self.last_event_id,
                f"the chain head records event #{head_seq}: events after this one were removed",
            )
        if key is not None and self._older_than_epoch(key):
            return ChainProblem(
                head_seq,
                self.last_event_id,
                f"the chain head's MAC is under an older root key ({key.key_id}) than its last event's "
                f"({self.epoch}): it was rewound",
            )
        return None

"""What depends on a root key other than the current one, and how each kind of it moves to the current key.

Everything the service seals or MACs under a root key is a *dependent* of that key. After a rotation, dependents
still under a previous key keep working (the previous keys stay readable, kmsconsole.core.rootkey), and
`rootkey retire` refuses while any remains. Each subsystem registers one `RootKeyDependent` per kind of thing it
keeps (key material, access-key secrets, each row-MAC kind, the audit chain's anchors, token digests), and
`kmsconsole.core.rootkey_rotation` asks all of them, in registration order, without knowing what they are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from kmsconsole.core.rootkey import RootKeyRing


@dataclass(frozen=True)
class Remaining:
    """How many of a dependent's items still need a previous root key, and what moves them (for the operator)."""

    count: int
    how_they_move: str = "rootkey reseal moves them"
    # Items that no re-seal can move (a token digest: the token itself is not kept); retire may end them instead.
    movable: bool = True


@dataclass(frozen=True)
class Moved:
    """What one `reseal` of a dependent did: items moved to the current key, and items left under a previous
    key because they failed their integrity check (never blessed; reported by kind and primary key only)."""

    moved: int = 0
    failed: tuple[str, ...] = ()


def _nothing_to_stamp(ring: RootKeyRing) -> None:
    return None


def _nothing_to_move(ring: RootKeyRing, batch_size: int) -> Moved:
    return Moved()


def _nothing_to_end(ring: RootKeyRing) -> int:
    return 0


@dataclass(frozen=True)
class RootKeyDependent:
    """One kind of thing kept under a root key.

    - `remaining(ring)`: what still needs one of `ring.previous` (or an unknown key).
    - `reseal(ring, batch_size)`: move what it can to `ring.current`, each item checked under the key it is under
      first, in transactions of at most `batch_size` items; idempotent and resumable.
    - `stamp(ring)`: called by `rootkey rotate` before the new key becomes current, for items whose key cannot be
      told later (a keyed digest of a token not kept): records that they are under `ring.current`.
    - `end_unmovable(ring)`: ends the items no re-seal can move (revokes the tokens); `rootkey retire
      --end-unmovable` only. Returns how many it ended. It may be called inside the caller's transaction (the
      retire operation's), so it keeps `policies.principal_locks`' order whatever it ends: all in one
      transaction of its own (a savepoint inside the caller's), it takes every row lock first and appends its
      audit events last (`kmsconsole.audit.recorder.events_at_the_end`: the chain head is the last lock, rule
      5); an item that is gone, ended or moved to `ring.current` by the time it is locked is left alone (not
      counted); it authorizes before it looks anything up, so an item gone meanwhile is never an error.
    """

    name: str
    remaining: Callable[[RootKeyRing], Remaining]
    reseal: Callable[[RootKeyRing, int], Moved] = _nothing_to_move
    stamp: Callable[[RootKeyRing], None] = _nothing_to_stamp
    end_unmovable: Callable[[RootKeyRing], int] = _nothing_to_end
    order: int = field(default=100, compare=False)


_DEPENDENTS: dict[str, RootKeyDependent] = {}


def register(dependent: RootKeyDependent) -> RootKeyDependent:
    """Register (or replace, by name) a dependent. Lower `order` is handled first: children before the parents
    whose MACs cover theirs."""
    _DEPENDENTS[dependent.name] = dependent
    return dependent


def dependents() -> list[RootKeyDependent]:
    return sorted(_DEPENDENTS.values(), key=lambda dependent: dependent.order)

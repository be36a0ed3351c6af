"""Keyed digests of the tokens the service hands out and keeps only as digests, across root-key rotations.

An API token (`kmsconsole.api.tokens`) and a role session's token (`policies.session_tokens`) are stored as an
HMAC under a root-key subkey, with the id of the root key it was made under beside it (blank for a digest made
before digests recorded it: `rootkey rotate` stamps those with the key that was current, `stamp`). The token
itself is not kept, so no re-seal can move a digest to a new key: a presented token is checked under every
readable key (`matching_key`), and one that matched under a previous key is hashed again under the current one
in the same request (`rehash_quietly`), so the tokens in use move by themselves. Those nobody presents stay under
the previous key, are counted by their dependent's `remaining`, and stop working when it is retired.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.db.models import QuerySet

from kmsconsole.core import errors
from kmsconsole.core.rootkey import RootKey, RootKeyRing, refresh_root_keys, root_keys
from kmsconsole.core.rootkey_dependents import Remaining, RootKeyDependent, register

logger = logging.getLogger(__name__)

# Who ends the tokens left at a retirement (`end_unmovable`), as their audit events name the operator.
RETIRE_CALLER = "manage.py rootkey retire"
# What `rootkey status` and a refused `rootkey retire` say about a dependent of token digests.
HOW_THEY_MOVE = (
    "each moves to the current root key the next time it is used; one not used before `rootkey retire` stops "
    "working then (retire --end-unmovable {verb} them first, audited), and one that expires first is no longer "
    "counted"
)


def digest_now(purpose: str, message: bytes) -> tuple[str, str]:
    """(HMAC-SHA256 hex of `message` under the current root key's subkey for `purpose`, that key's id): what a
    new or re-hashed digest stores."""
    current = root_keys().current
    return hmac.new(current.subkey(purpose), message, hashlib.sha256).hexdigest(), current.key_id


def matching_key(purpose: str, message: bytes, stored: str) -> RootKey | None:
    """The readable root key (current first) under whose subkey `stored` is the HMAC of `message`, or None.
    Every readable key's candidate is compared in constant time, all of them whichever matches, so timing says
    nothing about which key a digest is under. A digest under no readable key (forged by a database writer, or
    made under a retired key) matches nothing.

    On a miss the process looks whether its key file was rewritten, and if so tries once more under the keys
    read then (`refresh_root_keys`): during a rotation another process that has read the new key already
    re-hashes the tokens it sees under it (their first use), and this one must not refuse them meanwhile."""
    found = _matching_key(purpose, message, stored)
    if found is None and refresh_root_keys():
        found = _matching_key(purpose, message, stored)
    return found


def _matching_key(purpose: str, message: bytes, stored: str) -> RootKey | None:
    found: RootKey | None = None
    for key in root_keys().readable:
        candidate = hmac.new(key.subkey(purpose), message, hashlib.sha256).hexdigest()
        if hmac.compare_digest(candidate, str(stored or "")) and found is None:
            found = key
    return found


def rehash_quietly(kind: str, pk: object, work: Callable[[], bool]) -> bool:
    """Run a re-hash (`work`, which takes its row locks NOWAIT, `lock_nowait`) in its own transaction (a savepoint
    inside one) and say whether it happened. It never fails the request that triggered it: a lock held by
    another transaction (a deletion, a revocation, a concurrent re-hash, a write bumping the same generation), a
    row gone or changed meanwhile, or any database error leaves the digest as it was (it still verifies; the
    next use tries again). NOWAIT on every lock means the re-hash never waits, so it never takes part in a
    deadlock and never makes PostgreSQL abort the concurrent transaction."""
    try:
        with transaction.atomic():
            return work()
    except (DatabaseError, errors.KmsError):
        logger.info("The %s pk=%s was not re-hashed under the current root key this time", kind, pk)
        return False


def key_share_nowait(table: str, pk: int) -> bool:
    """Lock the row `pk` of `table` FOR KEY SHARE NOWAIT to the end of the transaction (the lock a child row's
    insert takes on its principal: `policies.principal_locks.held_for_a_child`), and say whether it is there.
    Raises DatabaseError at once when a deletion (or key change) holds it. SQLite serialises writers."""
    if connection.vendor != "postgresql":
        return True
    quoted = connection.ops.quote_name(table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {quoted} WHERE id = %s FOR KEY SHARE NOWAIT", [pk])  # noqa: S608 - the table name is a model's own
        return cursor.fetchone() is not None


def digest_dependent(
    *,
    name: str,
    live: Callable[[], QuerySet[Any]],
    key_id_field: str,
    ends: str,
    end: Callable[[RootKeyRing, QuerySet[Any]], int],
) -> RootKeyDependent:
    """The root-key dependent of one kind of stored token digest, registered: `live()` are the tokens that still
    work (unexpired, unrevoked), `key_id_field` the column naming the root key each digest is under, `end` ends
    the tokens of a queryset left under a key of `ring` other than its current one (for `rootkey retire
    --end-unmovable`, audited, as `RootKeyDependent.end_unmovable` says) and returns how many, `ends` says how
    in the operator's words ("revokes", "ends").

    - `remaining`: the live tokens whose digest is not under the current key (blank, unknown, counted), which no
      re-seal can move (`movable=False`);
    - `stamp`: called by `rootkey rotate` before the new key becomes current, so a blank (made before digests
      recorded their key, under the only key there was) is under `ring.current`;
    - `end_unmovable`: `end` of what `remaining` counts."""

    def not_current(ring: RootKeyRing) -> QuerySet[Any]:
        return live().exclude(**{key_id_field: ring.current.key_id})

    def remaining(ring: RootKeyRing) -> Remaining:
        count = not_current(ring).count()
        return Remaining(count=count, how_they_move=HOW_THEY_MOVE.format(verb=ends), movable=False)

    def stamp(ring: RootKeyRing) -> None:
        live().model.objects.filter(**{key_id_field: ""}).update(**{key_id_field: ring.current.key_id})

    return register(
        RootKeyDependent(
            name=name,
            remaining=remaining,
            stamp=stamp,
            end_unmovable=lambda ring: end(ring, not_current(ring)),
        )
    )

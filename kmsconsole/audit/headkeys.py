"""Which root key a writer extends the audit chain head under (kmsconsole.audit.writer).

Events are linked, and the head MACed, under the current root key, and a chain's key may only move forward
(kmsconsole.audit.chain). A process not yet restarted after `rootkey rotate` still has the old ring: had it linked
under its current key after another process moved the chain to the new one, the chain would move back. So a
writer extends a head only once it knows the head's MAC is under its current key or an older *readable* one. A
head under a retired key is refused, as the verifier refuses it (`ChainWalk.head_problem`): `rootkey retire` waits
until the head is under the current key, so such a head was rewound or forged by whoever kept the retired key, and
extending it under the current key would launder the rewind into a chain that verifies.

- The locked path (a change's transaction) checks the head it locked: `writing_key`.
- The batch statement on PostgreSQL requires the head's MAC to be the one the writer expects (`extending`): the
  MAC of the head it wrote or checked last, kept with the key it is under, or else the MAC under its current key
  (one HMAC; the database compares). A head under another key comes back with the statement's answer and is
  checked under the ring (`writing_key`).

A head under no key the process has makes it read the key file again if it was rewritten
(`kmsconsole.core.rootkey.refresh_root_keys`: `rootkey rotate` in another process); still none, and the write fails
closed like any failed audit write: the request fails, nothing is written, and the log names no key and no MAC.
With KMS_ROOT_KEY in the environment there is no file to read again: a process started before the new key was
put first fails its audit writes (and so its requests) as soon as a restarted one has written under that key, so
such processes must be restarted together. The head this process last wrote or checked is remembered, so a
writer that writes after itself pays no HMAC beyond its links and the new head's MAC.
"""

from __future__ import annotations

import logging
import time

from kmsconsole.audit.chain import HEAD_PURPOSE, head_key, head_mac
from kmsconsole.core.rootkey import RootKey, refresh_root_keys, root_keys

logger = logging.getLogger(__name__)

REFUSAL_LOG_SECONDS = 60.0
# The head last refused (seq, hash, key id) and when it was logged.
_last_refusal: tuple[tuple[int, str, str], float] | None = None


class ChainHeadUnderUnknownKey(Exception):
    """The chain head's MAC is under no root key this process has, even after a look at the key file: it may be
    under a newer key (another process's ring is newer and the file does not have it) or forged. Extending it could
    move the chain back to an older key, so nothing is written (the message names no key and no MAC)."""


class ChainHeadUnderRetiredKey(Exception):
    """The chain head's MAC is under a retired root key. The verifier refuses such a head (a retired key MACs no
    head), so the writer refuses to extend it: a new event under the current key would make a rewound chain
    verify again. Nothing is written."""


# The last head this process wrote or checked: (id of the root key its MAC is under, seq, hash, MAC). That the MAC
# is that key's is a fact about the values, true whether or not the head committed; the ring decides whether the
# key may still be extended (any configured key is older than, or is, the current one).
_known_head: tuple[str, int, str, str] | None = None


def remember(key: RootKey, last_seq: int, last_hash: str, mac: str) -> None:
    global _known_head
    _known_head = (key.key_id, last_seq, last_hash, mac)


def _known_mac(last_seq: int, last_hash: str) -> str | None:
    """The MAC of the head (last_seq, last_hash) if this process knows it under a readable key (a key retired since
    it was remembered no longer vouches for a head)."""
    known = _known_head
    if known is None or known[1] != last_seq or known[2] != last_hash:
        return None
    key = root_keys().find(known[0])
    return known[3] if key is not None and not key.retired else None


def writing_key(last_seq: int, last_hash: str, mac: str) -> RootKey:
    """The root key to extend the head (last_seq, last_hash, MACed `mac`) under: the current one, once the head is
    known to be under it or under an older readable key (the chain moves forward). Raises
    ChainHeadUnderUnknownKey if it is under none, even after a look at the key file, and ChainHeadUnderRetiredKey
    if it is under a retired one (the verifier refuses that head: it was rewound or forged)."""
    if not last_seq or _known_mac(last_seq, last_hash) == mac:  # #0: no event yet, so no key to follow
        return root_keys().current
    ring = root_keys()
    key = head_key(ring, last_seq, last_hash, mac)
    if key is None and refresh_root_keys():
        # Another process moved the chain to a key this one had not read yet (`rootkey rotate` rewrote the file).
        ring = root_keys()
        key = head_key(ring, last_seq, last_hash, mac)
    if key is None:
        _log_refusal(
            (last_seq, last_hash, ""),
            "The audit chain head (#%d) is under no root key this process has, even after a look at the key file: "
            "no audit event can be written (compare the root key file with the other processes')",
            last_seq,
        )
        raise ChainHeadUnderUnknownKey(
            f"The audit chain head (#{last_seq}) is under no root key this process has; nothing was written."
        )
    if key.retired:
        _log_refusal(
            (last_seq, last_hash, key.key_id),
            "The audit chain head (#%d) is under a retired root key (%s): it was rewound or forged; no audit event "
            "can be written (run `manage.py audit verify`)",
            last_seq,
            key.key_id,
        )
        raise ChainHeadUnderRetiredKey(
            f"The audit chain head (#{last_seq}) is under a retired root key; nothing was written."
        )
    remember(key, last_seq, last_hash, mac)
    return ring.current


def _log_refusal(head: tuple[int, str, str], message: str, *args: object) -> None:
    """Log a refused head at ERROR once, then at most once every REFUSAL_LOG_SECONDS while the same head is refused:
    every request fails on it, and the log must stay readable (the requests' own failures say the rest)."""
    global _last_refusal
    now = time.monotonic()
    last = _last_refusal
    if last is not None and last[0] == head and now - last[1] < REFUSAL_LOG_SECONDS:
        return
    _last_refusal = (head, now)
    logger.error(message, *args)


def extending(old: tuple[int, str], mac: str | None) -> tuple[RootKey, str]:
    """The root key to extend the head `old` under, and the MAC the batch statement requires the head to carry.
    `mac` None (`old` is where this process or the previous turn left the head): the MAC this process remembers
    for it, else the one under the current key (the database tells if it is another)."""
    if mac is not None:
        return writing_key(*old, mac), mac
    current = root_keys().current
    known = _known_mac(*old)
    return current, known if known is not None else head_mac(*old, current.subkey(HEAD_PURPOSE))

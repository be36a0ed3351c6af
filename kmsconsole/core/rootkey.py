"""The service's root keys: where they come from, how they are created and rotated, and what is built on them.

Resolution order: KMS_ROOT_KEY (or the file KMS_ROOT_KEY_FILE names); else the file `root.key` in KMS_DATA_DIR.
`python manage.py rootkey init` creates that file once (mode 0600). There is no silent fallback: without a root
key the start fails (system check kmsconsole.E001).

A root key source holds one or more keys, one per line (or separated by commas in KMS_ROOT_KEY), each 64 hex
characters or base64 of 32 bytes; blank lines and lines starting with `#` are ignored:

- the first is the **current** key: everything new is sealed and MACed under it;
- the others are **previous** keys, kept so that what was sealed or MACed under them still opens until
  `rootkey reseal` has moved it to the current key;
- a key written `retired:<key>` opens and verifies nothing any more, except the audit trail's links written while
  it was current (old events stay verifiable; no new event can be written or accepted under it).

Each key has a public id (`RootKey.key_id`, 16 hex characters derived one-way from it) that sealed blobs, the
audit chain and `rootkey status` name it by. `python manage.py rootkey` rotates, re-seals and retires
(kmsconsole.core.rootkey_rotation).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from keys.crypto.sealing import (
    ROOT_KEY_BYTES,
    ROOT_KEY_ID_BYTES,
    Sealer,
    SealingError,
    derive_subkey,
    root_key_id,
)

logger = logging.getLogger(__name__)

HOW_TO_CREATE = (
    "No root key is configured. Set KMS_ROOT_KEY (64 hex characters; create one with "
    "`python -c 'import secrets; print(secrets.token_hex(32))'`) or KMS_ROOT_KEY_FILE, or run "
    "`python manage.py rootkey init` to generate one into KMS_DATA_DIR."
)
RETIRED_PREFIX = "retired:"
# What a retired key is kept as: the subkeys the audit trail verifies old links, heads, checkpoints and archive
# manifests under (kmsconsole.audit.chain, checkpoint, retention). The root key itself is not kept, so nothing
# sealed or MACed under it (in the database or any backup of it) can be opened or forged with the key file.
KEPT_WHEN_RETIRED = ("audit-chain/v1", "audit-chain/head/v1", "audit-checkpoint", "audit-archive/manifest/v1")
_SUBKEY_HEX = 64


class RetiredRootKeyError(ValueError):
    """A retired key was asked for a subkey it does not keep (anything but the audit trail's)."""


@dataclass(frozen=True)
class RootKey:
    """One root key of the ring. `secret` and `kept` never appear in a repr (and so in no log or traceback).

    A retired key written by `rootkey retire` has no `secret`: only its `kept` subkeys (KEPT_WHEN_RETIRED)."""

    key_id: str
    secret: bytes | None = field(repr=False)
    retired: bool = False
    kept: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)

    def subkey(self, purpose: str) -> bytes:
        """This key's subkey for `purpose` (derived once per reading of the keys)."""
        derived = _keys().subkeys
        found = derived.get((self.key_id, purpose))
        if found is None:
            found = derived[(self.key_id, purpose)] = self._derive(purpose)
        return found

    @property
    def material(self) -> bytes:
        """The key itself; a retired key kept as its audit subkeys has none."""
        if self.secret is None:
            raise RetiredRootKeyError(
                f"The retired root key {self.key_id} is not kept, only its audit subkeys"
            )
        return self.secret

    def _derive(self, purpose: str) -> bytes:
        if self.secret is not None:
            return derive_subkey(self.secret, purpose)
        kept = dict(self.kept).get(purpose)
        if kept is None:
            raise RetiredRootKeyError(f"The retired root key {self.key_id} keeps no subkey for {purpose}")
        return kept

    def retire(self) -> RootKey:
        """This key as `rootkey retire` keeps it: retired, its audit subkeys only, the key itself dropped."""
        kept = (
            self.kept
            if self.secret is None
            else tuple((p, derive_subkey(self.secret, p)) for p in KEPT_WHEN_RETIRED)
        )
        return RootKey(key_id=self.key_id, secret=None, retired=True, kept=kept)


@dataclass(frozen=True)
class RootKeyRing:
    """The configured root keys: `current` first, then `previous` (readable), then `retired` (audit links only)."""

    current: RootKey
    previous: tuple[RootKey, ...] = ()
    retired: tuple[RootKey, ...] = ()

    @property
    def readable(self) -> tuple[RootKey, ...]:
        """The keys secrets may be opened and MACs verified under: the current one first."""
        return (self.current, *self.previous)

    @property
    def everything(self) -> tuple[RootKey, ...]:
        return (*self.readable, *self.retired)

    def find(self, key_id: str) -> RootKey | None:
        """The configured key (retired ones included) with this id, or None."""
        return next((key for key in self.everything if key.key_id == key_id), None)


def _decode(text: str, source: str) -> bytes:
    text = text.strip()
    try:
        raw = (
            bytes.fromhex(text) if len(text) == 2 * ROOT_KEY_BYTES else base64.b64decode(text, validate=True)
        )
    except (ValueError, binascii.Error) as exc:
        raise ImproperlyConfigured(f"A root key from {source} is neither hex nor base64") from exc
    if len(raw) != ROOT_KEY_BYTES:
        raise ImproperlyConfigured(
            f"A root key from {source} must be 256 bits (32 bytes), not {len(raw)} bytes"
        )
    return raw


def encode_root_key(key: RootKey) -> str:
    """One entry of a root key source for `key` (what `parse_root_keys` reads back). A retired key is written as
    `retired:<key id>:<purpose>=<subkey hex>;...`: its audit subkeys, never the key (`RootKey.retire`)."""
    if not key.retired:
        return key.material.hex()
    kept = key.retire().kept
    return f"{RETIRED_PREFIX}{key.key_id}:" + ";".join(f"{purpose}={sub.hex()}" for purpose, sub in kept)


def _parse_retired(text: str, source: str) -> RootKey:
    """`retired:` followed by a key (written by hand: kept whole, though only its audit subkeys are used) or by
    `<key id>:<purpose>=<hex>;...` (what `rootkey retire` writes)."""
    if ":" not in text:
        secret = _decode(text, source)
        return RootKey(key_id=root_key_id(secret).hex(), secret=secret, retired=True).retire()
    key_id, _, listed = text.partition(":")
    kept: dict[str, bytes] = {}
    for item in listed.split(";"):
        purpose, _, value = item.strip().partition("=")
        if purpose not in KEPT_WHEN_RETIRED or len(value) != _SUBKEY_HEX or purpose in kept:
            raise ImproperlyConfigured(f"A retired root key in {source} is malformed")
        try:
            kept[purpose] = bytes.fromhex(value)
        except ValueError as exc:
            raise ImproperlyConfigured(f"A retired root key in {source} is malformed") from exc
    if len(key_id) != 2 * ROOT_KEY_ID_BYTES or set(kept) != set(KEPT_WHEN_RETIRED):
        raise ImproperlyConfigured(f"A retired root key in {source} is malformed")
    kept_in_order = tuple((purpose, kept[purpose]) for purpose in KEPT_WHEN_RETIRED)
    return RootKey(key_id=key_id.lower(), secret=None, retired=True, kept=kept_in_order)


def parse_root_keys(text: str, source: str) -> RootKeyRing | None:
    """The ring a root key source describes, or None when it holds no key. Refuses (ImproperlyConfigured, naming
    the source and never a key) a retired key first, a key listed twice, or a key that does not decode."""
    entries = [
        entry.strip()
        for line in text.splitlines()
        if not line.strip().startswith("#")
        for entry in line.split(",")
        if entry.strip()
    ]
    if not entries:
        return None
    keys: list[RootKey] = []
    for entry in entries:
        if entry.lower().startswith(RETIRED_PREFIX):
            keys.append(_parse_retired(entry[len(RETIRED_PREFIX) :], source))
        else:
            secret = _decode(entry, source)
            keys.append(RootKey(key_id=root_key_id(secret).hex(), secret=secret))
    if keys[0].retired:
        raise ImproperlyConfigured(f"The first root key in {source} is the current one and cannot be retired")
    if len({key.key_id for key in keys}) != len(keys):
        raise ImproperlyConfigured(f"{source} lists a root key twice")
    return RootKeyRing(
        current=keys[0],
        previous=tuple(key for key in keys[1:] if not key.retired),
        retired=tuple(key for key in keys[1:] if key.retired),
    )


def root_key_path() -> Path:
    """The file the root keys are read from (and `rootkey init`/`rotate` write): KMS_ROOT_KEY_FILE when set,
    else `root.key` in KMS_DATA_DIR. Meaningless when KMS_ROOT_KEY holds the keys itself."""
    return Path(settings.KMS_ROOT_KEY_FILE or settings.KMS_ROOT_KEY_PATH)


def root_keys_in_environment() -> bool:
    """Whether KMS_ROOT_KEY itself holds the keys (no file to rotate in place)."""
    return bool(settings.KMS_ROOT_KEY) and not settings.KMS_ROOT_KEY_FILE


def find_root_keys() -> RootKeyRing | None:
    """The configured root keys as they are now (the file is read afresh), or None when there is none (never
    generates one)."""
    return _read_root_keys()[0]


FileSignature = tuple[int, int, int]


def _file_signature(path: Path) -> FileSignature | None:
    """What changes when the key file is rewritten (a rename gives a new inode): None if it cannot be read."""
    try:
        found = path.stat()
    except OSError:
        return None
    return (found.st_ino, found.st_mtime_ns, found.st_size)


def _read_root_keys() -> tuple[RootKeyRing | None, FileSignature | None]:
    """The configured ring, and the signature of the file it was read from (None from the environment)."""
    if root_keys_in_environment():
        return parse_root_keys(settings.KMS_ROOT_KEY, "KMS_ROOT_KEY"), None
    path = root_key_path()
    if settings.KMS_ROOT_KEY_FILE or path.exists():
        signature = _file_signature(path)  # before the read: a rewrite in between is seen at the next look
        try:
            text = path.read_text()
        except OSError as exc:
            raise ImproperlyConfigured(f"The root key file {path} cannot be read: {exc.strerror}") from exc
        return parse_root_keys(text, str(path)), signature
    return None, None


def find_root_key() -> bytes | None:
    """The configured current root key, or None when there is none (never generates one)."""
    ring = find_root_keys()
    return ring.current.secret if ring is not None else None


# How often a process looks whether its key file was rewritten (`rootkey rotate` and `retire` rewrite it): every
# process takes up a rotation within this many seconds, with no restart, and at once when it meets something
# under a key it does not have (`refresh_root_keys`).
RECHECK_SECONDS = 5.0


class _Keys:
    """One reading of the root keys and what is derived from it. A reload swaps in a new one whole, so a thread
    deriving from the old reading at that moment stores into the old one and never into the new."""

    def __init__(self, ring: RootKeyRing, signature: FileSignature | None) -> None:
        self.ring = ring
        self.signature = signature
        self.next_look = time.monotonic() + RECHECK_SECONDS
        self.sealer = Sealer([key.material for key in ring.readable])
        self.subkeys: dict[tuple[str, str], bytes] = {}
        self.readable_subkeys: dict[str, tuple[bytes, ...]] = {}


_keys_in_use: _Keys | None = None
_loading = threading.Lock()


def _keys() -> _Keys:
    keys = _keys_in_use
    if keys is None:
        with _loading:
            keys = _keys_in_use or _load()
    elif keys.signature is not None and time.monotonic() >= keys.next_look:
        keys.next_look = time.monotonic() + RECHECK_SECONDS
        refresh_root_keys()
        keys = _keys_in_use or keys
    return keys


def _load() -> _Keys:
    global _keys_in_use
    ring, signature = _read_root_keys()
    if ring is None and settings.DEBUG:
        # Development convenience only; with DEBUG off the start has already refused (check E001).
        create_root_key_file()
        ring, signature = _read_root_keys()
    if ring is None:
        raise ImproperlyConfigured(HOW_TO_CREATE)
    _keys_in_use = _Keys(ring, signature)
    return _keys_in_use


def refresh_root_keys() -> bool:
    """Read the key file again if it was rewritten since this process read it (one `stat` when it was not);
    True when the ring changed. Called every RECHECK_SECONDS, and by whoever meets a blob, a MAC or a digest
    no readable key verifies, before giving up on it. A file that no longer reads as a ring is logged (never its
    contents) and the keys in use are kept: a bad edit never stops a running service."""
    global _keys_in_use
    keys = _keys_in_use
    if keys is None or keys.signature is None or _file_signature(root_key_path()) == keys.signature:
        return False
    with _loading:
        if _keys_in_use is not keys:  # another thread reloaded meanwhile
            return True
        try:
            ring, signature = _read_root_keys()
        except ImproperlyConfigured as exc:
            logger.error(
                "The root key file was rewritten but cannot be used; keeping the keys in use: %s", exc
            )
            keys.signature = _file_signature(root_key_path())  # not again until it changes once more
            return False
        if ring is None:
            logger.error("The root key file was rewritten without a key; keeping the keys in use")
            keys.signature = signature
            return False
        changed = ring != keys.ring
        _keys_in_use = _Keys(ring, signature)
    if changed:
        logger.info("Root keys read again: current %s, %d previous", ring.current.key_id, len(ring.previous))
    return changed


def root_keys() -> RootKeyRing:
    """The root keys this process uses (read once; `reload_root_keys()` reads them again)."""
    return _keys().ring


def root_key() -> bytes:
    """The current root key."""
    return _keys().ring.current.material


def sealer() -> Sealer:
    return _keys().sealer


def open_sealed(blob: bytes, *, bound_to: str) -> bytes:
    """`sealer().open()`, reading the key file again first if the blob does not open and the file was rewritten
    (another process rotated, and sealed this under the new key, before this one looked). SealingError otherwise."""
    try:
        return sealer().open(blob, bound_to=bound_to)
    except SealingError:
        if not refresh_root_keys():
            raise
    return sealer().open(blob, bound_to=bound_to)


def subkey(purpose: str) -> bytes:
    """The current root key's subkey for `purpose`: what everything new is MACed or encrypted under."""
    return _keys().ring.current.subkey(purpose)


def readable_subkeys(purpose: str) -> tuple[bytes, ...]:
    """The subkeys for `purpose` of every readable root key, the current one first: what a MAC made before a
    rotation may be under until it is made again."""
    keys = _keys()
    found = keys.readable_subkeys.get(purpose)
    if found is None:
        found = keys.readable_subkeys[purpose] = tuple(key.subkey(purpose) for key in keys.ring.readable)
    return found


def readable_macs(purpose: str, message: bytes) -> tuple[str, ...]:
    """HMAC-SHA256 (hex) of `message` under every readable root key's subkey, the current one first: the values a
    stored keyed digest may hold (a lookup asks for any of them)."""
    return tuple(hmac.new(key, message, hashlib.sha256).hexdigest() for key in readable_subkeys(purpose))


def mac_matches(purpose: str, message: bytes, mac: str) -> bool:
    """Whether `mac` (hex) is the HMAC-SHA256 of `message` under a readable root key's subkey for `purpose`.
    Every candidate is compared in constant time, and all are compared whichever matches."""
    found = _any_matches(readable_macs(purpose, message), str(mac))
    if not found and refresh_root_keys():
        found = _any_matches(readable_macs(purpose, message), str(mac))
    return found


def _any_matches(candidates: tuple[str, ...], mac: str) -> bool:
    found = False
    for candidate in candidates:
        found |= hmac.compare_digest(candidate, mac)
    return found


def reload_root_keys() -> RootKeyRing:
    """Read the root keys again (after `rootkey rotate` or `retire` rewrote the file), dropping every value
    derived from the old reading. Raises ImproperlyConfigured, keeping the keys in use, if the source is now
    unusable."""
    global _keys_in_use
    fresh, signature = _read_root_keys()
    if fresh is None:
        raise ImproperlyConfigured(HOW_TO_CREATE)
    with _loading:
        _keys_in_use = _Keys(fresh, signature)
    return fresh


def create_root_key_file() -> bool:
    """Create `root.key` in the data dir with mode 0600 unless a root key exists. True when one was made."""
    if find_root_keys() is not None:
        return False
    path = root_key_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: two starts racing cannot both write (and so disagree about) the root key.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(ROOT_KEY_BYTES) + "\n")
    logger.warning(
        "Generated a new root key at %s (mode 0600). Back it up: without it no stored key material or "
        "access-key secret can ever be decrypted.",
        path,
    )
    return True


def create_secret_key_file() -> bool:
    """Create the Django SECRET_KEY file in the data dir (mode 0600) unless SECRET_KEY is configured."""
    path = Path(settings.KMS_DATA_DIR) / "secret.key"
    if os.environ.get("SECRET_KEY") or os.environ.get("SECRET_KEY_FILE") or path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(50) + "\n")
    logger.warning("Generated a new SECRET_KEY at %s (mode 0600).", path)
    return True

"""Reads of keys: resolving a KeyId in any form AWS allows, key-state checks, and the key's condition values.

Inside a request snapshot (the AWS endpoint's cryptographic operations, `kmsconsole.generations.cache`) a key is
read once per process and kept as a `CachedKey` (its row with its account, aliases and tags, and lazily its
material versions and the grants of each caller that used it) while its generation (`key:<key id>`) and its
account's alias generation (`alias:<account id>`) are unchanged; alias names resolve through a cache under the
alias generation. Outside a snapshot every read goes to the database.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from keys.models import Alias, Key, KeyState, Tag, alias_arn, key_arn
from kmsconsole.core import errors
from kmsconsole.core.rowmac import read_consistently
from kmsconsole.generations.cache import GenerationalCache, GenerationSnapshot, current_snapshot
from kmsconsole.generations.scopes import alias_scope, key_scope
from kmsconsole.operations import KeyResolution, KeyStates, Operation

_KEY_ARN = re.compile(
    r"^arn:(?P<partition>[\w-]+):kms:(?P<region>[\w-]*):(?P<account>[0-9]*):key/(?P<key_id>.+)$"
)
_ALIAS_ARN = re.compile(
    r"^arn:(?P<partition>[\w-]+):kms:(?P<region>[\w-]*):(?P<account>[0-9]*):(?P<alias>alias/.+)$"
)
# A multi-Region key's id: `mrk-` and 32 lowercase hex digits. AWS publishes no pattern for it; this one is inferred
# from the documented example (kms-spec §2.5, `mrk-1234abcd12ab34cd56ef1234567890ab`) and LocalStack's snapshot
# recorded against AWS. A valid key id that names no key here: this KMS has no multi-Region keys (CreateKey
# refuses MultiRegion). The audit trail's key filter takes it too (kmsconsole.audit.trail).
MULTI_REGION_KEY_ID = re.compile(r"mrk-[0-9a-f]{32}", re.ASCII)


@dataclass(frozen=True)
class ResolvedKey:
    """A key found from a request's KeyId, and the alias name it was named by (for kms:RequestAlias)."""

    key: Key
    request_alias: str | None = None


@dataclass
class CachedKey:
    """What the request path reads about one key, built under one generation of the key and of its account's
    aliases. `key` is shared by every request of the process: the cached path only reads it.

    `parts` holds what is loaded on first use, after the entry's generations were read (so never older than
    them): material versions (`material:<id>`, `material:current`) and grant indexes (`grants:<grantees>`).
    """

    key: Key
    aliases: tuple[str, ...]
    tags: tuple[tuple[str, str], ...]
    parts: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # Bounds a key's lazily loaded parts (one grant index per distinct caller).
    MAX_PARTS = 512

    def part(self, name: str, load: Any) -> Any:
        """The part `name`, loaded by `load()` the first time (outside the lock: loads may query)."""
        try:
            return self.parts[name]
        except KeyError:
            pass
        value = load()
        with self.lock:
            if len(self.parts) >= self.MAX_PARTS:
                self.parts.clear()
            self.parts[name] = value
        return value


_KEYS: GenerationalCache[uuid.UUID, CachedKey] = GenerationalCache("keys", maxsize=4_096)
# (account id, alias name) -> key id, under `alias:<account id>`.
_ALIASES: GenerationalCache[tuple[str, str], uuid.UUID] = GenerationalCache("aliases", maxsize=8_192)


def _cached_key(key_id: uuid.UUID, snapshot: GenerationSnapshot) -> CachedKey | None:
    """The key with this id in any account, from the process cache or the database (None if there is none)."""
    entry = _KEYS.get(key_id, snapshot)
    if entry is not None:
        return entry
    # Each generation is read before the rows it vouches for.
    scope = key_scope(key_id)
    generation = snapshot.value(scope)

    def load() -> tuple[Key, tuple[str, int], list[Alias], list[Tag]] | None:
        key = Key.objects.select_related("account").filter(key_id=key_id).first()
        if key is None:
            return None
        names = alias_scope(key.account.account_id)
        names_generation = snapshot.value(names)
        aliases, tags = _alias_rows(key), _tag_rows(key)
        # Once per load into the cache (a write bumps the generation, so a changed row reloads): the key's MAC
        # covers its aliases and tags, each of which has its own.
        key.check_loaded(aliases, tags)
        return key, (names, names_generation), aliases, tags

    loaded = read_consistently(load)
    if loaded is None:
        return None
    key, (names, names_generation), aliases, tags = loaded
    entry = CachedKey(
        key=key,
        aliases=tuple(alias.name for alias in aliases),
        tags=tuple((tag.tag_key, tag.tag_value) for tag in tags),
    )
    return _KEYS.put(key_id, entry, ((scope, generation), (names, names_generation)))


def _alias_rows(key: Key) -> list[Alias]:
    if _prefetched(key, "aliases"):
        rows = sorted(key.aliases.all(), key=lambda row: row.name)
        for row in rows:
            if row.account_id == key.account_id:
                row.account = key.account  # no query (a key's aliases are of its account)
    else:
        rows = list(key.aliases.select_related("account").order_by("name"))
    for row in rows:
        row.key = key  # no query; the row MAC names the key
    return rows


def _tag_rows(key: Key) -> list[Tag]:
    rows = (
        sorted(key.tags.all(), key=lambda row: row.tag_key)
        if _prefetched(key, "tags")
        else list(key.tags.order_by("tag_key"))
    )
    for row in rows:
        row.key = key
    return rows


def _prefetched(key: Key, relation: str) -> bool:
    """Whether a list prefetched the key's `relation` (one query for a page of keys, not one per key)."""
    return relation in getattr(key, "_prefetched_objects_cache", {})


def cached_entry(key: Key) -> CachedKey | None:
    """The cache entry `key` came from, if the request runs in a snapshot and the entry is still current."""
    snapshot = current_snapshot()
    if snapshot is None:
        return None
    entry = _KEYS.get(key.key_id, snapshot)
    return entry if entry is not None and entry.key is key else None


def key_by_id(key_id: uuid.UUID) -> Key | None:
    """The key with this id in any account (a ciphertext header names it), or None."""
    snapshot = current_snapshot()
    if snapshot is not None:
        entry = _cached_key(key_id, snapshot)
        return entry.key if entry is not None else None
    return checked(Key.objects.select_related("account").filter(key_id=key_id).first())


def check_rows(key: Key) -> None:
    """Raise KMSInternalException unless the key's row, and its aliases and tags (as a list prefetched them, or
    read now), match their MACs: what resolving the key checks before any request on it."""
    checked_aliases_and_tags(key)


def checked_aliases_and_tags(key: Key) -> tuple[tuple[str, ...], dict[str, str]]:
    """`check_rows(key)`, and the alias names and tags it checked (as a list prefetched them): what a request on
    the key reads of them (kms:ResourceAliases, aws:ResourceTag), with no further query or check.

    A key whose check fails is read again once (`read_consistently`): the key as it is now and its children read
    afresh, not as a list prefetched them, since a write (a request, `rootkey reseal`) may have committed between
    the statements. Only then does a list pay more queries for it, and only then is a failure logged."""
    reads = 0

    def load() -> tuple[list[Alias], list[Tag]]:
        nonlocal reads
        reads += 1
        if reads > 1:
            key.refresh_from_db()  # its columns and MAC as they are now; a list's prefetched children dropped
        aliases, tags = _alias_rows(key), _tag_rows(key)
        key.check_loaded(aliases, tags)
        return aliases, tags

    aliases, tags = read_consistently(load)
    return tuple(alias.name for alias in aliases), {tag.tag_key: tag.tag_value for tag in tags}


def checked(key: Key | None) -> Key | None:
    """The key, once its row MAC matches (KMSInternalException otherwise); None stays None."""
    if key is not None:
        key.check_row()
    return key


def prefetch_scopes(identifier: str, *, account_id: str | None) -> tuple[str, ...]:
    """The generation scopes a request naming `identifier` (a KeyId in any form, or the key id of a ciphertext
    header) in `account_id` will likely check, judged from what is cached: only a hint, so that a request reads
    all its generations in one query. Nothing is validated here."""
    if identifier.startswith("arn:"):
        key_match = _KEY_ARN.match(identifier)
        alias_match = _ALIAS_ARN.match(identifier)
        if key_match is not None:
            account_id, identifier = key_match["account"], key_match["key_id"]
        elif alias_match is not None:
            account_id, identifier = alias_match["account"], alias_match["alias"]
        else:
            return ()
    scopes: list[str] = []
    if identifier.startswith("alias/"):
        if account_id is None:
            return ()
        scopes.append(alias_scope(account_id))
        alias_entry = _ALIASES.peek((account_id, identifier))
        if alias_entry is None:
            return tuple(scopes)
        key_id: uuid.UUID = alias_entry[1]
    else:
        try:
            key_id = uuid.UUID(identifier)
        except ValueError:
            return ()
    entry = _KEYS.peek(key_id)
    if entry is not None:
        scopes.extend(scope for scope, _ in entry[0])
    else:
        scopes.append(key_scope(key_id))
        if account_id is not None:
            scopes.append(alias_scope(account_id))
    return tuple(scopes)


def _invalid_key_id(value: str) -> errors.KmsError:
    return errors.NotFoundException(f"Invalid keyId '{value[:2048]}'")


def _key_in(account_id: str, key_id: str, shown: str) -> Key:
    if MULTI_REGION_KEY_ID.fullmatch(key_id):
        # Well formed, so answered as AWS answers a well-formed id of a key that does not exist, never looked up.
        raise errors.NotFoundException(f"Key '{key_arn(account_id, key_id)}' does not exist")
    try:
        parsed = uuid.UUID(key_id)
    except ValueError:
        raise _invalid_key_id(shown) from None
    if str(parsed) != key_id.lower():
        raise _invalid_key_id(shown)
    snapshot = current_snapshot()
    if snapshot is not None:
        entry = _cached_key(parsed, snapshot)
        key = entry.key if entry is not None and entry.key.account.account_id == account_id else None
    else:
        key = checked(
            Key.objects.select_related("account")
            .filter(key_id=parsed, account__account_id=account_id)
            .first()
        )
    if key is None:
        raise errors.NotFoundException(f"Key '{key_arn(account_id, str(parsed))}' does not exist")
    return key


def _alias_in(account_id: str, name: str) -> ResolvedKey:
    snapshot = current_snapshot()
    key: Key | None = None
    if snapshot is not None:
        key = _cached_alias_key(account_id, name, snapshot)
    else:
        alias = (
            Alias.objects.select_related("account", "key__account")
            .filter(account__account_id=account_id, name=name)
            .first()
        )
        if alias is not None:
            alias.check_row()  # the name's account and key are the ones the service set
        key = checked(alias.key) if alias is not None else None
    if key is None:
        raise errors.NotFoundException(f"Alias {alias_arn(account_id, name)} is not found.")
    return ResolvedKey(key, request_alias=name)


def _cached_alias_key(account_id: str, name: str, snapshot: GenerationSnapshot) -> Key | None:
    key_id = _ALIASES.get((account_id, name), snapshot)
    if key_id is None:
        scope = alias_scope(account_id)
        generation = snapshot.value(scope)  # read before the row it vouches for
        alias = (
            Alias.objects.select_related("account", "key")
            .filter(account__account_id=account_id, name=name)
            .only("name", "mac", "account__account_id", "key__key_id")
            .first()
        )
        if alias is None:
            return None
        alias.check_row()  # once per load into the alias cache
        key_id = _ALIASES.put((account_id, name), alias.key.key_id, ((scope, generation),))
    entry = _cached_key(key_id, snapshot)
    return entry.key if entry is not None else None


def resolve_key(identifier: str, *, caller_account: str, operation: Operation) -> ResolvedKey:
    """Find the key a KeyId names, in the forms the operation accepts (kms-spec §2.5).

    Key ids and aliases name keys in the caller's account; ARNs may name another account's key only for
    operations that work cross-account. Malformed ids, other regions and unknown keys are NotFoundException
    with AWS's messages.
    """
    aliases_allowed = operation.key_resolution in (KeyResolution.ANY_IDENTIFIER, KeyResolution.CIPHERTEXT)
    if identifier.startswith("arn:"):
        key_match = _KEY_ARN.match(identifier)
        alias_match = _ALIAS_ARN.match(identifier)
        match = key_match or (alias_match if aliases_allowed else None)
        if match is None:
            raise _invalid_key_id(identifier)
        if match["partition"] != settings.KMS_PARTITION:
            raise errors.NotFoundException(f"Invalid arn {match['partition'][:64]}")
        if match["region"] != settings.KMS_REGION:
            raise errors.NotFoundException(f"Invalid arn {match['region'][:64]}")
        account_id = match["account"]
        if account_id != caller_account and not operation.cross_account:
            # Management operations never reach another account's key, whatever its policy says.
            raise errors.NotFoundException(f"Key '{identifier[:2048]}' does not exist")
        if key_match is not None:
            return ResolvedKey(_key_in(account_id, key_match["key_id"], identifier))
        return _alias_in(account_id, match["alias"])
    if identifier.startswith("alias/"):
        if not aliases_allowed:
            raise _invalid_key_id(identifier)
        return _alias_in(caller_account, identifier)
    return ResolvedKey(_key_in(caller_account, identifier, identifier))


def check_key_state(key: Key, operation: Operation) -> None:
    """Raise AWS's exception when the operation does not work in the key's state (kms-spec §4.2)."""
    rule = operation.key_states
    state = key.state
    if rule is KeyStates.PENDING_DELETION_ONLY:
        if state != KeyState.PENDING_DELETION:
            raise errors.KMSInvalidStateException(f"{key.arn} is not pending deletion.")
        return
    if rule is KeyStates.ANY:
        return
    if state == KeyState.PENDING_DELETION:
        raise errors.KMSInvalidStateException(f"{key.arn} is pending deletion.")
    if state == KeyState.PENDING_IMPORT:
        raise errors.KMSInvalidStateException(f"{key.arn} is pending import.")
    if rule is KeyStates.USABLE and state == KeyState.DISABLED:
        raise errors.DisabledException(f"{key.arn} is disabled.")


def key_condition_values(
    key: Key, *, request_alias: str | None, aliases: Sequence[str] | None = None
) -> dict[str, Any]:
    """The condition keys that describe the key itself (kms-spec §7.6), for every request on it. `aliases` are its
    alias names when the caller has read and checked them already (`checked_aliases_and_tags`)."""
    values: dict[str, Any] = {
        "kms:KeySpec": key.key_spec,
        "kms:KeyUsage": key.key_usage,
        "kms:KeyOrigin": key.origin,
        "kms:MultiRegion": False,
        "kms:ResourceAliases": list(_aliases_of(key) if aliases is None else aliases),
    }
    if request_alias is not None:
        values["kms:RequestAlias"] = request_alias
    return values


def _aliases_of(key: Key) -> tuple[str, ...]:
    """The key's alias names. Outside the cache each row is checked here; the set was checked with the key's
    MAC when the key was resolved (`checked`, `key_for(lock=True)`)."""
    if key.pk is None:
        return ()  # a key being created (CreateKey's lockout check): no alias can name it yet
    entry = cached_entry(key)
    if entry is not None:
        return entry.aliases
    rows = _alias_rows(key)
    for row in rows:
        row.check_row()
    return tuple(row.name for row in rows)


def key_tags(key: Key) -> dict[str, str]:
    """The key's tags (aws:ResourceTag), checked as `_aliases_of` checks aliases."""
    entry = cached_entry(key)
    if entry is not None:
        return dict(entry.tags)
    rows = _tag_rows(key)
    for row in rows:
        row.check_row()
    return {row.tag_key: row.tag_value for row in rows}

"""Reads of keys: resolving a KeyId in any form AWS allows, key-state checks, and the key's condition values."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from keys.models import Alias, Key, KeyState, alias_arn, key_arn
from kmsconsole.core import errors
from kmsconsole.operations import KeyResolution, KeyStates, Operation

_KEY_ARN = re.compile(
    r"^arn:(?P<partition>[\w-]+):kms:(?P<region>[\w-]*):(?P<account>\d*):key/(?P<key_id>.+)$"
)
_ALIAS_ARN = re.compile(
    r"^arn:(?P<partition>[\w-]+):kms:(?P<region>[\w-]*):(?P<account>\d*):(?P<alias>alias/.+)$"
)


@dataclass(frozen=True)
class ResolvedKey:
    """A key found from a request's KeyId, and the alias name it was named by (for kms:RequestAlias)."""

    key: Key
    request_alias: str | None = None


def _invalid_key_id(value: str) -> errors.KmsError:
    return errors.NotFoundException(f"Invalid keyId '{value[:2048]}'")


def _key_in(account_id: str, key_id: str, shown: str) -> Key:
    try:
        parsed = uuid.UUID(key_id)
    except ValueError:
        raise _invalid_key_id(shown) from None
    if str(parsed) != key_id.lower():
        raise _invalid_key_id(shown)
    key = Key.objects.select_related("account").filter(key_id=parsed, account__account_id=account_id).first()
    if key is None:
        raise errors.NotFoundException(f"Key '{key_arn(account_id, str(parsed))}' does not exist")
    return key


def _alias_in(account_id: str, name: str) -> Alias:
    alias = (
        Alias.objects.select_related("key__account").filter(account__account_id=account_id, name=name).first()
    )
    if alias is None:
        raise errors.NotFoundException(f"Alias {alias_arn(account_id, name)} is not found.")
    return alias


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
        if match["region"] != settings.KMS_REGION:
            raise errors.NotFoundException(f"Invalid arn {match['region'][:64]}")
        account_id = match["account"]
        if account_id != caller_account and not operation.cross_account:
            # Management operations never reach another account's key, whatever its policy says.
            raise errors.NotFoundException(f"Key '{identifier[:2048]}' does not exist")
        if key_match is not None:
            return ResolvedKey(_key_in(account_id, key_match["key_id"], identifier))
        alias = _alias_in(account_id, match["alias"])
        return ResolvedKey(alias.key, request_alias=alias.name)
    if identifier.startswith("alias/"):
        if not aliases_allowed:
            raise _invalid_key_id(identifier)
        alias = _alias_in(caller_account, identifier)
        return ResolvedKey(alias.key, request_alias=alias.name)
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


def key_condition_values(key: Key, *, request_alias: str | None) -> dict[str, Any]:
    """The condition keys that describe the key itself (kms-spec §7.6), for every request on it."""
    values: dict[str, Any] = {
        "kms:KeySpec": key.key_spec,
        "kms:KeyUsage": key.key_usage,
        "kms:KeyOrigin": key.origin,
        "kms:MultiRegion": False,
        "kms:ResourceAliases": list(key.aliases.values_list("name", flat=True)),
    }
    if request_alias is not None:
        values["kms:RequestAlias"] = request_alias
    return values


def key_tags(key: Key) -> dict[str, str]:
    return dict(key.tags.values_list("tag_key", "tag_value"))

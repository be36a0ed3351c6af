"""Invalidation scopes: the names of what the KMS request path caches, and `bump()`.

What the request path caches (see `kmsconsole.generations.cache`) falls into three kinds of scope, each named by
a natural key that a request knows before it reads anything:

- `iam:<account id>`: the account's principals: users, roles, groups and their members, role sessions, access
  keys (status, existence) and identity policies. A caller's credentials and identity policies are cached under
  the scope of the caller's account.
- `key:<key id, 32 hex digits>`: a key's row (state, policy, spec, usage, public key), its tags, its material
  versions and its grants.
- `alias:<account id>`: the account's aliases (alias name -> key, and each key's kms:ResourceAliases).

Every write to those tables bumps its scopes through database triggers (`kmsconsole.generations.triggers`), in
the writer's own transaction, whatever code path wrote. `bump()` is the same thing from Python, for tests and
for an operator who wants every process to re-read a scope.
"""

from __future__ import annotations

import secrets
import uuid

from django.db import DEFAULT_DB_ALIAS

from kmsconsole.generations.models import Generation


def iam_scope(account_id: str) -> str:
    return f"iam:{account_id}"


def key_scope(key_id: uuid.UUID) -> str:
    return f"key:{key_id.hex}"


def alias_scope(account_id: str) -> str:
    return f"alias:{account_id}"


def fresh_value() -> int:
    """A random, non-zero 62-bit generation value (0 means "no row yet")."""
    return secrets.randbits(62) + 1


def bump(*scopes: str, using: str = DEFAULT_DB_ALIAS) -> None:
    """Give each scope a fresh generation, in the caller's transaction (one upsert statement)."""
    unique = sorted(set(scopes))
    if unique:
        Generation.objects.using(using).bulk_create(
            [Generation(scope=scope, value=fresh_value()) for scope in unique],
            update_conflicts=True,
            unique_fields=["scope"],
            update_fields=["value"],
        )

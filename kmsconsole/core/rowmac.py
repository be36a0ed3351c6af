"""Row integrity: a MAC under the root key over the columns of a row that authorization or cryptography reads.

A database writer (issue 10's storage attacker) can change any column, but cannot compute the MAC of the new
values: `row_mac(kind, *fields)` is HMAC-SHA256 under the subkey `row-integrity` over a JSON array of the row's
kind and its fields (an unambiguous encoding: no two field lists share one). Each protected model mixes in
`MacProtectedRow`: `save()` recomputes the MAC whenever a covered column is written, and the loaders the request
path relies on call `check_row()` once, when a row enters a process cache, so the hot path pays nothing per
request. A mismatch fails closed with KMSInternalException and names neither the column nor the value.

`*_mac_fields()` functions take a row (a model instance or a migration's historical one: they read columns and
relations only), so the data migration that fills the MACs of existing rows computes exactly what the models do.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from django.db import models

from kmsconsole.core import errors

logger = logging.getLogger(__name__)

SUBKEY_PURPOSE = "row-integrity"
INTEGRITY_MESSAGE = "The stored state of this resource failed its integrity check."


def _subkey() -> bytes:
    from kmsconsole.core.rootkey import (
        subkey,  # late: rootkey reads settings, this module is imported by models
    )

    return subkey(SUBKEY_PURPOSE)


def _plain(value: Any) -> Any:
    """A JSON value for one field; distinct values of the types rows hold never encode alike."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("row MACs cover aware datetimes only")
        return {"t": value.astimezone(UTC).isoformat()}
    if isinstance(value, uuid.UUID):
        return {"u": str(value)}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"b": bytes(value).hex()}
    if isinstance(value, dict):
        return {"d": {str(k): _plain(v) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    raise TypeError(f"row MACs do not cover {type(value).__name__} values")


def encode(kind: str, fields: Sequence[Any]) -> bytes:
    return json.dumps(
        [kind, [_plain(field) for field in fields]], sort_keys=True, separators=(",", ":"), ensure_ascii=True
    ).encode()


def row_mac(kind: str, *fields: Any) -> str:
    """The MAC (64 hex characters) of a row of `kind` whose covered fields are `fields`, in order."""
    return hmac.new(_subkey(), encode(kind, fields), hashlib.sha256).hexdigest()


def verify_row_mac(stored: str, kind: str, *fields: Any) -> bool:
    return hmac.compare_digest(str(stored or ""), row_mac(kind, *fields))


def integrity_failure(kind: str, pk: Any) -> errors.KmsError:
    """Logged (kind and primary key only: never a value) and returned for the caller to raise."""
    logger.error("Row integrity check failed: %s row pk=%s was changed outside the service", kind, pk)
    return errors.KMSInternalException(INTEGRITY_MESSAGE)


class MacProtectedRow:
    """Mixed into a model with a `mac` column. `MAC_KIND` names the row type in the MAC; `MAC_COLUMNS` lists the
    model's own columns the MAC covers (a `save(update_fields=...)` touching one recomputes the MAC);
    `mac_fields()` returns the covered values (which may include related rows' identities)."""

    MAC_KIND: ClassVar[str]
    MAC_COLUMNS: ClassVar[frozenset[str]]
    mac: str
    pk: Any

    def mac_fields(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def refresh_mac(self) -> None:
        self.mac = row_mac(self.MAC_KIND, *self.mac_fields())

    def check_row(self) -> None:
        """Raise KMSInternalException (and log) unless the row's MAC matches its covered values."""
        if not verify_row_mac(self.mac, self.MAC_KIND, *self.mac_fields()):
            raise integrity_failure(self.MAC_KIND, self.pk)

    def save(self, *args: Any, **kwargs: Any) -> None:
        update_fields: Iterable[str] | None = kwargs.get("update_fields")
        if update_fields is None:
            self.refresh_mac()
        else:
            fields = set(update_fields)
            if fields & self.MAC_COLUMNS and "mac" not in fields:
                self.refresh_mac()
                kwargs["update_fields"] = [*fields, "mac"]
            elif "mac" in fields:
                self.refresh_mac()
        super().save(*args, **kwargs)  # type: ignore[misc]


_Row = TypeVar("_Row", bound=models.Model)


class MacProtectedManager(models.Manager[_Row]):
    """`bulk_create()` gives each new row its MAC (`save()` is not called for them)."""

    def bulk_create(self, objs: Iterable[_Row], *args: Any, **kwargs: Any) -> list[_Row]:
        rows = list(objs)
        for row in rows:
            row.refresh_mac()  # type: ignore[attr-defined]
        return super().bulk_create(rows, *args, **kwargs)


def check_rows(rows: Iterable[MacProtectedRow]) -> None:
    for row in rows:
        row.check_row()


# The covered values of each protected row type. They read columns and relations only (no model methods), so the
# data migration's historical models give the same answer as the live ones.


def _user_arn(account_id: str, path: str, name: str) -> str:
    from policies import arns

    return arns.user_arn(account_id, path, name)


def access_key_mac_fields(key: Any) -> tuple[Any, ...]:
    """Who the key stands for: its id, account, kind and status, and its owner (a user's unique id and ARN, or a
    session's id, name, token digest, expiry and role)."""
    owner: tuple[Any, ...] = ()
    if key.user_id is not None:
        user = key.user
        owner = ("user", user.unique_id, _user_arn(user.account.account_id, user.path, user.name))
    elif key.session_id is not None:
        session = key.session
        role = session.role
        owner = (
            "session",
            session.pk,
            session.session_name,
            session.session_token_digest,
            session.expires_at,
            role.unique_id,
            role.account.account_id,
            role.path,
            role.name,
        )
    return (key.access_key_id, key.account.account_id, key.kind, key.status, *owner)


def iam_user_mac_fields(user: Any, group_unique_ids: Sequence[str] | None = None) -> tuple[Any, ...]:
    """A user's identity and the set of groups it belongs to (group memberships bring identity policies)."""
    if group_unique_ids is None:
        group_unique_ids = (
            sorted(user.groups.values_list("unique_id", flat=True)) if user.pk is not None else []
        )
    return (
        user.unique_id,
        user.account.account_id,
        user.path,
        user.name,
        sorted(group_unique_ids),
    )


def identity_policy_mac_fields(policy: Any) -> tuple[Any, ...]:
    if policy.user_id is not None:
        owner = ("user", policy.user.unique_id)
    elif policy.group_id is not None:
        owner = ("group", policy.group.unique_id)
    else:
        owner = ("role", policy.role.unique_id)
    return (*owner, policy.name, policy.document)


def key_mac_fields(key: Any) -> tuple[Any, ...]:
    """What authorization and cryptography read of a key: identity, spec, usage, origin, state, deletion date,
    key policy and public key."""
    return (
        key.key_id,
        key.account.account_id,
        key.key_spec,
        key.key_usage,
        key.origin,
        key.state,
        key.deletion_date,
        key.policy,
        key.public_key_der,
    )


def grant_mac_fields(grant: Any, key_id: uuid.UUID | None = None) -> tuple[Any, ...]:
    """Everything the engine reads of a grant, and the columns that decide whether it is in effect."""
    return (
        grant.grant_id,
        key_id if key_id is not None else grant.key.key_id,
        grant.grantee_principal,
        grant.retiring_principal,
        grant.operations,
        grant.constraints,
        grant.name,
        grant.issuing_account,
        grant.propagate_after,
        grant.effective_at,
        grant.removal_requested_at,
        grant.remove_after,
    )


def console_identity_mac_fields(identity: Any) -> tuple[Any, ...]:
    return (identity.login_id, identity.iam_user.unique_id)


# The data migrations that give existing rows their MACs.

FILL_SPECS: dict[str, tuple[tuple[str, str, Any], ...]] = {
    "policies": (
        ("IamUser", "iam-user", iam_user_mac_fields),
        ("IdentityPolicy", "identity-policy", identity_policy_mac_fields),
        ("AccessKey", "access-key", access_key_mac_fields),
        ("ConsoleIdentity", "console-identity", console_identity_mac_fields),
    ),
    "keys": (("Key", "key", key_mac_fields),),
    "grants": (("Grant", "grant", grant_mac_fields),),
}


def fill_missing_macs(app_label: str) -> Any:
    """A RunPython function that sets the MAC of every row of `app_label`'s protected models that has none.
    Idempotent (rows that have a MAC are left alone, so a re-run never blesses a row changed since); needs the
    root key only when there are rows to fill."""

    def fill(apps: Any, schema_editor: Any) -> None:
        using = schema_editor.connection.alias
        for model_name, kind, fields_of in FILL_SPECS[app_label]:
            model = apps.get_model(app_label, model_name)
            for row in model.objects.using(using).filter(mac="").iterator(chunk_size=500):
                row.mac = row_mac(kind, *fields_of(row))
                row.save(update_fields=["mac"])

    return fill

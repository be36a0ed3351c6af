"""Row integrity: a MAC under the root key over the columns of a row that authorization or cryptography reads.

A database writer (issue 10's storage attacker) can change any column, but cannot compute the MAC of the new
values: `row_mac(kind, *fields)` is HMAC-SHA256 under the subkey `row-integrity` over a JSON array of the row's
kind and its fields (an unambiguous encoding: no two field lists share one). Each protected model mixes in
`MacProtectedRow`: `save()` recomputes the MAC whenever a covered column is written, and the loaders the request
path relies on call `check_row()` once, when a row enters a process cache, so the hot path pays nothing per
request. A mismatch fails closed with KMSInternalException and names neither the column nor the value.

A parent row's MAC also covers the set of its children, as (name, MAC) pairs: a user's groups and inline
policies, a role's and a group's inline policies, a key's aliases and tags. Deleting a child row (a Deny policy, a
membership, a tag a Deny's condition matches) therefore fails the parent's check, not only editing one. A service
that changes children locks and checks the parent first (`locked_and_checked`), then reseals it (`seal()`) in the
same transaction, so it never blesses a parent changed outside and concurrent changes never lose a child.

`*_mac_fields()` functions take a row (a model instance or a migration's historical one: they read columns and
relations only), so the data migration that fills the MACs of existing rows computes exactly what the models do.
Formulas that changed keep their first version (`*_v1`) for the migrations that used it and for the upgrade, which
moves a row to the new formula only if its MAC verifies under the old one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

from django.core.exceptions import ObjectDoesNotExist
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


def _readable_subkeys() -> tuple[bytes, ...]:
    from kmsconsole.core.rootkey import readable_subkeys

    return readable_subkeys(SUBKEY_PURPOSE)


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
    """Whether `stored` is the MAC of these fields under a readable root key: the current one, or a previous one
    until `rootkey reseal` has MACed the row again (kmsconsole.core.rootkey). A row no key in use verifies makes
    the process look whether its key file was rewritten (another process may have MACed it under a new key) and
    try again once."""
    from kmsconsole.core.rootkey import refresh_root_keys

    stored, message = str(stored or ""), encode(kind, fields)
    return _under_a_readable_key(stored, message) or (
        refresh_root_keys() and _under_a_readable_key(stored, message)
    )


def _under_a_readable_key(stored: str, message: bytes) -> bool:
    keys = _readable_subkeys()
    if hmac.compare_digest(stored, hmac.new(keys[0], message, hashlib.sha256).hexdigest()):
        return True
    found = False
    for key in keys[1:]:  # only between a rotation and its retirement; each compared in constant time
        found |= hmac.compare_digest(stored, hmac.new(key, message, hashlib.sha256).hexdigest())
    return found


def is_under_current_root_key(stored: str, kind: str, *fields: Any) -> bool:
    """Whether `stored` is the row's MAC under the current root key (a re-seal leaves such a row alone)."""
    return hmac.compare_digest(str(stored or ""), row_mac(kind, *fields))


def integrity_failure(kind: str, pk: Any) -> errors.KmsError:
    """Logged (kind and primary key only: never a value) and returned for the caller to raise."""
    if not _FIRST_READ.get():
        logger.error("Row integrity check failed: %s row pk=%s was changed outside the service", kind, pk)
    return errors.KMSInternalException(INTEGRITY_MESSAGE)


# Set while `read_consistently` makes its first read: a failure then is only logged if the second read fails too.
_FIRST_READ: ContextVar[bool] = ContextVar("rowmac_first_read", default=False)
_Loaded = TypeVar("_Loaded")


def read_consistently(load: Callable[[], _Loaded]) -> _Loaded:
    """`load()`, which reads a parent and its children in separate statements and checks them together, read again
    once if that check failed. A write that committed between its statements (a service changing a child and
    resealing its parent in one transaction, or `rootkey reseal` moving a whole family to the current root key)
    makes the rows it read disagree although the database never held a wrong state; read again, they agree. A
    row changed outside the service fails both times (and is logged then)."""
    token = _FIRST_READ.set(True)
    try:
        return load()
    except errors.KMSInternalException as exc:
        if exc.message != INTEGRITY_MESSAGE:
            raise
    finally:
        _FIRST_READ.reset(token)
    return load()


class MacProtectedRow:
    """Mixed into a model with a `mac` column. `MAC_KIND` names the row type in the MAC; `MAC_COLUMNS` lists the
    model's own columns the MAC covers (a `save(update_fields=...)` touching one recomputes the MAC);
    `mac_fields()` returns the covered values (which may include related rows' identities)."""

    MAC_KIND: ClassVar[str]
    MAC_COLUMNS: ClassVar[frozenset[str]]
    # A parent whose MAC covers its children's (a key, an IAM user, role or group): `check_row` reads it and its
    # children in separate statements, so a write committing between them (a service changing a child and
    # resealing the parent, `rootkey reseal` moving the family) can make a legitimate family disagree once.
    MAC_FAMILY: ClassVar[bool] = False
    mac: str
    pk: Any

    def mac_fields(self) -> tuple[Any, ...]:
        raise NotImplementedError

    def refresh_mac(self) -> None:
        self.mac = row_mac(self.MAC_KIND, *self.mac_fields())

    def check_row(self) -> None:
        """Raise KMSInternalException (and log) unless the row's MAC matches its covered values. A family parent
        (`MAC_FAMILY`) that fails is read again once, in place (its columns and MAC as they are now, and its
        children read afresh, not as a list prefetched them), and checked again: only a second failure is
        logged. A row read under a lock fails both times alike; `read_consistently` reads a whole load again."""
        if verify_row_mac(self.mac, self.MAC_KIND, *self.mac_fields()):
            return
        if self.MAC_FAMILY and self.pk is not None and not _FIRST_READ.get() and self._read_again():
            return
        raise integrity_failure(self.MAC_KIND, self.pk)

    def _read_again(self) -> bool:
        try:
            self.refresh_from_db()  # type: ignore[attr-defined]  (also drops a list's prefetched children)
        except ObjectDoesNotExist:
            return False  # deleted meanwhile: refused, as the row it was is gone
        return verify_row_mac(self.mac, self.MAC_KIND, *self.mac_fields())

    def check_fields(self, fields: Sequence[Any]) -> None:
        """`check_row()` with the covered values given: a loader that has read a parent's children already
        passes the fields built from them, so the check costs no query."""
        if not verify_row_mac(self.mac, self.MAC_KIND, *fields):
            raise integrity_failure(self.MAC_KIND, self.pk)

    def seal(self) -> None:
        """Store a fresh MAC after the row's children changed. The row must have been locked and checked in this
        transaction (`locked_and_checked`), so the MAC covers only what was verified and every child committed."""
        self.save(update_fields=["mac"])

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


_Parent = TypeVar("_Parent", bound=MacProtectedRow)


def locked_and_checked(row: _Parent) -> _Parent:
    """The row reloaded under a row lock held to the end of the transaction, and checked with its children as
    they are now: a service changes the children next and reseals the row with `seal()`. The lock orders
    concurrent changes of one parent's children (the second reads the first's child once it has committed)."""
    model: Any = type(row)
    locked: _Parent = model.objects.select_for_update(of=("self",)).select_related("account").get(pk=row.pk)
    locked.check_row()
    return locked


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


def children(row: Any, related: str, name_field: str) -> list[list[Any]]:
    """A parent's children as sorted [name, MAC] pairs (none for a row not saved yet)."""
    if row.pk is None:
        return []
    return sorted([name, mac] for name, mac in getattr(row, related).values_list(name_field, "mac"))


def _pairs(
    given: Iterable[tuple[str, str]] | None, row: Any, related: str, name_field: str
) -> list[list[Any]]:
    return (
        sorted([name, mac] for name, mac in given)
        if given is not None
        else children(row, related, name_field)
    )


def _entity(entity: Any) -> tuple[Any, ...]:
    return (entity.unique_id, entity.account.account_id, entity.path, entity.name)


def iam_user_mac_fields_v1(user: Any, group_unique_ids: Sequence[str] | None = None) -> tuple[Any, ...]:
    """The first formula (identity and groups), kept for the migrations that used it and for the upgrade."""
    if group_unique_ids is None:
        group_unique_ids = (
            sorted(user.groups.values_list("unique_id", flat=True)) if user.pk is not None else []
        )
    return (*_entity(user), sorted(group_unique_ids))


def iam_user_mac_fields(
    user: Any,
    group_unique_ids: Sequence[str] | None = None,
    policies: Iterable[tuple[str, str]] | None = None,
) -> tuple[Any, ...]:
    """A user's identity, the set of groups it belongs to (group memberships bring identity policies) and its
    inline policies as (name, MAC) pairs. `group_unique_ids` and `policies` are what a loader already read."""
    return (*iam_user_mac_fields_v1(user, group_unique_ids), _pairs(policies, user, "policies", "name"))


def iam_role_mac_fields(role: Any, policies: Iterable[tuple[str, str]] | None = None) -> tuple[Any, ...]:
    """A role's identity, its maximum session duration and its inline policies as (name, MAC) pairs."""
    return (*_entity(role), role.max_session_seconds, _pairs(policies, role, "policies", "name"))


def iam_group_mac_fields(group: Any, policies: Iterable[tuple[str, str]] | None = None) -> tuple[Any, ...]:
    """A group's identity and its inline policies as (name, MAC) pairs (its members are in their users' MACs)."""
    return (*_entity(group), _pairs(policies, group, "policies", "name"))


def identity_policy_mac_fields(policy: Any) -> tuple[Any, ...]:
    if policy.user_id is not None:
        owner = ("user", policy.user.unique_id)
    elif policy.group_id is not None:
        owner = ("group", policy.group.unique_id)
    else:
        owner = ("role", policy.role.unique_id)
    return (*owner, policy.name, policy.document)


def key_mac_fields_v1(key: Any) -> tuple[Any, ...]:
    """The first formula, kept for the migrations that used it and for the upgrade."""
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


def key_mac_fields(
    key: Any,
    aliases: Iterable[tuple[str, str]] | None = None,
    tags: Iterable[tuple[str, str]] | None = None,
) -> tuple[Any, ...]:
    """What authorization and cryptography read of a key: identity, spec, usage, origin, state, deletion date,
    key policy, public key, the rotation schedule, and its aliases (kms:ResourceAliases) and tags
    (aws:ResourceTag) as (name, MAC) pairs. `aliases` and `tags` are what a loader already read."""
    return (
        *key_mac_fields_v1(key),
        key.rotation_enabled,
        key.rotation_period_days,
        key.next_rotation_at,
        _pairs(aliases, key, "aliases", "name"),
        _pairs(tags, key, "tags", "tag_key"),
    )


def alias_mac_fields(alias: Any, key_id: uuid.UUID | None = None) -> tuple[Any, ...]:
    """Which key an alias name of an account names."""
    return (alias.account.account_id, alias.name, key_id if key_id is not None else alias.key.key_id)


def tag_mac_fields(tag: Any, key_id: uuid.UUID | None = None) -> tuple[Any, ...]:
    return (key_id if key_id is not None else tag.key.key_id, tag.tag_key, tag.tag_value)


def key_material_mac_fields(material: Any, key_id: uuid.UUID | None = None) -> tuple[Any, ...]:
    """Which version is current (the one Encrypt uses) and how it was made. The sealed bytes are bound to the key
    and version by their own AAD."""
    return (
        key_id if key_id is not None else material.key.key_id,
        material.material_id,
        material.is_current,
        material.rotation_type,
    )


def key_policy_version_mac_fields_v1(version: Any, key_id: uuid.UUID | None = None) -> tuple[Any, ...]:
    """The first formula, kept for the migration that used it; still the whole formula of a version written
    before versions recorded their principals' unique ids."""
    return (
        key_id if key_id is not None else version.key.key_id,
        version.version,
        version.document,
        version.created_by,
        version.bypassed_lockout_check,
    )


def key_policy_version_mac_fields(version: Any, key_id: uuid.UUID | None = None) -> tuple[Any, ...]:
    """A key policy of the history, which a restore makes the key policy again, and the unique ids of the
    principals it named when written (which a restore names instead of an ARN whose principal changed).

    A version written before those were recorded (`principal_ids` None) keeps its first MAC, so no migration
    needs the root key; one written since has one field more. The two encodings never coincide (a different
    number of fields), so setting a recorded version's `principal_ids` to None in the database, to pass it off
    as an old one whose restore only warns, fails its check."""
    fields = key_policy_version_mac_fields_v1(version, key_id)
    return fields if version.principal_ids is None else (*fields, version.principal_ids)


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


def api_token_mac_fields(token: Any) -> tuple[Any, ...]:
    """Who a REST API token stands for and while when: its prefix and secret digest, its owner's unique id, its
    expiry and revocation (a re-pointed, un-revoked or extended token fails)."""
    return (token.prefix, token.secret_digest, token.principal.unique_id, token.expires_at, token.revoked_at)


def integrated_service_mac_fields(service: Any) -> tuple[Any, ...]:
    """A registered integrated service and the principals the operator bound to it (who may claim it)."""
    return (service.name, list(service.principals))


# The data migrations that give existing rows their MACs.

FillSpec = tuple[tuple[str, str, Any], ...]

# The first row-MAC migrations (frozen: they ran with these formulas).
FILL_SPECS: dict[str, FillSpec] = {
    "policies": (
        ("IamUser", "iam-user", iam_user_mac_fields_v1),
        ("IdentityPolicy", "identity-policy", identity_policy_mac_fields),
        ("AccessKey", "access-key", access_key_mac_fields),
        ("ConsoleIdentity", "console-identity", console_identity_mac_fields),
    ),
    "keys": (("Key", "key", key_mac_fields_v1),),
    "grants": (("Grant", "grant", grant_mac_fields),),
}

# The second: rows protected since (children before the parents whose MACs cover them).
FILL_SPECS_2: dict[str, FillSpec] = {
    "policies": (
        ("IamRole", "iam-role", iam_role_mac_fields),
        ("IamGroup", "iam-group", iam_group_mac_fields),
    ),
    "keys": (
        ("Alias", "alias", alias_mac_fields),
        ("Tag", "tag", tag_mac_fields),
        ("KeyMaterial", "key-material", key_material_mac_fields),
        ("KeyPolicyVersion", "key-policy-version", key_policy_version_mac_fields_v1),
    ),
    "grants": (("IntegratedService", "integrated-service", integrated_service_mac_fields),),
}

# The third: REST API tokens.
FILL_SPECS_3: dict[str, FillSpec] = {"api": (("ApiToken", "api-token", api_token_mac_fields),)}

# Formulas that grew: (model, kind, the old fields, the new fields).
UPGRADE_SPECS: dict[str, tuple[tuple[str, str, Any, Any], ...]] = {
    "policies": (("IamUser", "iam-user", iam_user_mac_fields_v1, iam_user_mac_fields),),
    "keys": (("Key", "key", key_mac_fields_v1, key_mac_fields),),
    "grants": (),
}


def fill_missing_macs(app_label: str, specs: dict[str, FillSpec] = FILL_SPECS) -> Any:
    """A RunPython function that sets the MAC of every row of `app_label`'s protected models that has none.
    Idempotent (rows that have a MAC are left alone, so a re-run never blesses a row changed since); needs the
    root key only when there are rows to fill."""

    def fill(apps: Any, schema_editor: Any) -> None:
        using = schema_editor.connection.alias
        for model_name, kind, fields_of in specs[app_label]:
            model = apps.get_model(app_label, model_name)
            for row in model.objects.using(using).filter(mac="").iterator(chunk_size=500):
                row.mac = row_mac(kind, *fields_of(row))
                row.save(update_fields=["mac"])

    return fill


def fill_and_upgrade_macs(app_label: str) -> Any:
    """A RunPython function for the second row-MAC migrations: fill the newly protected rows (children first),
    then move each parent whose MAC verifies under its old formula to the new one. A parent whose MAC does not
    verify keeps it, and so keeps failing its check: the upgrade never blesses a row changed outside."""
    fill = fill_missing_macs(app_label, FILL_SPECS_2)

    def run(apps: Any, schema_editor: Any) -> None:
        fill(apps, schema_editor)
        using = schema_editor.connection.alias
        for model_name, kind, old_fields, new_fields in UPGRADE_SPECS[app_label]:
            model = apps.get_model(app_label, model_name)
            for row in model.objects.using(using).iterator(chunk_size=500):
                if verify_row_mac(row.mac, kind, *old_fields(row)):
                    row.mac = row_mac(kind, *new_fields(row))
                    row.save(update_fields=["mac"])

    return run

"""Database triggers that bump generations on every write to what the request path caches.

A trigger on each watched table gives the scopes of the changed rows a fresh random generation in the writing
statement's own transaction, whatever wrote: a service, a worker, `QuerySet.update()`, `bulk_create()`, a
cascade, raw SQL, a shell. Invalidation is therefore correct by construction: no write path can forget it.

- PostgreSQL: one statement-level trigger per table and event, with the changed rows as a transition table, so
  a statement touching 50,000 grants of one key bumps that key once.
- SQLite: row-level triggers (SQLite has no other kind).

The triggers are (re)created after every `migrate` (a `post_migrate` receiver, like Django's own content types
and permissions), so a table that a migration rebuilds gets them back. `triggers_installed()` tells whether they
are all there and enabled; without them the caches stay off (`kmsconsole.generations.cache.caches_enabled`), and
every snapshot read counts them again. (Re)creating them bumps every generation: writes made while one was missing
bumped nothing, so no entry cached before may be trusted after.

Which scopes a row touches (see `kmsconsole.generations.scopes`):

============================================== ==========================================================
table                                          scope
============================================== ==========================================================
keys_key                                       key:<its key id>
keys_tag, keys_keymaterial, grants_grant       key:<its key's key id>
keys_alias                                     alias:<its account id>
policies_iamuser, _iamrole, _iamgroup          iam:<its account id>
policies_accesskey, _rolesession (update,      iam:<its account id> (a new key or session cannot be stale
delete)                                        in anyone's cache, so an insert bumps nothing)
policies_identitypolicy                        iam:<its owner's account id>
policies_iamgroup_members                      iam:<the group's account id>
============================================== ==========================================================

A scalar subquery that finds no parent row (the parent was deleted first) yields no scope: the parent's own
deletion bumps it.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connections, transaction

from kmsconsole.generations.models import Generation

PREFIX = "kmsgen_"
_EVENTS = ("INSERT", "UPDATE", "DELETE")
_NO_INSERT = ("UPDATE", "DELETE")


@dataclass(frozen=True)
class Watch:
    """A watched table: the events that bump, and the scope expressions of a changed row `r` (SQL built by
    `scopes(r, key_hex)`, where `key_hex(expr)` renders a key id column as 32 hex digits)."""

    label: str
    table: Callable[[], str]
    events: tuple[str, ...]
    scopes: Callable[[str, Callable[[str], str]], list[str]]


def _table(label: str) -> Callable[[], str]:
    def name() -> str:
        from django.apps import apps

        app_label, _, rest = label.partition(".")
        if rest == "IamGroup.members":
            model: Any = apps.get_model(app_label, "IamGroup")
            return str(model.members.through._meta.db_table)
        return str(apps.get_model(app_label, rest)._meta.db_table)

    return name


def _account_of(r: str, column: str = "account_id") -> str:
    return f"(SELECT a.account_id FROM policies_account a WHERE a.id = {r}.{column})"  # noqa: S608 - trigger SQL from our own constants, no input


def _key_of(r: str, key_hex: Callable[[str], str]) -> str:
    return f"(SELECT {key_hex('k.key_id')} FROM keys_key k WHERE k.id = {r}.key_id)"  # noqa: S608 - trigger SQL from our own constants, no input


def _owner_account(table: str, r: str, column: str) -> str:
    return (
        f"(SELECT a.account_id FROM {table} o JOIN policies_account a ON a.id = o.account_id "  # noqa: S608 - trigger SQL from our own constants, no input
        f"WHERE o.id = {r}.{column})"
    )


WATCHES: tuple[Watch, ...] = (
    Watch("keys.Key", _table("keys.Key"), _EVENTS, lambda r, h: [f"'key:' || {h(f'{r}.key_id')}"]),
    *(
        Watch(label, _table(label), _EVENTS, lambda r, h: [f"'key:' || {_key_of(r, h)}"])
        for label in ("keys.Tag", "keys.KeyMaterial", "grants.Grant")
    ),
    Watch("keys.Alias", _table("keys.Alias"), _EVENTS, lambda r, h: [f"'alias:' || {_account_of(r)}"]),
    *(
        Watch(label, _table(label), _EVENTS, lambda r, h: [f"'iam:' || {_account_of(r)}"])
        for label in ("policies.IamUser", "policies.IamRole", "policies.IamGroup")
    ),
    Watch(
        "policies.AccessKey",
        _table("policies.AccessKey"),
        _NO_INSERT,
        lambda r, h: [f"'iam:' || {_account_of(r)}"],
    ),
    Watch(
        "policies.RoleSession",
        _table("policies.RoleSession"),
        _NO_INSERT,
        lambda r, h: [f"'iam:' || {_owner_account('policies_iamrole', r, 'role_id')}"],
    ),
    Watch(
        "policies.IdentityPolicy",
        _table("policies.IdentityPolicy"),
        _EVENTS,
        lambda r, h: [
            f"'iam:' || {_owner_account(table, r, column)}"
            for table, column in (
                ("policies_iamuser", "user_id"),
                ("policies_iamgroup", "group_id"),
                ("policies_iamrole", "role_id"),
            )
        ],
    ),
    Watch(
        "policies.IamGroup.members",
        _table("policies.IamGroup.members"),
        _EVENTS,
        lambda r, h: [f"'iam:' || {_owner_account('policies_iamgroup', r, 'iamgroup_id')}"],
    ),
)


def _name(watch: Watch, event: str = "") -> str:
    """`kmsgen_<version>_<table>[_<event>]`: the version is a digest of the trigger definitions, so changed
    definitions replace the old ones and unchanged ones are left alone."""
    base = f"{PREFIX}{_version()}_{watch.table()}"
    return f"{base}_{event.lower()}" if event else base


# --- PostgreSQL ------------------------------------------------------------------------------------------


def _pg_key_hex(column: str) -> str:
    return f"replace({column}::text, '-', '')"


def _pg_sql(watch: Watch, name: Callable[..., str]) -> list[str]:
    table, function = watch.table(), name(watch)
    selects = " UNION ".join(
        f"SELECT {expr} AS scope FROM changed r"  # noqa: S608 - our own SQL fragments, no input
        for expr in watch.scopes("r", _pg_key_hex)
    )
    statements = [
        f"""CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {Generation._meta.db_table} (scope, value)
    SELECT s.scope, floor(random() * 4611686018427387903)::bigint + 1
    FROM (SELECT DISTINCT u.scope FROM ({selects}) AS u WHERE u.scope IS NOT NULL) AS s
    ON CONFLICT (scope) DO UPDATE SET value = EXCLUDED.value;
    RETURN NULL;
END
$$"""  # noqa: S608 - our own SQL fragments, no input
    ]
    for event in watch.events:
        trigger = name(watch, event)
        transition = "OLD" if event == "DELETE" else "NEW"
        statements.append(
            f"CREATE TRIGGER {trigger} AFTER {event} ON {table} REFERENCING {transition} TABLE AS changed "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()"
        )
    return statements


# --- SQLite ----------------------------------------------------------------------------------------------


def _sqlite_key_hex(column: str) -> str:
    return column  # Django stores a UUIDField as 32 hex digits on SQLite


def _sqlite_sql(watch: Watch, name: Callable[..., str]) -> list[str]:
    table = watch.table()
    statements = []
    for event in watch.events:
        trigger = name(watch, event)
        row = "OLD" if event == "DELETE" else "NEW"
        selects = " UNION ".join(f"SELECT {expr} AS scope" for expr in watch.scopes(row, _sqlite_key_hex))
        statements.append(
            f"""CREATE TRIGGER {trigger} AFTER {event} ON {table} FOR EACH ROW BEGIN
    INSERT INTO {Generation._meta.db_table} (scope, value)
    SELECT scope, (random() & 4611686018427387903) + 1 FROM ({selects}) WHERE scope IS NOT NULL
    ON CONFLICT (scope) DO UPDATE SET value = excluded.value;
END"""  # noqa: S608 - our own SQL fragments, no input
        )
    return statements


_BUILDERS: dict[str, Callable[[Watch, Callable[..., str]], list[str]]] = {
    "postgresql": _pg_sql,
    "sqlite": _sqlite_sql,
}


def _placeholder_name(watch: Watch, event: str = "") -> str:
    return f"{watch.label}:{event}"


@functools.cache
def _version() -> str:
    definitions = "\n".join(
        statement
        for vendor in sorted(_BUILDERS)
        for watch in WATCHES
        for statement in _BUILDERS[vendor](watch, _placeholder_name)
    )
    return hashlib.sha256(definitions.encode()).hexdigest()[:8]


def expected_triggers() -> set[str]:
    return {_name(watch, event) for watch in WATCHES for event in watch.events}


def name_pattern() -> str:
    """A LIKE pattern for the current triggers' names (`kmsgen_<version>_…`)."""
    return f"{PREFIX}{_version()}_%"


def _present(connection: Any) -> dict[str, str]:
    """Our enabled triggers on the database: name -> table (a disabled trigger bumps nothing)."""
    if connection.vendor == "postgresql":
        sql = (
            "SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE t.tgname LIKE %s AND NOT t.tgisinternal AND t.tgenabled IN ('O', 'A')"
        )
    else:
        sql = "SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger' AND name LIKE %s"
    with connection.cursor() as cursor:
        cursor.execute(sql, [PREFIX + "%"])
        return {str(name): str(table) for name, table in cursor.fetchall()}


def install_triggers(using: str) -> bool:
    """Make the database's triggers the current ones (a no-op when they already are); False when its tables
    are not all there yet or its vendor is not supported (then the caches stay off)."""
    connection = connections[using]
    build = _BUILDERS.get(connection.vendor)
    if build is None:
        return False
    tables = set(connection.introspection.table_names())
    needed = {watch.table() for watch in WATCHES} | {Generation._meta.db_table}
    if not needed <= tables:
        return False
    present = _present(connection)
    if set(present) == expected_triggers():
        return True
    with transaction.atomic(using), connection.cursor() as cursor:
        for trigger, table in present.items():
            if connection.vendor == "postgresql":
                cursor.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table}")
            else:
                cursor.execute(f"DROP TRIGGER IF EXISTS {trigger}")
        if connection.vendor == "postgresql":
            cursor.execute("SELECT p.proname FROM pg_proc p WHERE p.proname LIKE %s", [PREFIX + "%"])
            for (function,) in cursor.fetchall():
                # CASCADE: with the disabled triggers that still use it (`present` has only the enabled ones).
                cursor.execute(f"DROP FUNCTION IF EXISTS {function}() CASCADE")
        for watch in WATCHES:
            for statement in build(watch, _name):
                cursor.execute(statement)
        # Writes made while a trigger was missing bumped nothing: no entry any process cached before is current.
        cursor.execute(f"UPDATE {Generation._meta.db_table} SET value = {_RANDOM[connection.vendor]}")  # noqa: S608 - our own SQL, no input
    return True


_RANDOM = {
    "postgresql": "floor(random() * 4611686018427387903)::bigint + 1",
    "sqlite": "(random() & 4611686018427387903) + 1",
}


def triggers_installed(using: str) -> bool:
    """Whether every current trigger is present on the database `using`."""
    connection = connections[using]
    if connection.vendor not in _BUILDERS:
        return False
    return expected_triggers() <= set(_present(connection))


def on_post_migrate(using: str = "default", **kwargs: Any) -> None:
    install_triggers(using)

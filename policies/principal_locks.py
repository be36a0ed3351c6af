"""Whether the users and roles a write names exist, under a row lock that orders the write with their deletion.

A CreateGrant, PutKeyPolicy or CreateKey checks that the principals it names exist, then stores their ARNs. A
DeleteUser or DeleteRole (`policies.services`) locks the principal's row FOR UPDATE, then rewrites every key policy
and grant naming it. Without a lock on the writer's side, a writer that checked before the deletion and committed
after it would keep the ARN, and a new principal of the same name would inherit it. Here the writer locks each
named user or role row FOR KEY SHARE, users then roles (one query each, however many are named), each in primary
key order, to the end of its transaction: either the writer commits first, and the deletion, which reads its
candidate keys and grants only after locking the principal, sees and rewrites what it wrote; or the writer waits,
and then finds the principal gone (PostgreSQL skips a row deleted meanwhile). FOR KEY SHARE conflicts with the
deletion's FOR UPDATE (and with the FOR UPDATE of a change to the principal's own rows, an inline policy or a
membership, which waits for such a writer), not with another FOR KEY SHARE: writers naming the same principal do
not wait for each other. SQLite serialises writers anyway.

**Lock order.** A transaction that takes more than one of these takes them in this order, so none holds what
another waits for (PostgreSQL would abort one of them with a deadlock error, a KMSInternalException):

1. the principal rows: a deletion its own (FOR UPDATE); a writer those it names (`lock_named`), users then
   roles, each in primary key order;
2. the key rows, in primary key order (`keys.services.access.key_for(lock=True)`; the deletion's candidate keys;
   UpdateAlias's two keys), each after the alias rows a transaction locks (UpdateAlias and DeleteAlias lock their
   alias, then its keys; destroying a key locks its aliases, which go with it, then the key:
   `keys.services.aliases`);
3. the rows hanging from those keys that the transaction changes and others lock on their own: their grants
   (a principal's deletion rewrites them, a key's destruction deletes them; RevokeGrant and RetireGrant lock
   one without its key), then the integrated services naming the principal, each in primary key order;
4. the generation rows (`kmsconsole.generations`): taken by the writes themselves (a database trigger bumps
   `key:<id>` when a key, its grants or tags change, `iam:<account>` when a user, role, session, access key or
   identity policy does), so every write comes after every row lock above. In a deletion this means that the
   role's sessions, the user's API tokens and the entity itself are deleted last, after the keys, grants and
   integrated services are locked and rewritten (`policies.services.entity_deletion._entity_delete`): ending a
   session first took the account's `iam:` row, and another deletion in the account that held a shared key (or
   integrated service) and wanted that row deadlocked with it;
5. the audit chain head, last of all (`kmsconsole.audit.recorder.events_at_the_end`).

The other order (the key, then the principal) let a writer and a deletion each hold what the other waited for.

**Authorization first.** A writer is authorized on its key's row as it is before it looks up or locks any
principal, then locks the principals, then the key, and is authorized again on the locked row, the decision that
counts and the one audited (`keys.services.access.key_for_write_naming`; CreateKey is authorized by identity
policies, before it locks anything). A refused caller so looks nothing up (its request costs the same few queries
whatever it names) and holds no principal's row: it cannot block a deletion, nor time another account's changes
to its principals. An allowed one decides on the principals it locked from what it found then
(`NamedPrincipals.existing`), never by locking again, and tells whether they exist only then.

What was found is also what a key policy version records (`NamedPrincipals.unique_ids`): the unique id of each
user and role it names as written, so a restore of the version can tell a principal deleted (and perhaps
recreated) since (`keys.services.key_policy`).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection
from django.db.models import Q

from kmsconsole.core import errors
from policies import engine
from policies.models import IamRole, IamUser

# The kinds of principal ARN that name a user or role row (an assumed role names its role, by name).
ROW_KINDS = (engine.PrincipalKind.USER, engine.PrincipalKind.ROLE, engine.PrincipalKind.ASSUMED_ROLE)


@dataclass(frozen=True)
class NamedPrincipals:
    """The user, role and assumed-role ARNs a write names, each with the unique id of the user or role it named
    when they were looked up (None: no such principal), their rows locked then unless the lookup was a check that
    writes nothing."""

    ids: dict[str, str | None] = field(default_factory=dict)
    # When each principal found was created (a restore of a version that recorded no unique ids compares them).
    created: dict[str, datetime] = field(default_factory=dict)

    def existing(self, principals: Sequence[engine.PrincipalArn]) -> list[bool]:
        """For each principal, whether its user or role was found; False for any other kind (the caller decides
        those). An ARN not looked up beforehand is a fault of the caller, never a reason to lock now (a writer
        holds its key's lock by then: see the module's lock order)."""
        found = []
        for parsed in principals:
            if parsed.kind not in ROW_KINDS:
                found.append(False)
            elif parsed.arn not in self.ids:
                raise errors.KMSInternalException(
                    "A principal the request names was not looked up before its key was locked."
                )
            else:
                found.append(self.ids[parsed.arn] is not None)
        return found

    def unique_ids(self, arns: Iterable[str]) -> dict[str, str | None]:
        """What a key policy version naming `arns` records: for each user, role or assumed-role ARN among them,
        the unique id of its user or role (None when there was none)."""
        return {arn: self.ids[arn] for arn in arns if arn in self.ids}


def lock_named(arns: Iterable[str], *, lock: bool = True) -> NamedPrincipals:
    """Look up (and, unless `lock` is False, lock as the module says) the users and roles that the user, role and
    assumed-role ARNs among `arns` name, in one query for the users and one for the roles however many are named;
    anything else (an account, a malformed ARN, a unique id) is left for the caller's checks, which come later and
    refuse it in their own words."""
    parsed = {
        named.arn: named
        for arn in arns
        if (named := engine.parse_principal_arn(arn)) is not None and named.kind in ROW_KINDS
    }
    users = [named for named in parsed.values() if named.kind is engine.PrincipalKind.USER]
    roles = [named for named in parsed.values() if named.kind is not engine.PrincipalKind.USER]
    found_users = _rows(IamUser, users, lock=lock)
    found_roles = _rows(IamRole, roles, lock=lock)
    ids: dict[str, str | None] = {}
    created: dict[str, datetime] = {}
    for arn, named in parsed.items():
        rows = found_users if named.kind is engine.PrincipalKind.USER else found_roles
        match = next((row for row in rows if _names(named, row)), None)
        ids[arn] = match.unique_id if match is not None else None
        if match is not None:
            created[arn] = match.created_at
    return NamedPrincipals(ids, created)


@dataclass(frozen=True)
class _Row:
    pk: int
    account_id: str
    name: str
    path: str
    unique_id: str
    created_at: datetime


def _names(named: engine.PrincipalArn, row: _Row) -> bool:
    """Whether the ARN names the row: its account, name and (but for an assumed role, which names its role by name
    alone) path; compared as the query compared them (exactly)."""
    return (
        row.account_id == named.account_id
        and row.name == named.name
        and (named.kind is engine.PrincipalKind.ASSUMED_ROLE or row.path == named.path)
    )


def _rows(
    model: type[IamUser] | type[IamRole], named: list[engine.PrincipalArn], *, lock: bool
) -> list[_Row]:
    """The rows `named` name, in primary key order, in one query; locked FOR KEY SHARE when `lock` (a row deleted
    while this waited for it is left out: PostgreSQL re-checks a row it waited for)."""
    if not named:
        return []
    wanted = [
        Q(account__account_id=one.account_id, name=one.name)
        & (Q() if one.kind is engine.PrincipalKind.ASSUMED_ROLE else Q(path=one.path))
        for one in named
    ]
    rows = (
        model.objects.filter(functools.reduce(operator.or_, wanted))
        .order_by("pk")
        .values_list("pk", "account__account_id", "name", "path", "unique_id", "created_at")
    )
    if not lock or connection.vendor != "postgresql":  # SQLite serialises writers
        return [_Row(*row) for row in rows]
    # FOR KEY SHARE, which Django's select_for_update() cannot ask for, on the principal's table only (not the
    # account's, joined to match the account id). The query is the ORM's own, with its parameters.
    sql, params = rows.query.sql_with_params()
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} FOR KEY SHARE OF {table}", params)
        return [_Row(*row) for row in cursor.fetchall()]


def held_for_a_child(entity: IamUser | IamRole) -> bool:
    """Before a row that refers to `entity` is inserted (an access key or API token of a user, a console login
    acting as it, a session of a role): lock the entity's row FOR KEY SHARE to the end of the transaction, and say
    whether it is still there.

    PostgreSQL checks the new row's foreign key (deferred, as Django declares it) only at the commit, after the
    transaction has appended its audit event and so holds the chain head: a deletion of the entity holding its
    row FOR UPDATE and waiting for the head, and the insert holding the head and waiting for the row, was a
    deadlock. Taken here, first, the lock makes the insert wait for a deletion (and then find the entity gone) or
    the deletion wait for the insert (and then see the new row: a conflict, or, for a session or token, one more
    to end). FOR KEY SHARE, the lock the foreign-key check itself takes, conflicts only with a deletion (or a key
    change), so concurrent inserts for one entity do not wait for each other. SQLite serialises writers."""
    model = type(entity)
    if connection.vendor != "postgresql":
        return model.objects.filter(pk=entity.pk).exists()
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {table} WHERE id = %s FOR KEY SHARE", [entity.pk])  # noqa: S608 - the table name is the model's own
        return cursor.fetchone() is not None

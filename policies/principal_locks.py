"""Whether the users and roles a write names exist, under a row lock that orders the write with their deletion.

A CreateGrant, PutKeyPolicy or CreateKey checks that the principals it names exist, then stores their ARNs. A
DeleteUser or DeleteRole (`policies.services`) locks the principal's row FOR UPDATE, then rewrites every key policy
and grant naming it. Without a lock on the writer's side, a writer that checked before the deletion and committed
after it would keep the ARN, and a new principal of the same name would inherit it. Here the writer's check locks
each named user or role row FOR NO KEY UPDATE (which conflicts with FOR UPDATE), users then roles, each in primary
key order, to the end of its transaction: either the writer commits first, and the deletion, which reads its
candidate keys and grants only after locking the principal, sees and rewrites what it wrote; or the writer waits,
and then finds the principal gone (PostgreSQL skips a row deleted meanwhile). SQLite serialises writers anyway.
"""

from __future__ import annotations

from collections.abc import Sequence

from policies import engine
from policies.models import IamRole, IamUser


def existing_locked(principals: Sequence[engine.PrincipalArn], *, lock: bool = True) -> list[bool]:
    """For each user, role or assumed-role ARN, whether its user or role (an assumed role's role, by name) exists,
    its row locked as the module says (unless `lock` is False: a check that writes nothing); False for any other
    kind (the caller decides those)."""
    users: dict[int, set[int]] = {}
    roles: dict[int, set[int]] = {}
    for index, parsed in enumerate(principals):
        if parsed.kind is engine.PrincipalKind.USER:
            found = IamUser.objects.filter(
                account__account_id=parsed.account_id, name=parsed.name, path=parsed.path
            )
            users[index] = set(found.values_list("pk", flat=True))
        elif parsed.kind is engine.PrincipalKind.ROLE:
            found_roles = IamRole.objects.filter(
                account__account_id=parsed.account_id, name=parsed.name, path=parsed.path
            )
            roles[index] = set(found_roles.values_list("pk", flat=True))
        elif parsed.kind is engine.PrincipalKind.ASSUMED_ROLE:
            found_roles = IamRole.objects.filter(account__account_id=parsed.account_id, name=parsed.name)
            roles[index] = set(found_roles.values_list("pk", flat=True))
    kept_users: set[int] = set().union(*users.values())
    kept_roles: set[int] = set().union(*roles.values())
    if lock:
        # A lock statement for each kind named, whether any row of it was found: how many statements a check makes
        # does not tell whether another account's user or role exists.
        if users:
            kept_users = _lock(IamUser, kept_users)
        if roles:
            kept_roles = _lock(IamRole, kept_roles)
    return [
        bool(users[index] & kept_users) if index in users else bool(roles.get(index, set()) & kept_roles)
        for index in range(len(principals))
    ]


def _lock(model: type[IamUser] | type[IamRole], pks: set[int]) -> set[int]:
    """The rows of `pks` still there, locked FOR NO KEY UPDATE in primary key order (a row deleted while this
    waited for it is left out). With no `pks` the statement still runs (on pk 0, which no row has: Django would
    skip a query on an empty list)."""
    rows = model.objects.select_for_update(no_key=True).filter(pk__in=sorted(pks) or [0]).order_by("pk")
    return set(rows.values_list("pk", flat=True))

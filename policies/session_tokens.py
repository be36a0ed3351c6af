"""Role-session tokens across a root-key rotation: re-hashed when used, counted and ended when nobody uses them.

A session token is kept only as a keyed digest (`policies.selectors.session_token_digest`), which the session's
access key's row MAC covers (`kmsconsole.core.rowmac.access_key_mac_fields`). After a rotation a token is checked
under every readable root key (`policies.selectors.session_token_key`); one that matched under a previous key is
hashed again under the current key by the request that used it (`session_token_rehash`), and the access key's
MAC is made again over the verified fields with the new digest, which bumps the account's `iam:` generation once
per session (its first use after the rotation). The dependent "session token digests" counts the live sessions
nobody has used since (they end on their own within the role's maximum session duration), and `rootkey retire
--end-unmovable` ends them (`role_sessions_end`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from kmsconsole.audit.recorder import events_at_the_end
from kmsconsole.core.context import Caller, RequestMeta, operator_caller
from kmsconsole.core.rootkey import RootKeyRing, root_keys
from kmsconsole.core.token_digests import (
    RETIRE_CALLER,
    digest_dependent,
    digest_now,
    key_share_nowait,
    matching_key,
    rehash_quietly,
)
from kmsconsole.generations.models import Generation
from kmsconsole.generations.scopes import iam_scope
from kmsconsole.operations import OperationContext, perform
from policies.authorization import authorize
from policies.models import AccessKey, Account, IamRole, RoleSession
from policies.principal_locks import held_for_a_child
from policies.selectors import SESSION_TOKEN_PURPOSE

END_OPERATION = "kmsconsole:EndRoleSessions"


def session_token_rehash(caller: Caller, token: str) -> bool:
    """Hash the token of the session `caller` signed as (just authenticated under a previous root key) again
    under the current key; whether it happened. Never fails the request (`rehash_quietly`). Each session's first
    use after a rotation so bumps its account's `iam:` generation once (every process's cached credentials of the
    account are built again); a session already moved, by this process or another, is not written again."""
    return rehash_quietly("role session", caller.session_pk, lambda: _rehash(caller, token))


def _rehash(caller: Caller, token: str) -> bool:
    """Locks in `policies.principal_locks`' order, each NOWAIT: the role's row FOR KEY SHARE (what AssumeRole
    takes: a deletion of the role holds it FOR UPDATE, and then the re-hash gives way), the access key's and the
    session's rows, then the account's `iam:` generation row, which both writes bump (their triggers): the
    credentials cached by every process are built again with the new digest, and a concurrent request that used
    the old one was verified already (an optimistic one is served again: `kmsconsole.generations.cache`)."""
    if caller.role_pk is None or caller.session_pk is None:
        return False
    if not key_share_nowait(IamRole._meta.db_table, caller.role_pk):
        return False
    key = (
        AccessKey.objects.select_for_update(nowait=True, of=("self",))
        .select_related("account")
        .filter(access_key_id=caller.access_key_id, session_id=caller.session_pk)
        .first()
    )
    session = (
        RoleSession.objects.select_for_update(nowait=True, of=("self",))
        .select_related("role__account")
        .filter(pk=caller.session_pk)
        .first()
    )
    if key is None or session is None:
        return False
    under = matching_key(SESSION_TOKEN_PURPOSE, token.encode(), session.session_token_digest)
    if under is None or under.key_id == root_keys().current.key_id:
        # Not this token's, or moved already (by another process, whose cached credentials were rebuilt first):
        # writing it again would bump the generation, and rebuild every process's credentials, for nothing.
        return False
    key.session = session
    key.check_row()  # the fields the new MAC covers are the ones verified here, the new digest aside
    list(Generation.objects.select_for_update(nowait=True).filter(scope=iam_scope(key.account.account_id)))
    session.session_token_digest, session.session_token_key_id = digest_now(
        SESSION_TOKEN_PURPOSE, token.encode()
    )
    session.save(update_fields=["session_token_digest", "session_token_key_id"])
    key.save(update_fields=["mac"])  # MacProtectedRow: recomputed over the session as it is now
    return True


def role_sessions_end(
    *, ctx: OperationContext, account: Account, roles: list[IamRole], session_ids: list[int]
) -> dict[str, Any]:
    """End the account's sessions `session_ids` of `roles` (and their temporary access keys, which go with them),
    as a deletion of their role ends its sessions. Authorized on each role first, from what the caller found, so
    a session gone meanwhile (its role deleted, or ended another way) is never an error: it is not counted.
    Returns the response elements: how many ended and the roles' ARNs (never a session's token or key)."""
    for role in sorted(roles, key=lambda role: role.pk):
        authorize(ctx, resource=role.arn)
    # `policies.principal_locks`' order: the roles' rows first (FOR KEY SHARE, as AssumeRole takes them, so a
    # deletion of one of them either ended its sessions already or waits), then the deletes, which take the
    # account's generation row.
    for role in sorted(roles, key=lambda role: role.pk):
        held_for_a_child(role)
    _, deleted = RoleSession.objects.filter(
        pk__in=session_ids, role__in=roles, role__account=account
    ).delete()
    return {
        "RoleSessionsEnded": deleted.get(RoleSession._meta.label, 0),
        "Roles": sorted(role.arn for role in roles),
    }


def _ender(account: Account, roles: list[IamRole], ids: list[int]) -> Callable[[OperationContext], Any]:
    """The service of one account's EndRoleSessions (`role_sessions_end` looked up when it runs)."""
    return lambda ctx: role_sessions_end(ctx=ctx, account=account, roles=roles, session_ids=ids)


def _live() -> QuerySet[RoleSession]:
    return RoleSession.objects.filter(expires_at__gt=timezone.now())


def _end_by_account(ring: RootKeyRing, sessions: QuerySet[RoleSession]) -> int:
    """End `sessions`: one audited `kmsconsole:EndRoleSessions` by the operator in each account's trail, naming
    the previous root keys of `ring` (the ring retire is retiring) and how many sessions it is to end, its
    response how many it ended and their roles. How many ended.

    One transaction in `policies.principal_locks`' order (`RootKeyDependent.end_unmovable`): every role's row
    first (FOR KEY SHARE, by primary key, every account's before anything is written), then the deletions
    (which take the accounts' `iam:` generation rows), the events last (`events_at_the_end`). Ending one
    account's sessions and appending its event before locking the next account's roles held the chain head
    while waiting for a role that a DeleteRole held, itself waiting for the head: a deadlock."""
    listed = list(sessions.order_by("pk").values_list("pk", "role_id"))
    ended = 0
    with transaction.atomic(), events_at_the_end() as events:
        roles = {
            role.pk: role
            for role in IamRole.objects.select_related("account").filter(pk__in={role for _, role in listed})
        }
        for pk in sorted(roles):
            held_for_a_child(roles[pk])
        # Then the sessions, by the query that lists them again: PostgreSQL checks a row changed meanwhile against
        # it once it has it, so a session whose first use moved it to the current key since it was listed is
        # left out (and a re-hash coming later gives way: NOWAIT).
        still = (
            sessions.select_for_update(of=("self",)).filter(pk__in=[pk for pk, _ in listed]).order_by("pk")
        )
        by_account: dict[str, dict[int, IamRole]] = defaultdict(dict)
        session_ids: dict[str, list[int]] = defaultdict(list)
        for pk, role_pk, account_id in list(still.values_list("pk", "role_id", "role__account__account_id")):
            by_account[account_id][role_pk] = roles[role_pk]
            session_ids[account_id].append(pk)
        for account_id, account_roles in sorted(by_account.items()):
            account_of = next(iter(account_roles.values())).account
            end = _ender(account_of, list(account_roles.values()), session_ids[account_id])
            result = perform(
                END_OPERATION,
                caller=operator_caller(account_id, RETIRE_CALLER),
                meta=RequestMeta(interface="cli"),
                params={
                    "PreviousRootKeyIds": [key.key_id for key in ring.previous],
                    "RoleSessions": len(session_ids[account_id]),
                },
                service=end,
                deferred=events,
            )
            ended += int(result["RoleSessionsEnded"])
    return ended


DEPENDENT = digest_dependent(
    name="session token digests",
    live=_live,
    key_id_field="session_token_key_id",
    ends="ends",
    end=_end_by_account,
)

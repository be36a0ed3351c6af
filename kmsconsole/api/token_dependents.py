"""The root-key dependent "API token digests": live API tokens whose digest is under a previous root key.

A token's digest cannot be re-sealed (the token is not kept): it moves when the token is next used
(`kmsconsole.api.tokens.token_principal`). `rootkey status` counts the others; `rootkey retire --end-unmovable`
revokes them one by one through the service `manage.py api-token revoke` uses, each audited as that command's
revocation is (`kmsconsole:RevokeApiToken` by the operator, in the token owner's account's trail), so a token's
owner reads in their own trail why it stopped working.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from kmsconsole.api.models import ApiToken
from kmsconsole.api.tokens import api_token_revoke
from kmsconsole.audit.recorder import DeferredEvents, events_at_the_end
from kmsconsole.core.context import RequestMeta, operator_caller
from kmsconsole.core.rootkey import RootKeyRing
from kmsconsole.core.token_digests import RETIRE_CALLER, digest_dependent
from kmsconsole.operations import OperationContext, perform


def _live() -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())


def _revoke_each(ring: RootKeyRing, tokens: QuerySet[ApiToken]) -> int:
    """Revoke each token of `tokens` as `manage.py api-token revoke` does; how many. One transaction, whose
    events go on the chain at its end (`RootKeyDependent.end_unmovable`: the chain head is taken last, so a
    DeleteUser that holds a user and waits for the head never waits for this, which waits for its tokens).

    Every row is locked first, in primary key order, by the query that lists them: PostgreSQL checks a row
    changed meanwhile against the query again once it has it, so a token that moved to the current key (its
    first use re-hashed it), was revoked, or was deleted with its user since `tokens` was read is left out,
    not revoked nor reported missing. One locked stays as it is until the revocations commit (a re-hash gives
    way: NOWAIT)."""
    revoked = 0
    with transaction.atomic(), events_at_the_end() as events:
        locked = tokens.select_for_update(of=("self",)).order_by("pk")
        for pk, account_id in list(locked.values_list("pk", "principal__account__account_id")):
            revoked += _revoke(pk, account_id, events)
    return revoked


def _revoke(pk: int, account_id: str, events: DeferredEvents) -> int:
    """Revoke the token `pk` (audited by the operator in `account_id`'s trail, its event deferred); 1."""

    def revoke(ctx: OperationContext) -> dict[str, Any]:
        token = api_token_revoke(ctx=ctx, token_id=pk)
        revoked_at = token.revoked_at.isoformat().replace("+00:00", "Z") if token.revoked_at else None
        return {"TokenId": token.pk, "Prefix": str(token), "RevokedAt": revoked_at}

    perform(
        "kmsconsole:RevokeApiToken",
        caller=operator_caller(account_id, RETIRE_CALLER),
        meta=RequestMeta(interface="cli"),
        params={"TokenId": pk},
        service=revoke,
        deferred=events,
    )
    return 1


DEPENDENT = digest_dependent(
    name="API token digests",
    live=_live,
    key_id_field="secret_digest_key_id",
    ends="revokes",
    end=_revoke_each,
)

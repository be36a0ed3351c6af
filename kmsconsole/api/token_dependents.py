"""The root-key dependent "API token digests": live API tokens whose digest is under a previous root key.

A token's digest cannot be re-sealed (the token is not kept): it moves when the token is next used
(`kmsconsole.api.tokens.token_principal`). `rootkey status` counts the others; `rootkey retire --end-unmovable`
revokes them one by one through the service `manage.py api-token revoke` uses, each audited as that command's
revocation is (`kmsconsole:RevokeApiToken` by the operator, in the token owner's account's trail), so a token's
owner reads in their own trail why it stopped working.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils import timezone

from kmsconsole.api.models import ApiToken
from kmsconsole.api.tokens import api_token_revoke
from kmsconsole.core.context import RequestMeta, operator_caller
from kmsconsole.core.token_digests import RETIRE_CALLER, digest_dependent
from kmsconsole.operations import OperationContext, perform


def _live() -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())


def _revoke_each(tokens: QuerySet[ApiToken]) -> int:
    """Revoke each token of `tokens` as `manage.py api-token revoke` does; how many."""
    revoked = 0
    for pk, account_id in tokens.order_by("pk").values_list("pk", "principal__account__account_id"):

        def revoke(ctx: OperationContext, token_id: int = pk) -> dict[str, Any]:
            token = api_token_revoke(ctx=ctx, token_id=token_id)
            revoked_at = token.revoked_at.isoformat().replace("+00:00", "Z") if token.revoked_at else None
            return {"TokenId": token.pk, "Prefix": str(token), "RevokedAt": revoked_at}

        perform(
            "kmsconsole:RevokeApiToken",
            caller=operator_caller(account_id, RETIRE_CALLER),
            meta=RequestMeta(interface="cli"),
            params={"TokenId": pk},
            service=revoke,
        )
        revoked += 1
    return revoked


DEPENDENT = digest_dependent(
    name="API token digests",
    live=_live,
    key_id_field="secret_digest_key_id",
    ends="revokes",
    end=_revoke_each,
)

"""ListGrants and ListRetirableGrants."""

from __future__ import annotations

from django.db.models import QuerySet

from grants.models import Grant
from grants.selectors import check_grant_id, grants_of_key, retirable_grants
from grants.services.principals import _parse_principal, normalize_principal
from keys.models import Key
from keys.services.access import key_for
from kmsconsole.core import errors
from kmsconsole.core.pagination import list_limit, page
from kmsconsole.operations import OperationContext
from policies.authorization import authorize

# ListGrants and ListRetirableGrants: Limit 1-100, default 50.
LIST_GRANTS_DEFAULT_LIMIT = 50
LIST_GRANTS_MAX_LIMIT = 100


def grant_list(
    *,
    ctx: OperationContext,
    key_id: str,
    grant_id: str | None = None,
    grantee_principal: str | None = None,
    limit: int | None = None,
    marker: str | None = None,
) -> tuple[Key, list[Grant], str | None]:
    """One page of a key's grants (in any key state), optionally only one grant or one grantee's."""
    size = list_limit(limit, default=LIST_GRANTS_DEFAULT_LIMIT, maximum=LIST_GRANTS_MAX_LIMIT)
    if grant_id is not None:
        check_grant_id(grant_id)
    key = key_for(ctx, key_id)
    rows, next_marker = page(
        grants_of_key(
            key,
            grant_id=grant_id,
            grantee_principal=normalize_principal(grantee_principal) if grantee_principal else None,
        ),
        scope=f"ListGrants:{key.key_id}",
        limit=size,
        marker=marker,
    )
    return key, list(rows), next_marker


def grant_list_retirable(
    *, ctx: OperationContext, retiring_principal: str, limit: int | None = None, marker: str | None = None
) -> tuple[list[Grant], str | None]:
    """One page of the grants, on keys of any account, that `retiring_principal` (a principal of the caller's
    account) may retire. kms:ListRetirableGrants is decided by IAM alone; no permission on the keys is needed."""
    size = list_limit(limit, default=LIST_GRANTS_DEFAULT_LIMIT, maximum=LIST_GRANTS_MAX_LIMIT)
    arn, grants = grants_retirable_by(ctx=ctx, retiring_principal=retiring_principal)
    rows, next_marker = page(grants, scope=f"ListRetirableGrants:{arn}", limit=size, marker=marker)
    return list(rows), next_marker


def grants_retirable_by(*, ctx: OperationContext, retiring_principal: str) -> tuple[str, QuerySet[Grant]]:
    """The normalized retiring principal and its retirable grants as a queryset to page (ListRetirableGrants)."""
    parsed = _parse_principal(normalize_principal(retiring_principal))
    if parsed.account_id != ctx.caller.account_id:
        raise errors.InvalidArnException(
            f"The retiring principal {parsed.arn} is not a principal of account {ctx.caller.account_id}."
        )
    authorize(ctx, resource=parsed.arn)
    return parsed.arn, retirable_grants(parsed.arn)

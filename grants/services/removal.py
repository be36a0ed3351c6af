"""RetireGrant (decided by the grant itself) and RevokeGrant (by kms:RevokeGrant on the key), and the removal
both end in: at once, or delayed until a worker removes the grant."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from grants.models import Grant
from grants.selectors import check_grant_id, engine_grant, grant_on_key, live_grants
from grants.services.propagation import _propagate_after_commit
from grants.tokens import INVALID_TOKEN_MESSAGE, read_token
from keys.models import Key
from keys.selectors import key_tags, resolve_key
from keys.services.access import key_for, request_condition_values
from kmsconsole.core import errors
from kmsconsole.operations import OperationContext
from policies import engine
from policies.arns import account_root_arn
from policies.authorization import authorize

# KMS_GRANT_REVOCATION_PROPAGATION values.
IMMEDIATE = "immediate"
DELAYED = "delayed"


def _retire_key_policy(key: Key, grant: Grant) -> str:
    """The key policy RetireGrant is decided under: the key's account and the grant's issuing account delegate
    kms:RetireGrant to their IAM, and nothing else (the key's own policy has no say, kms-spec §8.6). A stand-in, in
    no policy of the key's: the decision's "decided by" and reason never name its statement (the engine's
    IDENTITY_DECIDED_ACTIONS, policies.engine.Decision.decided_by)."""
    accounts = sorted({key.account.account_id, grant.issuing_account})
    statement = {
        "Sid": "RetireGrantIsDelegatedToIAM",
        "Effect": "Allow",
        "Principal": {"AWS": [account_root_arn(account) for account in accounts]},
        "Action": "kms:RetireGrant",
        "Resource": "*",
    }
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, separators=(",", ":"))


def _retire_grants(key: Key, grant: Grant) -> list[engine.Grant]:
    """The grants that may allow retiring `grant`: itself (for its grantee, if it lists RetireGrant), and its
    retiring principal's right, as a grant of RetireGrant (an account as retiring principal delegates to IAM)."""
    grants = [engine_grant(grant, key.arn)]
    if grant.retiring_principal:
        grants.append(
            engine.Grant(
                f"{grant.grant_id} as its retiring principal",
                key.arn,
                grant.retiring_principal,
                frozenset({"RetireGrant"}),
            )
        )
    return grants


def grant_retire(
    *,
    ctx: OperationContext,
    grant_token: str | None = None,
    key_id: str | None = None,
    grant_id: str | None = None,
) -> Grant:
    """Retire a grant named by its token, or by key and grant id; in any key state."""
    token_ids: frozenset[str] = frozenset()
    if grant_token:
        claims = read_token(grant_token)
        if grant_id is not None and grant_id != claims.grant_id:
            raise errors.ValidationException("The grant token and the GrantId name different grants.")
        key = resolve_key(claims.key_arn, caller_account=ctx.caller.account_id, operation=ctx.operation).key
        if key_id is not None:
            named = resolve_key(key_id, caller_account=ctx.caller.account_id, operation=ctx.operation).key
            if named.pk != key.pk:
                raise errors.ValidationException("The grant token and the KeyId name different KMS keys.")
        found = live_grants().filter(key=key, grant_id=claims.grant_id).first()
        if found is None:
            raise errors.InvalidGrantTokenException(INVALID_TOKEN_MESSAGE)
        found.key = (
            key  # the row MAC names the key: a grant moved to this key in the database fails the check
        )
        found.check_row()
        grant = found
        token_ids = frozenset({grant.grant_id})
    elif key_id is not None and grant_id is not None:
        check_grant_id(grant_id)
        key = resolve_key(key_id, caller_account=ctx.caller.account_id, operation=ctx.operation).key
        grant = grant_on_key(key, grant_id)
    else:
        raise errors.ValidationException("Grant token OR (grant ID, key ID) must be specified")
    ctx.audit.key_arn = key.arn
    conditions: dict[str, Any] = {}
    context_pairs: Mapping[str, str] | None = None
    if grant.constraints:
        [(kind, context_pairs)] = grant.constraints.items()
        conditions["kms:GrantConstraintType"] = kind
    authorize(
        ctx,
        resource=key.arn,
        key_policy=_retire_key_policy(key, grant),
        resource_account=key.account.account_id,
        resource_tags=key_tags(key),
        encryption_context=context_pairs,
        condition_values=request_condition_values(ctx, key, condition_values=conditions),
        grants=_retire_grants(key, grant),
        token_grant_ids=token_ids,
    )
    _remove(ctx, grant)
    return grant


def grant_revoke(*, ctx: OperationContext, key_id: str, grant_id: str) -> Grant:
    """Revoke a grant: whoever kms:RevokeGrant allows on the key (the grant itself has no say); any key state."""
    check_grant_id(grant_id)
    key = key_for(ctx, key_id)
    grant = grant_on_key(key, grant_id)
    _remove(ctx, grant)
    return grant


def _remove(ctx: OperationContext, grant: Grant) -> None:
    """Delete the grant now, or (delayed revocation) hide it from callers and let a worker delete it later."""
    seconds = settings.KMS_GRANT_PROPAGATION_SECONDS
    if settings.KMS_GRANT_REVOCATION_PROPAGATION == DELAYED and seconds > 0:
        now = timezone.now()
        remove_after = now + timedelta(seconds=seconds)
        # The grant was checked when loaded; its new MAC is written by the same conditional UPDATE.
        grant.removal_requested_at, grant.remove_after = now, remove_after
        grant.refresh_mac()
        changed = (
            live_grants()
            .filter(pk=grant.pk)
            .update(
                removal_requested_at=now, remove_after=remove_after, removed_by=ctx.caller.arn, mac=grant.mac
            )
        )
        if changed:
            _propagate_after_commit(grant.grant_id, remove_after)
    else:
        changed, _ = live_grants().filter(pk=grant.pk).delete()
    if not changed:  # another request retired or revoked it first
        raise errors.NotFoundException(f"Grant ID {grant.grant_id} not found")

"""CreateGrant: authorized on the key, the named principals locked and checked, a Name retry answered with the
same grant, and the grant's propagation scheduled."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from grants.models import Grant
from grants.selectors import engine_constraints, live_grants
from grants.services.grant_input import _check_name, _check_operations_suit, _constraints, _operations
from grants.services.principals import _check_principals_exist, normalize_principal
from grants.services.propagation import _propagate_after_commit
from grants.tokens import issue_token
from keys.models import Key
from keys.services.access import key_for_write_naming
from kmsconsole.audit.marks import SELF_GRANTED_USE
from kmsconsole.core import errors
from kmsconsole.operations import OperationContext
from policies import engine
from policies.authorization import engine_caller
from policies.principal_locks import lock_named

# Grants per KMS key (kms-spec §8.7, §12.1).
GRANTS_PER_KEY_LIMIT = 50_000


@dataclass(frozen=True)
class CreatedGrant:
    """CreateGrant's result: the grant (new, or the one a Name retry found) and a fresh token for it."""

    grant: Grant
    token: str


def _parameters_digest(**parameters: Any) -> str:
    canonical = json.dumps(parameters, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _created(grant: Grant, key: Key) -> CreatedGrant:
    token = issue_token(grant_id=grant.grant_id, key_arn=key.arn, issuing_account=grant.issuing_account)
    return CreatedGrant(grant, token)


def _gives_caller_use(ctx: OperationContext, key: Key, grantee: str, operations: Sequence[str]) -> bool:
    """Whether the grant lets its own creator use the key: the grantee is the caller, its session's role or its
    account (the principals grants apply to for this caller), and a granted operation is a use of this key."""
    if ctx.caller.is_operator or grantee not in engine_caller(ctx.caller).grant_keys:
        return False
    uses = {action.removeprefix("kms:") for action in engine.use_actions(key.key_spec, key.key_usage)}
    return not uses.isdisjoint(operations)


def grant_create(
    *,
    ctx: OperationContext,
    key_id: str,
    grantee_principal: str,
    operations: Sequence[str],
    retiring_principal: str | None = None,
    constraints: Mapping[str, Any] | None = None,
    name: str | None = None,
    grant_tokens: Sequence[str] = (),
) -> CreatedGrant:
    """Create a grant (or, with `name`, find the one an identical earlier request made) and issue a token."""
    grantee = normalize_principal(grantee_principal)
    retiring = normalize_principal(retiring_principal) if retiring_principal else ""
    wanted = _operations(operations)
    _check_name(name)
    stored_constraints = _constraints(constraints)
    conditions: dict[str, Any] = {"kms:GrantOperations": wanted, "kms:GranteePrincipal": grantee}
    if retiring:
        conditions["kms:RetiringPrincipal"] = retiring
    context_pairs: Mapping[str, str] | None = None
    if stored_constraints:
        [(kind, context_pairs)] = stored_constraints.items()
        conditions["kms:GrantConstraintType"] = kind
    principals = [grantee, retiring] if retiring else [grantee]
    # Authorized first, then the principals' rows before the key's (the lock order of `policies.principal_locks`);
    # whether they exist is told only once the caller is allowed on the locked key too, below.
    key, named = key_for_write_naming(
        ctx,
        key_id,
        lambda: lock_named(principals),
        encryption_context=context_pairs,
        condition_values=conditions,
        grant_tokens=grant_tokens,
        new_grant=engine.GrantRequest(frozenset(wanted), engine_constraints(stored_constraints)),
    )
    _check_principals_exist(principals, named)
    _check_operations_suit(key, wanted, stored_constraints)
    if _gives_caller_use(ctx, key, grantee, wanted):
        ctx.audit.notable = SELF_GRANTED_USE
    issuing_account = ctx.caller.account_id
    digest = _parameters_digest(
        grantee=grantee,
        retiring=retiring,
        operations=sorted(wanted),
        constraints=stored_constraints,
        issuing_account=issuing_account,
    )
    if name:
        existing = live_grants().filter(key=key, name=name, parameters_digest=digest).first()
        if existing is not None:
            return _created(existing, key)
    if Grant.objects.filter(key=key).count() >= GRANTS_PER_KEY_LIMIT:
        raise errors.LimitExceededException(
            f"The request would exceed the limit of {GRANTS_PER_KEY_LIMIT} grants for KMS key {key.arn}."
        )
    now = timezone.now()
    seconds = settings.KMS_GRANT_PROPAGATION_SECONDS
    propagate_after = now + timedelta(seconds=seconds)
    try:
        with transaction.atomic():
            grant = Grant.objects.create(
                grant_id=secrets.token_hex(32),
                key=key,
                grantee_principal=grantee,
                retiring_principal=retiring,
                operations=wanted,
                constraints=stored_constraints,
                name=name or "",
                parameters_digest=digest,
                issuing_account=issuing_account,
                created_by=ctx.caller.arn,
                created_at=now,
                propagate_after=propagate_after,
                effective_at=now if seconds == 0 else None,
            )
    except IntegrityError:
        # The same named request won a race (the key lock makes it rare, the constraint harmless): use its grant.
        if not name:
            raise
        return _created(live_grants().get(key=key, name=name, parameters_digest=digest), key)
    if seconds:
        _propagate_after_commit(grant.grant_id, propagate_after)
    return _created(grant, key)

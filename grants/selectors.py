"""Reads of grants: the caller's grants on a key for the engine, verified grant tokens, listings, and the integrated
service a request comes through.

These are what every key operation that grants may allow needs (`keys.services.access.key_for`), so they load only
what the decision can use: the grants whose grantee is the caller, its session's role or its account.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.db.models import Q, QuerySet

from grants.models import Grant, IntegratedService
from grants.tokens import INVALID_TOKEN_MESSAGE, read_token
from keys.models import Key, key_arn
from keys.selectors import cached_entry
from kmsconsole.core import errors
from kmsconsole.operations import OperationContext
from policies import engine
from policies.authorization import engine_caller

GRANT_ID_PATTERN = re.compile(r"^[0-9a-f]{64}$")
EQUALS = "EncryptionContextEquals"
SUBSET = "EncryptionContextSubset"
# The condition keys only a verified integrated service sets (they are stripped from anything else).
INTEGRATED_SERVICE_KEYS = frozenset({"kms:viaservice", "kms:grantisforawsresource"})
# kms:GrantIsForAWSResource is populated for these operations only (kms-spec §7.6).
GRANT_IS_FOR_AWS_RESOURCE_OPERATIONS = frozenset({"CreateGrant", "ListGrants", "RevokeGrant"})


def check_grant_id(grant_id: str) -> str:
    """A GrantId is 64 lowercase hex digits; anything else is InvalidGrantIdException."""
    if not GRANT_ID_PATTERN.match(grant_id):
        raise errors.InvalidGrantIdException(f"Invalid grant ID: {grant_id[:128]}")
    return grant_id


def engine_constraints(constraints: Mapping[str, Any] | None) -> engine.GrantConstraints | None:
    """A stored (or requested) Constraints structure as the engine's GrantConstraints."""
    if not constraints:
        return None
    return engine.GrantConstraints(
        encryption_context_equals=constraints.get(EQUALS), encryption_context_subset=constraints.get(SUBSET)
    )


def engine_grant(grant: Grant, key_arn: str) -> engine.Grant:
    return engine.Grant(
        grant.grant_id,
        key_arn,
        grant.grantee_principal,
        frozenset(grant.operations),
        constraints=engine_constraints(grant.constraints),
        retiring_principal=grant.retiring_principal or None,
        name=grant.name or None,
        issuing_account=grant.issuing_account,
        effective=grant.effective_at is not None,
    )


def caller_grants(
    ctx: OperationContext, key: Key, *, new_grant: engine.GrantRequest | None = None
) -> engine.GrantIndex:
    """The key's grants that can apply to the caller (grantee = its ARN, its session's role, or its account).

    One indexed query whatever the key's grant count; inside a request snapshot, kept on the key's cache entry
    (any grant created, retired, revoked or propagated on the key bumps its generation). For CreateGrant
    (`new_grant`), a grant counts only if the grant being created is within it: a subset of its operations and
    constraints at least as strict (kms-spec §8.2).
    """
    if ctx.caller.is_operator:
        return engine.GrantIndex()
    grantees = engine_caller(ctx.caller).grant_keys
    if new_grant is None:
        entry = cached_entry(key)
        if entry is not None:
            index: engine.GrantIndex = entry.part(
                "grants:" + "\n".join(grantees), lambda: engine.GrantIndex(_grants_for(key, grantees))
            )
            return index
    grants: Iterable[engine.Grant] = _grants_for(key, grantees)
    if new_grant is not None:
        grants = (grant for grant in grants if grant.permits_child(new_grant))
    return engine.GrantIndex(grants)


def _grants_for(key: Key, grantees: Iterable[str]) -> list[engine.Grant]:
    """The rows, each checked against its MAC (which names the key) before the engine sees it."""
    rows = list(Grant.objects.filter(key=key, grantee_principal__in=list(grantees)))
    return [_checked_grant(row, key) for row in rows]


def _checked_grant(row: Grant, key: Key) -> engine.Grant:
    row.key = key  # no query; a grant moved to this key in the database then fails its check
    row.check_row()
    return engine_grant(row, key.arn)


def caller_grants_of_keys(ctx: OperationContext, keys: Sequence[Key]) -> dict[int, engine.GrantIndex | None]:
    """`caller_grants(ctx, key)` for many keys in one query: for each key (by primary key), its grants that can
    apply to the caller, or None when one of them fails its MAC check (the request on that key fails closed,
    KMSInternalException, and is never allowed)."""
    if ctx.caller.is_operator or not keys:
        return {key.pk: engine.GrantIndex() for key in keys}
    grantees = list(engine_caller(ctx.caller).grant_keys)
    by_pk = {key.pk: key for key in keys}
    found: dict[int, list[engine.Grant] | None] = {pk: [] for pk in by_pk}
    for row in Grant.objects.filter(key__in=list(by_pk), grantee_principal__in=grantees):
        grants = found[row.key_id]
        if grants is None:
            continue
        try:
            grants.append(_checked_grant(row, by_pk[row.key_id]))
        except errors.KmsError:
            found[row.key_id] = None
    return {pk: None if grants is None else engine.GrantIndex(grants) for pk, grants in found.items()}


def token_grant_ids(tokens: Sequence[str], key: Key) -> frozenset[str]:
    """The grants on `key` named by the request's grant tokens. Every token must be ours and name a grant that
    still exists (and is not being retired), else the request fails with InvalidGrantTokenException; tokens for
    grants on other keys are valid but do not count here (ReEncrypt may carry tokens for both its keys)."""
    if not tokens:
        return frozenset()
    claims = {read_token(token) for token in tokens}
    rows = list(
        live_grants().filter(grant_id__in={claim.grant_id for claim in claims}).select_related("key__account")
    )
    for row in rows:
        # The grant a token names may not be among the caller's loaded grants (one not yet propagated, or one
        # re-pointed in the database): its row MAC is checked here too, so a tampered row fails closed.
        row.check_row()
    live = {row.grant_id: key_arn(row.key.account.account_id, str(row.key.key_id)) for row in rows}
    if any(live.get(claim.grant_id) != claim.key_arn for claim in claims):
        raise errors.InvalidGrantTokenException(INVALID_TOKEN_MESSAGE)
    return frozenset(claim.grant_id for claim in claims if claim.key_arn == key.arn)


def live_grants() -> QuerySet[Grant]:
    """Grants that exist as far as callers can tell (not retired or revoked, even if removal is delayed)."""
    return Grant.objects.filter(removal_requested_at__isnull=True)


def grant_on_key(key: Key, grant_id: str) -> Grant:
    """A live grant of `key`, or NotFoundException (AWS's answer for an unknown grant)."""
    grant = live_grants().filter(key=key, grant_id=check_grant_id(grant_id)).first()
    if grant is None:
        raise errors.NotFoundException(f"Grant ID {grant_id} not found")
    grant.key = key
    grant.check_row()
    return grant


def grants_of_key(
    key: Key, *, grant_id: str | None = None, grantee_principal: str | None = None
) -> QuerySet[Grant]:
    rows = live_grants().filter(key=key)
    if grant_id is not None:
        rows = rows.filter(grant_id=check_grant_id(grant_id))
    if grantee_principal is not None:
        rows = rows.filter(grantee_principal=grantee_principal)
    return rows


def retirable_grants(retiring_principal: str) -> QuerySet[Grant]:
    return live_grants().filter(retiring_principal=retiring_principal).select_related("key__account")


def due_grant_ids(now: Any, *, limit: int) -> list[tuple[str, str]]:
    """Grants due to take effect, or whose delayed removal is due, oldest first: (grant id, the key's account)."""
    due = Q(effective_at__isnull=True, removal_requested_at__isnull=True, propagate_after__lte=now) | Q(
        remove_after__lte=now
    )
    rows = Grant.objects.filter(due).order_by("pk").values_list("grant_id", "key__account__account_id")
    return list(rows[:limit])


def integrated_service_values(ctx: OperationContext) -> dict[str, Any]:
    """`kms:ViaService` (and, for grant operations, `kms:GrantIsForAWSResource` = true) when the request says it
    comes through a registered integrated service and the operator bound its signer (the user, or the role of a
    session) to that service; nothing for ordinary requests. A claim that is not allowed fails the request.

    The claim is the request's `via_service` (`RequestMeta`); interfaces that cannot carry one never set it.
    """
    name = ctx.meta.via_service
    if not name:
        return {}
    service = IntegratedService.objects.filter(name=name).first()
    if service is None:
        raise errors.ValidationException(f"{name[:128]} is not an integrated service registered in this KMS.")
    service.check_row()  # a principal bound in the database, not by the operator, fails closed
    caller = ctx.caller
    if caller.arn not in service.principals and (
        not caller.role_arn or caller.role_arn not in service.principals
    ):
        raise errors.AccessDeniedException(
            f"User: {caller.arn} is not authorized to act as the integrated service {name}: the operator has not "
            "bound this principal to it"
        )
    values: dict[str, Any] = {"kms:ViaService": name}
    if ctx.operation.name in GRANT_IS_FOR_AWS_RESOURCE_OPERATIONS:
        values["kms:GrantIsForAWSResource"] = True
    return values

"""Grants: CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant (kms-spec §8), and the workers'
propagation of grants.

- Grantees and retiring principals are users, roles, assumed-role sessions, federated users or accounts (an
  account id is stored as its root ARN) that exist here; never groups or `*` (InvalidArnException; the model's
  pattern already refuses `*`). Operations must suit the key type and, for an asymmetric key, its key usage
  (ValidationException); encryption-context constraints only on symmetric encryption keys, one kind per grant, at
  most 8 pairs, values up to 384 characters; a constraint of another name is refused, never dropped. `Name` keeps
  the model's length (1-256) and pattern, for the interfaces that do not check the model.
- At most GRANTS_PER_KEY_LIMIT grants a key (LimitExceededException). `Name` makes a retry with the same
  parameters return the same GrantId (with a fresh token); another request with that name is another grant.
- A grant that allows CreateGrant lets its grantee create only grants within it (`keys.services.access`).
- RetireGrant is decided by the grant: its retiring principal, its grantee if it lists RetireGrant, and the
  principals the key's account (or the issuing account) allows kms:RetireGrant in IAM; a key-policy Allow of
  kms:RetireGrant has no effect, an IAM Deny does (§8.6). RevokeGrant needs kms:RevokeGrant on the key.
- A new grant takes effect when a worker has propagated it (KMS_GRANT_PROPAGATION_SECONDS after creation; 0 makes
  it effective at once, in the creating transaction). Retiring and revoking take effect at once, unless
  KMS_GRANT_REVOCATION_PROPAGATION=delayed: then the grant is gone for callers (ListGrants, tokens) but keeps
  allowing until a worker removes it, as on AWS. Each propagation is the `PropagateGrant` service event.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from grants.models import Grant, IntegratedService
from grants.selectors import (
    EQUALS,
    SUBSET,
    check_grant_id,
    due_grant_ids,
    engine_constraints,
    engine_grant,
    grant_on_key,
    grants_of_key,
    live_grants,
    retirable_grants,
)
from grants.tokens import INVALID_TOKEN_MESSAGE, issue_token, read_token
from keys.models import Key
from keys.selectors import key_tags, resolve_key
from keys.services.access import SELF_GRANTED_USE, key_for, key_for_write_naming, request_condition_values
from kmsconsole.audit.recorder import NothingToDo
from kmsconsole.core import errors
from kmsconsole.core.context import RequestMeta, operator_caller
from kmsconsole.core.pagination import list_limit, page
from kmsconsole.jobs.models import JobRun
from kmsconsole.jobs.runs import describe_error, job_run
from kmsconsole.operations import OperationContext, perform
from policies import engine
from policies.arns import account_root_arn
from policies.authorization import authorize, engine_caller
from policies.models import Account
from policies.principal_locks import NamedPrincipals, lock_named

logger = logging.getLogger(__name__)

# Grants per KMS key (kms-spec §8.7, §12.1).
GRANTS_PER_KEY_LIMIT = 50_000
# Encryption-context constraints (kms-spec §8.1).
CONSTRAINT_MAX_PAIRS = 8
CONSTRAINT_VALUE_MAX_CHARS = 384
# ListGrants and ListRetirableGrants: Limit 1-100, default 50.
LIST_GRANTS_DEFAULT_LIMIT = 50
LIST_GRANTS_MAX_LIMIT = 100
# KMS_GRANT_REVOCATION_PROPAGATION values.
IMMEDIATE = "immediate"
DELAYED = "delayed"
# The workers: the service event, the operator name they act under, the sweeper's job name and batch size.
PROPAGATION_EVENT = "PropagateGrant"
PROPAGATION_WORKER = "grant-propagation"
PROPAGATION_SWEEP_JOB = "propagate-due-grants"
PROPAGATION_SWEEP_BATCH = 1000
TOOK_EFFECT = "effective"
REMOVED = "removed"

# CreateGrant's Name (kms-spec §8.1): the service model's limits, checked here for the interfaces without the model.
GRANT_NAME_MAX_LENGTH = 256
GRANT_NAME_PATTERN = r"^[a-zA-Z0-9:/_-]+$"
SOURCE_ARN = "SourceArn"
# The members of GrantConstraints; SourceArn is known, and refused, rather than mistaken for a typo.
CONSTRAINT_NAMES = (EQUALS, SUBSET, SOURCE_ARN)

_ENCRYPTION = frozenset({"Encrypt", "Decrypt", "ReEncryptFrom", "ReEncryptTo"})
_EVERY_KEY = frozenset({"CreateGrant", "RetireGrant", "DescribeKey"})
_EVERY_ASYMMETRIC_KEY = _EVERY_KEY | {"GetPublicKey"}
# Which grant operations an asymmetric key can have depends on its key usage: a grant may not allow what the key
# cannot do (kms-spec §8.1, the Developer Guide's "Grant operations").
ASYMMETRIC_OPERATIONS_BY_KEY_USAGE = {
    "ENCRYPT_DECRYPT": _EVERY_ASYMMETRIC_KEY | _ENCRYPTION,
    "SIGN_VERIFY": _EVERY_ASYMMETRIC_KEY | {"Sign", "Verify"},
    "KEY_AGREEMENT": _EVERY_ASYMMETRIC_KEY | {"DeriveSharedSecret"},
    "ENCAPSULATE_DECAPSULATE": _EVERY_ASYMMETRIC_KEY | {"Encapsulate", "Decapsulate"},
}
# Which grant operations each kind of key can have; for "ASYMMETRIC", those of some asymmetric key (a given key's
# are `grant_operations_for(key)`).
OPERATIONS_BY_KEY_TYPE = {
    "SYMMETRIC": _EVERY_KEY
    | _ENCRYPTION
    | {
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
    },
    "ASYMMETRIC": frozenset().union(*ASYMMETRIC_OPERATIONS_BY_KEY_USAGE.values()),
    "HMAC": _EVERY_KEY | {"GenerateMac", "VerifyMac"},
}
GRANTEE_KINDS = frozenset(
    {
        engine.PrincipalKind.ACCOUNT,
        engine.PrincipalKind.USER,
        engine.PrincipalKind.ROLE,
        engine.PrincipalKind.ASSUMED_ROLE,
        engine.PrincipalKind.FEDERATED_USER,
    }
)


@dataclass(frozen=True)
class CreatedGrant:
    """CreateGrant's result: the grant (new, or the one a Name retry found) and a fresh token for it."""

    grant: Grant
    token: str


def key_type(key: Key) -> str:
    if key.key_spec == "SYMMETRIC_DEFAULT":
        return "SYMMETRIC"
    return "HMAC" if key.key_spec.startswith("HMAC_") else "ASYMMETRIC"


def grant_operations_for(key: Key) -> frozenset[str]:
    """The operations a grant on `key` may allow: its key type's, and for an asymmetric key its key usage's."""
    kind = key_type(key)
    if kind == "ASYMMETRIC":
        return ASYMMETRIC_OPERATIONS_BY_KEY_USAGE[key.key_usage]
    return OPERATIONS_BY_KEY_TYPE[kind]


def normalize_principal(principal: str) -> str:
    """An account id names the account's root (how grants store and match it)."""
    return account_root_arn(principal) if engine.is_account_id(principal) else principal


def _invalid_principal(principal: str) -> errors.KmsError:
    return errors.InvalidArnException(f"ARN does not refer to a valid principal: {principal[:256]}")


def _parse_principal(principal: str) -> engine.PrincipalArn:
    parsed = engine.parse_principal_arn(principal)
    if parsed is None or parsed.kind not in GRANTEE_KINDS or parsed.partition != settings.KMS_PARTITION:
        raise _invalid_principal(principal)
    return parsed


def _check_principals_exist(principals: Sequence[str], named: NamedPrincipals) -> None:
    """Grantees and retiring principals must exist here (AWS: InvalidArnException); sessions need their role.
    `named` is what `lock_named` found before the key was locked: the users and roles named, locked to the end of
    the transaction (`policies.principal_locks`), so a deletion of one running meanwhile either sees the new
    grant or is seen to have removed the principal."""
    parsed = [_parse_principal(principal) for principal in principals]
    locked = named.existing(parsed)
    for principal, named, exists in zip(principals, parsed, locked, strict=True):
        if named.kind in (
            engine.PrincipalKind.USER,
            engine.PrincipalKind.ROLE,
            engine.PrincipalKind.ASSUMED_ROLE,
        ):
            found = exists
        else:  # the account itself, or a federated user of it
            found = Account.objects.filter(account_id=named.account_id).exists()
        if not found:
            raise _invalid_principal(principal)


def _operations(requested: Sequence[str]) -> list[str]:
    operations = list(dict.fromkeys(requested))
    if not operations:
        raise errors.ValidationException(
            "1 validation error detected: Value '[]' at 'operations' failed to satisfy constraint: "
            "Member must have length greater than or equal to 1"
        )
    return operations


def _check_name(name: str | None) -> None:
    """Name's limits, in the words of AWS's model validation: a longer name would not fit the column, and another
    character would make a name the KMS endpoint refuses."""
    if name is not None:
        errors.check_length("name", name, minimum=1, maximum=GRANT_NAME_MAX_LENGTH)
        errors.check_pattern("name", name, GRANT_NAME_PATTERN)


def _constraints(requested: Mapping[str, Any] | None) -> dict[str, dict[str, str]] | None:
    """The stored form of a request's Constraints (empty maps count as absent, as on AWS)."""
    if not requested:
        return None
    unknown = [name[:64] for name in requested if name not in CONSTRAINT_NAMES]
    if unknown:
        # Dropping an unknown member would turn a misspelled constraint into no constraint at all.
        raise errors.ValidationException(
            f"Constraints has no member {', '.join(unknown)}; its members are {', '.join(CONSTRAINT_NAMES)}."
        )
    if requested.get(SOURCE_ARN) is not None:
        raise errors.UnsupportedOperationException(
            "The SourceArn grant constraint is for grants to service principals, which this KMS does not support."
        )
    given = {kind: dict(pairs) for kind in (EQUALS, SUBSET) if (pairs := requested.get(kind))}
    if not given:
        return None
    if len(given) > 1:
        raise errors.ValidationException(
            "A grant can have only one encryption context constraint: EncryptionContextEquals or "
            "EncryptionContextSubset."
        )
    [(kind, pairs)] = given.items()
    if len(pairs) > CONSTRAINT_MAX_PAIRS:
        raise errors.ValidationException(
            f"{kind} can have at most {CONSTRAINT_MAX_PAIRS} encryption context pairs, not {len(pairs)}."
        )
    if any(len(value) > CONSTRAINT_VALUE_MAX_CHARS for value in pairs.values()):
        raise errors.ValidationException(
            f"The values of {kind} can be at most {CONSTRAINT_VALUE_MAX_CHARS} characters long."
        )
    return given


def _check_operations_suit(
    key: Key, operations: Sequence[str], constraints: Mapping[str, Any] | None
) -> None:
    suitable = grant_operations_for(key)
    unsuited = [operation for operation in operations if operation not in suitable]
    if unsuited:
        raise errors.ValidationException(
            f"{', '.join(unsuited)} {'is' if len(unsuited) == 1 else 'are'} not a valid grant operation for a "
            f"KMS key with KeySpec {key.key_spec} and KeyUsage {key.key_usage}."
        )
    if constraints and key_type(key) != "SYMMETRIC":
        raise errors.ValidationException(
            f"Encryption context grant constraints apply only to symmetric encryption KMS keys, not to a KMS key "
            f"with KeySpec {key.key_spec}."
        )


def _parameters_digest(**parameters: Any) -> str:
    canonical = json.dumps(parameters, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _created(grant: Grant, key: Key) -> CreatedGrant:
    token = issue_token(grant_id=grant.grant_id, key_arn=key.arn, issuing_account=grant.issuing_account)
    return CreatedGrant(grant, token)


def _enqueue_propagation(grant_id: str, eta: datetime) -> None:
    """Ask a worker to propagate the grant at `eta`. This only makes it prompt: the sweeper finds the grant by its
    columns anyway, so a broker that is down costs a delay, never the grant."""
    from grants.tasks import propagate_grant  # the tasks module imports this one
    from kmsconsole.celery import publish_or_skip

    if not publish_or_skip(propagate_grant, (grant_id,), eta=eta):
        logger.warning(
            "Could not enqueue the propagation of grant %s; the sweeper will propagate it", grant_id
        )


def _propagate_after_commit(grant_id: str, eta: datetime) -> None:
    transaction.on_commit(partial(_enqueue_propagation, grant_id, eta), robust=True)


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


def _retire_key_policy(key: Key, grant: Grant) -> str:
    """The key policy RetireGrant is decided under: the key's account and the grant's issuing account delegate
    kms:RetireGrant to their IAM, and nothing else (the key's own policy has no say, kms-spec §8.6)."""
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


def grant_propagate(*, grant_id: str, now: datetime | None = None) -> str | None:
    """The worker's step for one grant: make it effective once due, or delete it once its delayed removal is due.
    Returns what changed, or None when nothing was due (not yet, already done, or the grant is gone). Safe to run
    twice and concurrently: a conditional UPDATE (or DELETE) claims the change, and the loser writes nothing."""
    grant = Grant.objects.select_related("key__account").filter(grant_id=grant_id).first()
    if grant is None:
        return None
    grant.check_row()
    moment = now or timezone.now()
    if grant.removal_requested_at is not None:
        if grant.remove_after is None or grant.remove_after > moment:
            return None
        change = REMOVED
    elif grant.effective_at is None and grant.propagate_after <= moment:
        change = TOOK_EFFECT
    else:
        return None

    def apply(ctx: OperationContext) -> dict[str, Any]:
        authorize(ctx, resource=grant.key.arn)  # the operator: recorded as such
        ctx.audit.key_arn = grant.key.arn
        rows = Grant.objects.filter(pk=grant.pk)
        if change == REMOVED:
            done, _ = rows.filter(remove_after__lte=moment).delete()
        else:
            # The claim writes the grant's new MAC in the same statement (the row was checked when loaded).
            grant.effective_at = moment
            grant.refresh_mac()
            done = rows.filter(
                effective_at__isnull=True, removal_requested_at__isnull=True, propagate_after__lte=moment
            ).update(effective_at=moment, mac=grant.mac)
        if not done:
            raise NothingToDo
        return {"GrantId": grant.grant_id, "Change": change}

    try:
        perform(
            PROPAGATION_EVENT,
            caller=operator_caller(grant.key.account.account_id, PROPAGATION_WORKER),
            meta=RequestMeta(interface="worker"),
            params={"GrantId": grant.grant_id, "Change": change},
            service=apply,
        )
    except NothingToDo:
        return None
    return change


def grants_propagate_due(*, now: datetime | None = None, batch: int = PROPAGATION_SWEEP_BATCH) -> JobRun:
    """The beat sweeper: propagate every grant that is due (its message may have been lost) and complete every
    delayed removal that is due. Leaves a JobRun with how many grants it changed and which failed."""
    with job_run(PROPAGATION_SWEEP_JOB, counts_by_account=True) as run:
        moment = now or timezone.now()
        for grant_id, account_id in due_grant_ids(moment, limit=batch):
            try:
                if grant_propagate(grant_id=grant_id, now=moment):
                    run.count(account_id)
            except errors.KmsError as error:
                run.fail(f"grant {grant_id}: {describe_error(error)}", account_id=account_id)
    return run.run


INTEGRATED_SERVICE_NAME = re.compile(r"^[a-z0-9-]+(\.[a-z0-9-]+)+$")


def integrated_service_register(
    *, ctx: OperationContext, name: str, principals: Sequence[str], description: str = ""
) -> IntegratedService:
    """Register a service (e.g. `ec2.us-east-1.amazonaws.com`) and the user and role ARNs that act as it
    (see grants.models.IntegratedService)."""
    authorize(ctx, resource="*")
    parsed_all = []
    for arn in principals:
        parsed = engine.parse_principal_arn(arn)
        if parsed is None or parsed.kind not in (engine.PrincipalKind.USER, engine.PrincipalKind.ROLE):
            raise errors.ValidationException(f"{arn[:256]} is not a user or role ARN.")
        parsed_all.append(parsed)
    # Only principals that exist, their rows locked as a grant's (`policies.principal_locks`): a binding to a name
    # nobody has, or to one being deleted, would let whoever is created with that name later act as the service.
    # A deletion racing this either sees the new service and rebinds it to the unique id, or is seen.
    found = lock_named(list(principals)).existing(parsed_all)
    for arn, exists in zip(principals, found, strict=True):
        if not exists:
            raise errors.ValidationException(
                f"{arn[:256]} names no user or role: an integrated service is bound only to principals that exist."
            )
    if len(name) > 128 or not INTEGRATED_SERVICE_NAME.match(name):
        raise errors.ValidationException(
            "An integrated service is named like a service principal: lower-case labels separated by dots, "
            "such as ec2.us-east-1.amazonaws.com (at most 128 characters)."
        )
    service, created = IntegratedService.objects.get_or_create(
        name=name, defaults={"description": description, "principals": list(principals)}
    )
    if not created:
        raise errors.AlreadyExistsException(f"The integrated service {name} is already registered.")
    return service

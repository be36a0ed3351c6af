"""The preamble of every key operation: resolve the KeyId, authorize against the key, check the key state.

Order (kms-spec §4.2, "Suggested order of checks"): the key (NotFoundException), then authorization
(AccessDeniedException), then the key state (DisabledException / KMSInvalidStateException).

For operations grants may allow, the engine also gets the caller's grants on the key (only those whose grantee is
the caller, its session's role or its account: one indexed query) and the grants whose tokens came with the
request, verified first (InvalidGrantTokenException). A request made through a registered integrated service
carries kms:ViaService (and kms:GrantIsForAWSResource for grant operations); no other path may set those keys.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from grants.selectors import (
    INTEGRATED_SERVICE_KEYS,
    caller_grants,
    integrated_service_values,
    token_grant_ids,
)
from keys.models import Key, KeyState
from keys.selectors import check_key_state, check_rows, key_condition_values, key_tags, resolve_key
from kmsconsole.core import errors
from kmsconsole.operations import OPERATIONS, OperationContext
from policies import engine
from policies.authorization import authorize, identity_policies, readable_engine_caller, request_context

logger = logging.getLogger(__name__)

Named = TypeVar("Named")

PENDING_DELETION_USE = "use of a key pending deletion"
# A principal that gave itself use of a key: a key policy change or a grant by which the caller itself gains
# cryptographic use (a key administrator making itself a key user).
SELF_GRANTED_USE = "gave itself use of the key"


def authorize_on_key(
    ctx: OperationContext,
    key: Key,
    *,
    action: str | None = None,
    request_alias: str | None = None,
    encryption_context: Mapping[str, str] | None = None,
    request_tags: Mapping[str, str] | None = None,
    condition_values: Mapping[str, Any] | None = None,
    grant_tokens: Sequence[str] = (),
    new_grant: engine.GrantRequest | None = None,
) -> engine.Decision | None:
    """Ask the engine whether the caller may act on `key` (key policy + identity policies, and for grantable
    operations the caller's grants and the request's grant tokens). `new_grant` is the grant a CreateGrant asks
    for: a grant allowing CreateGrant counts only if the new grant is within it."""
    ctx.audit.key_arn = ctx.audit.key_arn or key.arn
    values = request_condition_values(
        ctx, key, request_alias=request_alias, condition_values=condition_values
    )
    grants: engine.GrantIndex = engine.GrantIndex()
    token_ids: frozenset[str] = frozenset()
    if ctx.operation.grantable:
        token_ids = token_grant_ids(tuple(grant_tokens) or ctx.grant_tokens, key)
        grants = caller_grants(ctx, key, new_grant=new_grant)
    return authorize(
        ctx,
        resource=key.arn,
        action=action,
        key_policy=key.policy,
        resource_account=key.account.account_id,
        resource_tags=key_tags(key),
        request_tags=request_tags,
        encryption_context=encryption_context,
        condition_values=values,
        grants=grants,
        token_grant_ids=token_ids,
    )


class KeyQuestions:
    """Whether the caller's request for an action on a key would be allowed, decided by the engine as that request
    would be (key policy, identity policies, the key's tags and condition values, the checks of its rows) and
    recorded nowhere: what a list, itself one authorized and audited operation, may show of each of its keys. The
    caller's identity policies are read once, for all the keys asked about. Only for actions no grant can allow
    (grants are not consulted)."""

    def __init__(self, ctx: OperationContext) -> None:
        self._ctx = ctx
        self._asker: tuple[engine.Caller, list[engine.IdentityPolicy]] | None = None
        self._unreadable = False
        self._policies: dict[int, engine.CompiledPolicy | None] = {}

    def allows(self, key: Key, action: str, *, condition_values: Mapping[str, Any] | None = None) -> bool:
        if action in _GRANTABLE_ACTIONS:
            raise ValueError(f"{action} can be allowed by a grant, which KeyQuestions does not consult")
        ctx = self._ctx
        if ctx.caller.is_operator:
            return True
        asker = self._caller_and_policies()
        if asker is None:
            return False  # every request of a principal the engine cannot read is refused
        policy = self._checked_policy(key)
        if policy is None:
            return False
        request = request_context(
            ctx,
            asker[0],
            action=action,
            resource=key.arn,
            resource_account=key.account.account_id,
            resource_tags=key_tags(key),
            condition_values=request_condition_values(ctx, key, condition_values=condition_values),
        )
        return engine.would_allow(request, key_policy=policy, identity_policies=asker[1])

    def _checked_policy(self, key: Key) -> engine.CompiledPolicy | None:
        """The key's compiled policy once its rows pass their checks, None when the key cannot be decided on; once
        per key however many actions are asked about."""
        if key.pk not in self._policies:
            try:
                # The real request refuses a key whose row, aliases or tags changed outside the service
                # (KMSInternalException), and one whose stored policy the engine cannot read.
                check_rows(key)
                self._policies[key.pk] = engine.compile_key_policy(key.policy)
            except (errors.KmsError, engine.EngineError):
                logger.warning(
                    "Key %s cannot be decided on (its rows or its policy); shown as refused", key.key_id
                )
                self._policies[key.pk] = None
        return self._policies[key.pk]

    def may_read(self, key: Key, reads: Sequence[str]) -> bool:
        """Whether the caller may make every read of `reads` (`RULES`, `ACCESS_READS`, `ANALYSIS_READS`) on the
        key, each decided as its request would be."""
        return all(self.allows(key, action, condition_values=READ_VALUES.get(action)) for action in reads)

    def may_read_rules(self, key: Key) -> bool:
        """Whether the caller may read what decides access to the key: its policy (kms:GetKeyPolicy) and its tags
        (kms:ListResourceTags, which conditions on aws:ResourceTag test). A decision trace quotes both."""
        return self.may_read(key, RULES)

    def may_analyse(self, key: Key) -> bool:
        """Whether the caller may read everything an analysis of the key shows (`analysis_reads`): its policy and
        tags, its grants (routes and findings name them) and, on a key that can rotate, its rotation status (a
        finding reports it)."""
        return self.may_read(key, analysis_reads(key))

    def _caller_and_policies(self) -> tuple[engine.Caller, list[engine.IdentityPolicy]] | None:
        # By hand, not functools.cached_property: on Python 3.11 that holds one lock for every instance.
        if self._asker is None and not self._unreadable:
            caller = readable_engine_caller(self._ctx.caller)
            if caller is None:
                self._unreadable = True
            else:
                self._asker = (caller, identity_policies(self._ctx.caller))
        return self._asker


# GetKeyPolicy's kms:PolicyName (a key has one policy, "default").
DEFAULT_POLICY_NAME = {"kms:PolicyName": "default"}

# What an answer about a key may be made of, each part named by the action of the request that returns it (AWS's
# rule: a reader must be allowed the operation that returns the data). An answer that shows a part is refused
# whole to a caller who may not make that read; nothing is left out of an answer that is given.
# What decides access: the policy, and the tags that conditions on aws:ResourceTag test.
RULES: tuple[str, ...] = ("kms:GetKeyPolicy", "kms:ListResourceTags")
# Who may do what, and how: also the key's grants, which allow too (a simulation names the grant that allowed and
# its trace notes each grant of the principal; a comparison's routes name grants).
ACCESS_READS: tuple[str, ...] = (*RULES, "kms:ListGrants")
# A key's analysis (its matrix and findings): also whether automatic rotation is on (the rotation finding).
ANALYSIS_READS: tuple[str, ...] = (*ACCESS_READS, "kms:GetKeyRotationStatus")


def analysis_reads(key: Key) -> tuple[str, ...]:
    """What an analysis of `key` shows: `ANALYSIS_READS` on a key that can rotate; on any other key, whose
    rotation status no request can read (UnsupportedOperationException) and no finding reports, `ACCESS_READS`."""
    return ANALYSIS_READS if key.rotatable else ACCESS_READS


# The condition values those requests carry whatever their parameters.
READ_VALUES: dict[str, Mapping[str, Any]] = {"kms:GetKeyPolicy": DEFAULT_POLICY_NAME}


def may_read_rules_of(ctx: OperationContext, key_arn: str, *, reads: Sequence[str] = RULES) -> bool:
    """`KeyQuestions.may_read(key, reads)` (by default the rules: policy and tags) for the key of the caller's
    account that `key_arn` names (False when it names none, or the question cannot be decided)."""
    key_id = key_arn.rsplit("/", 1)[-1]
    try:
        uuid.UUID(key_id)
    except ValueError:
        return False
    key = Key.objects.select_related("account").filter(
        key_id=key_id, account__account_id=ctx.caller.account_id
    )
    found = key.first()
    if found is None:
        return False
    try:
        return KeyQuestions(ctx).may_read(found, reads)
    except errors.KmsError:  # e.g. a claimed integrated service the caller may not act as
        return False


_GRANTABLE_ACTIONS = frozenset(operation.action for operation in OPERATIONS.values() if operation.grantable)


def request_condition_values(
    ctx: OperationContext,
    key: Key,
    *,
    request_alias: str | None = None,
    condition_values: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The condition values of a request on `key`: the key's own, the operation's, and those of the integrated
    service the request verifiably comes through (which nothing else can set)."""
    values = key_condition_values(key, request_alias=request_alias)
    values.update(
        (name, value)
        for name, value in (condition_values or {}).items()
        if name.lower() not in INTEGRATED_SERVICE_KEYS
    )
    values.update(integrated_service_values(ctx))
    return values


def expect_operation(ctx: OperationContext, name: str) -> None:
    """Fail closed when a service doing `name`'s work runs under another operation: its key check authorizes
    `ctx.operation`, so an interface that picked the wrong operation (from a body it read differently than its
    validation did) would have authorized one thing and done another."""
    if ctx.operation.name != name:
        raise errors.KMSInternalException(f"{name} was called as {ctx.operation.name}")


def key_for(
    ctx: OperationContext,
    key_id: str,
    *,
    lock: bool = False,
    action: str | None = None,
    encryption_context: Mapping[str, str] | None = None,
    request_tags: Mapping[str, str] | None = None,
    condition_values: Mapping[str, Any] | None = None,
    grant_tokens: Sequence[str] = (),
    new_grant: engine.GrantRequest | None = None,
) -> Key:
    """The key a request names, once the caller is authorized and the key's state allows the operation.

    `lock=True` takes a row lock for the rest of the transaction (state changes: a disable and a use of the
    same key are then ordered, never interleaved). `grant_tokens` are the request's GrantTokens (operations that
    grants may allow); `new_grant` is what a CreateGrant asks for.
    """
    resolved = resolve_key(key_id, caller_account=ctx.caller.account_id, operation=ctx.operation)
    key = resolved.key
    if lock:
        # Only the key's row (`of`): locking the joined account row too made every change to any key of an
        # account wait on one row, and deadlock with a transaction that holds the audit chain head while its
        # commit-time foreign-key check takes a share lock on that account row.
        key = Key.objects.select_for_update(of=("self",)).select_related("account").get(pk=key.pk)
        key.check_row()  # the locked copy is the one a change saves: never bless a row changed outside
    authorize_on_key(
        ctx,
        key,
        action=action,
        request_alias=resolved.request_alias,
        encryption_context=encryption_context,
        request_tags=request_tags,
        condition_values=condition_values,
        grant_tokens=grant_tokens,
        new_grant=new_grant,
    )
    check_state(ctx, key)
    return key


def key_for_write_naming(
    ctx: OperationContext,
    key_id: str,
    lock_named: Callable[[], Named],
    *,
    encryption_context: Mapping[str, str] | None = None,
    condition_values: Mapping[str, Any] | None = None,
    grant_tokens: Sequence[str] = (),
    new_grant: engine.GrantRequest | None = None,
) -> tuple[Key, Named]:
    """The key a write that names principals (PutKeyPolicy, CreateGrant, a restore) changes, locked, and what
    `lock_named` found (the principals it names, looked up and locked: `policies.principal_locks`).

    The caller is authorized on the key's row as it is first (refused, it has looked up and locked nothing), then
    the principals are locked, then the key (the lock order), and the caller is authorized again on the locked
    row: the decision that counts, and the one recorded (one event: `authorize` records each decision on the same
    record, the last one stays)."""
    checks: dict[str, Any] = {
        "encryption_context": encryption_context,
        "condition_values": condition_values,
        "grant_tokens": grant_tokens,
        "new_grant": new_grant,
    }
    key_for(ctx, key_id, **checks)
    named = lock_named()
    return key_for(ctx, key_id, lock=True, **checks), named


def check_state(ctx: OperationContext, key: Key) -> None:
    """The key-state check of the operation; a refused use of a key pending deletion is marked notable."""
    try:
        check_key_state(key, ctx.operation)
    except errors.KMSInvalidStateException:
        if key.state == KeyState.PENDING_DELETION:
            # AWS users alarm on exactly this: something still depends on a key that is about to disappear.
            ctx.audit.notable = PENDING_DELETION_USE
        raise

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
from typing import Any, NamedTuple, TypeVar

from grants.selectors import (
    INTEGRATED_SERVICE_KEYS,
    caller_grants,
    caller_grants_of_keys,
    integrated_service_values,
    token_grant_ids,
)
from keys.models import Key, KeyState
from keys.selectors import (
    check_key_state,
    checked_aliases_and_tags,
    key_condition_values,
    key_tags,
    resolve_key,
)
from kmsconsole.audit.marks import PENDING_DELETION_USE
from kmsconsole.audit.recorder import AuditRecord
from kmsconsole.core import errors
from kmsconsole.operations import OPERATIONS, OperationContext
from policies import engine
from policies.authorization import (
    authorize,
    readable_engine_caller,
    request_context,
    request_identity_policies,
)

logger = logging.getLogger(__name__)

Named = TypeVar("Named")


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


def question_context(ctx: OperationContext, name: str) -> OperationContext:
    """A context for asking whether a request `name` by the caller would be allowed, from inside the current
    operation: the same caller, address and transport, the operation's own read of the identity policies, and a
    record of its own that is never written (the current operation's one event is the only record)."""
    operation = OPERATIONS[name]
    return OperationContext(
        operation=operation,
        caller=ctx.caller,
        meta=ctx.meta,
        audit=AuditRecord(operation=operation.name, meta=ctx.meta, caller=ctx.caller),
        read_once=ctx.read_once,
    )


def request_allowed(ctx: OperationContext, key: Key, name: str) -> bool:
    """Whether a request `name` by the caller on `key` (already resolved and checked by the current operation)
    would be allowed: what a page showing another operation's answer beside its own must ask first.

    Decided by that operation's own path: another account's key only for a cross-account operation, then
    `authorize_on_key` (the key policy, identity policies, the key's tags and condition values, and, for a
    grantable operation, the caller's grants), then its key-state check; from inside the current operation, whose
    one audit event is the only record: the question's decision goes on a record of its own that is never written,
    and the current operation's decision stays as it was. (`KeyQuestions` does not consult grants.)"""
    if ctx.operation.name == name:
        return True  # the current operation is the request: it was allowed, or nothing would be shown
    question = question_context(ctx, name)
    if not question.operation.cross_account and key.account.account_id != ctx.caller.account_id:
        return False  # the request would not find another account's key (keys.selectors.resolve_key)
    try:
        authorize_on_key(question, key)
        check_key_state(key, question.operation)  # as the request would, after authorization
    except errors.KmsError:  # refused, in a state the request refuses, or a claimed integrated service
        return False
    except engine.EngineError:  # a stored policy the engine cannot read: every request on the key is refused
        return False
    return True


DESCRIBE_KEY = "DescribeKey"


class _CheckedKey(NamedTuple):
    """What every question about a key reads of it, once its rows passed their checks."""

    aliases: tuple[str, ...]
    tags: dict[str, str]
    policy: engine.CompiledPolicy


class KeyQuestions:
    """Whether the caller's request for an action on a key would be allowed, decided by the engine as that request
    would be (key policy, identity policies, the key's tags and condition values, the checks of its rows) and
    recorded nowhere: what a list, itself one authorized and audited operation, may show of each of its keys. The
    caller's identity policies are read once per request (the operation's own read, `request_identity_policies`),
    for all the keys asked about. `allows` is only for actions no grant can allow (grants are not consulted);
    `describable` decides DescribeKey, grants included, for many keys at once."""

    def __init__(self, ctx: OperationContext) -> None:
        self._ctx = ctx
        self._asker: tuple[engine.Caller, list[engine.IdentityPolicy]] | None = None
        self._unreadable = False
        self._keys: dict[int, _CheckedKey | None] = {}
        self._compiled: dict[str, engine.CompiledPolicy | None] = {}

    def allows_on_account(self, action: str) -> bool:
        """Whether the caller's request for an IAM-only action on "*" (kms:ListAliases, say) would be allowed:
        identity policies alone decide, as `authorize(ctx, resource="*")` decides the request itself."""
        if self._ctx.caller.is_operator:
            return True
        asker = self._caller_and_policies()
        if asker is None:
            return False
        request = request_context(self._ctx, asker[0], action=action, resource="*")
        return engine.would_allow(request, key_policy=None, identity_policies=asker[1])

    def describable(self, keys: Sequence[Key]) -> frozenset[int]:
        """The primary keys of those of `keys` on which a DescribeKey request by the caller would be allowed.

        DescribeKey's own decision (`authorize_on_key` for a DescribeKey, which `keys.services.lifecycle.
        key_describable` asks one key at a time), made for many keys at once and recorded nowhere: each key's
        rows pass their MAC checks (its row, aliases and tags, as a list prefetched them) or it is refused, as the
        request would fail; its key policy (compiled once per distinct text; one the engine cannot read refuses);
        the caller's identity policies (read once per request); the key's tags and condition values; the
        integrated service the request comes through; and the caller's grants on every one of the keys (one query;
        a grant row failing its check refuses its key). The keys are passed with `select_related("account")` and
        `prefetch_related("aliases", "tags")`. Every key is decided, whatever is later shown of it."""
        ctx = self._ctx
        if ctx.caller.is_operator:
            return frozenset(key.pk for key in keys)
        asker = self._caller_and_policies()
        if asker is None or not keys:
            return frozenset()
        question = question_context(ctx, DESCRIBE_KEY)
        try:
            service_values = integrated_service_values(question)
        except errors.KmsError:  # a claimed integrated service the caller may not act as: every request fails
            return frozenset()
        caller, policies = asker
        grants = caller_grants_of_keys(question, keys)
        allowed = []
        for key in keys:
            index = grants[key.pk]
            checked = self._checked(key) if index is not None else None
            if index is None or checked is None:
                continue
            values = key_condition_values(key, request_alias=None, aliases=checked.aliases)
            values.update(service_values)
            request = request_context(
                question,
                caller,
                action=question.operation.action,
                resource=key.arn,
                resource_account=key.account.account_id,
                resource_tags=checked.tags,
                condition_values=values,
            )
            if engine.would_allow(
                request, key_policy=checked.policy, identity_policies=policies, grants=index
            ):
                allowed.append(key.pk)
        return frozenset(allowed)

    def allows(self, key: Key, action: str, *, condition_values: Mapping[str, Any] | None = None) -> bool:
        if action in _GRANTABLE_ACTIONS:
            raise ValueError(f"{action} can be allowed by a grant, which KeyQuestions does not consult")
        ctx = self._ctx
        if ctx.caller.is_operator:
            return True
        asker = self._caller_and_policies()
        if asker is None:
            return False  # every request of a principal the engine cannot read is refused
        checked = self._checked(key)
        if checked is None:
            return False
        request = request_context(
            ctx,
            asker[0],
            action=action,
            resource=key.arn,
            resource_account=key.account.account_id,
            resource_tags=checked.tags,
            condition_values=request_condition_values(
                ctx, key, condition_values=condition_values, aliases=checked.aliases
            ),
        )
        return engine.would_allow(request, key_policy=checked.policy, identity_policies=asker[1])

    def _checked(self, key: Key) -> _CheckedKey | None:
        """The key's aliases, tags and compiled policy once its rows pass their checks, None when the key cannot be
        decided on; checked once per key however many questions are asked about it."""
        if key.pk not in self._keys:
            found = None
            try:
                # The real request refuses a key whose row, aliases or tags changed outside the service
                # (KMSInternalException), and one whose stored policy the engine cannot read.
                aliases, tags = checked_aliases_and_tags(key)
                policy = self._compiled_policy(key.policy)
                found = _CheckedKey(aliases, tags, policy) if policy is not None else None
            except errors.KmsError:
                pass
            if found is None:
                logger.warning(
                    "Key %s cannot be decided on (its rows or its policy); shown as refused", key.key_id
                )
            self._keys[key.pk] = found
        return self._keys[key.pk]

    def _compiled_policy(self, text: str) -> engine.CompiledPolicy | None:
        """The compiled key policy (None when the engine cannot read it), once per distinct text: a list's keys
        mostly share a few."""
        if text not in self._compiled:
            try:
                self._compiled[text] = engine.compile_key_policy(text)
            except engine.EngineError:
                self._compiled[text] = None
        return self._compiled[text]

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
                self._asker = (caller, request_identity_policies(self._ctx))
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
    rotation no finding reports (its status is always off, or unreadable for an imported key), `ACCESS_READS`."""
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
    aliases: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The condition values of a request on `key`: the key's own, the operation's, and those of the integrated
    service the request verifiably comes through (which nothing else can set). `aliases`: the key's alias names
    when they were read and checked already."""
    values = key_condition_values(key, request_alias=request_alias, aliases=aliases)
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
        if key.state == KeyState.PENDING_DELETION and ctx.operation.uses_key:
            # AWS users alarm on exactly this: something still depends on a key that is about to disappear. Only
            # a use counts: a second ScheduleKeyDeletion or an EnableKey refused here is its administrator at work.
            ctx.audit.notable = PENDING_DELETION_USE
        raise

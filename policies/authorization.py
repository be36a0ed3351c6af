"""authorize(): the one authorization check. Builds the request context and asks the policy engine.

Every service calls it before doing anything; the decision (allowed or denied, and why) goes onto the
operation's audit record, and a denial raises AccessDeniedException with AWS's message.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from django.utils import timezone

from kmsconsole.core import errors
from kmsconsole.core.context import Caller
from kmsconsole.generations.cache import GenerationalCache, current_snapshot
from kmsconsole.generations.scopes import iam_scope
from kmsconsole.operations import OperationContext
from policies import engine
from policies.selectors import identity_policies_for

OPERATOR_REASON = "allowed: the service itself acting (a management command run on the server, or a worker)"


@functools.lru_cache(maxsize=4096)
def readable_engine_caller(caller: Caller) -> engine.Caller | None:
    """The engine's view of a caller (both are immutable, so it is built once per caller), or None when the engine
    cannot read the caller's ARN: a principal stored before its path was held to the engine's rule
    (`policies.arns.is_valid_path`), such as "/a//b/". The account root's implicit permissions are the engine's
    business."""
    if caller.principal_type == "Root":
        return engine.Caller.root(caller.account_id)
    try:
        return engine.Caller.from_arn(
            caller.arn, role_arn=caller.role_arn or None, userid=caller.userid or None
        )
    except ValueError:
        return None


def engine_caller(caller: Caller) -> engine.Caller:
    """The engine's view of a caller. A caller the engine cannot read is refused (AccessDeniedException): no
    policy can be evaluated for it, so nothing is allowed."""
    found = readable_engine_caller(caller)
    if found is None:
        raise errors.AccessDeniedException(
            f"{caller.arn[:2048]} is not authorized to perform any action: the policy engine cannot read this "
            "principal's ARN (its path has an empty segment, * or ?). Recreate the principal with a valid path."
        )
    return found


# A principal's compiled identity policies, under the generation of its account's principals (`iam:<account id>`):
# a policy put or deleted on the user, its groups or its role, or a membership change, bumps it.
_IDENTITY_POLICIES: GenerationalCache[
    tuple[str, int | None, int | None], tuple[engine.IdentityPolicy, ...]
] = GenerationalCache("identity-policies", maxsize=20_000)


def identity_policies(caller: Caller) -> list[engine.IdentityPolicy]:
    """The caller's identity policies, compiled (the engine caches compiled policies by content hash); from the
    process cache inside a request snapshot while the caller's account's principals are unchanged."""
    snapshot = current_snapshot()
    if snapshot is None:
        return _compiled_identity_policies(caller)
    cache_key = (caller.arn, caller.user_pk, caller.role_pk)
    cached = _IDENTITY_POLICIES.get(cache_key, snapshot)
    if cached is None:
        scope = iam_scope(caller.account_id)
        generation = snapshot.value(scope)  # read before the rows it vouches for
        cached = _IDENTITY_POLICIES.put(
            cache_key, tuple(_compiled_identity_policies(caller)), ((scope, generation),)
        )
    return list(cached)


_READ_IDENTITY_POLICIES = "identity_policies"


def request_identity_policies(ctx: OperationContext) -> list[engine.IdentityPolicy]:
    """The caller's identity policies as the operation's own decision read them (`authorize` keeps them on the
    context), read now only if it has not decided yet: the questions a list asks about each of its keys reuse the
    list's own read instead of reading the policies again, once per request."""
    found: list[engine.IdentityPolicy] | None = ctx.read_once.get(_READ_IDENTITY_POLICIES)
    if found is None:
        found = ctx.read_once[_READ_IDENTITY_POLICIES] = identity_policies(ctx.caller)
    return found


def _compiled_identity_policies(caller: Caller) -> list[engine.IdentityPolicy]:
    return [
        engine.IdentityPolicy(policy.name, engine.compile_identity_policy(policy.document))
        for policy in identity_policies_for(caller)
    ]


def decided_by(decision: engine.Decision) -> str:
    """The event's "decided by": what decided the outcome (`engine.Decision.decided_by`): the statement or grant
    that allowed; for a refusal, the explicit Deny, or what was missing, never an Allow that did not count."""
    return decision.decided_by()


def authorize(
    ctx: OperationContext,
    *,
    resource: str,
    action: str | None = None,
    key_policy: str | None = None,
    resource_account: str | None = None,
    resource_tags: Mapping[str, str] | None = None,
    request_tags: Mapping[str, str] | None = None,
    encryption_context: Mapping[str, str] | None = None,
    condition_values: Mapping[str, Any] | None = None,
    grants: engine.GrantIndex | Sequence[engine.Grant] = (),
    token_grant_ids: Collection[str] = frozenset(),
) -> engine.Decision | None:
    """Decide whether the caller may perform `action` (default: the operation's) on `resource`; record the
    decision on the audit record; raise AccessDeniedException with AWS's message on deny.

    Account-level operations (GenerateRandom, CreateKey, ListKeys, ...) and the IAM half of alias operations
    pass no key policy: identity policies alone decide. Key operations pass the key's policy text (compiled
    once per distinct text by the engine's cache), the key's tags and condition values, and for grantable
    operations the key's grants and the ids of grants whose tokens came with the request.
    """
    if ctx.caller.is_operator:
        ctx.audit.authorized(allowed=True, reason=OPERATOR_REASON, decided_by="operator")
        ctx.stop_if_deciding_only()
        return None
    request = request_context(
        ctx,
        engine_caller(ctx.caller),
        action=action or ctx.operation.action,
        resource=resource,
        resource_account=resource_account,
        encryption_context=encryption_context,
        resource_tags=resource_tags,
        request_tags=request_tags,
        condition_values=condition_values,
    )
    # Read afresh for every decision (a change earlier in the operation counts); kept for the questions that follow.
    policies = ctx.read_once[_READ_IDENTITY_POLICIES] = identity_policies(ctx.caller)
    decision = engine.evaluate(
        request,
        key_policy=engine.compile_key_policy(key_policy) if key_policy is not None else None,
        identity_policies=policies,
        grants=grants,
        token_grant_ids=token_grant_ids,
    )
    ctx.audit.authorized(
        allowed=decision.allowed,
        reason=decision.explanation(),
        decided_by=decided_by(decision),
        trace=decision.trace if ctx.meta.explain_requested else (),
    )
    if not decision.allowed:
        raise errors.AccessDeniedException(decision.access_denied_message())
    ctx.stop_if_deciding_only()
    return decision


EXPLAIN_ACTION = "kmsconsole:Explain"


def would_allow(caller: Caller, action: str, resource: str = "*") -> bool:
    """Whether the caller's identity policies alone allow `action` (a question, recorded nowhere). Never for a
    caller the engine cannot read: every request it makes is refused."""
    if caller.is_operator:
        return True
    readable = readable_engine_caller(caller)
    if readable is None:
        return False
    request = engine.RequestContext.build(caller=readable, action=action, resource=resource)
    return engine.would_allow(request, key_policy=None, identity_policies=identity_policies(caller))


def may_see_explanations(caller: Caller) -> bool:
    """Whether the caller's identity policies allow the product's own action kmsconsole:Explain."""
    return would_allow(caller, EXPLAIN_ACTION)


def request_context(
    ctx: OperationContext,
    caller: engine.Caller,
    *,
    action: str,
    resource: str,
    resource_account: str | None = None,
    resource_tags: Mapping[str, str] | None = None,
    request_tags: Mapping[str, str] | None = None,
    encryption_context: Mapping[str, str] | None = None,
    condition_values: Mapping[str, Any] | None = None,
) -> engine.RequestContext:
    """What the engine decides a request on: `caller` asking for `action` on `resource`, from the current request's
    address and transport, now. The one builder of every decision, recorded or asked about, so that a question
    ("would this request be allowed?") is decided as the request itself would be."""
    return engine.RequestContext.build(
        caller=caller,
        action=action,
        resource=resource,
        resource_account=resource_account,
        source_ip=ctx.meta.source_ip or None,
        now=timezone.now(),
        secure_transport=ctx.meta.secure_transport,
        encryption_context=encryption_context,
        resource_tags=resource_tags,
        request_tags=request_tags,
        condition_values=condition_values,
    )


def _request_on_key(ctx: OperationContext, action: str, key_arn: str) -> engine.RequestContext:
    """The context of a request like the current one (same caller, address, transport, time) for `action`."""
    return request_context(ctx, engine_caller(ctx.caller), action=action, resource=key_arn)


def gained_uses(
    ctx: OperationContext,
    *,
    before: engine.CompiledPolicy,
    after: engine.CompiledPolicy,
    key_arn: str,
    actions: Sequence[str],
) -> list[str]:
    """The `actions` the caller may do on the key under the key policy `after` but not under `before` (its
    identity policies counting as on AWS): how a key administrator who may edit the policy makes itself a key
    user. A question asked of the engine, recorded nowhere; the operator is never asked about."""
    if ctx.caller.is_operator:
        return []
    policies = identity_policies(ctx.caller)
    gained = []
    for action in actions:
        request = _request_on_key(ctx, action, key_arn)
        if engine.would_allow(
            request, key_policy=after, identity_policies=policies
        ) and not engine.would_allow(request, key_policy=before, identity_policies=policies):
            gained.append(action)
    return gained


def ensure_no_lockout(
    ctx: OperationContext,
    *,
    new_policy: engine.CompiledPolicy,
    key_arn: str,
    resource_tags: Mapping[str, str] | None = None,
    condition_values: Mapping[str, Any] | None = None,
) -> None:
    """The policy lockout safety check (kms-spec §6.4): after the change, could the caller still call
    kms:PutKeyPolicy on the key? That later request is decided as it would be: on the key's tags and with its
    condition values (`keys.services.key_policy.check_no_lockout`), the caller's identity policies counting, as
    they do on AWS."""
    if ctx.caller.is_operator:
        return
    request = request_context(
        ctx,
        engine_caller(ctx.caller),
        action="kms:PutKeyPolicy",
        resource=key_arn,
        resource_tags=resource_tags,
        condition_values=condition_values,
    )
    try:
        engine.ensure_no_lockout(request, new_policy, identity_policies(ctx.caller), key_arn=key_arn)
    except engine.EngineError as exc:
        raise errors.error_for_code(exc.code, exc.message) from None

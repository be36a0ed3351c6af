"""authorize(): the one authorization check. Builds the request context and asks the policy engine.

Every service calls it before doing anything; the decision (allowed or denied, and why) goes onto the
operation's audit record, and a denial raises AccessDeniedException with AWS's message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.utils import timezone

from kmsconsole.core import errors
from kmsconsole.core.context import Caller
from kmsconsole.operations import OperationContext
from policies import engine
from policies.selectors import identity_policies_for

OPERATOR_REASON = "allowed: the local operator (shell access to the server) administers principals"


def engine_caller(caller: Caller) -> engine.Caller:
    """The engine's view of a caller. The account root's implicit permissions are the engine's business."""
    if caller.principal_type == "Root":
        return engine.Caller.root(caller.account_id)
    return engine.Caller.from_arn(caller.arn, role_arn=caller.role_arn or None, userid=caller.userid or None)


def identity_policies(caller: Caller) -> list[engine.IdentityPolicy]:
    """The caller's identity policies, compiled (the engine caches compiled policies by content hash)."""
    return [
        engine.IdentityPolicy(policy.name, engine.compile_identity_policy(policy.document))
        for policy in identity_policies_for(caller)
    ]


def decided_by(decision: engine.Decision) -> str:
    if decision.grant_id:
        return f"grant {decision.grant_id}"
    return decision.statement.describe() if decision.statement else ""


def authorize(
    ctx: OperationContext, *, resource: str, condition_values: Mapping[str, Any] | None = None
) -> engine.Decision | None:
    """Decide whether the caller may perform ctx.operation on `resource`; record the decision; raise on deny.

    Account-level operations (GenerateRandom, CreateKey, ListKeys, ...) pass resource "*" and are decided by
    identity policies alone. Key operations will pass the key and its policy (the keys issue).
    """
    if ctx.caller.is_operator:
        ctx.audit.authorized(allowed=True, reason=OPERATOR_REASON, decided_by="operator")
        return None
    meta = ctx.meta
    request = engine.RequestContext.build(
        caller=engine_caller(ctx.caller),
        action=ctx.operation.action,
        resource=resource,
        resource_account=None if resource == "*" else ctx.caller.account_id,
        source_ip=meta.source_ip or None,
        now=timezone.now(),
        secure_transport=meta.secure_transport,
        condition_values=condition_values,
    )
    decision = engine.evaluate(request, key_policy=None, identity_policies=identity_policies(ctx.caller))
    ctx.audit.authorized(
        allowed=decision.allowed, reason=decision.explanation(), decided_by=decided_by(decision)
    )
    if not decision.allowed:
        raise errors.AccessDeniedException(decision.access_denied_message())
    return decision

"""The decision trace: one note per statement and grant considered, for the explain header and the simulator.

Built only on demand (``Decision.trace``), by walking every statement with the same compiled matchers the
decision used, so it never slows a decision down. Notes are plain ASCII apart from names and values quoted from
the policies and the request.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING

from .compiled import CompiledPolicy, CompiledStatement
from .conditions import CompiledCondition
from .context import RequestContext
from .grants import Grant, GrantIndex, caller_grant_keys
from .principals import ACCOUNT, DIRECT
from .values import ContextValue

if TYPE_CHECKING:
    from .evaluate import Grants, IdentityPolicy
    from .explain import Decision

_MAX_VALUE = 80


def _show(value: ContextValue | None) -> str:
    if value is None:
        return "absent"
    text = repr(value) if not isinstance(value, tuple) else "[" + ", ".join(map(repr, value)) + "]"
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."


def _condition_note(condition: CompiledCondition, context: RequestContext) -> str:
    clause = condition.clause
    result = condition.evaluate(context.values)
    policy_values = ", ".join(repr(value) for value in clause.values)
    return (
        f"{clause.operator.written} {clause.key} [{policy_values}] vs {_show(condition.lookup(context.values))}"
        f" -> {'true' if result else 'false'}"
    )


def _statement_note(
    where: str, statement: CompiledStatement, context: RequestContext, *, key_policy: bool
) -> str:
    source = statement.source
    head = f"{where} statement {source.label} ({source.effect.value})"
    if statement.inert:
        return f"{head}: has no Action or no Resource, so it never applies"
    if not statement.covers_action(context.action_lower):
        return f"{head}: does not cover {context.action}"
    parts: list[str] = []
    applies = True
    if key_policy:
        bits = statement.principal_match(context.caller)
        if bits & DIRECT:
            parts.append("principal names the caller")
        elif bits & ACCOUNT:
            parts.append("principal names the caller's account (delegates to its IAM policies)")
        else:
            parts.append("principal does not name the caller")
            applies = False
    if statement.resource_matches(context.resource, context.values):
        parts.append("resource matches")
    else:
        parts.append(f"resource does not match {context.resource}")
        applies = False
    for condition in statement.conditions:
        parts.append(_condition_note(condition, context))
        applies = applies and condition.evaluate(context.values)
    verdict = "applies" if applies else "does not apply"
    return f"{head}: {'; '.join(parts)} => {verdict}"


def _grant_note(grant: Grant, context: RequestContext, token_grant_ids: Collection[str]) -> str:
    operation = context.action_lower[4:] if context.action_lower.startswith("kms:") else ""
    head = f"grant {grant.grant_id} (grantee {grant.grantee_principal})"
    if grant.key_arn != context.resource:
        return f"{head}: is for another key"
    if operation not in grant.operations_lower:
        return f"{head}: operations {sorted(grant.operations)} do not include {context.action_name}"
    source_arn = context.values.get("aws:sourcearn")
    if not grant.constraints_satisfied(
        operation,
        context.encryption_context_pairs,
        context.encryption_context_size,
        source_arn if isinstance(source_arn, str) else None,
    ):
        return f"{head}: the request does not meet its constraints"
    if (
        operation == "creategrant"
        and context.new_grant is not None
        and not grant.permits_child(context.new_grant)
    ):
        return f"{head}: the requested grant is not a subset of it, or not as strictly constrained"
    notes = []
    if grant.grantee_is_account:
        notes.append("granted to an account, so it also needs the account's IAM policies to allow")
    if not grant.effective:
        if grant.grant_id in token_grant_ids:
            notes.append("not yet effective, but its grant token came with the request")
        else:
            notes.append("not yet effective (no grant token with the request)")
    suffix = f" ({'; '.join(notes)})" if notes else ""
    return f"{head}: covers {context.action_name}{suffix}"


def build_trace(
    context: RequestContext,
    key_policy: CompiledPolicy | None,
    identity_policies: Sequence[IdentityPolicy],
    grants: Grants,
    token_grant_ids: Collection[str],
    key_policy_name: str,
    decision: Decision,
) -> tuple[str, ...]:
    """Notes for every statement of every policy and every grant of the caller, then the decision."""
    caller = context.caller
    notes = [
        f"request: {caller.arn} (account {caller.account_id or '-'}, {caller.principal_type.value}) "
        f"{context.action} on {context.resource}"
        + (f" (account {context.resource_account})" if context.resource_account else "")
    ]
    if key_policy is None:
        notes.append("account-level action: no key policy, identity policies decide")
    else:
        where = "key policy" if key_policy_name == "default" else f"key policy '{key_policy_name}'"
        for statement in key_policy.statements:
            notes.append(_statement_note(where, statement, context, key_policy=True))
    if not identity_policies:
        notes.append("the caller has no identity policies")
    for name, policy in identity_policies:
        for statement in policy.statements:
            notes.append(_statement_note(f"identity policy '{name}'", statement, context, key_policy=False))
    if key_policy is not None and context.action_lower.startswith("kms:"):
        if isinstance(grants, GrantIndex):
            candidates: Sequence[Grant] = grants.for_caller(caller)
        else:
            keys = caller_grant_keys(caller)
            candidates = [grant for grant in grants if grant.grantee_principal in keys]
        if not candidates:
            notes.append("no grant names the caller, its role or its account")
        for grant in candidates:
            notes.append(_grant_note(grant, context, token_grant_ids))
    verdict = "ALLOW" if decision.allowed else "DENY"
    notes.append(f"decision: {verdict} ({decision.reason.value}): {decision.explanation()}")
    return tuple(notes)

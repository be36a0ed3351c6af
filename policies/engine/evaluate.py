"""The decision (spec §7.3): explicit denies, then key policy, identity policies and grants.

1. An explicit Deny that applies, in the key policy or in any identity policy of the caller, denies. (Identity
   Denies count even when the key policy does not delegate to IAM.)
2. Account-level actions (``key_policy=None``): an identity-policy Allow decides; the account's root user is
   always allowed.
3. Same account: a key-policy Allow naming the caller suffices; otherwise an identity-policy Allow counts if a
   key-policy Allow names the caller's account for this action (delegation). Another account: the key policy
   must allow the caller or its account *and* an identity policy in the caller's account must allow. The
   root user's identity half is implicit. Service principals need a key-policy Allow naming them.
4. Otherwise a grant for the caller (its ARN, its role, or its account, the last only with the account's IAM
   agreeing) covering the operation and meeting its constraints allows.
5. Otherwise deny, with the most useful reason (a pending grant; an identity Allow that did not count; a
   delegation with no identity Allow; a grant whose constraints failed; nothing at all).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import NamedTuple

from .compiled import CompiledPolicy, CompiledStatement
from .context import RequestContext
from .document import PolicyKind
from .errors import MalformedPolicyDocumentException
from .explain import Decision, ReasonCode, StatementRef
from .grants import Grant, GrantIndex, caller_grant_keys
from .principals import ACCOUNT, DIRECT, PrincipalType

LOCKOUT_MESSAGE = "The new key policy will not allow you to update the key policy in the future."


class IdentityPolicy(NamedTuple):
    """An identity policy of the caller (from its user, a group, or its session's role) and its name."""

    name: str
    policy: CompiledPolicy


Grants = GrantIndex | Sequence[Grant]


class _RootAllow:
    """The root user's implicit identity-policy Allow (it holds every IAM permission in its account)."""


_ROOT = _RootAllow()
IdentityAllow = tuple[str, CompiledStatement] | _RootAllow | None
_EMPTY: frozenset[str] = frozenset()


def _ref(kind: PolicyKind, name: str, statement: CompiledStatement) -> StatementRef:
    return StatementRef(kind, name, statement.source.index, statement.source.sid)


def _check_kinds(key_policy: CompiledPolicy | None, identity_policies: Sequence[IdentityPolicy]) -> None:
    if key_policy is not None and key_policy.kind is not PolicyKind.KEY:
        raise TypeError("key_policy must be a compiled key policy")
    for entry in identity_policies:
        if entry.policy.kind is not PolicyKind.IDENTITY:
            raise TypeError(f"identity policy {entry.name!r} must be a compiled identity policy")


def evaluate(
    context: RequestContext,
    *,
    key_policy: CompiledPolicy | None,
    identity_policies: Sequence[IdentityPolicy] = (),
    grants: Grants = (),
    token_grant_ids: Collection[str] = _EMPTY,
    key_policy_name: str = "default",
) -> Decision:
    """Decide one request. ``key_policy=None`` means an account-level action (identity policies alone decide).

    ``grants`` are the key's grants (a ``GrantIndex`` for many); ``token_grant_ids`` the ids of grants whose
    (verified) grant tokens came with the request, which makes them usable before they take effect.
    """
    _check_kinds(key_policy, identity_policies)
    decision = _decide(context, key_policy, identity_policies, grants, token_grant_ids, key_policy_name)

    def tracer() -> tuple[str, ...]:
        from .trace import build_trace

        return build_trace(
            context, key_policy, identity_policies, grants, token_grant_ids, key_policy_name, decision
        )

    object.__setattr__(decision, "tracer", tracer)
    return decision


def would_allow(
    context: RequestContext,
    *,
    key_policy: CompiledPolicy | None,
    identity_policies: Sequence[IdentityPolicy] = (),
    grants: Grants = (),
    token_grant_ids: Collection[str] = _EMPTY,
) -> bool:
    """Just the yes/no of ``evaluate`` (for the simulator and the lockout check)."""
    return _decide(context, key_policy, identity_policies, grants, token_grant_ids, "default").allowed


def check_lockout(
    context: RequestContext,
    new_key_policy: CompiledPolicy,
    identity_policies: Sequence[IdentityPolicy] = (),
    *,
    key_arn: str | None = None,
) -> Decision:
    """Would the caller still be allowed ``kms:PutKeyPolicy`` under ``new_key_policy`` (spec §6.4)?

    ``context`` is the current request's context (PutKeyPolicy, or CreateKey with ``key_arn`` the new key's
    ARN); it is re-targeted at ``kms:PutKeyPolicy`` on the key. Grants never allow PutKeyPolicy.
    """
    resource = key_arn if key_arn is not None else context.resource
    target = context.with_action("kms:PutKeyPolicy", resource)
    if key_arn is not None and target.resource_account is None:
        target = RequestContext(
            caller=target.caller,
            action=target.action,
            resource=resource,
            resource_account=resource.split(":", 5)[4] if resource.count(":") >= 5 else None,
            values=target.values,
            encryption_context=target.encryption_context,
        )
    return evaluate(target, key_policy=new_key_policy, identity_policies=identity_policies)


def ensure_no_lockout(
    context: RequestContext,
    new_key_policy: CompiledPolicy,
    identity_policies: Sequence[IdentityPolicy] = (),
    *,
    key_arn: str | None = None,
) -> Decision:
    """``check_lockout``, raising ``MalformedPolicyDocumentException`` with AWS's message when it fails."""
    decision = check_lockout(context, new_key_policy, identity_policies, key_arn=key_arn)
    if not decision.allowed:
        raise MalformedPolicyDocumentException(LOCKOUT_MESSAGE)
    return decision


# ---------------------------------------------------------------------------------------------------------------


def _identity_allow(context: RequestContext, identity_policies: Sequence[IdentityPolicy]) -> IdentityAllow:
    caller = context.caller
    if caller.principal_type is PrincipalType.ROOT:
        return _ROOT
    if caller.principal_type is PrincipalType.SERVICE:
        return None
    action, resource, values = context.action_lower, context.resource, context.values
    for name, policy in identity_policies:
        for statement in policy.statements_for(action)[1]:
            if statement.resource_matches(resource, values) and statement.conditions_match(values):
                return name, statement
    return None


def _decide(
    context: RequestContext,
    key_policy: CompiledPolicy | None,
    identity_policies: Sequence[IdentityPolicy],
    grants: Grants,
    token_grant_ids: Collection[str],
    key_policy_name: str,
) -> Decision:
    caller = context.caller
    action, resource, values = context.action_lower, context.resource, context.values

    def decide(
        allowed: bool,
        reason: ReasonCode,
        statement: StatementRef | None = None,
        supporting: tuple[StatementRef, ...] = (),
        grant_id: str | None = None,
    ) -> Decision:
        return Decision(
            allowed,
            reason,
            caller.arn,
            context.action,
            resource,
            statement,
            supporting,
            grant_id,
            caller.account_id,
            context.resource_account,
        )

    # 1. Explicit denies.
    key_allows: tuple[CompiledStatement, ...] = ()
    if key_policy is not None:
        key_denies, key_allows = key_policy.statements_for(action)
        for statement in key_denies:
            if (
                statement.principal_match(caller)
                and statement.resource_matches(resource, values)
                and statement.conditions_match(values)
            ):
                ref = _ref(PolicyKind.KEY, key_policy_name, statement)
                return decide(False, ReasonCode.EXPLICIT_DENY_KEY_POLICY, ref)
    for name, policy in identity_policies:
        for statement in policy.statements_for(action)[0]:
            if statement.resource_matches(resource, values) and statement.conditions_match(values):
                ref = _ref(PolicyKind.IDENTITY, name, statement)
                return decide(False, ReasonCode.EXPLICIT_DENY_IDENTITY_POLICY, ref)

    # 2. Account-level actions.
    if key_policy is None:
        if caller.principal_type is PrincipalType.ROOT:
            return decide(True, ReasonCode.ALLOWED_AS_ROOT)
        found = _identity_allow(context, identity_policies)
        if isinstance(found, tuple):
            return decide(True, ReasonCode.ALLOWED_BY_IDENTITY_POLICY, _ref(PolicyKind.IDENTITY, *found))
        return decide(False, ReasonCode.NO_IDENTITY_POLICY_ALLOWS)

    # 3. Key policy, with identity policies where the key policy lets them count.
    same_account = context.same_account
    direct: CompiledStatement | None = None
    account: CompiledStatement | None = None
    for statement in key_allows:
        bits = statement.principal_match(caller)
        wanted = (bits & DIRECT and direct is None) or (bits & ACCOUNT and account is None)
        if not wanted:
            continue
        if not (statement.resource_matches(resource, values) and statement.conditions_match(values)):
            continue
        if bits & DIRECT and direct is None:
            direct = statement
            if same_account or caller.principal_type is PrincipalType.SERVICE:
                return decide(
                    True, ReasonCode.ALLOWED_BY_KEY_POLICY, _ref(PolicyKind.KEY, key_policy_name, statement)
                )
        if bits & ACCOUNT and account is None:
            account = statement
        if direct is not None and account is not None:
            break

    key_support = account if same_account else (direct or account)
    identity: IdentityAllow = None
    identity_known = False
    if key_support is not None:
        identity = _identity_allow(context, identity_policies)
        identity_known = True
        if identity is not None:
            key_ref = _ref(PolicyKind.KEY, key_policy_name, key_support)
            if isinstance(identity, tuple):
                identity_ref = _ref(PolicyKind.IDENTITY, *identity)
                if same_account:
                    return decide(True, ReasonCode.ALLOWED_BY_IDENTITY_POLICY, identity_ref, (key_ref,))
                return decide(True, ReasonCode.ALLOWED_CROSS_ACCOUNT, key_ref, (identity_ref,))
            if same_account:
                return decide(True, ReasonCode.ALLOWED_BY_KEY_POLICY, key_ref)
            return decide(True, ReasonCode.ALLOWED_CROSS_ACCOUNT, key_ref)

    # 4. Grants.
    pending: Grant | None = None
    unmet: Grant | None = None
    if grants and action.startswith("kms:"):
        operation = action[4:]
        if isinstance(grants, GrantIndex):
            candidates: Sequence[Grant] = grants.for_caller(caller)
        else:
            keys = caller_grant_keys(caller)
            candidates = [grant for grant in grants if grant.grantee_principal in keys]
        raw_source_arn = values.get("aws:sourcearn")
        source_arn = raw_source_arn if isinstance(raw_source_arn, str) else None
        new_grant = context.new_grant if operation == "creategrant" else None
        for grant in candidates:
            if operation not in grant.operations_lower or grant.key_arn != resource:
                continue
            satisfied = grant.constraints_satisfied(
                operation, context.encryption_context_pairs, context.encryption_context_size, source_arn
            )
            if not satisfied or (new_grant is not None and not grant.permits_child(new_grant)):
                unmet = unmet or grant
                continue
            supporting: tuple[StatementRef, ...] = ()
            if grant.grantee_is_account and caller.principal_type is not PrincipalType.ROOT:
                if not identity_known:
                    identity = _identity_allow(context, identity_policies)
                    identity_known = True
                if not isinstance(identity, tuple):
                    continue
                supporting = (_ref(PolicyKind.IDENTITY, *identity),)
            if not grant.effective and grant.grant_id not in token_grant_ids:
                pending = pending or grant
                continue
            return decide(True, ReasonCode.ALLOWED_BY_GRANT, None, supporting, grant.grant_id)

    # 5. Denied: say why as usefully as possible.
    if pending is not None:
        return decide(False, ReasonCode.GRANT_NOT_YET_EFFECTIVE, grant_id=pending.grant_id)
    if not identity_known:
        identity = _identity_allow(context, identity_policies)
    if isinstance(identity, tuple) and key_support is None:
        return decide(False, ReasonCode.IAM_NOT_DELEGATED, _ref(PolicyKind.IDENTITY, *identity))
    if key_support is not None and identity is None:
        return decide(
            False, ReasonCode.NO_IDENTITY_POLICY_ALLOWS, _ref(PolicyKind.KEY, key_policy_name, key_support)
        )
    if unmet is not None:
        return decide(False, ReasonCode.GRANT_CONSTRAINTS_NOT_MET, grant_id=unmet.grant_id)
    return decide(False, ReasonCode.NO_KEY_POLICY_ALLOWS)

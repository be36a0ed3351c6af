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
   delegation with no identity Allow; a grant to the caller's account with no identity Allow; a grant whose
   constraints failed; nothing at all). A delegation or a grant to the caller's account that misses an
   identity Allow is NO_IDENTITY_POLICY_ALLOWS (AWS's "no identity-based policy allows"), and so is nothing at
   all for an action no key policy decides (``IDENTITY_DECIDED_ACTIONS``: kms:RetireGrant).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import NamedTuple

from .compiled import CompiledPolicy, CompiledStatement
from .context import RequestContext
from .document import PolicyKind
from .errors import MalformedPolicyDocumentException
from .explain import IDENTITY_DECIDED_ACTIONS, Decision, ReasonCode, StatementRef, TraceInputs
from .grants import Grant, GrantIndex, caller_grant_keys
from .principals import ACCOUNT, DIRECT

LOCKOUT_MESSAGE = "The new key policy will not allow you to update the key policy in the future."
# IDENTITY_DECIDED_ACTIONS (kms:RetireGrant): when nothing allows it, what is missing is an identity-based
# permission, never a resource-based one.


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


_new_tuple = tuple.__new__
# Enum members bound once: attribute access on an Enum class costs ~0.2 us on Python 3.11.
_KEY = PolicyKind.KEY
_IDENTITY = PolicyKind.IDENTITY
_ALLOWED_BY_KEY_POLICY = ReasonCode.ALLOWED_BY_KEY_POLICY
_ALLOWED_BY_IDENTITY_POLICY = ReasonCode.ALLOWED_BY_IDENTITY_POLICY
_ALLOWED_CROSS_ACCOUNT = ReasonCode.ALLOWED_CROSS_ACCOUNT
_ALLOWED_BY_GRANT = ReasonCode.ALLOWED_BY_GRANT
_ALLOWED_AS_ROOT = ReasonCode.ALLOWED_AS_ROOT
_EXPLICIT_DENY_KEY_POLICY = ReasonCode.EXPLICIT_DENY_KEY_POLICY
_EXPLICIT_DENY_IDENTITY_POLICY = ReasonCode.EXPLICIT_DENY_IDENTITY_POLICY
_IAM_NOT_DELEGATED = ReasonCode.IAM_NOT_DELEGATED
_NO_KEY_POLICY_ALLOWS = ReasonCode.NO_KEY_POLICY_ALLOWS
_NO_IDENTITY_POLICY_ALLOWS = ReasonCode.NO_IDENTITY_POLICY_ALLOWS
_GRANT_NOT_YET_EFFECTIVE = ReasonCode.GRANT_NOT_YET_EFFECTIVE
_GRANT_CONSTRAINTS_NOT_MET = ReasonCode.GRANT_CONSTRAINTS_NOT_MET


def _usable(grant: Grant, token_grant_ids: Collection[str]) -> bool:
    """Whether a grant counts now: it has taken effect, or its token came with the request."""
    return grant.effective or grant.grant_id in token_grant_ids


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
    inputs = _new_tuple(
        TraceInputs, (key_policy, identity_policies, grants, token_grant_ids, key_policy_name)
    )
    return _decide(context, key_policy, identity_policies, grants, token_grant_ids, key_policy_name, inputs)


def would_allow(
    context: RequestContext,
    *,
    key_policy: CompiledPolicy | None,
    identity_policies: Sequence[IdentityPolicy] = (),
    grants: Grants = (),
    token_grant_ids: Collection[str] = _EMPTY,
) -> bool:
    """Just the yes/no of ``evaluate`` (for the simulator and the lockout check)."""
    return _decide(context, key_policy, identity_policies, grants, token_grant_ids, "default", None).allowed


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
    if key_arn is None:
        target = context.with_action("kms:PutKeyPolicy")
    else:
        # A CreateKey context was built for resource "*": give it what a request on the key would carry.
        values = dict(context.values)
        if context.caller.account_id:
            values.setdefault("kms:calleraccount", context.caller.account_id)
        parts = key_arn.split(":", 5)
        target = RequestContext(
            caller=context.caller,
            action="kms:PutKeyPolicy",
            resource=key_arn,
            resource_account=parts[4] if len(parts) == 6 and parts[4] else None,
            values=values,
            encryption_context=context.encryption_context,
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
    if caller.is_root:
        return _ROOT
    if caller.is_service:
        return None
    action, resource, values = context.action_lower, context.resource, context.lookup
    for name, policy in identity_policies:
        groups = policy.action_index.get(action) or policy.statements_for(action)
        for statement in groups[1]:
            if statement.applies(None, resource, values):
                return name, statement
    return None


def _decide(
    context: RequestContext,
    key_policy: CompiledPolicy | None,
    identity_policies: Sequence[IdentityPolicy],
    grants: Grants,
    token_grant_ids: Collection[str],
    key_policy_name: str,
    inputs: TraceInputs | None,
) -> Decision:
    caller = context.caller
    action, resource, values = context.action_lower, context.resource, context.lookup

    # 1. Explicit denies.
    key_allows: tuple[CompiledStatement, ...] = ()
    if key_policy is not None:
        if key_policy.kind is not _KEY:
            raise TypeError("key_policy must be a compiled key policy")
        key_denies, key_allows = key_policy.action_index.get(action) or key_policy.statements_for(action)
        for statement in key_denies:
            if statement.applies(caller, resource, values):
                ref = statement.ref(key_policy_name)
                return _new_tuple(
                    Decision, (False, _EXPLICIT_DENY_KEY_POLICY, ref, (), None, context, inputs)
                )
    for name, policy in identity_policies:
        if policy.kind is not _IDENTITY:
            raise TypeError(f"identity policy {name!r} must be a compiled identity policy")
        for statement in (policy.action_index.get(action) or policy.statements_for(action))[0]:
            if statement.applies(None, resource, values):
                ref = statement.ref(name)
                return _new_tuple(
                    Decision,
                    (False, _EXPLICIT_DENY_IDENTITY_POLICY, ref, (), None, context, inputs),
                )

    # 2. Account-level actions. Identity policies (and the root's implicit rights) speak only for the caller's own
    # account: without a key policy nothing can let a caller act on another account's resource.
    if key_policy is None:
        if not context.same_account:
            return _new_tuple(Decision, (False, _NO_IDENTITY_POLICY_ALLOWS, None, (), None, context, inputs))
        if caller.is_root:
            return _new_tuple(Decision, (True, _ALLOWED_AS_ROOT, None, (), None, context, inputs))
        found = _identity_allow(context, identity_policies)
        if isinstance(found, tuple):
            ref = found[1].ref(found[0])
            return _new_tuple(Decision, (True, _ALLOWED_BY_IDENTITY_POLICY, ref, (), None, context, inputs))
        return _new_tuple(Decision, (False, _NO_IDENTITY_POLICY_ALLOWS, None, (), None, context, inputs))

    # 3. Key policy, with identity policies where the key policy lets them count.
    same_account = context.same_account
    direct: CompiledStatement | None = None
    account: CompiledStatement | None = None
    for statement in key_allows:
        bits = statement.principal_match(caller)
        if not ((bits & DIRECT and direct is None) or (bits & ACCOUNT and account is None)):
            continue
        if not statement.applies(None, resource, values):
            continue
        if bits & DIRECT and direct is None:
            direct = statement
            if same_account or caller.is_service:
                ref = statement.ref(key_policy_name)
                return _new_tuple(Decision, (True, _ALLOWED_BY_KEY_POLICY, ref, (), None, context, inputs))
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
            key_ref = key_support.ref(key_policy_name)
            if isinstance(identity, tuple):
                identity_ref = identity[1].ref(identity[0])
                if same_account:
                    return _new_tuple(
                        Decision,
                        (
                            True,
                            _ALLOWED_BY_IDENTITY_POLICY,
                            identity_ref,
                            (key_ref,),
                            None,
                            context,
                            inputs,
                        ),
                    )
                return _new_tuple(
                    Decision,
                    (True, _ALLOWED_CROSS_ACCOUNT, key_ref, (identity_ref,), None, context, inputs),
                )
            reason = _ALLOWED_BY_KEY_POLICY if same_account else _ALLOWED_CROSS_ACCOUNT
            return _new_tuple(Decision, (True, reason, key_ref, (), None, context, inputs))

    # 4. Grants.
    pending: Grant | None = None
    unmet: Grant | None = None
    # A grant to the caller's account that would allow, but only with an identity policy of the caller (§7.2).
    needs_identity: Grant | None = None
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
            if grant.grantee_is_account and not caller.is_root:
                if not identity_known:
                    identity = _identity_allow(context, identity_policies)
                    identity_known = True
                if not isinstance(identity, tuple):
                    # Name one in effect (or whose token came) over one still pending, whose words differ.
                    if needs_identity is None or (
                        _usable(grant, token_grant_ids) and not _usable(needs_identity, token_grant_ids)
                    ):
                        needs_identity = grant
                    continue
                supporting = (identity[1].ref(identity[0]),)
            if not grant.effective and grant.grant_id not in token_grant_ids:
                pending = pending or grant
                continue
            return _new_tuple(
                Decision,
                (True, _ALLOWED_BY_GRANT, None, supporting, grant.grant_id, context, inputs),
            )

    # 5. Denied: say why as usefully as possible.
    reason = _NO_KEY_POLICY_ALLOWS
    statement_ref: StatementRef | None = None
    grant_id: str | None = None
    if not identity_known:
        identity = _identity_allow(context, identity_policies)
    if pending is not None:
        reason, grant_id = _GRANT_NOT_YET_EFFECTIVE, pending.grant_id
    elif isinstance(identity, tuple) and key_support is None:
        reason, statement_ref = _IAM_NOT_DELEGATED, identity[1].ref(identity[0])
    elif key_support is not None and identity is None:
        reason, statement_ref = _NO_IDENTITY_POLICY_ALLOWS, key_support.ref(key_policy_name)
    elif needs_identity is not None:
        reason, grant_id = _NO_IDENTITY_POLICY_ALLOWS, needs_identity.grant_id
    elif unmet is not None:
        reason, grant_id = _GRANT_CONSTRAINTS_NOT_MET, unmet.grant_id
    elif action in IDENTITY_DECIDED_ACTIONS:
        reason = _NO_IDENTITY_POLICY_ALLOWS
    return _new_tuple(Decision, (False, reason, statement_ref, (), grant_id, context, inputs))

"""The policy simulator: one request, decided by the engine exactly as the service would decide it.

The request context is built as ``keys.services.access.authorize_on_key`` builds it for a real request: the
principal's engine caller (``policies.authorization.engine_caller``) and identity policies (its own, its groups',
its role's: ``identity_policies``), the key's condition values and tags, the encryption context, source IP, time
and TLS flag asked for, the grants of the key whose grantee is the principal, its role or its account, and the
grants named by the grant tokens (verified as a real request verifies them: a bad token is
InvalidGrantTokenException). A request of these operations also always carries what they set whatever their
parameters (``REQUEST_DEFAULTS``: the default encryption algorithm of symmetric keys, the policy name).

Drafts: a draft key policy replaces the key's; a draft identity policy replaces the principal's identity
policies of that name (its own or a group's) or, if it has none of that name, is added.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.utils import timezone

from grants.selectors import token_grant_ids
from keys.models import Key
from keys.selectors import key_condition_values, key_tags
from kmsconsole.core import errors
from kmsconsole.operations import OPERATIONS
from policies import engine
from policies.analyzer.access import (
    action_applies,
    all_key_actions,
    compiled_policy,
    key_grants,
    local_actions,
)
from policies.analyzer.principals import StorePrincipal

_SYMMETRIC_CRYPTO = (
    "kms:Encrypt",
    "kms:Decrypt",
    "kms:ReEncryptFrom",
    "kms:ReEncryptTo",
    "kms:GenerateDataKey",
    "kms:GenerateDataKeyWithoutPlaintext",
    "kms:GenerateDataKeyPair",
    "kms:GenerateDataKeyPairWithoutPlaintext",
)
# The actions of the operations grants may allow (the operation table's `grantable`; ReEncrypt is two actions).
_GRANTABLE = frozenset(
    {op.action.removeprefix("kms:") for op in OPERATIONS.values() if op.grantable}
    | {"ReEncryptFrom", "ReEncryptTo"}
)
# What a request of these actions carries whatever its parameters (the algorithm when it names none).
REQUEST_DEFAULTS: Mapping[str, Mapping[str, Any]] = {
    **{action.lower(): {"kms:EncryptionAlgorithm": "SYMMETRIC_DEFAULT"} for action in _SYMMETRIC_CRYPTO},
    "kms:getkeypolicy": {"kms:PolicyName": "default"},
    "kms:putkeypolicy": {"kms:PolicyName": "default", "kms:BypassPolicyLockoutSafetyCheck": False},
}


@dataclass(frozen=True)
class DraftIdentityPolicy:
    name: str
    document: str


@dataclass(frozen=True)
class SimulatedRequest:
    """What to simulate. `time` defaults to now; None for the rest means the request does not carry it."""

    principal: StorePrincipal
    action: str
    key: Key
    request_alias: str | None = None
    encryption_context: Mapping[str, str] | None = None
    grant_tokens: Sequence[str] = ()
    source_ip: str | None = None
    time: datetime | None = None
    secure_transport: bool | None = None
    draft_key_policy: str | None = None
    draft_identity_policy: DraftIdentityPolicy | None = None


@dataclass(frozen=True)
class Simulation:
    request: SimulatedRequest
    decision: engine.Decision
    identity_policy_names: tuple[str, ...]
    replaced_identity_policy: bool = False
    notes: tuple[str, ...] = field(default=())

    @property
    def allowed(self) -> bool:
        return self.decision.allowed

    def to_dict(self) -> dict[str, Any]:
        decision = self.decision
        request = self.request
        return {
            "allowed": decision.allowed,
            "decision": "allowed" if decision.allowed else "denied",
            "reason": decision.reason.value,
            "explanation": decision.explanation(),
            "access_denied_message": "" if decision.allowed else decision.access_denied_message(),
            "statement": decision.statement.to_dict() if decision.statement else None,
            "supporting": [ref.to_dict() for ref in decision.supporting],
            "grant_id": decision.grant_id,
            "trace": list(decision.trace),
            "principal": request.principal.principal.subject.arn,
            "caller_arn": request.principal.caller.arn,
            "action": request.action,
            "key_arn": request.key.arn,
            "identity_policies": list(self.identity_policy_names),
            "used_draft_key_policy": request.draft_key_policy is not None,
            "draft_identity_policy": (
                {"name": request.draft_identity_policy.name, "replaced": self.replaced_identity_policy}
                if request.draft_identity_policy is not None
                else None
            ),
            "notes": list(self.notes),
        }


def check_action(action: str) -> str:
    """The action as the operation table spells it; ValidationException for anything else."""
    known = {name.lower(): name for name in all_key_actions()}
    found = known.get(action.strip().lower())
    if found is None:
        raise errors.ValidationException(
            f"{action[:128]} is not a KMS action on a key that this service authorizes. Use one of: "
            + ", ".join(sorted(known.values()))
            + "."
        )
    return found


def _identity_policies(
    principal: StorePrincipal, draft: DraftIdentityPolicy | None
) -> tuple[list[engine.IdentityPolicy], bool]:
    policies = list(principal.principal.identities[0].policies)
    if draft is None:
        return policies, False
    if principal.caller.principal_type == "Root":
        raise errors.ValidationException(
            "An account's root user has no identity policies: it may do anything in its account."
        )
    try:
        compiled = engine.compile_identity_policy(draft.document)
    except engine.EngineError as exc:
        raise errors.error_for_code(exc.code, exc.message) from None
    replaced = any(policy.name == draft.name for policy in policies)
    kept = [policy for policy in policies if policy.name != draft.name]
    return [*kept, engine.IdentityPolicy(draft.name, compiled)], replaced


def simulate(request: SimulatedRequest) -> Simulation:
    """Decide the request with the engine (see the module docstring for what it is made of)."""
    key = request.key
    action = check_action(request.action)
    policy = compiled_policy(request.draft_key_policy if request.draft_key_policy is not None else key.policy)
    identity, replaced = _identity_policies(request.principal, request.draft_identity_policy)
    caller = request.principal.principal.identities[0].caller
    values = key_condition_values(key, request_alias=request.request_alias)
    values.update(REQUEST_DEFAULTS.get(action.lower(), {}))
    context = engine.RequestContext.build(
        caller=caller,
        action=action,
        resource=key.arn,
        resource_account=key.account.account_id,
        source_ip=request.source_ip,
        now=request.time or timezone.now(),
        secure_transport=request.secure_transport,
        encryption_context=dict(request.encryption_context) if request.encryption_context else None,
        resource_tags=key_tags(key),
        condition_values=values,
    )
    grantable = action.removeprefix("kms:") in _GRANTABLE
    grants = key_grants(key, caller.grant_keys) if grantable else []
    tokens = token_grant_ids(tuple(request.grant_tokens), key) if grantable else frozenset()
    decision = engine.evaluate(
        context,
        key_policy=policy,
        identity_policies=identity,
        grants=engine.GrantIndex(grants),
        token_grant_ids=tokens,
    )
    notes = []
    if not action_applies(action, key):
        notes.append(
            f"{action} does not apply to a {key.key_spec} key for {key.key_usage}: a real request would be refused "
            "after this authorization (InvalidKeyUsageException or UnsupportedOperationException)."
        )
    if caller.account_id != key.account.account_id and action.lower() in local_actions():
        notes.append(
            f"{action} does not work across accounts: a real request from account {caller.account_id} would not "
            "find this key (NotFoundException), whatever this decision says."
        )
    if request.grant_tokens and not grantable:
        notes.append(f"Grant tokens do not count for {action}: grants never allow it.")
    if action == "kms:CreateGrant":
        notes.append(
            "The grant a CreateGrant would ask for (its operations, grantee, constraints) is not simulated: "
            "conditions on kms:GrantOperations, kms:GranteePrincipal or kms:GrantIsForAWSResource see no value, "
            "and a grant allowing CreateGrant is counted as if the new grant were within it."
        )
    return Simulation(
        request=request,
        decision=decision,
        identity_policy_names=tuple(policy.name for policy in identity),
        replaced_identity_policy=replaced,
        notes=tuple(notes),
    )

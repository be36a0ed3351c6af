"""Decisions that explain themselves: reason codes, statement references, plain-words explanations and
AWS's AccessDenied message shapes."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

from .context import RequestContext
from .document import PolicyKind

if TYPE_CHECKING:
    from .compiled import CompiledPolicy
    from .evaluate import Grants, IdentityPolicy


class ReasonCode(StrEnum):
    """Why a request was allowed or denied (stable strings: audit events store them)."""

    ALLOWED_BY_KEY_POLICY = "ALLOWED_BY_KEY_POLICY"
    """A key-policy Allow names the caller (its ARN, its session's role, ``*``, or, for the root user, its
    account) and the caller is in the key's account."""
    ALLOWED_BY_IDENTITY_POLICY = "ALLOWED_BY_IDENTITY_POLICY"
    """An identity-policy Allow, delegated by a key-policy Allow for the caller's account (``supporting``); or,
    for an account-level action, the identity policy alone."""
    ALLOWED_CROSS_ACCOUNT = "ALLOWED_CROSS_ACCOUNT"
    """Caller in another account: a key-policy Allow for the caller or its account (``statement``) and an
    identity-policy Allow in the caller's account (``supporting``; empty for that account's root user)."""
    ALLOWED_BY_GRANT = "ALLOWED_BY_GRANT"
    """A grant (``grant_id``); for a grant to an account, ``supporting`` holds the identity statement."""
    ALLOWED_AS_ROOT = "ALLOWED_AS_ROOT"
    """Account-level action by the account's root user, which holds every IAM permission in its account."""
    EXPLICIT_DENY_KEY_POLICY = "EXPLICIT_DENY_KEY_POLICY"
    EXPLICIT_DENY_IDENTITY_POLICY = "EXPLICIT_DENY_IDENTITY_POLICY"
    IAM_NOT_DELEGATED = "IAM_NOT_DELEGATED"
    """An identity policy allowed (``statement``), but the key policy does not allow the caller's account, so
    it did not count (for kms:RetireGrant: the caller's account is neither the key's nor the grant's)."""
    NO_KEY_POLICY_ALLOWS = "NO_KEY_POLICY_ALLOWS"
    """Nothing allowed: no key-policy statement, identity policy or grant."""
    NO_IDENTITY_POLICY_ALLOWS = "NO_IDENTITY_POLICY_ALLOWS"
    """The key policy delegates to (or, cross-account, allows) the caller's account (``statement``), but no
    identity policy allows; or a grant to the caller's account would allow (``grant_id``), but no identity policy
    allows; or, for an account-level action or one no key policy decides (kms:RetireGrant), nothing allows."""
    GRANT_NOT_YET_EFFECTIVE = "GRANT_NOT_YET_EFFECTIVE"
    """Only a grant that has not propagated yet would allow (``grant_id``); its grant token would work."""
    GRANT_CONSTRAINTS_NOT_MET = "GRANT_CONSTRAINTS_NOT_MET"
    """A grant covers the caller and operation, but the request does not meet its constraints."""


@dataclass(frozen=True, slots=True)
class StatementRef:
    """Which statement decided: the policy kind and name, the 0-based index and the Sid."""

    policy_kind: PolicyKind
    policy_name: str
    index: int
    sid: str | None
    # Set when the reader may not see which statement this is (another account's identity policy, shown to the key
    # owner): the words shown instead of the policy's name and the statement's Sid or position.
    shown_as: str | None = None

    def hidden(self, label: str) -> StatementRef:
        """This reference as a reader who may not see its policy's name or its statement is shown it: `label`."""
        return StatementRef(self.policy_kind, "", 0, None, shown_as=label)

    @property
    def label(self) -> str:
        return f"'{self.sid}'" if self.sid else f"#{self.index + 1}"

    @property
    def policy_description(self) -> str:
        if self.policy_kind is PolicyKind.KEY:
            return (
                "the key policy" if self.policy_name == "default" else f"the key policy '{self.policy_name}'"
            )
        return f"the identity policy '{self.policy_name}'"

    def describe(self) -> str:
        """E.g. ``statement 'Allow use of the key' in the key policy``."""
        if self.shown_as is not None:
            return self.shown_as
        return f"statement {self.label} in {self.policy_description}"

    def to_dict(self) -> dict[str, object]:
        if self.shown_as is not None:
            return {
                "policy_kind": self.policy_kind.value,
                "policy_name": None,
                "index": None,
                "sid": None,
                "shown_as": self.shown_as,
            }
        return {
            "policy_kind": self.policy_kind.value,
            "policy_name": self.policy_name,
            "index": self.index,
            "sid": self.sid,
        }


# Actions on a key that no key policy decides (lower case): kms:RetireGrant is allowed by the grant itself or by the
# IAM of the key's or the grant's account (spec §8.6). The service decides it under a stand-in key policy that only
# delegates to those accounts (grants.services.removal), whose statement is no statement of the key's: a decision
# on such an action never names it.
IDENTITY_DECIDED_ACTIONS = frozenset({"kms:retiregrant"})

# What a refusal that no Deny decided was missing: its "decided by" in the audit trail (`Decision.decided_by`).
# Fixed words, shown whole to every reader of the event (they name no statement, policy or grant of anyone's).
MISSING_ALLOW = {
    ReasonCode.NO_KEY_POLICY_ALLOWS: "missing: an allow in the key policy, or a grant",
    ReasonCode.IAM_NOT_DELEGATED: "missing: a key-policy allow for the caller's account",
    ReasonCode.NO_IDENTITY_POLICY_ALLOWS: "missing: an identity-policy allow",
    ReasonCode.GRANT_NOT_YET_EFFECTIVE: "missing: a grant in effect",
    ReasonCode.GRANT_CONSTRAINTS_NOT_MET: "missing: a grant whose constraints the request meets",
}
MISSING_ALLOW_LABELS = tuple(MISSING_ALLOW.values())


def _retire_grant_rule(action: str) -> str:
    """Who may retire a grant (spec §8.6), for a refusal of kms:RetireGrant: no key policy has a say."""
    return (
        f"{action} is allowed by the grant itself (to its retiring principal, or to its grantee when it lists "
        f"RetireGrant) or by an identity policy of the key's or the grant's account, not by key policies"
    )


_DENIED_EXPLICIT = {
    ReasonCode.EXPLICIT_DENY_KEY_POLICY: "with an explicit deny in a resource-based policy",
    ReasonCode.EXPLICIT_DENY_IDENTITY_POLICY: "with an explicit deny in an identity-based policy",
}


class TraceInputs(NamedTuple):
    """What evaluate() was given, kept so ``Decision.trace`` can replay the evaluation with notes."""

    key_policy: CompiledPolicy | None
    identity_policies: Sequence[IdentityPolicy]
    grants: Grants
    token_grant_ids: Collection[str]
    key_policy_name: str


class Decision(NamedTuple):
    """The outcome of evaluate(): ``allowed``, a ``reason`` code and what decided. Immutable.

    ``statement`` is the deciding statement (see ``ReasonCode`` for what it is per reason), ``supporting`` the
    other statements the decision relied on, ``grant_id`` the deciding grant, ``context`` the request.
    ``trace`` replays the evaluation with a note per statement and grant (only when asked for).
    (A tuple underneath, for speed; ``bool(decision)`` raises, so ``if decision:`` cannot be mistaken for
    ``if decision.allowed:``.)
    """

    allowed: bool
    reason: ReasonCode
    statement: StatementRef | None
    supporting: tuple[StatementRef, ...]
    grant_id: str | None
    context: RequestContext
    inputs: TraceInputs | None = None

    def __bool__(self) -> bool:
        raise TypeError("a Decision has no truth value: use decision.allowed")

    @property
    def caller_arn(self) -> str:
        return self.context.caller.arn

    @property
    def caller_account(self) -> str:
        return self.context.caller.account_id

    @property
    def action(self) -> str:
        return self.context.action

    @property
    def resource(self) -> str:
        return self.context.resource

    @property
    def resource_account(self) -> str | None:
        return self.context.resource_account

    @property
    def trace(self) -> tuple[str, ...]:
        """Per-statement and per-grant evaluation notes, ending with the decision (ASCII apart from names)."""
        if self.inputs is None:
            return (self.explanation(),)
        from .trace import build_trace

        return build_trace(self.context, *self.inputs, self)

    @property
    def cross_account(self) -> bool:
        return self.resource_account is not None and self.resource_account != self.caller_account

    @property
    def identity_decided(self) -> bool:
        """Whether no key policy decides the action (kms:RetireGrant): the key policy the decision names is the
        service's stand-in for "the accounts' IAM decides"."""
        return self.context.action_lower in IDENTITY_DECIDED_ACTIONS

    def decided_by(self) -> str:
        """What decided the outcome, as the audit trail's "decided by" names it.

        An allow: the statement or grant that allowed it (an identity policy's statement when the key policy
        delegated to it; the key policy's statement across accounts, where the caller's identity statement only
        supports it). A refusal: the explicit Deny statement, if one denied; otherwise what was missing
        (``MISSING_ALLOW``), never an Allow that did not count (an identity policy the key policy does not delegate
        to, a key policy's delegation no identity policy used, a grant not in effect or whose constraints failed):
        those are in the reason. So a statement or grant named here decided only allows, or only refusals.
        kms:RetireGrant (``identity_decided``) names the identity statement that allowed it, or "" for an account's
        root user (as an account-level action it allows), never the stand-in key statement; refused, it was missing
        an identity-policy allow (of the key's or the grant's account), never a key-policy allow."""
        if not self.allowed:
            if self.reason in _DENIED_EXPLICIT and self.statement is not None:
                return self.statement.describe()
            if self.identity_decided and self.reason is ReasonCode.IAM_NOT_DELEGATED:
                # The stand-in key policy did not delegate to the caller's (a third) account: what is missing is
                # an identity-policy allow of the key's or the grant's account; no key policy has a say.
                return MISSING_ALLOW[ReasonCode.NO_IDENTITY_POLICY_ALLOWS]
            return MISSING_ALLOW.get(self.reason, MISSING_ALLOW[ReasonCode.NO_KEY_POLICY_ALLOWS])
        if self.grant_id:
            return f"grant {self.grant_id}"
        if self.identity_decided:
            identity = next(
                (
                    ref
                    for ref in (self.statement, *self.supporting)
                    if ref is not None and ref.policy_kind is PolicyKind.IDENTITY
                ),
                None,
            )
            return identity.describe() if identity is not None else ""
        return self.statement.describe() if self.statement else ""

    def _identity_decided_explanation(self) -> str:
        """An allowed kms:RetireGrant not by a grant, in words that leave out the stand-in key statement."""
        identity = self.decided_by()
        how = (
            f"{self.action} is decided by the IAM of the key's and the grant's accounts, not by key policies"
        )
        if not identity:
            return f"allowed: the caller is the root user of account {self.caller_account} ({how})"
        return f"allowed by {identity} in account {self.caller_account} ({how})"

    def explanation(self) -> str:
        """The decision in plain words, for audit events and for callers allowed to see it."""
        reason = self.reason
        if self.allowed and self.grant_id is None and self.identity_decided:
            return self._identity_decided_explanation()
        statement = self.statement.describe() if self.statement else "a statement"
        support = self.supporting[0].describe() if self.supporting else ""
        action = self.action
        account = self.caller_account
        if reason is ReasonCode.ALLOWED_BY_KEY_POLICY:
            return f"allowed by {statement}"
        if reason is ReasonCode.ALLOWED_BY_IDENTITY_POLICY:
            if support:
                return (
                    f"allowed by {statement}; it counts because {support} lets IAM policies of account "
                    f"{account} allow {action}"
                )
            return f"allowed by {statement} ({action} is decided by identity policies alone)"
        if reason is ReasonCode.ALLOWED_CROSS_ACCOUNT:
            iam = f"{support} in account {account}" if support else f"the root user of account {account}"
            return f"allowed across accounts by {statement} together with {iam}"
        if reason is ReasonCode.ALLOWED_BY_GRANT:
            extra = f", for the caller's account, together with {support}" if support else ""
            return f"allowed by grant {self.grant_id}{extra}"
        if reason is ReasonCode.ALLOWED_AS_ROOT:
            return f"allowed: the caller is the root user of account {account}, which may do anything in its account"
        if reason in _DENIED_EXPLICIT:
            return f"denied by {statement}: an explicit deny overrides every allow"
        if reason is ReasonCode.IAM_NOT_DELEGATED:
            name = self.statement.policy_name if self.statement else "?"
            if self.identity_decided:
                # A third account's identity policy: no key policy could make it count (spec §8.6).
                return (
                    f"denied: {_retire_grant_rule(action)}; account {account} is neither, so the identity policy "
                    f"'{name}' did not count"
                )
            scope = f" of account {account}" if self.cross_account else ""
            return (
                f"denied: the key policy does not let IAM policies{scope} grant access, so the identity policy "
                f"'{name}' did not count"
            )
        if reason is ReasonCode.NO_IDENTITY_POLICY_ALLOWS:
            if self.grant_id is not None:
                # A grant still propagating allows nothing yet (its token would make it count at once).
                allows = (
                    f"has not taken effect yet; once it has (or with its grant token) it allows {action} to "
                    f"account {account}"
                    if self._grant_pending()
                    else f"allows {action} to account {account}"
                )
                return (
                    f"denied: grant {self.grant_id} {allows}, but a grant to an account counts only together with "
                    f"an identity policy of the caller that allows {action}, and none does"
                )
            # For RetireGrant the service's statement for the accounts only stands for "their IAM decides": no
            # key policy has a say (spec §8.6), so naming one would mislead.
            if self.identity_decided:
                return f"denied: {_retire_grant_rule(action)}; neither allows it"
            if self.statement is None:
                return f"denied: no identity policy allows {action}"
            if self.cross_account:
                return (
                    f"denied: {statement} allows it, but a caller from account {account} also needs an identity "
                    f"policy in its account that allows {action} on {self.resource}, and none does"
                )
            return (
                f"denied: {statement} lets IAM policies of account {account} allow {action}, but no identity "
                f"policy of the caller allows it"
            )
        if reason is ReasonCode.GRANT_NOT_YET_EFFECTIVE:
            return (
                f"denied: grant {self.grant_id} would allow {action}, but it has not taken effect yet; pass its "
                f"grant token in GrantTokens to use it now"
            )
        if reason is ReasonCode.GRANT_CONSTRAINTS_NOT_MET:
            return (
                f"denied: grant {self.grant_id} covers {action} for the caller, but the request does not meet its "
                f"constraints, and no policy allows it"
            )
        return f"denied: no statement in the key policy allows {self.caller_arn} to perform {action}, and no grant does"

    def _grant_pending(self) -> bool:
        """Whether the deciding grant had not taken effect, and no token of it came with the request."""
        if self.inputs is None or self.grant_id is None:
            return False
        if self.grant_id in self.inputs.token_grant_ids:
            return False
        return any(grant.grant_id == self.grant_id and not grant.effective for grant in self.inputs.grants)

    def access_denied_message(self) -> str:
        """The ``AccessDeniedException`` message in AWS's shape. Raises ``ValueError`` for an allowed decision."""
        if self.allowed:
            raise ValueError("the request was allowed")
        base = f"User: {self.caller_arn} is not authorized to perform: {self.action} on resource: {self.resource}"
        explicit = _DENIED_EXPLICIT.get(self.reason)
        if explicit is not None:
            return f"{base} {explicit}"
        kind = "identity-based" if self.reason is ReasonCode.NO_IDENTITY_POLICY_ALLOWS else "resource-based"
        return f"{base} because no {kind} policy allows the {self.action} action"

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready summary for audit events (no trace)."""
        return {
            "allowed": self.allowed,
            "reason": self.reason.value,
            "statement": self.statement.to_dict() if self.statement else None,
            "supporting": [ref.to_dict() for ref in self.supporting],
            "grant_id": self.grant_id,
            "explanation": self.explanation(),
        }

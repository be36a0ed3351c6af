"""Who can do what on a key: the access matrix (principals x actions -> ``Verdict``) and the difference between two
matrices (who gains, who loses).

The caller (the service layer) gives the key as a ``KeyTarget`` (ARN, account, tags, the condition values a
request on it would carry, its compiled policy, its grants) and the principals as ``Principal``s, each the
callers it stands for with their identity policies. ``"*"`` (``anyone(account_id)``) stands for any principal of
an account this service does not know: its root user, and a user and a role session whose own account's IAM
policies allow everything (they decide, not this service), so "*" gets the most a stranger could get.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .analysis import Access, AccessAnalyzer, Verdict, best
from .cache import compile_identity_policy
from .compiled import CompiledPolicy
from .context import RequestContext
from .evaluate import IdentityPolicy
from .grants import Grant, GrantIndex
from .principals import Caller

ANYONE = "*"
ANYONE_SESSION = "anyone"
STRANGER_POLICY_NAME = "its own account's IAM policies"
# Why a principal of another account is refused an action only the key's own account may request: the real
# request names a key its caller's account does not have, and is answered NotFoundException before any policy.
NOT_ACROSS_ACCOUNTS = (
    "not available across accounts: a request from another account for this action is answered "
    "NotFoundException, whatever the policies say"
)
_EVERYTHING = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'
# Condition values every request of an action carries whatever its parameters (only the default policy exists).
ACTION_VALUES: Mapping[str, Mapping[str, Any]] = {
    "kms:getkeypolicy": {"kms:PolicyName": "default"},
    "kms:putkeypolicy": {"kms:PolicyName": "default"},
}


@dataclass(frozen=True)
class Subject:
    """A row of the matrix: a principal by ARN (``"*"`` for anyone), its kind and account, a label to show."""

    arn: str
    kind: str  # "account", "user", "role" or "anyone"
    account_id: str
    label: str

    def external_to(self, account_id: str) -> bool:
        return self.kind == "anyone" or self.account_id != account_id


@dataclass(frozen=True)
class Identity:
    """One caller a subject stands for, with its identity policies (user, groups, role)."""

    caller: Caller
    policies: tuple[IdentityPolicy, ...] = ()


@dataclass(frozen=True)
class Principal:
    subject: Subject
    identities: tuple[Identity, ...]


def anyone(account_id: str) -> Principal:
    """``"*"``: a stranger from ``account_id`` (an account the store does not have)."""
    everything = (IdentityPolicy(STRANGER_POLICY_NAME, compile_identity_policy(_EVERYTHING)),)
    return Principal(
        Subject(ANYONE, "anyone", "", "Anyone (*): any principal of any account"),
        (
            Identity(Caller.root(account_id)),
            Identity(Caller.user(f"arn:aws:iam::{account_id}:user/{ANYONE_SESSION}"), everything),
            Identity(
                Caller.assumed_role(
                    f"arn:aws:sts::{account_id}:assumed-role/{ANYONE_SESSION}/{ANYONE_SESSION}"
                ),
                everything,
            ),
        ),
    )


@dataclass(frozen=True)
class KeyTarget:
    """The key as a request on it would see it."""

    arn: str
    account_id: str
    policy: CompiledPolicy
    grants: Sequence[Grant] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    values: Mapping[str, Any] = field(default_factory=dict)
    # The actions (lower case) only a principal of the key's own account may request: the service layer says which
    # (the operation table's ``cross_account``); for any other account's principal they are refused outright.
    local_actions: frozenset[str] = frozenset()

    def with_policy(self, policy: CompiledPolicy) -> KeyTarget:
        return KeyTarget(
            self.arn, self.account_id, policy, self.grants, self.tags, self.values, self.local_actions
        )

    def across_accounts(self, identity: Identity, action: str) -> bool:
        """Whether a request of `identity` for `action` could reach the key at all (its own account, or an action
        that works across accounts)."""
        return identity.caller.account_id == self.account_id or action.lower() not in self.local_actions


@dataclass(frozen=True)
class AccessMatrix:
    key_arn: str
    account_id: str
    actions: tuple[str, ...]
    subjects: tuple[Subject, ...]
    cells: Mapping[tuple[str, str], Verdict]

    def verdict(self, subject_arn: str, action: str) -> Verdict:
        return self.cells[(subject_arn, action)]

    def rows(self) -> list[tuple[Subject, list[Verdict]]]:
        return [
            (subject, [self.cells[(subject.arn, action)] for action in self.actions])
            for subject in self.subjects
        ]

    def granted(self) -> list[tuple[Subject, str, Verdict]]:
        """Every (subject, action) that is allowed or conditionally allowed, in row order."""
        return [
            (subject, action, self.cells[(subject.arn, action)])
            for subject in self.subjects
            for action in self.actions
            if self.cells[(subject.arn, action)].access is not Access.DENIED
        ]


def _verdict(
    analyzer: AccessAnalyzer, target: KeyTarget, grants: GrantIndex, identity: Identity, action: str
) -> Verdict:
    if not target.across_accounts(identity, action):
        return Verdict(Access.DENIED, explanation=NOT_ACROSS_ACCOUNTS)
    values = dict(target.values)
    values.update(ACTION_VALUES.get(action.lower(), {}))
    context = RequestContext.build(
        caller=identity.caller,
        action=action,
        resource=target.arn,
        resource_account=target.account_id,
        resource_tags=target.tags,
        condition_values=values,
    )
    return analyzer.verdict(
        context, key_policy=target.policy, identity_policies=identity.policies, grants=grants
    )


def access_matrix(
    target: KeyTarget,
    principals: Iterable[Principal],
    actions: Sequence[str],
    *,
    analyzer: AccessAnalyzer | None = None,
) -> AccessMatrix:
    """The verdict of every principal for every action on the key (a principal standing for several callers
    gets the most any of them gets)."""
    analyzer = analyzer or AccessAnalyzer()
    grants = GrantIndex(target.grants)
    subjects: list[Subject] = []
    cells: dict[tuple[str, str], Verdict] = {}
    for principal in principals:
        subjects.append(principal.subject)
        for action in actions:
            cells[(principal.subject.arn, action)] = best(
                _verdict(analyzer, target, grants, identity, action) for identity in principal.identities
            )
    return AccessMatrix(target.arn, target.account_id, tuple(actions), tuple(subjects), cells)


@dataclass(frozen=True)
class AccessChange:
    """A (principal, action) whose access differs between two matrices."""

    subject: Subject
    action: str
    before: Verdict
    after: Verdict

    @property
    def direction(self) -> str:
        """``gains``, ``loses``, or ``changes`` (conditional both times, under other conditions)."""
        before, after = self.before.access.rank, self.after.access.rank
        if after > before:
            return "gains"
        return "loses" if after < before else "changes"


def compare(before: AccessMatrix, after: AccessMatrix) -> tuple[AccessChange, ...]:
    """What changes from ``before`` to ``after``, for the subjects and actions both have, gains first."""
    changes = []
    actions = [action for action in before.actions if action in set(after.actions)]
    after_subjects = {subject.arn for subject in after.subjects}
    for subject in before.subjects:
        if subject.arn not in after_subjects:
            continue
        for action in actions:
            old, new = before.verdict(subject.arn, action), after.verdict(subject.arn, action)
            if old.access is not new.access or (
                old.access is Access.CONDITIONAL and set(old.conditions) != set(new.conditions)
            ):
                changes.append(AccessChange(subject, action, old, new))
    order = {"gains": 0, "loses": 1, "changes": 2}
    return tuple(sorted(changes, key=lambda change: order[change.direction]))

"""What the access analysis answers: a ``Verdict`` (allowed, conditional or denied), the ``Route`` a decision took
(key-policy statement, identity policy through the key policy's delegation, cross-account pair, grant) and, for a
conditional verdict, each ``Way`` in (the facts that must hold, and the route)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from .explain import Decision, ReasonCode, StatementRef


class Access(StrEnum):
    ALLOWED = "allowed"
    CONDITIONAL = "conditional"
    DENIED = "denied"

    @property
    def rank(self) -> int:
        return {Access.DENIED: 0, Access.CONDITIONAL: 1, Access.ALLOWED: 2}[self]


@dataclass(frozen=True, slots=True)
class Route:
    """How a decision allowed: the reason, the deciding statement, the supporting one, the grant."""

    reason: ReasonCode
    statement: StatementRef | None = None
    supporting: tuple[StatementRef, ...] = ()
    grant_id: str | None = None

    @classmethod
    def of(cls, decision: Decision) -> Route:
        return cls(decision.reason, decision.statement, decision.supporting, decision.grant_id)

    @property
    def kind(self) -> str:
        """``key-policy``, ``identity-policy`` (through delegation), ``cross-account``, ``grant`` or ``root``."""
        return {
            ReasonCode.ALLOWED_BY_KEY_POLICY: "key-policy",
            ReasonCode.ALLOWED_BY_IDENTITY_POLICY: "identity-policy",
            ReasonCode.ALLOWED_CROSS_ACCOUNT: "cross-account",
            ReasonCode.ALLOWED_BY_GRANT: "grant",
        }.get(self.reason, "root")

    def describe(self, grant_names: Mapping[str, str] | None = None) -> str:
        """The route in words, e.g. "identity policy 'dev' (statement #1), counted through statement 'Enable IAM
        User Permissions' in the key policy"."""
        statement = self.statement.describe() if self.statement else ""
        support = self.supporting[0].describe() if self.supporting else ""
        if self.reason is ReasonCode.ALLOWED_BY_GRANT:
            name = (grant_names or {}).get(self.grant_id or "", "")
            text = f"grant {self.grant_id}" + (f" ('{name}')" if name else "")
            return f"{text}, together with {support}" if support else text
        if self.reason is ReasonCode.ALLOWED_BY_IDENTITY_POLICY and support:
            return f"{statement}, counted through {support}, which delegates to IAM policies"
        if self.reason is ReasonCode.ALLOWED_CROSS_ACCOUNT:
            if support and self.supporting[0].shown_as is not None:
                return f"{statement}, together with {support}"
            if support:
                return f"{statement}, together with {support} in the caller's account"
            return f"{statement} (the caller is its account's root user, which needs no IAM policy)"
        return statement or self.reason.value

    def to_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "reason": self.reason.value,
            "statement": self.statement.to_dict() if self.statement else None,
            "supporting": [ref.to_dict() for ref in self.supporting],
            "grant_id": self.grant_id,
        }


@dataclass(frozen=True, slots=True)
class Way:
    """One way in for a conditional verdict: when every fact in ``facts`` holds, ``route`` allows."""

    facts: tuple[str, ...]
    route: Route

    @property
    def when(self) -> str:
        return " and ".join(self.facts)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a principal may do: ``access``, the ``route`` when allowed, the ``ways`` when conditional."""

    access: Access
    route: Route | None = None
    ways: tuple[Way, ...] = ()
    explanation: str = ""
    exact: bool = True

    @property
    def allowed(self) -> bool:
        return self.access is Access.ALLOWED

    @property
    def conditions(self) -> tuple[str, ...]:
        return tuple(way.when for way in self.ways)

    def describe(self, grant_names: Mapping[str, str] | None = None) -> str:
        if self.access is Access.ALLOWED and self.route is not None:
            return f"allowed by {self.route.describe(grant_names)}"
        if self.access is Access.CONDITIONAL:
            ways = "; or ".join(
                f"when {way.when} (by {way.route.describe(grant_names)})" for way in self.ways
            )
            return f"allowed only {ways}"
        return self.explanation or "denied"

    def to_dict(self) -> dict[str, object]:
        return {
            "access": self.access.value,
            "route": self.route.to_dict() if self.route else None,
            "conditions": [{"when": way.when, "route": way.route.to_dict()} for way in self.ways],
            "explanation": self.describe(),
            "exact": self.exact,
        }


def best(verdicts: Iterable[Verdict]) -> Verdict:
    """The most access any of the verdicts gives (for "*", which stands for several callers)."""
    found = list(verdicts)
    return max(found, key=lambda verdict: verdict.access.rank)

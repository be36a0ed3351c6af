"""What the access analysis cannot know without a request: request-dependent condition keys, and the facts
(conditions on them) a decision may hinge on, in plain words.

A condition on a key that describes the principal or the key (``aws:PrincipalArn``, ``aws:PrincipalTag/*``,
``kms:CallerAccount``, ``kms:KeySpec``, ``aws:ResourceTag/*``, ...) is decided by the analysis like any request
would decide it. A condition on a key the *request* sets (the encryption context, the source IP, the time, TLS,
the algorithm, the integrated service it comes through, the parameters of a grant or policy change, ...) is a
``Fact``: the analysis reports "allowed when <fact>" instead of guessing. Keys that the service never sets (such
as ``aws:PrincipalOrgID``) are absent from every real request, so the analysis decides them as absent too.

Two clauses that are each other's negation (``StringEquals`` / ``StringNotEquals`` with the same key and values,
``IpAddress`` / ``NotIpAddress``, ...) are one fact with opposite polarity, so "in 10.0.0.0/8 and not in
10.0.0.0/8" is never reported as a way in.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from .conditions import BASE_OPERATORS, ConditionClause, Family, SetOperator
from .values import scalar_to_str

# Keys a request sets (spec §7.6 and the global keys the service fills in from the request).
REQUEST_KEYS = frozenset(
    {
        "aws:currenttime",
        "aws:epochtime",
        "aws:sourceip",
        "aws:securetransport",
        "aws:tagkeys",
        "kms:encryptioncontextkeys",
        "kms:viaservice",
        "kms:grantisforawsresource",
        "kms:requestalias",
        "kms:encryptionalgorithm",
        "kms:signingalgorithm",
        "kms:keyagreementalgorithm",
        "kms:macalgorithm",
        "kms:messagetype",
        "kms:datakeypairspec",
        "kms:reencryptonsamekey",
        "kms:grantoperations",
        "kms:granteeprincipal",
        "kms:retiringprincipal",
        "kms:grantconstrainttype",
        "kms:bypasspolicylockoutsafetycheck",
        "kms:schedulekeydeletionpendingwindowindays",
        "kms:rotationperiodindays",
    }
)
REQUEST_KEY_PREFIXES = ("kms:encryptioncontext:", "aws:requesttag/")
# The synthetic condition keys that stand for facts while the analysis enumerates them.
ASSUMPTION_PREFIX = "kmsconsole-analysis:fact-"


def depends_on_request(key_lower: str) -> bool:
    """Whether a condition on ``key_lower`` can only be decided with a request in hand."""
    return key_lower in REQUEST_KEYS or key_lower.startswith(REQUEST_KEY_PREFIXES)


# The condition keys that say who the caller is, beyond its account: unknown for a principal standing for any
# principal of an account (``AccessAnalyzer(principal_unknown=True)``).
PRINCIPAL_KEYS = frozenset({"aws:principalarn", "aws:principaltype", "aws:username", "aws:userid"})
PRINCIPAL_KEY_PREFIXES = ("aws:principaltag/",)


def about_principal(key_lower: str) -> bool:
    """Whether a condition on ``key_lower`` is about which principal of its account the caller is."""
    return key_lower in PRINCIPAL_KEYS or key_lower.startswith(PRINCIPAL_KEY_PREFIXES)


FactKey = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Fact:
    """Something about a request the analysis cannot know: ``holds`` and ``fails`` say it both ways."""

    id: int
    holds: str
    fails: str

    @property
    def key(self) -> str:
        """The condition key this fact stands for in an enumerated context."""
        return f"{ASSUMPTION_PREFIX}{self.id}"

    def text(self, value: bool) -> str:
        return self.holds if value else self.fails


# -- clauses as facts ---------------------------------------------------------------------------------------------


def _positive_name(name: str) -> str | None:
    """The non-negated operator a negated one complements (``StringNotEquals`` -> ``StringEquals``)."""
    candidate = name[3:] if name.startswith("Not") else name.replace("Not", "", 1)
    return BASE_OPERATORS[candidate.lower()].name if candidate.lower() in BASE_OPERATORS else None


def clause_fact(clause: ConditionClause) -> tuple[FactKey, bool]:
    """The identity of the fact a clause states, and whether the clause states it (True) or its negation."""
    op = clause.operator
    spec = op.spec
    name, polarity = spec.name, True
    if spec.negated and op.set_operator is None and not op.if_exists:
        positive = _positive_name(spec.name)
        if positive is not None:
            name, polarity = positive, False
    values = tuple(sorted(str(scalar_to_str(value)) for value in clause.values))
    key = (
        "clause",
        name,
        str(op.set_operator or ""),
        "ifexists" if op.if_exists else "",
        clause.key_lower,
        *values,
    )
    return key, polarity


def _quoted(values: tuple[object, ...]) -> str:
    shown = [f"'{scalar_to_str(value)}'" for value in values]
    if len(shown) == 1:
        return shown[0]
    return "one of " + ", ".join(shown)


_COMPARISONS = {
    # comparison: (holds, fails) for numbers, then for dates
    "eq": (("is", "is not"), ("is", "is not")),
    "lt": (("is less than", "is at least"), ("is before", "is at or after")),
    "le": (("is at most", "is more than"), ("is at or before", "is after")),
    "gt": (("is more than", "is at most"), ("is after", "is at or before")),
    "ge": (("is at least", "is less than"), ("is at or after", "is before")),
}


def _verbs(family: Family, comparison: str) -> tuple[str, str]:
    if family in (Family.STRING_LIKE, Family.ARN):
        return "matches", "does not match"
    if family is Family.IP:
        return "is in", "is not in"
    if family is Family.NUMERIC:
        return _COMPARISONS[comparison][0]
    if family is Family.DATE:
        return _COMPARISONS[comparison][1]
    return "is", "is not"


def describe_clause(clause: ConditionClause, *, holds: bool) -> str:
    """The clause (``holds``) or its negation in words, e.g. ``aws:SourceIp is in '10.0.0.0/8'``."""
    op = clause.operator
    spec = op.spec
    key = clause.key
    if spec.family is Family.NULL:
        absent = any(scalar_to_str(value) == "true" for value in clause.values)
        return f"{key} is {'absent' if absent is holds else 'present'}"
    positive, negative = _verbs(spec.family, spec.comparison)
    if spec.negated:
        positive, negative = negative, positive
    values = _quoted(clause.values)
    if spec.family is Family.STRING_IGNORE_CASE:
        values += " (ignoring case)"
    subject = key
    if op.set_operator is SetOperator.FOR_ANY_VALUE:
        subject = f"at least one value of {key}"
    elif op.set_operator is SetOperator.FOR_ALL_VALUES:
        subject = f"every value of {key}"
    statement = f"{subject} {positive} {values}"
    if op.set_operator is None and not op.if_exists:
        return statement if holds else f"{subject} {negative} {values}"
    if op.if_exists:
        statement += f", or {key} is absent"
    return statement if holds else f"not ({statement})"


# -- grants as facts ---------------------------------------------------------------------------------------------


def _pairs(mapping: Mapping[str, str]) -> str:
    return json.dumps(dict(mapping), sort_keys=True, ensure_ascii=False)


def grant_constraint_texts(
    grant_id: str,
    *,
    equals: Mapping[str, str] | None,
    subset: Mapping[str, str] | None,
    source_arn: str | None,
) -> tuple[str, str]:
    """(holds, fails) for "the request meets grant ``grant_id``'s constraints"."""
    parts = []
    if equals is not None:
        parts.append(f"the encryption context is exactly {_pairs(equals)}")
    if subset is not None:
        parts.append(f"the encryption context includes {_pairs(subset)}")
    if source_arn is not None:
        parts.append(f"aws:SourceArn is '{source_arn}'")
    what = " and ".join(parts) or "the request meets its constraints"
    return f"{what} (grant {grant_id[:12]}…)", f"not ({what}) (grant {grant_id[:12]}…)"


def grant_token_texts(grant_id: str) -> tuple[str, str]:
    """(holds, fails) for "the request carries the token of a grant that has not taken effect yet"."""
    return (
        f"the request passes the grant token of grant {grant_id[:12]}… (it has not taken effect yet)",
        f"the request does not pass the grant token of grant {grant_id[:12]}…",
    )

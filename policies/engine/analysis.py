"""Access analysis: may a principal perform an action on a key, with no request in hand, and by which route?

``AccessAnalyzer().verdict(context, key_policy=..., identity_policies=..., grants=...)`` answers with a ``Verdict``:
``ALLOWED`` (with the ``Route`` the engine's decision took: a key-policy statement, an identity policy through the
key policy's delegation, a cross-account pair, or a grant), ``DENIED`` (with the engine's explanation), or
``CONDITIONAL``: allowed only when the request meets conditions the analysis cannot know (the encryption context,
the source IP, the time, a grant's constraints, a grant token, ...), each way in given as its facts and its route.

It never reimplements the decision. The request-dependent condition clauses (``unknowns.depends_on_request``) of
the policies are rewritten once into synthetic ``Bool`` conditions on one key per ``Fact``; a grant's constraints
and a pending grant's token are facts too. The analysis then calls ``evaluate`` for every assignment of true and
false to the facts that can matter for this principal and action (at most ``max_facts`` of them), and reduces the
assignments that allow to the fewest, shortest terms (Quine-McCluskey). With more facts than that it evaluates
only "all true" and "all false" and marks the verdict ``exact=False``.

``AccessAnalyzer().possible(...)`` asks less: could any assignment allow? It evaluates assignments until the first
that allows and builds no terms, so its cost is at most ``2 ** max_facts`` evaluations (with more facts, or a
``Resource`` whose policy variable names an open key, it evaluates nothing and answers "possible", inexact). A page
deciding whether to offer a form asks it, with a small ``max_facts``: the request the form sends is decided again.

A clause whose value is a policy variable naming an open key (``"${aws:RequestTag/team}"``) is open too: it
cannot be decided before the request carries that key. Only in Version 2012-10-17: elsewhere the engine substitutes
nothing, and ``${...}`` is literal text, decided like any other value.

Facts are treated as independent; two conditions on the same key that cannot both hold (``aws:SourceIp`` in two
disjoint ranges) may still be reported together. Each condition's exact negation is recognised as the same fact.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Required, TypedDict, Unpack

from .compiled import CompiledPolicy, compile_policy
from .conditions import ConditionClause, ParsedOperator, parse_operator
from .context import RequestContext
from .document import Statement
from .evaluate import IdentityPolicy, evaluate
from .explain import Decision
from .grants import ENCRYPTION_CONTEXT_OPERATIONS, Grant, GrantIndex, caller_grant_keys
from .unknowns import (
    Fact,
    FactKey,
    about_principal,
    clause_fact,
    depends_on_request,
    describe_clause,
    grant_constraint_texts,
    grant_token_texts,
)
from .values import scalar_to_str
from .variables import Variable, parse_template
from .verdicts import Access, Route, Verdict, Way, best

__all__ = ["MAX_FACTS", "Access", "AccessAnalyzer", "Possibility", "Route", "Verdict", "Way", "best"]

MAX_FACTS = 10


def _bool_operator() -> ParsedOperator:
    parsed = parse_operator("Bool")
    if parsed is None:  # pragma: no cover - Bool is always known
        raise AssertionError("no Bool operator")
    return parsed


_BOOL = _bool_operator()


@dataclass
class _Rewritten:
    original: CompiledPolicy  # kept so that its id() is not reused while cached
    policy: CompiledPolicy
    facts_by_statement: dict[int, tuple[int, ...]]
    # The statements whose Resource (or NotResource) names an open key in a policy variable.
    open_resources: frozenset[int]


@dataclass(frozen=True)
class Possibility:
    """Whether some assignment of the facts allows (``AccessAnalyzer.possible``); not ``exact`` when the analysis
    answered "allowed" without enumerating (too many facts, or an open resource)."""

    allowed: bool
    exact: bool


class AnalysisInputs(TypedDict, total=False):
    """What ``verdict`` and ``possible`` analyse (``key_policy`` is required; the rest default to none)."""

    key_policy: Required[CompiledPolicy]
    identity_policies: Sequence[IdentityPolicy]
    grants: GrantIndex | Sequence[Grant]
    token_grant_ids: Collection[str]
    key_policy_name: str


@dataclass(frozen=True)
class _Enumeration:
    order: list[int]  # the facts the decision may hinge on (ids), bit i of an assignment being the i-th
    open_resource: bool
    decide: Callable[[int], Decision]


@dataclass(frozen=True)
class _GrantFacts:
    grant: Grant
    constraint: int | None
    token: int | None


class AccessAnalyzer:
    """Analyses many (principal, action) pairs over a set of policies; keeps the facts and rewritten policies."""

    def __init__(
        self,
        *,
        max_facts: int = MAX_FACTS,
        principal_unknown: bool = False,
        open_keys: Callable[[str], bool] | None = None,
    ) -> None:
        self.max_facts = max_facts
        # With `principal_unknown`, conditions on who the caller is (``PRINCIPAL_KEYS``: its ARN, name, id, type,
        # tags) are facts too: for a principal that stands for any of an account's principals.
        self.principal_unknown = principal_unknown
        # With `open_keys` (a test of a lower-cased condition key), only the keys it names are facts, in place of
        # every key a request sets: for a request in hand whose address, time and transport are known, and only
        # the parameters still to be typed are not (a form a page is about to offer).
        self.open_keys = open_keys or depends_on_request
        self._ids: dict[FactKey, int] = {}
        self._facts: list[Fact] = []
        self._rewritten: dict[int, _Rewritten] = {}

    def _fact(self, key: FactKey, holds: str, fails: str) -> int:
        found = self._ids.get(key)
        if found is None:
            found = self._ids[key] = len(self._facts)
            self._facts.append(Fact(found, holds, fails))
        return found

    def _unknown(self, key_lower: str) -> bool:
        return self.open_keys(key_lower) or (self.principal_unknown and about_principal(key_lower))

    def _names_open_key(self, text: object) -> bool:
        """Whether a policy text (a condition value, a resource pattern) holds a variable naming an open key."""
        rendered = scalar_to_str(text) if not isinstance(text, str) else text
        template = parse_template(rendered) if rendered is not None else None
        return template is not None and any(
            isinstance(part, Variable) and self._unknown(part.key) for part in template.parts
        )

    def _open(self, clause: ConditionClause, *, variables: bool) -> bool:
        """Whether the clause is a fact: its key is open, or (where the policy's Version substitutes variables,
        ``Policy.supports_variables``, as the engine does) one of its values names an open key."""
        return self._unknown(clause.key_lower) or (
            variables and any(self._names_open_key(value) for value in clause.values)
        )

    def _clause(self, clause: ConditionClause, *, variables: bool) -> ConditionClause:
        if not self._open(clause, variables=variables):
            return clause
        key, polarity = clause_fact(clause)
        fact = self._fact(
            key, describe_clause(clause, holds=polarity), describe_clause(clause, holds=not polarity)
        )
        value = "true" if polarity else "false"
        return ConditionClause(operator=_BOOL, key=self._facts[fact].key, values=(value,))

    def _rewrite(self, policy: CompiledPolicy) -> _Rewritten:
        cached = self._rewritten.get(id(policy))
        if cached is not None and cached.original is policy:
            return cached
        statements: list[Statement] = []
        facts: dict[int, tuple[int, ...]] = {}
        open_resources = set()
        # Without Version 2012-10-17 the engine substitutes nothing: "${...}" is literal text, never open.
        variables = policy.policy.supports_variables
        for statement in policy.policy.statements:
            patterns = statement.resource or statement.not_resource or ()
            if variables and any(self._names_open_key(p) for p in patterns):
                open_resources.add(statement.index)
            clauses = tuple(self._clause(clause, variables=variables) for clause in statement.conditions)
            ids = tuple(
                self._ids[clause_fact(old)[0]]
                for old in statement.conditions
                if self._open(old, variables=variables)
            )
            if ids:
                facts[statement.index] = ids
                statement = dataclasses.replace(statement, conditions=clauses)
            statements.append(statement)
        rewritten = (
            policy
            if not facts
            else compile_policy(dataclasses.replace(policy.policy, statements=tuple(statements)))
        )
        entry = _Rewritten(policy, rewritten, facts, frozenset(open_resources))
        self._rewritten[id(policy)] = entry
        return entry

    def _relevant(
        self, entry: _Rewritten, context: RequestContext, *, key_policy: bool
    ) -> tuple[set[int], bool]:
        """The facts the statements for the action (the caller's, in a key policy) hinge on, and whether one of
        them names an open key in its resource."""
        found: set[int] = set()
        open_resource = False
        if not entry.facts_by_statement and not entry.open_resources:
            return found, open_resource
        denies, allows = entry.original.statements_for(context.action_lower)
        for statement in (*denies, *allows):
            if key_policy and not statement.principal_match(context.caller):
                continue
            found.update(entry.facts_by_statement.get(statement.index, ()))
            open_resource = open_resource or statement.index in entry.open_resources
        return found, open_resource

    def _grant_facts(
        self, context: RequestContext, grants: Sequence[Grant], tokens: Collection[str]
    ) -> list[_GrantFacts]:
        operation = context.action_lower[4:] if context.action_lower.startswith("kms:") else ""
        result = []
        for grant in grants:
            constraint = token = None
            constraints = grant.constraints
            if operation in grant.operations_lower and grant.key_arn == context.resource:
                if constraints is not None and _constraints_matter(grant, operation):
                    holds, fails = grant_constraint_texts(
                        grant.grant_id,
                        equals=constraints.encryption_context_equals,
                        subset=constraints.encryption_context_subset,
                        source_arn=constraints.source_arn,
                    )
                    constraint = self._fact(("grant-constraint", grant.grant_id), holds, fails)
                if not grant.effective and grant.grant_id not in tokens:
                    holds, fails = grant_token_texts(grant.grant_id)
                    token = self._fact(("grant-token", grant.grant_id), holds, fails)
            result.append(_GrantFacts(grant, constraint, token))
        return result

    def _enumeration(
        self,
        context: RequestContext,
        *,
        key_policy: CompiledPolicy,
        identity_policies: Sequence[IdentityPolicy] = (),
        grants: GrantIndex | Sequence[Grant] = (),
        token_grant_ids: Collection[str] = frozenset(),
        key_policy_name: str = "default",
    ) -> _Enumeration:
        """The facts the decision may hinge on, and the engine's decision for each assignment of them."""
        if isinstance(grants, GrantIndex):
            candidates = list(grants.for_caller(context.caller))
        else:
            keys = caller_grant_keys(context.caller)
            candidates = [grant for grant in grants if grant.grantee_principal in keys]
        key_entry = self._rewrite(key_policy)
        identity_entries = [(name, self._rewrite(policy)) for name, policy in identity_policies]
        relevant, open_resource = self._relevant(key_entry, context, key_policy=True)
        for _, entry in identity_entries:
            found, opened = self._relevant(entry, context, key_policy=False)
            relevant |= found
            open_resource = open_resource or opened
        grant_facts = self._grant_facts(context, candidates, token_grant_ids)
        for item in grant_facts:
            relevant.update(fact for fact in (item.constraint, item.token) if fact is not None)
        order = sorted(relevant)
        rewritten_identity = [IdentityPolicy(name, entry.policy) for name, entry in identity_entries]

        def decide(assignment: int) -> Decision:
            truth = {fact: bool(assignment >> bit & 1) for bit, fact in enumerate(order)}
            values = dict(context.values)
            values.update((self._facts[fact].key, value) for fact, value in truth.items())
            request = RequestContext(
                caller=context.caller,
                action=context.action,
                resource=context.resource,
                resource_account=context.resource_account,
                values=values,
                encryption_context=context.encryption_context,
                new_grant=context.new_grant,
            )
            usable: list[Grant] = []
            tokens = set(token_grant_ids)
            for item in grant_facts:
                if item.constraint is not None:
                    if not truth[item.constraint]:
                        continue
                    usable.append(dataclasses.replace(item.grant, constraints=None))
                else:
                    usable.append(item.grant)
                if item.token is not None and truth[item.token]:
                    tokens.add(item.grant.grant_id)
            return evaluate(
                request,
                key_policy=key_entry.policy,
                identity_policies=rewritten_identity,
                grants=usable,
                token_grant_ids=tokens,
                key_policy_name=key_policy_name,
            )

        return _Enumeration(order, open_resource, decide)

    def possible(
        self,
        context: RequestContext,
        **inputs: Unpack[AnalysisInputs],
    ) -> Possibility:
        """Whether some assignment of the facts lets ``context.caller`` do it: evaluated until the first that
        allows ("all true" first), at most ``2 ** max_facts`` evaluations; with more facts, or a resource naming
        an open key, answered "allowed" without evaluating (``exact=False``)."""
        enumeration = self._enumeration(context, **inputs)
        if enumeration.open_resource or len(enumeration.order) > self.max_facts:
            return Possibility(allowed=True, exact=False)
        everything = (1 << len(enumeration.order)) - 1
        allowed = any(enumeration.decide(assignment).allowed for assignment in range(everything, -1, -1))
        return Possibility(allowed=allowed, exact=True)

    def verdict(
        self,
        context: RequestContext,
        **inputs: Unpack[AnalysisInputs],
    ) -> Verdict:
        """What ``context.caller`` may do (``context.action`` on ``context.resource``) under these policies."""
        enumeration = self._enumeration(context, **inputs)
        order, decide = enumeration.order, enumeration.decide
        if not order:
            return _definite(decide(0))
        if len(order) > self.max_facts:
            everything, nothing = decide((1 << len(order)) - 1), decide(0)
            if everything.allowed and not nothing.allowed:
                facts = tuple(self._facts[fact].holds for fact in order)
                return Verdict(Access.CONDITIONAL, ways=(Way(facts, Route.of(everything)),), exact=False)
            return dataclasses.replace(_definite(nothing), exact=False)
        decisions = {assignment: decide(assignment) for assignment in range(1 << len(order))}
        allowing = [assignment for assignment, decision in decisions.items() if decision.allowed]
        if not allowing:
            return _definite(decisions[0])
        if len(allowing) == len(decisions):
            return _definite(decisions[0])
        ways = []
        for mask, bits in _minimal_terms(allowing, len(order)):
            facts = tuple(
                self._facts[fact].text(bool(bits >> bit & 1))
                for bit, fact in enumerate(order)
                if mask >> bit & 1
            )
            ways.append(Way(facts, Route.of(decisions[bits])))
        return Verdict(Access.CONDITIONAL, ways=tuple(ways))


def _constraints_matter(grant: Grant, operation: str) -> bool:
    constraints = grant.constraints
    if constraints is None:
        return False
    if constraints.source_arn is not None and operation != "retiregrant":
        return True
    has_context = constraints.equals_pairs is not None or constraints.subset_pairs is not None
    return has_context and operation in ENCRYPTION_CONTEXT_OPERATIONS


def _definite(decision: Decision) -> Verdict:
    if decision.allowed:
        return Verdict(Access.ALLOWED, route=Route.of(decision), explanation=decision.explanation())
    return Verdict(Access.DENIED, explanation=decision.explanation())


def _minimal_terms(minterms: Sequence[int], width: int) -> list[tuple[int, int]]:
    """A small cover of the minterms by prime implicants, as (mask of the bits that matter, their values);
    the values of the other bits are 0, so ``bits`` is itself one of the minterms."""
    terms = {(((1 << width) - 1), term) for term in minterms}
    primes: set[tuple[int, int]] = set()
    while terms:
        merged: set[tuple[int, int]] = set()
        used: set[tuple[int, int]] = set()
        ordered = sorted(terms)
        for index, (mask_a, bits_a) in enumerate(ordered):
            for mask_b, bits_b in ordered[index + 1 :]:
                difference = bits_a ^ bits_b
                if mask_a == mask_b and difference & (difference - 1) == 0 and difference:
                    merged.add((mask_a & ~difference, bits_a & ~difference))
                    used.update({(mask_a, bits_a), (mask_b, bits_b)})
        primes |= terms - used
        terms = merged
    remaining = set(minterms)
    cover: list[tuple[int, int]] = []
    while remaining:
        # The implicant covering most of what is left; ties go to the shortest, then the lowest.
        mask, bits = max(
            primes,
            key=lambda term: (
                sum(1 for m in remaining if m & term[0] == term[1]),
                -bin(term[0]).count("1"),
                -term[0],
                -term[1],
            ),
        )
        cover.append((mask, bits))
        remaining = {m for m in remaining if m & mask != bits}
    return sorted(cover, key=lambda term: (bin(term[0]).count("1"), term[0], term[1]))

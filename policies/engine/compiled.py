"""Compiled policies: statements with precompiled matchers, indexed by action.

``compile_policy(policy)`` turns a parsed ``Policy`` into a ``CompiledPolicy``: action patterns lower-cased and
compiled once (plain names in a set, wildcards in one regex), resource patterns compiled with IAM's ARN rules,
principals as sets, conditions as ``CompiledCondition`` objects, and policy variables pre-split into templates.
``statements_for(action)`` returns the Deny and Allow statements whose Action/NotAction covers an action,
computed once per action and remembered, so a decision looks only at statements that can apply.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .conditions import CompiledCondition
from .document import Effect, Policy, PolicyKind, PrincipalBlock, Statement
from .explain import StatementRef
from .matching import Dialect, GlobSet, compile_glob_set
from .principals import DIRECT, Caller, PrincipalSet
from .sealed import Sealed
from .values import ContextValue
from .variables import Template, parse_template

_MAX_REMEMBERED = 512


@dataclass(frozen=True, slots=True)
class ResourceMatcher:
    """A compiled ``Resource``/``NotResource``: static patterns plus policy-variable templates."""

    static: GlobSet
    templates: tuple[Template, ...]

    def matches(self, resource: str, values: Mapping[str, ContextValue]) -> bool:
        if self.static.matches(resource):
            return True
        for template in self.templates:
            regex = template.render_regex(values, Dialect.RESOURCE_ARN)
            if regex is not None and regex.fullmatch(resource) is not None:
                return True
        return False


def _resource_matcher(patterns: tuple[str, ...], variables: bool) -> ResourceMatcher:
    static: list[str] = []
    templates: list[Template] = []
    for pattern in patterns:
        template = parse_template(pattern) if variables else None
        if template is None:
            static.append(pattern)
        else:
            templates.append(template)
    return ResourceMatcher(static=compile_glob_set(static, Dialect.RESOURCE_ARN), templates=tuple(templates))


def _names_caller(caller: Caller) -> int:
    return DIRECT


def _principal_set(block: PrincipalBlock) -> PrincipalSet:
    return PrincipalSet.build(
        everyone=block.everyone, aws=block.aws, services=block.service, federated=block.federated
    )


class CompiledStatement(Sealed):
    """One statement, ready to test against a request.

    The evaluator reads the attributes directly: ``principal_match(caller)``, then ``any_resource`` or
    ``resource_matches(...)``, then each of ``checks`` (condition closures) in turn.
    """

    __slots__ = (
        "_refs",
        "_resource_memo",
        "actions",
        "allow",
        "any_resource",
        "checks",
        "conditions",
        "inert",
        "kind",
        "not_action",
        "not_principal",
        "not_resource",
        "principal",
        "principal_match",
        "resources",
        "source",
    )

    def __init__(self, statement: Statement, *, variables: bool, key_policy: bool) -> None:
        self.source = statement
        self.kind = PolicyKind.KEY if key_policy else PolicyKind.IDENTITY
        self.allow = statement.effect is Effect.ALLOW
        self.inert = statement.inert
        action_patterns = statement.action if statement.action is not None else statement.not_action
        self.not_action = statement.action is None
        self.actions: GlobSet = compile_glob_set(pattern.lower() for pattern in action_patterns or ())
        resource_patterns = statement.resource if statement.resource is not None else statement.not_resource
        self.not_resource = statement.resource is None
        self.resources = _resource_matcher(resource_patterns or (), variables)
        self.any_resource = (
            not self.not_resource and self.resources.static.match_all and not self.resources.templates
        )
        # Resource results depend only on the resource when there are no policy variables: remember them.
        self._resource_memo: dict[str, bool] | None = None if self.resources.templates else {}
        self.principal = _principal_set(statement.principal) if statement.principal is not None else None
        self.not_principal = (
            _principal_set(statement.not_principal) if statement.not_principal is not None else None
        )
        self.conditions = tuple(
            CompiledCondition(clause, variables=variables, key_policy=key_policy)
            for clause in statement.conditions
        )
        self.checks = tuple(condition.check for condition in self.conditions)
        self._refs: dict[str, StatementRef] = {}
        # principal_match(caller) -> DIRECT/ACCOUNT bits; identity-policy statements name the caller directly.
        self.principal_match: Callable[[Caller], int]
        if self.principal is not None:
            self.principal_match = self.principal.match
        elif self.not_principal is not None:
            self.principal_match = self.not_principal.not_match
        else:
            self.principal_match = _names_caller
        self._seal()

    @property
    def index(self) -> int:
        return self.source.index

    @property
    def sid(self) -> str | None:
        return self.source.sid

    def ref(self, policy_name: str) -> StatementRef:
        """The (cached) reference to this statement in the policy named ``policy_name``."""
        ref = self._refs.get(policy_name)
        if ref is None:
            ref = StatementRef(self.kind, policy_name, self.source.index, self.source.sid)
            if len(self._refs) < _MAX_REMEMBERED:
                self._refs[policy_name] = ref
        return ref

    def covers_action(self, action_lower: str) -> bool:
        if self.inert:
            return False
        return self.actions.matches(action_lower) is not self.not_action

    def resource_matches(self, resource: str, values: Mapping[str, ContextValue]) -> bool:
        memo = self._resource_memo
        if memo is not None:
            known = memo.get(resource)
            if known is not None:
                return known
        result = self.resources.matches(resource, values) is not self.not_resource
        if memo is not None and len(memo) < _MAX_REMEMBERED:
            memo[resource] = result
        return result

    def conditions_match(self, values: Mapping[str, ContextValue]) -> bool:
        # A plain loop: this is the hot path, and all() over a generator costs a frame per call.
        for check in self.checks:  # noqa: SIM110
            if not check(values):
                return False
        return True

    def applies(self, caller: Caller | None, resource: str, values: Mapping[str, ContextValue]) -> int:
        """The principal bits when the statement applies (principal, resource, conditions), else 0.

        ``caller=None`` skips the principal test (identity policies) and reports ``DIRECT``.
        """
        bits = DIRECT if caller is None else self.principal_match(caller)
        if not bits:
            return 0
        if not self.any_resource and not self.resource_matches(resource, values):
            return 0
        for check in self.checks:
            if not check(values):
                return 0
        return bits


StatementGroups = tuple[tuple[CompiledStatement, ...], tuple[CompiledStatement, ...]]


class CompiledPolicy(Sealed):
    """An immutable compiled policy. ``statements_for(action_lower)`` gives (denies, allows) covering the action."""

    __slots__ = ("_by_action", "action_index", "digest", "kind", "policy", "statements")

    def __init__(self, policy: Policy, digest: str | None = None) -> None:
        self.policy = policy
        self.kind = policy.kind
        self.digest = digest
        key_policy = policy.kind is PolicyKind.KEY
        self.statements = tuple(
            CompiledStatement(statement, variables=policy.supports_variables, key_policy=key_policy)
            for statement in policy.statements
        )
        self._by_action: dict[str, StatementGroups] = {}
        # Read-only for callers: the remembered (denies, allows) per lower-cased action.
        self.action_index = self._by_action
        self._seal()

    def statements_for(self, action_lower: str) -> StatementGroups:
        groups = self._by_action.get(action_lower)
        if groups is None:
            covering = [statement for statement in self.statements if statement.covers_action(action_lower)]
            groups = (
                tuple(statement for statement in covering if not statement.allow),
                tuple(statement for statement in covering if statement.allow),
            )
            if len(self._by_action) < _MAX_REMEMBERED:
                self._by_action[action_lower] = groups
        return groups

    def __repr__(self) -> str:
        return f"CompiledPolicy(kind={self.kind.value!r}, statements={len(self.statements)}, digest={self.digest!r})"


def compile_policy(policy: Policy, digest: str | None = None) -> CompiledPolicy:
    """Compile a parsed policy (drafts included); use cache.compile_key_policy for stored texts."""
    return CompiledPolicy(policy, digest)

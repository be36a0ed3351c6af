"""Condition operators (spec §7.5): parsing, validation and compiled evaluation.

Semantics, as IAM has them:

* A condition block is true when every operator is true; an operator is true when every key in it is true; a key
  is true when the request value matches *any* of the policy values. A negated operator (``StringNotEquals``,
  ``NotIpAddress``, ``ArnNotLike``, ...) is true when the request value matches *none* of them.
* A key absent from the request makes a positive operator false and a negated operator true; ``...IfExists``
  makes any operator true on an absent key. ``Null`` tests presence: ``true`` means absent. An empty multivalued
  key counts as absent.
* ``ForAnyValue:`` is true when at least one request value satisfies the operator (false on an absent or empty
  key); ``ForAllValues:`` when every request value does (true on an absent or empty key).
* Condition-key names are case-insensitive (including the ``<key>`` of ``kms:EncryptionContext:<key>``).

Validation rejects an unknown operator, a value the operator cannot read (``NumericEquals: "ten"``), a multivalued
key (``kms:EncryptionContextKeys``, ``kms:GrantOperations``, ``aws:TagKeys``, ...) used without a set operator,
and ``ForAllValues:`` on ``kms:EncryptionContext:<key>``.
"""

from __future__ import annotations

import ipaddress
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from functools import lru_cache

from .matching import Dialect, GlobSet, compile_glob_set
from .sealed import Sealed
from .values import (
    ContextValue,
    Scalar,
    decode_base64,
    scalar_to_bool_text,
    scalar_to_bytes,
    scalar_to_epoch,
    scalar_to_float,
    scalar_to_str,
)
from .variables import Template, parse_template


class Family(Enum):
    STRING = "String"
    STRING_IGNORE_CASE = "StringIgnoreCase"
    STRING_LIKE = "StringLike"
    NUMERIC = "Numeric"
    DATE = "Date"
    BOOL = "Bool"
    BINARY = "Binary"
    IP = "IpAddress"
    ARN = "Arn"
    NULL = "Null"


class SetOperator(StrEnum):
    FOR_ANY_VALUE = "ForAnyValue"
    FOR_ALL_VALUES = "ForAllValues"


@dataclass(frozen=True, slots=True)
class OperatorSpec:
    """A base condition operator: its canonical name, family, whether it is negated, and its comparison."""

    name: str
    family: Family
    negated: bool = False
    comparison: str = "eq"


def _specs() -> dict[str, OperatorSpec]:
    specs = [
        OperatorSpec("StringEquals", Family.STRING),
        OperatorSpec("StringNotEquals", Family.STRING, negated=True),
        OperatorSpec("StringEqualsIgnoreCase", Family.STRING_IGNORE_CASE),
        OperatorSpec("StringNotEqualsIgnoreCase", Family.STRING_IGNORE_CASE, negated=True),
        OperatorSpec("StringLike", Family.STRING_LIKE),
        OperatorSpec("StringNotLike", Family.STRING_LIKE, negated=True),
        OperatorSpec("Bool", Family.BOOL),
        OperatorSpec("BinaryEquals", Family.BINARY),
        OperatorSpec("IpAddress", Family.IP),
        OperatorSpec("NotIpAddress", Family.IP, negated=True),
        OperatorSpec("ArnEquals", Family.ARN),
        OperatorSpec("ArnLike", Family.ARN),
        OperatorSpec("ArnNotEquals", Family.ARN, negated=True),
        OperatorSpec("ArnNotLike", Family.ARN, negated=True),
        OperatorSpec("Null", Family.NULL),
    ]
    for family, prefix in ((Family.NUMERIC, "Numeric"), (Family.DATE, "Date")):
        specs += [
            OperatorSpec(f"{prefix}Equals", family),
            OperatorSpec(f"{prefix}NotEquals", family, negated=True),
            OperatorSpec(f"{prefix}LessThan", family, comparison="lt"),
            OperatorSpec(f"{prefix}LessThanEquals", family, comparison="le"),
            OperatorSpec(f"{prefix}GreaterThan", family, comparison="gt"),
            OperatorSpec(f"{prefix}GreaterThanEquals", family, comparison="ge"),
        ]
    return {spec.name.lower(): spec for spec in specs}


BASE_OPERATORS: Mapping[str, OperatorSpec] = _specs()

# Condition keys that carry a set of values (spec §7.6 "AS" and the multivalued global keys).
MULTIVALUED_KEYS = frozenset(
    {
        "kms:encryptioncontextkeys",
        "kms:grantoperations",
        "kms:resourcealiases",
        "aws:tagkeys",
        "aws:principalorgpaths",
        "aws:calledvia",
        "aws:principalservicenameslist",
    }
)
ENCRYPTION_CONTEXT_PREFIX = "kms:encryptioncontext:"
# kms:ResourceAliases is evaluated in IAM policies only; a key policy sees it as absent (spec §7.6).
IDENTITY_POLICY_ONLY_KEYS = frozenset({"kms:resourcealiases"})

_CONDITION_KEY = re.compile(r"[A-Za-z0-9_-]+:\S.*", re.DOTALL)


@dataclass(frozen=True, slots=True)
class ParsedOperator:
    """A condition operator as written: base operator plus optional set operator and ``IfExists``."""

    written: str
    spec: OperatorSpec
    set_operator: SetOperator | None
    if_exists: bool

    @property
    def canonical(self) -> str:
        prefix = f"{self.set_operator}:" if self.set_operator else ""
        return f"{prefix}{self.spec.name}{'IfExists' if self.if_exists else ''}"


def parse_operator(name: str) -> ParsedOperator | None:
    """Read ``[ForAnyValue:|ForAllValues:]<Operator>[IfExists]`` (case-insensitive); ``None`` if unknown."""
    rest = name
    set_operator: SetOperator | None = None
    lowered = name.lower()
    for candidate in SetOperator:
        prefix = f"{candidate.value.lower()}:"
        if lowered.startswith(prefix):
            set_operator = candidate
            rest = name[len(prefix) :]
            break
    base = rest.lower()
    if_exists = False
    spec = BASE_OPERATORS.get(base)
    if spec is None and base.endswith("ifexists"):
        spec = BASE_OPERATORS.get(base[: -len("ifexists")])
        if_exists = True
    if spec is None:
        return None
    if spec.family is Family.NULL and (if_exists or set_operator is not None):
        return None
    return ParsedOperator(written=name, spec=spec, set_operator=set_operator, if_exists=if_exists)


ConditionLiteral = str | bool | int | float


@dataclass(frozen=True, slots=True)
class ConditionClause:
    """One ``operator: {key: values}`` pair of a statement's Condition."""

    operator: ParsedOperator
    key: str
    values: tuple[ConditionLiteral, ...]

    @property
    def key_lower(self) -> str:
        return self.key.lower()


def _valid_ip(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        return False
    return True


_VALUE_CHECKS: dict[Family, Callable[[object], bool]] = {
    Family.NUMERIC: lambda value: scalar_to_float(value) is not None,
    Family.DATE: lambda value: scalar_to_epoch(value) is not None,
    Family.BOOL: lambda value: scalar_to_bool_text(value) is not None,
    Family.NULL: lambda value: scalar_to_bool_text(value) is not None,
    Family.BINARY: lambda value: isinstance(value, str) and decode_base64(value) is not None,
    Family.IP: _valid_ip,
}


def check_condition_key(key: str) -> str | None:
    """An error message when ``key`` is not ``vendor:name``."""
    if _CONDITION_KEY.fullmatch(key) is None:
        return "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
    return None


def check_clause(clause: ConditionClause) -> str | None:
    """An error message (without location) when the clause breaks a validation rule, else ``None``."""
    op = clause.operator
    key = clause.key_lower
    if key.startswith(ENCRYPTION_CONTEXT_PREFIX) and op.set_operator is SetOperator.FOR_ALL_VALUES:
        return (
            f"OverlyPermissiveCondition:EncryptionContext: '{op.written}' uses ForAllValues with the single-valued "
            f"condition key '{clause.key}'; use no set operator, or ForAnyValue."
        )
    if key in MULTIVALUED_KEYS and op.set_operator is None and op.spec.family is not Family.NULL:
        return (
            f"Condition key '{clause.key}' is multivalued: use it with ForAnyValue: or ForAllValues: "
            f"(operator '{op.written}')."
        )
    check = _VALUE_CHECKS.get(op.spec.family)
    if check is not None:
        for value in clause.values:
            if not check(value):
                return (
                    f"Invalid value {value!r} for condition operator '{op.written}' and key '{clause.key}'."
                )
    return None


# ---------------------------------------------------------------------------------------------------------------
# Compiled evaluation

Test = Callable[[Scalar, Mapping[str, ContextValue]], bool]
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "eq": operator.eq,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=4096)
def _parse_ip(text: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _split_templates(
    values: tuple[ConditionLiteral, ...], variables: bool
) -> tuple[list[str], list[Template]]:
    static: list[str] = []
    templates: list[Template] = []
    for value in values:
        text = scalar_to_str(value)
        if text is None:
            continue
        template = parse_template(text) if variables else None
        if template is None:
            static.append(text)
        else:
            templates.append(template)
    return static, templates


def _string_test(values: tuple[ConditionLiteral, ...], variables: bool, fold: bool) -> Test:
    static_list, templates = _split_templates(values, variables)
    static = frozenset(text.lower() for text in static_list) if fold else frozenset(static_list)

    def test(value: Scalar, context: Mapping[str, ContextValue]) -> bool:
        text = value if type(value) is str else scalar_to_str(value)
        if text is None:
            return False
        if fold:
            text = text.lower()
        if text in static:
            return True
        for template in templates:
            rendered = template.render_literal(context)
            if rendered is not None and (rendered.lower() if fold else rendered) == text:
                return True
        return False

    return test


def _pattern_test(values: tuple[ConditionLiteral, ...], variables: bool, dialect: Dialect) -> Test:
    static_list, templates = _split_templates(values, variables)
    static: GlobSet = compile_glob_set(static_list, dialect)

    def test(value: Scalar, context: Mapping[str, ContextValue]) -> bool:
        text = value if type(value) is str else scalar_to_str(value)
        if text is None:
            return False
        if static.matches(text):
            return True
        for template in templates:
            regex = template.render_regex(context, dialect)
            if regex is not None and regex.fullmatch(text) is not None:
                return True
        return False

    return test


def _ordered_test(
    numbers: list[float], compare: Callable[[float, float], bool], convert: Callable[[object], float | None]
) -> Test:
    def test(value: Scalar, context: Mapping[str, ContextValue]) -> bool:
        number = convert(value)
        if number is None:
            return False
        return any(compare(number, bound) for bound in numbers)

    return test


def _bool_test(values: tuple[ConditionLiteral, ...]) -> Test:
    accepted = frozenset(text for text in map(scalar_to_bool_text, values) if text is not None)

    def test(value: Scalar, context: Mapping[str, ContextValue]) -> bool:
        return scalar_to_bool_text(value) in accepted

    return test


def _binary_test(values: tuple[ConditionLiteral, ...]) -> Test:
    accepted = frozenset(
        decoded for decoded in (decode_base64(v) for v in values if isinstance(v, str)) if decoded is not None
    )

    def test(value: Scalar, context: Mapping[str, ContextValue]) -> bool:
        return scalar_to_bytes(value) in accepted

    return test


def _ip_test(values: tuple[ConditionLiteral, ...]) -> Test:
    networks: list[IpNetwork] = [
        ipaddress.ip_network(value.strip(), strict=False) for value in values if isinstance(value, str)
    ]

    def test(value: Scalar, context: Mapping[str, ContextValue]) -> bool:
        if not isinstance(value, str):
            return False
        address = _parse_ip(value)
        if address is None:
            return False
        return any(address.version == network.version and address in network for network in networks)

    return test


def _build_test(clause: ConditionClause, variables: bool) -> Test:
    spec = clause.operator.spec
    family = spec.family
    values = clause.values
    if family is Family.STRING:
        return _string_test(values, variables, fold=False)
    if family is Family.STRING_IGNORE_CASE:
        return _string_test(values, variables, fold=True)
    if family is Family.STRING_LIKE:
        return _pattern_test(values, variables, Dialect.GLOB)
    if family is Family.ARN:
        return _pattern_test(values, variables, Dialect.ARN_LIKE)
    if family is Family.NUMERIC:
        numbers = [n for n in map(scalar_to_float, values) if n is not None]
        return _ordered_test(numbers, _COMPARE[spec.comparison], scalar_to_float)
    if family is Family.DATE:
        instants = [n for n in map(scalar_to_epoch, values) if n is not None]
        return _ordered_test(instants, _COMPARE[spec.comparison], scalar_to_epoch)
    if family is Family.BOOL:
        return _bool_test(values)
    if family is Family.BINARY:
        return _binary_test(values)
    if family is Family.IP:
        return _ip_test(values)
    raise AssertionError(f"no test for {family}")  # pragma: no cover - Null is handled by the caller


_NONE, _ANY, _ALL = 0, 1, 2
Check = Callable[[Mapping[str, ContextValue]], bool]


class CompiledCondition(Sealed):
    """One condition clause, ready to evaluate against a request's condition values."""

    __slots__ = (
        "_absent_result",
        "_mode",
        "_negated",
        "_null_when_absent",
        "_null_when_present",
        "_test",
        "check",
        "clause",
        "key",
        "never_present",
    )

    def __init__(self, clause: ConditionClause, *, variables: bool, key_policy: bool) -> None:
        op = clause.operator
        self.clause = clause
        self.key = clause.key_lower
        self.never_present = key_policy and self.key in IDENTITY_POLICY_ONLY_KEYS
        self._negated = op.spec.negated
        self._mode = {None: _NONE, SetOperator.FOR_ANY_VALUE: _ANY, SetOperator.FOR_ALL_VALUES: _ALL}[
            op.set_operator
        ]
        if op.if_exists or self._mode == _ALL:
            self._absent_result = True
        elif self._mode == _ANY:
            self._absent_result = False
        else:
            self._absent_result = self._negated
        texts = {scalar_to_bool_text(value) for value in clause.values}
        self._null_when_absent = "true" in texts
        self._null_when_present = "false" in texts
        self._test: Test | None = None if op.spec.family is Family.NULL else _build_test(clause, variables)
        self.check: Check = self._fast_check(variables)
        self._seal()

    def lookup(self, values: Mapping[str, ContextValue]) -> ContextValue | None:
        """The request's value for this key (``None`` when absent, or when this policy may not see it)."""
        if self.never_present:
            return None
        raw = values.get(self.key)
        if raw is None or (type(raw) is tuple and not raw):
            return None
        return raw

    def evaluate(self, values: Mapping[str, ContextValue]) -> bool:
        raw = None if self.never_present else values.get(self.key)
        test = self._test
        if raw is None or (isinstance(raw, tuple) and not raw):
            return self._null_when_absent if test is None else self._absent_result
        if test is None:
            return self._null_when_present
        negated = self._negated
        mode = self._mode
        if mode == _NONE:
            hit = any(test(item, values) for item in raw) if isinstance(raw, tuple) else test(raw, values)
            return hit is not negated
        items = raw if isinstance(raw, tuple) else (raw,)
        if mode == _ANY:
            return any(test(item, values) is not negated for item in items)
        return all(test(item, values) is not negated for item in items)

    def _fast_check(self, variables: bool) -> Check:
        """A closure specialised for the common shapes (one plain string or bool value, no set operator).

        Anything unusual (a missing key, a multivalued value, a policy variable, a set operator) falls back to
        ``evaluate``, so both always agree.
        """
        general = self.evaluate
        op = self.clause.operator
        family = op.spec.family
        key = self.key
        if self.never_present:
            return general
        if op.set_operator is not None:
            return self._fast_set_check(variables)
        if family is Family.NULL:
            when_absent, when_present = self._null_when_absent, self._null_when_present

            def null_check(values: Mapping[str, ContextValue]) -> bool:
                raw = values.get(key)
                if raw is None or (isinstance(raw, tuple) and not raw):
                    return when_absent
                return when_present

            return null_check
        negated = self._negated
        if family is Family.BOOL:
            accepted = {scalar_to_bool_text(value) for value in self.clause.values}
            on_true, on_false = "true" in accepted, "false" in accepted

            def bool_check(values: Mapping[str, ContextValue]) -> bool:
                raw = values.get(key)
                if raw is True:
                    return on_true
                if raw is False:
                    return on_false
                return general(values)

            return bool_check
        if family in (Family.STRING, Family.STRING_IGNORE_CASE):
            static_list, templates = _split_templates(self.clause.values, variables)
            if templates:
                return general
            if family is Family.STRING:
                static = frozenset(static_list)

                def string_check(values: Mapping[str, ContextValue]) -> bool:
                    raw = values.get(key)
                    if isinstance(raw, str):
                        return (raw in static) is not negated
                    return general(values)

                return string_check
            folded = frozenset(text.lower() for text in static_list)

            def folded_check(values: Mapping[str, ContextValue]) -> bool:
                raw = values.get(key)
                if isinstance(raw, str):
                    return (raw.lower() in folded) is not negated
                return general(values)

            return folded_check
        if family in (Family.STRING_LIKE, Family.ARN):
            static_list, templates = _split_templates(self.clause.values, variables)
            if templates:
                return general
            dialect = Dialect.GLOB if family is Family.STRING_LIKE else Dialect.ARN_LIKE
            matches = compile_glob_set(static_list, dialect).matches

            def pattern_check(values: Mapping[str, ContextValue]) -> bool:
                raw = values.get(key)
                if isinstance(raw, str):
                    return matches(raw) is not negated
                return general(values)

            return pattern_check
        return general

    def _fast_set_check(self, variables: bool) -> Check:
        """ForAnyValue/ForAllValues with plain StringEquals values: decide the common outcome with one set
        operation (a hit for ForAnyValue, full coverage for ForAllValues), else fall back to ``evaluate``."""
        general = self.evaluate
        op = self.clause.operator
        if op.spec.family is not Family.STRING or op.spec.negated:
            return general
        static_list, templates = _split_templates(self.clause.values, variables)
        if templates:
            return general
        static = frozenset(static_list)
        key = self.key
        if op.set_operator is SetOperator.FOR_ANY_VALUE:

            def any_check(values: Mapping[str, ContextValue]) -> bool:
                raw = values.get(key)
                if isinstance(raw, tuple) and not static.isdisjoint(raw):
                    return True
                return general(values)

            return any_check

        def all_check(values: Mapping[str, ContextValue]) -> bool:
            raw = values.get(key)
            if isinstance(raw, tuple) and static.issuperset(raw):
                return True
            return general(values)

        return all_check

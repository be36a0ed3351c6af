"""Parse and validate key policies and identity (IAM) policies into immutable objects (spec §6.1).

``parse_key_policy`` and ``parse_identity_policy`` take the policy text (``str`` or ``bytes``) and return a
``Policy``, or raise ``MalformedPolicyDocumentException`` (``LimitExceededException`` for a key policy over
32,768 bytes). Nothing else escapes, whatever the input. Messages use AWS's wording where AWS has one and then
say where the problem is, e.g. ``Policy contains a statement with no principal. (statement 2 (Sid "Allow use of
the key"), element Principal)``.

Differences between the two kinds:

* A key policy statement must name a principal (``Principal`` or ``NotPrincipal``); an identity policy statement
  must not. Key policy Sids may contain any characters; identity policy Sids are alphanumeric.
* A key policy statement without ``Action`` or without ``Resource`` is accepted but has no effect (AWS accepts
  it too); ``Policy.warnings`` lists such statements. An identity policy statement needs both.
* Only key policies have the 32 KB limit. IAM's per-entity size quotas are the caller's to enforce.

Both kinds: the text must be 1+ characters from ``\\t \\n \\r \\u0020-\\u00FF`` (the model's pattern), be one JSON
object (duplicate names are refused), have only ``Version``/``Id``/``Statement`` at the top (``Version``
``2012-10-17`` or ``2008-10-17``; policy variables only work in ``2012-10-17``), a non-empty ``Statement`` (one
object or a list), unique Sids, ``Effect`` ``Allow`` or ``Deny``, and each of the pairs ``Principal``/
``NotPrincipal``, ``Action``/``NotAction``, ``Resource``/``NotResource`` at most once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import NoReturn

from .conditions import ConditionClause, ConditionLiteral, check_clause, check_condition_key, parse_operator
from .errors import LimitExceededException, MalformedPolicyDocumentException
from .principals import (
    PrincipalKind,
    is_unique_id,
    is_valid_federated_principal,
    is_valid_service_principal,
    parse_principal_arn,
)

KEY_POLICY_MAX_BYTES = 32_768
SUPPORTED_VERSIONS = ("2012-10-17", "2008-10-17")
VARIABLES_VERSION = "2012-10-17"

NO_PRINCIPAL_MESSAGE = "Policy contains a statement with no principal."
INVALID_PRINCIPALS_MESSAGE = "Policy contains a statement with one or more invalid principals."
PRINCIPAL_IN_IDENTITY_POLICY_MESSAGE = "Policy document should not specify a principal."
SYNTAX_ERROR_MESSAGE = "Syntax errors in policy."
VENDOR_MESSAGE = "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."

_DISALLOWED_CHARACTER = re.compile(r"[^\t\n\r\u0020-\u00ff]")
_IDENTITY_SID = re.compile(r"[0-9A-Za-z]*")
_ACTION = re.compile(r"[A-Za-z0-9_-]+:[A-Za-z0-9_*?-]+")
_TOP_LEVEL = ("Version", "Id", "Statement")
_STATEMENT_ELEMENTS = (
    "Sid",
    "Effect",
    "Principal",
    "NotPrincipal",
    "Action",
    "NotAction",
    "Resource",
    "NotResource",
    "Condition",
)
_PRINCIPAL_TYPES = ("AWS", "Service", "Federated")
_VALID_AWS_PRINCIPAL_KINDS = frozenset(
    {
        PrincipalKind.ACCOUNT,
        PrincipalKind.USER,
        PrincipalKind.ROLE,
        PrincipalKind.ASSUMED_ROLE,
        PrincipalKind.FEDERATED_USER,
    }
)


_Check = Callable[[str, str], None]


class PolicyKind(StrEnum):
    KEY = "key"
    IDENTITY = "identity"


class Effect(StrEnum):
    ALLOW = "Allow"
    DENY = "Deny"


@dataclass(frozen=True, slots=True)
class PrincipalBlock:
    """A ``Principal``/``NotPrincipal`` element; ``everyone`` for ``"*"`` (``{"AWS": "*"}`` keeps ``"*"`` in aws)."""

    everyone: bool = False
    aws: tuple[str, ...] = ()
    service: tuple[str, ...] = ()
    federated: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Statement:
    """One validated statement. ``index`` is its 0-based position; elements absent from the text are ``None``."""

    index: int
    sid: str | None
    effect: Effect
    principal: PrincipalBlock | None = None
    not_principal: PrincipalBlock | None = None
    action: tuple[str, ...] | None = None
    not_action: tuple[str, ...] | None = None
    resource: tuple[str, ...] | None = None
    not_resource: tuple[str, ...] | None = None
    conditions: tuple[ConditionClause, ...] = ()

    @property
    def inert(self) -> bool:
        """True for a statement with no Action/NotAction or no Resource/NotResource: it never applies."""
        no_action = self.action is None and self.not_action is None
        return no_action or (self.resource is None and self.not_resource is None)

    @property
    def label(self) -> str:
        """``'Sid'`` when the statement has a Sid, else ``#N`` (1-based)."""
        return f"'{self.sid}'" if self.sid else f"#{self.index + 1}"


@dataclass(frozen=True, slots=True)
class Policy:
    """A validated policy document."""

    kind: PolicyKind
    version: str | None
    id: str | None
    statements: tuple[Statement, ...]
    size_bytes: int

    @property
    def supports_variables(self) -> bool:
        return self.version == VARIABLES_VERSION

    def named_principals(self) -> tuple[str, ...]:
        """The IAM/STS principal ARNs the policy names (account ids as root ARNs), first-seen order, no ``*``, and
        the unique ids of deleted principals it still names (as written).

        The service layer checks that each exists (AWS refuses a key policy naming a principal that does not
        exist with ``Policy contains a statement with one or more invalid principals.``); a unique id never does.
        """
        seen: dict[str, None] = {}
        for statement in self.statements:
            for block in (statement.principal, statement.not_principal):
                if block is None:
                    continue
                for value in block.aws:
                    parsed = parse_principal_arn(value)
                    if parsed is not None:
                        seen.setdefault(parsed.arn, None)
                    elif is_unique_id(value):
                        seen.setdefault(value, None)
        return tuple(seen)

    def named_services(self) -> tuple[str, ...]:
        """The service principals the policy names."""
        seen: dict[str, None] = {}
        for statement in self.statements:
            for block in (statement.principal, statement.not_principal):
                if block is not None:
                    for value in block.service:
                        seen.setdefault(value, None)
        return tuple(seen)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Human-readable notes on statements that are accepted but can never apply."""
        notes: list[str] = []
        for statement in self.statements:
            if statement.action is None and statement.not_action is None:
                notes.append(f"Statement {statement.label} has no Action or NotAction, so it has no effect.")
            if statement.resource is None and statement.not_resource is None:
                notes.append(
                    f"Statement {statement.label} has no Resource or NotResource, so it has no effect."
                )
        return tuple(notes)


def parse_key_policy(text: str | bytes) -> Policy:
    """Parse and validate a key policy. Raises only ``MalformedPolicyDocumentException``/``LimitExceededException``.

    A deleted principal's unique id (``is_unique_id``) is refused as an invalid principal, as PutKeyPolicy refuses
    it; only a stored policy may keep one (``parse_policy(..., stored=True)``, what ``compile_key_policy`` uses)."""
    return _Parser(PolicyKind.KEY).parse(text)


def parse_identity_policy(text: str | bytes) -> Policy:
    """Parse and validate an identity (IAM) policy. Raises only ``MalformedPolicyDocumentException``."""
    return _Parser(PolicyKind.IDENTITY).parse(text)


def parse_policy(text: str | bytes, kind: PolicyKind, *, stored: bool = False) -> Policy:
    """``parse_key_policy`` or ``parse_identity_policy`` by ``kind``. ``stored``: the text is a key policy as the
    service keeps it, which may name a deleted principal by its unique id (IAM put it there; it matches no
    caller). A text to be written is never parsed so."""
    return _Parser(kind, keep_unique_ids=stored).parse(text)


class _DuplicateName(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _object_pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result: dict[str, object] = {}
    for name, value in pairs:
        if name in result:
            raise _DuplicateName(name)
        result[name] = value
    return result


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def _shorten(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


class _Parser:
    def __init__(self, kind: PolicyKind, *, keep_unique_ids: bool = False) -> None:
        self.kind = kind
        self.keep_unique_ids = keep_unique_ids
        self.index: int | None = None
        self.sid: str | None = None

    # -- errors ---------------------------------------------------------------------------------------------------
    def fail(self, message: str, element: str | None = None, value: object = None) -> NoReturn:
        where: list[str] = []
        if self.index is not None:
            where.append(f"statement {self.index + 1}" + (f' (Sid "{self.sid}")' if self.sid else ""))
        if element is not None:
            where.append(f"element {element}")
        if value is not None:
            where.append(f"value {_shorten(value)!r}")
        full = f"{message} ({', '.join(where)})" if where else message
        raise MalformedPolicyDocumentException(
            full, statement_index=self.index, sid=self.sid, element=element
        )

    # -- text -----------------------------------------------------------------------------------------------------
    def decode(self, text: str | bytes) -> tuple[str, int]:
        if isinstance(text, bytes | bytearray | memoryview):
            raw = bytes(text)
            size = len(raw)
            self.check_size(size)
            try:
                decoded = raw.decode("utf-8")
            except UnicodeDecodeError:
                self.fail("Policy document is not valid UTF-8 text.")
        elif isinstance(text, str):
            decoded = text
            size = len(text.encode("utf-8", "surrogatepass"))
            self.check_size(size)
        else:
            self.fail("Policy document must be text.")
        if not decoded.strip():
            self.fail("Policy document is empty.")
        bad = _DISALLOWED_CHARACTER.search(decoded)
        if bad is not None:
            self.fail(
                f"Policy contains a character that is not allowed: U+{ord(bad.group()):04X} at offset "
                f"{bad.start()} (allowed: tab, newline, carriage return and U+0020 to U+00FF)."
            )
        return decoded, size

    def check_size(self, size: int) -> None:
        if self.kind is PolicyKind.KEY and size > KEY_POLICY_MAX_BYTES:
            raise LimitExceededException(
                f"The key policy is {size} bytes; a key policy may be at most {KEY_POLICY_MAX_BYTES} bytes."
            )

    def load(self, text: str) -> object:
        try:
            return json.loads(text, object_pairs_hook=_object_pairs, parse_constant=_reject_constant)
        except _DuplicateName as duplicate:
            self.fail(f"{SYNTAX_ERROR_MESSAGE} Duplicate element name '{_shorten(duplicate.name)}'.")
        except json.JSONDecodeError as error:
            self.fail(f"{SYNTAX_ERROR_MESSAGE} {error.msg} at line {error.lineno} column {error.colno}.")
        except (ValueError, RecursionError, OverflowError):
            self.fail(f"{SYNTAX_ERROR_MESSAGE} The document is not valid JSON or is nested too deeply.")

    # -- document -------------------------------------------------------------------------------------------------
    def parse(self, text: str | bytes) -> Policy:
        decoded, size = self.decode(text)
        document = self.load(decoded)
        if not isinstance(document, dict):
            self.fail(f"{SYNTAX_ERROR_MESSAGE} The policy must be a JSON object.")
        for name in document:
            if name not in _TOP_LEVEL:
                self.fail(f"Policy document contains an unknown element '{_shorten(name)}'.", element=name)
        version = document.get("Version")
        if version is not None and (not isinstance(version, str) or version not in SUPPORTED_VERSIONS):
            self.fail(
                'The policy failed legacy parsing: Version must be "2012-10-17" or "2008-10-17".',
                element="Version",
                value=version,
            )
        policy_id = document.get("Id")
        if "Id" in document and not isinstance(policy_id, str):
            self.fail("Id must be a string.", element="Id", value=policy_id)
        if "Statement" not in document:
            self.fail("Policy document must contain a Statement.", element="Statement")
        raw_statements = document["Statement"]
        if isinstance(raw_statements, dict):
            raw_statements = [raw_statements]
        if not isinstance(raw_statements, list):
            self.fail("Statement must be an object or a list of objects.", element="Statement")
        if not raw_statements:
            self.fail("Policy document must contain at least one statement.", element="Statement")
        statements = tuple(self.statement(index, raw) for index, raw in enumerate(raw_statements))
        self.index = self.sid = None
        seen: set[str] = set()
        for statement in statements:
            if statement.sid:
                if statement.sid in seen:
                    self.index, self.sid = statement.index, statement.sid
                    self.fail("Statement IDs (SID) in a single policy must be unique.", element="Sid")
                seen.add(statement.sid)
        return Policy(
            kind=self.kind,
            version=version,
            id=policy_id if isinstance(policy_id, str) else None,
            statements=statements,
            size_bytes=size,
        )

    def statement(self, index: int, raw: object) -> Statement:
        self.index, self.sid = index, None
        if not isinstance(raw, dict):
            self.fail("Statement must be a JSON object.", element="Statement")
        sid = raw.get("Sid")
        if "Sid" in raw:
            if not isinstance(sid, str):
                self.fail("Sid must be a string.", element="Sid", value=sid)
            self.sid = sid or None
            if self.kind is PolicyKind.IDENTITY and not _IDENTITY_SID.fullmatch(sid):
                self.fail(
                    "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular "
                    "expression [0-9A-Za-z]*",
                    element="Sid",
                )
        for name in raw:
            if name not in _STATEMENT_ELEMENTS:
                self.fail(f"Statement contains an unknown element '{_shorten(name)}'.", element=name)
        effect = self.effect(raw)
        principal, not_principal = self.principals(raw)
        action, not_action = self.pair(raw, "Action", "NotAction", self.check_action)
        resource, not_resource = self.pair(raw, "Resource", "NotResource", self.check_resource)
        if self.kind is PolicyKind.IDENTITY:
            if action is None and not_action is None:
                self.fail("Policy statement must contain actions.", element="Action")
            if resource is None and not_resource is None:
                self.fail("Policy statement must contain resources.", element="Resource")
        conditions = self.conditions(raw.get("Condition")) if "Condition" in raw else ()
        return Statement(
            index=index,
            sid=self.sid,
            effect=effect,
            principal=principal,
            not_principal=not_principal,
            action=action,
            not_action=not_action,
            resource=resource,
            not_resource=not_resource,
            conditions=conditions,
        )

    def effect(self, raw: dict[str, object]) -> Effect:
        if "Effect" not in raw:
            self.fail("Missing required field Effect.", element="Effect")
        value = raw["Effect"]
        if value == "Allow":
            return Effect.ALLOW
        if value == "Deny":
            return Effect.DENY
        self.fail('Invalid effect: Effect must be "Allow" or "Deny".', element="Effect", value=value)

    # -- principals -----------------------------------------------------------------------------------------------
    def principals(self, raw: dict[str, object]) -> tuple[PrincipalBlock | None, PrincipalBlock | None]:
        has_principal, has_not = "Principal" in raw, "NotPrincipal" in raw
        if self.kind is PolicyKind.IDENTITY:
            if has_principal or has_not:
                element = "Principal" if has_principal else "NotPrincipal"
                self.fail(PRINCIPAL_IN_IDENTITY_POLICY_MESSAGE, element=element)
            return None, None
        if has_principal and has_not:
            self.fail("A statement cannot contain both Principal and NotPrincipal.", element="NotPrincipal")
        if not has_principal and not has_not:
            self.fail(NO_PRINCIPAL_MESSAGE, element="Principal")
        element = "Principal" if has_principal else "NotPrincipal"
        block = self.principal_block(raw[element], element)
        return (block, None) if has_principal else (None, block)

    def principal_block(self, value: object, element: str) -> PrincipalBlock:
        if value == "*":
            return PrincipalBlock(everyone=True)
        if isinstance(value, str):
            self.fail(INVALID_PRINCIPALS_MESSAGE, element=element, value=value)
        if not isinstance(value, dict):
            self.fail(INVALID_PRINCIPALS_MESSAGE, element=element)
        if not value:
            self.fail(NO_PRINCIPAL_MESSAGE, element=element)
        lists: dict[str, tuple[str, ...]] = {}
        for principal_type, entries in value.items():
            if principal_type not in _PRINCIPAL_TYPES:
                self.fail(INVALID_PRINCIPALS_MESSAGE, element=f"{element}.{_shorten(principal_type)}")
            items = entries if isinstance(entries, list) else [entries]
            if not all(isinstance(item, str) for item in items):
                self.fail(INVALID_PRINCIPALS_MESSAGE, element=f"{element}.{principal_type}")
            lists[principal_type] = tuple(str(item) for item in items)
        if not any(lists.values()):
            self.fail(NO_PRINCIPAL_MESSAGE, element=element)
        for item in lists.get("AWS", ()):
            # A stored policy keeps a deleted principal's unique id as IAM left it (it matches no caller); a
            # policy being written may not name one, as it may not name any principal that does not exist.
            if item != "*" and not (self.keep_unique_ids and is_unique_id(item)):
                parsed = parse_principal_arn(item)
                if parsed is None or parsed.kind not in _VALID_AWS_PRINCIPAL_KINDS:
                    self.fail(INVALID_PRINCIPALS_MESSAGE, element=f"{element}.AWS", value=item)
        for item in lists.get("Service", ()):
            if not is_valid_service_principal(item):
                self.fail(INVALID_PRINCIPALS_MESSAGE, element=f"{element}.Service", value=item)
        for item in lists.get("Federated", ()):
            if not is_valid_federated_principal(item):
                self.fail(INVALID_PRINCIPALS_MESSAGE, element=f"{element}.Federated", value=item)
        return PrincipalBlock(
            everyone=False,
            aws=lists.get("AWS", ()),
            service=lists.get("Service", ()),
            federated=lists.get("Federated", ()),
        )

    # -- actions and resources ------------------------------------------------------------------------------------
    def pair(
        self, raw: dict[str, object], name: str, negated: str, check: _Check
    ) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
        if name in raw and negated in raw:
            self.fail(f"A statement cannot contain both {name} and {negated}.", element=negated)
        result: list[tuple[str, ...] | None] = []
        for element in (name, negated):
            if element not in raw:
                result.append(None)
                continue
            values = self.string_list(raw[element], element)
            for value in values:
                check(value, element)
            result.append(values)
        return result[0], result[1]

    def string_list(self, value: object, element: str) -> tuple[str, ...]:
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
            return tuple(str(item) for item in value)
        if isinstance(value, list) and not value:
            self.fail(f"{element} must not be an empty list.", element=element)
        self.fail(f"{element} must be a string or a list of strings.", element=element)

    def check_action(self, value: str, element: str) -> None:
        if value == "*":
            return
        if ":" not in value:
            self.fail(VENDOR_MESSAGE, element=element, value=value)
        if _ACTION.fullmatch(value) is None:
            self.fail(f"Invalid action: '{_shorten(value)}'.", element=element)

    def check_resource(self, value: str, element: str) -> None:
        if value == "*":
            return
        parts = value.split(":", 5)
        # IAM accepts partial ARNs such as "arn:aws:kms:us-east-1:*" (the trailing * runs on across colons).
        if len(parts) < 3 or parts[0] != "arn":
            self.fail(f'Resource {_shorten(value)} must be in ARN format or "*".', element=element)
        service = parts[2]
        if not service or "*" in service or "?" in service:
            self.fail("Resource vendor must be fully qualified and cannot contain regexes.", element=element)

    # -- conditions -----------------------------------------------------------------------------------------------
    def conditions(self, value: object) -> tuple[ConditionClause, ...]:
        if not isinstance(value, dict):
            self.fail("Condition must be a JSON object.", element="Condition")
        clauses: list[ConditionClause] = []
        for operator_name, block in value.items():
            operator = parse_operator(operator_name)
            if operator is None:
                self.fail(f"Invalid Condition type : {_shorten(operator_name)}.", element="Condition")
            if not isinstance(block, dict) or not block:
                self.fail(
                    f"Condition operator '{operator_name}' must map condition keys to values.",
                    element="Condition",
                )
            for key, raw_values in block.items():
                problem = check_condition_key(key)
                if problem is not None:
                    self.fail(problem, element="Condition", value=key)
                clause = ConditionClause(
                    operator=operator, key=key, values=self.condition_values(raw_values, key)
                )
                problem = check_clause(clause)
                if problem is not None:
                    self.fail(problem, element="Condition")
                clauses.append(clause)
        return tuple(clauses)

    def condition_values(self, value: object, key: str) -> tuple[ConditionLiteral, ...]:
        items = value if isinstance(value, list) else [value]
        if not items:
            self.fail(f"Condition key '{_shorten(key)}' has an empty list of values.", element="Condition")
        result: list[ConditionLiteral] = []
        for item in _scalars(items):
            if item is None:
                self.fail(
                    f"Condition values for key '{_shorten(key)}' must be strings, numbers or booleans.",
                    element="Condition",
                )
            result.append(item)
        return tuple(result)


def _scalars(items: list[object]) -> Iterator[ConditionLiteral | None]:
    for item in items:
        yield item if isinstance(item, str | bool | int | float) else None

"""The policy editor's logic: the check of a draft (errors at their line and column, the lockout warning,
findings), and the "people" view of a policy in the console's statement shape.

`key_policy_check(ctx, key=..., document=...)` checks a key policy as PutKeyPolicy would (the engine's parser, the
principals it names exist, the lockout safety check for the caller) without saving it: a missing principal of
the caller's own account is marked where it is named, another account's only as AWS says it (which one is not
told); `identity_policy_check` does the same for an identity policy. Both return

    {"valid": bool, "errors": [{"line", "column", "message"}], "lockout": str,
     "findings": [{"id", "severity", "title", "detail", "fix", "statement_index", "sid", "principals", "line"}]}

`policy_people(document)` reads the key administrators and key users of a policy the console's wizard wrote
(keys/default_policies.console_key_policy), and `people_changed(...)` gives the document with one of them added
or removed; the result goes through the same review and save as an edit in the JSON view.

The engine says *which* statement and element is wrong (`EngineError.statement_index` / `.element`); `locate`
finds where that is in the submitted text with a small JSON walker that remembers offsets, so the editor marks
the right line even when the policy is formatted in an unusual way.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from django.http import HttpRequest

from keys.default_policies import console_key_policy
from keys.models import Key
from keys.selectors import key_tags
from keys.services.key_policy import (
    check_no_lockout,
    missing_principal_message,
    missing_principals,
    validate_key_policy,
)
from kmsconsole.core import errors
from kmsconsole.operations import OperationContext
from policies import engine
from policies.engine.document import SYNTAX_ERROR_MESSAGE

_OFFSET = re.compile(r"at offset (\d+)")
_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


@dataclass
class Node:
    """A JSON value with its offset; objects keep their members' name offsets, arrays their items."""

    start: int
    end: int = 0
    value: Any = None
    members: dict[str, tuple[int, Node]] = field(default_factory=dict)
    items: list[Node] = field(default_factory=list)

    def member(self, name: str) -> tuple[int, Node] | None:
        return self.members.get(name)


class _Walker:
    """Reads JSON text into Nodes. Only used on text the engine has already decoded (or nearly: duplicate names
    are kept, the first repeated name is remembered)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.duplicate: int | None = None

    def skip(self, index: int) -> int:
        while index < len(self.text) and self.text[index] in _WHITESPACE:
            index += 1
        return index

    def value(self, index: int) -> Node:
        index = self.skip(index)
        char = self.text[index : index + 1]
        if char == "{":
            return self.object(index)
        if char == "[":
            return self.array(index)
        value, end = _DECODER.raw_decode(self.text, index)
        return Node(start=index, end=end, value=value)

    def object(self, start: int) -> Node:
        node = Node(start=start)
        index = self.skip(start + 1)
        if self.text[index] == "}":
            node.end = index + 1
            return node
        while True:
            index = self.skip(index)
            name, after = json.decoder.scanstring(self.text, index + 1)  # type: ignore[attr-defined]
            colon = self.skip(after)
            child = self.value(colon + 1)
            if name in node.members and self.duplicate is None:
                self.duplicate = index
            node.members.setdefault(name, (index, child))
            index = self.skip(child.end)
            if self.text[index] == "}":
                node.end = index + 1
                return node
            index += 1  # the comma

    def array(self, start: int) -> Node:
        node = Node(start=start)
        index = self.skip(start + 1)
        if self.text[index] == "]":
            node.end = index + 1
            return node
        while True:
            child = self.value(index)
            node.items.append(child)
            index = self.skip(child.end)
            if self.text[index] == "]":
                node.end = index + 1
                return node
            index += 1


def parse_positions(text: str) -> tuple[Node | None, int | None]:
    """The document's Node tree and the offset of its first duplicate name; (None, None) if it cannot be read."""
    walker = _Walker(text)
    try:
        return walker.value(0), walker.duplicate
    except (ValueError, IndexError, RecursionError):
        return None, None


def line_column(text: str, offset: int) -> tuple[int, int]:
    """1-based line and column of `offset`, as json.JSONDecodeError counts them."""
    offset = max(0, min(offset, len(text)))
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def statement_node(root: Node | None, index: int) -> Node | None:
    """The Node of statement `index` (a lone Statement object is statement 0)."""
    found = root.member("Statement") if root is not None else None
    if found is None:
        return None
    statements = found[1]
    if statements.items:
        return statements.items[index] if index < len(statements.items) else None
    return statements if index == 0 and statements.members else None


def _element_offset(node: Node, element: str, message: str) -> int:
    """Offset of `element` ("Principal.AWS") inside `node`, down to the quoted value the message names."""
    offset = node.start
    current: Node | None = node
    for name in element.split("."):
        found = current.member(name) if current is not None else None
        if found is None:
            return offset
        offset, current = found
    if current is not None:
        for item in current.items or [current]:
            if isinstance(item.value, str) and len(item.value) <= 120 and f"'{item.value}'" in message:
                return item.start
    return offset


def locate(text: str, exc: engine.EngineError) -> tuple[int, int]:
    """Line and column in `text` of the problem an engine error describes."""
    match = _OFFSET.search(exc.message)
    if match is not None:
        return line_column(text, int(match.group(1)))
    if exc.message.startswith(SYNTAX_ERROR_MESSAGE):
        try:
            json.loads(text)
        except json.JSONDecodeError as error:
            return error.lineno, error.colno
        except (ValueError, RecursionError):
            return 1, 1
    root, duplicate = parse_positions(text)
    if duplicate is not None and "Duplicate element name" in exc.message:
        return line_column(text, duplicate)
    if root is None:
        return 1, 1
    if exc.statement_index is not None:
        node = statement_node(root, exc.statement_index)
        if node is None:
            return line_column(text, root.start)
        element = exc.element if exc.element != "Statement" else None
        return line_column(text, _element_offset(node, element, exc.message) if element else node.start)
    if exc.element:
        return line_column(text, _element_offset(root, exc.element, exc.message))
    return line_column(text, root.start)


def _error(line_col: tuple[int, int], message: str) -> dict[str, Any]:
    return {"line": line_col[0], "column": line_col[1], "message": message}


def _missing_principal_errors(
    ctx: OperationContext, text: str, policy: engine.Policy, *, stored: bool
) -> list[dict[str, Any]]:
    """One error per principal of the caller's own account that does not exist, at each place it is named; one
    error, in AWS's words and at the top of the document, when a principal of another account does not exist,
    whichever and however many (`keys.services.key_policy.missing_principals`, one query per kind). `stored`: a
    version being restored, whose deleted principals' unique ids are kept."""
    root, _ = parse_positions(text)
    named = [
        (statement, element, value)
        for statement in policy.statements
        for element, block in (("Principal", statement.principal), ("NotPrincipal", statement.not_principal))
        if block is not None
        for value in block.aws
        if value != "*" and not (stored and engine.is_unique_id(value))
    ]
    missing = missing_principals(ctx, [value for _, _, value in named])
    problems: list[dict[str, Any]] = []
    for statement, element, value in named:
        if value not in missing.here:
            continue
        node = statement_node(root, statement.index)
        offset = _element_offset(node, f"{element}.AWS", f"'{value}'") if node is not None else 0
        problems.append(
            _error(
                line_column(text, offset),
                missing_principal_message([value], f"statement {statement.label}"),
            )
        )
    if missing.elsewhere:  # AWS's words, naming none, at the same place whichever is missing
        top = line_column(text, root.start if root is not None else 0)
        problems.append(_error(top, engine.INVALID_PRINCIPALS_MESSAGE))
    return problems


def _finding_dicts(text: str, findings: tuple[engine.Finding, ...]) -> list[dict[str, Any]]:
    root, _ = parse_positions(text)
    result = []
    for finding in findings:
        data = finding.to_dict()
        node = statement_node(root, finding.statement_index) if finding.statement_index is not None else None
        data["line"] = line_column(text, node.start)[0] if node is not None else None
        result.append(data)
    return result


def _result(
    errors_found: list[dict[str, Any]], *, lockout: str = "", findings: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {"valid": not errors_found, "errors": errors_found, "lockout": lockout, "findings": findings or []}


def key_findings(key: Key, document: str) -> list[dict[str, Any]]:
    """The engine's findings for `document` as the policy of `key` (none when it does not parse)."""
    try:
        compiled = engine.compile_key_policy(document)
    except engine.EngineError:
        return []
    found = engine.key_policy_findings(
        compiled,
        account_id=key.account.account_id,
        key_spec=key.key_spec,
        key_usage=key.key_usage,
        key_arn=key.arn,
    )
    return _finding_dicts(document, found)


def findings_only(key: Key, document: str) -> dict[str, Any]:
    """A stored document's findings, for a page that shows it to a reader who may not check it (which would tell
    which principals exist, and whether the caller could lock itself out): no errors, no lockout."""
    return _result([], findings=key_findings(key, document))


def key_policy_check(
    ctx: OperationContext, *, key: Key, document: str, stored: bool = False
) -> dict[str, Any]:
    """Check a draft key policy for `key` as PutKeyPolicy would, as the caller of `ctx`, without saving it.
    `stored`: the document a restore would write, which may keep a deleted principal's unique id (as
    `keys.services.policy_restore` writes it)."""
    try:
        policy = engine.parse_policy(document, engine.PolicyKind.KEY, stored=stored)
    except engine.EngineError as exc:
        return _result([_error(locate(document, exc), exc.message)])
    findings = key_findings(key, document)
    try:
        validate_key_policy(ctx, document=document, key=key, bypass_lockout=True, lock=False, stored=stored)
    except errors.KmsError as exc:
        problems = _missing_principal_errors(ctx, document, policy, stored=stored) or [
            _error((1, 1), exc.message)
        ]
        return _result(problems, findings=findings)
    lockout = ""
    try:
        check_no_lockout(
            ctx, new_policy=engine.compile_key_policy(document), key=key, resource_tags=key_tags(key)
        )
    except errors.KmsError as exc:
        lockout = exc.message
    return _result([], lockout=lockout, findings=findings)


def identity_policy_check(document: str) -> dict[str, Any]:
    """Check a draft identity (IAM) policy with the engine's parser; no principal or lockout check applies."""
    try:
        policy = engine.parse_identity_policy(document)
    except engine.EngineError as exc:
        return _result([_error(locate(document, exc), exc.message)])
    return _result([], findings=_finding_dicts(document, engine.identity_policy_findings(policy)))


# -- the people view ---------------------------------------------------------------------------------------------

ROOT_SID = "Enable IAM User Permissions"
ADMINISTRATORS_SID = "Allow access for Key Administrators"
USE_SID = "Allow use of the key"
ATTACHMENT_SID = "Allow attachment of persistent resources"
# The console's statements, in the order its wizard writes them; key users are named in the last two.
CONSOLE_SIDS = (ROOT_SID, ADMINISTRATORS_SID, USE_SID, ATTACHMENT_SID)
ROLE_SIDS = {"administrator": (ADMINISTRATORS_SID,), "user": (USE_SID, ATTACHMENT_SID)}
# ARNs that are never principals of a key policy (groups, identity providers).
NOT_PRINCIPALS = frozenset(
    {engine.PrincipalKind.GROUP, engine.PrincipalKind.SAML_PROVIDER, engine.PrincipalKind.OIDC_PROVIDER}
)


@dataclass(frozen=True)
class People:
    """Who a console-shaped key policy names: key administrators and key users (ARNs, as written)."""

    administrators: tuple[str, ...]
    users: tuple[str, ...]

    def of(self, role: str) -> tuple[str, ...]:
        return self.administrators if role == "administrator" else self.users


def _aws_principals(statement: dict[str, Any]) -> tuple[str, ...] | None:
    principal = statement.get("Principal")
    if not isinstance(principal, dict) or set(principal) != {"AWS"}:
        return None
    value = principal["AWS"]
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(item, str) for item in values):
        return None
    return tuple(values)


def _console_statements(document: str) -> tuple[dict[str, Any], dict[str, dict[str, Any]]] | None:
    """The document and its statements by Sid, when every statement is one of the console's; else None."""
    try:
        data = json.loads(document)
    except (ValueError, RecursionError):
        return None
    statements = data.get("Statement") if isinstance(data, dict) else None
    if not isinstance(statements, list) or not statements:
        return None
    by_sid: dict[str, dict[str, Any]] = {}
    for statement in statements:
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            return None
        sid = statement.get("Sid")
        if sid not in CONSOLE_SIDS or sid in by_sid or _aws_principals(statement) is None:
            return None
        by_sid[sid] = statement
    return data, by_sid


def policy_people(document: str) -> People | None:
    """The key administrators and key users of a policy in the console's statement shape; None for any other
    shape (then only the JSON view can show it faithfully)."""
    found = _console_statements(document)
    if found is None:
        return None
    _, by_sid = found
    named = {sid: _aws_principals(statement) or () for sid, statement in by_sid.items()}
    if USE_SID in named and ATTACHMENT_SID in named and set(named[USE_SID]) != set(named[ATTACHMENT_SID]):
        return None
    return People(
        administrators=named.get(ADMINISTRATORS_SID, ()),
        users=named.get(USE_SID, named.get(ATTACHMENT_SID, ())),
    )


class PeopleChangeError(ValueError):
    """A people-view change that cannot be made (the message says why, for the page)."""


def principal_for_policy(text: str) -> str:
    """A principal typed or chosen in the people view, as the policy should name it; PeopleChangeError if it is
    not a user, role, session, federated user or account."""
    value = text.strip()
    parsed = engine.parse_principal_arn(value)
    if parsed is None or parsed.kind in NOT_PRINCIPALS:
        raise PeopleChangeError(
            "Enter the ARN of a user, role or account, such as arn:aws:iam::111122223333:user/alice "
            "(groups cannot be principals)."
        )
    return parsed.arn if parsed.kind is engine.PrincipalKind.ACCOUNT else value


def people_changed(document: str, *, key: Key, role: str, principal: str, add: bool) -> str:
    """`document` (console-shaped) with `principal` added to or removed from the key administrators or key users.
    Statements that would name no one are removed; missing ones come from the console's own template."""
    found = _console_statements(document)
    people = policy_people(document)
    if found is None or people is None or role not in ROLE_SIDS:
        raise PeopleChangeError(
            "This policy is not in the console's default shape: edit it in the JSON view."
        )
    data, by_sid = found
    current = list(people.of(role))
    if add:
        if principal in current:
            raise PeopleChangeError(f"{principal} is already a key {role}.")
        current.append(principal)
    else:
        if principal not in current:
            raise PeopleChangeError(f"{principal} is not a key {role}.")
        current.remove(principal)
    template = json.loads(
        console_key_policy(
            account_id=key.account.account_id,
            key_spec=key.key_spec,
            key_usage=key.key_usage,
            administrators=current or [principal],
            users=current or [principal],
        )
    )
    templates = {statement["Sid"]: statement for statement in template["Statement"]}
    order = [statement["Sid"] for statement in data["Statement"]]
    for sid in ROLE_SIDS[role]:
        if not current:
            by_sid.pop(sid, None)
        elif sid in by_sid:
            by_sid[sid]["Principal"] = {"AWS": current}
        else:
            # A new statement goes after the console statements that precede it in the wizard's order.
            before = set(CONSOLE_SIDS[: CONSOLE_SIDS.index(sid)])
            position = max((index + 1 for index, name in enumerate(order) if name in before), default=0)
            order.insert(position, sid)
            by_sid[sid] = templates[sid]
    data["Statement"] = [by_sid[sid] for sid in order if sid in by_sid]
    return json.dumps(data, indent=2)


def posted_policy(request: HttpRequest) -> str:
    """The `policy` textarea of a form as the person typed it: browsers send a textarea's line breaks as CRLF
    (HTML's form encoding), which would otherwise be stored in the document and show as changes in diffs."""
    return request.POST.get("policy", "").replace("\r\n", "\n")

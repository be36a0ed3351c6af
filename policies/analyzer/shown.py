"""What a key's access matrix shows to a key owner about other accounts.

A caller of the key's account is shown its own principals and "*" as the analysis finds them, and each other
account as one row (``Account … (its principals)``, its root's ARN). That row is never built from the other
account's real users, roles or identity policies (they are that account's to read: their names, tags and their
policies' conditions would reach the key owner, and a draft key policy conditioned on ``aws:PrincipalArn`` would
let the owner enumerate them a prefix at a time). Instead (``account_principal``) it is analysed as ``"*"`` is: a
principal of that account whose own account's IAM policies allow everything (``STRANGER_POLICY_NAME``): the
account's root, a user and a role session of it, and each principal of it the key policy or a grant names by ARN,
with who the caller is beyond its account (``aws:PrincipalArn``, ``aws:username``, ``aws:userid``,
``aws:PrincipalType``, ``aws:PrincipalTag/*``) unknown (``AccessAnalyzer(principal_unknown=True)``): a condition
on it shows as the key policy's own condition, "allowed only when aws:PrincipalArn …". So the row says what the
key policy and grants give the account, at most, whatever its IAM allows; only the key policy's and grants'
conditions (the owner's own) appear. Actions that do not work across accounts are still refused
(``NOT_ACROSS_ACCOUNTS``).

Which accounts (``named_accounts``): those the key policy names (a principal ARN of it, its root or its account
id; an account id in a condition on ``aws:PrincipalAccount`` or ``kms:CallerAccount``, or in an
``aws:PrincipalArn`` value) and those of the key's grantee and retiring principals; never found from the store's
principals. An account whose row gets nothing is not shown (all are, with `keep_empty`, to compare two matrices).
A refusal of such a row is shown as "not allowed" (or "not available across accounts"), and a route's identity
statement as the audit trail words it for a key owner (``kmsconsole.audit.shown.CALLER_IDENTITY_POLICY``).

The operator (the service-wide view) sees the matrix whole: every account's real principals and their IAM.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

from kmsconsole.audit.shown import CALLER_IDENTITY_POLICY
from policies import arns
from policies.engine.analysis import Access, Route, Verdict, Way, best
from policies.engine.cache import compile_identity_policy
from policies.engine.compiled import CompiledPolicy
from policies.engine.evaluate import IdentityPolicy
from policies.engine.explain import PolicyKind, StatementRef
from policies.engine.grants import Grant
from policies.engine.matrix import (
    ANYONE_SESSION,
    NOT_ACROSS_ACCOUNTS,
    STRANGER_POLICY_NAME,
    AccessMatrix,
    Identity,
    Principal,
    Subject,
)
from policies.engine.principals import Caller, PrincipalKind, is_account_id, parse_principal_arn

NOT_ALLOWED = "not allowed: the key policy and grants do not give the account this"
# Condition keys whose values may name another account.
_ACCOUNT_KEYS = frozenset({"aws:principalaccount", "kms:calleraccount"})
_ARN_ACCOUNT = re.compile(r"^arn:[^:]*:(?:iam|sts)::(\d{12}):")
_EVERYTHING = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'


def _hidden(ref: StatementRef) -> StatementRef:
    return ref if ref.policy_kind is PolicyKind.KEY else ref.hidden(CALLER_IDENTITY_POLICY)


def _route(route: Route) -> Route:
    statement = _hidden(route.statement) if route.statement is not None else None
    return Route(route.reason, statement, tuple(_hidden(ref) for ref in route.supporting), route.grant_id)


def _verdict(verdict: Verdict) -> Verdict:
    if verdict.access is Access.DENIED:
        explanation = NOT_ACROSS_ACCOUNTS if verdict.explanation == NOT_ACROSS_ACCOUNTS else NOT_ALLOWED
        return Verdict(Access.DENIED, explanation=explanation, exact=verdict.exact)
    return Verdict(
        verdict.access,
        route=_route(verdict.route) if verdict.route is not None else None,
        ways=tuple(Way(way.facts, _route(way.route)) for way in verdict.ways),
        explanation="",
        exact=verdict.exact,
    )


def account_subject(account_id: str) -> Subject:
    return Subject(
        arn=arns.account_root_arn(account_id),
        kind="account",
        account_id=account_id,
        label=f"Account {account_id} (its principals)",
    )


def _add(found: dict[str, list[str]], account_id: str, arn: str | None = None) -> None:
    arns_of = found.setdefault(account_id, [])
    if arn is not None and arn not in arns_of:
        arns_of.append(arn)


def named_accounts(
    account_id: str, policies: Iterable[CompiledPolicy], grants: Sequence[Grant] = ()
) -> Mapping[str, tuple[str, ...]]:
    """The other accounts the key policies and grants name, each with the principal ARNs of it they name (in
    account order): what the owner wrote, never what the store holds."""
    found: dict[str, list[str]] = {}
    for policy in policies:
        for value in policy.policy.named_principals():
            parsed = parse_principal_arn(value)
            if parsed is not None:
                _add(found, parsed.account_id, value)
        for statement in policy.policy.statements:
            for clause in statement.conditions:
                for text in clause.values:
                    if not isinstance(text, str):
                        continue
                    if clause.key_lower in _ACCOUNT_KEYS and is_account_id(text):
                        _add(found, text)
                    matched = _ARN_ACCOUNT.match(text) if clause.key_lower == "aws:principalarn" else None
                    if matched is not None:
                        _add(found, matched.group(1))
    for grant in grants:
        for value in (grant.grantee_principal, grant.retiring_principal):
            parsed = parse_principal_arn(value) if value else None
            if parsed is not None:
                _add(found, parsed.account_id, value)
    found.pop(account_id, None)
    return {account: tuple(found[account]) for account in sorted(found)}


def _named_caller(arn: str) -> Caller | None:
    parsed = parse_principal_arn(arn)
    if parsed is None:
        return None
    if parsed.kind is PrincipalKind.USER:
        return Caller.user(parsed.arn)
    if parsed.kind is PrincipalKind.ROLE:
        session = (
            f"arn:{parsed.partition}:sts::{parsed.account_id}:assumed-role/{parsed.name}/{ANYONE_SESSION}"
        )
        return Caller.assumed_role(session, role_arn=parsed.arn)
    if parsed.kind is PrincipalKind.ASSUMED_ROLE:
        return Caller.assumed_role(parsed.arn)
    return None


def account_principal(account_id: str, named: Sequence[str] = ()) -> Principal:
    """Another account as a key owner is shown it: its root, a user and a role session of it and each principal of
    it the key policy or a grant names (`named`), each with an identity policy that allows everything (its own
    account's IAM policies decide, not this service): the most any principal of the account could get."""
    everything = (IdentityPolicy(STRANGER_POLICY_NAME, compile_identity_policy(_EVERYTHING)),)
    callers = [
        Caller.user(f"arn:aws:iam::{account_id}:user/{ANYONE_SESSION}"),
        Caller.assumed_role(f"arn:aws:sts::{account_id}:assumed-role/{ANYONE_SESSION}/{ANYONE_SESSION}"),
    ]
    callers += [caller for caller in map(_named_caller, named) if caller is not None]
    return Principal(
        account_subject(account_id),
        (Identity(Caller.root(account_id)), *(Identity(caller, everything) for caller in callers)),
    )


def by_account(matrix: AccessMatrix, *, keep_empty: bool = False) -> AccessMatrix:
    """The matrix as the key's account is shown it: its own principals and "*" as they are, each other account as
    one row (its principals collapsed: for a key owner, the one ``account_principal`` of it; identity policies
    unnamed), only where it gets anything (all accounts with `keep_empty`: for comparing two matrices, whose
    changes show only accounts that gain or lose)."""
    rows: list[tuple[Subject, list[Subject] | None]] = []  # a subject, or an account with its principals
    cells: dict[tuple[str, str], Verdict] = {}
    accounts: dict[str, list[Subject]] = {}
    for subject in matrix.subjects:
        if subject.kind == "anyone" or subject.account_id == matrix.account_id:
            rows.append((subject, None))
            for action in matrix.actions:
                cells[(subject.arn, action)] = matrix.verdict(subject.arn, action)
        elif subject.account_id in accounts:
            accounts[subject.account_id].append(subject)
        else:
            accounts[subject.account_id] = [subject]
            rows.append((account_subject(subject.account_id), accounts[subject.account_id]))
    shown: list[Subject] = []
    for subject, members in rows:
        if members is None:
            shown.append(subject)
            continue
        row = {
            action: _verdict(best(matrix.verdict(member.arn, action) for member in members))
            for action in matrix.actions
        }
        if keep_empty or any(verdict.access is not Access.DENIED for verdict in row.values()):
            shown.append(subject)
            cells.update(((subject.arn, action), verdict) for action, verdict in row.items())
    return AccessMatrix(matrix.key_arn, matrix.account_id, matrix.actions, tuple(shown), cells)

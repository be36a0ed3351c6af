"""What a key's access matrix shows to a key owner about other accounts.

The analysis runs over every account's principals with their own identity policies (so that access from another
account, through the key policy, a grant or a condition on "*", is never under-reported). Another account's
users, roles and identity policies are that account's to read (the simulator answers one as "not found"), so a
caller of the key's account is shown each other account as a whole, and only an account the key policy and grants
give something to:

- one row per other account (``Account … (its principals)``, its root's ARN), whose verdict for each action is
  the most any of that account's principals gets: what the key policy and grants give the account, as far as the
  account's own IAM lets at least one of its principals have it (no user or role of it is named);
- an account none of whose principals gets anything (an account the key policy and grants do not name, or name
  only under conditions no principal of it meets) is not shown at all;
- another account's identity policies are never quoted: a route's supporting statement is shown as the audit
  trail words it for a key owner (``kmsconsole.audit.shown.CALLER_IDENTITY_POLICY``), and a refusal of such a row
  as "not allowed" (or "not available across accounts"), without the engine's explanation, which names them.

The operator (the service-wide view) sees the matrix whole.
"""

from __future__ import annotations

from collections.abc import Callable

from kmsconsole.audit.shown import CALLER_IDENTITY_POLICY
from policies import arns
from policies.engine.analysis import Access, Route, Verdict, Way, best
from policies.engine.explain import PolicyKind, StatementRef
from policies.engine.matrix import NOT_ACROSS_ACCOUNTS, AccessMatrix, Subject

NOT_ALLOWED = "not allowed: what the key policy and grants give the account, its IAM policies do not let use"

MatrixView = Callable[[AccessMatrix], AccessMatrix]


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


def by_account(matrix: AccessMatrix, *, keep_empty: bool = False) -> AccessMatrix:
    """The matrix as the key's account is shown it: its own principals and "*" as they are, each other account as
    one row (the most any of its principals gets, identity policies unnamed), only where it gets anything (all
    accounts with `keep_empty`: for comparing two matrices, whose changes show only accounts that gain or lose)."""
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


def view_for(account_id: str | None) -> MatrixView | None:
    """How a caller of `account_id` is shown a matrix (None: the operator, who sees it whole)."""
    return None if account_id is None else by_account

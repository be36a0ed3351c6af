"""The principals the analysis runs over, as the engine sees them in a real request.

Each account's root, each IAM user (its own and its groups' identity policies, through the same
``policies.authorization.identity_policies`` a request uses), each role (as a session of it, named
``SESSION_NAME``), and ``"*"``: a stranger from an account the store does not have (see
``policies.engine.matrix.anyone``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from kmsconsole.api.authentication import user_caller
from kmsconsole.core import errors
from kmsconsole.core.context import Caller
from policies import arns, engine
from policies.authorization import engine_caller, identity_policies, readable_engine_caller
from policies.engine.matrix import Identity, Principal, Subject, anyone
from policies.models import Account, IamRole, IamUser

SESSION_NAME = "access-analyzer"
# Accounts "*" may come from: the first one the store does not have.
STRANGER_ACCOUNTS = ("000000000000", "999999999999", "123456789012")


def root_caller(account_id: str) -> Caller:
    return Caller(
        arn=arns.account_root_arn(account_id), account_id=account_id, principal_type="Root", userid=account_id
    )


def role_caller(role: IamRole, session_name: str = SESSION_NAME) -> Caller:
    """A session of `role`, the shape policies.selectors.credentials_for builds for a session's access key."""
    account_id = role.account.account_id
    return Caller(
        arn=arns.assumed_role_arn(account_id, role.name, session_name),
        account_id=account_id,
        principal_type="AssumedRole",
        role_pk=role.pk,
        userid=f"{role.unique_id}:{session_name}",
        role_arn=role.arn,
    )


@dataclass(frozen=True)
class StorePrincipal:
    """A principal of the store: the engine's view (for the matrix) and the service layer's caller."""

    principal: Principal
    caller: Caller


def _principal(caller: Caller, kind: str, label: str, arn: str) -> StorePrincipal:
    identity = Identity(engine_caller(caller), tuple(identity_policies(caller)))
    subject = Subject(arn=arn, kind=kind, account_id=caller.account_id, label=label)
    return StorePrincipal(Principal(subject, (identity,)), caller)


def stranger_account() -> str:
    taken = set(Account.objects.filter(account_id__in=STRANGER_ACCOUNTS).values_list("account_id", flat=True))
    return next(account for account in STRANGER_ACCOUNTS if account not in taken)


def store_principals(
    *, accounts: Iterable[str] | None = None, include_anyone: bool = True
) -> list[Principal]:
    """Every root, user and role (of `accounts`, or all), then "*": ordered by account, kind, name."""
    roots = Account.objects.order_by("account_id")
    users = IamUser.objects.select_related("account").order_by("account__account_id", "name", "pk")
    roles = IamRole.objects.select_related("account").order_by("account__account_id", "name", "pk")
    if accounts is not None:
        wanted = list(accounts)
        roots = roots.filter(account_id__in=wanted)
        users = users.filter(account__account_id__in=wanted)
        roles = roles.filter(account__account_id__in=wanted)
    found: list[Principal] = []
    for account in roots:
        caller = root_caller(account.account_id)
        found.append(
            _principal(caller, "account", f"Account {account.account_id} (root)", caller.arn).principal
        )
    # A principal whose ARN the engine cannot read (stored before its path was held to the engine's rule) is left
    # out: every request it makes is refused (policies.authorization.engine_caller), so it has no access to report,
    # and it must not make the analysis of its whole account fail.
    for user in users:
        caller = user_caller(user)
        if readable_engine_caller(caller) is not None:
            found.append(_principal(caller, "user", f"User {user.name}", user.arn).principal)
    for role in roles:
        caller = role_caller(role)
        if readable_engine_caller(caller) is not None:
            found.append(_principal(caller, "role", f"Role {role.name}", role.arn).principal)
    found.sort(
        key=lambda principal: (principal.subject.account_id, principal.subject.kind, principal.subject.arn)
    )
    if include_anyone:
        found.append(anyone(stranger_account()))
    return found


def broad_iam(principal: Principal) -> bool:
    """Whether the principal's identity policies allow every KMS action on every resource, unconditionally."""
    return any(
        finding.id == "identity-full-kms-access"
        for identity in principal.identities
        for policy in identity.policies
        for finding in engine.identity_policy_findings(policy.policy)
    )


def principal_for(arn: str, *, account_id: str | None) -> StorePrincipal:
    """The principal an ARN names, for the simulator: an account root (or a 12-digit account id), a user, a role
    (as a session named SESSION_NAME) or a role session (assumed-role/ROLE/SESSION: the role must exist, the
    session need not). NotFoundException for a principal the store does not have, and, for a caller of
    `account_id` (None: the operator), for one of another account: its identity policies are that account's to
    read, and whether it exists too."""
    text = arn.strip()
    parsed = engine.parse_principal_arn(text)
    if parsed is None or parsed.kind not in _SIMULATED_KINDS:
        raise errors.ValidationException(
            "The principal must be the ARN of an account root, a user, a role or a role session, such as "
            "arn:aws:iam::111122223333:user/alice."
        )
    missing = errors.NotFoundException(f"The principal {text[:256]} does not exist in this service.")
    if account_id is not None and parsed.account_id != account_id:
        raise missing
    if parsed.kind is engine.PrincipalKind.ACCOUNT:
        if not Account.objects.filter(account_id=parsed.account_id).exists():
            raise missing
        caller = root_caller(parsed.account_id)
        return _principal(caller, "account", f"Account {parsed.account_id} (root)", caller.arn)
    if parsed.kind is engine.PrincipalKind.USER:
        user = (
            IamUser.objects.select_related("account")
            .filter(account__account_id=parsed.account_id, name=parsed.name, path=parsed.path)
            .first()
        )
        if user is None:
            raise missing
        return _principal(user_caller(user), "user", f"User {user.name}", user.arn)
    role_filter = {"account__account_id": parsed.account_id, "name": parsed.name}
    if parsed.kind is engine.PrincipalKind.ROLE:
        role_filter["path"] = parsed.path
    role = IamRole.objects.select_related("account").filter(**role_filter).first()
    if role is None:
        raise missing
    session = parsed.session_name if parsed.kind is engine.PrincipalKind.ASSUMED_ROLE else SESSION_NAME
    if not arns.SESSION_NAME_PATTERN.fullmatch(session):
        raise errors.ValidationException(
            "A role session name is 2-64 characters of letters, digits and +=,.@_-"
        )
    return _principal(role_caller(role, session), "role", f"Role {role.name}", role.arn)


_SIMULATED_KINDS = frozenset(
    {
        engine.PrincipalKind.ACCOUNT,
        engine.PrincipalKind.USER,
        engine.PrincipalKind.ROLE,
        engine.PrincipalKind.ASSUMED_ROLE,
    }
)

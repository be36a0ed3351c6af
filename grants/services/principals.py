"""Grantees and retiring principals: how a grant names them (an account id is its root), which kinds may be named,
and that they exist here."""

from __future__ import annotations

from collections.abc import Sequence

from django.conf import settings

from kmsconsole.core import errors
from policies import engine
from policies.arns import account_root_arn
from policies.models import Account
from policies.principal_locks import NamedPrincipals

GRANTEE_KINDS = frozenset(
    {
        engine.PrincipalKind.ACCOUNT,
        engine.PrincipalKind.USER,
        engine.PrincipalKind.ROLE,
        engine.PrincipalKind.ASSUMED_ROLE,
        engine.PrincipalKind.FEDERATED_USER,
    }
)


def normalize_principal(principal: str) -> str:
    """An account id names the account's root (how grants store and match it)."""
    return account_root_arn(principal) if engine.is_account_id(principal) else principal


def _invalid_principal(principal: str) -> errors.KmsError:
    return errors.InvalidArnException(f"ARN does not refer to a valid principal: {principal[:256]}")


def _parse_principal(principal: str) -> engine.PrincipalArn:
    parsed = engine.parse_principal_arn(principal)
    if parsed is None or parsed.kind not in GRANTEE_KINDS or parsed.partition != settings.KMS_PARTITION:
        raise _invalid_principal(principal)
    return parsed


def _check_principals_exist(principals: Sequence[str], named: NamedPrincipals) -> None:
    """Grantees and retiring principals must exist here (AWS: InvalidArnException); sessions need their role.
    `named` is what `lock_named` found before the key was locked: the users and roles named, locked to the end of
    the transaction (`policies.principal_locks`), so a deletion of one running meanwhile either sees the new
    grant or is seen to have removed the principal."""
    parsed = [_parse_principal(principal) for principal in principals]
    locked = named.existing(parsed)
    for principal, named, exists in zip(principals, parsed, locked, strict=True):
        if named.kind in (
            engine.PrincipalKind.USER,
            engine.PrincipalKind.ROLE,
            engine.PrincipalKind.ASSUMED_ROLE,
        ):
            found = exists
        else:  # the account itself, or a federated user of it
            found = Account.objects.filter(account_id=named.account_id).exists()
        if not found:
            raise _invalid_principal(principal)

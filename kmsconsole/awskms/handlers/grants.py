"""Wire handlers for grants: CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant.

Grants to service principals (GranteeServicePrincipal, RetiringServicePrincipal, the SourceArn constraint) are
AWS-internal plumbing this KMS does not offer: UnsupportedOperationException.
"""

from __future__ import annotations

from typing import Any

from grants import services
from grants.models import Grant
from kmsconsole.awskms.handlers import handles
from kmsconsole.core import errors
from kmsconsole.operations import OperationContext

_SERVICE_PRINCIPALS = ("GranteeServicePrincipal", "RetiringServicePrincipal")


def _refuse_service_principals(params: dict[str, Any]) -> None:
    if any(name in params for name in _SERVICE_PRINCIPALS):
        raise errors.UnsupportedOperationException(
            "Grants to service principals are not supported by this KMS."
        )


def _required(params: dict[str, Any], name: str) -> Any:
    if params.get(name) is None:
        path = name[:1].lower() + name[1:]
        raise errors.ValidationException(
            f"1 validation error detected: Value null at '{path}' failed to satisfy constraint: "
            "Member must not be null"
        )
    return params[name]


def grant_entry(grant: Grant, key_arn: str) -> dict[str, Any]:
    """A GrantListEntry (kms-spec §8.3); absent members are left out, as AWS leaves them out."""
    entry: dict[str, Any] = {
        "KeyId": key_arn,
        "GrantId": grant.grant_id,
        "CreationDate": grant.created_at,
        "GranteePrincipal": grant.grantee_principal,
        "IssuingAccount": grant.issuing_account_arn,
        "Operations": list(grant.operations),
    }
    if grant.name:
        entry["Name"] = grant.name
    if grant.retiring_principal:
        entry["RetiringPrincipal"] = grant.retiring_principal
    if grant.constraints:
        entry["Constraints"] = grant.constraints
    return entry


def _page(entries: list[dict[str, Any]], marker: str | None) -> dict[str, Any]:
    result: dict[str, Any] = {"Grants": entries, "Truncated": marker is not None}
    if marker is not None:
        result["NextMarker"] = marker
    return result


@handles("CreateGrant")
def create_grant(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    _refuse_service_principals(params)
    created = services.grant_create(
        ctx=ctx,
        key_id=params["KeyId"],
        grantee_principal=_required(params, "GranteePrincipal"),
        operations=params["Operations"],
        retiring_principal=params.get("RetiringPrincipal"),
        constraints=params.get("Constraints"),
        name=params.get("Name"),
        grant_tokens=params.get("GrantTokens", ()),
    )
    return {"GrantToken": created.token, "GrantId": created.grant.grant_id}


@handles("ListGrants")
def list_grants(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    _refuse_service_principals(params)
    key, rows, marker = services.grant_list(
        ctx=ctx,
        key_id=params["KeyId"],
        grant_id=params.get("GrantId"),
        grantee_principal=params.get("GranteePrincipal"),
        limit=params.get("Limit"),
        marker=params.get("Marker"),
    )
    return _page([grant_entry(grant, key.arn) for grant in rows], marker)


@handles("ListRetirableGrants")
def list_retirable_grants(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    _refuse_service_principals(params)
    rows, marker = services.grant_list_retirable(
        ctx=ctx,
        retiring_principal=_required(params, "RetiringPrincipal"),
        limit=params.get("Limit"),
        marker=params.get("Marker"),
    )
    return _page([grant_entry(grant, grant.key.arn) for grant in rows], marker)


@handles("RetireGrant")
def retire_grant(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    grant = services.grant_retire(
        ctx=ctx,
        grant_token=params.get("GrantToken"),
        key_id=params.get("KeyId"),
        grant_id=params.get("GrantId"),
    )
    # RetireGrant has no output members, so nothing of this reaches the wire; the audit event keeps the grant id
    # (CloudTrail's additionalEventData.grantId), which a retirement by token would otherwise not show.
    return {"GrantId": grant.grant_id}


@handles("RevokeGrant")
def revoke_grant(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    services.grant_revoke(ctx=ctx, key_id=params["KeyId"], grant_id=params["GrantId"])
    return {}

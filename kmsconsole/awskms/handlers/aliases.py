"""Wire handlers for aliases: CreateAlias, UpdateAlias, DeleteAlias, ListAliases."""

from __future__ import annotations

from typing import Any

from keys.models import Alias
from keys.services import aliases
from kmsconsole.awskms.handlers import handles
from kmsconsole.operations import OperationContext


def _alias_entry(alias: Alias) -> dict[str, Any]:
    return {
        "AliasName": alias.name,
        "AliasArn": alias.arn,
        "TargetKeyId": str(alias.key.key_id),
        "CreationDate": alias.created_at,
        "LastUpdatedDate": alias.updated_at,
    }


@handles("CreateAlias")
def create_alias(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    aliases.alias_create(ctx=ctx, alias_name=params["AliasName"], target_key_id=params["TargetKeyId"])
    return {}


@handles("UpdateAlias")
def update_alias(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    aliases.alias_update(ctx=ctx, alias_name=params["AliasName"], target_key_id=params["TargetKeyId"])
    return {}


@handles("DeleteAlias")
def delete_alias(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    aliases.alias_delete(ctx=ctx, alias_name=params["AliasName"])
    return {}


@handles("ListAliases")
def list_aliases(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    rows, marker = aliases.alias_list(
        ctx=ctx, key_id=params.get("KeyId"), limit=params.get("Limit"), marker=params.get("Marker")
    )
    result: dict[str, Any] = {
        "Aliases": [_alias_entry(alias) for alias in rows],
        "Truncated": marker is not None,
    }
    if marker is not None:
        result["NextMarker"] = marker
    return result

"""Wire handlers for rotation: Enable/DisableKeyRotation, GetKeyRotationStatus, RotateKeyOnDemand,
ListKeyRotations. Their `KeyId` output is the key ID, as AWS's documented examples show."""

from __future__ import annotations

from typing import Any

from keys.models import Key, KeyMaterial
from keys.services import rotation
from kmsconsole.awskms.handlers import handles
from kmsconsole.operations import OperationContext


def _rotation_entry(key: Key, material: KeyMaterial) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "KeyId": str(key.key_id),
        "KeyMaterialId": material.material_id,
        "KeyMaterialState": "CURRENT" if material.is_current else "NON_CURRENT",
    }
    # The material the key was created with was not made by a rotation: no date, no type.
    if material.rotation_type:
        entry["RotationDate"] = material.created_at
        entry["RotationType"] = material.rotation_type
    return entry


@handles("EnableKeyRotation")
def enable_key_rotation(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    rotation.key_rotation_enable(
        ctx=ctx, key_id=params["KeyId"], rotation_period_days=params.get("RotationPeriodInDays")
    )
    return {}


@handles("DisableKeyRotation")
def disable_key_rotation(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    rotation.key_rotation_disable(ctx=ctx, key_id=params["KeyId"])
    return {}


@handles("GetKeyRotationStatus")
def get_key_rotation_status(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    status = rotation.key_rotation_status(ctx=ctx, key_id=params["KeyId"])
    result: dict[str, Any] = {"KeyRotationEnabled": status.enabled, "KeyId": str(status.key.key_id)}
    if status.period_days is not None:
        result["RotationPeriodInDays"] = status.period_days
    if status.next_rotation_at is not None:
        result["NextRotationDate"] = status.next_rotation_at
    return result


@handles("RotateKeyOnDemand")
def rotate_key_on_demand(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    material = rotation.key_rotate_on_demand(ctx=ctx, key_id=params["KeyId"])
    return {"KeyId": str(material.key.key_id)}


@handles("ListKeyRotations")
def list_key_rotations(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    key, rows, marker = rotation.key_rotations_list(
        ctx=ctx,
        key_id=params["KeyId"],
        include_key_material=params.get("IncludeKeyMaterial", rotation.ROTATIONS_ONLY),
        limit=params.get("Limit"),
        marker=params.get("Marker"),
    )
    result: dict[str, Any] = {
        "Rotations": [_rotation_entry(key, material) for material in rows],
        "Truncated": marker is not None,
    }
    if marker is not None:
        result["NextMarker"] = marker
    return result

"""Wire handlers for key lifecycle and key policies."""

from __future__ import annotations

from typing import Any

from keys.metadata import key_metadata
from keys.services import key_policy, lifecycle, usage
from kmsconsole.awskms.handlers import handles
from kmsconsole.operations import OperationContext


@handles("CreateKey")
def create_key(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    key = lifecycle.key_create(
        ctx=ctx,
        description=params.get("Description", ""),
        key_spec=params.get("KeySpec"),
        key_usage=params.get("KeyUsage"),
        customer_master_key_spec=params.get("CustomerMasterKeySpec"),
        origin=params.get("Origin", "AWS_KMS"),
        policy=params.get("Policy"),
        tags=params.get("Tags", []),
        bypass_lockout=params.get("BypassPolicyLockoutSafetyCheck", False),
        custom_key_store_id=params.get("CustomKeyStoreId"),
        xks_key_id=params.get("XksKeyId"),
        multi_region=params.get("MultiRegion", False),
    )
    return {"KeyMetadata": key_metadata(key)}


@handles("DescribeKey")
def describe_key(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"KeyMetadata": key_metadata(lifecycle.key_describe(ctx=ctx, key_id=params["KeyId"]))}


@handles("ListKeys")
def list_keys(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    keys, marker = lifecycle.key_list(
        ctx=ctx, limit=params.get("Limit", lifecycle.LIST_KEYS_DEFAULT_LIMIT), marker=params.get("Marker")
    )
    result: dict[str, Any] = {
        "Keys": [{"KeyId": str(key.key_id), "KeyArn": key.arn} for key in keys],
        "Truncated": marker is not None,
    }
    if marker is not None:
        result["NextMarker"] = marker
    return result


@handles("EnableKey")
def enable_key(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    lifecycle.key_enable(ctx=ctx, key_id=params["KeyId"])
    return {}


@handles("DisableKey")
def disable_key(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    lifecycle.key_disable(ctx=ctx, key_id=params["KeyId"])
    return {}


@handles("UpdateKeyDescription")
def update_key_description(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    lifecycle.key_update_description(ctx=ctx, key_id=params["KeyId"], description=params["Description"])
    return {}


@handles("GetKeyPolicy")
def get_key_policy(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    name = params.get("PolicyName", key_policy.DEFAULT_POLICY_NAME)
    _, policy = key_policy.key_policy_get(ctx=ctx, key_id=params["KeyId"], policy_name=name)
    return {"Policy": policy, "PolicyName": name}


@handles("PutKeyPolicy")
def put_key_policy(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    key_policy.key_policy_put(
        ctx=ctx,
        key_id=params["KeyId"],
        policy=params["Policy"],
        policy_name=params.get("PolicyName", key_policy.DEFAULT_POLICY_NAME),
        bypass_lockout=params.get("BypassPolicyLockoutSafetyCheck", False),
    )
    return {}


@handles("ListKeyPolicies")
def list_key_policies(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    _, names = key_policy.key_policy_list(ctx=ctx, key_id=params["KeyId"])
    return {"PolicyNames": names, "Truncated": False}


@handles("GetKeyLastUsage")
def get_key_last_usage(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    found = usage.key_last_usage(ctx=ctx, key_id=params["KeyId"])
    used = found.last_use
    # An empty object, not an absent member, when the key has not been used since tracking began (the model's doc).
    last_usage: dict[str, Any] = {}
    if used is not None:
        last_usage = {
            "Operation": used.operation,
            "Timestamp": used.time,
            "CloudTrailEventId": str(used.event_id),
            "KmsRequestId": used.request_id,
        }
    return {
        "KeyId": str(found.key.key_id),
        "KeyLastUsage": last_usage,
        "TrackingStartDate": found.tracking_started_at,
        "KeyCreationDate": found.key.created_at,
    }

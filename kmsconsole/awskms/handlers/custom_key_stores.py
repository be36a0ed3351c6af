"""Wire handler for DescribeCustomKeyStores (the other custom key store operations are not offered)."""

from __future__ import annotations

from typing import Any

from keys.services.custom_key_stores import custom_key_store_list
from kmsconsole.awskms.handlers import handles
from kmsconsole.operations import OperationContext


@handles("DescribeCustomKeyStores")
def describe_custom_key_stores(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    stores = custom_key_store_list(
        ctx=ctx,
        custom_key_store_id=params.get("CustomKeyStoreId"),
        custom_key_store_name=params.get("CustomKeyStoreName"),
        marker=params.get("Marker"),
    )
    return {"CustomKeyStores": stores, "Truncated": False}

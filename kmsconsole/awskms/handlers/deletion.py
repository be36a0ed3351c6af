"""Wire handlers for ScheduleKeyDeletion and CancelKeyDeletion."""

from __future__ import annotations

from typing import Any

from keys.services import deletion
from kmsconsole.awskms.handlers import handles
from kmsconsole.operations import OperationContext


@handles("ScheduleKeyDeletion")
def schedule_key_deletion(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    key = deletion.key_schedule_deletion(
        ctx=ctx, key_id=params["KeyId"], pending_window_days=params.get("PendingWindowInDays")
    )
    return {
        "KeyId": key.arn,
        "DeletionDate": key.deletion_date,
        "KeyState": key.state,
        "PendingWindowInDays": key.pending_window_days,
    }


@handles("CancelKeyDeletion")
def cancel_key_deletion(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    return {"KeyId": deletion.key_cancel_deletion(ctx=ctx, key_id=params["KeyId"]).arn}

"""The preamble of every key operation: resolve the KeyId, authorize against the key, check the key state.

Order (kms-spec §4.2, "Suggested order of checks"): the key (NotFoundException), then authorization
(AccessDeniedException), then the key state (DisabledException / KMSInvalidStateException).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from keys.models import Key, KeyState
from keys.selectors import check_key_state, key_condition_values, key_tags, resolve_key
from kmsconsole.core import errors
from kmsconsole.operations import OperationContext
from policies import engine
from policies.authorization import authorize

PENDING_DELETION_USE = "use of a key pending deletion"


def authorize_on_key(
    ctx: OperationContext,
    key: Key,
    *,
    action: str | None = None,
    request_alias: str | None = None,
    encryption_context: Mapping[str, str] | None = None,
    request_tags: Mapping[str, str] | None = None,
    condition_values: Mapping[str, Any] | None = None,
) -> engine.Decision | None:
    """Ask the engine whether the caller may act on `key` (key policy + identity policies)."""
    ctx.audit.key_arn = ctx.audit.key_arn or key.arn
    values = key_condition_values(key, request_alias=request_alias)
    values.update(condition_values or {})
    return authorize(
        ctx,
        resource=key.arn,
        action=action,
        key_policy=key.policy,
        resource_account=key.account.account_id,
        resource_tags=key_tags(key),
        request_tags=request_tags,
        encryption_context=encryption_context,
        condition_values=values,
    )


def key_for(
    ctx: OperationContext,
    key_id: str,
    *,
    lock: bool = False,
    action: str | None = None,
    encryption_context: Mapping[str, str] | None = None,
    request_tags: Mapping[str, str] | None = None,
    condition_values: Mapping[str, Any] | None = None,
) -> Key:
    """The key a request names, once the caller is authorized and the key's state allows the operation.

    `lock=True` takes a row lock for the rest of the transaction (state changes: a disable and a use of the
    same key are then ordered, never interleaved).
    """
    resolved = resolve_key(key_id, caller_account=ctx.caller.account_id, operation=ctx.operation)
    key = resolved.key
    if lock:
        key = Key.objects.select_for_update().select_related("account").get(pk=key.pk)
    authorize_on_key(
        ctx,
        key,
        action=action,
        request_alias=resolved.request_alias,
        encryption_context=encryption_context,
        request_tags=request_tags,
        condition_values=condition_values,
    )
    try:
        check_key_state(key, ctx.operation)
    except errors.KMSInvalidStateException:
        if key.state == KeyState.PENDING_DELETION:
            # AWS users alarm on exactly this: something still depends on a key that is about to disappear.
            ctx.audit.notable = PENDING_DELETION_USE
        raise
    return key

"""Wire handlers: each turns one KMS operation's validated request members into one service call, and the
service's result into the operation's response members. One module per area; all register here by name."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from kmsconsole.core import errors
from kmsconsole.operations import DRY_RUN_MESSAGE, OperationContext

WireHandler = Callable[[OperationContext, dict[str, Any]], dict[str, Any]]
HANDLERS: dict[str, WireHandler] = {}


def handles(name: str) -> Callable[[WireHandler], WireHandler]:
    def register(handler: WireHandler) -> WireHandler:
        if name in HANDLERS:
            raise RuntimeError(f"Two wire handlers for {name}")
        HANDLERS[name] = handler
        return handler

    return register


def run_handler(name: str, ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    """Run the operation's handler. With DryRun the context says so: a cryptographic service stops once its
    checks have passed, before it opens any key material (`OperationContext.stop_if_dry_run`); a grant operation
    runs to its end and is answered as AWS does instead of with its result (perform() then rolls the transaction
    back, so a dry run changes nothing)."""
    dry_run = params.get("DryRun") is True
    if dry_run:
        ctx = replace(ctx, dry_run=True)
    result = HANDLERS[name](ctx, params)
    if dry_run:
        raise errors.DryRunOperationException(DRY_RUN_MESSAGE)
    return result


# Importing the modules registers their handlers.
from kmsconsole.awskms.handlers import (  # noqa: E402, F401
    aliases,
    crypto,
    custom_key_stores,
    deletion,
    grants,
    keys,
    randomness,
    rotation,
    tags,
)

"""Wire handlers: each turns one KMS operation's validated request members into one service call, and the
service's result into the operation's response members. One module per area; all register here by name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kmsconsole.core import errors
from kmsconsole.operations import OperationContext

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
    """Run the operation's handler; with DryRun, every check has passed, so answer as AWS does instead of the
    result (perform() then rolls the transaction back, so a dry run changes nothing)."""
    result = HANDLERS[name](ctx, params)
    if params.get("DryRun"):
        raise errors.DryRunOperationException(
            "The request would have succeeded, but the DryRun option is set."
        )
    return result


# Importing the modules registers their handlers.
from kmsconsole.awskms.handlers import (  # noqa: E402, F401
    aliases,
    crypto,
    deletion,
    grants,
    keys,
    randomness,
    rotation,
    tags,
)

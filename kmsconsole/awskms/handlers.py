"""Wire handlers: each turns one KMS operation's validated request members into one service call, and the
service's result into the operation's response members. Registered by name; the endpoint dispatches here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from keys.services import random_generate
from kmsconsole.core import errors
from kmsconsole.operations import OperationContext

WireHandler = Callable[[OperationContext, dict[str, Any]], dict[str, Any]]
HANDLERS: dict[str, WireHandler] = {}


def handles(name: str) -> Callable[[WireHandler], WireHandler]:
    def register(handler: WireHandler) -> WireHandler:
        HANDLERS[name] = handler
        return handler

    return register


def _refuse_custom_key_store(params: dict[str, Any]) -> None:
    # Custom key stores (CloudHSM, external) are AWS infrastructure; none exists here (kms-spec: tier "out").
    if "CustomKeyStoreId" in params:
        raise errors.CustomKeyStoreNotFoundException("The specified custom key store does not exist.")


def _refuse_recipient(params: dict[str, Any]) -> None:
    if "Recipient" in params:
        raise errors.UnsupportedOperationException("Recipient (Nitro Enclaves attestation) is not supported.")


@handles("GenerateRandom")
def generate_random(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    _refuse_custom_key_store(params)
    _refuse_recipient(params)
    if "NumberOfBytes" not in params:
        raise errors.ValidationException("NumberOfBytes is required.")
    return {"Plaintext": random_generate(ctx=ctx, number_of_bytes=params["NumberOfBytes"])}

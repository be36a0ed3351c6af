"""Wire handler for GenerateRandom."""

from __future__ import annotations

from typing import Any

from keys.services.randomness import random_generate
from kmsconsole.awskms.handlers import handles
from kmsconsole.awskms.handlers.common import refuse_custom_key_store, refuse_recipient
from kmsconsole.core import errors
from kmsconsole.operations import OperationContext


@handles("GenerateRandom")
def generate_random(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    refuse_custom_key_store(params)
    refuse_recipient(params)
    if "NumberOfBytes" not in params:
        raise errors.ValidationException("NumberOfBytes is required.")
    return {"Plaintext": random_generate(ctx=ctx, number_of_bytes=params["NumberOfBytes"])}

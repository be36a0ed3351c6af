"""Services for the key-less cryptographic operations (and, with the keys issue, every key operation)."""

from __future__ import annotations

import secrets

from kmsconsole.operations import OperationContext
from policies.authorization import authorize


def random_generate(*, ctx: OperationContext, number_of_bytes: int) -> bytes:
    """GenerateRandom: an account-level action, decided by the caller's identity policies alone."""
    authorize(ctx, resource="*")
    return secrets.token_bytes(number_of_bytes)

"""Policy documents through the engine: validation errors become the service's own errors."""

from __future__ import annotations

from kmsconsole.core import errors
from policies.engine.document import parse_identity_policy
from policies.engine.errors import EngineError

# AWS's largest inline-policy quota (a role's: 10,240 characters, whitespace not counted). Without a limit a
# 2 MB document would be stored, evaluated on every request of its principal and copied into the audit trail.
IDENTITY_POLICY_MAX_CHARS = 10_240


def validate_identity_policy(document: str) -> None:
    """Refuse an identity policy over the size quota, or one the engine cannot parse, with the engine's message."""
    size = sum(1 for character in document if not character.isspace())
    if size > IDENTITY_POLICY_MAX_CHARS:
        raise errors.LimitExceededException(
            f"Maximum policy size of {IDENTITY_POLICY_MAX_CHARS} characters exceeded: this document has {size} "
            "(whitespace not counted)."
        )
    try:
        parse_identity_policy(document)
    except EngineError as exc:
        raise errors.error_for_code(exc.code, exc.message) from None

"""Policy documents through the engine: validation errors become the service's own errors."""

from __future__ import annotations

from kmsconsole.core import errors
from policies.engine.document import parse_identity_policy
from policies.engine.errors import EngineError


def validate_identity_policy(document: str) -> None:
    """Refuse an identity policy the engine cannot parse, with the engine's message."""
    try:
        parse_identity_policy(document)
    except EngineError as exc:
        raise errors.error_for_code(exc.code, exc.message) from None

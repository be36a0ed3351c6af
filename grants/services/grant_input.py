"""CreateGrant's request checks: operations, Name, encryption-context constraints, and whether the operations
and constraints suit the key."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from grants.selectors import EQUALS, SUBSET
from grants.services.key_operations import grant_operations_for, key_type
from keys.models import Key
from kmsconsole.core import errors

# Encryption-context constraints (kms-spec §8.1).
CONSTRAINT_MAX_PAIRS = 8
CONSTRAINT_VALUE_MAX_CHARS = 384

# CreateGrant's Name (kms-spec §8.1): the service model's limits, checked here for the interfaces without the model.
GRANT_NAME_MAX_LENGTH = 256
GRANT_NAME_PATTERN = r"^[a-zA-Z0-9:/_-]+$"
SOURCE_ARN = "SourceArn"
# The members of GrantConstraints; SourceArn is known, and refused, rather than mistaken for a typo.
CONSTRAINT_NAMES = (EQUALS, SUBSET, SOURCE_ARN)


def _operations(requested: Sequence[str]) -> list[str]:
    operations = list(dict.fromkeys(requested))
    if not operations:
        raise errors.ValidationException(
            "1 validation error detected: Value '[]' at 'operations' failed to satisfy constraint: "
            "Member must have length greater than or equal to 1"
        )
    return operations


def _check_name(name: str | None) -> None:
    """Name's limits, in the words of AWS's model validation: a longer name would not fit the column, and another
    character would make a name the KMS endpoint refuses."""
    if name is not None:
        errors.check_length("name", name, minimum=1, maximum=GRANT_NAME_MAX_LENGTH)
        errors.check_pattern("name", name, GRANT_NAME_PATTERN)


def _constraints(requested: Mapping[str, Any] | None) -> dict[str, dict[str, str]] | None:
    """The stored form of a request's Constraints (empty maps count as absent, as on AWS)."""
    if not requested:
        return None
    unknown = [name[:64] for name in requested if name not in CONSTRAINT_NAMES]
    if unknown:
        # Dropping an unknown member would turn a misspelled constraint into no constraint at all.
        raise errors.ValidationException(
            f"Constraints has no member {', '.join(unknown)}; its members are {', '.join(CONSTRAINT_NAMES)}."
        )
    if requested.get(SOURCE_ARN) is not None:
        raise errors.UnsupportedOperationException(
            "The SourceArn grant constraint is for grants to service principals, which this KMS does not support."
        )
    given = {kind: dict(pairs) for kind in (EQUALS, SUBSET) if (pairs := requested.get(kind))}
    if not given:
        return None
    if len(given) > 1:
        raise errors.ValidationException(
            "A grant can have only one encryption context constraint: EncryptionContextEquals or "
            "EncryptionContextSubset."
        )
    [(kind, pairs)] = given.items()
    if len(pairs) > CONSTRAINT_MAX_PAIRS:
        raise errors.ValidationException(
            f"{kind} can have at most {CONSTRAINT_MAX_PAIRS} encryption context pairs, not {len(pairs)}."
        )
    if any(len(value) > CONSTRAINT_VALUE_MAX_CHARS for value in pairs.values()):
        raise errors.ValidationException(
            f"The values of {kind} can be at most {CONSTRAINT_VALUE_MAX_CHARS} characters long."
        )
    return given


def _check_operations_suit(
    key: Key, operations: Sequence[str], constraints: Mapping[str, Any] | None
) -> None:
    suitable = grant_operations_for(key)
    unsuited = [operation for operation in operations if operation not in suitable]
    if unsuited:
        raise errors.ValidationException(
            f"{', '.join(unsuited)} {'is' if len(unsuited) == 1 else 'are'} not a valid grant operation for a "
            f"KMS key with KeySpec {key.key_spec} and KeyUsage {key.key_usage}."
        )
    if constraints and key_type(key) != "SYMMETRIC":
        raise errors.ValidationException(
            f"Encryption context grant constraints apply only to symmetric encryption KMS keys, not to a KMS key "
            f"with KeySpec {key.key_spec}."
        )

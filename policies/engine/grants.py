"""Grants (spec §8): the grant model, constraint checks, and an index by grantee.

A grant allows (never denies) its grantee the listed operations on one key, subject to its constraints:

* ``EncryptionContextEquals``: the request's encryption context must equal the constraint;
  ``EncryptionContextSubset``: it must contain every constraint pair. Keys compare case-insensitively, values
  case-sensitively. Constraints apply only to operations that take an encryption context (Encrypt, Decrypt,
  GenerateDataKey*, GenerateDataKeyPair*, ReEncryptFrom/To); DescribeKey, RetireGrant, Sign, ... ignore them.
* ``SourceArn``: the request's ``aws:SourceArn`` must equal it (except for RetireGrant).
* Through a grant that allows ``CreateGrant``, the grantee may create only child grants with a subset of its
  operations and constraints at least as strict (``GrantRequest`` in the request context describes the child).

A grant to a user, role (covering its sessions), session or federated user needs nothing else; a grant to an
account principal (``arn:aws:iam::ACCT:root``) counts only where that account's IAM policies also allow the
request. A grant that has not yet propagated (``effective=False``) allows only when its token came with the
request (``token_grant_ids`` of ``evaluate``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from .principals import Caller, account_root_arn, is_account_id
from .sealed import Sealed

GRANT_OPERATIONS = (
    "Decrypt",
    "Encrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ReEncryptFrom",
    "ReEncryptTo",
    "Sign",
    "Verify",
    "GetPublicKey",
    "CreateGrant",
    "RetireGrant",
    "DescribeKey",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GenerateMac",
    "VerifyMac",
    "DeriveSharedSecret",
    "Encapsulate",
    "Decapsulate",
)
# Operations whose requests carry an encryption context, so EncryptionContext* constraints apply to them.
ENCRYPTION_CONTEXT_OPERATIONS = frozenset(
    {
        "encrypt",
        "decrypt",
        "generatedatakey",
        "generatedatakeywithoutplaintext",
        "generatedatakeypair",
        "generatedatakeypairwithoutplaintext",
        "reencryptfrom",
        "reencryptto",
    }
)

Pairs = frozenset[tuple[str, str]]


def fold_encryption_context(context: Mapping[str, str]) -> Pairs:
    """The context as (lower-cased key, value) pairs, for case-insensitive key comparison."""
    return frozenset((key.lower(), value) for key, value in context.items())


@dataclass(frozen=True)
class GrantConstraints:
    """A grant's ``Constraints``."""

    encryption_context_equals: Mapping[str, str] | None = None
    encryption_context_subset: Mapping[str, str] | None = None
    source_arn: str | None = None
    equals_pairs: Pairs | None = field(init=False, compare=False, repr=False)
    subset_pairs: Pairs | None = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("encryption_context_equals", "encryption_context_subset"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, MappingProxyType(dict(value)))
        equals, subset = self.encryption_context_equals, self.encryption_context_subset
        object.__setattr__(self, "equals_pairs", None if equals is None else fold_encryption_context(equals))
        object.__setattr__(self, "subset_pairs", None if subset is None else fold_encryption_context(subset))

    def __hash__(self) -> int:
        return hash((self.equals_pairs, self.subset_pairs, self.source_arn))

    @property
    def constraint_type(self) -> str | None:
        """``kms:GrantConstraintType``: ``EncryptionContextEquals``, ``EncryptionContextSubset`` or ``None``."""
        if self.equals_pairs is not None:
            return "EncryptionContextEquals"
        if self.subset_pairs is not None:
            return "EncryptionContextSubset"
        return None

    def encryption_context_satisfied(self, pairs: Pairs, size: int) -> bool:
        """Whether a request context (folded ``pairs``; ``size`` = its number of keys) meets the EC constraints."""
        equals = self.equals_pairs
        if equals is not None and (pairs != equals or size != len(pairs)):
            return False
        subset = self.subset_pairs
        return subset is None or subset <= pairs

    def at_least_as_strict(self, child: GrantConstraints | None) -> bool:
        """Whether a child grant's constraints are as strict as these or stricter (spec §8.2)."""
        child_equals = child.equals_pairs if child else None
        child_subset = child.subset_pairs if child else None
        if self.equals_pairs is not None and child_equals != self.equals_pairs:
            return False
        if self.subset_pairs is not None:
            covered = [pairs for pairs in (child_equals, child_subset) if pairs is not None]
            if not any(self.subset_pairs <= pairs for pairs in covered):
                return False
        return self.source_arn is None or (child is not None and child.source_arn == self.source_arn)


def normalize_grantee(principal: str) -> str:
    """An account id becomes its root ARN; anything else is kept (service principals lower-cased)."""
    if is_account_id(principal):
        return account_root_arn(principal)
    if not principal.startswith("arn:"):
        return principal.lower()
    return principal


@dataclass(frozen=True)
class Grant:
    """One grant on one key. ``operations`` are GrantOperation names (``"Decrypt"``, ...)."""

    grant_id: str
    key_arn: str
    grantee_principal: str
    operations: frozenset[str]
    constraints: GrantConstraints | None = None
    retiring_principal: str | None = None
    name: str | None = None
    issuing_account: str | None = None
    effective: bool = True
    operations_lower: frozenset[str] = field(init=False, compare=False, repr=False)
    grantee_is_account: bool = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "operations", frozenset(self.operations))
        object.__setattr__(self, "grantee_principal", normalize_grantee(self.grantee_principal))
        object.__setattr__(self, "operations_lower", frozenset(op.lower() for op in self.operations))
        grantee = self.grantee_principal
        object.__setattr__(
            self, "grantee_is_account", grantee.startswith("arn:") and grantee.endswith(":root")
        )

    def constraints_satisfied(
        self, operation_lower: str, pairs: Pairs, size: int, source_arn: str | None
    ) -> bool:
        """Whether the constraints allow a request for this operation with this encryption context."""
        constraints = self.constraints
        if constraints is None:
            return True
        if (
            constraints.source_arn is not None
            and operation_lower != "retiregrant"
            and source_arn != constraints.source_arn
        ):
            return False
        if operation_lower not in ENCRYPTION_CONTEXT_OPERATIONS:
            return True
        return constraints.encryption_context_satisfied(pairs, size)

    def permits_child(self, child: GrantRequest) -> bool:
        """For CreateGrant through this grant: child operations a subset, child constraints as strict or stricter."""
        if not {op.lower() for op in child.operations} <= self.operations_lower:
            return False
        return self.constraints is None or self.constraints.at_least_as_strict(child.constraints)


@dataclass(frozen=True)
class GrantRequest:
    """The grant a CreateGrant request asks for (operations and constraints), for checks against a parent grant."""

    operations: frozenset[str]
    constraints: GrantConstraints | None = None


def caller_grant_keys(caller: Caller) -> tuple[str, ...]:
    """The grantee principals under which grants apply to this caller: its ARN, its role, its account."""
    return caller.grant_keys


class GrantIndex(Sealed):
    """Grants of one key indexed by grantee, so a lookup costs O(grants of this caller), not O(all grants)."""

    __slots__ = ("_by_grantee", "_count")

    def __init__(self, grants: Iterable[Grant] = ()) -> None:
        by_grantee: dict[str, list[Grant]] = {}
        count = 0
        for grant in grants:
            by_grantee.setdefault(grant.grantee_principal, []).append(grant)
            count += 1
        self._by_grantee: dict[str, tuple[Grant, ...]] = {
            key: tuple(value) for key, value in by_grantee.items()
        }
        self._count = count
        self._seal()

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Grant]:
        for grants in self._by_grantee.values():
            yield from grants

    def for_grantee(self, principal: str) -> tuple[Grant, ...]:
        return self._by_grantee.get(normalize_grantee(principal), ())

    def for_caller(self, caller: Caller) -> tuple[Grant, ...]:
        """Every grant whose grantee is the caller, its session's role, or its account."""
        by_grantee = self._by_grantee
        found: tuple[Grant, ...] = ()
        for key in caller.grant_keys:
            grants = by_grantee.get(key)
            if grants:
                found = grants if not found else found + grants
        return found

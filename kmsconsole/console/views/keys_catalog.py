"""What the key pages offer to choose from: key types, specs and usages, in words a person reads.

The rules (which specs exist, which usages each allows, what this service implements) come from keys.crypto's
tables; this module only groups them into the console's three key types and names them."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from keys.crypto import AWS_KEY_SPEC_USAGES, SUPPORTED_KEY_SPECS, KeySpec, KeyUsage
from keys.crypto.specs import ASYMMETRIC_KEY_SPECS, HMAC_KEY_SPECS
from kmsconsole.awskms.model import operation_model
from kmsconsole.core.text import with_article

USAGE_LABELS = {
    KeyUsage.ENCRYPT_DECRYPT: "Encrypt and decrypt",
    KeyUsage.SIGN_VERIFY: "Sign and verify",
    KeyUsage.GENERATE_VERIFY_MAC: "Generate and verify MAC",
    KeyUsage.KEY_AGREEMENT: "Key agreement",
    KeyUsage.ENCAPSULATE_DECAPSULATE: "Key encapsulation",
}


@dataclass(frozen=True)
class KeyType:
    value: str
    label: str
    hint: str
    specs: tuple[str, ...]

    @property
    def usages(self) -> tuple[str, ...]:
        return usages_of(self.specs)

    @property
    def in_sentence(self) -> str:
        """The type as a sentence names it: "symmetric", "asymmetric", "HMAC" (an initialism keeps its capitals)."""
        return self.label if self.label.isupper() else self.label.lower()

    @property
    def with_article(self) -> str:
        """ "a symmetric", "an asymmetric", "an HMAC"."""
        return with_article(self.in_sentence)

    @property
    def spec_options(self) -> tuple[tuple[str, tuple[str, ...]], ...]:
        """Each spec with the usages it allows."""
        return tuple((spec, spec_usages(spec)) for spec in self.specs)


def supported(specs: frozenset[KeySpec] | set[KeySpec]) -> tuple[str, ...]:
    """The specs among `specs` this service implements, in the AWS model's order."""
    return tuple(spec.value for spec in KeySpec if spec in specs and spec in SUPPORTED_KEY_SPECS)


def usages_of(specs: tuple[str, ...]) -> tuple[str, ...]:
    allowed = {usage for spec in specs for usage in AWS_KEY_SPEC_USAGES[KeySpec(spec)]}
    return tuple(usage.value for usage in KeyUsage if usage in allowed)


def spec_usages(spec: str) -> tuple[str, ...]:
    return usages_of((spec,))


KEY_TYPES = (
    KeyType(
        "symmetric",
        "Symmetric",
        "One AES-256 key that never leaves the service. Encrypts and decrypts data; what most applications want.",
        supported({KeySpec.SYMMETRIC_DEFAULT}),
    ),
    KeyType(
        "asymmetric",
        "Asymmetric",
        "An RSA, elliptic-curve, ML-DSA or ML-KEM (post-quantum) key pair. The public key can be downloaded and "
        "used outside the service.",
        supported(ASYMMETRIC_KEY_SPECS),
    ),
    KeyType(
        "hmac",
        "HMAC",
        "A secret key to generate and verify hash-based message authentication codes.",
        supported(HMAC_KEY_SPECS),
    ),
)
KEY_TYPE_BY_VALUE = {key_type.value: key_type for key_type in KEY_TYPES}
ALL_SPECS = tuple(spec for key_type in KEY_TYPES for spec in key_type.specs)
ALL_USAGES = usages_of(ALL_SPECS)


def usage_label(usage: str) -> str:
    return USAGE_LABELS.get(usage, usage)  # type: ignore[call-overload]


@cache
def model_max_length(operation: str, member: str) -> int:
    """The AWS model's length limit of a request member (e.g. CreateKey's Description: 8192 characters)."""
    shape = operation_model(operation).input_shape
    return int(shape.members[member].metadata["max"])


@cache
def tag_limits() -> tuple[int, int]:
    """The longest tag key and tag value the AWS model allows."""
    tag = operation_model("TagResource").input_shape.members["Tags"].member
    return int(tag.members["TagKey"].metadata["max"]), int(tag.members["TagValue"].metadata["max"])

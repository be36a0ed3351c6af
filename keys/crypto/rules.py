"""Checks that combine the tables of ``specs``: CreateKey's spec/usage rules, algorithm/spec compatibility,
operation/usage compatibility, and the algorithm lists DescribeKey and GetPublicKey report.

Every check raises a :class:`~keys.crypto.errors.CryptoError` with AWS's exception name and, where the spec
records it, AWS's exact message.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import CryptoValidationError, InvalidKeyUsage, UnsupportedOperation
from .specs import (
    AWS_ENCAPSULATION_ALGORITHMS,
    AWS_ENCRYPTION_ALGORITHMS,
    AWS_KEY_AGREEMENT_ALGORITHMS,
    AWS_KEY_SPEC_USAGES,
    AWS_MAC_ALGORITHMS,
    AWS_SIGNING_ALGORITHMS,
    DATA_KEY_OPERATIONS,
    DEFAULT_KEY_SPEC,
    DEFAULT_KEY_USAGE,
    OPERATION_KEY_USAGE,
    SUPPORTED_KEY_SPECS,
    UNSUPPORTED_ENCRYPTION_ALGORITHMS,
    UNSUPPORTED_KEY_SPEC_REASONS,
    UNSUPPORTED_SIGNING_ALGORITHMS,
    EncapsulationAlgorithm,
    EncryptionAlgorithm,
    KeyAgreementAlgorithm,
    KeySpec,
    KeyUsage,
    MacAlgorithm,
    SigningAlgorithm,
)

USAGE_REQUIRED_MESSAGE = (
    "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys."
)
DATA_KEY_WITH_ASYMMETRIC_KEY_MESSAGE = "You cannot generate a data key with an asymmetric CMK"


def unsupported_key_spec_message(member: str, key_spec: str) -> str:
    """The UnsupportedOperationException message for a spec AWS has but this service does not implement
    (``member`` is "KeySpec" or "KeyPairSpec"); it says why where there is more to say (ML_KEM_512)."""
    reason = UNSUPPORTED_KEY_SPEC_REASONS.get(KeySpec(key_spec))
    return f"{member} {key_spec} is not supported" + (f": {reason}." if reason else ".")


def require_supported_key_spec(key_spec: KeySpec) -> None:
    """Raise ``UnsupportedOperationException`` for a spec AWS has but this service does not (SM2, ML_KEM_512)."""
    if key_spec not in SUPPORTED_KEY_SPECS:
        raise UnsupportedOperation(unsupported_key_spec_message("KeySpec", key_spec))


def validate_spec_and_usage(key_spec: KeySpec | None = None, key_usage: KeyUsage | None = None) -> KeyUsage:
    """CreateKey's rules: return the key usage the new key gets, or raise.

    - no KeySpec means SYMMETRIC_DEFAULT; its KeyUsage may be omitted (ENCRYPT_DECRYPT);
    - any other spec needs an explicit KeyUsage (ValidationException, AWS's message);
    - the pair must be in AWS's table (ValidationException ``KeyUsage X is not compatible with KeySpec Y``);
    - a valid pair for a spec this service does not implement is UnsupportedOperationException.
    """
    spec = DEFAULT_KEY_SPEC if key_spec is None else key_spec
    if key_usage is None:
        if spec is not KeySpec.SYMMETRIC_DEFAULT:
            raise CryptoValidationError(USAGE_REQUIRED_MESSAGE)
        usage = DEFAULT_KEY_USAGE
    else:
        usage = key_usage
    if usage not in AWS_KEY_SPEC_USAGES[spec]:
        raise CryptoValidationError(f"KeyUsage {usage} is not compatible with KeySpec {spec}")
    require_supported_key_spec(spec)
    return usage


def check_key_usage(*, key_arn: str, key_usage: KeyUsage, operation: str) -> None:
    """Raise ``InvalidKeyUsageException`` when a key of ``key_usage`` cannot do ``operation`` (e.g. "Sign").

    AWS's message names the key ARN:
    ``<arn> key usage is ENCRYPT_DECRYPT which is not valid for GenerateMac.``
    """
    required = OPERATION_KEY_USAGE.get(operation)
    if required is None:
        raise ValueError(f"no key usage is defined for operation {operation!r}")
    if key_usage is not required:
        raise InvalidKeyUsage(f"{key_arn} key usage is {key_usage} which is not valid for {operation}.")


def check_data_key_encrypting_key(*, key_spec: KeySpec, operation: str) -> None:
    """GenerateDataKey*/GenerateDataKeyPair* need a SYMMETRIC_DEFAULT key (after :func:`check_key_usage`).

    The message is the one AWS sends for an asymmetric ENCRYPT_DECRYPT key, as seen in SDK error reports.
    """
    if operation in DATA_KEY_OPERATIONS and key_spec is not KeySpec.SYMMETRIC_DEFAULT:
        raise InvalidKeyUsage(DATA_KEY_WITH_ASYMMETRIC_KEY_MESSAGE)


def _incompatible(algorithm: str, key_spec: KeySpec) -> InvalidKeyUsage:
    return InvalidKeyUsage(f"Algorithm {algorithm} is incompatible with key spec {key_spec}.")


def check_encryption_algorithm(key_spec: KeySpec, algorithm: EncryptionAlgorithm) -> None:
    """Raise unless ``algorithm`` is one this service can use with ``key_spec`` for Encrypt/Decrypt."""
    if algorithm not in AWS_ENCRYPTION_ALGORITHMS.get(key_spec, ()):
        raise _incompatible(algorithm, key_spec)
    require_supported_key_spec(key_spec)
    if algorithm in UNSUPPORTED_ENCRYPTION_ALGORITHMS:
        raise UnsupportedOperation(f"EncryptionAlgorithm {algorithm} is not supported.")


def check_signing_algorithm(key_spec: KeySpec, algorithm: SigningAlgorithm) -> None:
    """Raise unless ``algorithm`` is one this service can use with ``key_spec`` for Sign/Verify."""
    if algorithm not in AWS_SIGNING_ALGORITHMS.get(key_spec, ()):
        raise _incompatible(algorithm, key_spec)
    require_supported_key_spec(key_spec)
    if algorithm in UNSUPPORTED_SIGNING_ALGORITHMS:
        raise UnsupportedOperation(f"SigningAlgorithm {algorithm} is not supported.")


def check_mac_algorithm(key_spec: KeySpec, algorithm: MacAlgorithm) -> None:
    """Raise unless ``algorithm`` is the MAC algorithm of ``key_spec``."""
    if algorithm not in AWS_MAC_ALGORITHMS.get(key_spec, ()):
        raise _incompatible(algorithm, key_spec)


def check_key_agreement_algorithm(key_spec: KeySpec, algorithm: KeyAgreementAlgorithm) -> None:
    """Raise unless ``algorithm`` is usable with ``key_spec`` for DeriveSharedSecret."""
    if algorithm not in AWS_KEY_AGREEMENT_ALGORITHMS.get(key_spec, ()):
        raise _incompatible(algorithm, key_spec)
    require_supported_key_spec(key_spec)


def check_encapsulation_algorithm(key_spec: KeySpec, algorithm: EncapsulationAlgorithm) -> None:
    """Raise unless ``algorithm`` is usable with ``key_spec`` for Encapsulate/Decapsulate (ML_KEM, ML-KEM keys)."""
    if algorithm not in AWS_ENCAPSULATION_ALGORITHMS.get(key_spec, ()):
        raise _incompatible(algorithm, key_spec)
    require_supported_key_spec(key_spec)


@dataclass(frozen=True, slots=True)
class KeyAlgorithms:
    """The algorithm lists DescribeKey/GetPublicKey report for a key; empty lists are omitted on the wire."""

    encryption_algorithms: tuple[EncryptionAlgorithm, ...] = ()
    signing_algorithms: tuple[SigningAlgorithm, ...] = ()
    mac_algorithms: tuple[MacAlgorithm, ...] = ()
    key_agreement_algorithms: tuple[KeyAgreementAlgorithm, ...] = ()
    encapsulation_algorithms: tuple[EncapsulationAlgorithm, ...] = ()

    def members(self) -> dict[str, list[str]]:
        """The non-empty lists under their KeyMetadata / GetPublicKey member names, as wire strings."""
        lists = {
            "EncryptionAlgorithms": self.encryption_algorithms,
            "SigningAlgorithms": self.signing_algorithms,
            "MacAlgorithms": self.mac_algorithms,
            "KeyAgreementAlgorithms": self.key_agreement_algorithms,
            "EncapsulationAlgorithms": self.encapsulation_algorithms,
        }
        return {member: [str(value) for value in values] for member, values in lists.items() if values}


def key_algorithms(key_spec: KeySpec, key_usage: KeyUsage) -> KeyAlgorithms:
    """The algorithms a key of this spec and usage can use *here* (AWS's lists minus what is unimplemented).

    Only the list matching the usage is filled: an RSA SIGN_VERIFY key reports signing algorithms only.
    ECC_NIST_EDWARDS25519 reports ED25519_SHA_512 and ED25519_PH_SHA_512, as AWS does.
    """
    if key_usage is KeyUsage.ENCRYPT_DECRYPT:
        return KeyAlgorithms(
            encryption_algorithms=tuple(
                a
                for a in AWS_ENCRYPTION_ALGORITHMS.get(key_spec, ())
                if a not in UNSUPPORTED_ENCRYPTION_ALGORITHMS
            )
        )
    if key_usage is KeyUsage.SIGN_VERIFY:
        return KeyAlgorithms(
            signing_algorithms=tuple(
                a for a in AWS_SIGNING_ALGORITHMS.get(key_spec, ()) if a not in UNSUPPORTED_SIGNING_ALGORITHMS
            )
        )
    if key_usage is KeyUsage.GENERATE_VERIFY_MAC:
        return KeyAlgorithms(mac_algorithms=AWS_MAC_ALGORITHMS.get(key_spec, ()))
    if key_usage is KeyUsage.KEY_AGREEMENT:
        return KeyAlgorithms(key_agreement_algorithms=AWS_KEY_AGREEMENT_ALGORITHMS.get(key_spec, ()))
    if key_usage is KeyUsage.ENCAPSULATE_DECAPSULATE:
        return KeyAlgorithms(encapsulation_algorithms=AWS_ENCAPSULATION_ALGORITHMS.get(key_spec, ()))
    return KeyAlgorithms()

"""Errors raised by the crypto core, each carrying the AWS KMS exception name it maps onto.

Every error has ``code`` (the AWS ``__type``, e.g. ``"InvalidCiphertextException"``) and ``message`` (the text
AWS sends, empty where AWS sends it empty). The Django side maps ``code`` onto its own exception hierarchy
once.

Messages are built only from enum names, integers and key ARNs: never from key material, plaintext,
messages, signatures, MACs or any other caller data. ``repr`` shows the code and message and nothing else. Errors raised
while handling an exception from ``cryptography`` are raised ``from None`` so no secret-bearing context is
chained.
"""

from __future__ import annotations

from typing import ClassVar


class CryptoError(Exception):
    """Base class: an AWS exception name (``code``) and AWS's message (``message``)."""

    code: ClassVar[str] = "KMSInternalException"
    default_message: ClassVar[str] = ""

    def __init__(self, message: str | None = None) -> None:
        self.message: str = self.default_message if message is None else message
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"


class InvalidCiphertext(CryptoError):
    """Tampered, truncated or foreign ciphertext, wrong encryption context or wrong key material.

    AWS sends this with an empty message, whatever the cause; so do we (the cause is never revealed).
    """

    code = "InvalidCiphertextException"


class IncorrectKey(CryptoError):
    """Decrypt/ReEncrypt named a KeyId other than the key that produced the ciphertext."""

    code = "IncorrectKeyException"
    default_message = "The key ID in the request does not identify a CMK that can perform this operation."


class CryptoValidationError(CryptoError):
    """A parameter AWS rejects with ``ValidationException`` (sizes, digest lengths, spec/usage pairs)."""

    code = "ValidationException"


class InvalidKeyUsage(CryptoError):
    """The key's usage or spec does not allow this operation or algorithm."""

    code = "InvalidKeyUsageException"


class InvalidSignature(CryptoError):
    """``Verify`` found the signature invalid. AWS sends an empty message."""

    code = "KMSInvalidSignatureException"


class InvalidMac(CryptoError):
    """``VerifyMac`` found the MAC invalid. AWS sends an empty message."""

    code = "KMSInvalidMacException"


class UnsupportedOperation(CryptoError):
    """A key spec or algorithm that AWS has but this service does not implement (SM2, ML_KEM_512, ...)."""

    code = "UnsupportedOperationException"


class KeyMaterialError(CryptoError):
    """Stored key material is unusable (wrong length, type, or corrupt): a server fault, not the caller's."""

    code = "KMSInternalException"
    default_message = "The key material is not usable for this key."


def length_error(
    member: str, *, minimum: int | None = None, maximum: int | None = None
) -> CryptoValidationError:
    """AWS's (Coral) message for a length constraint on a *sensitive* member: the value is never echoed.

    ``length_error("plaintext", maximum=4096)`` -> ``1 validation error detected: Value at 'plaintext' failed
    to satisfy constraint: Member must have length less than or equal to 4096``.
    """
    if maximum is not None:
        constraint = f"Member must have length less than or equal to {maximum}"
    elif minimum is not None:
        constraint = f"Member must have length greater than or equal to {minimum}"
    else:
        raise ValueError("length_error needs a minimum or a maximum")
    return CryptoValidationError(
        f"1 validation error detected: Value at '{member}' failed to satisfy constraint: {constraint}"
    )


def value_range_error(
    member: str, value: int, *, minimum: int | None = None, maximum: int | None = None
) -> CryptoValidationError:
    """AWS's (Coral) message for an integer range constraint, which does echo the (non-secret) value.

    ``value_range_error("numberOfBytes", 1025, maximum=1024)`` -> ``1 validation error detected: Value '1025'
    at 'numberOfBytes' failed to satisfy constraint: Member must have value less than or equal to 1024``.
    """
    if maximum is not None:
        constraint = f"Member must have value less than or equal to {maximum}"
    elif minimum is not None:
        constraint = f"Member must have value greater than or equal to {minimum}"
    else:
        raise ValueError("value_range_error needs a minimum or a maximum")
    return CryptoValidationError(
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: "
        f"{constraint}"
    )

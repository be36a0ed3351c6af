"""The one error hierarchy, named after the AWS exceptions.

Services raise these; each interface maps them once (the KMS endpoint to `{"__type", "message"}`, the REST API
to its JSON error body, the console to an inline message). Messages must never contain secrets: they are
returned to callers and written to the audit trail.
"""

from __future__ import annotations

import re

from kmsconsole.core.text import shortened


class KmsError(Exception):
    """Base class: `code` is the AWS exception name, `status` the HTTP status AWS sends on the wire."""

    code = "KMSInternalException"
    status = 400
    # AWS sends `Message` (capital M) for AccessDenied and `message` for the modeled errors; botocore reads both.
    message_field = "message"
    # Server faults are retryable by SDKs; client errors are not.
    fault = False
    # The REST API's `detail`: the fields or parameters the error is about, where it names them.
    detail: object = None

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message}" if self.message else self.code


def _error(
    name: str, *, status: int = 400, fault: bool = False, message_field: str = "message"
) -> type[KmsError]:
    cls = type(
        name, (KmsError,), {"code": name, "status": status, "fault": fault, "message_field": message_field}
    )
    return cls


# Authentication (SigV4) errors: the standard AWS JSON-protocol names.
MissingAuthenticationTokenException = _error("MissingAuthenticationTokenException")
IncompleteSignatureException = _error("IncompleteSignatureException")
UnrecognizedClientException = _error("UnrecognizedClientException")
InvalidSignatureException = _error("InvalidSignatureException")
ExpiredTokenException = _error("ExpiredTokenException")

# Protocol errors.
UnknownOperationException = _error("UnknownOperationException")
SerializationException = _error("SerializationException")
ValidationException = _error("ValidationException")
ThrottlingException = _error("ThrottlingException")

# Authorization.
AccessDeniedException = _error("AccessDeniedException", message_field="Message")

# Modeled KMS errors (HTTP 400 on the real wire, whatever the Smithy traits say: kms-spec §2.4).
NotFoundException = _error("NotFoundException")
AlreadyExistsException = _error("AlreadyExistsException")
ConflictException = _error("ConflictException")
DisabledException = _error("DisabledException")
KMSInvalidStateException = _error("KMSInvalidStateException")
InvalidArnException = _error("InvalidArnException")
InvalidAliasNameException = _error("InvalidAliasNameException")
InvalidMarkerException = _error("InvalidMarkerException")
InvalidGrantIdException = _error("InvalidGrantIdException")
InvalidGrantTokenException = _error("InvalidGrantTokenException")
InvalidKeyUsageException = _error("InvalidKeyUsageException")
InvalidCiphertextException = _error("InvalidCiphertextException")
IncorrectKeyException = _error("IncorrectKeyException")
KMSInvalidSignatureException = _error("KMSInvalidSignatureException")
KMSInvalidMacException = _error("KMSInvalidMacException")
LimitExceededException = _error("LimitExceededException")
MalformedPolicyDocumentException = _error("MalformedPolicyDocumentException")
TagException = _error("TagException")
UnsupportedOperationException = _error("UnsupportedOperationException")
DryRunOperationException = _error("DryRunOperationException")
CustomKeyStoreNotFoundException = _error("CustomKeyStoreNotFoundException")

# IAM-side errors used by the principals service (the names IAM itself uses).
EntityAlreadyExistsException = _error("EntityAlreadyExists")
NoSuchEntityException = _error("NoSuchEntity")
# DeleteUser, DeleteRole, DeleteGroup on an entity that still has what AWS makes you remove first (HTTP 409).
DeleteConflictException = _error("DeleteConflict", status=409)

# Server faults (HTTP 500, retryable).
KMSInternalException = _error("KMSInternalException", status=500, fault=True)
KeyUnavailableException = _error("KeyUnavailableException", status=500, fault=True)
DependencyTimeoutException = _error("DependencyTimeoutException", status=500, fault=True)

_BY_CODE: dict[str, type[KmsError]] = {
    cls.code: cls for cls in list(globals().values()) if isinstance(cls, type) and issubclass(cls, KmsError)
}


def error_for_code(code: str, message: str = "") -> KmsError:
    """Build our error for an AWS exception name coming from a pure core (engine, crypto)."""
    return _BY_CODE.get(code, KMSInternalException)(message)


# AWS's resource for a Decrypt (or ReEncrypt source) whose key the request did not name and the caller may not be
# told of: the answer names no key (keys.services.crypto), and the caller's side of the audit trail recognises such
# an answer by these words (kmsconsole.audit.shown.undisclosed_to_caller).
CIPHERTEXT_RESOURCE = "the resource associated with this ciphertext"
# The reason recorded (keys.services.crypto) and shown on the caller's side (kmsconsole.audit.shown) for a request
# refused on a ciphertext whose key the caller may not be told of: the same words whether the key exists in another
# account (its owner reads the whole decision) or nowhere.
UNDISCLOSED_REASON = (
    "denied: the ciphertext names no key this caller may use (none exists in this Region, or no resource-based "
    "policy allows the request, or one denies it)"
)


def ciphertext_denied_message(caller_arn: str, action: str) -> str:
    """AWS's AccessDeniedException message for a ciphertext whose key does not exist in this Region or does not let
    the caller in, one sentence for all three, so it tells neither."""
    return (
        f"User: {caller_arn} is not authorized to perform: {action} on {CIPHERTEXT_RESOURCE} because the "
        "resource does not exist in this Region, no resource-based policies allow access, or a resource-based "
        "policy explicitly denies access"
    )


def model_constraint_error(member: str, value: object, constraint: str) -> KmsError:
    """AWS's (Coral's) ValidationException for one member that breaks its model's constraint. The KMS endpoint's
    model check words its own; the services use this for the interfaces that reach them unchecked (REST API,
    console), so every interface gives the same message. `member` is the path as AWS prints it (camelCase)."""
    shown = shortened(str(value))  # at most SHOWN_CHARS characters of the value, as AWS echoes it
    return ValidationException(
        f"1 validation error detected: Value '{shown}' at '{member}' failed to satisfy constraint: {constraint}"
    )


def check_value_range(member: str, value: int, *, minimum: int, maximum: int) -> None:
    """A number outside the range the service enforces, where that range is tighter than the service model's
    (so the wire validation has not caught it already)."""
    if minimum <= value <= maximum:
        return
    bound = f"greater than or equal to {minimum}" if value < minimum else f"less than or equal to {maximum}"
    raise model_constraint_error(member, value, f"Member must have value {bound}")


def check_length(member: str, value: str, *, minimum: int = 0, maximum: int) -> None:
    """A text member outside its model's length bounds."""
    if minimum <= len(value) <= maximum:
        return
    bound = (
        f"greater than or equal to {minimum}" if len(value) < minimum else f"less than or equal to {maximum}"
    )
    raise model_constraint_error(member, value, f"Member must have length {bound}")


def check_pattern(member: str, value: str, pattern: str) -> None:
    """A text member that does not match its model's pattern (`pattern` as the model writes it, ^...$)."""
    if re.fullmatch(pattern, value) is None:
        raise model_constraint_error(
            member, value, f"Member must satisfy regular expression pattern: {pattern}"
        )

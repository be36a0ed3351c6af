"""Cryptographic operations: Encrypt, Decrypt, ReEncrypt, GenerateDataKey*, GenerateDataKeyPair*, Sign, Verify,
GenerateMac, VerifyMac, DeriveSharedSecret, GetPublicKey (Encapsulate and Decapsulate: keys.services.encapsulation).

Order of checks (kms-spec §4.2): the key (NotFoundException; AccessDeniedException when a ciphertext header names
a key that exists nowhere, below), authorization (AccessDeniedException, with the encryption context and the
condition keys of kms-spec §7.6), the key state, the key's usage, spec and algorithm (InvalidKeyUsageException),
then sizes and semantics (ValidationException), including what can be seen of a ciphertext without the key's
material (its length and header: the key and material version it names); only then is material unsealed. A dry run
(DryRun) stops there, with DryRunOperationException, before anything is unsealed
(`OperationContext.stop_if_dry_run`; `keys.materials.open_material` refuses a dry run's context). The request's
GrantTokens reach every key check through the OperationContext. Plaintexts, data keys, private keys, messages,
signatures and MACs live only in the values returned here: never in an error message, a log line or the audit
record.

Decisions where AWS documents nothing:

- A header naming an unknown material version of its key is InvalidCiphertextException (empty message). The
  material is looked up only after authorization, so a caller not allowed on the key learns nothing of its
  rotations. A header naming an unknown key: below.
- Without a KeyId, the key is found by the header's id in any account and its policy decides. A denial on a
  key of the caller's own account is AccessDeniedException naming it, as on AWS (DescribeKey with the bare
  key id tells as much). A key the caller may not be told of (the header's id names no key, or another
  account's key refuses the caller) is answered as AWS answers a Decrypt whose key it does not name:
  AccessDeniedException "User: <caller> is not authorized to perform: kms:Decrypt on the resource associated
  with this ciphertext because the resource does not exist in this Region, no resource-based policies allow
  access, or a resource-based policy explicitly denies access" (kms:ReEncryptFrom for ReEncrypt), no key ARN,
  no explanation header, the same words whichever it is: a blob never tells whether a key id exists elsewhere
  or who owns it. A bare key id as KeyId may name another account's key when the header names the same key
  ("a short key ID is also acceptable" for symmetric ciphertext); such a key the caller may not be told of is
  answered with the NotFoundException the key id alone got, as AWS resolves a key id in the caller's account
  only. Both are recorded as denials (an AccessDeniedException; `UndisclosedKeyId`): the key owner's side of
  the trail keeps the key and the whole decision; the caller's side shows neither
  (kmsconsole.audit.shown.undisclosed_to_caller).
  Named by ARN, a key is denied with AccessDeniedException as usual: the ARN already says where it is.
- ReEncrypt resolves the destination (NotFoundException) before it looks for the source, so that a source key the
  caller may not be told of is refused at the same point whether it exists nowhere or in another account, whatever
  the destination; then it authorizes kms:ReEncryptFrom on the source, then kms:ReEncryptTo on the destination
  (both with kms:ReEncryptOnSameKey). The audit record is filed under the key whose check or step failed, with the
  decision on that key: the source when the source was denied, or its state, usage, algorithm or the ciphertext failed
  (then a use of a source pending deletion is notable), the destination when it was denied or its own checks or
  the encryption failed. An allowed ReEncrypt is filed under the destination with its decision; its response
  elements name both keys, and the source key's owner reads it too (kmsconsole.audit.scope).
- An encryption context with an asymmetric key is ValidationException ("EncryptionContext is not supported
  when encrypting/decrypting with asymmetric CMKs."); ignoring it would pretend a binding that is not there.
- GetPublicKey on a key without a public key (symmetric, HMAC) is UnsupportedOperationException.
- DryRun with DryRunModifiers [IGNORE_CIPHERTEXT] needs the (source) KeyId and checks all but the ciphertext.
- A dry run opens key material only where the answer depends on it (`kmsconsole.operations.DRY_RUN_NEEDS_MATERIAL`):
  Decrypt and ReEncrypt decrypt the ciphertext (AWS's DryRunModifiers IGNORE_CIPHERTEXT exists to skip exactly
  that "ciphertext validation"), and ReEncrypt then checks that the plaintext fits its destination; VerifyMac
  compares the MAC, as Verify's dry run checks the signature with the public key. Everywhere else (Encrypt,
  GenerateDataKey*, GenerateDataKeyPair*, Sign, GenerateMac, DeriveSharedSecret, Decapsulate) nothing that
  passed the checks before the work can fail in it, so the dry run stops before any material is unsealed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from keys import crypto as core
from keys.materials import current_material, material_version, open_material
from keys.models import Key, KeyMaterial
from keys.selectors import key_by_id, resolve_key
from keys.services.access import authorize_on_key, check_state, key_for
from kmsconsole.audit.recorder import KeyDecision
from kmsconsole.core import errors
from kmsconsole.operations import OperationContext

EncryptionContext = Mapping[str, str]

DEFAULT_ENCRYPTION_ALGORITHM = core.EncryptionAlgorithm.SYMMETRIC_DEFAULT
DEFAULT_MESSAGE_TYPE = core.MessageType.RAW
IGNORE_CIPHERTEXT = "IGNORE_CIPHERTEXT"
ASYMMETRIC_CONTEXT_MESSAGE = (
    "EncryptionContext is not supported when encrypting/decrypting with asymmetric CMKs."
)
CIPHERTEXT_REQUIRED_MESSAGE = (
    "1 validation error detected: Value null at 'ciphertextBlob' failed to satisfy constraint: "
    "Member must not be null"
)
_SYMMETRIC = core.KeySpec.SYMMETRIC_DEFAULT


class UndisclosedKeyId(errors.AccessDeniedException):
    """A bare KeyId that named no key of the caller's account, whose ciphertext names a key the caller may not be
    told of: answered with the NotFoundException the key id alone got; recorded as the denial it is (an
    AccessDeniedException subclass, so the event's decision is "denied", whether a key was refused or none
    exists, and the key owner reads it as such)."""

    code = "NotFoundException"
    message_field = "message"


# --- Results (secrets are kept out of repr) --------------------------------------------------------


@dataclass(frozen=True)
class Output:
    """What Encrypt, Sign and GenerateMac make: a blob (ciphertext, signature, MAC) and its algorithm."""

    key: Key
    blob: bytes = field(repr=False)
    algorithm: str


@dataclass(frozen=True)
class Decrypted:
    key: Key
    plaintext: bytes = field(repr=False)
    encryption_algorithm: str
    # Symmetric keys only (AWS omits KeyMaterialId for asymmetric keys).
    key_material_id: str | None


@dataclass(frozen=True)
class ReEncrypted:
    source_key: Key
    destination_key: Key
    ciphertext_blob: bytes = field(repr=False)
    source_encryption_algorithm: str
    destination_encryption_algorithm: str
    source_key_material_id: str | None
    destination_key_material_id: str | None


@dataclass(frozen=True)
class DataKey:
    key: Key
    plaintext: bytes = field(repr=False)
    ciphertext_blob: bytes = field(repr=False)
    key_material_id: str | None


@dataclass(frozen=True)
class DataKeyPair:
    key: Key
    key_pair_spec: str
    public_key: bytes
    private_key_plaintext: bytes = field(repr=False)
    private_key_ciphertext_blob: bytes = field(repr=False)
    key_material_id: str | None


@dataclass(frozen=True)
class PublicKey:
    key: Key
    public_key: bytes
    algorithms: core.KeyAlgorithms


# --- Shared steps -----------------------------------------------------------------------------------------


class _CryptoErrors:
    """Map the crypto core's errors onto the service errors (their messages never carry secrets). A class, not a
    generator context manager: it guards several steps of every cryptographic request, and contextlib's machinery
    cost more than the step it guarded."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, core.CryptoError):
            raise errors.error_for_code(exc.code, exc.message) from None


_CRYPTO_ERRORS = _CryptoErrors()


def _crypto_errors() -> _CryptoErrors:
    return _CRYPTO_ERRORS


# A key's spec as the crypto core's enum: a dict lookup (calling the enum costs a microsecond, several times a
# request); a stored spec the enum does not know still raises ValueError, as the enum call did.
_KEY_SPECS = {spec.value: spec for spec in core.KeySpec}
_KEY_USAGES = {usage.value: usage for usage in core.KeyUsage}


def _spec(key: Key) -> core.KeySpec:
    try:
        return _KEY_SPECS[key.key_spec]
    except KeyError:
        raise ValueError(f"{key.key_spec!r} is not a valid KeySpec") from None


def _check_usage(key: Key, operation: str) -> None:
    with _crypto_errors():
        core.check_key_usage(key_arn=key.arn, key_usage=_KEY_USAGES[key.key_usage], operation=operation)


def _check_encryption(
    key: Key, algorithm: core.EncryptionAlgorithm, context: EncryptionContext | None
) -> None:
    """The algorithm must suit the key's spec; asymmetric keys take no encryption context."""
    with _crypto_errors():
        core.check_encryption_algorithm(_spec(key), algorithm)
    if _spec(key) is not _SYMMETRIC and context:
        raise errors.ValidationException(ASYMMETRIC_CONTEXT_MESSAGE)


def _check_plaintext(key: Key, plaintext: bytes, algorithm: core.EncryptionAlgorithm) -> None:
    """What encrypting `plaintext` under `key` would refuse (its size for the spec and algorithm), checked before
    any material is opened."""
    with _crypto_errors():
        if _spec(key) is _SYMMETRIC:
            core.check_symmetric_plaintext(plaintext, encryption_algorithm=algorithm)
        else:
            core.check_asymmetric_plaintext(plaintext, key_spec=_spec(key), encryption_algorithm=algorithm)


def _encrypt_under(
    ctx: OperationContext,
    key: Key,
    plaintext: bytes,
    *,
    algorithm: core.EncryptionAlgorithm,
    context: EncryptionContext | None,
) -> tuple[bytes, str | None]:
    """Encrypt with the key's current material (symmetric) or its stored public key (RSA); returns the blob and
    the KeyMaterialId used (None for asymmetric keys)."""
    if _spec(key) is _SYMMETRIC:
        material = current_material(key)
        with _crypto_errors():
            blob = core.encrypt_symmetric(
                plaintext,
                key_id=key.key_id,
                key_material_id=core.parse_key_material_id(material.material_id),
                material=open_material(ctx, material),
                encryption_context=context,
                encryption_algorithm=algorithm,
            )
        return blob, material.material_id
    with _crypto_errors():
        blob = core.encrypt_asymmetric(
            plaintext,
            key_spec=_spec(key),
            public_key_der=bytes(key.public_key_der or b""),
            encryption_algorithm=algorithm,
        )
    return blob, None


@dataclass(frozen=True)
class _Sealed:
    """What decrypting a ciphertext needs, found and checked without opening anything: the material version to
    decrypt it with, and the symmetric ciphertext's header (None for RSA ciphertext, which has none)."""

    material: KeyMaterial
    header: core.CiphertextHeader | None


def _decryption_material(
    key: Key, blob: bytes, *, header: core.CiphertextHeader | None, algorithm: core.EncryptionAlgorithm
) -> _Sealed:
    """The material to decrypt `blob` with, once what can be seen without it is checked: an RSA ciphertext of the
    modulus' length; a symmetric header naming this key (IncorrectKeyException otherwise) and a material version
    of it that exists. The caller has authorized and checked the key."""
    if _spec(key) is not _SYMMETRIC:
        with _crypto_errors():
            core.check_asymmetric_ciphertext(blob, key_spec=_spec(key), encryption_algorithm=algorithm)
        return _Sealed(material=current_material(key), header=None)
    with _crypto_errors():
        if header is None:
            header = core.parse_ciphertext_header(blob)
        if header.key_id != key.key_id:
            raise core.IncorrectKey()
    material = material_version(key, core.key_material_id_hex(header.key_material_id))
    if material is None:
        raise errors.InvalidCiphertextException("")
    return _Sealed(material=material, header=header)


def _decrypt_with(
    ctx: OperationContext,
    key: Key,
    blob: bytes,
    sealed: _Sealed,
    *,
    algorithm: core.EncryptionAlgorithm,
    context: EncryptionContext | None,
) -> tuple[bytes, str | None]:
    """Decrypt with the material `_decryption_material` found: the version the header names (symmetric) or the
    private key (RSA). Returns the plaintext and the KeyMaterialId (None for RSA)."""
    if sealed.header is None:
        with _crypto_errors():
            plaintext = core.decrypt_asymmetric(
                blob,
                key_spec=_spec(key),
                material=open_material(ctx, sealed.material),
                encryption_algorithm=algorithm,
            )
        return plaintext, None
    with _crypto_errors():
        plaintext = core.decrypt_symmetric(
            blob,
            key_id=key.key_id,
            key_material_id=sealed.header.key_material_id,
            material=open_material(ctx, sealed.material),
            encryption_context=context,
            encryption_algorithm=algorithm,
        )
    return plaintext, sealed.material.material_id


@dataclass(frozen=True)
class _Source:
    """The key a ciphertext is to be decrypted with, and how the request named it."""

    key: Key
    # Set when the key was found through the ciphertext header rather than a KeyId the caller resolved.
    header: core.CiphertextHeader | None = None
    request_alias: str | None = None
    # What a bare KeyId alone got (it named no key of the caller's account) when the header then named the key.
    not_found: errors.NotFoundException | None = None
    # Only the ciphertext named the key, and it is another account's: a refusal must not tell that it exists (see
    # the module docstring).
    undisclosed: bool = False


def _undisclosed_key(
    ctx: OperationContext, *, action: str | None, not_found: errors.NotFoundException | None
) -> errors.AccessDeniedException:
    """The answer for a ciphertext whose key the caller may not be told of (see the module docstring)."""
    if not_found is not None:
        return UndisclosedKeyId(not_found.message)
    return errors.AccessDeniedException(
        errors.ciphertext_denied_message(ctx.caller.arn, action or ctx.operation.action)
    )


def _header_source(
    ctx: OperationContext,
    header: core.CiphertextHeader,
    *,
    action: str | None,
    not_found: errors.NotFoundException | None = None,
) -> _Source:
    """The key the header names, in any account. One that exists nowhere is refused as another account's key the
    caller may not use is (`_authorize_source`): the same answer, and the same denial on the caller's side of
    the trail (no key, `errors.UNDISCLOSED_REASON`)."""
    key = key_by_id(header.key_id)
    if key is None:
        # Recorded by hand, not through `authorize_on_key`: there is no key to authorize on, and the refusal must be
        # recorded as `_authorize_source` records another account's key refusing the caller.
        ctx.audit.authorized(allowed=False, reason=errors.UNDISCLOSED_REASON)
        raise _undisclosed_key(ctx, action=action, not_found=not_found)
    undisclosed = key.account.account_id != ctx.caller.account_id
    return _Source(key, header=header, not_found=not_found, undisclosed=undisclosed)


def _header_naming(key_id: str, blob: bytes | None) -> core.CiphertextHeader | None:
    """The blob's header if `key_id` is a bare key id naming the key it names (possibly in another account)."""
    if blob is None or key_id.startswith(("arn:", "alias/")):
        return None
    try:
        header, parsed = core.parse_ciphertext_header(blob), uuid.UUID(key_id)
    except (core.CryptoError, ValueError):
        return None
    return header if str(parsed) == key_id.lower() and parsed == header.key_id else None


def _key_id_required(member: str) -> errors.ValidationException:
    return errors.ValidationException(
        f"{member} is required when DryRunModifiers includes {IGNORE_CIPHERTEXT}."
    )


def _locate_source(
    ctx: OperationContext, *, key_id: str | None, blob: bytes | None, member: str, action: str | None
) -> _Source:
    """Find the key to decrypt with: by KeyId when given, else by the symmetric ciphertext's header."""
    if key_id is None:
        if blob is None:
            raise _key_id_required(member)
        with _crypto_errors():
            header = core.parse_ciphertext_header(blob)
        return _header_source(ctx, header, action=action)
    try:
        resolved = resolve_key(key_id, caller_account=ctx.caller.account_id, operation=ctx.operation)
    except errors.NotFoundException as not_found:
        header = _header_naming(key_id, blob)
        if header is None:
            raise
        return _header_source(ctx, header, action=action, not_found=not_found)
    return _Source(resolved.key, request_alias=resolved.request_alias)


def _authorize_source(
    ctx: OperationContext,
    source: _Source,
    *,
    action: str | None,
    context: EncryptionContext | None,
    condition_values: Mapping[str, Any],
) -> None:
    ctx.audit.key_arn = source.key.arn
    try:
        authorize_on_key(
            ctx,
            source.key,
            action=action,
            request_alias=source.request_alias,
            encryption_context=context,
            condition_values=condition_values,
        )
    except errors.KmsError as refused:
        if not source.undisclosed or refused.fault:
            raise
        # Any refusal, not only the policy's (an integrated service the caller may not act as, a grant token of
        # another key): a key that exists nowhere gets none of them. The key owner's side of the trail keeps the
        # key and the whole decision; the caller gets no trace of the key owner's policy.
        if not isinstance(refused, errors.AccessDeniedException):
            # Recorded by hand, a deliberate exception to `authorize`: the refusal came before the policy decided
            # (which would have recorded it), and it is now answered, and so recorded, as a denial.
            ctx.audit.authorized(allowed=False, reason=f"denied: {refused.code}: {refused.message}")
        ctx.audit.trace = ()
        raise _undisclosed_key(ctx, action=action, not_found=source.not_found) from None


def _check_source_usage(source: _Source, ctx: OperationContext) -> None:
    """Usage check for the key a ciphertext is decrypted with (after its state)."""
    if source.header is not None and _spec(source.key) is not _SYMMETRIC:
        # Only symmetric ciphertext has a header: one naming another kind of key is not ours.
        raise errors.InvalidCiphertextException("")
    _check_usage(source.key, ctx.operation.name)


def _ciphertext(ctx: OperationContext, blob: bytes | None, *, ignore_ciphertext: bool) -> bytes | None:
    """The ciphertext to decrypt, or None for a dry run that ignores it (which alone may omit it)."""
    if ignore_ciphertext and ctx.dry_run:
        return None
    if blob is None:
        raise errors.ValidationException(CIPHERTEXT_REQUIRED_MESSAGE)
    return blob


def _sealed_ciphertext(
    ctx: OperationContext,
    source: _Source,
    blob: bytes | None,
    *,
    algorithm: core.EncryptionAlgorithm,
) -> tuple[bytes, _Sealed]:
    """The ciphertext and the material to decrypt it with, once checked (`_decryption_material`). A dry run that
    ignores the ciphertext (IGNORE_CIPHERTEXT) ends here, before anything is unsealed; any other goes on to
    decrypt it, which is what tells whether the request would succeed."""
    if blob is None:  # only a dry run that ignores the ciphertext leaves it out (`_ciphertext`)
        ctx.stop_if_dry_run()
        raise errors.KMSInternalException("There is no ciphertext to decrypt.")
    return blob, _decryption_material(source.key, blob, header=source.header, algorithm=algorithm)


def _algorithm(value: str | None) -> core.EncryptionAlgorithm:
    return core.EncryptionAlgorithm(value) if value else DEFAULT_ENCRYPTION_ALGORITHM


def _stop_if_dry_run(ctx: OperationContext, *working_keys: Key, symmetric_only: bool = False) -> None:
    """A dry run ends here, once the current material rows the work would use (those of `working_keys`; with
    `symmetric_only`, of the symmetric ones: an RSA key encrypts with its stored public key) pass their row checks,
    as the real request checks them: a material row changed in the database is refused (KMSInternalException) by
    both. Nothing is unsealed."""
    if ctx.dry_run:
        for key in working_keys:
            if not symmetric_only or _spec(key) is _SYMMETRIC:
                current_material(key)
        ctx.stop_if_dry_run()


# --- Services ---------------------------------------------------------------------------------------------


def key_encrypt(
    *,
    ctx: OperationContext,
    key_id: str,
    plaintext: bytes,
    encryption_context: EncryptionContext | None = None,
    encryption_algorithm: str | None = None,
) -> Output:
    """Encrypt: up to 4096 bytes under a symmetric key (self-describing blob, context bound as AAD) or RSA OAEP
    under an asymmetric ENCRYPT_DECRYPT key (algorithm required, AWS's size limits)."""
    algorithm = _algorithm(encryption_algorithm)
    key = key_for(
        ctx,
        key_id,
        encryption_context=encryption_context,
        condition_values={"kms:EncryptionAlgorithm": str(algorithm)},
    )
    _check_usage(key, ctx.operation.name)
    _check_encryption(key, algorithm, encryption_context)
    _check_plaintext(key, plaintext, algorithm)
    _stop_if_dry_run(ctx, key, symmetric_only=True)
    blob, _ = _encrypt_under(ctx, key, plaintext, algorithm=algorithm, context=encryption_context)
    return Output(key=key, blob=blob, algorithm=str(algorithm))


def key_decrypt(
    *,
    ctx: OperationContext,
    ciphertext_blob: bytes | None,
    key_id: str | None = None,
    encryption_context: EncryptionContext | None = None,
    encryption_algorithm: str | None = None,
    ignore_ciphertext: bool = False,
) -> Decrypted:
    """Decrypt: symmetric ciphertext names its key and material version in its header, so KeyId is optional
    (a KeyId naming another key is IncorrectKeyException, checked before decrypting); RSA ciphertext needs
    KeyId and the algorithm it was encrypted with.

    A dry run decrypts (whether the ciphertext decrypts is what decides the answer) and returns nothing; with
    ``ignore_ciphertext`` (DryRun + IGNORE_CIPHERTEXT) it checks everything but the ciphertext and opens nothing.
    """
    blob = _ciphertext(ctx, ciphertext_blob, ignore_ciphertext=ignore_ciphertext)
    algorithm = _algorithm(encryption_algorithm)
    source = _locate_source(ctx, key_id=key_id, blob=blob, member="KeyId", action=None)
    _authorize_source(
        ctx,
        source,
        action=None,
        context=encryption_context,
        condition_values={"kms:EncryptionAlgorithm": str(algorithm)},
    )
    check_state(ctx, source.key)
    _check_source_usage(source, ctx)
    _check_encryption(source.key, algorithm, encryption_context)
    ciphertext, sealed = _sealed_ciphertext(ctx, source, blob, algorithm=algorithm)
    plaintext, material_id = _decrypt_with(
        ctx, source.key, ciphertext, sealed, algorithm=algorithm, context=encryption_context
    )
    ctx.stop_if_dry_run()  # it decrypted: the request would have succeeded
    return Decrypted(
        key=source.key,
        plaintext=plaintext,
        encryption_algorithm=str(algorithm),
        key_material_id=material_id,
    )


def key_re_encrypt(
    *,
    ctx: OperationContext,
    ciphertext_blob: bytes | None,
    destination_key_id: str,
    source_key_id: str | None = None,
    source_encryption_context: EncryptionContext | None = None,
    destination_encryption_context: EncryptionContext | None = None,
    source_encryption_algorithm: str | None = None,
    destination_encryption_algorithm: str | None = None,
    ignore_ciphertext: bool = False,
) -> ReEncrypted:
    """ReEncrypt: decrypt under the source key and encrypt under the destination key inside the service; the
    plaintext never leaves it. Needs kms:ReEncryptFrom on the source and kms:ReEncryptTo on the destination
    (see the module docstring for the audit record)."""
    blob = _ciphertext(ctx, ciphertext_blob, ignore_ciphertext=ignore_ciphertext)
    source_algorithm = _algorithm(source_encryption_algorithm)
    destination_algorithm = _algorithm(destination_encryption_algorithm)
    if source_key_id is None and blob is None:
        raise _key_id_required("SourceKeyId")  # the request's own shape, before any key is looked up
    # The destination is resolved before the source is looked for: a source key the caller may not be told of is
    # refused when it is looked for if it exists nowhere (`_header_source`), after the destination if it is another
    # account's (`_authorize_source`); a destination that does not resolve must be answered before either, or its
    # NotFoundException would tell the two apart.
    destination = resolve_key(
        destination_key_id, caller_account=ctx.caller.account_id, operation=ctx.operation
    )
    source = _locate_source(
        ctx, key_id=source_key_id, blob=blob, member="SourceKeyId", action="kms:ReEncryptFrom"
    )
    same_key = {"kms:ReEncryptOnSameKey": source.key.pk == destination.key.pk}
    _authorize_source(
        ctx,
        source,
        action="kms:ReEncryptFrom",
        context=source_encryption_context,
        condition_values={"kms:EncryptionAlgorithm": str(source_algorithm), **same_key},
    )
    on_source = ctx.audit.on_key()
    ctx.audit.key_arn = destination.key.arn
    authorize_on_key(
        ctx,
        destination.key,
        action="kms:ReEncryptTo",
        request_alias=destination.request_alias,
        encryption_context=destination_encryption_context,
        condition_values={"kms:EncryptionAlgorithm": str(destination_algorithm), **same_key},
    )
    on_destination = ctx.audit.on_key()
    # Each check and step is filed under the key it is about, with that key's decision: a failure about the source
    # (its state, usage, algorithm, the ciphertext) reaches the source key's owner, never the destination's.
    steps: tuple[tuple[KeyDecision, Callable[[], object]], ...] = (
        (on_source, lambda: check_state(ctx, source.key)),
        (on_destination, lambda: check_state(ctx, destination.key)),
        (on_source, lambda: _check_source_usage(source, ctx)),
        (on_destination, lambda: _check_usage(destination.key, ctx.operation.name)),
        (on_source, lambda: _check_encryption(source.key, source_algorithm, source_encryption_context)),
        (
            on_destination,
            lambda: _check_encryption(destination.key, destination_algorithm, destination_encryption_context),
        ),
    )
    for side, check in steps:
        ctx.audit.file_under(side)
        check()
    if blob is not None:
        ctx.audit.file_under(on_source)
    # Without a ciphertext (a dry run that ignores it) this stops, filed under the destination as the allowed
    # request would be.
    ciphertext, sealed = _sealed_ciphertext(ctx, source, blob, algorithm=source_algorithm)
    plaintext, source_material_id = _decrypt_with(
        ctx, source.key, ciphertext, sealed, algorithm=source_algorithm, context=source_encryption_context
    )
    # The allowed event is filed under the destination; its response names the source too (SourceKeyId), which
    # brings it to the source key's owner as well (kmsconsole.audit.scope.key_owner_account).
    ctx.audit.file_under(on_destination)
    _check_plaintext(destination.key, plaintext, destination_algorithm)
    # It decrypted, and the plaintext fits the destination: the request would succeed.
    _stop_if_dry_run(ctx, destination.key, symmetric_only=True)
    new_blob, destination_material_id = _encrypt_under(
        ctx,
        destination.key,
        plaintext,
        algorithm=destination_algorithm,
        context=destination_encryption_context,
    )
    return ReEncrypted(
        source_key=source.key,
        destination_key=destination.key,
        ciphertext_blob=new_blob,
        source_encryption_algorithm=str(source_algorithm),
        destination_encryption_algorithm=str(destination_algorithm),
        source_key_material_id=source_material_id,
        destination_key_material_id=destination_material_id,
    )


def _data_key_encrypting_key(
    ctx: OperationContext,
    key_id: str,
    *,
    encryption_context: EncryptionContext | None,
    condition_values: Mapping[str, Any],
) -> Key:
    """The symmetric key GenerateDataKey* and GenerateDataKeyPair* encrypt under, authorized and checked."""
    key = key_for(
        ctx,
        key_id,
        encryption_context=encryption_context,
        condition_values={
            "kms:EncryptionAlgorithm": str(DEFAULT_ENCRYPTION_ALGORITHM),
            **condition_values,
        },
    )
    _check_usage(key, ctx.operation.name)
    with _crypto_errors():
        core.check_data_key_encrypting_key(key_spec=_spec(key), operation=ctx.operation.name)
    return key


def data_key_generate(
    *,
    ctx: OperationContext,
    key_id: str,
    key_spec: str | None = None,
    number_of_bytes: int | None = None,
    encryption_context: EncryptionContext | None = None,
) -> DataKey:
    """GenerateDataKey(WithoutPlaintext): a random data key (KeySpec AES_128/AES_256 or NumberOfBytes, exactly
    one) and its copy encrypted under a symmetric key; the handler drops the plaintext for the variant
    without it."""
    key = _data_key_encrypting_key(ctx, key_id, encryption_context=encryption_context, condition_values={})
    data_key_spec = core.DataKeySpec(key_spec) if key_spec else None
    with _crypto_errors():
        core.data_key_length(key_spec=data_key_spec, number_of_bytes=number_of_bytes)
    _stop_if_dry_run(ctx, key)
    with _crypto_errors():
        plaintext = core.generate_data_key(key_spec=data_key_spec, number_of_bytes=number_of_bytes)
    blob, material_id = _encrypt_under(
        ctx, key, plaintext, algorithm=DEFAULT_ENCRYPTION_ALGORITHM, context=encryption_context
    )
    return DataKey(key=key, plaintext=plaintext, ciphertext_blob=blob, key_material_id=material_id)


def data_key_pair_generate(
    *,
    ctx: OperationContext,
    key_id: str,
    key_pair_spec: str,
    encryption_context: EncryptionContext | None = None,
) -> DataKeyPair:
    """GenerateDataKeyPair(WithoutPlaintext): a new key pair (public DER SPKI, private DER PKCS#8) and the
    private key encrypted under a symmetric key."""
    key = _data_key_encrypting_key(
        ctx,
        key_id,
        encryption_context=encryption_context,
        condition_values={"kms:DataKeyPairSpec": key_pair_spec},
    )
    pair_spec = core.DataKeyPairSpec(key_pair_spec)
    with _crypto_errors():
        core.check_data_key_pair_spec(pair_spec)
    _stop_if_dry_run(ctx, key)  # before a pair is made
    with _crypto_errors():
        pair = core.generate_data_key_pair(pair_spec)
    blob, material_id = _encrypt_under(
        ctx, key, pair.private_key, algorithm=DEFAULT_ENCRYPTION_ALGORITHM, context=encryption_context
    )
    return DataKeyPair(
        key=key,
        key_pair_spec=key_pair_spec,
        public_key=pair.public_key,
        private_key_plaintext=pair.private_key,
        private_key_ciphertext_blob=blob,
        key_material_id=material_id,
    )


def _signing_key(
    ctx: OperationContext, key_id: str, signing_algorithm: str, message_type: str | None
) -> tuple[Key, core.SigningAlgorithm, core.MessageType]:
    algorithm = core.SigningAlgorithm(signing_algorithm)
    kind = core.MessageType(message_type) if message_type else DEFAULT_MESSAGE_TYPE
    values = {"kms:SigningAlgorithm": str(algorithm), "kms:MessageType": str(kind)}
    key = key_for(ctx, key_id, condition_values=values)
    _check_usage(key, ctx.operation.name)
    with _crypto_errors():
        core.check_signing_algorithm(_spec(key), algorithm)
    return key, algorithm, kind


def message_sign(
    *,
    ctx: OperationContext,
    key_id: str,
    message: bytes,
    signing_algorithm: str,
    message_type: str | None = None,
) -> Output:
    """Sign a message (RAW, hashed here), a digest (DIGEST, exactly the hash length) or, with an ML-DSA key, a
    64-byte mu (EXTERNAL_MU) with a SIGN_VERIFY key."""
    key, algorithm, kind = _signing_key(ctx, key_id, signing_algorithm, message_type)
    spec = _spec(key)
    with _crypto_errors():
        core.check_sign_input(message, key_spec=spec, signing_algorithm=algorithm, message_type=kind)
    _stop_if_dry_run(ctx, key)
    material = open_material(ctx, current_material(key))  # only for a message that can be signed
    with _crypto_errors():
        signature = core.sign(
            message, key_spec=spec, material=material, signing_algorithm=algorithm, message_type=kind
        )
    return Output(key=key, blob=signature, algorithm=str(algorithm))


def message_verify(
    *,
    ctx: OperationContext,
    key_id: str,
    message: bytes,
    signature: bytes,
    signing_algorithm: str,
    message_type: str | None = None,
) -> Key:
    """Verify with the key's stored public key (the private key stays sealed). A bad signature is
    KMSInvalidSignatureException with an empty message; there is no "invalid" answer."""
    key, algorithm, kind = _signing_key(ctx, key_id, signing_algorithm, message_type)
    with _crypto_errors():
        core.verify(
            message,
            signature,
            key_spec=_spec(key),
            public_key_der=bytes(key.public_key_der or b""),
            signing_algorithm=algorithm,
            message_type=kind,
        )
    ctx.stop_if_dry_run()  # the public key alone decided: a dry run tells whether the signature is valid
    return key


def _mac_key(ctx: OperationContext, key_id: str, mac_algorithm: str) -> tuple[Key, core.MacAlgorithm]:
    algorithm = core.MacAlgorithm(mac_algorithm)
    key = key_for(ctx, key_id, condition_values={"kms:MacAlgorithm": str(algorithm)})
    _check_usage(key, ctx.operation.name)
    with _crypto_errors():
        core.check_mac_algorithm(_spec(key), algorithm)
    return key, algorithm


def mac_generate(*, ctx: OperationContext, key_id: str, message: bytes, mac_algorithm: str) -> Output:
    """GenerateMac: the HMAC of a message (1..4096 bytes) under a GENERATE_VERIFY_MAC key."""
    key, algorithm = _mac_key(ctx, key_id, mac_algorithm)
    with _crypto_errors():
        core.check_mac_input(message, key_spec=_spec(key), mac_algorithm=algorithm)
    _stop_if_dry_run(ctx, key)
    with _crypto_errors():
        mac = core.generate_mac(
            message,
            key_spec=_spec(key),
            material=open_material(ctx, current_material(key)),
            mac_algorithm=algorithm,
        )
    return Output(key=key, blob=mac, algorithm=str(algorithm))


def mac_verify(*, ctx: OperationContext, key_id: str, message: bytes, mac: bytes, mac_algorithm: str) -> Key:
    """VerifyMac: compare in constant time; a mismatch is KMSInvalidMacException with an empty message."""
    key, algorithm = _mac_key(ctx, key_id, mac_algorithm)
    with _crypto_errors():
        core.check_mac_input(message, key_spec=_spec(key), mac_algorithm=algorithm)
    with _crypto_errors():
        core.verify_mac(
            message,
            mac,
            key_spec=_spec(key),
            material=open_material(ctx, current_material(key)),
            mac_algorithm=algorithm,
        )
    ctx.stop_if_dry_run()  # the MAC matched: the request would have succeeded
    return key


def shared_secret_derive(
    *, ctx: OperationContext, key_id: str, key_agreement_algorithm: str, public_key: bytes
) -> Output:
    """DeriveSharedSecret: the raw ECDH secret of a KEY_AGREEMENT key's private key and a peer's public key (DER
    SubjectPublicKeyInfo on the key's curve). kms:DeriveSharedSecret, with kms:KeyAgreementAlgorithm."""
    algorithm = core.KeyAgreementAlgorithm(key_agreement_algorithm)
    key = key_for(ctx, key_id, condition_values={"kms:KeyAgreementAlgorithm": str(algorithm)})
    _check_usage(key, ctx.operation.name)
    with _crypto_errors():
        core.check_key_agreement_input(public_key, key_spec=_spec(key), key_agreement_algorithm=algorithm)
    _stop_if_dry_run(ctx, key)
    with _crypto_errors():
        secret = core.derive_shared_secret(
            public_key,
            key_spec=_spec(key),
            material=open_material(ctx, current_material(key)),
            key_agreement_algorithm=algorithm,
        )
    return Output(key=key, blob=secret, algorithm=str(algorithm))


def public_key_get(*, ctx: OperationContext, key_id: str) -> PublicKey:
    """GetPublicKey: the DER SubjectPublicKeyInfo of an asymmetric key, with what it may be used for."""
    key = key_for(ctx, key_id)
    if key.public_key_der is None:
        raise errors.UnsupportedOperationException(f"{key.arn} key spec {key.key_spec} has no public key.")
    return PublicKey(
        key=key,
        public_key=bytes(key.public_key_der),
        algorithms=core.key_algorithms(_spec(key), core.KeyUsage(key.key_usage)),
    )

"""Encapsulate and Decapsulate: shared secrets with ML-KEM keys (ML_KEM_768, ML_KEM_1024; algorithm ML_KEM).

Order of checks, as for the other cryptographic operations (keys.services.crypto): the key (NotFoundException),
authorization (kms:Encapsulate / kms:Decapsulate: key policy, identity policies, grants and grant tokens), the key
state (DisabledException, KMSInvalidStateException), the key usage (InvalidKeyUsageException naming the key's
usage), the algorithm against the spec (and Decapsulate's ciphertext length), and only then the work: a dry run
stops before it (`OperationContext.stop_if_dry_run`). Encapsulate needs only the public key stored beside the
sealed material, so the private key stays sealed; Decapsulate unseals it for the call.

The shared secret is returned and nowhere else: SharedSecret is a sensitive member and SharedSecretCiphertextBlob
a blob in the service model, so neither reaches the audit trail (kmsconsole.operations.secret_fields), and no
error message is built from either. No condition key for the algorithm is documented (kms-spec §7.6 lists none
for these operations, unlike kms:KeyAgreementAlgorithm), so none is made up here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from keys import crypto as core
from keys.materials import current_material, open_material
from keys.models import Key
from keys.services.access import key_for
from keys.services.crypto import Output, _check_usage, _crypto_errors, _spec, _stop_if_dry_run
from kmsconsole.operations import OperationContext


@dataclass(frozen=True)
class Encapsulated:
    """Encapsulate's result: the shared secret (secret, kept out of repr) and its encapsulated form."""

    key: Key
    shared_secret: bytes = field(repr=False)
    ciphertext_blob: bytes = field(repr=False)
    algorithm: str


def _ml_kem_key(
    ctx: OperationContext, key_id: str, encapsulation_algorithm: str
) -> tuple[Key, core.EncapsulationAlgorithm]:
    algorithm = core.EncapsulationAlgorithm(encapsulation_algorithm)
    key = key_for(ctx, key_id)
    _check_usage(key, ctx.operation.name)
    with _crypto_errors():
        core.check_encapsulation_algorithm(_spec(key), algorithm)
    return key, algorithm


def shared_secret_encapsulate(
    *, ctx: OperationContext, key_id: str, encapsulation_algorithm: str
) -> Encapsulated:
    """Encapsulate: a new 32-byte shared secret and its ciphertext under an ML-KEM key's public key."""
    key, algorithm = _ml_kem_key(ctx, key_id, encapsulation_algorithm)
    ctx.stop_if_dry_run()
    with _crypto_errors():
        made = core.encapsulate(
            key_spec=_spec(key),
            public_key_der=bytes(key.public_key_der or b""),
            encapsulation_algorithm=algorithm,
        )
    return Encapsulated(
        key=key, shared_secret=made.shared_secret, ciphertext_blob=made.ciphertext, algorithm=str(algorithm)
    )


def shared_secret_decapsulate(
    *, ctx: OperationContext, key_id: str, ciphertext_blob: bytes, encapsulation_algorithm: str
) -> Output:
    """Decapsulate: the shared secret of a ciphertext made with the key's public key. A ciphertext of the wrong
    length for the key spec is InvalidCiphertextException (empty message); any other gives 32 bytes (FIPS 203
    implicit rejection: the parties must confirm they hold the same secret, as AWS says)."""
    key, algorithm = _ml_kem_key(ctx, key_id, encapsulation_algorithm)
    spec = _spec(key)
    with _crypto_errors():
        core.check_decapsulation_input(ciphertext_blob, key_spec=spec, encapsulation_algorithm=algorithm)
    _stop_if_dry_run(ctx, key)
    material = open_material(ctx, current_material(key))  # only for a ciphertext that can be decapsulated
    with _crypto_errors():
        secret = core.decapsulate(
            ciphertext_blob, key_spec=spec, material=material, encapsulation_algorithm=algorithm
        )
    return Output(key=key, blob=secret, algorithm=str(algorithm))

"""kmsconsole's crypto core: pure Python (no Django), fully typed, built on ``cryptography`` (and libsodium, through
PyNaCl, for Ed25519ph alone, which ``cryptography`` lacks).

Everything the service layer needs is importable from ``keys.crypto``. Functions take the data positionally
and the key keyword-only. "material" is a key's *unsealed* serialized material (see Key material); the
service unseals it (``keys.crypto.sealing``, not re-exported here) just for the call. Every error is a
:class:`CryptoError` with ``.code`` = the AWS exception name and ``.message`` = AWS's text; map ``code`` once.

Specs and rules (``specs``, ``rules``)
    Enums with every AWS value: ``KeySpec``, ``KeyUsage``, ``EncryptionAlgorithm``, ``SigningAlgorithm``,
    ``MacAlgorithm``, ``KeyAgreementAlgorithm``, ``EncapsulationAlgorithm``, ``DataKeySpec``,
    ``DataKeyPairSpec``, ``MessageType`` (``StrEnum``: ``KeySpec("RSA_2048")`` parses, ``str(spec)`` is the
    wire value).
    Limits (import them, never repeat them): ``PLAINTEXT_MAX_BYTES`` (4096), ``CIPHERTEXT_MAX_BYTES`` (6144),
    ``MESSAGE_MAX_BYTES`` (4096), ``SIGNATURE_MAX_BYTES`` (6144), ``NUMBER_OF_BYTES_MIN``/``_MAX`` (1..1024),
    ``PUBLIC_KEY_MAX_BYTES`` (8192), ``RSA_OAEP_MAX_PLAINTEXT_BYTES[(spec, alg)]``, ``DIGEST_BYTES[alg]``,
    ``MAC_BYTES[alg]``, ``DATA_KEY_SPEC_BYTES``, ``ML_DSA_MU_BYTES`` (64), ``ML_KEM_CIPHERTEXT_BYTES[spec]``
    (768/1088/1568), ``ML_KEM_SHARED_SECRET_BYTES`` (32); tables ``AWS_KEY_SPEC_USAGES``,
    ``SUPPORTED_KEY_SPECS``, ``OPERATION_KEY_USAGE`` (operation name -> usage it needs). More in
    ``keys.crypto.specs``.

    - ``validate_spec_and_usage(key_spec=None, key_usage=None) -> KeyUsage``: CreateKey's rules; returns the
      usage the key gets (SYMMETRIC_DEFAULT may omit it). ValidationException / UnsupportedOperationException.
    - ``key_algorithms(key_spec, key_usage) -> KeyAlgorithms``: the ``EncryptionAlgorithms`` /
      ``SigningAlgorithms`` / ``MacAlgorithms`` / ``KeyAgreementAlgorithms`` / ``EncapsulationAlgorithms``
      lists (DescribeKey, GetPublicKey); ``.members()`` gives the non-empty ones by wire member name.
    - ``check_key_usage(*, key_arn, key_usage, operation)``: InvalidKeyUsageException
      ``<arn> key usage is X which is not valid for <Operation>.``
    - ``check_data_key_encrypting_key(*, key_spec, operation)``: GenerateDataKey* need SYMMETRIC_DEFAULT.
    - ``check_encryption_algorithm`` / ``check_signing_algorithm`` / ``check_mac_algorithm`` /
      ``check_key_agreement_algorithm`` / ``check_encapsulation_algorithm(key_spec, algorithm)``: the
      operations below call these themselves.

Key material (``material``, ``ids``)
    - ``generate_key_material(key_spec) -> bytes``: 32 random bytes (SYMMETRIC_DEFAULT), 28/32/48/64 random
      bytes (HMAC_224/256/384/512), unencrypted PKCS#8 DER (RSA, ECC, Ed25519; ML-DSA and ML-KEM in the seed
      form of RFC 9881/9935, 54 and 86 bytes: see ``material``). Seal this and store it.
    - ``public_key_der(key_spec, material) -> bytes``: DER SubjectPublicKeyInfo (GetPublicKey). Not secret:
      store it beside the sealed material; ``encrypt_asymmetric`` and ``verify`` take it instead of material.
    - ``validate_key_material(key_spec, material)``: full check for material from outside (import).
    - ``new_key_material_id() -> bytes``: 32 random bytes, one per material version (creation, each
      rotation); ``key_material_id_hex(id) -> str`` gives the 64-hex ``KeyMaterialId``;
      ``parse_key_material_id(hex) -> bytes`` reads it back.

Symmetric encryption (``symmetric``): Encrypt/Decrypt/ReEncrypt/GenerateDataKey* with SYMMETRIC_DEFAULT keys
    - ``encrypt_symmetric(plaintext, *, key_id: UUID, key_material_id: bytes, material,
      encryption_context=None, encryption_algorithm=SYMMETRIC_DEFAULT) -> bytes``: the CiphertextBlob
      (plaintext 1..4096 bytes).
    - ``parse_ciphertext_header(blob) -> CiphertextHeader(key_id: UUID, key_material_id: bytes)``: read
      before decrypting to find the key and material version (InvalidCiphertext if the blob cannot be ours).
      If the request named a KeyId resolving to another key, raise ``IncorrectKey()`` (AWS's message).
    - ``decrypt_symmetric(blob, *, key_id, key_material_id, material, encryption_context=None,
      encryption_algorithm=SYMMETRIC_DEFAULT) -> bytes``: any tamper, truncation, wrong context (exact,
      case-sensitive, any order), wrong key or material -> ``InvalidCiphertext`` with an empty message.
    - Blob: ``0x01 || key id (16) || key material id (32) || nonce (16) || iv (12) || ciphertext || tag
      (16)``, 93 bytes of overhead (``CIPHERTEXT_OVERHEAD_BYTES``); per-message key HKDF-SHA256(material,
      nonce); AES-256-GCM with AAD = header || ``canonical_encryption_context(ec)``. Details in ``symmetric``.

Asymmetric keys (``asymmetric``, ``signing``)
    - ``encrypt_asymmetric(plaintext, *, key_spec, public_key_der, encryption_algorithm) -> bytes`` and
      ``decrypt_asymmetric(ciphertext, *, key_spec, material, encryption_algorithm) -> bytes``:
      RSAES_OAEP_SHA_1 and RSAES_OAEP_SHA_256, standard OAEP (interoperable); AWS's size limits and message.
    - ``sign(message, *, key_spec, material, signing_algorithm, message_type=RAW) -> bytes`` and
      ``verify(message, signature, *, key_spec, public_key_der, signing_algorithm, message_type=RAW)``
      (returns None or raises ``InvalidSignature``; ``check_sign_input(message, *, key_spec, signing_algorithm,
      message_type=RAW)`` refuses what ``sign`` would without the material: check it before unsealing):
      RSASSA_PSS_SHA_256/384/512,
      RSASSA_PKCS1_V1_5_SHA_256/384/512, ECDSA_SHA_256/384/512 (DER signatures), ED25519_SHA_512 (pure
      Ed25519, RAW only; DIGEST is ValidationException ``Message type DIGEST is incompatible with algorithm
      ED25519_SHA_512.``), ED25519_PH_SHA_512 (Ed25519ph, RFC 8032 section 5.1, DIGEST only: a 64-byte SHA-512
      digest that, as on AWS, is hashed again as the prehash, so the signature is Ed25519ph over the digest;
      libsodium in ``keys.crypto.ed25519ph``, as ``cryptography`` has no Ed25519ph; RAW is ValidationException
      ``Message type RAW is incompatible with algorithm ED25519_PH_SHA_512.``; these two texts are real KMS's as
      an emulator's test records them),
      ML_DSA_SHAKE_256 on ML_DSA_44/65/87 (FIPS 204; RAW = pure ML-DSA with an empty context, EXTERNAL_MU =
      the caller's 64-byte mu; DIGEST is ValidationException ``Message type DIGEST is incompatible with key
      spec ML_DSA_44.``).
    - ``derive_shared_secret(public_key, *, key_spec, material, key_agreement_algorithm=ECDH) -> bytes``:
      raw ECDH secret for ECC_NIST_P256/P384/P521 KEY_AGREEMENT keys; ``public_key`` is the peer's DER SPKI.

ML-KEM keys (``encapsulation``): Encapsulate/Decapsulate with ML_KEM_768 and ML_KEM_1024 (algorithm ML_KEM)
    - ``encapsulate(*, key_spec, public_key_der, encapsulation_algorithm=ML_KEM) -> Encapsulated(ciphertext,
      shared_secret)``: a fresh 32-byte secret (kept out of ``repr``) and its FIPS 203 ciphertext, from the
      stored public key alone.
    - ``decapsulate(ciphertext, *, key_spec, material, encapsulation_algorithm=ML_KEM) -> bytes``: the
      secret; a ciphertext of the wrong length is ``InvalidCiphertext`` (empty), any other gives 32 bytes
      (FIPS 203 implicit rejection, as AWS documents). ``check_decapsulation_input(ciphertext, *, key_spec,
      encapsulation_algorithm=ML_KEM)`` refuses the same without the material (check it before unsealing).

HMAC keys (``mac``)
    - ``generate_mac(message, *, key_spec, material, mac_algorithm) -> bytes`` and
      ``verify_mac(message, mac, *, key_spec, material, mac_algorithm) -> None`` (raises ``InvalidMac``;
      constant-time comparison).

Data keys (``datakeys``)
    - ``generate_data_key(*, key_spec: DataKeySpec | None = None, number_of_bytes: int | None = None)``
      -> bytes (exactly one of the two); ``data_key_length(...) -> int`` only validates those parameters.
    - ``generate_data_key_pair(key_pair_spec) -> DataKeyPair(key_pair_spec, public_key, private_key)``:
      public DER SPKI, private DER PKCS#8 (kept out of ``repr``; ML_KEM_768/1024 in seed form, as AWS's);
      encrypt ``private_key`` with ``encrypt_symmetric`` under the KMS key.
    - ``generate_random(number_of_bytes) -> bytes``: GenerateRandom, 1..1024 (``None`` -> "NumberOfBytes is
      required.").

Checks without the material: each operation that needs a key's material has a check that refuses, without it,
everything the operation would refuse before using it; the service makes it before it unseals the material, so a
request bound to fail (and a dry run) never opens any: ``check_symmetric_plaintext``,
``check_asymmetric_plaintext``, ``check_asymmetric_ciphertext`` (an RSA ciphertext not of the modulus' length),
``check_sign_input``, ``check_mac_input``, ``check_key_agreement_input`` (the peer's public key parses on the
key's curve), ``check_decapsulation_input``, ``check_data_key_pair_spec`` and ``data_key_length``. A symmetric
ciphertext's header (``parse_ciphertext_header``) is read before too. What only the material can tell (whether
a ciphertext decrypts under its context, whether a MAC matches) is known only once it is used.

Errors (``errors``): ``CryptoError`` (base; ``code``, ``message``) and ``InvalidCiphertext``
(InvalidCiphertextException, empty message), ``IncorrectKey`` (IncorrectKeyException),
``CryptoValidationError`` (ValidationException), ``InvalidKeyUsage`` (InvalidKeyUsageException),
``InvalidSignature`` (KMSInvalidSignatureException, empty), ``InvalidMac`` (KMSInvalidMacException, empty),
``UnsupportedOperation`` (UnsupportedOperationException), ``KeyMaterialError`` (KMSInternalException:
unusable stored material, a server fault). Messages and ``repr`` never contain material, plaintext,
messages, signatures or MACs.

Not supported (UnsupportedOperationException): key specs SM2 and ML_KEM_512 (``cryptography`` implements
ML-KEM-768 and ML-KEM-1024 only; the message says so); algorithms SM2PKE and SM2DSA; key pair specs SM2 and
ML_KEM_512. MessageType EXTERNAL_MU with anything but ML_DSA_SHAKE_256, and DIGEST with
it, are ValidationException (``Message type X is incompatible with key spec Y.``).
"""

from __future__ import annotations

from .asymmetric import (
    check_asymmetric_ciphertext,
    check_asymmetric_plaintext,
    check_key_agreement_input,
    decrypt_asymmetric,
    derive_shared_secret,
    encrypt_asymmetric,
)
from .datakeys import (
    DataKeyPair,
    check_data_key_pair_spec,
    data_key_length,
    generate_data_key,
    generate_data_key_pair,
    generate_random,
)
from .encapsulation import Encapsulated, check_decapsulation_input, decapsulate, encapsulate
from .errors import (
    CryptoError,
    CryptoValidationError,
    IncorrectKey,
    InvalidCiphertext,
    InvalidKeyUsage,
    InvalidMac,
    InvalidSignature,
    KeyMaterialError,
    UnsupportedOperation,
)
from .ids import key_material_id_hex, new_key_material_id, parse_key_material_id
from .mac import check_mac_input, generate_mac, verify_mac
from .material import generate_key_material, public_key_der, validate_key_material
from .rules import (
    KeyAlgorithms,
    check_data_key_encrypting_key,
    check_encapsulation_algorithm,
    check_encryption_algorithm,
    check_key_agreement_algorithm,
    check_key_usage,
    check_mac_algorithm,
    check_signing_algorithm,
    key_algorithms,
    require_supported_key_spec,
    validate_spec_and_usage,
)
from .signing import check_sign_input, sign, verify
from .specs import (
    AWS_KEY_SPEC_USAGES,
    CIPHERTEXT_MAX_BYTES,
    DATA_KEY_SPEC_BYTES,
    DIGEST_BYTES,
    KEY_MATERIAL_ID_BYTES,
    MAC_BYTES,
    MESSAGE_MAX_BYTES,
    ML_DSA_MU_BYTES,
    ML_KEM_CIPHERTEXT_BYTES,
    ML_KEM_SHARED_SECRET_BYTES,
    NUMBER_OF_BYTES_MAX,
    NUMBER_OF_BYTES_MIN,
    OPERATION_KEY_USAGE,
    PLAINTEXT_MAX_BYTES,
    PUBLIC_KEY_MAX_BYTES,
    RSA_OAEP_MAX_PLAINTEXT_BYTES,
    SIGNATURE_MAX_BYTES,
    SUPPORTED_DATA_KEY_PAIR_SPECS,
    SUPPORTED_KEY_SPECS,
    DataKeyPairSpec,
    DataKeySpec,
    EncapsulationAlgorithm,
    EncryptionAlgorithm,
    KeyAgreementAlgorithm,
    KeySpec,
    KeyUsage,
    MacAlgorithm,
    MessageType,
    SigningAlgorithm,
)
from .symmetric import (
    CIPHERTEXT_OVERHEAD_BYTES,
    CiphertextHeader,
    EncryptionContext,
    canonical_encryption_context,
    check_symmetric_plaintext,
    decrypt_symmetric,
    encrypt_symmetric,
    parse_ciphertext_header,
)

__all__ = [
    "AWS_KEY_SPEC_USAGES",
    "CIPHERTEXT_MAX_BYTES",
    "CIPHERTEXT_OVERHEAD_BYTES",
    "DATA_KEY_SPEC_BYTES",
    "DIGEST_BYTES",
    "KEY_MATERIAL_ID_BYTES",
    "MAC_BYTES",
    "MESSAGE_MAX_BYTES",
    "ML_DSA_MU_BYTES",
    "ML_KEM_CIPHERTEXT_BYTES",
    "ML_KEM_SHARED_SECRET_BYTES",
    "NUMBER_OF_BYTES_MAX",
    "NUMBER_OF_BYTES_MIN",
    "OPERATION_KEY_USAGE",
    "PLAINTEXT_MAX_BYTES",
    "PUBLIC_KEY_MAX_BYTES",
    "RSA_OAEP_MAX_PLAINTEXT_BYTES",
    "SIGNATURE_MAX_BYTES",
    "SUPPORTED_DATA_KEY_PAIR_SPECS",
    "SUPPORTED_KEY_SPECS",
    "CiphertextHeader",
    "CryptoError",
    "CryptoValidationError",
    "DataKeyPair",
    "DataKeyPairSpec",
    "DataKeySpec",
    "Encapsulated",
    "EncapsulationAlgorithm",
    "EncryptionAlgorithm",
    "EncryptionContext",
    "IncorrectKey",
    "InvalidCiphertext",
    "InvalidKeyUsage",
    "InvalidMac",
    "InvalidSignature",
    "KeyAgreementAlgorithm",
    "KeyAlgorithms",
    "KeyMaterialError",
    "KeySpec",
    "KeyUsage",
    "MacAlgorithm",
    "MessageType",
    "SigningAlgorithm",
    "UnsupportedOperation",
    "canonical_encryption_context",
    "check_asymmetric_ciphertext",
    "check_asymmetric_plaintext",
    "check_data_key_encrypting_key",
    "check_data_key_pair_spec",
    "check_decapsulation_input",
    "check_encapsulation_algorithm",
    "check_encryption_algorithm",
    "check_key_agreement_algorithm",
    "check_key_agreement_input",
    "check_key_usage",
    "check_mac_algorithm",
    "check_mac_input",
    "check_sign_input",
    "check_signing_algorithm",
    "check_symmetric_plaintext",
    "data_key_length",
    "decapsulate",
    "decrypt_asymmetric",
    "decrypt_symmetric",
    "derive_shared_secret",
    "encapsulate",
    "encrypt_asymmetric",
    "encrypt_symmetric",
    "generate_data_key",
    "generate_data_key_pair",
    "generate_key_material",
    "generate_mac",
    "generate_random",
    "key_algorithms",
    "key_material_id_hex",
    "new_key_material_id",
    "parse_ciphertext_header",
    "parse_key_material_id",
    "public_key_der",
    "require_supported_key_spec",
    "sign",
    "validate_key_material",
    "validate_spec_and_usage",
    "verify",
    "verify_mac",
]

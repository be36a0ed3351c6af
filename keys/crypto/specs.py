"""Key specs, key usages, algorithms and AWS's size limits (kms-spec.md §3): the one place these rules live.

The enums hold *every* value of the AWS API model, so the protocol layer can tell an unknown value (a Coral
``ValidationException``) from a known one this service does not implement (``UnsupportedOperationException``).
The ``AWS_*`` tables are AWS's; ``SUPPORTED_*`` and the helper functions say what this service implements.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final


class KeySpec(StrEnum):
    SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
    RSA_2048 = "RSA_2048"
    RSA_3072 = "RSA_3072"
    RSA_4096 = "RSA_4096"
    ECC_NIST_P256 = "ECC_NIST_P256"
    ECC_NIST_P384 = "ECC_NIST_P384"
    ECC_NIST_P521 = "ECC_NIST_P521"
    ECC_SECG_P256K1 = "ECC_SECG_P256K1"
    ECC_NIST_EDWARDS25519 = "ECC_NIST_EDWARDS25519"
    HMAC_224 = "HMAC_224"
    HMAC_256 = "HMAC_256"
    HMAC_384 = "HMAC_384"
    HMAC_512 = "HMAC_512"
    SM2 = "SM2"
    ML_DSA_44 = "ML_DSA_44"
    ML_DSA_65 = "ML_DSA_65"
    ML_DSA_87 = "ML_DSA_87"
    ML_KEM_512 = "ML_KEM_512"
    ML_KEM_768 = "ML_KEM_768"
    ML_KEM_1024 = "ML_KEM_1024"


class KeyUsage(StrEnum):
    ENCRYPT_DECRYPT = "ENCRYPT_DECRYPT"
    SIGN_VERIFY = "SIGN_VERIFY"
    GENERATE_VERIFY_MAC = "GENERATE_VERIFY_MAC"
    KEY_AGREEMENT = "KEY_AGREEMENT"
    ENCAPSULATE_DECAPSULATE = "ENCAPSULATE_DECAPSULATE"


class EncryptionAlgorithm(StrEnum):
    SYMMETRIC_DEFAULT = "SYMMETRIC_DEFAULT"
    RSAES_OAEP_SHA_1 = "RSAES_OAEP_SHA_1"
    RSAES_OAEP_SHA_256 = "RSAES_OAEP_SHA_256"
    SM2PKE = "SM2PKE"


class SigningAlgorithm(StrEnum):
    RSASSA_PSS_SHA_256 = "RSASSA_PSS_SHA_256"
    RSASSA_PSS_SHA_384 = "RSASSA_PSS_SHA_384"
    RSASSA_PSS_SHA_512 = "RSASSA_PSS_SHA_512"
    RSASSA_PKCS1_V1_5_SHA_256 = "RSASSA_PKCS1_V1_5_SHA_256"
    RSASSA_PKCS1_V1_5_SHA_384 = "RSASSA_PKCS1_V1_5_SHA_384"
    RSASSA_PKCS1_V1_5_SHA_512 = "RSASSA_PKCS1_V1_5_SHA_512"
    ECDSA_SHA_256 = "ECDSA_SHA_256"
    ECDSA_SHA_384 = "ECDSA_SHA_384"
    ECDSA_SHA_512 = "ECDSA_SHA_512"
    SM2DSA = "SM2DSA"
    ML_DSA_SHAKE_256 = "ML_DSA_SHAKE_256"
    ED25519_SHA_512 = "ED25519_SHA_512"
    ED25519_PH_SHA_512 = "ED25519_PH_SHA_512"


class MacAlgorithm(StrEnum):
    HMAC_SHA_224 = "HMAC_SHA_224"
    HMAC_SHA_256 = "HMAC_SHA_256"
    HMAC_SHA_384 = "HMAC_SHA_384"
    HMAC_SHA_512 = "HMAC_SHA_512"


class KeyAgreementAlgorithm(StrEnum):
    ECDH = "ECDH"


class EncapsulationAlgorithm(StrEnum):
    ML_KEM = "ML_KEM"


class DataKeySpec(StrEnum):
    AES_256 = "AES_256"
    AES_128 = "AES_128"


class DataKeyPairSpec(StrEnum):
    RSA_2048 = "RSA_2048"
    RSA_3072 = "RSA_3072"
    RSA_4096 = "RSA_4096"
    ECC_NIST_P256 = "ECC_NIST_P256"
    ECC_NIST_P384 = "ECC_NIST_P384"
    ECC_NIST_P521 = "ECC_NIST_P521"
    ECC_SECG_P256K1 = "ECC_SECG_P256K1"
    SM2 = "SM2"
    ECC_NIST_EDWARDS25519 = "ECC_NIST_EDWARDS25519"
    ML_KEM_512 = "ML_KEM_512"
    ML_KEM_768 = "ML_KEM_768"
    ML_KEM_1024 = "ML_KEM_1024"


class MessageType(StrEnum):
    RAW = "RAW"
    DIGEST = "DIGEST"
    EXTERNAL_MU = "EXTERNAL_MU"


# --- Families -----------------------------------------------------------------------------------------------

RSA_KEY_SPECS: Final = frozenset({KeySpec.RSA_2048, KeySpec.RSA_3072, KeySpec.RSA_4096})
NIST_EC_KEY_SPECS: Final = frozenset({KeySpec.ECC_NIST_P256, KeySpec.ECC_NIST_P384, KeySpec.ECC_NIST_P521})
EC_KEY_SPECS: Final = NIST_EC_KEY_SPECS | {KeySpec.ECC_SECG_P256K1}
HMAC_KEY_SPECS: Final = frozenset({KeySpec.HMAC_224, KeySpec.HMAC_256, KeySpec.HMAC_384, KeySpec.HMAC_512})
ML_DSA_KEY_SPECS: Final = frozenset({KeySpec.ML_DSA_44, KeySpec.ML_DSA_65, KeySpec.ML_DSA_87})
ML_KEM_KEY_SPECS: Final = frozenset({KeySpec.ML_KEM_512, KeySpec.ML_KEM_768, KeySpec.ML_KEM_1024})
#: The ML-KEM parameter sets ``cryptography`` implements: it has no ML-KEM-512 (FIPS 203's smallest set).
IMPLEMENTED_ML_KEM_KEY_SPECS: Final = frozenset({KeySpec.ML_KEM_768, KeySpec.ML_KEM_1024})
#: Post-quantum specs whose private material is a seed (FIPS 204 xi, 32 bytes; FIPS 203 d || z, 64 bytes).
POST_QUANTUM_KEY_SPECS: Final = ML_DSA_KEY_SPECS | IMPLEMENTED_ML_KEM_KEY_SPECS
#: Specs whose private material is an asymmetric key (stored as PKCS#8 DER) and that have a public key.
ASYMMETRIC_KEY_SPECS: Final = (
    RSA_KEY_SPECS | EC_KEY_SPECS | {KeySpec.ECC_NIST_EDWARDS25519} | POST_QUANTUM_KEY_SPECS
)

#: What this service implements: every AWS spec but SM2 (China Regions only) and ML_KEM_512.
SUPPORTED_KEY_SPECS: Final = ASYMMETRIC_KEY_SPECS | HMAC_KEY_SPECS | {KeySpec.SYMMETRIC_DEFAULT}
#: Why a spec AWS has is not implemented here, where there is more to say than "not supported".
UNSUPPORTED_KEY_SPEC_REASONS: Final[Mapping[KeySpec, str]] = MappingProxyType(
    {
        KeySpec.ML_KEM_512: "this KMS implements ML_KEM_768 and ML_KEM_1024 only (its cryptography library "
        "has no ML-KEM-512)",
    }
)

# --- Spec -> usages (CreateKey rules, §3.2) -----------------------------------------------------------------

DEFAULT_KEY_SPEC: Final = KeySpec.SYMMETRIC_DEFAULT
#: The only spec whose KeyUsage may be omitted, and the usage it then gets.
DEFAULT_KEY_USAGE: Final = KeyUsage.ENCRYPT_DECRYPT

_EC_AGREEMENT = frozenset({KeyUsage.SIGN_VERIFY, KeyUsage.KEY_AGREEMENT})
AWS_KEY_SPEC_USAGES: Final[Mapping[KeySpec, frozenset[KeyUsage]]] = MappingProxyType(
    {
        KeySpec.SYMMETRIC_DEFAULT: frozenset({KeyUsage.ENCRYPT_DECRYPT}),
        **dict.fromkeys(RSA_KEY_SPECS, frozenset({KeyUsage.ENCRYPT_DECRYPT, KeyUsage.SIGN_VERIFY})),
        **dict.fromkeys(NIST_EC_KEY_SPECS, _EC_AGREEMENT),
        KeySpec.ECC_SECG_P256K1: frozenset({KeyUsage.SIGN_VERIFY}),
        KeySpec.ECC_NIST_EDWARDS25519: frozenset({KeyUsage.SIGN_VERIFY}),
        **dict.fromkeys(HMAC_KEY_SPECS, frozenset({KeyUsage.GENERATE_VERIFY_MAC})),
        KeySpec.SM2: frozenset({KeyUsage.ENCRYPT_DECRYPT, KeyUsage.SIGN_VERIFY, KeyUsage.KEY_AGREEMENT}),
        **dict.fromkeys(ML_DSA_KEY_SPECS, frozenset({KeyUsage.SIGN_VERIFY})),
        **dict.fromkeys(ML_KEM_KEY_SPECS, frozenset({KeyUsage.ENCAPSULATE_DECAPSULATE})),
    }
)

# --- Spec -> algorithms (AWS's tables, §3.2) ----------------------------------------------------------------

_RSA_ENCRYPTION = (EncryptionAlgorithm.RSAES_OAEP_SHA_1, EncryptionAlgorithm.RSAES_OAEP_SHA_256)
AWS_ENCRYPTION_ALGORITHMS: Final[Mapping[KeySpec, tuple[EncryptionAlgorithm, ...]]] = MappingProxyType(
    {
        KeySpec.SYMMETRIC_DEFAULT: (EncryptionAlgorithm.SYMMETRIC_DEFAULT,),
        **dict.fromkeys(RSA_KEY_SPECS, _RSA_ENCRYPTION),
        KeySpec.SM2: (EncryptionAlgorithm.SM2PKE,),
    }
)

_RSA_SIGNING = (
    SigningAlgorithm.RSASSA_PSS_SHA_256,
    SigningAlgorithm.RSASSA_PSS_SHA_384,
    SigningAlgorithm.RSASSA_PSS_SHA_512,
    SigningAlgorithm.RSASSA_PKCS1_V1_5_SHA_256,
    SigningAlgorithm.RSASSA_PKCS1_V1_5_SHA_384,
    SigningAlgorithm.RSASSA_PKCS1_V1_5_SHA_512,
)
AWS_SIGNING_ALGORITHMS: Final[Mapping[KeySpec, tuple[SigningAlgorithm, ...]]] = MappingProxyType(
    {
        **dict.fromkeys(RSA_KEY_SPECS, _RSA_SIGNING),
        KeySpec.ECC_NIST_P256: (SigningAlgorithm.ECDSA_SHA_256,),
        KeySpec.ECC_NIST_P384: (SigningAlgorithm.ECDSA_SHA_384,),
        KeySpec.ECC_NIST_P521: (SigningAlgorithm.ECDSA_SHA_512,),
        KeySpec.ECC_SECG_P256K1: (SigningAlgorithm.ECDSA_SHA_256,),
        KeySpec.ECC_NIST_EDWARDS25519: (
            SigningAlgorithm.ED25519_SHA_512,
            SigningAlgorithm.ED25519_PH_SHA_512,
        ),
        KeySpec.SM2: (SigningAlgorithm.SM2DSA,),
        **dict.fromkeys(ML_DSA_KEY_SPECS, (SigningAlgorithm.ML_DSA_SHAKE_256,)),
    }
)

AWS_MAC_ALGORITHMS: Final[Mapping[KeySpec, tuple[MacAlgorithm, ...]]] = MappingProxyType(
    {
        KeySpec.HMAC_224: (MacAlgorithm.HMAC_SHA_224,),
        KeySpec.HMAC_256: (MacAlgorithm.HMAC_SHA_256,),
        KeySpec.HMAC_384: (MacAlgorithm.HMAC_SHA_384,),
        KeySpec.HMAC_512: (MacAlgorithm.HMAC_SHA_512,),
    }
)

AWS_KEY_AGREEMENT_ALGORITHMS: Final[Mapping[KeySpec, tuple[KeyAgreementAlgorithm, ...]]] = MappingProxyType(
    {**dict.fromkeys(NIST_EC_KEY_SPECS | {KeySpec.SM2}, (KeyAgreementAlgorithm.ECDH,))}
)

AWS_ENCAPSULATION_ALGORITHMS: Final[Mapping[KeySpec, tuple[EncapsulationAlgorithm, ...]]] = MappingProxyType(
    {**dict.fromkeys(ML_KEM_KEY_SPECS, (EncapsulationAlgorithm.ML_KEM,))}
)

#: Algorithms AWS offers that this service does not implement: SM2's (China Regions only). ED25519_PH_SHA_512
#: (Ed25519ph, RFC 8032 §5.1) is implemented with libsodium (``keys.crypto.ed25519ph``).
UNSUPPORTED_ENCRYPTION_ALGORITHMS: Final = frozenset({EncryptionAlgorithm.SM2PKE})
UNSUPPORTED_SIGNING_ALGORITHMS: Final = frozenset({SigningAlgorithm.SM2DSA})

# --- Data keys ----------------------------------------------------------------------------------------------

DATA_KEY_SPEC_BYTES: Final[Mapping[DataKeySpec, int]] = MappingProxyType(
    {DataKeySpec.AES_128: 16, DataKeySpec.AES_256: 32}
)
#: The KMS key spec whose material a data key pair of this spec is (same names).
DATA_KEY_PAIR_KEY_SPECS: Final[Mapping[DataKeyPairSpec, KeySpec]] = MappingProxyType(
    {spec: KeySpec(spec.value) for spec in DataKeyPairSpec}
)
SUPPORTED_DATA_KEY_PAIR_SPECS: Final = frozenset(
    spec for spec, key_spec in DATA_KEY_PAIR_KEY_SPECS.items() if key_spec in ASYMMETRIC_KEY_SPECS
)

# --- Key material -------------------------------------------------------------------------------------------

#: SYMMETRIC_DEFAULT backing key: 256-bit (AES-256-GCM, per-message keys derived from it).
SYMMETRIC_KEY_MATERIAL_BYTES: Final = 32
#: HMAC key lengths equal the digest length named by the spec (HMAC_224 -> 224-bit key).
HMAC_KEY_MATERIAL_BYTES: Final[Mapping[KeySpec, int]] = MappingProxyType(
    {KeySpec.HMAC_224: 28, KeySpec.HMAC_256: 32, KeySpec.HMAC_384: 48, KeySpec.HMAC_512: 64}
)
RSA_KEY_BITS: Final[Mapping[KeySpec, int]] = MappingProxyType(
    {KeySpec.RSA_2048: 2048, KeySpec.RSA_3072: 3072, KeySpec.RSA_4096: 4096}
)
RSA_PUBLIC_EXPONENT: Final = 65537
#: KeyMaterialId: 32 random bytes; on the wire, its 64 lowercase hex characters.
KEY_MATERIAL_ID_BYTES: Final = 32

# --- Size limits (§3.3) -------------------------------------------------------------------------------------

PLAINTEXT_MIN_BYTES: Final = 1
#: Encrypt's Plaintext, and Decrypt's output.
PLAINTEXT_MAX_BYTES: Final = 4096
#: CiphertextBlob in and out of Encrypt/Decrypt/ReEncrypt/GenerateDataKey*.
CIPHERTEXT_MAX_BYTES: Final = 6144
#: Sign/Verify/GenerateMac/VerifyMac Message.
MESSAGE_MIN_BYTES: Final = 1
MESSAGE_MAX_BYTES: Final = 4096
SIGNATURE_MAX_BYTES: Final = 6144
#: GenerateDataKey NumberOfBytes and GenerateRandom NumberOfBytes.
NUMBER_OF_BYTES_MIN: Final = 1
NUMBER_OF_BYTES_MAX: Final = 1024
#: GetPublicKey's PublicKey and DeriveSharedSecret's PublicKey.
PUBLIC_KEY_MAX_BYTES: Final = 8192
#: MessageType EXTERNAL_MU: the message is ML-DSA's representative mu (FIPS 204 section 6.2), exactly 64 bytes.
ML_DSA_MU_BYTES: Final = 64
#: Encapsulate's SharedSecretCiphertextBlob, and the only length Decapsulate accepts (the Encapsulate output
#: member's documentation: 768, 1088 and 1568 bytes); anything else is InvalidCiphertextException.
ML_KEM_CIPHERTEXT_BYTES: Final[Mapping[KeySpec, int]] = MappingProxyType(
    {KeySpec.ML_KEM_512: 768, KeySpec.ML_KEM_768: 1088, KeySpec.ML_KEM_1024: 1568}
)
#: Encapsulate's and Decapsulate's SharedSecret (FIPS 203: 32 bytes for every parameter set).
ML_KEM_SHARED_SECRET_BYTES: Final = 32

_OAEP_HASH_BYTES: Final[Mapping[EncryptionAlgorithm, int]] = MappingProxyType(
    {EncryptionAlgorithm.RSAES_OAEP_SHA_1: 20, EncryptionAlgorithm.RSAES_OAEP_SHA_256: 32}
)
#: Largest plaintext RSA OAEP can encrypt: k/8 - 2*hLen - 2 (RSA_2048: 214 with SHA-1, 190 with SHA-256).
RSA_OAEP_MAX_PLAINTEXT_BYTES: Final[Mapping[tuple[KeySpec, EncryptionAlgorithm], int]] = MappingProxyType(
    {
        (spec, algorithm): bits // 8 - 2 * hash_bytes - 2
        for spec, bits in RSA_KEY_BITS.items()
        for algorithm, hash_bytes in _OAEP_HASH_BYTES.items()
    }
)

#: MessageType DIGEST: the message must be exactly this long (ED25519_PH_SHA_512: a SHA-512 digest, which KMS
#: hashes again as Ed25519ph's prehash).
DIGEST_BYTES: Final[Mapping[SigningAlgorithm, int]] = MappingProxyType(
    {
        SigningAlgorithm.RSASSA_PSS_SHA_256: 32,
        SigningAlgorithm.RSASSA_PSS_SHA_384: 48,
        SigningAlgorithm.RSASSA_PSS_SHA_512: 64,
        SigningAlgorithm.RSASSA_PKCS1_V1_5_SHA_256: 32,
        SigningAlgorithm.RSASSA_PKCS1_V1_5_SHA_384: 48,
        SigningAlgorithm.RSASSA_PKCS1_V1_5_SHA_512: 64,
        SigningAlgorithm.ECDSA_SHA_256: 32,
        SigningAlgorithm.ECDSA_SHA_384: 48,
        SigningAlgorithm.ECDSA_SHA_512: 64,
        SigningAlgorithm.ED25519_PH_SHA_512: 64,
    }
)
#: Length of the MAC each algorithm produces (GenerateMac returns the full HMAC output).
MAC_BYTES: Final[Mapping[MacAlgorithm, int]] = MappingProxyType(
    {
        MacAlgorithm.HMAC_SHA_224: 28,
        MacAlgorithm.HMAC_SHA_256: 32,
        MacAlgorithm.HMAC_SHA_384: 48,
        MacAlgorithm.HMAC_SHA_512: 64,
    }
)

# --- Operations -> key usage (InvalidKeyUsageException) -----------------------------------------------------

#: The key usage each KMS operation needs; a key with another usage gets InvalidKeyUsageException.
OPERATION_KEY_USAGE: Final[Mapping[str, KeyUsage]] = MappingProxyType(
    {
        **dict.fromkeys(
            (
                "Encrypt",
                "Decrypt",
                "ReEncrypt",
                "GenerateDataKey",
                "GenerateDataKeyWithoutPlaintext",
                "GenerateDataKeyPair",
                "GenerateDataKeyPairWithoutPlaintext",
            ),
            KeyUsage.ENCRYPT_DECRYPT,
        ),
        "Sign": KeyUsage.SIGN_VERIFY,
        "Verify": KeyUsage.SIGN_VERIFY,
        "GenerateMac": KeyUsage.GENERATE_VERIFY_MAC,
        "VerifyMac": KeyUsage.GENERATE_VERIFY_MAC,
        "DeriveSharedSecret": KeyUsage.KEY_AGREEMENT,
        "Encapsulate": KeyUsage.ENCAPSULATE_DECAPSULATE,
        "Decapsulate": KeyUsage.ENCAPSULATE_DECAPSULATE,
    }
)
#: Operations that need a SYMMETRIC_DEFAULT key (an RSA ENCRYPT_DECRYPT key cannot make data keys).
DATA_KEY_OPERATIONS: Final = frozenset(
    {
        "GenerateDataKey",
        "GenerateDataKeyWithoutPlaintext",
        "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext",
    }
)

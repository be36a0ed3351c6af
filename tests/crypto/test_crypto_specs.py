"""Specs, CreateKey's spec/usage rules, algorithm tables and operation/usage checks (kms-spec §3)."""

from __future__ import annotations

import itertools
import pathlib
import subprocess
import sys

import pytest

from keys.crypto import (
    AWS_KEY_SPEC_USAGES,
    OPERATION_KEY_USAGE,
    RSA_OAEP_MAX_PLAINTEXT_BYTES,
    SUPPORTED_KEY_SPECS,
    CryptoError,
    CryptoValidationError,
    DataKeyPairSpec,
    EncapsulationAlgorithm,
    EncryptionAlgorithm,
    InvalidKeyUsage,
    KeyAgreementAlgorithm,
    KeySpec,
    KeyUsage,
    MacAlgorithm,
    MessageType,
    SigningAlgorithm,
    UnsupportedOperation,
    check_data_key_encrypting_key,
    check_encapsulation_algorithm,
    check_encryption_algorithm,
    check_key_agreement_algorithm,
    check_key_usage,
    check_mac_algorithm,
    check_signing_algorithm,
    key_algorithms,
    validate_spec_and_usage,
)
from keys.crypto.specs import SUPPORTED_DATA_KEY_PAIR_SPECS

CRYPTO_DIR = pathlib.Path(__file__).resolve().parents[2] / "keys" / "crypto"
ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

# --- enums hold every AWS value (kms-spec §3.1) -----------------------------------------------------------

AWS_ENUMS = [
    (
        KeySpec,
        "SYMMETRIC_DEFAULT RSA_2048 RSA_3072 RSA_4096 ECC_NIST_P256 ECC_NIST_P384 ECC_NIST_P521 ECC_SECG_P256K1 "
        "ECC_NIST_EDWARDS25519 HMAC_224 HMAC_256 HMAC_384 HMAC_512 SM2 ML_DSA_44 ML_DSA_65 ML_DSA_87 "
        "ML_KEM_512 ML_KEM_768 ML_KEM_1024",
    ),
    (KeyUsage, "ENCRYPT_DECRYPT SIGN_VERIFY GENERATE_VERIFY_MAC KEY_AGREEMENT ENCAPSULATE_DECAPSULATE"),
    (EncryptionAlgorithm, "SYMMETRIC_DEFAULT RSAES_OAEP_SHA_1 RSAES_OAEP_SHA_256 SM2PKE"),
    (
        SigningAlgorithm,
        "RSASSA_PSS_SHA_256 RSASSA_PSS_SHA_384 RSASSA_PSS_SHA_512 RSASSA_PKCS1_V1_5_SHA_256 "
        "RSASSA_PKCS1_V1_5_SHA_384 RSASSA_PKCS1_V1_5_SHA_512 ECDSA_SHA_256 ECDSA_SHA_384 ECDSA_SHA_512 SM2DSA "
        "ML_DSA_SHAKE_256 ED25519_SHA_512 ED25519_PH_SHA_512",
    ),
    (MacAlgorithm, "HMAC_SHA_224 HMAC_SHA_256 HMAC_SHA_384 HMAC_SHA_512"),
    (KeyAgreementAlgorithm, "ECDH"),
    (EncapsulationAlgorithm, "ML_KEM"),
    (
        DataKeyPairSpec,
        "RSA_2048 RSA_3072 RSA_4096 ECC_NIST_P256 ECC_NIST_P384 ECC_NIST_P521 ECC_SECG_P256K1 SM2 "
        "ECC_NIST_EDWARDS25519 ML_KEM_512 ML_KEM_768 ML_KEM_1024",
    ),
    (MessageType, "RAW DIGEST EXTERNAL_MU"),
]


@pytest.mark.parametrize(("enum", "values"), AWS_ENUMS, ids=[e.__name__ for e, _ in AWS_ENUMS])
def test_enum_holds_exactly_the_aws_values(enum: type, values: str) -> None:
    assert {str(member) for member in enum} == set(values.split())  # type: ignore[attr-defined]


def test_supported_specs_are_the_brief() -> None:
    assert {str(s) for s in SUPPORTED_KEY_SPECS} == {
        "SYMMETRIC_DEFAULT",
        "RSA_2048",
        "RSA_3072",
        "RSA_4096",
        "ECC_NIST_P256",
        "ECC_NIST_P384",
        "ECC_NIST_P521",
        "ECC_SECG_P256K1",
        "ECC_NIST_EDWARDS25519",
        "HMAC_224",
        "HMAC_256",
        "HMAC_384",
        "HMAC_512",
        "ML_DSA_44",
        "ML_DSA_65",
        "ML_DSA_87",
        "ML_KEM_768",
        "ML_KEM_1024",
    }
    assert {str(s) for s in SUPPORTED_DATA_KEY_PAIR_SPECS} == {
        "RSA_2048",
        "RSA_3072",
        "RSA_4096",
        "ECC_NIST_P256",
        "ECC_NIST_P384",
        "ECC_NIST_P521",
        "ECC_SECG_P256K1",
        "ECC_NIST_EDWARDS25519",
        "ML_KEM_768",
        "ML_KEM_1024",
    }


def test_every_aws_spec_has_a_usage_row() -> None:
    assert set(AWS_KEY_SPEC_USAGES) == set(KeySpec)


@pytest.mark.parametrize(
    ("spec", "algorithm", "limit"),
    [
        (KeySpec.RSA_2048, EncryptionAlgorithm.RSAES_OAEP_SHA_1, 214),
        (KeySpec.RSA_2048, EncryptionAlgorithm.RSAES_OAEP_SHA_256, 190),
        (KeySpec.RSA_3072, EncryptionAlgorithm.RSAES_OAEP_SHA_1, 342),
        (KeySpec.RSA_3072, EncryptionAlgorithm.RSAES_OAEP_SHA_256, 318),
        (KeySpec.RSA_4096, EncryptionAlgorithm.RSAES_OAEP_SHA_1, 470),
        (KeySpec.RSA_4096, EncryptionAlgorithm.RSAES_OAEP_SHA_256, 446),
    ],
)
def test_rsa_oaep_limits_are_awss(spec: KeySpec, algorithm: EncryptionAlgorithm, limit: int) -> None:
    assert RSA_OAEP_MAX_PLAINTEXT_BYTES[(spec, algorithm)] == limit


# --- CreateKey: validate_spec_and_usage ------------------------------------------------------------------

VALID_PAIRS = [
    (None, None, KeyUsage.ENCRYPT_DECRYPT),
    (None, KeyUsage.ENCRYPT_DECRYPT, KeyUsage.ENCRYPT_DECRYPT),
    (KeySpec.SYMMETRIC_DEFAULT, None, KeyUsage.ENCRYPT_DECRYPT),
    (KeySpec.SYMMETRIC_DEFAULT, KeyUsage.ENCRYPT_DECRYPT, KeyUsage.ENCRYPT_DECRYPT),
    (KeySpec.RSA_2048, KeyUsage.ENCRYPT_DECRYPT, KeyUsage.ENCRYPT_DECRYPT),
    (KeySpec.RSA_3072, KeyUsage.SIGN_VERIFY, KeyUsage.SIGN_VERIFY),
    (KeySpec.RSA_4096, KeyUsage.SIGN_VERIFY, KeyUsage.SIGN_VERIFY),
    (KeySpec.ECC_NIST_P256, KeyUsage.SIGN_VERIFY, KeyUsage.SIGN_VERIFY),
    (KeySpec.ECC_NIST_P384, KeyUsage.KEY_AGREEMENT, KeyUsage.KEY_AGREEMENT),
    (KeySpec.ECC_NIST_P521, KeyUsage.KEY_AGREEMENT, KeyUsage.KEY_AGREEMENT),
    (KeySpec.ECC_SECG_P256K1, KeyUsage.SIGN_VERIFY, KeyUsage.SIGN_VERIFY),
    (KeySpec.ECC_NIST_EDWARDS25519, KeyUsage.SIGN_VERIFY, KeyUsage.SIGN_VERIFY),
    (KeySpec.HMAC_224, KeyUsage.GENERATE_VERIFY_MAC, KeyUsage.GENERATE_VERIFY_MAC),
    (KeySpec.HMAC_512, KeyUsage.GENERATE_VERIFY_MAC, KeyUsage.GENERATE_VERIFY_MAC),
    (KeySpec.ML_DSA_44, KeyUsage.SIGN_VERIFY, KeyUsage.SIGN_VERIFY),
    (KeySpec.ML_DSA_65, KeyUsage.SIGN_VERIFY, KeyUsage.SIGN_VERIFY),
    (KeySpec.ML_DSA_87, KeyUsage.SIGN_VERIFY, KeyUsage.SIGN_VERIFY),
    (KeySpec.ML_KEM_768, KeyUsage.ENCAPSULATE_DECAPSULATE, KeyUsage.ENCAPSULATE_DECAPSULATE),
    (KeySpec.ML_KEM_1024, KeyUsage.ENCAPSULATE_DECAPSULATE, KeyUsage.ENCAPSULATE_DECAPSULATE),
]


@pytest.mark.parametrize(("spec", "usage", "resolved"), VALID_PAIRS)
def test_valid_spec_and_usage(spec: KeySpec | None, usage: KeyUsage | None, resolved: KeyUsage) -> None:
    assert validate_spec_and_usage(spec, usage) is resolved


USAGE_REQUIRED = "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys."

INVALID_PAIRS = [
    (KeySpec.RSA_2048, None, CryptoValidationError, USAGE_REQUIRED),
    (KeySpec.ECC_NIST_P256, None, CryptoValidationError, USAGE_REQUIRED),
    (KeySpec.HMAC_256, None, CryptoValidationError, USAGE_REQUIRED),
    (KeySpec.ML_DSA_44, None, CryptoValidationError, USAGE_REQUIRED),
    (
        KeySpec.RSA_2048,
        KeyUsage.KEY_AGREEMENT,
        CryptoValidationError,
        "KeyUsage KEY_AGREEMENT is not compatible with KeySpec RSA_2048",
    ),
    (
        None,
        KeyUsage.SIGN_VERIFY,
        CryptoValidationError,
        "KeyUsage SIGN_VERIFY is not compatible with KeySpec SYMMETRIC_DEFAULT",
    ),
    (
        KeySpec.HMAC_224,
        KeyUsage.ENCRYPT_DECRYPT,
        CryptoValidationError,
        "KeyUsage ENCRYPT_DECRYPT is not compatible with KeySpec HMAC_224",
    ),
    (
        KeySpec.ECC_SECG_P256K1,
        KeyUsage.KEY_AGREEMENT,
        CryptoValidationError,
        "KeyUsage KEY_AGREEMENT is not compatible with KeySpec ECC_SECG_P256K1",
    ),
    (
        KeySpec.ECC_NIST_EDWARDS25519,
        KeyUsage.ENCRYPT_DECRYPT,
        CryptoValidationError,
        "KeyUsage ENCRYPT_DECRYPT is not compatible with KeySpec ECC_NIST_EDWARDS25519",
    ),
    (
        KeySpec.ML_DSA_65,
        KeyUsage.ENCAPSULATE_DECAPSULATE,
        CryptoValidationError,
        "KeyUsage ENCAPSULATE_DECAPSULATE is not compatible with KeySpec ML_DSA_65",
    ),
    (
        KeySpec.ML_KEM_768,
        KeyUsage.SIGN_VERIFY,
        CryptoValidationError,
        "KeyUsage SIGN_VERIFY is not compatible with KeySpec ML_KEM_768",
    ),
    (
        KeySpec.RSA_2048,
        KeyUsage.ENCAPSULATE_DECAPSULATE,
        CryptoValidationError,
        "KeyUsage ENCAPSULATE_DECAPSULATE is not compatible with KeySpec RSA_2048",
    ),
    (KeySpec.SM2, KeyUsage.SIGN_VERIFY, UnsupportedOperation, "KeySpec SM2 is not supported."),
    (
        KeySpec.ML_KEM_512,
        KeyUsage.ENCAPSULATE_DECAPSULATE,
        UnsupportedOperation,
        "KeySpec ML_KEM_512 is not supported: this KMS implements ML_KEM_768 and ML_KEM_1024 only (its "
        "cryptography library has no ML-KEM-512).",
    ),
]


@pytest.mark.parametrize(("spec", "usage", "error", "message"), INVALID_PAIRS)
def test_invalid_spec_and_usage(
    spec: KeySpec | None, usage: KeyUsage | None, error: type[CryptoError], message: str
) -> None:
    with pytest.raises(error) as caught:
        validate_spec_and_usage(spec, usage)
    assert caught.value.message == message


@pytest.mark.parametrize(("spec", "usage"), list(itertools.product(KeySpec, KeyUsage)))
def test_every_pair_follows_the_aws_table(spec: KeySpec, usage: KeyUsage) -> None:
    allowed = usage in AWS_KEY_SPEC_USAGES[spec]
    if allowed and spec in SUPPORTED_KEY_SPECS:
        assert validate_spec_and_usage(spec, usage) is usage
    elif allowed:
        with pytest.raises(UnsupportedOperation):
            validate_spec_and_usage(spec, usage)
    else:
        with pytest.raises(CryptoValidationError, match=r"^KeyUsage \w+ is not compatible with KeySpec \w+$"):
            validate_spec_and_usage(spec, usage)


# --- DescribeKey algorithm lists ---------------------------------------------------------------------------

KEY_ALGORITHMS = [
    (KeySpec.SYMMETRIC_DEFAULT, KeyUsage.ENCRYPT_DECRYPT, "encryption_algorithms", ["SYMMETRIC_DEFAULT"]),
    (
        KeySpec.RSA_2048,
        KeyUsage.ENCRYPT_DECRYPT,
        "encryption_algorithms",
        ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"],
    ),
    (
        KeySpec.RSA_4096,
        KeyUsage.SIGN_VERIFY,
        "signing_algorithms",
        [
            "RSASSA_PSS_SHA_256",
            "RSASSA_PSS_SHA_384",
            "RSASSA_PSS_SHA_512",
            "RSASSA_PKCS1_V1_5_SHA_256",
            "RSASSA_PKCS1_V1_5_SHA_384",
            "RSASSA_PKCS1_V1_5_SHA_512",
        ],
    ),
    (KeySpec.ECC_NIST_P256, KeyUsage.SIGN_VERIFY, "signing_algorithms", ["ECDSA_SHA_256"]),
    (KeySpec.ECC_NIST_P384, KeyUsage.SIGN_VERIFY, "signing_algorithms", ["ECDSA_SHA_384"]),
    (KeySpec.ECC_NIST_P521, KeyUsage.SIGN_VERIFY, "signing_algorithms", ["ECDSA_SHA_512"]),
    (KeySpec.ECC_SECG_P256K1, KeyUsage.SIGN_VERIFY, "signing_algorithms", ["ECDSA_SHA_256"]),
    # Both of AWS's: pure Ed25519 and Ed25519ph.
    (
        KeySpec.ECC_NIST_EDWARDS25519,
        KeyUsage.SIGN_VERIFY,
        "signing_algorithms",
        ["ED25519_SHA_512", "ED25519_PH_SHA_512"],
    ),
    (KeySpec.ECC_NIST_P384, KeyUsage.KEY_AGREEMENT, "key_agreement_algorithms", ["ECDH"]),
    (KeySpec.HMAC_224, KeyUsage.GENERATE_VERIFY_MAC, "mac_algorithms", ["HMAC_SHA_224"]),
    (KeySpec.HMAC_384, KeyUsage.GENERATE_VERIFY_MAC, "mac_algorithms", ["HMAC_SHA_384"]),
    (KeySpec.ML_DSA_44, KeyUsage.SIGN_VERIFY, "signing_algorithms", ["ML_DSA_SHAKE_256"]),
    (KeySpec.ML_DSA_87, KeyUsage.SIGN_VERIFY, "signing_algorithms", ["ML_DSA_SHAKE_256"]),
    (KeySpec.ML_KEM_768, KeyUsage.ENCAPSULATE_DECAPSULATE, "encapsulation_algorithms", ["ML_KEM"]),
    (KeySpec.ML_KEM_1024, KeyUsage.ENCAPSULATE_DECAPSULATE, "encapsulation_algorithms", ["ML_KEM"]),
]


@pytest.mark.parametrize(("spec", "usage", "field", "expected"), KEY_ALGORITHMS)
def test_key_algorithms(spec: KeySpec, usage: KeyUsage, field: str, expected: list[str]) -> None:
    algorithms = key_algorithms(spec, usage)
    assert [str(a) for a in getattr(algorithms, field)] == expected
    for other in (
        "encryption_algorithms",
        "signing_algorithms",
        "mac_algorithms",
        "key_agreement_algorithms",
        "encapsulation_algorithms",
    ):
        if other != field:
            assert getattr(algorithms, other) == ()
    member = "".join(part.capitalize() for part in field.split("_"))
    assert algorithms.members() == {member: expected}


# --- operation/usage and algorithm/spec checks -------------------------------------------------------------


@pytest.mark.parametrize("operation", sorted(OPERATION_KEY_USAGE))
def test_check_key_usage_accepts_the_right_usage(operation: str) -> None:
    check_key_usage(key_arn=ARN, key_usage=OPERATION_KEY_USAGE[operation], operation=operation)


@pytest.mark.parametrize(
    ("usage", "operation"),
    [
        (KeyUsage.ENCRYPT_DECRYPT, "GenerateMac"),
        (KeyUsage.ENCRYPT_DECRYPT, "Sign"),
        (KeyUsage.SIGN_VERIFY, "Encrypt"),
        (KeyUsage.GENERATE_VERIFY_MAC, "Verify"),
        (KeyUsage.SIGN_VERIFY, "DeriveSharedSecret"),
        (KeyUsage.KEY_AGREEMENT, "Decrypt"),
        (KeyUsage.SIGN_VERIFY, "Encapsulate"),
        (KeyUsage.ENCAPSULATE_DECAPSULATE, "Sign"),
        (KeyUsage.KEY_AGREEMENT, "Decapsulate"),
    ],
)
def test_check_key_usage_message(usage: KeyUsage, operation: str) -> None:
    with pytest.raises(InvalidKeyUsage) as caught:
        check_key_usage(key_arn=ARN, key_usage=usage, operation=operation)
    assert caught.value.code == "InvalidKeyUsageException"
    assert caught.value.message == f"{ARN} key usage is {usage} which is not valid for {operation}."


def test_check_key_usage_unknown_operation_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="no key usage"):
        check_key_usage(key_arn=ARN, key_usage=KeyUsage.ENCRYPT_DECRYPT, operation="DescribeKey")


@pytest.mark.parametrize(
    ("spec", "operation", "fails"),
    [
        (KeySpec.SYMMETRIC_DEFAULT, "GenerateDataKey", False),
        (KeySpec.SYMMETRIC_DEFAULT, "GenerateDataKeyPairWithoutPlaintext", False),
        (KeySpec.RSA_2048, "GenerateDataKey", True),
        (KeySpec.RSA_4096, "GenerateDataKeyPair", True),
        (KeySpec.RSA_2048, "Encrypt", False),
    ],
)
def test_data_keys_need_a_symmetric_key(spec: KeySpec, operation: str, fails: bool) -> None:
    if fails:
        with pytest.raises(InvalidKeyUsage, match=r"^You cannot generate a data key with an asymmetric CMK$"):
            check_data_key_encrypting_key(key_spec=spec, operation=operation)
    else:
        check_data_key_encrypting_key(key_spec=spec, operation=operation)


ALGORITHM_MISMATCHES = [
    (check_mac_algorithm, KeySpec.HMAC_224, MacAlgorithm.HMAC_SHA_256),
    (check_mac_algorithm, KeySpec.RSA_2048, MacAlgorithm.HMAC_SHA_256),
    (check_signing_algorithm, KeySpec.ECC_NIST_P256, SigningAlgorithm.ECDSA_SHA_384),
    (check_signing_algorithm, KeySpec.ECC_SECG_P256K1, SigningAlgorithm.ECDSA_SHA_512),
    (check_signing_algorithm, KeySpec.RSA_2048, SigningAlgorithm.ECDSA_SHA_256),
    (check_signing_algorithm, KeySpec.ECC_NIST_EDWARDS25519, SigningAlgorithm.ECDSA_SHA_512),
    (check_signing_algorithm, KeySpec.SYMMETRIC_DEFAULT, SigningAlgorithm.RSASSA_PSS_SHA_256),
    (check_encryption_algorithm, KeySpec.RSA_2048, EncryptionAlgorithm.SYMMETRIC_DEFAULT),
    (check_encryption_algorithm, KeySpec.SYMMETRIC_DEFAULT, EncryptionAlgorithm.RSAES_OAEP_SHA_256),
    (check_encryption_algorithm, KeySpec.RSA_3072, EncryptionAlgorithm.SM2PKE),
    (check_key_agreement_algorithm, KeySpec.ECC_SECG_P256K1, KeyAgreementAlgorithm.ECDH),
    (check_key_agreement_algorithm, KeySpec.RSA_2048, KeyAgreementAlgorithm.ECDH),
    (check_signing_algorithm, KeySpec.ML_DSA_44, SigningAlgorithm.ECDSA_SHA_256),
    (check_signing_algorithm, KeySpec.ECC_NIST_P256, SigningAlgorithm.ML_DSA_SHAKE_256),
    (check_signing_algorithm, KeySpec.ML_KEM_768, SigningAlgorithm.ML_DSA_SHAKE_256),
    (check_encapsulation_algorithm, KeySpec.ECC_NIST_P256, EncapsulationAlgorithm.ML_KEM),
    (check_encapsulation_algorithm, KeySpec.ML_DSA_65, EncapsulationAlgorithm.ML_KEM),
]


@pytest.mark.parametrize(("check", "spec", "algorithm"), ALGORITHM_MISMATCHES)
def test_algorithm_incompatible_with_spec(check: object, spec: KeySpec, algorithm: str) -> None:
    with pytest.raises(InvalidKeyUsage) as caught:
        check(spec, algorithm)  # type: ignore[operator]
    assert caught.value.message == f"Algorithm {algorithm} is incompatible with key spec {spec}."


def test_awss_recorded_algorithm_message() -> None:
    with pytest.raises(InvalidKeyUsage) as caught:
        check_mac_algorithm(KeySpec.HMAC_224, MacAlgorithm.HMAC_SHA_256)
    assert str(caught.value) == "Algorithm HMAC_SHA_256 is incompatible with key spec HMAC_224."


@pytest.mark.parametrize(
    ("check", "spec", "algorithm"),
    [
        (check_signing_algorithm, KeySpec.SM2, SigningAlgorithm.SM2DSA),
        (check_encryption_algorithm, KeySpec.SM2, EncryptionAlgorithm.SM2PKE),
        (check_key_agreement_algorithm, KeySpec.SM2, KeyAgreementAlgorithm.ECDH),
        (check_encapsulation_algorithm, KeySpec.ML_KEM_512, EncapsulationAlgorithm.ML_KEM),
    ],
)
def test_aws_algorithms_not_implemented_here(check: object, spec: KeySpec, algorithm: str) -> None:
    with pytest.raises(UnsupportedOperation) as caught:
        check(spec, algorithm)  # type: ignore[operator]
    assert caught.value.code == "UnsupportedOperationException"


# --- purity -----------------------------------------------------------------------------------------------


def test_crypto_core_imports_no_django() -> None:
    code = (
        "import sys, keys.crypto, keys.crypto.datakeys, keys.crypto.signing, keys.crypto.asymmetric, "
        "keys.crypto.encapsulation; "
        "bad = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=CRYPTO_DIR.parents[1], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_crypto_sources_never_mention_django() -> None:
    mine = [p for p in CRYPTO_DIR.glob("*.py") if p.name != "sealing.py"]  # sealing.py is not this core's
    assert len(mine) >= 10
    for path in mine:
        source = path.read_text()
        assert "import django" not in source and "from django" not in source, path.name

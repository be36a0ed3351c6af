"""The cryptographic operations over boto3 against the live server: results, every documented error, key states,
DryRun, authorization across users, roles and accounts, and the audit trail (one event per call, no secrets)."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from botocore import xform_name
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keys.models import Key, KeyMaterial, KeyState
from kmsconsole.audit.marks import PENDING_DELETION_USE
from kmsconsole.audit.models import AuditEvent
from tests.conftest import Persona
from tests.rows import update_sealed

pytestmark = pytest.mark.django_db(transaction=True)

ACCOUNT, PARTNER = "111122223333", "444455556666"
CONTEXT = {"tenant": "42", "purpose": "orders"}
DENIED = "AccessDeniedException"
INVALID_CIPHERTEXT = ("InvalidCiphertextException", "")
INCORRECT_KEY = (
    "IncorrectKeyException",
    "The key ID in the request does not identify a CMK that can perform this operation.",
)
DRY_RUN = ("DryRunOperationException", "The request would have succeeded, but the DryRun option is set.")
Keys = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Outcome:
    """One API call: its response ({} on error) or its (code, message), and the one audit event it wrote."""

    response: dict[str, Any]
    error: tuple[str, str] | None
    event: AuditEvent

    @property
    def trail(self) -> tuple[str, str, str]:
        return self.event.operation, self.event.decision, self.event.key_arn


def run(send: Callable[[], Any]) -> Outcome:
    before = AuditEvent.objects.count()
    response, error = {}, None
    try:
        response = send()
    except ClientError as exc:
        error = (exc.response["Error"]["Code"], exc.response["Error"].get("Message", ""))
    assert AuditEvent.objects.count() == before + 1, "every call writes exactly one audit event"
    return Outcome(response, error, AuditEvent.objects.order_by("-seq").first())


def error_of(send: Callable[[], Any]) -> tuple[str, str]:
    """The (code, message) of a call that must fail."""
    error = run(send).error
    assert error is not None, "the call should have failed"
    return error


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal: str, *actions: str, sid: str = "Allow use of the key", **extra: Any) -> dict[str, Any]:
    statement = {"Sid": sid, "Effect": "Allow", "Principal": {"AWS": principal}, "Action": list(actions)}
    return {**statement, "Resource": "*", **extra}


ROOT = allow(f"arn:aws:iam::{ACCOUNT}:root", "kms:*", sid="Enable IAM User Permissions")


def identity_policy(resource: str | list[str], *actions: str) -> str:
    return policy({"Effect": "Allow", "Action": list(actions), "Resource": resource})


@pytest.fixture
def keys(create_key: Callable[..., dict[str, Any]]) -> Keys:
    """One key of each kind, created by the admin (default key policy)."""
    return {
        "symmetric": create_key(),
        "rsa_encrypt": create_key(KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT"),
        "rsa_sign": create_key(KeySpec="RSA_2048", KeyUsage="SIGN_VERIFY"),
        "ecc_sign": create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY"),
        "hmac": create_key(KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC"),
        "ecc_agree": create_key(KeySpec="ECC_NIST_P256", KeyUsage="KEY_AGREEMENT"),
    }


@pytest.fixture
def blob(admin_kms: Any, keys: Keys) -> bytes:
    """Symmetric ciphertext under the symmetric key, with CONTEXT."""
    encrypted = admin_kms.encrypt(KeyId=keys["symmetric"]["KeyId"], Plaintext=b"x", EncryptionContext=CONTEXT)
    return bytes(encrypted["CiphertextBlob"])


# One request per operation on a key of `kind`. KEY and BLOB stand for the key id and the `blob` fixture; a
# member set to None is left out.
KEY, BLOB = object(), object()
PEER = ec.generate_private_key(ec.SECP256R1())
PEER_PUBLIC_KEY = PEER.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
)
SIGN = {"KeyId": KEY, "Message": b"m", "SigningAlgorithm": "RSASSA_PSS_SHA_256"}
MAC = {"KeyId": KEY, "Message": b"m", "MacAlgorithm": "HMAC_SHA_256"}
EVERY_OPERATION: dict[str, tuple[str, dict[str, Any]]] = {
    "Encrypt": ("symmetric", {"KeyId": KEY, "Plaintext": b"x"}),
    "Decrypt": ("symmetric", {"CiphertextBlob": BLOB}),
    "ReEncrypt": ("symmetric", {"CiphertextBlob": BLOB, "DestinationKeyId": KEY}),
    "GenerateDataKey": ("symmetric", {"KeyId": KEY, "KeySpec": "AES_256"}),
    "GenerateDataKeyWithoutPlaintext": ("symmetric", {"KeyId": KEY, "NumberOfBytes": 8}),
    "GenerateDataKeyPair": ("symmetric", {"KeyId": KEY, "KeyPairSpec": "ECC_NIST_P256"}),
    "GenerateDataKeyPairWithoutPlaintext": ("symmetric", {"KeyId": KEY, "KeyPairSpec": "ECC_NIST_P256"}),
    "Sign": ("rsa_sign", SIGN),
    "Verify": ("rsa_sign", {**SIGN, "Signature": b"s"}),
    "GenerateMac": ("hmac", MAC),
    "VerifyMac": ("hmac", {**MAC, "Mac": b"m"}),
    "GetPublicKey": ("rsa_sign", {"KeyId": KEY}),
    "DeriveSharedSecret": (
        "ecc_agree",
        {"KeyId": KEY, "KeyAgreementAlgorithm": "ECDH", "PublicKey": PEER_PUBLIC_KEY},
    ),
}


def invoke(client: Any, operation: str, changes: dict[str, Any], *, key: str, blob: bytes) -> Any:
    """Send EVERY_OPERATION's request for `operation`, with `changes`, naming `key`."""
    request = {**EVERY_OPERATION[operation][1], **changes}
    values = {
        name: key if v is KEY else blob if v is BLOB else v for name, v in request.items() if v is not None
    }
    return getattr(client, xform_name(operation))(**values)


# --- Every documented error, table-driven -------------------------------------------------------------------

USAGE = ("InvalidKeyUsageException", "{arn} key usage is {usage} which is not valid for {operation}.")
NO_DATA_KEYS = ("InvalidKeyUsageException", "You cannot generate a data key with an asymmetric CMK")
NO_PUBLIC_KEY = ("UnsupportedOperationException", "{arn} key spec SYMMETRIC_DEFAULT has no public key.")
EITHER = ("ValidationException", "Please specify either number of bytes or key spec.")
CORAL = "1 validation error detected: Value{} at '{}' failed to satisfy constraint: Member must "
OAEP_1, OAEP_256 = {"EncryptionAlgorithm": "RSAES_OAEP_SHA_1"}, {"EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}
IGNORE = {"DryRun": True, "DryRunModifiers": ["IGNORE_CIPHERTEXT"]}


def incompatible(algorithm: str, spec: str) -> tuple[str, str]:
    return "InvalidKeyUsageException", f"Algorithm {algorithm} is incompatible with key spec {spec}."


def too_long(member: str, limit: int) -> tuple[str, str]:
    return "ValidationException", CORAL.format("", member) + f"have length less than or equal to {limit}"


def rsa_limit(algorithm: str, limit: int) -> tuple[str, str]:
    message = f"Algorithm {algorithm} and key spec RSA_2048 cannot encrypt data larger than {limit} bytes."
    return "ValidationException", message


ASYMMETRIC_CONTEXT = (
    "ValidationException",
    "EncryptionContext is not supported when encrypting/decrypting with asymmetric CMKs.",
)
SHORT_DIGEST = ("ValidationException", "Digest is invalid length for algorithm RSASSA_PSS_SHA_256.")
TOO_MANY_BYTES = (
    "ValidationException",
    CORAL.format(" '1025'", "numberOfBytes") + "have value less than or equal to 1024",
)
NO_SM2 = ("UnsupportedOperationException", "KeyPairSpec SM2 is not supported.")
NO_CIPHERTEXT = ("ValidationException", CORAL.format(" null", "ciphertextBlob") + "not be null")
NO_KEY_ID = ("ValidationException", "KeyId is required when DryRunModifiers includes IGNORE_CIPHERTEXT.")
ECDSA_384, HMAC_512 = {"SigningAlgorithm": "ECDSA_SHA_384"}, {"MacAlgorithm": "HMAC_SHA_512"}
OTHER_CASE = {"Tenant": "42", "purpose": "orders"}

ERRORS: list[tuple[str, str, dict[str, Any], tuple[str, str]]] = [
    # Key usage and spec.
    ("rsa_sign", "Encrypt", {}, USAGE),
    ("hmac", "Decrypt", {"KeyId": KEY}, USAGE),
    ("rsa_sign", "ReEncrypt", {"SourceKeyId": KEY}, USAGE),
    ("symmetric", "Sign", {}, USAGE),
    ("hmac", "Verify", {}, USAGE),
    ("symmetric", "GenerateMac", {}, USAGE),
    ("ecc_sign", "VerifyMac", {}, USAGE),
    ("hmac", "GenerateDataKey", {}, USAGE),
    ("ecc_sign", "GenerateDataKeyPair", {}, USAGE),
    ("rsa_encrypt", "GenerateDataKeyWithoutPlaintext", {}, NO_DATA_KEYS),
    ("rsa_encrypt", "GenerateDataKeyPairWithoutPlaintext", {}, NO_DATA_KEYS),
    ("symmetric", "GetPublicKey", {}, NO_PUBLIC_KEY),
    # Algorithms.
    ("symmetric", "Encrypt", OAEP_256, incompatible("RSAES_OAEP_SHA_256", "SYMMETRIC_DEFAULT")),
    ("rsa_encrypt", "Encrypt", {}, incompatible("SYMMETRIC_DEFAULT", "RSA_2048")),
    ("symmetric", "Decrypt", OAEP_1, incompatible("RSAES_OAEP_SHA_1", "SYMMETRIC_DEFAULT")),
    ("ecc_sign", "Sign", ECDSA_384, incompatible("ECDSA_SHA_384", "ECC_NIST_P256")),
    ("rsa_sign", "Verify", {"SigningAlgorithm": "ECDSA_SHA_256"}, incompatible("ECDSA_SHA_256", "RSA_2048")),
    ("hmac", "VerifyMac", HMAC_512, incompatible("HMAC_SHA_512", "HMAC_256")),
    # Sizes (just past the limit: the largest valid sizes are in the success tests) and semantics.
    ("symmetric", "Encrypt", {"Plaintext": b"a" * 4097}, too_long("plaintext", 4096)),
    ("rsa_encrypt", "Encrypt", {"Plaintext": b"r" * 191, **OAEP_256}, rsa_limit("RSAES_OAEP_SHA_256", 190)),
    ("rsa_encrypt", "Encrypt", {"Plaintext": b"r" * 215, **OAEP_1}, rsa_limit("RSAES_OAEP_SHA_1", 214)),
    ("rsa_encrypt", "Encrypt", {**OAEP_256, "EncryptionContext": CONTEXT}, ASYMMETRIC_CONTEXT),
    ("rsa_sign", "Sign", {"Message": b"m" * 4097}, too_long("message", 4096)),
    ("hmac", "GenerateMac", {"Message": b"m" * 4097}, too_long("message", 4096)),
    ("rsa_sign", "Sign", {"Message": b"d" * 31, "MessageType": "DIGEST"}, SHORT_DIGEST),
    ("symmetric", "GenerateDataKey", {"KeySpec": None}, EITHER),
    ("symmetric", "GenerateDataKey", {"NumberOfBytes": 32}, EITHER),
    ("symmetric", "GenerateDataKeyWithoutPlaintext", {"NumberOfBytes": 1025}, TOO_MANY_BYTES),
    ("symmetric", "GenerateDataKeyPair", {"KeyPairSpec": "SM2"}, NO_SM2),
    ("symmetric", "Decrypt", {"CiphertextBlob": None}, NO_CIPHERTEXT),
    ("symmetric", "Decrypt", {"CiphertextBlob": None, **IGNORE}, NO_KEY_ID),
    # A failed verification the public key alone decides.
    ("rsa_sign", "Verify", {}, ("KMSInvalidSignatureException", "")),
]
# What only the key's material can tell: ciphertext bound to another context (exact, case-sensitive pairs, in
# any order), a MAC that does not match. A dry run of these operations opens the material to tell it too
# (kmsconsole.operations.DRY_RUN_NEEDS_MATERIAL).
MATERIAL_ERRORS: list[tuple[str, str, dict[str, Any], tuple[str, str]]] = [
    ("symmetric", "Decrypt", {}, INVALID_CIPHERTEXT),
    ("symmetric", "Decrypt", {"EncryptionContext": {"tenant": "42"}}, INVALID_CIPHERTEXT),
    ("symmetric", "Decrypt", {"EncryptionContext": {**CONTEXT, "tenant": "43"}}, INVALID_CIPHERTEXT),
    ("symmetric", "Decrypt", {"EncryptionContext": {**CONTEXT, "extra": ""}}, INVALID_CIPHERTEXT),
    ("symmetric", "Decrypt", {"EncryptionContext": OTHER_CASE}, INVALID_CIPHERTEXT),
    ("symmetric", "ReEncrypt", {"DestinationEncryptionContext": CONTEXT}, INVALID_CIPHERTEXT),
    ("hmac", "VerifyMac", {}, ("KMSInvalidMacException", "")),
]
EVERY_ERROR = ERRORS + MATERIAL_ERRORS


# Each documented error, and the same request as a dry run (every operation here but GetPublicKey takes DryRun).
ERROR_CASES = [(*error, False) for error in EVERY_ERROR] + [
    (*error, True) for error in EVERY_ERROR if error[1] != "GetPublicKey"
]


@pytest.mark.parametrize(
    ("kind", "operation", "changes", "expected", "dry_run"),
    ERROR_CASES,
    ids=[f"{e[1]}-{i}{'-dry-run' if e[4] else ''}" for i, e in enumerate(ERROR_CASES)],
)
def test_documented_errors(
    admin_kms: Any,
    keys: Keys,
    blob: bytes,
    unsealed: list[str],
    kind: str,
    operation: str,
    changes: dict[str, Any],
    expected: tuple[str, str],
    dry_run: bool,
) -> None:
    """Every documented error, and the same answer to the same request as a dry run: without opening any key
    material, except where only the material can tell (MATERIAL_ERRORS: a ciphertext bound to another context, a
    MAC that does not match), which a dry run opens it to tell, as AWS's does (IGNORE_CIPHERTEXT skips it)."""
    key = keys[kind]
    unsealed.clear()
    request = {**changes, "DryRun": True} if dry_run else changes
    outcome = run(lambda: invoke(admin_kms, operation, request, key=key["KeyId"], blob=blob))
    code, message = expected
    assert outcome.error == (code, message.format(arn=key["Arn"], usage=key["KeyUsage"], operation=operation))
    assert outcome.event.operation == operation and outcome.event.decision == "failed"
    assert outcome.event.error_code == code
    if dry_run:
        assert (unsealed != []) == ((kind, operation, changes, expected) in MATERIAL_ERRORS)


def no_usable_key(caller_arn: str, action: str = "kms:Decrypt") -> tuple[str, str]:
    """AWS's answer to a ciphertext whose key does not exist in this Region or does not let the caller in."""
    return DENIED, (
        f"User: {caller_arn} is not authorized to perform: {action} on the resource associated with this "
        "ciphertext because the resource does not exist in this Region, no resource-based policies allow access, "
        "or a resource-based policy explicitly denies access"
    )


def test_tampered_truncated_and_foreign_blobs(admin_kms: Any, admin: Persona, blob: bytes) -> None:
    flipped = [blob[:i] + bytes([blob[i] ^ 1]) + blob[i + 1 :] for i in (0, 40, 60, 80, len(blob) - 1)]
    for bad in (*flipped, blob[:-1], blob + b"\x00", b"not a ciphertext", bytes(100)):
        outcome = run(lambda b=bad: admin_kms.decrypt(CiphertextBlob=b, EncryptionContext=CONTEXT))
        assert outcome.error == INVALID_CIPHERTEXT
    # Well formed, but the header names no key (a bit flipped in its key id, or none at all): answered as AWS
    # answers a key that does not exist in this Region, which is also how a key of another account that refuses the
    # caller is answered (test_cross_account_use), so it says nothing of which it is.
    for unknown_key in (blob[:5] + bytes([blob[5] ^ 1]) + blob[6:], blob[:1] + bytes(16) + blob[17:]):
        outcome = run(lambda b=unknown_key: admin_kms.decrypt(CiphertextBlob=b, EncryptionContext=CONTEXT))
        assert outcome.error == no_usable_key(admin.arn)
        assert outcome.trail == ("Decrypt", "denied", "")


def test_key_id_naming_another_key(admin_kms: Any, keys: Keys, blob: bytes) -> None:
    another = admin_kms.create_key()["KeyMetadata"]["Arn"]
    outcome = run(lambda: admin_kms.decrypt(CiphertextBlob=blob, KeyId=another, EncryptionContext=CONTEXT))
    assert outcome.error == INCORRECT_KEY and outcome.trail == ("Decrypt", "failed", another)
    request = {"CiphertextBlob": blob, "SourceKeyId": another, "DestinationKeyId": keys["symmetric"]["Arn"]}
    assert error_of(lambda: admin_kms.re_encrypt(SourceEncryptionContext=CONTEXT, **request)) == INCORRECT_KEY


# --- Results ------------------------------------------------------------------------------------------------


def test_symmetric_round_trip_in_every_key_id_form(admin_kms: Any, keys: Keys) -> None:
    key = keys["symmetric"]
    arn = key["Arn"]
    largest = b"a" * 4096
    encrypt = run(lambda: admin_kms.encrypt(KeyId=key["KeyId"], Plaintext=largest, EncryptionContext=CONTEXT))
    assert (encrypt.response["KeyId"], encrypt.response["EncryptionAlgorithm"]) == (arn, "SYMMETRIC_DEFAULT")
    assert "KeyMaterialId" not in encrypt.response  # Encrypt's output shape has none
    assert encrypt.trail == ("Encrypt", "allowed", arn)
    assert encrypt.event.request_parameters["EncryptionContext"] == CONTEXT
    blob = encrypt.response["CiphertextBlob"]
    assert len(blob) == 4096 + 93

    # No KeyId: the blob names its key and material; the context may come in any order.
    reordered = dict(reversed(list(CONTEXT.items())))
    decrypt = run(lambda: admin_kms.decrypt(CiphertextBlob=blob, EncryptionContext=reordered))
    assert (decrypt.response["Plaintext"], decrypt.response["KeyId"]) == (largest, arn)
    assert decrypt.response["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert decrypt.response["KeyMaterialId"] == key["CurrentKeyMaterialId"]
    assert decrypt.trail == ("Decrypt", "allowed", arn)

    admin_kms.create_alias(AliasName="alias/orders", TargetKeyId=key["KeyId"])
    alias_arn = arn.replace(f"key/{key['KeyId']}", "alias/orders")
    for key_id in (key["KeyId"], arn, "alias/orders", alias_arn):
        result = admin_kms.decrypt(CiphertextBlob=blob, KeyId=key_id, EncryptionContext=CONTEXT)
        assert (result["Plaintext"], result["KeyId"]) == (largest, arn)
        assert admin_kms.encrypt(KeyId=key_id, Plaintext=b"x")["KeyId"] == arn


@pytest.mark.parametrize(("algorithm", "limit"), [("RSAES_OAEP_SHA_256", 190), ("RSAES_OAEP_SHA_1", 214)])
def test_rsa_encrypt_decrypt(admin_kms: Any, keys: Keys, algorithm: str, limit: int) -> None:
    key_id, arn = keys["rsa_encrypt"]["KeyId"], keys["rsa_encrypt"]["Arn"]
    encrypted = admin_kms.encrypt(KeyId=key_id, Plaintext=b"r" * limit, EncryptionAlgorithm=algorithm)
    rsa_blob = encrypted["CiphertextBlob"]
    assert (encrypted["KeyId"], encrypted["EncryptionAlgorithm"], len(rsa_blob)) == (arn, algorithm, 256)
    decrypted = admin_kms.decrypt(CiphertextBlob=rsa_blob, KeyId=arn, EncryptionAlgorithm=algorithm)
    assert decrypted["Plaintext"] == b"r" * limit and "KeyMaterialId" not in decrypted
    # RSA ciphertext has no header: the KeyId and the same algorithm are required.
    other = "RSAES_OAEP_SHA_1" if algorithm == "RSAES_OAEP_SHA_256" else "RSAES_OAEP_SHA_256"
    for params in ({"EncryptionAlgorithm": algorithm}, {"KeyId": arn, "EncryptionAlgorithm": other}):
        outcome = run(lambda p=params: admin_kms.decrypt(CiphertextBlob=rsa_blob, **p))
        assert outcome.error == INVALID_CIPHERTEXT
    refused = error_of(lambda: admin_kms.decrypt(CiphertextBlob=rsa_blob, KeyId=key_id))
    assert refused == incompatible("SYMMETRIC_DEFAULT", "RSA_2048")


def test_re_encrypt_between_keys_and_contexts(admin_kms: Any, keys: Keys, blob: bytes) -> None:
    source, rsa = keys["symmetric"], keys["rsa_encrypt"]
    target = admin_kms.create_key()["KeyMetadata"]
    contexts = {"SourceEncryptionContext": CONTEXT, "DestinationEncryptionContext": {"moved": "yes"}}
    moved = run(lambda: admin_kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=target["Arn"], **contexts))
    response = moved.response
    assert (response["SourceKeyId"], response["KeyId"]) == (source["Arn"], target["Arn"])
    assert {response["SourceEncryptionAlgorithm"], response["DestinationEncryptionAlgorithm"]} == {
        "SYMMETRIC_DEFAULT"
    }
    assert response["SourceKeyMaterialId"] == source["CurrentKeyMaterialId"]
    assert response["DestinationKeyMaterialId"] == target["CurrentKeyMaterialId"]
    assert moved.trail == ("ReEncrypt", "allowed", target["Arn"])
    assert moved.event.response_elements["SourceKeyId"] == source["Arn"]
    opened = admin_kms.decrypt(CiphertextBlob=response["CiphertextBlob"], EncryptionContext={"moved": "yes"})
    assert (opened["Plaintext"], opened["KeyId"]) == (b"x", target["Arn"])
    # To an RSA key and back: asymmetric ciphertext needs the source key and its algorithm.
    to_rsa = {"DestinationKeyId": rsa["KeyId"], "DestinationEncryptionAlgorithm": "RSAES_OAEP_SHA_256"}
    there = admin_kms.re_encrypt(CiphertextBlob=blob, SourceEncryptionContext=CONTEXT, **to_rsa)
    assert "DestinationKeyMaterialId" not in there and there["SourceKeyMaterialId"]
    from_rsa = {"SourceKeyId": rsa["Arn"], "SourceEncryptionAlgorithm": "RSAES_OAEP_SHA_256"}
    from_rsa["DestinationKeyId"] = source["KeyId"]
    back = admin_kms.re_encrypt(CiphertextBlob=there["CiphertextBlob"], **from_rsa)
    assert "SourceKeyMaterialId" not in back and back["DestinationKeyMaterialId"]
    assert admin_kms.decrypt(CiphertextBlob=back["CiphertextBlob"])["Plaintext"] == b"x"


def test_generate_data_key(admin_kms: Any, keys: Keys) -> None:
    key = keys["symmetric"]
    sizes = [({"KeySpec": "AES_256"}, 32), ({"KeySpec": "AES_128"}, 16), ({"NumberOfBytes": 1}, 1)]
    for params, size in [*sizes, ({"NumberOfBytes": 1024}, 1024)]:
        request = {"KeyId": key["KeyId"], "EncryptionContext": CONTEXT, **params}
        made = run(lambda r=request: admin_kms.generate_data_key(**r))
        assert len(made.response["Plaintext"]) == size and made.response["KeyId"] == key["Arn"]
        assert made.response["KeyMaterialId"] == key["CurrentKeyMaterialId"]
        assert made.trail == ("GenerateDataKey", "allowed", key["Arn"])
        opened = admin_kms.decrypt(CiphertextBlob=made.response["CiphertextBlob"], EncryptionContext=CONTEXT)
        assert opened["Plaintext"] == made.response["Plaintext"]
    without = admin_kms.generate_data_key_without_plaintext(KeyId=key["KeyId"], KeySpec="AES_256")
    assert "Plaintext" not in without and without["KeyId"] == key["Arn"] and without["KeyMaterialId"]
    assert len(admin_kms.decrypt(CiphertextBlob=without["CiphertextBlob"])["Plaintext"]) == 32


@pytest.mark.parametrize("spec", ["ECC_NIST_P256", "RSA_2048", "ECC_NIST_EDWARDS25519"])
def test_generate_data_key_pair(admin_kms: Any, keys: Keys, spec: str) -> None:
    key = keys["symmetric"]
    pair = admin_kms.generate_data_key_pair(KeyId=key["KeyId"], KeyPairSpec=spec, EncryptionContext=CONTEXT)
    assert (pair["KeyId"], pair["KeyPairSpec"]) == (key["Arn"], spec)
    assert pair["KeyMaterialId"] == key["CurrentKeyMaterialId"]
    private = serialization.load_der_private_key(pair["PrivateKeyPlaintext"], password=None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert private.public_key().public_bytes(serialization.Encoding.DER, spki) == pair["PublicKey"]
    opened = admin_kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"], EncryptionContext=CONTEXT)
    assert opened["Plaintext"] == pair["PrivateKeyPlaintext"]
    without = admin_kms.generate_data_key_pair_without_plaintext(KeyId=key["KeyId"], KeyPairSpec=spec)
    assert "PrivateKeyPlaintext" not in without
    assert without["PublicKey"] and without["PrivateKeyCiphertextBlob"]


SIGNING = [
    ("rsa_sign", "RSASSA_PSS_SHA_256"),
    ("rsa_sign", "RSASSA_PKCS1_V1_5_SHA_512"),
    ("ecc_sign", "ECDSA_SHA_256"),
]


@pytest.mark.parametrize(("kind", "algorithm"), SIGNING)
def test_sign_and_verify(admin_kms: Any, keys: Keys, kind: str, algorithm: str) -> None:
    key_id, arn = keys[kind]["KeyId"], keys[kind]["Arn"]
    message = b"m" * 4096
    signed = run(lambda: admin_kms.sign(KeyId=key_id, Message=message, SigningAlgorithm=algorithm))
    assert (signed.response["KeyId"], signed.response["SigningAlgorithm"]) == (arn, algorithm)
    assert signed.trail == ("Sign", "allowed", arn)
    signature = signed.response["Signature"]
    request = {"KeyId": key_id, "Signature": signature, "SigningAlgorithm": algorithm}
    verified = admin_kms.verify(Message=message, **request)
    assert verified == {**verified, "SignatureValid": True, "KeyId": arn, "SigningAlgorithm": algorithm}
    digest = hashlib.new(f"sha{algorithm[-3:]}", message).digest()
    assert admin_kms.verify(Message=digest, MessageType="DIGEST", **request)["SignatureValid"]
    for bad_message, bad_signature in (
        (b"n" * 4096, signature),
        (message, signature[:-1] + bytes([signature[-1] ^ 0x80])),
    ):
        bad = {"Message": bad_message, "Signature": bad_signature, "SigningAlgorithm": algorithm}
        outcome = run(lambda b=bad: admin_kms.verify(KeyId=key_id, **b))
        assert outcome.error == ("KMSInvalidSignatureException", "")
        assert outcome.trail == ("Verify", "failed", arn)


def test_generate_and_verify_mac(admin_kms: Any, keys: Keys) -> None:
    key_id, arn = keys["hmac"]["KeyId"], keys["hmac"]["Arn"]
    message, algorithm = b"x" * 4096, "HMAC_SHA_256"
    made = run(lambda: admin_kms.generate_mac(KeyId=key_id, Message=message, MacAlgorithm=algorithm))
    mac = made.response["Mac"]
    assert (len(mac), made.response["KeyId"], made.response["MacAlgorithm"]) == (32, arn, algorithm)
    assert made.trail == ("GenerateMac", "allowed", arn)
    checked = admin_kms.verify_mac(KeyId=key_id, Message=message, Mac=mac, MacAlgorithm=algorithm)
    assert (checked["MacValid"], checked["KeyId"], checked["MacAlgorithm"]) == (True, arn, algorithm)
    for bad_message, bad_mac in ((b"y" * 4096, mac), (message, mac[:-1]), (message, bytes(32))):
        bad = {"Message": bad_message, "Mac": bad_mac, "MacAlgorithm": algorithm}
        outcome = run(lambda b=bad: admin_kms.verify_mac(KeyId=key_id, **b))
        assert outcome.error == ("KMSInvalidMacException", "")


def test_get_public_key(admin_kms: Any, keys: Keys) -> None:
    rsa, ecc = keys["rsa_encrypt"], keys["ecc_sign"]
    got = run(lambda: admin_kms.get_public_key(KeyId=rsa["KeyId"]))
    response = got.response
    assert response == {**response, "KeyId": rsa["Arn"], "KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT_DECRYPT"}
    assert response["CustomerMasterKeySpec"] == "RSA_2048" and "SigningAlgorithms" not in response
    assert response["EncryptionAlgorithms"] == ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
    assert serialization.load_der_public_key(response["PublicKey"]).key_size == 2048
    assert got.trail == ("GetPublicKey", "allowed", rsa["Arn"])
    signing = admin_kms.get_public_key(KeyId=ecc["Arn"])
    assert signing["SigningAlgorithms"] == ["ECDSA_SHA_256"] and "EncryptionAlgorithms" not in signing


# --- Key states and DryRun ----------------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["Disabled", "PendingDeletion"])
def test_unusable_keys_refuse_every_operation(admin_kms: Any, keys: Keys, blob: bytes, state: str) -> None:
    if state == "Disabled":
        for kind in ("symmetric", "rsa_sign", "hmac", "ecc_agree"):
            admin_kms.disable_key(KeyId=keys[kind]["KeyId"])
    else:  # set directly: this suite does not depend on ScheduleKeyDeletion
        key_ids = [k["KeyId"] for k in keys.values()]
        update_sealed(Key.objects.filter(key_id__in=key_ids), state=KeyState.PENDING_DELETION)
    for operation, (kind, _) in EVERY_OPERATION.items():
        arn = keys[kind]["Arn"]
        outcome = run(lambda o=operation, k=keys[kind]["KeyId"]: invoke(admin_kms, o, {}, key=k, blob=blob))
        if state == "Disabled":
            assert outcome.error == ("DisabledException", f"{arn} is disabled."), operation
        else:
            assert outcome.error == ("KMSInvalidStateException", f"{arn} is pending deletion."), operation
        assert outcome.trail == (operation, "failed", arn)
        # Use of a key pending deletion is what operators alarm on: every path marks its event.
        notable = PENDING_DELETION_USE if state == "PendingDeletion" else ""
        assert outcome.event.notable == notable, operation


# Every operation here that takes DryRun (GetPublicKey does not), and what makes its request one that succeeds.
DRY_RUN_OPERATIONS = [operation for operation in EVERY_OPERATION if operation != "GetPublicKey"]
SUCCEEDS: dict[str, dict[str, Any]] = {
    "Decrypt": {"EncryptionContext": CONTEXT},
    "ReEncrypt": {"SourceEncryptionContext": CONTEXT},
}


def succeeding(client: Any, operation: str, keys: Keys) -> dict[str, Any]:
    """The changes that make EVERY_OPERATION's request for `operation` succeed (a real signature and MAC)."""
    changes = dict(SUCCEEDS.get(operation, {}))
    if operation == "Verify":
        signed = client.sign(
            KeyId=keys["rsa_sign"]["KeyId"], Message=b"m", SigningAlgorithm="RSASSA_PSS_SHA_256"
        )
        changes["Signature"] = signed["Signature"]
    if operation == "VerifyMac":
        made = client.generate_mac(KeyId=keys["hmac"]["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_256")
        changes["Mac"] = made["Mac"]
    return changes


@pytest.mark.parametrize("operation", DRY_RUN_OPERATIONS)
def test_a_dry_run_that_would_succeed_opens_key_material_only_where_the_answer_depends_on_it(
    admin_kms: Any,
    keys: Keys,
    blob: bytes,
    unsealed: list[str],
    operation: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DryRun answers DryRunOperationException once every check has passed, and is audited as before: the request,
    the decision, the exception, no response. It unseals no key material (and makes no data key pair) except
    where the answer depends on it: Decrypt and ReEncrypt decrypt the ciphertext, VerifyMac compares the MAC."""
    from keys import crypto as core
    from kmsconsole.operations import DRY_RUN_NEEDS_MATERIAL

    pairs: list[object] = []
    real_pair = core.generate_data_key_pair
    monkeypatch.setattr(core, "generate_data_key_pair", lambda spec: pairs.append(spec) or real_pair(spec))
    key = keys[EVERY_OPERATION[operation][0]]
    changes = succeeding(admin_kms, operation, keys)
    unsealed.clear()
    send = lambda extra: invoke(admin_kms, operation, {**changes, **extra}, key=key["KeyId"], blob=blob)  # noqa: E731

    dry = run(lambda: send({"DryRun": True}))
    assert dry.error == DRY_RUN
    assert dry.trail == (operation, "failed", key["Arn"])
    assert (dry.event.error_code, dry.event.error_message, dry.event.response_elements) == (*DRY_RUN, None)
    assert dry.event.request_parameters["DryRun"] is True
    assert dry.event.reason and dry.event.decided_by  # the authorization decision, as for any request
    assert (operation in unsealed) == (operation in DRY_RUN_NEEDS_MATERIAL) and pairs == []
    unsealed.clear()

    done = run(lambda: send({}))
    assert done.error is None and done.trail == (operation, "allowed", key["Arn"])
    # The same request without DryRun does open the material (Verify needs only the public key).
    assert (operation in unsealed) == (operation != "Verify")
    assert len(pairs) == (1 if operation.startswith("GenerateDataKeyPair") else 0)


def test_a_dry_run_still_checks_the_ciphertext_as_far_as_it_can_be_read(
    admin_kms: Any, admin: Persona, keys: Keys, blob: bytes, unsealed: list[str]
) -> None:
    """What a ciphertext shows without the key's material is still checked: a blob that cannot be ours (length,
    version), one naming no key or a material version the key does not have, a KeyId naming another key than the
    header's, an RSA ciphertext of the wrong length. IGNORE_CIPHERTEXT skips those checks, and nothing else."""
    unsealed.clear()
    symmetric = keys["symmetric"]
    unknown_key = blob[:1] + bytes(16) + blob[17:]
    unknown_material = blob[:17] + bytes(32) + blob[49:]
    for bad in (blob[:50], b"\x02" + blob[1:], b"not a ciphertext", unknown_material):
        outcome = run(
            lambda b=bad: admin_kms.decrypt(CiphertextBlob=b, EncryptionContext=CONTEXT, DryRun=True)
        )
        assert outcome.error == INVALID_CIPHERTEXT
    no_key = error_of(
        lambda: admin_kms.decrypt(CiphertextBlob=unknown_key, EncryptionContext=CONTEXT, DryRun=True)
    )
    assert no_key == no_usable_key(admin.arn)
    another = admin_kms.create_key()["KeyMetadata"]["Arn"]
    dry = {"EncryptionContext": CONTEXT, "DryRun": True}
    assert error_of(lambda: admin_kms.decrypt(CiphertextBlob=blob, KeyId=another, **dry)) == INCORRECT_KEY
    re_encrypt = {"CiphertextBlob": blob, "SourceKeyId": another, "DestinationKeyId": symmetric["Arn"]}
    assert error_of(lambda: admin_kms.re_encrypt(**re_encrypt, DryRun=True)) == INCORRECT_KEY
    rsa = {"KeyId": keys["rsa_encrypt"]["Arn"], "EncryptionAlgorithm": "RSAES_OAEP_SHA_256", "DryRun": True}
    assert error_of(lambda: admin_kms.decrypt(CiphertextBlob=bytes(255), **rsa)) == INVALID_CIPHERTEXT
    assert unsealed == []  # none of those needed the material to be refused
    # The right length: only the private key tells that it is no ciphertext of this key.
    assert error_of(lambda: admin_kms.decrypt(CiphertextBlob=bytes(256), **rsa)) == INVALID_CIPHERTEXT
    assert unsealed == ["Decrypt", "unseal"]
    unsealed.clear()
    # The ciphertext ignored, the rest checked: the key, its usage, the algorithm.
    assert (
        error_of(lambda: admin_kms.decrypt(CiphertextBlob=b"junk", KeyId=symmetric["KeyId"], **IGNORE))
        == DRY_RUN
    )
    refused = error_of(lambda: admin_kms.decrypt(KeyId=symmetric["KeyId"], **OAEP_1, **IGNORE))
    assert refused == incompatible("RSAES_OAEP_SHA_1", "SYMMETRIC_DEFAULT")
    assert unsealed == []


def test_a_dry_run_is_refused_to_a_denied_caller_and_on_a_disabled_key(
    admin_kms: Any,
    outsider: Persona,
    kms_client: Callable[..., Any],
    keys: Keys,
    blob: bytes,
    unsealed: list[str],
) -> None:
    unsealed.clear()
    outsider_kms = kms_client(outsider)
    for operation in DRY_RUN_OPERATIONS:
        key = keys[EVERY_OPERATION[operation][0]]
        request = {**SUCCEEDS.get(operation, {}), "DryRun": True}
        denied = run(
            lambda o=operation, r=request, k=key: invoke(outsider_kms, o, r, key=k["Arn"], blob=blob)
        )
        assert denied.error is not None and denied.error[0] == DENIED, operation
        assert denied.trail == (operation, "denied", key["Arn"])
    for kind in ("symmetric", "rsa_sign", "hmac", "ecc_agree"):
        admin_kms.disable_key(KeyId=keys[kind]["KeyId"])
    for operation in DRY_RUN_OPERATIONS:
        key = keys[EVERY_OPERATION[operation][0]]
        request = {**SUCCEEDS.get(operation, {}), "DryRun": True}
        disabled = run(
            lambda o=operation, r=request, k=key: invoke(admin_kms, o, r, key=k["KeyId"], blob=blob)
        )
        assert disabled.error == ("DisabledException", f"{key['Arn']} is disabled."), operation
        assert disabled.trail == (operation, "failed", key["Arn"])
    assert unsealed == []


@pytest.mark.parametrize("operation", ["Encrypt", "GenerateDataKey", "GenerateDataKeyPair", "GenerateMac", "Sign",
                                       "DeriveSharedSecret", "ReEncrypt"])  # fmt: skip
def test_a_dry_run_refuses_a_material_row_changed_in_the_database_as_the_request_does(
    admin_kms: Any, keys: Keys, blob: bytes, unsealed: list[str], operation: str
) -> None:
    """A dry run stops before unsealing, but not before the current material row its work would use passes its row
    check: a row changed in the database (its MAC no longer matches: here, how the version was made) is refused
    by both, never reported as a request that would succeed. (Sealed bytes changed in the database fail only
    when unsealed, which a dry run does not do: README.)"""
    kind = EVERY_OPERATION[operation][0]
    changes = succeeding(admin_kms, operation, keys)
    KeyMaterial.objects.filter(key__key_id=keys[kind]["KeyId"]).update(
        rotation_type=KeyMaterial.RotationType.ON_DEMAND
    )
    key_id = keys[kind]["KeyId"]
    unsealed.clear()
    for dry in ({"DryRun": True}, {}):
        # Not through `run`: botocore retries KMSInternalException, and each attempt is a request with its event.
        with pytest.raises(ClientError) as refused:
            invoke(admin_kms, operation, {**changes, **dry}, key=key_id, blob=blob)
        assert refused.value.response["Error"]["Code"] == "KMSInternalException", dry
    assert "unseal" not in unsealed


def test_a_dry_run_re_encrypt_checks_that_the_plaintext_fits_its_rsa_destination(
    admin_kms: Any, keys: Keys
) -> None:
    """ReEncrypt's dry run decrypts, so it can tell (as the request does) that the plaintext is too large for an
    RSA destination; one that fits would succeed."""
    symmetric, rsa = keys["symmetric"]["KeyId"], keys["rsa_encrypt"]["Arn"]
    large = admin_kms.encrypt(KeyId=symmetric, Plaintext=b"p" * 191)["CiphertextBlob"]
    small = admin_kms.encrypt(KeyId=symmetric, Plaintext=b"p" * 190)["CiphertextBlob"]
    to_rsa = {"DestinationKeyId": rsa, "DestinationEncryptionAlgorithm": "RSAES_OAEP_SHA_256"}
    for dry in (True, False):
        code, message = error_of(lambda d=dry: admin_kms.re_encrypt(CiphertextBlob=large, **to_rsa, DryRun=d))
        assert code == "ValidationException" and "cannot encrypt data larger than 190 bytes" in message
    assert error_of(lambda: admin_kms.re_encrypt(CiphertextBlob=small, **to_rsa, DryRun=True)) == DRY_RUN


def test_a_dry_run_context_never_opens_key_material(create_key: Callable[..., dict[str, Any]]) -> None:
    """The last line: `open_material` refuses the context of a dry run whose answer does not depend on the material
    (fail closed), before anything is unsealed; Decrypt's dry run may open it."""
    from keys.materials import current_material, open_material
    from kmsconsole.core import errors
    from tests.conftest import operator_context

    key = Key.objects.select_related("account").get(key_id=create_key()["KeyId"])
    material = current_material(key)
    for operation in ("Encrypt", "GenerateDataKey", "GenerateMac"):
        with pytest.raises(errors.KMSInternalException):
            open_material(operator_context(operation, dry_run=True), material)
    assert open_material(operator_context("Decrypt"), material)
    assert open_material(operator_context("Decrypt", dry_run=True), material)


# --- Authorization: users, roles, accounts ------------------------------------------------------------------


@pytest.mark.parametrize("operation", list(EVERY_OPERATION))
def test_outsider_is_denied(
    kms_client: Callable[..., Any], outsider: Persona, keys: Keys, blob: bytes, operation: str
) -> None:
    arn = keys[EVERY_OPERATION[operation][0]]["Arn"]
    outcome = run(lambda: invoke(kms_client(outsider), operation, {}, key=arn, blob=blob))
    action = "kms:ReEncryptFrom" if operation == "ReEncrypt" else f"kms:{operation}"
    assert outcome.error is not None and outcome.error[0] == DENIED
    expected = f"User: {outsider.arn} is not authorized to perform: {action} on resource: {arn} "
    assert outcome.error[1].startswith(expected)
    assert outcome.trail == (operation, "denied", arn) and outcome.event.caller_arn == outsider.arn


def test_key_policy_user_and_role_session(
    admin_kms: Any, kms_client: Callable[..., Any], make_user: Callable[..., Persona], role_session: Any
) -> None:
    user = make_user("key-user")
    key = admin_kms.create_key(Policy=policy(ROOT, allow(user.arn, "kms:Encrypt", "kms:Decrypt")))[
        "KeyMetadata"
    ]
    client = kms_client(user)
    blob = client.encrypt(KeyId=key["Arn"], Plaintext=b"by policy")["CiphertextBlob"]
    decrypted = run(lambda: client.decrypt(CiphertextBlob=blob))
    assert decrypted.response["Plaintext"] == b"by policy"
    assert (decrypted.event.decision, decrypted.event.caller_arn) == ("allowed", user.arn)
    assert "Allow use of the key" in decrypted.event.decided_by
    assert error_of(lambda: client.generate_data_key(KeyId=key["Arn"], KeySpec="AES_256"))[0] == DENIED

    # A role session: the key policy delegates to IAM (root statement), the role's policy allows the key.
    actions = ("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey")
    session = role_session("app", identity_policy(key["Arn"], *actions))
    role_kms = kms_client(session)
    data_key = run(lambda: role_kms.generate_data_key(KeyId=key["Arn"], KeySpec="AES_256"))
    assert (data_key.event.decision, data_key.event.caller_arn) == ("allowed", session.arn)
    opened = role_kms.decrypt(CiphertextBlob=data_key.response["CiphertextBlob"])
    assert opened["Plaintext"] == data_key.response["Plaintext"]
    assert role_kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"by policy"
    other = admin_kms.create_key()["KeyMetadata"]["Arn"]
    code, message = error_of(lambda: role_kms.encrypt(KeyId=other, Plaintext=b"x"))
    assert code == DENIED and session.arn in message


def test_re_encrypt_needs_both_permissions(
    admin_kms: Any, kms_client: Callable[..., Any], make_user: Callable[..., Persona]
) -> None:
    mover = make_user("mover")
    same_key = {"Bool": {"kms:ReEncryptOnSameKey": "true"}}
    in_place_only = allow(mover.arn, "kms:ReEncrypt*", sid="Same", Condition=same_key)

    def create(*statements: dict[str, Any]) -> str:
        return str(admin_kms.create_key(Policy=policy(ROOT, *statements))["KeyMetadata"]["Arn"])

    source = create(allow(mover.arn, "kms:ReEncryptFrom", "kms:Encrypt"))
    destination = create(allow(mover.arn, "kms:ReEncryptTo"), in_place_only)
    elsewhere = create()
    client = kms_client(mover)
    blob = client.encrypt(KeyId=source, Plaintext=b"data")["CiphertextBlob"]
    moved = run(lambda: client.re_encrypt(CiphertextBlob=blob, DestinationKeyId=destination))
    assert moved.trail == ("ReEncrypt", "allowed", destination)
    # Allowed on the source, not on the destination: denied, and recorded against the destination.
    denied = run(lambda: client.re_encrypt(CiphertextBlob=blob, DestinationKeyId=elsewhere))
    assert denied.error is not None and denied.error[0] == DENIED
    assert f"kms:ReEncryptTo on resource: {elsewhere}" in denied.error[1]
    assert denied.trail == ("ReEncrypt", "denied", elsewhere)
    # Not allowed on the source: denied there, and recorded against the source.
    other_blob = admin_kms.encrypt(KeyId=elsewhere, Plaintext=b"data")["CiphertextBlob"]
    denied = run(lambda: client.re_encrypt(CiphertextBlob=other_blob, DestinationKeyId=destination))
    assert denied.error is not None and f"kms:ReEncryptFrom on resource: {elsewhere}" in denied.error[1]
    assert denied.trail == ("ReEncrypt", "denied", elsewhere)
    # kms:ReEncryptOnSameKey: the destination's second statement allows re-encrypting in place, nothing else.
    in_place = client.re_encrypt(
        CiphertextBlob=moved.response["CiphertextBlob"], DestinationKeyId=destination
    )
    assert in_place["KeyId"] == in_place["SourceKeyId"] == destination
    away = {"CiphertextBlob": in_place["CiphertextBlob"], "DestinationKeyId": source}
    code, message = error_of(lambda: client.re_encrypt(**away))
    assert code == DENIED and f"kms:ReEncryptFrom on resource: {destination}" in message


def test_cross_account_use(
    admin_kms: Any, kms_client: Callable[..., Any], partner: Callable[..., Persona], keys: Keys
) -> None:
    partner_root = allow(f"arn:aws:iam::{PARTNER}:root", "kms:Encrypt", "kms:Decrypt", sid="Partner")
    key = admin_kms.create_key(Policy=policy(ROOT, partner_root))["KeyMetadata"]
    arn = key["Arn"]
    # The partner's policy allows more than the key policy grants its account: only the overlap counts.
    resources = [arn, keys["symmetric"]["Arn"]]
    actions = ("kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey")
    trusted = kms_client(partner("app", identity_policy(resources, *actions)))
    untrusted = kms_client(partner("no-identity-policy"))
    encrypted = run(lambda: trusted.encrypt(KeyId=arn, Plaintext=b"shared", EncryptionContext=CONTEXT))
    assert encrypted.response["KeyId"] == arn and encrypted.trail == ("Encrypt", "allowed", arn)
    assert encrypted.event.caller_account == PARTNER
    blob = encrypted.response["CiphertextBlob"]
    # By key ARN; without KeyId (the ciphertext names its key); by bare key id when the ciphertext agrees.
    for params in ({"KeyId": arn}, {}, {"KeyId": key["KeyId"]}):
        opened = trusted.decrypt(CiphertextBlob=blob, EncryptionContext=CONTEXT, **params)
        assert (opened["Plaintext"], opened["KeyId"]) == (b"shared", arn)
    # Anywhere else, a bare key id names a key of the caller's own account.
    assert error_of(lambda: trusted.encrypt(KeyId=key["KeyId"], Plaintext=b"x"))[0] == "NotFoundException"
    assert error_of(lambda: trusted.generate_data_key(KeyId=arn, KeySpec="AES_256"))[0] == DENIED
    # A key whose policy does not trust the partner account: the partner's own policy is not enough.
    code, message = error_of(lambda: trusted.encrypt(KeyId=keys["symmetric"]["Arn"], Plaintext=b"x"))
    assert code == DENIED and message.endswith(
        "because no resource-based policy allows the kms:Encrypt action"
    )

    # Without an identity policy in its own account, the key policy's trust in the account is not enough.
    for action, send in (
        ("Encrypt", lambda: untrusted.encrypt(KeyId=arn, Plaintext=b"x")),
        ("Decrypt", lambda: untrusted.decrypt(CiphertextBlob=blob, KeyId=arn, EncryptionContext=CONTEXT)),
    ):
        code, message = error_of(send)
        assert code == DENIED
        assert message.endswith(f"because no identity-based policy allows the kms:{action} action")
    # Named only by a ciphertext, another account's key the caller may not use is answered as AWS answers it, in
    # the words it gives a key that does not exist (tests/keys/test_undisclosed_key.py: the caller's trail).
    hidden = run(lambda: untrusted.decrypt(CiphertextBlob=blob, EncryptionContext=CONTEXT))
    assert hidden.error == no_usable_key(hidden.event.caller_arn)
    assert hidden.trail == ("Decrypt", "denied", arn)
    assert hidden.event.error_code == DENIED
    forged = blob[:1] + bytes(16) + blob[17:]
    assert error_of(lambda: untrusted.decrypt(CiphertextBlob=forged)) == hidden.error


# --- No secret in the audit trail or the logs ---------------------------------------------------------------


def test_no_secret_reaches_the_audit_trail_or_logs(
    admin_kms: Any, caplog: pytest.LogCaptureFixture, keys: Keys
) -> None:
    caplog.set_level(logging.DEBUG)
    kinds = ("symmetric", "rsa_encrypt", "rsa_sign", "hmac")
    symmetric, rsa, signer, hmac = (keys[kind]["KeyId"] for kind in kinds)
    plaintext, message = b"top secret plaintext 0123456789", b"a message that is never logged 42"
    pss, sha256 = {"SigningAlgorithm": "RSASSA_PSS_SHA_384"}, {"MacAlgorithm": "HMAC_SHA_256"}
    encrypted = admin_kms.encrypt(KeyId=symmetric, Plaintext=plaintext, EncryptionContext=CONTEXT)[
        "CiphertextBlob"
    ]
    rsa_blob = admin_kms.encrypt(KeyId=rsa, Plaintext=plaintext, **OAEP_256)["CiphertextBlob"]
    data_key = admin_kms.generate_data_key(KeyId=symmetric, KeySpec="AES_256")
    pair = admin_kms.generate_data_key_pair(KeyId=symmetric, KeyPairSpec="ECC_NIST_P384")
    signature = admin_kms.sign(KeyId=signer, Message=message, **pss)["Signature"]
    mac = admin_kms.generate_mac(KeyId=hmac, Message=message, **sha256)["Mac"]
    forged = b"forged signature bytes 0123456789abcdef"
    to_rsa = {"DestinationKeyId": rsa, "DestinationEncryptionAlgorithm": "RSAES_OAEP_SHA_1"}
    moved = admin_kms.re_encrypt(CiphertextBlob=encrypted, SourceEncryptionContext=CONTEXT, **to_rsa)
    without = admin_kms.generate_data_key_without_plaintext(KeyId=symmetric, NumberOfBytes=64)
    pair_without = admin_kms.generate_data_key_pair_without_plaintext(KeyId=symmetric, KeyPairSpec="RSA_2048")
    secrets = [plaintext, message, encrypted, rsa_blob, signature, mac, forged, moved["CiphertextBlob"]]
    secrets += [data_key["Plaintext"], data_key["CiphertextBlob"], without["CiphertextBlob"]]
    shared = admin_kms.derive_shared_secret(
        KeyId=keys["ecc_agree"]["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=PEER_PUBLIC_KEY
    )["SharedSecret"]
    secrets += [
        pair["PrivateKeyPlaintext"],
        pair["PrivateKeyCiphertextBlob"],
        pair_without["PrivateKeyCiphertextBlob"],
        shared,
    ]
    admin_kms.decrypt(CiphertextBlob=encrypted, EncryptionContext=CONTEXT)
    admin_kms.decrypt(CiphertextBlob=rsa_blob, KeyId=rsa, **OAEP_256)
    admin_kms.verify(KeyId=signer, Message=message, Signature=signature, **pss)
    admin_kms.verify_mac(KeyId=hmac, Message=message, Mac=mac, **sha256)
    for failing in (  # failures too: their messages and events must not echo what they were given
        lambda: admin_kms.decrypt(CiphertextBlob=encrypted),
        lambda: admin_kms.encrypt(KeyId=rsa, Plaintext=plaintext * 10, **OAEP_256),
        lambda: admin_kms.verify(KeyId=signer, Message=message, Signature=forged, **pss),
        lambda: admin_kms.verify_mac(KeyId=hmac, Message=message * 2, Mac=mac, **sha256),
    ):
        error_of(failing)

    events = list(AuditEvent.objects.values())
    assert {e["operation"] for e in events} >= set(EVERY_OPERATION) - {"GetPublicKey"}
    trail = json.dumps(events, default=str)
    assert keys["symmetric"]["Arn"] in trail and "tenant" in trail  # the scan reads real content
    server_logs = "\n".join(
        record.getMessage() + (record.exc_text or "")
        for record in caplog.records
        if not record.name.startswith(("botocore", "boto3", "urllib3"))  # the client's own debug logs
    )
    for secret in secrets:
        b64 = base64.b64encode(secret).decode()
        for encoded in (b64, base64.urlsafe_b64encode(secret).decode(), secret.hex(), secret.hex().upper()):
            assert encoded not in trail and encoded not in server_logs


def test_no_trace_of_another_accounts_key_policy(
    admin_kms: Any, kms_client: Callable[..., Any], partner: Callable[..., Persona]
) -> None:
    explain = {"Effect": "Allow", "Action": "kmsconsole:Explain", "Resource": "*"}
    key = admin_kms.create_key(
        Policy=policy(ROOT, allow(f"arn:aws:iam::{PARTNER}:root", "kms:Encrypt", sid="Partner"))
    )["KeyMetadata"]
    document = json.loads(identity_policy([key["Arn"]], "kms:Encrypt"))
    document["Statement"] += [explain, {"Effect": "Allow", "Action": "kms:GenerateRandom", "Resource": "*"}]
    client = kms_client(partner("curious", json.dumps(document)))
    client.meta.events.register(
        "before-sign.kms.*", lambda request, **_: request.headers.add_header("X-Kms-Explain", "1")
    )
    response = client.encrypt(KeyId=key["Arn"], Plaintext=b"x")
    assert "x-kms-explanation" not in response["ResponseMetadata"]["HTTPHeaders"]
    own = client.generate_random(NumberOfBytes=1)
    assert "x-kms-explanation" in own["ResponseMetadata"]["HTTPHeaders"]


def test_derive_shared_secret_agrees_with_the_peer(admin_kms: Any, keys: Keys) -> None:
    """ECDH both ways: what KMS derives from its private key and the peer's public key is what the peer derives
    from its private key and the KMS key's public key. Never recorded in the trail."""
    agree = keys["ecc_agree"]
    kms_public = serialization.load_der_public_key(
        admin_kms.get_public_key(KeyId=agree["KeyId"])["PublicKey"]
    )
    assert isinstance(kms_public, ec.EllipticCurvePublicKey)
    derived = admin_kms.derive_shared_secret(
        KeyId=agree["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=PEER_PUBLIC_KEY
    )
    secret = PEER.exchange(ec.ECDH(), kms_public)
    assert derived["SharedSecret"] == secret and len(secret) == 32
    assert (derived["KeyId"], derived["KeyAgreementAlgorithm"]) == (agree["Arn"], "ECDH")
    event = AuditEvent.objects.filter(operation="DeriveSharedSecret").get()
    assert event.decision == "allowed" and "SharedSecret" not in json.dumps(event.response_elements or {})
    other_curve = (
        ec.generate_private_key(ec.SECP384R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    assert (
        error_of(
            lambda: admin_kms.derive_shared_secret(
                KeyId=agree["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=other_curve
            )
        )[0]
        == "ValidationException"
    )
    assert (
        error_of(
            lambda: admin_kms.derive_shared_secret(
                KeyId=keys["ecc_sign"]["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=PEER_PUBLIC_KEY
            )
        )[0]
        == "InvalidKeyUsageException"
    )


def test_only_symmetric_keys_name_their_current_key_material(admin_kms: Any, keys: Keys) -> None:
    """The service model: CurrentKeyMaterialId is present for symmetric encryption keys only."""
    for kind, key in keys.items():
        metadata = admin_kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
        assert ("CurrentKeyMaterialId" in metadata) == (kind == "symmetric"), kind

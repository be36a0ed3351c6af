"""Interoperability: real AWS tools and standard cryptography against the live server, unchanged.

- the AWS Encryption SDK for Python with a strict KMS master key provider (two keys, an encryption context);
- the AWS CLI (`python -m awscli kms encrypt/decrypt --endpoint-url`);
- `cryptography` on the other side of Sign/GetPublicKey, of RSA Encrypt/Decrypt and of GenerateDataKeyPair.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aws_encryption_sdk
import botocore.session
import pytest
from aws_encryption_sdk import CommitmentPolicy, StrictAwsKmsMasterKeyProvider
from botocore.exceptions import ClientError
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from django.conf import settings

from kmsconsole.audit.models import AuditEvent
from tests.conftest import Persona

pytestmark = pytest.mark.django_db(transaction=True)

CONTEXT = {"tenant": "42", "purpose": "interop"}


# --- AWS Encryption SDK -------------------------------------------------------------------------------------


@pytest.fixture
def esdk_session(
    live_server: Any, admin: Persona, monkeypatch: pytest.MonkeyPatch
) -> botocore.session.Session:
    """A botocore session signing as the admin. The SDK builds its own KMS clients from it and takes no endpoint
    argument; botocore's service-specific endpoint variable points those clients at the live server."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", live_server.url)
    monkeypatch.delenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", raising=False)
    session = botocore.session.Session()
    session.set_credentials(admin.access_key_id, admin.secret_access_key)
    session.set_config_variable("region", settings.KMS_REGION)
    return session


def test_encryption_sdk_round_trip(
    esdk_session: botocore.session.Session, create_key: Callable[..., dict[str, Any]]
) -> None:
    primary, secondary = create_key()["Arn"], create_key()["Arn"]
    sdk = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    plaintext = os.urandom(10_000)  # larger than any KMS limit: the SDK's data key does the work
    # Two keys: GenerateDataKey under the first, Encrypt of the same data key under the second.
    writer = StrictAwsKmsMasterKeyProvider(key_ids=[primary, secondary], botocore_session=esdk_session)
    ciphertext, header = sdk.encrypt(source=plaintext, key_provider=writer, encryption_context=CONTEXT)
    assert ciphertext != plaintext and len(header.encrypted_data_keys) == 2
    assert {k.key_provider.key_info.decode() for k in header.encrypted_data_keys} == {primary, secondary}

    # Either key alone decrypts (the SDK calls Decrypt with KeyId and the context it stored, plus its own pairs).
    for key_arn in (primary, secondary):
        reader = StrictAwsKmsMasterKeyProvider(key_ids=[key_arn], botocore_session=esdk_session)
        decrypted, decrypt_header = sdk.decrypt(source=ciphertext, key_provider=reader)
        assert decrypted == plaintext
        assert CONTEXT.items() <= decrypt_header.encryption_context.items()

    operations = list(AuditEvent.objects.filter(decision="allowed").values_list("operation", "key_arn"))
    assert ("GenerateDataKey", primary) in operations and ("Encrypt", secondary) in operations
    assert ("Decrypt", primary) in operations and ("Decrypt", secondary) in operations
    recorded = AuditEvent.objects.filter(operation="GenerateDataKey").get().request_parameters
    assert CONTEXT.items() <= recorded["EncryptionContext"].items()


def test_encryption_sdk_cannot_decrypt_for_a_caller_the_key_refuses(
    esdk_session: botocore.session.Session,
    create_key: Callable[..., dict[str, Any]],
    outsider: Persona,
) -> None:
    key_arn = create_key()["Arn"]
    sdk = aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )
    provider = StrictAwsKmsMasterKeyProvider(key_ids=[key_arn], botocore_session=esdk_session)
    ciphertext, _ = sdk.encrypt(source=b"hello", key_provider=provider, encryption_context=CONTEXT)
    other_session = botocore.session.Session()
    other_session.set_credentials(outsider.access_key_id, outsider.secret_access_key)
    other_session.set_config_variable("region", settings.KMS_REGION)
    refused = StrictAwsKmsMasterKeyProvider(key_ids=[key_arn], botocore_session=other_session)
    with pytest.raises(aws_encryption_sdk.exceptions.DecryptKeyError):
        sdk.decrypt(source=ciphertext, key_provider=refused)
    denied = AuditEvent.objects.filter(operation="Decrypt", decision="denied").get()
    assert (denied.caller_arn, denied.key_arn) == (outsider.arn, key_arn)


# --- AWS CLI ------------------------------------------------------------------------------------------------


def _aws(persona: Persona, endpoint: str, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `aws` (the awscli package) in a clean environment that knows only the persona's credentials."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=persona.access_key_id,
        AWS_SECRET_ACCESS_KEY=persona.secret_access_key,
        AWS_DEFAULT_REGION=settings.KMS_REGION,
        AWS_CONFIG_FILE=str(home / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"),
        HOME=str(home),
    )
    return subprocess.run(
        [sys.executable, "-m", "awscli", *args, "--endpoint-url", endpoint, "--output", "json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_aws_cli_encrypt_and_decrypt(
    live_server: Any, admin: Persona, create_key: Callable[..., dict[str, Any]], tmp_path: Path
) -> None:
    key = create_key(Description="cli")
    plaintext = tmp_path / "plaintext.bin"
    plaintext.write_bytes(b"secret from the command line \x00\xff")
    context = "tenant=42,purpose=cli"

    encrypted = _aws(
        admin,
        live_server.url,
        tmp_path,
        "kms",
        "encrypt",
        "--key-id",
        key["KeyId"],
        "--plaintext",
        f"fileb://{plaintext}",
        "--encryption-context",
        context,
    )
    assert encrypted.returncode == 0, encrypted.stderr
    output = json.loads(encrypted.stdout)
    assert output["KeyId"] == key["Arn"] and output["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    blob = tmp_path / "ciphertext.bin"
    blob.write_bytes(base64.b64decode(output["CiphertextBlob"]))

    decrypted = _aws(
        admin,
        live_server.url,
        tmp_path,
        "kms",
        "decrypt",
        "--ciphertext-blob",
        f"fileb://{blob}",
        "--encryption-context",
        context,
    )
    assert decrypted.returncode == 0, decrypted.stderr
    output = json.loads(decrypted.stdout)
    assert base64.b64decode(output["Plaintext"]) == plaintext.read_bytes()
    assert output["KeyId"] == key["Arn"] and output["KeyMaterialId"] == key["CurrentKeyMaterialId"]

    # A wrong context: the CLI reports AWS's exception.
    refused = _aws(admin, live_server.url, tmp_path, "kms", "decrypt", "--ciphertext-blob", f"fileb://{blob}")
    assert refused.returncode != 0 and "InvalidCiphertextException" in refused.stderr


# --- cryptography on the other side -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key_spec", "algorithm"),
    [
        ("RSA_2048", "RSASSA_PSS_SHA_256"),
        ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_384"),
        ("ECC_NIST_P256", "ECDSA_SHA_256"),
        ("ECC_NIST_P384", "ECDSA_SHA_384"),
        ("ECC_SECG_P256K1", "ECDSA_SHA_256"),
        ("ECC_NIST_EDWARDS25519", "ED25519_SHA_512"),
    ],
)
def test_signatures_verify_with_the_public_key(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]], key_spec: str, algorithm: str
) -> None:
    key = create_key(KeySpec=key_spec, KeyUsage="SIGN_VERIFY")
    message = b"signed by the service, verified by anyone"
    signature = admin_kms.sign(KeyId=key["KeyId"], Message=message, SigningAlgorithm=algorithm)["Signature"]
    public = admin_kms.get_public_key(KeyId=key["KeyId"])
    assert algorithm in public["SigningAlgorithms"]
    public_key = serialization.load_der_public_key(public["PublicKey"])
    _verify_locally(public_key, signature, message, algorithm)
    with pytest.raises(InvalidSignature):
        _verify_locally(public_key, signature, message + b"!", algorithm)


def _verify_locally(public_key: Any, signature: bytes, message: bytes, algorithm: str) -> None:
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        public_key.verify(signature, message)
        return
    digest = {"256": hashes.SHA256(), "384": hashes.SHA384(), "512": hashes.SHA512()}[algorithm[-3:]]
    if isinstance(public_key, rsa.RSAPublicKey):
        scheme = (
            padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
            if "PSS" in algorithm
            else padding.PKCS1v15()
        )
        public_key.verify(signature, message, scheme, digest)
        return
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    public_key.verify(signature, message, ec.ECDSA(digest))


@pytest.mark.parametrize(
    ("algorithm", "digest"), [("RSAES_OAEP_SHA_256", hashes.SHA256), ("RSAES_OAEP_SHA_1", hashes.SHA1)]
)
def test_data_encrypted_locally_decrypts_in_the_service(
    admin_kms: Any,
    create_key: Callable[..., dict[str, Any]],
    algorithm: str,
    digest: type[hashes.HashAlgorithm],
) -> None:
    key = create_key(KeySpec="RSA_3072", KeyUsage="ENCRYPT_DECRYPT")
    public_key = serialization.load_der_public_key(admin_kms.get_public_key(KeyId=key["Arn"])["PublicKey"])
    assert isinstance(public_key, rsa.RSAPublicKey) and public_key.key_size == 3072
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=digest()), algorithm=digest(), label=None)
    ciphertext = public_key.encrypt(b"sealed outside, opened inside", oaep)
    decrypted = admin_kms.decrypt(CiphertextBlob=ciphertext, KeyId=key["Arn"], EncryptionAlgorithm=algorithm)
    assert decrypted["Plaintext"] == b"sealed outside, opened inside"
    assert decrypted["EncryptionAlgorithm"] == algorithm
    # And the service's RSA ciphertext is standard OAEP as well: it round-trips with itself and never with the
    # other hash.
    other = "RSAES_OAEP_SHA_1" if algorithm == "RSAES_OAEP_SHA_256" else "RSAES_OAEP_SHA_256"
    with pytest.raises(ClientError) as raised:
        admin_kms.decrypt(CiphertextBlob=ciphertext, KeyId=key["Arn"], EncryptionAlgorithm=other)
    assert raised.value.response["Error"]["Code"] == "InvalidCiphertextException"


def test_generate_data_key_pair_gives_a_working_rsa_pair(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]]
) -> None:
    key = create_key()
    pair = admin_kms.generate_data_key_pair(
        KeyId=key["KeyId"], KeyPairSpec="RSA_2048", EncryptionContext=CONTEXT
    )
    public_key = serialization.load_der_public_key(pair["PublicKey"])
    private_key = serialization.load_der_private_key(pair["PrivateKeyPlaintext"], password=None)
    assert isinstance(public_key, rsa.RSAPublicKey) and isinstance(private_key, rsa.RSAPrivateKey)
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    assert private_key.decrypt(public_key.encrypt(b"pair works", oaep), oaep) == b"pair works"
    pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.MAX_LENGTH)
    public_key.verify(private_key.sign(b"signed", pss, hashes.SHA256()), b"signed", pss, hashes.SHA256())
    # The encrypted copy opens to the same private key (and only with the context).
    opened = admin_kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"], EncryptionContext=CONTEXT)
    assert opened["Plaintext"] == pair["PrivateKeyPlaintext"]


def test_generate_data_key_pair_gives_a_working_ecc_pair(
    admin_kms: Any, create_key: Callable[..., dict[str, Any]]
) -> None:
    key = create_key()
    pair = admin_kms.generate_data_key_pair_without_plaintext(KeyId=key["KeyId"], KeyPairSpec="ECC_NIST_P521")
    assert "PrivateKeyPlaintext" not in pair
    private_der = admin_kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"])["Plaintext"]
    private_key = serialization.load_der_private_key(private_der, password=None)
    public_key = serialization.load_der_public_key(pair["PublicKey"])
    assert isinstance(private_key, ec.EllipticCurvePrivateKey) and isinstance(
        public_key, ec.EllipticCurvePublicKey
    )
    assert private_key.curve.name == public_key.curve.name == "secp521r1"
    signature = private_key.sign(b"signed with the pair", ec.ECDSA(hashes.SHA512()))
    public_key.verify(signature, b"signed with the pair", ec.ECDSA(hashes.SHA512()))

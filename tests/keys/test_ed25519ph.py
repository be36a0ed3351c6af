"""ED25519_PH_SHA_512 (Ed25519ph) over boto3 against the live server, as AWS KMS does it: Ed25519 keys list both
algorithms; Sign takes the message's 64-byte SHA-512 digest (MessageType DIGEST), which KMS hashes again, and
the signature verifies with pycryptodome's Ed25519ph (given the digest) and the public key from GetPublicKey; every
refusal, without opening the key; kms:SigningAlgorithm in a key policy; a grant; one audit event per call.
The independent Ed25519ph is pycryptodome's (tests only); the service signs with libsodium."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from keys.models import KeyMaterial
from kmsconsole.core.rootkey import sealer
from tests.conftest import Persona
from tests.crypto import pycryptodome_ed25519ph
from tests.keys.test_crypto_ops import DENIED, DRY_RUN, ROOT, allow, error_of, policy, run

pytestmark = pytest.mark.django_db(transaction=True)

SPEC, PH, PURE = "ECC_NIST_EDWARDS25519", "ED25519_PH_SHA_512", "ED25519_SHA_512"
BOTH = [PURE, PH]
# Past Sign's 4096-byte limit for a message: what a digest is for.
MESSAGE = b"an artefact too large to send, signed by its SHA-512 digest. " * 100
DIGEST = hashlib.sha512(MESSAGE).digest()
# Real KMS's texts, as an emulator's test records them (floci, ed25519RejectsTheCombinationsRealKmsRejects).
NEEDS_DIGEST = ("ValidationException", f"Message type RAW is incompatible with algorithm {PH}.")
NEEDS_RAW = ("ValidationException", f"Message type DIGEST is incompatible with algorithm {PURE}.")


def bad_length() -> tuple[str, str]:
    return "ValidationException", "Digest is invalid length for algorithm ED25519_PH_SHA_512."


@pytest.fixture
def key(create_key: Callable[..., dict[str, Any]]) -> dict[str, Any]:
    return create_key(KeySpec=SPEC, KeyUsage="SIGN_VERIFY")


def ph_request(key_id: str, **changes: Any) -> dict[str, Any]:
    return {"KeyId": key_id, "Message": DIGEST, "MessageType": "DIGEST", "SigningAlgorithm": PH, **changes}


def public_key(client: Any, key_id: str) -> bytes:
    der = client.get_public_key(KeyId=key_id)["PublicKey"]
    loaded = serialization.load_der_public_key(der)
    assert isinstance(loaded, ed25519.Ed25519PublicKey)
    return loaded.public_bytes_raw()


def test_create_describe_and_get_public_key_list_both_algorithms(admin_kms: Any) -> None:
    created = admin_kms.create_key(KeySpec=SPEC, KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    assert created["SigningAlgorithms"] == BOTH
    assert admin_kms.describe_key(KeyId=created["KeyId"])["KeyMetadata"]["SigningAlgorithms"] == BOTH
    got = admin_kms.get_public_key(KeyId=created["Arn"])
    assert (got["KeySpec"], got["KeyUsage"], got["SigningAlgorithms"]) == (SPEC, "SIGN_VERIFY", BOTH)


def test_sign_a_digest_and_verify_it_with_pycryptodome_and_the_endpoint(
    admin_kms: Any, key: dict[str, Any]
) -> None:
    arn = key["Arn"]
    signed = run(lambda: admin_kms.sign(**ph_request(key["KeyId"])))
    response = signed.response
    assert (response["KeyId"], response["SigningAlgorithm"]) == (arn, PH)
    assert signed.trail == ("Sign", "allowed", arn)
    assert (signed.event.request_parameters or {}).get("SigningAlgorithm") == PH
    signature = response["Signature"]
    assert len(signature) == 64
    assert admin_kms.sign(**ph_request(arn))["Signature"] == signature  # Ed25519 is deterministic

    # Offline, as a client of GetPublicKey: Ed25519ph with the digest as the message (AWS hashes it again); not
    # with the original message.
    public = public_key(admin_kms, arn)
    pycryptodome_ed25519ph.verify(public, DIGEST, signature)
    with pytest.raises(ValueError, match="not authentic"):
        pycryptodome_ed25519ph.verify(public, MESSAGE, signature)

    verified = run(lambda: admin_kms.verify(Signature=signature, **ph_request(key["KeyId"])))
    assert verified.response == {
        **verified.response,
        "SignatureValid": True,
        "KeyId": arn,
        "SigningAlgorithm": PH,
    }
    assert verified.trail == ("Verify", "allowed", arn)
    other_digest = hashlib.sha512(MESSAGE + b"!").digest()
    tampered = signature[:-1] + bytes([signature[-1] ^ 0x01])
    for changes in ({"Message": other_digest}, {"Signature": tampered}, {"Signature": signature[:-1]}):
        outcome = run(lambda c=changes: admin_kms.verify(**{"Signature": signature, **ph_request(arn), **c}))
        assert outcome.error == ("KMSInvalidSignatureException", "")
        assert outcome.trail == ("Verify", "failed", arn)


def test_a_signature_made_by_pycryptodome_with_the_keys_seed_verifies_in_the_endpoint(
    admin_kms: Any, key: dict[str, Any]
) -> None:
    """The positive side of interoperability: pycryptodome, given the key's own seed (unsealed here, as the server
    does), makes the signature the endpoint makes, byte for byte, and Verify accepts it. And the two algorithms'
    signatures are not interchangeable on the wire: a pure Ed25519 signature of the same 64 bytes is not an
    Ed25519ph one, nor the other way round; a signature under another key is refused."""
    material = KeyMaterial.objects.get(key__key_id=key["KeyId"])
    private = serialization.load_der_private_key(
        sealer().open(bytes(material.sealed), bound_to=material.sealing_identity), password=None
    )
    assert isinstance(private, ed25519.Ed25519PrivateKey)
    outside = pycryptodome_ed25519ph.sign(private.private_bytes_raw(), DIGEST)
    verified = run(lambda: admin_kms.verify(Signature=outside, **ph_request(key["KeyId"])))
    assert verified.response["SignatureValid"] is True
    assert verified.trail == ("Verify", "allowed", key["Arn"])
    prehashed = admin_kms.sign(**ph_request(key["KeyId"]))["Signature"]
    assert prehashed == outside

    pure = admin_kms.sign(KeyId=key["KeyId"], Message=DIGEST, SigningAlgorithm=PURE)["Signature"]
    assert pure != prehashed
    wrong_scheme = run(lambda: admin_kms.verify(Signature=pure, **ph_request(key["KeyId"])))
    assert wrong_scheme.error == ("KMSInvalidSignatureException", "")
    as_pure = {"KeyId": key["KeyId"], "Message": DIGEST, "SigningAlgorithm": PURE, "Signature": prehashed}
    assert run(lambda: admin_kms.verify(**as_pure)).error == ("KMSInvalidSignatureException", "")
    assert admin_kms.verify(**{**as_pure, "Signature": pure})["SignatureValid"]
    # Made outside with another key: valid only under that key.
    another = pycryptodome_ed25519ph.sign(bytes(range(32)), DIGEST)
    assert run(lambda: admin_kms.verify(Signature=another, **ph_request(key["KeyId"]))).error == (
        "KMSInvalidSignatureException",
        "",
    )


@pytest.mark.parametrize(
    ("operation", "changes", "expected"),
    [
        ("sign", {"MessageType": "RAW"}, NEEDS_DIGEST),
        ("sign", {"MessageType": "RAW", "Message": b"a raw message"}, NEEDS_DIGEST),
        ("sign", {"MessageType": None}, NEEDS_DIGEST),  # RAW is the default
        ("verify", {"MessageType": "RAW"}, NEEDS_DIGEST),
        ("sign", {"Message": DIGEST[:32]}, bad_length()),
        ("sign", {"Message": DIGEST + b"\x00"}, bad_length()),
        ("verify", {"Message": DIGEST[:63]}, bad_length()),
        (
            "sign",
            {"SigningAlgorithm": PURE},
            NEEDS_RAW,
        ),
        (
            "sign",
            {"MessageType": "EXTERNAL_MU"},
            ("ValidationException", f"Message type EXTERNAL_MU is incompatible with key spec {SPEC}."),
        ),
        (
            "sign",
            {"SigningAlgorithm": "ECDSA_SHA_512"},
            ("InvalidKeyUsageException", f"Algorithm ECDSA_SHA_512 is incompatible with key spec {SPEC}."),
        ),
    ],
)
@pytest.mark.parametrize("dry_run", [False, True])
def test_refusals_never_open_the_private_key(
    admin_kms: Any,
    key: dict[str, Any],
    unsealed: list[str],
    operation: str,
    changes: dict[str, Any],
    expected: tuple[str, str],
    dry_run: bool,
) -> None:
    request = {
        name: value for name, value in ph_request(key["KeyId"], **changes).items() if value is not None
    }
    if operation == "verify":
        request["Signature"] = bytes(64)
    if dry_run:
        request["DryRun"] = True
    unsealed.clear()
    outcome = run(lambda: getattr(admin_kms, operation)(**request))
    assert outcome.error == expected
    assert outcome.event.decision == "failed" and outcome.event.error_code == expected[0]
    assert unsealed == []


def test_a_dry_run_of_a_good_request_opens_nothing(
    admin_kms: Any, key: dict[str, Any], unsealed: list[str]
) -> None:
    unsealed.clear()
    assert error_of(lambda: admin_kms.sign(DryRun=True, **ph_request(key["KeyId"]))) == DRY_RUN
    assert unsealed == []
    signature = admin_kms.sign(**ph_request(key["KeyId"]))["Signature"]
    unsealed.clear()
    request = {"Signature": signature, "DryRun": True, **ph_request(key["KeyId"])}
    assert error_of(lambda: admin_kms.verify(**request)) == DRY_RUN
    assert unsealed == []  # Verify needs the public key alone


def test_signing_algorithm_condition_and_a_grant(
    admin_kms: Any, kms_client: Callable[..., Any], make_user: Callable[..., Persona]
) -> None:
    """kms:SigningAlgorithm takes ED25519_PH_SHA_512 like any other value: a key policy that allows Sign only with
    it allows Ed25519ph and denies pure Ed25519; a grant for Sign and Verify allows Ed25519ph through its token.

    The denied request differs from the allowed one in SigningAlgorithm alone (same MessageType DIGEST, same
    64-byte message), so only the kms:SigningAlgorithm condition can deny it: authorization runs before the
    message is checked, which is why it is AccessDeniedException and not pure Ed25519's refusal of DIGEST."""
    signer, grantee = make_user("ph-signer"), make_user("ph-grantee")
    only_ph = {"StringEquals": {"kms:SigningAlgorithm": PH, "kms:MessageType": "DIGEST"}}
    arn = admin_kms.create_key(
        KeySpec=SPEC,
        KeyUsage="SIGN_VERIFY",
        Policy=policy(ROOT, allow(signer.arn, "kms:Sign", sid="Ed25519ph only", Condition=only_ph)),
    )["KeyMetadata"]["Arn"]
    signing = kms_client(signer)
    allowed = run(lambda: signing.sign(**ph_request(arn)))
    assert allowed.response["SigningAlgorithm"] == PH
    assert (allowed.event.decision, allowed.event.caller_arn) == ("allowed", signer.arn)
    assert "Ed25519ph only" in allowed.event.decided_by
    denied = run(lambda: signing.sign(**ph_request(arn, SigningAlgorithm=PURE)))
    assert denied.error is not None and denied.error[0] == DENIED
    assert denied.error[1].startswith(
        f"User: {signer.arn} is not authorized to perform: kms:Sign on resource: {arn}"
    )
    assert denied.trail == ("Sign", "denied", arn)
    # Without the policy's condition in the way (the key's administrator), the same request fails validation.
    assert error_of(lambda: admin_kms.sign(**ph_request(arn, SigningAlgorithm=PURE))) == NEEDS_RAW

    granted = kms_client(grantee)
    assert error_of(lambda: granted.sign(**ph_request(arn)))[0] == DENIED
    grant = admin_kms.create_grant(KeyId=arn, GranteePrincipal=grantee.arn, Operations=["Sign", "Verify"])
    tokens = {"GrantTokens": [grant["GrantToken"]]}
    signed = run(lambda: granted.sign(**tokens, **ph_request(arn)))
    assert (signed.event.decision, signed.event.caller_arn) == ("allowed", grantee.arn)
    signature = signed.response["Signature"]
    assert granted.verify(Signature=signature, **tokens, **ph_request(arn))["SignatureValid"]
    pycryptodome_ed25519ph.verify(public_key(admin_kms, arn), DIGEST, signature)

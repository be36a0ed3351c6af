"""Post-quantum keys over boto3 against the live server, as AWS KMS does them: ML_DSA_44/65/87 (Sign/Verify with
ML_DSA_SHAKE_256, RAW and EXTERNAL_MU) and ML_KEM_768/1024 (Encapsulate/Decapsulate with ML_KEM, data key pairs),
with CreateKey, DescribeKey, GetPublicKey, every documented refusal, key states, a denied caller, a grant, and
one audit event per call that never holds a shared secret, a private key or a message."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest
from botocore import xform_name
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import mldsa, mlkem

from keys.materials import current_material, open_material
from keys.models import Key, KeyState
from kmsconsole.audit.models import AuditEvent
from tests.conftest import Persona, operator_context
from tests.keys.test_crypto_ops import DENIED, DRY_RUN, ROOT, allow, error_of, policy, run
from tests.rows import update_sealed
from tests.secrets_watch import WATCH

pytestmark = pytest.mark.django_db(transaction=True)

ML_DSA, ML_KEM = "ML_DSA_SHAKE_256", "ML_KEM"
# spec -> (public key class, signature or ciphertext bytes, DER SPKI bytes)
DSA_SPECS: dict[str, tuple[type, int, int]] = {
    "ML_DSA_44": (mldsa.MLDSA44PublicKey, 2420, 1334),
    "ML_DSA_65": (mldsa.MLDSA65PublicKey, 3309, 1974),
    "ML_DSA_87": (mldsa.MLDSA87PublicKey, 4627, 2614),
}
KEM_SPECS: dict[str, tuple[type, int, int]] = {
    "ML_KEM_768": (mlkem.MLKEM768PublicKey, 1088, 1206),
    "ML_KEM_1024": (mlkem.MLKEM1024PublicKey, 1568, 1590),
}
USAGE = {**dict.fromkeys(DSA_SPECS, "SIGN_VERIFY"), **dict.fromkeys(KEM_SPECS, "ENCAPSULATE_DECAPSULATE")}
ALGORITHMS = {
    **dict.fromkeys(DSA_SPECS, ("SigningAlgorithms", [ML_DSA])),
    **dict.fromkeys(KEM_SPECS, ("EncapsulationAlgorithms", [ML_KEM])),
}
ALGORITHM_LISTS = (
    "EncryptionAlgorithms",
    "SigningAlgorithms",
    "MacAlgorithms",
    "KeyAgreementAlgorithms",
    "EncapsulationAlgorithms",
)
ML_KEM_512 = (
    "UnsupportedOperationException",
    "KeySpec ML_KEM_512 is not supported: this KMS implements ML_KEM_768 and ML_KEM_1024 only (its cryptography "
    "library has no ML-KEM-512).",
)
Keys = dict[str, dict[str, Any]]


@pytest.fixture
def pq_keys(create_key: Callable[..., dict[str, Any]]) -> Keys:
    """One ML-DSA_65 and one ML_KEM_768 key, and an ECC signing key to refuse EXTERNAL_MU with."""
    return {
        "dsa": create_key(KeySpec="ML_DSA_65", KeyUsage="SIGN_VERIFY"),
        "kem": create_key(KeySpec="ML_KEM_768", KeyUsage="ENCAPSULATE_DECAPSULATE"),
        "ecc": create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY"),
        "symmetric": create_key(),
    }


def public_key(client: Any, key_id: str) -> Any:
    return serialization.load_der_public_key(client.get_public_key(KeyId=key_id)["PublicKey"])


def mu_of(public: Any, message: bytes) -> bytes:
    """The caller's mu for EXTERNAL_MU: FIPS 204 section 6.2 over the key's public key, empty context."""
    hasher = mldsa.MLDSAMuHasher(public)
    hasher.update(message)
    return hasher.finalize()


def watch_private_key(key_id: str) -> bytes:
    """The key's unsealed private key (PKCS#8), registered with the secrets watch: the test fails if it appears in
    a log, an audit event, an error or any answer."""
    material = open_material(operator_context("Sign"), current_material(Key.objects.get(key_id=key_id)))
    WATCH.register(material, material[-32:])  # the whole PKCS#8, and the seed at its end
    return material


def trail_text() -> str:
    return json.dumps(list(AuditEvent.objects.values()), default=str)


def assert_nowhere_in_the_trail(*secrets: bytes) -> None:
    trail = trail_text()
    for secret in secrets:
        for encoded in (base64.b64encode(secret).decode(), secret.hex()):
            assert encoded not in trail


# --- CreateKey, DescribeKey, GetPublicKey -------------------------------------------------------------------


@pytest.mark.parametrize("spec", [*DSA_SPECS, *KEM_SPECS])
def test_create_describe_and_get_public_key(admin_kms: Any, spec: str) -> None:
    created = run(lambda: admin_kms.create_key(KeySpec=spec, KeyUsage=USAGE[spec]))
    assert created.error is None, created.error
    metadata = created.response["KeyMetadata"]
    assert created.trail == ("CreateKey", "allowed", metadata["Arn"])
    watch_private_key(metadata["KeyId"])
    field, algorithms = ALGORITHMS[spec]
    described = run(lambda: admin_kms.describe_key(KeyId=metadata["KeyId"])).response["KeyMetadata"]
    for shown in (metadata, described):
        assert (shown["KeySpec"], shown["CustomerMasterKeySpec"], shown["KeyUsage"]) == (
            spec,
            spec,
            USAGE[spec],
        )
        assert shown[field] == algorithms and shown["KeyState"] == "Enabled"
        assert [name for name in ALGORITHM_LISTS if name in shown] == [field]
        assert "CurrentKeyMaterialId" not in shown  # symmetric keys only

    got = run(lambda: admin_kms.get_public_key(KeyId=metadata["Arn"]))
    response = got.response
    assert (response["KeyId"], response["KeySpec"], response["KeyUsage"]) == (
        metadata["Arn"],
        spec,
        USAGE[spec],
    )
    assert response[field] == algorithms and [name for name in ALGORITHM_LISTS if name in response] == [field]
    kind, _, spki_bytes = {**DSA_SPECS, **KEM_SPECS}[spec]
    assert len(response["PublicKey"]) == spki_bytes  # DER SubjectPublicKeyInfo, as AWS returns it
    assert isinstance(serialization.load_der_public_key(response["PublicKey"]), kind)
    assert got.trail == ("GetPublicKey", "allowed", metadata["Arn"])


CREATE_ERRORS = [
    ({"KeySpec": "ML_KEM_512", "KeyUsage": "ENCAPSULATE_DECAPSULATE"}, ML_KEM_512),
    (
        {"KeySpec": "ML_DSA_44", "KeyUsage": "ENCAPSULATE_DECAPSULATE"},
        ("ValidationException", "KeyUsage ENCAPSULATE_DECAPSULATE is not compatible with KeySpec ML_DSA_44"),
    ),
    (
        {"KeySpec": "ML_KEM_1024", "KeyUsage": "SIGN_VERIFY"},
        ("ValidationException", "KeyUsage SIGN_VERIFY is not compatible with KeySpec ML_KEM_1024"),
    ),
    (
        {"KeySpec": "ML_KEM_768"},
        (
            "ValidationException",
            "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.",
        ),
    ),
]


@pytest.mark.parametrize(("params", "expected"), CREATE_ERRORS)
def test_create_key_refusals(admin_kms: Any, params: dict[str, str], expected: tuple[str, str]) -> None:
    outcome = run(lambda: admin_kms.create_key(**params))
    assert outcome.error == expected
    assert (outcome.event.operation, outcome.event.decision, outcome.event.error_code) == (
        "CreateKey",
        "failed",
        expected[0],
    )
    assert not Key.objects.exists()


# --- ML-DSA: Sign and Verify ----------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", DSA_SPECS)
def test_sign_raw_verifies_with_an_independent_verifier(admin_kms: Any, spec: str) -> None:
    key = admin_kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    key_id, arn = key["KeyId"], key["Arn"]
    watch_private_key(key_id)
    message = b"release 7.2 manifest " * 195  # 4095 bytes: RAW takes up to 4096
    signed = run(lambda: admin_kms.sign(KeyId=key_id, Message=message, SigningAlgorithm=ML_DSA))
    signature = signed.response["Signature"]
    assert (signed.response["KeyId"], signed.response["SigningAlgorithm"]) == (arn, ML_DSA)
    assert len(signature) == DSA_SPECS[spec][1] and signed.trail == ("Sign", "allowed", arn)
    assert signed.event.request_parameters == {"KeyId": key_id, "SigningAlgorithm": ML_DSA}

    public = public_key(admin_kms, key_id)
    public.verify(signature, message)  # pure ML-DSA with the empty context: any FIPS 204 verifier
    public.verify_mu(signature, mu_of(public, message))

    request = {"KeyId": key_id, "Signature": signature, "SigningAlgorithm": ML_DSA}
    verified = run(lambda: admin_kms.verify(Message=message, **request))
    assert verified.response["SignatureValid"] and verified.response["KeyId"] == arn
    assert verified.trail == ("Verify", "allowed", arn)
    # The message type need not match the one used for signing: mu of the same message verifies too.
    by_mu = admin_kms.verify(Message=mu_of(public, message), MessageType="EXTERNAL_MU", **request)
    assert by_mu["SignatureValid"]
    for bad in (
        {"Message": message[:-1] + b"?", "Signature": signature},
        {"Message": message, "Signature": signature[:-1] + bytes([signature[-1] ^ 1])},
    ):
        outcome = run(lambda b=bad: admin_kms.verify(KeyId=key_id, SigningAlgorithm=ML_DSA, **b))
        assert outcome.error == ("KMSInvalidSignatureException", "")
        assert outcome.trail == ("Verify", "failed", arn)
    assert_nowhere_in_the_trail(message, signature)


@pytest.mark.parametrize("spec", DSA_SPECS)
def test_sign_external_mu_for_a_message_past_4096_bytes(admin_kms: Any, spec: str) -> None:
    key = admin_kms.create_key(KeySpec=spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]
    public = public_key(admin_kms, key["KeyId"])
    large = bytes(range(256)) * 64  # 16 KiB: only its mu travels
    mu = mu_of(public, large)
    signed = run(
        lambda: admin_kms.sign(
            KeyId=key["Arn"], Message=mu, MessageType="EXTERNAL_MU", SigningAlgorithm=ML_DSA
        )
    )
    signature = signed.response["Signature"]
    assert len(signature) == DSA_SPECS[spec][1] and signed.trail == ("Sign", "allowed", key["Arn"])
    assert signed.event.request_parameters["MessageType"] == "EXTERNAL_MU"
    public.verify(signature, large)  # a signature of the message itself
    public.verify_mu(signature, mu)
    verified = admin_kms.verify(
        KeyId=key["KeyId"],
        Message=mu,
        MessageType="EXTERNAL_MU",
        Signature=signature,
        SigningAlgorithm=ML_DSA,
    )
    assert verified["SignatureValid"]
    other_mu = mu_of(public, large + b"!")
    refused = error_of(
        lambda: admin_kms.verify(
            KeyId=key["KeyId"],
            Message=other_mu,
            MessageType="EXTERNAL_MU",
            Signature=signature,
            SigningAlgorithm=ML_DSA,
        )
    )
    assert refused == ("KMSInvalidSignatureException", "")


# --- ML-KEM: Encapsulate and Decapsulate ----------------------------------------------------------------------


@pytest.mark.parametrize("spec", KEM_SPECS)
def test_encapsulate_decapsulate_round_trip(admin_kms: Any, spec: str) -> None:
    key = admin_kms.create_key(KeySpec=spec, KeyUsage="ENCAPSULATE_DECAPSULATE")["KeyMetadata"]
    key_id, arn = key["KeyId"], key["Arn"]
    watch_private_key(key_id)
    admin_kms.create_alias(AliasName="alias/exchange", TargetKeyId=key_id)

    made = run(lambda: admin_kms.encapsulate(KeyId="alias/exchange", EncapsulationAlgorithm=ML_KEM))
    shared, ciphertext = made.response["SharedSecret"], made.response["SharedSecretCiphertextBlob"]
    assert (made.response["KeyId"], made.response["EncapsulationAlgorithm"]) == (arn, ML_KEM)
    assert len(shared) == 32 and len(ciphertext) == KEM_SPECS[spec][1]
    assert made.trail == ("Encapsulate", "allowed", arn)
    assert made.event.request_parameters == {"KeyId": "alias/exchange", "EncapsulationAlgorithm": ML_KEM}
    assert made.event.response_elements == {"KeyId": arn, "EncapsulationAlgorithm": ML_KEM}

    opened = run(
        lambda: admin_kms.decapsulate(
            KeyId=key_id, SharedSecretCiphertextBlob=ciphertext, EncapsulationAlgorithm=ML_KEM
        )
    )
    assert opened.response["SharedSecret"] == shared
    assert (opened.response["KeyId"], opened.response["EncapsulationAlgorithm"]) == (arn, ML_KEM)
    assert opened.trail == ("Decapsulate", "allowed", arn)
    assert opened.event.request_parameters == {"KeyId": key_id, "EncapsulationAlgorithm": ML_KEM}
    assert opened.event.response_elements == {"KeyId": arn, "EncapsulationAlgorithm": ML_KEM}

    # The other party encapsulates outside KMS with the public key from GetPublicKey; KMS recovers its secret.
    theirs, their_ciphertext = public_key(admin_kms, arn).encapsulate()
    recovered = admin_kms.decapsulate(
        KeyId=arn, SharedSecretCiphertextBlob=their_ciphertext, EncapsulationAlgorithm=ML_KEM
    )
    assert recovered["SharedSecret"] == theirs

    # A wrong ciphertext of the right length is not detected (implicit rejection, as AWS documents): the secrets
    # simply differ. The wrong length is InvalidCiphertextException with an empty message.
    altered = ciphertext[:-1] + bytes([ciphertext[-1] ^ 1])
    rejected = run(
        lambda: admin_kms.decapsulate(
            KeyId=key_id, SharedSecretCiphertextBlob=altered, EncapsulationAlgorithm=ML_KEM
        )
    )
    assert len(rejected.response["SharedSecret"]) == 32 and rejected.response["SharedSecret"] != shared
    for wrong in (ciphertext[:-1], ciphertext + b"\x00", b"\x01"):
        outcome = run(
            lambda w=wrong: admin_kms.decapsulate(
                KeyId=key_id, SharedSecretCiphertextBlob=w, EncapsulationAlgorithm=ML_KEM
            )
        )
        assert outcome.error == ("InvalidCiphertextException", "")
        assert (outcome.trail, outcome.event.error_code) == (
            ("Decapsulate", "failed", arn),
            "InvalidCiphertextException",
        )
    assert_nowhere_in_the_trail(
        shared, theirs, rejected.response["SharedSecret"], ciphertext, their_ciphertext
    )


@pytest.mark.parametrize("spec", KEM_SPECS)
def test_ml_kem_data_key_pairs(admin_kms: Any, pq_keys: Keys, spec: str) -> None:
    """GenerateDataKeyPair(WithoutPlaintext) with KeyPairSpec ML_KEM_768/1024: the private key in seed format, the
    same length for every ML-KEM spec (AWS's documentation), encrypted under a symmetric key."""
    symmetric = pq_keys["symmetric"]
    context = {"purpose": "key exchange"}
    pair = run(
        lambda: admin_kms.generate_data_key_pair(
            KeyId=symmetric["KeyId"], KeyPairSpec=spec, EncryptionContext=context
        )
    )
    response = pair.response
    assert (response["KeyId"], response["KeyPairSpec"]) == (symmetric["Arn"], spec)
    assert pair.trail == ("GenerateDataKeyPair", "allowed", symmetric["Arn"])
    private = serialization.load_der_private_key(response["PrivateKeyPlaintext"], password=None)
    public = serialization.load_der_public_key(response["PublicKey"])
    assert isinstance(public, KEM_SPECS[spec][0]) and len(response["PrivateKeyPlaintext"]) == 86
    shared, ciphertext = public.encapsulate()
    assert private.decapsulate(ciphertext) == shared  # type: ignore[union-attr]
    opened = admin_kms.decrypt(CiphertextBlob=response["PrivateKeyCiphertextBlob"], EncryptionContext=context)
    assert opened["Plaintext"] == response["PrivateKeyPlaintext"]
    without = admin_kms.generate_data_key_pair_without_plaintext(KeyId=symmetric["KeyId"], KeyPairSpec=spec)
    assert "PrivateKeyPlaintext" not in without and without["KeyPairSpec"] == spec
    assert_nowhere_in_the_trail(response["PrivateKeyPlaintext"], response["PrivateKeyCiphertextBlob"])


# --- Every documented refusal, table-driven -------------------------------------------------------------------

KEY, MU = object(), b"\x5a" * 64
CORAL = "1 validation error detected: Value{} at '{}' failed to satisfy constraint: Member must "
SIGN = {"KeyId": KEY, "Message": b"m", "SigningAlgorithm": ML_DSA}
ENCAPSULATE = {"KeyId": KEY, "EncapsulationAlgorithm": ML_KEM}
DECAPSULATE = {**ENCAPSULATE, "SharedSecretCiphertextBlob": b"\x00" * 1088}
USAGE_ERROR = ("InvalidKeyUsageException", "{arn} key usage is {usage} which is not valid for {operation}.")


def incompatible(algorithm: str, spec: str) -> tuple[str, str]:
    return "InvalidKeyUsageException", f"Algorithm {algorithm} is incompatible with key spec {spec}."


TOO_LONG = ("ValidationException", CORAL.format("", "message") + "have length less than or equal to 4096")
NOT_AN_ALGORITHM = (
    "ValidationException",
    CORAL.format(" 'ML_KEM_768'", "encapsulationAlgorithm") + "satisfy enum value set: [ML_KEM]",
)
MU_LENGTH = (
    "ValidationException",
    "Mu is invalid length for algorithm ML_DSA_SHAKE_256. MessageType EXTERNAL_MU needs 64 bytes.",
)
NO_ML_KEM_512_PAIRS = ("UnsupportedOperationException", ML_KEM_512[1].replace("KeySpec", "KeyPairSpec"))
OTHER_SPECS_LENGTH = {**DECAPSULATE, "SharedSecretCiphertextBlob": b"\x00" * 1568}

REFUSALS: list[tuple[str, str, dict[str, Any], tuple[str, str]]] = [
    # MessageType: DIGEST is refused for ML-DSA (AWS's text), EXTERNAL_MU is ML-DSA's only and 64 bytes.
    (
        "dsa",
        "Sign",
        {**SIGN, "Message": b"d" * 64, "MessageType": "DIGEST"},
        ("ValidationException", "Message type DIGEST is incompatible with key spec ML_DSA_65."),
    ),
    ("dsa", "Sign", {**SIGN, "Message": MU[:63], "MessageType": "EXTERNAL_MU"}, MU_LENGTH),
    (
        "dsa",
        "Verify",
        {**SIGN, "Message": MU + b"x", "MessageType": "EXTERNAL_MU", "Signature": b"s"},
        MU_LENGTH,
    ),
    (
        "ecc",
        "Sign",
        {**SIGN, "Message": MU, "MessageType": "EXTERNAL_MU", "SigningAlgorithm": "ECDSA_SHA_256"},
        ("ValidationException", "Message type EXTERNAL_MU is incompatible with key spec ECC_NIST_P256."),
    ),
    ("dsa", "Sign", {**SIGN, "Message": b"m" * 4097}, TOO_LONG),
    # Algorithms and key usages.
    (
        "dsa",
        "Sign",
        {**SIGN, "SigningAlgorithm": "ECDSA_SHA_256"},
        incompatible("ECDSA_SHA_256", "ML_DSA_65"),
    ),
    ("ecc", "Verify", {**SIGN, "Signature": b"s"}, incompatible(ML_DSA, "ECC_NIST_P256")),
    ("kem", "Sign", SIGN, USAGE_ERROR),
    ("dsa", "Encapsulate", ENCAPSULATE, USAGE_ERROR),
    ("symmetric", "Decapsulate", DECAPSULATE, USAGE_ERROR),
    ("ecc", "Decapsulate", DECAPSULATE, USAGE_ERROR),
    ("kem", "Encapsulate", {**ENCAPSULATE, "EncapsulationAlgorithm": "ML_KEM_768"}, NOT_AN_ALGORITHM),
    # A ciphertext of another spec's length (ML_KEM_1024's, for an ML_KEM_768 key).
    ("kem", "Decapsulate", OTHER_SPECS_LENGTH, ("InvalidCiphertextException", "")),
    ("symmetric", "GenerateDataKeyPair", {"KeyId": KEY, "KeyPairSpec": "ML_KEM_512"}, NO_ML_KEM_512_PAIRS),
    ("kem", "GenerateDataKeyPair", {"KeyId": KEY, "KeyPairSpec": "ML_KEM_768"}, USAGE_ERROR),
]


def call(client: Any, operation: str, request: dict[str, Any], key_id: str) -> Any:
    return getattr(client, xform_name(operation))(
        **{name: key_id if v is KEY else v for name, v in request.items()}
    )


@pytest.mark.parametrize("dry_run", [False, True], ids=["", "dry-run"])
@pytest.mark.parametrize(
    ("kind", "operation", "request_", "expected"),
    REFUSALS,
    ids=[f"{r[1]}-{i}" for i, r in enumerate(REFUSALS)],
)
def test_refusals(
    admin_kms: Any,
    pq_keys: Keys,
    unsealed: list[str],
    kind: str,
    operation: str,
    request_: dict[str, Any],
    expected: tuple[str, str],
    dry_run: bool,
) -> None:
    """Each refusal, and the same from a dry run, which opens no key material to give it."""
    key = pq_keys[kind]
    request = {**request_, "DryRun": True} if dry_run else request_
    outcome = run(lambda: call(admin_kms, operation, request, key["KeyId"]))
    assert unsealed == []
    code, message = expected
    assert outcome.error == (code, message.format(arn=key["Arn"], usage=key["KeyUsage"], operation=operation))
    assert (outcome.event.operation, outcome.event.decision, outcome.event.error_code) == (
        operation,
        "failed",
        code,
    )


# --- Key states, DryRun, authorization ----------------------------------------------------------------------

USES = {
    "Sign": ("dsa", SIGN),
    "Verify": ("dsa", {**SIGN, "Signature": b"s"}),
    "GetPublicKey": ("kem", {"KeyId": KEY}),
    "Encapsulate": ("kem", ENCAPSULATE),
    "Decapsulate": ("kem", DECAPSULATE),
}


@pytest.mark.parametrize("state", ["Disabled", "PendingDeletion"])
def test_unusable_keys_refuse_every_use(admin_kms: Any, pq_keys: Keys, state: str) -> None:
    if state == "Disabled":
        for kind in ("dsa", "kem"):
            admin_kms.disable_key(KeyId=pq_keys[kind]["KeyId"])
    else:
        ids = [pq_keys[kind]["KeyId"] for kind in ("dsa", "kem")]
        update_sealed(Key.objects.filter(key_id__in=ids), state=KeyState.PENDING_DELETION)
    for operation, (kind, request) in USES.items():
        arn = pq_keys[kind]["Arn"]
        outcome = run(lambda o=operation, r=request, k=pq_keys[kind]["KeyId"]: call(admin_kms, o, r, k))
        if state == "Disabled":
            assert outcome.error == ("DisabledException", f"{arn} is disabled."), operation
        else:
            assert outcome.error == ("KMSInvalidStateException", f"{arn} is pending deletion."), operation
        assert outcome.trail == (operation, "failed", arn)


def test_dry_run(admin_kms: Any, pq_keys: Keys, unsealed: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A dry run of Sign, Encapsulate or Decapsulate that would succeed opens no key material (and makes no shared
    secret: Encapsulate needs only the public key, so the spy on the encapsulation itself is what tells); the same
    requests without DryRun do."""
    from keys import crypto as core

    encapsulations: list[object] = []
    real_encapsulate = core.encapsulate
    monkeypatch.setattr(
        core, "encapsulate", lambda **kwargs: encapsulations.append(kwargs) or real_encapsulate(**kwargs)
    )
    unsealed.clear()
    for operation in ("Encapsulate", "Decapsulate", "Sign"):
        kind, request = USES[operation]
        outcome = run(
            lambda o=operation, r=request, k=pq_keys[kind]["KeyId"]: call(
                admin_kms, o, {**r, "DryRun": True}, k
            )
        )
        assert outcome.error == DRY_RUN
        assert (outcome.event.error_code, outcome.event.response_elements) == (DRY_RUN[0], None)
        assert outcome.trail == (operation, "failed", pq_keys[kind]["Arn"])
    assert unsealed == [] and encapsulations == []
    for operation in ("Encapsulate", "Decapsulate", "Sign"):
        kind, request = USES[operation]
        assert (
            run(lambda o=operation, r=request, k=pq_keys[kind]["KeyId"]: call(admin_kms, o, r, k)).error
            is None
        )
    assert [name for name in unsealed if name != "unseal"] == ["Decapsulate", "Sign"]
    assert len(encapsulations) == 1


@pytest.mark.parametrize("operation", list(USES))
def test_outsider_is_denied(
    kms_client: Callable[..., Any], outsider: Persona, pq_keys: Keys, operation: str
) -> None:
    kind, request = USES[operation]
    arn = pq_keys[kind]["Arn"]
    outcome = run(lambda: call(kms_client(outsider), operation, request, arn))
    assert outcome.error is not None and outcome.error[0] == DENIED
    assert outcome.error[1].startswith(
        f"User: {outsider.arn} is not authorized to perform: kms:{operation} on resource: {arn} "
    )
    assert outcome.trail == (operation, "denied", arn) and outcome.event.caller_arn == outsider.arn


def test_key_policy_and_grant_decide_each_operation(
    admin_kms: Any, kms_client: Callable[..., Any], make_user: Callable[..., Persona]
) -> None:
    """kms:Encapsulate and kms:Decapsulate are separate actions: a party that may only encapsulate cannot
    decapsulate, until a grant (used at once through its token) allows it."""
    sender, receiver = make_user("sender"), make_user("receiver")
    key = admin_kms.create_key(
        KeySpec="ML_KEM_1024",
        KeyUsage="ENCAPSULATE_DECAPSULATE",
        Policy=policy(ROOT, allow(sender.arn, "kms:Encapsulate", "kms:GetPublicKey")),
    )["KeyMetadata"]
    arn = key["Arn"]
    sending, receiving = kms_client(sender), kms_client(receiver)
    made = run(lambda: sending.encapsulate(KeyId=arn, EncapsulationAlgorithm=ML_KEM))
    assert (made.event.decision, made.event.caller_arn) == ("allowed", sender.arn)
    assert "Allow use of the key" in made.event.decided_by
    blob = made.response["SharedSecretCiphertextBlob"]
    request = {"KeyId": arn, "SharedSecretCiphertextBlob": blob, "EncapsulationAlgorithm": ML_KEM}
    for client, who in ((sending, sender), (receiving, receiver)):
        code, message = error_of(lambda c=client: c.decapsulate(**request))
        assert code == DENIED and message.startswith(
            f"User: {who.arn} is not authorized to perform: kms:Decapsulate"
        )

    grant = admin_kms.create_grant(KeyId=arn, GranteePrincipal=receiver.arn, Operations=["Decapsulate"])
    opened = run(lambda: receiving.decapsulate(GrantTokens=[grant["GrantToken"]], **request))
    assert opened.response["SharedSecret"] == made.response["SharedSecret"]
    assert (opened.event.decision, opened.event.caller_arn) == ("allowed", receiver.arn)
    assert "GrantTokens" not in (opened.event.request_parameters or {})
    assert error_of(lambda: receiving.encapsulate(KeyId=arn, EncapsulationAlgorithm=ML_KEM))[0] == DENIED
    refused = error_of(
        lambda: admin_kms.create_grant(KeyId=arn, GranteePrincipal=receiver.arn, Operations=["Sign"])
    )
    assert refused == (
        "ValidationException",
        "Sign is not a valid grant operation for a KMS key with KeySpec ML_KEM_1024 and KeyUsage "
        "ENCAPSULATE_DECAPSULATE.",
    )


def test_a_ciphertext_that_cannot_be_decapsulated_never_opens_the_private_key(
    admin_kms: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Key material is unsealed only for work that can succeed: a ciphertext of the wrong length is refused first."""
    from keys.services import encapsulation

    key_id = admin_kms.create_key(KeySpec="ML_KEM_768", KeyUsage="ENCAPSULATE_DECAPSULATE")["KeyMetadata"][
        "KeyId"
    ]
    ciphertext = admin_kms.encapsulate(KeyId=key_id, EncapsulationAlgorithm=ML_KEM)[
        "SharedSecretCiphertextBlob"
    ]
    opened: list[object] = []
    real_open = encapsulation.open_material
    monkeypatch.setattr(
        encapsulation, "open_material", lambda ctx, material: opened.append(1) or real_open(ctx, material)
    )
    decapsulate = lambda blob: run(  # noqa: E731
        lambda: admin_kms.decapsulate(
            KeyId=key_id, SharedSecretCiphertextBlob=blob, EncapsulationAlgorithm=ML_KEM
        )
    )
    assert decapsulate(ciphertext[:-1]).error == ("InvalidCiphertextException", "")
    assert opened == []
    assert len(decapsulate(ciphertext).response["SharedSecret"]) == 32
    assert opened == [1]


@pytest.mark.parametrize(
    ("key_spec", "algorithm", "message", "message_type"),
    [
        ("ECC_NIST_P256", "ECDSA_SHA_256", b"x" * 31, "DIGEST"),  # a digest of the wrong length
        ("ML_DSA_44", "ML_DSA_SHAKE_256", b"x" * 32, "DIGEST"),  # ML-DSA takes no digest
        ("ML_DSA_44", "ML_DSA_SHAKE_256", b"x" * 63, "EXTERNAL_MU"),  # mu is 64 bytes
    ],
)
def test_a_message_that_cannot_be_signed_never_opens_the_private_key(
    admin_kms: Any,
    monkeypatch: pytest.MonkeyPatch,
    key_spec: str,
    algorithm: str,
    message: bytes,
    message_type: str,
) -> None:
    """Key material is unsealed only for work that can succeed: Sign checks the message first."""
    from keys.services import crypto as services

    key_id = admin_kms.create_key(KeySpec=key_spec, KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    opened: list[object] = []
    real_open = services.open_material
    monkeypatch.setattr(
        services, "open_material", lambda ctx, material: opened.append(1) or real_open(ctx, material)
    )
    sign = lambda body, kind: run(  # noqa: E731
        lambda: admin_kms.sign(KeyId=key_id, Message=body, MessageType=kind, SigningAlgorithm=algorithm)
    )
    assert sign(message, message_type).error[0] == "ValidationException"
    assert opened == []
    assert sign(b"a message", "RAW").response["Signature"]
    assert opened == [1]

"""Wire handlers for the cryptographic operations: request members in, one service call, response members out.

Blobs arrive as bytes and leave as bytes (the model encodes them); KeyId in every response is the key ARN.
GrantTokens travel on the OperationContext (perform() reads them from the request); so does DryRun (run_handler
marks the context): the service answers DryRunOperationException once its checks have passed, before it opens
any key material.
"""

from __future__ import annotations

from typing import Any

from keys.services import crypto, encapsulation
from kmsconsole.awskms.handlers import handles
from kmsconsole.awskms.handlers.common import refuse_recipient
from kmsconsole.operations import OperationContext


def _ignore_ciphertext(params: dict[str, Any]) -> bool:
    return bool(params.get("DryRun")) and crypto.IGNORE_CIPHERTEXT in params.get("DryRunModifiers", [])


def _with_material(result: dict[str, Any], **material_ids: str | None) -> dict[str, Any]:
    """Add the KeyMaterialId members that apply (AWS omits them for asymmetric keys)."""
    result.update({name: value for name, value in material_ids.items() if value is not None})
    return result


@handles("Encrypt")
def encrypt(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    result = crypto.key_encrypt(
        ctx=ctx,
        key_id=params["KeyId"],
        plaintext=params["Plaintext"],
        encryption_context=params.get("EncryptionContext"),
        encryption_algorithm=params.get("EncryptionAlgorithm"),
    )
    # No KeyMaterialId: Encrypt's output shape has none (kms-spec §9.3).
    return {"CiphertextBlob": result.blob, "KeyId": result.key.arn, "EncryptionAlgorithm": result.algorithm}


@handles("Decrypt")
def decrypt(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    refuse_recipient(params)
    result = crypto.key_decrypt(
        ctx=ctx,
        ciphertext_blob=params.get("CiphertextBlob"),
        key_id=params.get("KeyId"),
        encryption_context=params.get("EncryptionContext"),
        encryption_algorithm=params.get("EncryptionAlgorithm"),
        ignore_ciphertext=_ignore_ciphertext(params),
    )
    return _with_material(
        {
            "KeyId": result.key.arn,
            "Plaintext": result.plaintext,
            "EncryptionAlgorithm": result.encryption_algorithm,
        },
        KeyMaterialId=result.key_material_id,
    )


@handles("ReEncrypt")
def re_encrypt(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    result = crypto.key_re_encrypt(
        ctx=ctx,
        ciphertext_blob=params.get("CiphertextBlob"),
        destination_key_id=params["DestinationKeyId"],
        source_key_id=params.get("SourceKeyId"),
        source_encryption_context=params.get("SourceEncryptionContext"),
        destination_encryption_context=params.get("DestinationEncryptionContext"),
        source_encryption_algorithm=params.get("SourceEncryptionAlgorithm"),
        destination_encryption_algorithm=params.get("DestinationEncryptionAlgorithm"),
        ignore_ciphertext=_ignore_ciphertext(params),
    )
    return _with_material(
        {
            "CiphertextBlob": result.ciphertext_blob,
            "SourceKeyId": result.source_key.arn,
            "KeyId": result.destination_key.arn,
            "SourceEncryptionAlgorithm": result.source_encryption_algorithm,
            "DestinationEncryptionAlgorithm": result.destination_encryption_algorithm,
        },
        SourceKeyMaterialId=result.source_key_material_id,
        DestinationKeyMaterialId=result.destination_key_material_id,
    )


def _data_key(ctx: OperationContext, params: dict[str, Any]) -> crypto.DataKey:
    return crypto.data_key_generate(
        ctx=ctx,
        key_id=params["KeyId"],
        key_spec=params.get("KeySpec"),
        number_of_bytes=params.get("NumberOfBytes"),
        encryption_context=params.get("EncryptionContext"),
    )


@handles("GenerateDataKey")
def generate_data_key(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    refuse_recipient(params)
    result = _data_key(ctx, params)
    return _with_material(
        {"CiphertextBlob": result.ciphertext_blob, "Plaintext": result.plaintext, "KeyId": result.key.arn},
        KeyMaterialId=result.key_material_id,
    )


@handles("GenerateDataKeyWithoutPlaintext")
def generate_data_key_without_plaintext(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    result = _data_key(ctx, params)
    return _with_material(
        {"CiphertextBlob": result.ciphertext_blob, "KeyId": result.key.arn},
        KeyMaterialId=result.key_material_id,
    )


def _data_key_pair(
    ctx: OperationContext, params: dict[str, Any]
) -> tuple[crypto.DataKeyPair, dict[str, Any]]:
    result = crypto.data_key_pair_generate(
        ctx=ctx,
        key_id=params["KeyId"],
        key_pair_spec=params["KeyPairSpec"],
        encryption_context=params.get("EncryptionContext"),
    )
    response = _with_material(
        {
            "PrivateKeyCiphertextBlob": result.private_key_ciphertext_blob,
            "PublicKey": result.public_key,
            "KeyId": result.key.arn,
            "KeyPairSpec": result.key_pair_spec,
        },
        KeyMaterialId=result.key_material_id,
    )
    return result, response


@handles("GenerateDataKeyPair")
def generate_data_key_pair(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    refuse_recipient(params)
    result, response = _data_key_pair(ctx, params)
    response["PrivateKeyPlaintext"] = result.private_key_plaintext
    return response


@handles("GenerateDataKeyPairWithoutPlaintext")
def generate_data_key_pair_without_plaintext(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    _, response = _data_key_pair(ctx, params)
    return response


@handles("Sign")
def sign(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    result = crypto.message_sign(
        ctx=ctx,
        key_id=params["KeyId"],
        message=params["Message"],
        signing_algorithm=params["SigningAlgorithm"],
        message_type=params.get("MessageType"),
    )
    return {"KeyId": result.key.arn, "Signature": result.blob, "SigningAlgorithm": result.algorithm}


@handles("Verify")
def verify(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    key = crypto.message_verify(
        ctx=ctx,
        key_id=params["KeyId"],
        message=params["Message"],
        signature=params["Signature"],
        signing_algorithm=params["SigningAlgorithm"],
        message_type=params.get("MessageType"),
    )
    return {"KeyId": key.arn, "SignatureValid": True, "SigningAlgorithm": params["SigningAlgorithm"]}


@handles("GenerateMac")
def generate_mac(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    result = crypto.mac_generate(
        ctx=ctx, key_id=params["KeyId"], message=params["Message"], mac_algorithm=params["MacAlgorithm"]
    )
    return {"Mac": result.blob, "MacAlgorithm": result.algorithm, "KeyId": result.key.arn}


@handles("VerifyMac")
def verify_mac(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    key = crypto.mac_verify(
        ctx=ctx,
        key_id=params["KeyId"],
        message=params["Message"],
        mac=params["Mac"],
        mac_algorithm=params["MacAlgorithm"],
    )
    return {"KeyId": key.arn, "MacValid": True, "MacAlgorithm": params["MacAlgorithm"]}


@handles("DeriveSharedSecret")
def derive_shared_secret(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    refuse_recipient(params)
    result = crypto.shared_secret_derive(
        ctx=ctx,
        key_id=params["KeyId"],
        key_agreement_algorithm=params["KeyAgreementAlgorithm"],
        public_key=params["PublicKey"],
    )
    # KeyOrigin: this KMS makes key material itself (CreateKey's Origin is AWS_KMS only).
    return {
        "KeyId": result.key.arn,
        "SharedSecret": result.blob,
        "KeyAgreementAlgorithm": result.algorithm,
        "KeyOrigin": "AWS_KMS",
    }


def _ml_kem(params: dict[str, Any]) -> dict[str, Any]:
    """The members Encapsulate and Decapsulate share: the ML-KEM key and the algorithm."""
    return {"key_id": params["KeyId"], "encapsulation_algorithm": params["EncapsulationAlgorithm"]}


@handles("Encapsulate")
def encapsulate(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    result = encapsulation.shared_secret_encapsulate(ctx=ctx, **_ml_kem(params))
    return {
        "KeyId": result.key.arn,
        "SharedSecret": result.shared_secret,
        "SharedSecretCiphertextBlob": result.ciphertext_blob,
        "EncapsulationAlgorithm": result.algorithm,
    }


@handles("Decapsulate")
def decapsulate(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    ciphertext = params["SharedSecretCiphertextBlob"]
    result = encapsulation.shared_secret_decapsulate(ctx=ctx, ciphertext_blob=ciphertext, **_ml_kem(params))
    return {"KeyId": result.key.arn, "SharedSecret": result.blob, "EncapsulationAlgorithm": result.algorithm}


@handles("GetPublicKey")
def get_public_key(ctx: OperationContext, params: dict[str, Any]) -> dict[str, Any]:
    result = crypto.public_key_get(ctx=ctx, key_id=params["KeyId"])
    key = result.key
    # The algorithm lists of the key's usage (Encryption, Signing, KeyAgreement or Encapsulation algorithms).
    return {
        "KeyId": key.arn,
        "PublicKey": result.public_key,
        "CustomerMasterKeySpec": key.key_spec,
        "KeySpec": key.key_spec,
        "KeyUsage": key.key_usage,
        **result.algorithms.members(),
    }

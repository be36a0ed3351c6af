"""KeyMetadata as DescribeKey and CreateKey return it (kms-spec §9.4): inapplicable fields are omitted."""

from __future__ import annotations

from typing import Any

from keys.crypto import KeySpec, KeyUsage, key_algorithms
from keys.materials import current_material
from keys.models import Key, KeyState


def key_metadata(key: Key) -> dict[str, Any]:
    algorithms = key_algorithms(KeySpec(key.key_spec), KeyUsage(key.key_usage))
    metadata: dict[str, Any] = {
        "AWSAccountId": key.account.account_id,
        "KeyId": str(key.key_id),
        "Arn": key.arn,
        "CreationDate": key.created_at,
        "Enabled": key.state == KeyState.ENABLED,
        "Description": key.description,
        "KeyUsage": key.key_usage,
        "KeyState": key.state,
        "Origin": key.origin,
        "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": key.key_spec,
        "KeySpec": key.key_spec,
        "MultiRegion": False,
    }
    if key.key_spec == KeySpec.SYMMETRIC_DEFAULT:
        # The service model: present for symmetric encryption keys only (others have one material, never rotated).
        metadata["CurrentKeyMaterialId"] = current_material(key).material_id
    if key.state == KeyState.PENDING_DELETION and key.deletion_date is not None:
        metadata["DeletionDate"] = key.deletion_date
    # EncryptionAlgorithms, SigningAlgorithms, MacAlgorithms, KeyAgreementAlgorithms or EncapsulationAlgorithms.
    metadata.update(algorithms.members())
    return metadata

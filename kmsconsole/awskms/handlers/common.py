"""Request members several operations share and this KMS does not offer."""

from __future__ import annotations

from typing import Any

from kmsconsole.core import errors


def refuse_custom_key_store(params: dict[str, Any]) -> None:
    # Custom key stores (CloudHSM, external) are AWS infrastructure; none exists here (kms-spec: tier "out").
    if "CustomKeyStoreId" in params:
        raise errors.CustomKeyStoreNotFoundException("The specified custom key store does not exist.")


def refuse_xks_key_id(params: dict[str, Any]) -> None:
    # XksKeyId names a key in an external key store, "not valid for KMS keys with any other Origin value" (the
    # model's CreateKey.XksKeyId); this KMS has no such store, so it is refused with every Origin, before any key
    # is made. AWS's exact error is not on record: ValidationException, the one AWS uses for a member that does not
    # fit the request.
    if "XksKeyId" in params:
        raise errors.ValidationException(
            "XksKeyId is valid only for a KMS key in an external key store (Origin EXTERNAL_KEY_STORE), "
            "which this KMS does not offer."
        )


def refuse_recipient(params: dict[str, Any]) -> None:
    if "Recipient" in params:
        raise errors.UnsupportedOperationException("Recipient (Nitro Enclaves attestation) is not supported.")


def refuse_multi_region(params: dict[str, Any]) -> None:
    if params.get("MultiRegion"):
        raise errors.UnsupportedOperationException("Multi-Region keys are not supported by this KMS.")

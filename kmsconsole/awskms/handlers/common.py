"""Request members several operations share and this KMS does not offer."""

from __future__ import annotations

from typing import Any

from keys.services.custom_key_stores import CUSTOM_KEY_STORE_NOT_FOUND
from kmsconsole.core import errors


def refuse_custom_key_store(params: dict[str, Any]) -> None:
    # Custom key stores (CloudHSM, external) are AWS infrastructure; none exists here (kms-spec: tier "out").
    if "CustomKeyStoreId" in params:
        raise errors.CustomKeyStoreNotFoundException(CUSTOM_KEY_STORE_NOT_FOUND)


def refuse_recipient(params: dict[str, Any]) -> None:
    if "Recipient" in params:
        raise errors.UnsupportedOperationException("Recipient (Nitro Enclaves attestation) is not supported.")

"""DescribeCustomKeyStores: the account's custom key stores, of which this KMS has none.

Custom key stores (CloudHSM, external) are AWS infrastructure (kms-spec §1, tier "out"): nothing here creates
one, so CreateCustomKeyStore and the operations on a store stay UnsupportedOperationException. Listing them is
an account-level read with a truthful answer, an empty list, which is what AWS gives an account without any;
inventory and compliance tools call it routinely and would take UnsupportedOperationException for a failure.
"""

from __future__ import annotations

from typing import Any

from kmsconsole.core import errors
from kmsconsole.core.pagination import INVALID_MARKER
from kmsconsole.operations import OperationContext
from policies.authorization import authorize

# What every operation naming a custom key store answers, no store existing here: AWS's answer for a store that
# does not exist, with its empty message (AWS's developer guide, delete-xks.md).
CUSTOM_KEY_STORE_NOT_FOUND = ""


def custom_key_store_list(
    *,
    ctx: OperationContext,
    custom_key_store_id: str | None = None,
    custom_key_store_name: str | None = None,
    marker: str | None = None,
) -> list[dict[str, Any]]:
    """The custom key stores of the caller's account: always none (kms:DescribeCustomKeyStores is IAM-only).

    Limit is not taken: the KMS endpoint's model validates it (1-1000) before this runs, and a list that is
    always empty has no page to size. Naming a store, by id or by name, is CustomKeyStoreNotFoundException. A
    marker can only be one this listing never issued (it never has a next page), so it is InvalidMarkerException
    with the message of every List operation, refused without decoding it (no scope of this listing is ever
    signed, so no check of it could pass).
    """
    authorize(ctx, resource="*")
    if marker:
        raise errors.InvalidMarkerException(INVALID_MARKER)
    if custom_key_store_id is not None or custom_key_store_name is not None:
        raise errors.CustomKeyStoreNotFoundException(CUSTOM_KEY_STORE_NOT_FOUND)
    return []

"""DescribeCustomKeyStores: the account's custom key stores, of which this KMS has none.

Custom key stores (CloudHSM, external) are AWS infrastructure (kms-spec §1, tier "out"): nothing here creates
one, so CreateCustomKeyStore and the operations on a store stay UnsupportedOperationException. Listing them is
an account-level read with a truthful answer, an empty list, which is what AWS gives an account without any;
inventory and compliance tools call it routinely and would take UnsupportedOperationException for a failure.
"""

from __future__ import annotations

from typing import Any

from kmsconsole.core import errors
from kmsconsole.core.pagination import decode_marker
from kmsconsole.operations import OperationContext
from policies.authorization import authorize

# DescribeCustomKeyStores' Limit: the model's LimitType, 1-1000.
DESCRIBE_CUSTOM_KEY_STORES_MAX_LIMIT = 1000


def custom_key_store_list(
    *,
    ctx: OperationContext,
    custom_key_store_id: str | None = None,
    custom_key_store_name: str | None = None,
    limit: int | None = None,
    marker: str | None = None,
) -> list[dict[str, Any]]:
    """The custom key stores of the caller's account: always none (kms:DescribeCustomKeyStores is IAM-only).

    Naming a store, by id or by name, is CustomKeyStoreNotFoundException, as AWS answers for a store that does
    not exist (with an empty message: AWS's developer guide, delete-xks.md). A marker can only be one this
    listing never issued (it never has a next page), so it is InvalidMarkerException as on every List operation.
    """
    authorize(ctx, resource="*")
    if limit is not None:
        errors.check_value_range("limit", limit, minimum=1, maximum=DESCRIBE_CUSTOM_KEY_STORES_MAX_LIMIT)
    if marker:
        decode_marker(f"DescribeCustomKeyStores:{ctx.caller.account_id}", marker)
    if custom_key_store_id is not None or custom_key_store_name is not None:
        raise errors.CustomKeyStoreNotFoundException("")
    return []

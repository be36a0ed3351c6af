"""Fixtures for key operations: boto3 clients for the personas, and a key factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import Persona


@pytest.fixture
def admin_kms(kms_client: Callable[..., Any], admin: Persona) -> Any:
    """boto3 KMS client of the account's admin (identity policy Allow * on *; default key policies delegate to IAM)."""
    return kms_client(admin)


@pytest.fixture
def create_key(admin_kms: Any) -> Callable[..., dict[str, Any]]:
    """Create a key as the admin; returns its KeyMetadata."""

    def make(**params: Any) -> dict[str, Any]:
        return admin_kms.create_key(**params)["KeyMetadata"]

    return make

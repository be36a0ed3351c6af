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


@pytest.fixture
def unsealed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every opening of key material, in order: the name of the operation that opened it (through
    `open_material`, served from the cache or not) and "unseal" each time sealed bytes were actually decrypted.
    The live test server runs in this process, so its requests are seen too."""
    from keys import materials
    from keys.services import crypto, encapsulation

    opened: list[str] = []

    def spy(real: Callable[..., bytes]) -> Callable[..., bytes]:
        def open_material(ctx: Any, material: Any) -> bytes:
            opened.append(ctx.operation.name)
            return real(ctx, material)

        return open_material

    for module in (crypto, encapsulation):
        monkeypatch.setattr(module, "open_material", spy(module.open_material))
    real_unseal = materials._unseal

    def unseal(material: Any) -> bytes:
        opened.append("unseal")
        return real_unseal(material)

    monkeypatch.setattr(materials, "_unseal", unseal)
    return opened

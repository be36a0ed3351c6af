"""Shared fixtures for the crypto core tests (no Django, no database).

Key generation is cached for the whole session: RSA 4096 takes up to a second, and the tests only need one
key per spec (plus a second one where a test needs "another key of the same spec").
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from keys.crypto import KeySpec, generate_key_material, new_key_material_id, public_key_der


@functools.cache
def _cached_material(spec: KeySpec, slot: int) -> bytes:
    return generate_key_material(spec)


def _material(spec: KeySpec, slot: int = 0) -> bytes:
    # Always call the cache with both arguments: functools.cache keys (spec,) and (spec, 0) apart.
    return _cached_material(spec, slot)


def _public(spec: KeySpec, slot: int = 0) -> bytes:
    return public_key_der(spec, _cached_material(spec, slot))


@functools.cache
def _private(spec: KeySpec) -> PrivateKeyTypes:
    # Loaded the way an outside client would (full key check: ~0.4 s for RSA 4096), so once per session.
    return serialization.load_der_private_key(_cached_material(spec, 0), password=None)


MaterialFactory = Callable[..., bytes]


@pytest.fixture(scope="session")
def material() -> MaterialFactory:
    """``material(spec, slot=0)``: cached key material; another ``slot`` gives another key of the spec."""
    return _material


@pytest.fixture(scope="session")
def client_private_key() -> Callable[[KeySpec], PrivateKeyTypes]:
    """``client_private_key(spec)``: ``material(spec)`` loaded by `cryptography`'s own PKCS#8 DER loader."""
    return _private


@pytest.fixture(scope="session")
def public_der() -> MaterialFactory:
    """``public_der(spec, slot=0)``: the DER SubjectPublicKeyInfo of ``material(spec, slot)``."""
    return _public


@dataclass(frozen=True)
class SymmetricKey:
    """One SYMMETRIC_DEFAULT key's material version, as the service would hold it for an operation."""

    key_id: uuid.UUID
    key_material_id: bytes
    material: bytes = field(repr=False)


@pytest.fixture(scope="session")
def sym_key() -> SymmetricKey:
    return SymmetricKey(uuid.uuid4(), new_key_material_id(), generate_key_material(KeySpec.SYMMETRIC_DEFAULT))

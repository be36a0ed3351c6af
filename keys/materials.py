"""Key material at rest: sealed under the root key, bound to its key and version; opened only for one operation.

Material is opened (unsealed) only by `open_material`, for one operation (a dry run only where its answer depends on
the material).

Inside a request snapshot (the AWS endpoint's cryptographic operations) the material versions a key's requests
use, and their unsealed bytes, are kept on the key's process cache entry (`keys.selectors.CachedKey`) while the
key's generation is unchanged: a rotation, a state change or the key's destruction bumps it, and the stale entry
(and the unsealed material with it) is dropped at the key's next request. The unsealed bytes live only in the
worker's memory; they are never logged, returned or written anywhere.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from keys.crypto import (
    KeySpec,
    generate_key_material,
    key_material_id_hex,
    new_key_material_id,
    public_key_der,
)
from keys.models import Key, KeyMaterial
from keys.selectors import cached_entry
from kmsconsole.core import errors
from kmsconsole.core.rootkey import open_sealed, sealer
from kmsconsole.generations.cache import current_snapshot
from kmsconsole.operations import DRY_RUN_NEEDS_MATERIAL

if TYPE_CHECKING:
    from kmsconsole.operations import OperationContext


def create_material(key: Key, *, rotation_type: str = "") -> KeyMaterial:
    """Generate a new material version for `key`, seal it, and make it the current one."""
    raw = generate_key_material(KeySpec(key.key_spec))
    material = KeyMaterial(
        key=key, material_id=key_material_id_hex(new_key_material_id()), rotation_type=rotation_type
    )
    material.sealed = sealer().seal(raw, bound_to=material.sealing_identity)
    for previous in KeyMaterial.objects.filter(key=key, is_current=True):
        # Checked before its MAC is recomputed (never bless a row changed outside); the key row is locked.
        previous.key = key
        previous.check_row()
        previous.is_current = False
        previous.save(update_fields=["is_current"])
    material.save()
    if key.public_key_der is None and key.key_spec not in _NO_PUBLIC_KEY:
        key.public_key_der = public_key_der(KeySpec(key.key_spec), raw)
        key.save(update_fields=["public_key_der"])
    return material


_NO_PUBLIC_KEY = frozenset({"SYMMETRIC_DEFAULT", "HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512"})


def current_material(key: Key) -> KeyMaterial:
    entry = cached_entry(key)
    material = (
        _current_row(key) if entry is None else entry.part("material:current", lambda: _current_row(key))
    )
    if material is None:
        raise errors.KMSInternalException("The key has no usable key material.")
    return material


def _current_row(key: Key) -> KeyMaterial | None:
    material = KeyMaterial.objects.filter(key=key, is_current=True).first()
    if material is not None:
        material.key = key  # the caller's row: its sealing identity needs no second query
        material.check_row()  # an older version made current in the database is refused, not used
    return material


def material_version(key: Key, material_id: str) -> KeyMaterial | None:
    entry = cached_entry(key)
    if entry is not None and f"material:{material_id}" in entry.parts:
        cached: KeyMaterial = entry.parts[f"material:{material_id}"]
        return cached
    material = KeyMaterial.objects.filter(key=key, material_id=material_id).first()
    if material is not None:
        material.key = key
        material.check_row()
        if entry is not None:  # only versions that exist are kept (a forged header must not fill the cache)
            entry.part(f"material:{material_id}", lambda: material)
    return material


def open_material(ctx: OperationContext, material: KeyMaterial) -> bytes:
    """The raw material, in memory for the duration of one operation (or, on the request path, for as long as
    the key's cache entry is current). Never log or return it.

    A dry run gets here only for an operation whose answer depends on the material (Decrypt, ReEncrypt, VerifyMac:
    `kmsconsole.operations.DRY_RUN_NEEDS_MATERIAL`); any other stops before (`OperationContext.stop_if_dry_run`),
    and one that did not would fail closed here, with nothing unsealed and nothing put in the cache."""
    if ctx.dry_run and ctx.operation.name not in DRY_RUN_NEEDS_MATERIAL:
        raise errors.KMSInternalException("A dry run reached the key material.")
    entry = cached_entry(material.key) if current_snapshot() is not None else None
    if entry is None:
        return _unseal(material)
    raw: bytes = entry.part(f"unsealed:{material.material_id}", lambda: _unseal(material))
    return raw


def _unseal(material: KeyMaterial) -> bytes:
    return open_sealed(bytes(material.sealed), bound_to=material.sealing_identity)

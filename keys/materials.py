"""Key material at rest: sealed under the root key, bound to its key and version; opened only for one operation."""

from __future__ import annotations

from keys.crypto import (
    KeySpec,
    generate_key_material,
    key_material_id_hex,
    new_key_material_id,
    public_key_der,
)
from keys.models import Key, KeyMaterial
from kmsconsole.core import errors
from kmsconsole.core.rootkey import sealer


def create_material(key: Key, *, rotation_type: str = "") -> KeyMaterial:
    """Generate a new material version for `key`, seal it, and make it the current one."""
    raw = generate_key_material(KeySpec(key.key_spec))
    material = KeyMaterial(
        key=key, material_id=key_material_id_hex(new_key_material_id()), rotation_type=rotation_type
    )
    material.sealed = sealer().seal(raw, bound_to=material.sealing_identity)
    KeyMaterial.objects.filter(key=key, is_current=True).update(is_current=False)
    material.save()
    if key.public_key_der is None and key.key_spec not in _NO_PUBLIC_KEY:
        key.public_key_der = public_key_der(KeySpec(key.key_spec), raw)
        key.save(update_fields=["public_key_der"])
    return material


_NO_PUBLIC_KEY = frozenset({"SYMMETRIC_DEFAULT", "HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512"})


def current_material(key: Key) -> KeyMaterial:
    material = KeyMaterial.objects.filter(key=key, is_current=True).first()
    if material is None:
        raise errors.KMSInternalException("The key has no usable key material.")
    material.key = key  # the caller's row: its sealing identity needs no second query
    return material


def material_version(key: Key, material_id: str) -> KeyMaterial | None:
    material = KeyMaterial.objects.filter(key=key, material_id=material_id).first()
    if material is not None:
        material.key = key
    return material


def open_material(material: KeyMaterial) -> bytes:
    """The raw material, in memory for the duration of one operation. Never log or return it."""
    return sealer().open(bytes(material.sealed), bound_to=material.sealing_identity)

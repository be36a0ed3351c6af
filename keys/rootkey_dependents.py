"""What the keys app keeps under a root key (`kmsconsole.core.rootkey_dependents`): sealed key material, and the
row MACs of keys (with their aliases and tags, which the key's MAC covers), material versions and key policy
versions. Registered when the app is ready (`keys.apps`), so `manage.py rootkey` sees them."""

from __future__ import annotations

from typing import Any

from keys.models import Key, KeyMaterial, KeyPolicyVersion
from kmsconsole.core import rowmac
from kmsconsole.core.rootkey_dependents import register
from kmsconsole.core.rootkey_movers import Children, mac_family, mac_rows, sealed_column


def _key_fields(key: Any, pairs: dict[str, list[tuple[str, str]]]) -> tuple[Any, ...]:
    return rowmac.key_mac_fields(key, pairs["aliases"], pairs["tags"])


register(
    sealed_column(
        name="key material (sealed)",
        model=KeyMaterial,
        column="sealed",
        bound_to=lambda material: material.sealing_identity,
        related=("key",),
        parent="key",
        order=10,
    )
)
register(
    mac_family(
        name="row MACs: keys, with their aliases and tags",
        model=Key,
        children=(
            # UpdateAlias and DeleteAlias lock an alias before its key (policies.principal_locks).
            Children("aliases", "name", "key", select=("account",), lock_first=True),
            Children("tags", "tag_key", "key"),
        ),
        parent_fields=_key_fields,
        order=50,
    )
)
register(mac_rows(name="row MACs: key material versions", model=KeyMaterial, related=("key",), parent="key"))
register(
    mac_rows(name="row MACs: key policy versions", model=KeyPolicyVersion, related=("key",), parent="key")
)

"""The key detail page's tabs, shared by the key views and the key policy editor."""

from __future__ import annotations

KEY_TABS = (
    ("general", "General configuration", "console:key"),
    ("crypto", "Cryptographic configuration", "console:key-crypto"),
    ("policy", "Key policy", "console:key-policy"),
    ("grants", "Grants", "console:key-grants"),
    ("rotation", "Key rotation", "console:key-rotation"),
    ("aliases", "Aliases", "console:key-aliases"),
    ("tags", "Tags", "console:key-tags"),
)


def key_tab_context(key_id: str, active_tab: str) -> dict[str, object]:
    """Context for templates/console/_partials/key_tabs.html."""
    return {"key_tabs": KEY_TABS, "key_id": key_id, "active_tab": active_tab}

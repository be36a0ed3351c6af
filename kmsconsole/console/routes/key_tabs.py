"""Console routes: the key detail tabs other than general and policy (see kmsconsole/console/urls.py)."""

from django.urls import URLPattern, path

from kmsconsole.console.views import key_aliases, key_grants, key_rotation, key_tabs, key_tags, key_try

KEY = "keys/<uuid:key_id>/"

urlpatterns: list[URLPattern] = [
    # Cryptographic configuration.
    path(f"{KEY}crypto/", key_tabs.key_crypto, name="key-crypto"),
    path(f"{KEY}public-key.pem", key_tabs.key_public_key, name="key-public-key"),
    path(f"{KEY}try/encrypt/", key_try.key_try_encrypt, name="key-try-encrypt"),
    path(f"{KEY}try/decrypt/", key_try.key_try_decrypt, name="key-try-decrypt"),
    # Grants.
    path(f"{KEY}grants/", key_grants.key_grants, name="key-grants"),
    path(f"{KEY}grants/new/", key_grants.key_grant_create, name="key-grant-create"),
    path(f"{KEY}grants/created/", key_grants.key_grant_created, name="key-grant-created"),
    path(f"{KEY}grants/<str:grant_id>/revoke/", key_grants.key_grant_revoke, name="key-grant-revoke"),
    # Rotation.
    path(f"{KEY}rotation/", key_rotation.key_rotation, name="key-rotation"),
    path(f"{KEY}rotation/enable/", key_rotation.key_rotation_enable, name="key-rotation-enable"),
    path(f"{KEY}rotation/disable/", key_rotation.key_rotation_disable, name="key-rotation-disable"),
    path(f"{KEY}rotation/rotate-now/", key_rotation.key_rotate_now, name="key-rotate-now"),
    # Aliases.
    path(f"{KEY}aliases/", key_aliases.key_aliases, name="key-aliases"),
    path(f"{KEY}aliases/create/", key_aliases.key_alias_create, name="key-alias-create"),
    path(f"{KEY}aliases/delete/", key_aliases.key_alias_delete, name="key-alias-delete"),
    path(f"{KEY}aliases/update/", key_aliases.key_alias_update, name="key-alias-update"),
    # Tags.
    path(f"{KEY}tags/", key_tags.key_tags, name="key-tags"),
    path(f"{KEY}tags/set/", key_tags.key_tag_put, name="key-tag-put"),
    path(f"{KEY}tags/remove/", key_tags.key_tag_remove, name="key-tag-remove"),
]

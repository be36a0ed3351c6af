"""Console routes: principals (see kmsconsole/console/urls.py).

Entity pages live under principals/<account id>/<users|roles|groups>/<name>/. IAM names never contain "/", so
the fixed segments (new/, new-policy/, policies/, members/, access-keys/, delete/, console-login/) cannot
collide with a name.
"""

from django.urls import URLPattern, path, register_converter

from kmsconsole.console.views import principal_access_keys as keys
from kmsconsole.console.views import principal_deletion as deletion
from kmsconsole.console.views import principal_policies as policies
from kmsconsole.console.views import principals


class EntityKindConverter:
    """ "users", "roles", "groups" in the URL; "user", "role", "group" (a kind of services.ENTITY_KINDS) in views."""

    regex = "users|roles|groups"

    def to_python(self, value: str) -> str:
        return value.removesuffix("s")

    def to_url(self, value: str) -> str:
        return f"{value}s"


register_converter(EntityKindConverter, "iamkind")

ENTITY = "principals/<str:account_id>/<iamkind:kind>/<str:name>/"
USER = "principals/<str:account_id>/users/<str:name>/"
GROUP = "principals/<str:account_id>/groups/<str:name>/"


def _entity_routes(kind: str) -> tuple[URLPattern, URLPattern]:
    """console:<kind>-create and console:<kind> (the entity's page)."""
    return (
        path(
            f"principals/<str:account_id>/new/{kind}s/",
            principals.entity_create,
            {"kind": kind},
            name=f"{kind}-create",
        ),
        path(
            f"principals/<str:account_id>/{kind}s/<str:name>/",
            principals.entity_detail,
            {"kind": kind},
            name=kind,
        ),
    )


urlpatterns: list[URLPattern] = [
    path("principals/", principals.principal_list, name="principals"),
    path(
        "principals/validate-identity-policy/",
        policies.identity_policy_validate,
        name="identity-policy-validate",
    ),
    *(route for kind in ("user", "role", "group") for route in _entity_routes(kind)),
    path(f"{ENTITY}delete/", deletion.entity_delete, name="entity-delete"),
    path(f"{USER}console-login/delete/", deletion.console_login_delete, name="console-login-delete"),
    path(f"{ENTITY}new-policy/", policies.identity_policy_create, name="identity-policy-create"),
    path(f"{ENTITY}policies/<str:policy_name>/", policies.identity_policy_edit, name="identity-policy"),
    path(
        f"{ENTITY}policies/<str:policy_name>/delete/",
        policies.identity_policy_delete,
        name="identity-policy-delete",
    ),
    path(f"{GROUP}members/", principals.group_member_add, name="group-member-add"),
    path(
        f"{GROUP}members/<str:user_name>/remove/", principals.group_member_remove, name="group-member-remove"
    ),
    path(f"{USER}access-keys/", keys.access_key_create, name="access-key-create"),
    path(f"{USER}access-keys/<str:access_key_id>/status/", keys.access_key_status, name="access-key-status"),
    path(f"{USER}access-keys/<str:access_key_id>/delete/", keys.access_key_delete, name="access-key-delete"),
]

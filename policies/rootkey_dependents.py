"""What the policies app keeps under a root key (`kmsconsole.core.rootkey_dependents`): sealed access-key secrets,
and the row MACs of users, roles and groups (with their inline policies, which the owner's MAC covers), access
keys and console logins. Registered when the app is ready (`policies.apps`)."""

from __future__ import annotations

from typing import Any

from kmsconsole.core import rowmac
from kmsconsole.core.rootkey_dependents import register
from kmsconsole.core.rootkey_movers import Children, mac_family, mac_rows, sealed_column
from policies.models import AccessKey, ConsoleIdentity, IamGroup, IamRole, IamUser


def _user_fields(user: Any, pairs: dict[str, list[tuple[str, str]]]) -> tuple[Any, ...]:
    groups = [group.unique_id for group in user.groups.all()]  # prefetched by the scans
    return rowmac.iam_user_mac_fields(user, groups, pairs["policies"])


def _role_fields(role: Any, pairs: dict[str, list[tuple[str, str]]]) -> tuple[Any, ...]:
    return rowmac.iam_role_mac_fields(role, pairs["policies"])


def _group_fields(group: Any, pairs: dict[str, list[tuple[str, str]]]) -> tuple[Any, ...]:
    return rowmac.iam_group_mac_fields(group, pairs["policies"])


# An access key's MAC fields read its owner: a user (and its account), or a session and its role.
_ACCESS_KEY_RELATED = ("account", "user__account", "session__role__account")

register(
    sealed_column(
        name="access-key secrets (sealed)",
        model=AccessKey,
        column="secret_sealed",
        bound_to=lambda key: key.sealing_identity,
        related=("account",),
        order=10,
    )
)
for _name, _model, _back, _fields, _prefetch in (
    ("row MACs: IAM users, with their inline policies", IamUser, "user", _user_fields, ("groups",)),
    ("row MACs: IAM roles, with their inline policies", IamRole, "role", _role_fields, ()),
    ("row MACs: IAM groups, with their inline policies", IamGroup, "group", _group_fields, ()),
):
    register(
        mac_family(
            name=_name,
            model=_model,
            children=(Children("policies", "name", _back),),
            parent_fields=_fields,
            prefetch=_prefetch,
            order=50,
        )
    )
register(mac_rows(name="row MACs: access keys", model=AccessKey, related=_ACCESS_KEY_RELATED))
register(mac_rows(name="row MACs: console logins", model=ConsoleIdentity, related=("iam_user",)))

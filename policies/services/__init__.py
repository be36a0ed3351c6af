"""Writes to principals: accounts, users, roles, groups, identity policies, access keys, role sessions.

Every function takes the OperationContext of an operation run through `kmsconsole.operations.perform`, asks
`authorize()` before changing anything, and returns plain data that the interface shapes.

The functions live in this package's modules, by concern; this module is their public surface, for the many
callers that use the service as one namespace (`services.user_create(...)`). A test that replaces a name a service
looks up patches it in the module that looks it up (e.g. `policies.services.entity_deletion`), not here.
"""

from policies.services.access_keys import (
    ACCESS_KEYS_PER_OWNER,
    NewAccessKey,
    access_key_create,
    access_key_delete,
    access_key_list,
    access_key_set_status,
)
from policies.services.console_logins import console_login_create, console_login_delete
from policies.services.entities import (
    account_create,
    group_add_user,
    group_create,
    group_members,
    group_remove_user,
    role_create,
    user_create,
)
from policies.services.entity_checks import locked_and_checked
from policies.services.entity_deletion import DeletedEntity, group_delete, role_delete, user_delete
from policies.services.identity_policies import (
    identity_policy_delete,
    identity_policy_describe,
    identity_policy_list,
    identity_policy_put,
)
from policies.services.lookups import (
    ENTITY_KINDS,
    LIST_ACCOUNTS_ACTION,
    OWN_ACCOUNT_REASON,
    account_list,
    entity_account,
    entity_describe,
    entity_list,
    principals_account,
    refuse_as_unknown_elsewhere,
)
from policies.services.role_sessions import SESSION_MIN_SECONDS, SessionCredentials, role_assume

__all__ = [
    "ACCESS_KEYS_PER_OWNER",
    "ENTITY_KINDS",
    "LIST_ACCOUNTS_ACTION",
    "OWN_ACCOUNT_REASON",
    "SESSION_MIN_SECONDS",
    "DeletedEntity",
    "NewAccessKey",
    "SessionCredentials",
    "access_key_create",
    "access_key_delete",
    "access_key_list",
    "access_key_set_status",
    "account_create",
    "account_list",
    "console_login_create",
    "console_login_delete",
    "entity_account",
    "entity_describe",
    "entity_list",
    "group_add_user",
    "group_create",
    "group_delete",
    "group_members",
    "group_remove_user",
    "identity_policy_delete",
    "identity_policy_describe",
    "identity_policy_list",
    "identity_policy_put",
    "locked_and_checked",
    "principals_account",
    "refuse_as_unknown_elsewhere",
    "role_assume",
    "role_create",
    "role_delete",
    "user_create",
    "user_delete",
]

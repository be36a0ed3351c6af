"""`python manage.py iam <subcommand>`: principals from the shell, in the AWS CLI's shapes, printing JSON.

Every subcommand runs as the local operator through `perform()`, so it is authorized and audited like any
other interface. Errors print `{"Error": {"Code", "Message"}}` on stderr and exit 254, as the AWS CLI does.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandParser

from kmsconsole.core import errors
from kmsconsole.core.context import command_line_meta, operator_caller
from kmsconsole.core.text import recorded
from kmsconsole.operations import OperationContext, perform
from policies import services
from policies.models import IamGroup, IamRole, IamUser
from policies.selectors import account_get, group_get, role_get, user_get

SERVICE_ERROR_EXIT = 254
# create-console-login reads the password from here (never from the command line, where `ps` would show it).
CONSOLE_PASSWORD_ENV = "KMS_CONSOLE_PASSWORD"  # noqa: S105 - the variable's name, not a password


def _iso(value: Any) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _entity(kind: str, entity: IamUser | IamRole | IamGroup) -> dict[str, Any]:
    return {
        f"{kind}Name": entity.name,
        "Path": entity.path,
        f"{kind}Id": entity.unique_id,
        "Arn": entity.arn,
        "CreateDate": _iso(entity.created_at),
    }


def document_limit() -> int:
    """The most characters a policy document is taken with from a file, and recorded with when typed in: the
    console's upload limit, which bounds a document pasted there."""
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE or settings.KMS_MAX_REQUEST_BYTES)


class UnreadableDocumentError(ValueError):
    """A --policy-document file:// that cannot be taken (its reason, refused inside the operation, audited)."""


def _read_document(value: str) -> str:
    """--policy-document takes JSON text, or file://path as the AWS CLI does. A file is read only up to one
    character past `document_limit()`: one that holds more is refused, not read on (file:///dev/zero never ends);
    one that is not UTF-8 text is refused too (UnicodeDecodeError is not an OSError)."""
    if not value.startswith("file://"):
        return value
    limit = document_limit()
    try:
        with open(value.removeprefix("file://"), encoding="utf-8") as handle:
            text = handle.read(limit + 1)
    except OSError as exc:
        raise UnreadableDocumentError(f"cannot read {value}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UnreadableDocumentError(f"{value} is not UTF-8 text") from None
    if len(text) > limit:
        raise UnreadableDocumentError(f"{value} holds more than {limit} characters")
    return text


class Command(BaseCommand):
    help = "Manage accounts, users, roles, groups, identity policies, access keys and role sessions."

    def add_arguments(self, parser: CommandParser) -> None:
        subcommands = parser.add_subparsers(
            dest="subcommand", required=True, parser_class=argparse.ArgumentParser
        )

        def sub(name: str, help_text: str) -> argparse.ArgumentParser:
            sp: argparse.ArgumentParser = subcommands.add_parser(name, help=help_text)
            sp.add_argument("--account-id", default=settings.KMS_ACCOUNT_ID)
            return sp

        sub("create-account", "Create an account (its root principal comes with it).")
        for entity in ("user", "role", "group"):
            sp = sub(f"create-{entity}", f"Create an IAM {entity}.")
            sp.add_argument(f"--{entity}-name", required=True)
            sp.add_argument("--path", default="/")
        for name, help_text in (
            ("add-user-to-group", "Add a user to a group."),
            ("remove-user-from-group", "Remove a user from a group."),
        ):
            sp = sub(name, help_text)
            sp.add_argument("--group-name", required=True)
            sp.add_argument("--user-name", required=True)
        for entity in ("user", "role", "group"):
            sp = sub(f"put-{entity}-policy", f"Create or replace an inline identity policy on a {entity}.")
            sp.add_argument(f"--{entity}-name", required=True)
            sp.add_argument("--policy-name", required=True)
            sp.add_argument("--policy-document", required=True, help="JSON text, or file://path")
        for entity in ("user", "role", "group"):
            sp = sub(f"delete-{entity}-policy", f"Delete an inline identity policy of a {entity}.")
            sp.add_argument(f"--{entity}-name", required=True)
            sp.add_argument("--policy-name", required=True)
        for entity, refused in (
            (
                "user",
                "access keys, a console login, inline policies or groups; its API tokens are revoked with it",
            ),
            ("role", "inline policies; its sessions end with it"),
            ("group", "members or inline policies"),
        ):
            sp = sub(
                f"delete-{entity}",
                f"Delete an IAM {entity} (refused with DeleteConflict while it has {refused}). Key policies "
                "naming it then name its unique id, and grants to it are retired.",
            )
            sp.add_argument(f"--{entity}-name", required=True)
        sp = sub("delete-console-login", "Delete a console sign-in of a user (IAM's login profile).")
        sp.add_argument("--user-name", required=True)
        sp.add_argument("--login", required=True, help="the name it signs in to the console with")
        sp = sub("create-access-key", "Create an access key; the secret is printed once.")
        owner = sp.add_mutually_exclusive_group(required=True)
        owner.add_argument("--user-name")
        owner.add_argument("--root", action="store_true", help="for the account's root principal")
        sp = sub("update-access-key", "Activate or deactivate an access key.")
        sp.add_argument("--access-key-id", required=True)
        sp.add_argument("--status", required=True, choices=["Active", "Inactive"])
        sp = sub("delete-access-key", "Delete an access key.")
        sp.add_argument("--access-key-id", required=True)
        sp = sub(
            "create-console-login",
            f"Create a console sign-in that acts as a user. The password comes from {CONSOLE_PASSWORD_ENV}; "
            "without it a strong one is generated and printed once.",
        )
        sp.add_argument("--user-name", required=True)
        sp.add_argument("--login", required=True, help="the name to sign in to the console with")
        sp = sub("assume-role", "Temporary credentials for a session of a role.")
        sp.add_argument("--role-name", required=True)
        sp.add_argument("--role-session-name", required=True)
        sp.add_argument("--duration-seconds", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        subcommand: str = options["subcommand"]
        handler, operation = _SUBCOMMANDS[subcommand]
        meta = command_line_meta(f"manage.py iam {subcommand}", options["account_id"])
        caller = operator_caller(options["account_id"])
        # The document applied is what the event records (the console records the policy text it applies), never
        # the name of the file it came from.
        unreadable = ""
        if options.get("policy_document"):
            try:
                options["policy_document"] = _read_document(options["policy_document"])
            except UnreadableDocumentError as exc:
                unreadable = f"--policy-document: {exc}"

        def service(ctx: OperationContext) -> dict[str, Any]:
            if unreadable:
                raise errors.ValidationException(unreadable)
            return handler(ctx, options)

        params = {
            _PARAMETER_NAMES[k]: v
            for k, v in options.items()
            if k in _PARAMETER_NAMES and v not in (None, False)
        }
        if "PolicyDocument" in params:
            # A document typed on the command line has no upload limit: recorded whole up to the console's (the
            # most a file's is taken with), cut with its length beyond, as any value typed in.
            params["PolicyDocument"] = recorded(params["PolicyDocument"], document_limit())
        try:
            result = perform(operation, caller=caller, meta=meta, params=params, service=service)
        except errors.KmsError as exc:
            sys.stderr.write(json.dumps({"Error": {"Code": exc.code, "Message": exc.message}}) + "\n")
            raise SystemExit(SERVICE_ERROR_EXIT) from None
        self.stdout.write(json.dumps(result, indent=4))


# Options that are request parameters, recorded on the audit event under the names the console and the REST API
# record them by (IAM's: UserName, PolicyName, PolicyDocument...), so one filter or reader finds every interface's.
# Policy documents are not secret (AWS logs them); access-key secrets only ever appear in responses.
_PARAMETER_NAMES = {
    option: "".join(part.capitalize() for part in option.split("_"))
    for option in (
        "account_id",
        "user_name",
        "role_name",
        "group_name",
        "path",
        "policy_name",
        "policy_document",
        "access_key_id",
        "status",
        "role_session_name",
        "duration_seconds",
        "root",
        "login",
    )
}


def _create_account(ctx: OperationContext, o: dict[str, Any]) -> dict[str, Any]:
    account = services.account_create(ctx=ctx, account_id=o["account_id"])
    return {"Account": {"AccountId": account.account_id, "RootArn": account.root_arn}}


def _create_user(ctx: OperationContext, o: dict[str, Any]) -> dict[str, Any]:
    account = account_get(o["account_id"])
    return {
        "User": _entity(
            "User", services.user_create(ctx=ctx, account=account, user_name=o["user_name"], path=o["path"])
        )
    }


def _create_role(ctx: OperationContext, o: dict[str, Any]) -> dict[str, Any]:
    account = account_get(o["account_id"])
    return {
        "Role": _entity(
            "Role", services.role_create(ctx=ctx, account=account, role_name=o["role_name"], path=o["path"])
        )
    }


def _create_group(ctx: OperationContext, o: dict[str, Any]) -> dict[str, Any]:
    account = account_get(o["account_id"])
    return {
        "Group": _entity(
            "Group",
            services.group_create(ctx=ctx, account=account, group_name=o["group_name"], path=o["path"]),
        )
    }


def _add_user_to_group(ctx: OperationContext, o: dict[str, Any]) -> dict[str, Any]:
    services.group_add_user(
        ctx=ctx, account=account_get(o["account_id"]), group_name=o["group_name"], user_name=o["user_name"]
    )
    return {}


def _put_policy(
    owner_lookup: Callable[[Any, str], IamUser | IamRole | IamGroup], option: str
) -> Callable[..., Any]:
    def put(ctx: OperationContext, o: dict[str, Any]) -> dict[str, Any]:
        owner = owner_lookup(account_get(o["account_id"]), o[option])
        services.identity_policy_put(
            ctx=ctx, owner=owner, policy_name=o["policy_name"], document=o["policy_document"]
        )
        return {}

    return put


def _remove_user_from_group(ctx: OperationContext, o: dict[str, Any]) -> dict[str, Any]:
    services.group_remove_user(
        ctx=ctx, account=account_get(o["account_id"]), group_name=o["group_name"], user_name=o["user_name"]
    )
    return {}


def _delete_policy(kind: str) -> Callable[[OperationContext, dict[str, Any]], dict[str, Any]]:
    def delete(ctx: OperationContext, o: dict[str, Any]) -> dict[str, Any]:
        services.identity_policy_delete(
            ctx=ctx,
            account=account_get(o["account_id"]),
            kind=kind,
            owner_name=o[f"{kind}_name"],
            policy_name=o["policy_name"],
        )
        return {}

    return delete


_DELETE = {"user": services.user_delete, "role": services.role_delete, "group": services.group_delete}


def _delete_entity(kind: str) -> Callable[[OperationContext, dict[str, Any]], dict[str, Any]]:
    def delete(ctx: OperationContext, o: dict[str, Any]) -> dict[str, Any]:
        name = {f"{kind}_name": o[f"{kind}_name"]}
        deleted = _DELETE[kind](ctx=ctx, account=account_get(o["account_id"]), **name)
        return {"Deleted": deleted.audit_elements()}

    return delete


def _delete_console_login(ctx: OperationContext, o: dict[str, Any]) -> dict[str, Any]:
    services.console_login_delete(
        ctx=ctx, account=account_get(o["account_id"]), user_name=o["user_name"], login=o["login"]
    )
    return {}


def _create_access_key(ctx: OperationContext, o: dict[str, Any]) -> dict[str, Any]:
    key = services.access_key_create(
        ctx=ctx, account=account_get(o["account_id"]), user_name=None if o["root"] else o["user_name"]
    )
    return {
        "AccessKey": {
            "UserName": key.owner_name,
            "AccessKeyId": key.access_key_id,
            "Status": key.status,
            "SecretAccessKey": key.secret_access_key,
            "CreateDate": _iso(key.created_at),
        }
    }


def _update_access_key(ctx: OperationContext, o: dict[str, Any]) -> dict[str, Any]:
    services.access_key_set_status(
        ctx=ctx, account=account_get(o["account_id"]), access_key_id=o["access_key_id"], status=o["status"]
    )
    return {}


def _delete_access_key(ctx: OperationContext, o: dict[str, Any]) -> dict[str, Any]:
    services.access_key_delete(
        ctx=ctx, account=account_get(o["account_id"]), access_key_id=o["access_key_id"]
    )
    return {}


def _assume_role(ctx: OperationContext, o: dict[str, Any]) -> dict[str, Any]:
    creds = services.role_assume(
        ctx=ctx,
        account=account_get(o["account_id"]),
        role_name=o["role_name"],
        session_name=o["role_session_name"],
        duration_seconds=o["duration_seconds"],
    )
    return {
        "Credentials": {
            "AccessKeyId": creds.access_key_id,
            "SecretAccessKey": creds.secret_access_key,
            "SessionToken": creds.session_token,
            "Expiration": _iso(creds.expiration),
        },
        "AssumedRoleUser": {"AssumedRoleId": creds.assumed_role_id, "Arn": creds.assumed_role_arn},
    }


def _create_console_login(ctx: OperationContext, o: dict[str, Any]) -> dict[str, Any]:
    user = user_get(account_get(o["account_id"]), o["user_name"])
    password = os.environ.get(CONSOLE_PASSWORD_ENV, "")
    generated = not password
    if generated:
        password = secrets.token_urlsafe(24)
    else:
        try:
            password_validation.validate_password(password)
        except ValidationError as exc:
            # The validators' words describe the password's weakness, never the password itself.
            raise errors.ValidationException(f"{CONSOLE_PASSWORD_ENV}: {' '.join(exc.messages)}") from None
    login = services.console_login_create(ctx=ctx, iam_user=user, username=o["login"], password=password)
    shown = {"Password": password} if generated else {"PasswordFrom": CONSOLE_PASSWORD_ENV}
    # "Password" is a secret response field of kmsconsole:CreateConsoleLogin: printed once here, never audited.
    return {"ConsoleLogin": {"Login": login.get_username(), "UserName": user.name, "Arn": user.arn, **shown}}


_SUBCOMMANDS: dict[str, tuple[Callable[[OperationContext, dict[str, Any]], dict[str, Any]], str]] = {
    "create-account": (_create_account, "iam:CreateAccount"),
    "create-user": (_create_user, "iam:CreateUser"),
    "create-role": (_create_role, "iam:CreateRole"),
    "create-group": (_create_group, "iam:CreateGroup"),
    "add-user-to-group": (_add_user_to_group, "iam:AddUserToGroup"),
    "put-user-policy": (_put_policy(user_get, "user_name"), "iam:PutUserPolicy"),
    "put-role-policy": (_put_policy(role_get, "role_name"), "iam:PutRolePolicy"),
    "put-group-policy": (_put_policy(group_get, "group_name"), "iam:PutGroupPolicy"),
    "remove-user-from-group": (_remove_user_from_group, "iam:RemoveUserFromGroup"),
    **{
        f"delete-{kind}-policy": (_delete_policy(kind), f"iam:Delete{kind.capitalize()}Policy")
        for kind in ("user", "role", "group")
    },
    **{f"delete-{kind}": (_delete_entity(kind), f"iam:Delete{kind.capitalize()}") for kind in _DELETE},
    "delete-console-login": (_delete_console_login, "kmsconsole:DeleteConsoleLogin"),
    "create-access-key": (_create_access_key, "iam:CreateAccessKey"),
    "update-access-key": (_update_access_key, "iam:UpdateAccessKey"),
    "delete-access-key": (_delete_access_key, "iam:DeleteAccessKey"),
    "assume-role": (_assume_role, "sts:AssumeRole"),
    "create-console-login": (_create_console_login, "kmsconsole:CreateConsoleLogin"),
}

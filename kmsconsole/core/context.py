"""Who is calling and over what: the two objects every service call receives."""

from __future__ import annotations

import os
import pwd
import socket
import uuid
from dataclasses import dataclass, field
from typing import Literal

from django.conf import settings

PrincipalType = Literal["Root", "IAMUser", "AssumedRole", "Operator", "Anonymous"]
Interface = Literal["kms", "api", "console", "cli", "worker"]


@dataclass(frozen=True)
class Caller:
    """An authenticated principal (or the local operator, for management commands and workers).

    `arn` is what AWS would print in an AccessDenied message: the IAM ARN for users and roots, the STS
    assumed-role ARN for role sessions.
    """

    arn: str
    account_id: str
    principal_type: PrincipalType
    access_key_id: str = ""
    # Database ids of the principal's rows, to load identity policies.
    user_pk: int | None = None
    role_pk: int | None = None
    session_pk: int | None = None
    # aws:username / aws:userid values (AWS: userid is the unique id, "AROA…:session" for sessions).
    username: str = ""
    userid: str = ""
    role_arn: str = ""

    @property
    def is_operator(self) -> bool:
        return self.principal_type == "Operator"


def operator_caller(account_id: str, who: str = "manage.py") -> Caller:
    """The person at the server's shell, acting through a management command or a worker."""
    return Caller(arn=f"kmsconsole:operator/{who}", account_id=account_id, principal_type="Operator")


ANONYMOUS_ARN = "anonymous"


@dataclass(frozen=True)
class RequestMeta:
    """Where a request came from; recorded on its audit event and fed to aws:* condition keys."""

    interface: Interface
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    source_ip: str = ""
    user_agent: str = ""
    secure_transport: bool = False
    # The caller asked for the decision trace (X-Kms-Explain: 1); it is returned only if it may see it.
    explain_requested: bool = False
    # The registered integrated service the request says it comes through (X-Kms-Via-Service); honored only
    # when the signer is allowed kmsconsole:ActAsIntegratedService for it.
    via_service: str = ""


# Each part of the shell identity is cut at this length (a host name is at most 253; a user name far shorter).
_IDENTITY_CHARS = 64


def shell_identity() -> str:
    """Who ran a management command, and where: the OS user of the process's real uid (not $USER, which the
    shell's environment sets), the sudo user sudo names (SUDO_USER) and the host. The operator's caller ARN names no
    person; this does, as far as the server can tell. SUDO_USER is only the environment's claim: sudo sets it, but
    whoever starts the process can set it to any name, so it is recorded as claimed (`sudo-user(claimed)=`), never
    as established. Nothing secret."""
    uid = os.getuid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid with no passwd entry (a container's arbitrary uid)
        user = f"uid {uid}"
    parts = [f"os-user={user[:_IDENTITY_CHARS]}"]
    if sudo_user := os.environ.get("SUDO_USER", "").strip():
        parts.append(f"sudo-user(claimed)={sudo_user[:_IDENTITY_CHARS]}")
    parts.append(f"host={socket.gethostname()[:_IDENTITY_CHARS]}")
    return "; ".join(parts)


def command_line_meta(command: str, account_id: str) -> RequestMeta:
    """The request of a management command (`command`, e.g. "manage.py iam create-user") whose event is filed under
    `account_id`. Under the operator's own account (settings.KMS_ACCOUNT_ID) its user agent names the command and
    who ran it where (`shell_identity`), shown on the event's page as a browser's is. Under any other account it
    says only "(operator)": that account's auditors read the event, and the server's OS users, an operator's
    personal sudo name and the internal host name are none of theirs."""
    if account_id != settings.KMS_ACCOUNT_ID:
        return RequestMeta(interface="cli", user_agent=f"{command} (operator)")
    return RequestMeta(interface="cli", user_agent=f"{command} ({shell_identity()})")

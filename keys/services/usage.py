"""GetKeyLastUsage: when a key was last used for a successful cryptographic operation, and since when that is known.

The answer is read from the audit trail (kmsconsole.audit.last_usage), which records every request already: the
cryptographic path writes nothing more for it. kms:GetKeyLastUsage (key policy), the key named by key id or key
ARN only, in the caller's account, in any key state (kms-spec §1, §4.2).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from keys.models import Key
from keys.services.access import expect_operation, key_for, request_allowed
from kmsconsole.audit.last_usage import LastUse, last_use, tracking_start
from kmsconsole.operations import OperationContext

GET_KEY_LAST_USAGE = "GetKeyLastUsage"


@dataclass(frozen=True)
class KeyLastUsage:
    """What GetKeyLastUsage reports: the last use (None: none since tracking began) and when tracking began."""

    key: Key
    last_use: LastUse | None
    tracking_started_at: datetime


def _usage_of(key: Key) -> KeyLastUsage:
    return KeyLastUsage(
        key=key, last_use=last_use(key.arn), tracking_started_at=tracking_start(key.created_at)
    )


def key_last_usage(*, ctx: OperationContext, key_id: str) -> KeyLastUsage:
    """The key's last successful cryptographic use since tracking began. kms:GetKeyLastUsage (key policy)."""
    expect_operation(ctx, GET_KEY_LAST_USAGE)
    return _usage_of(key_for(ctx, key_id))


def key_last_usage_shown(ctx: OperationContext, key: Key) -> KeyLastUsage | None:
    """The key's last usage beside another operation's answer on it (the console's key page): only where a
    GetKeyLastUsage request by the caller would be allowed, decided as that request would be and recorded only on
    the current operation's event; None otherwise."""
    if not request_allowed(ctx, key, GET_KEY_LAST_USAGE):
        return None
    return _usage_of(key)

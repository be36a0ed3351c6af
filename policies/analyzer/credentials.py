"""Findings on an account's long-term access keys (a user's or the account root's). AWS never expires them, and
neither does kmsconsole; instead the analyzer says which ones have outlived their use:

- ``access-key-unused`` (medium): an active key that no request has used for ``UNUSED_DAYS`` days (or ever, when it
  is older than that), from the audit trail: a credential nobody needs is one more that can leak.
- ``access-key-old`` (low): an active key created more than ``MAX_AGE_DAYS`` days ago and still in use: rotate it
  (create a second key, move the callers, deactivate and delete the old one).

Role-session keys expire on their own and are left out, and so are the keys of owners whose access keys the
caller may not list (``may_list_keys_of``: iam:ListAccessKeys on the owner, as ListFindings decides it): a finding
names the key, its owner and its age. The thresholds follow AWS Security Hub's IAM controls (access keys rotated
within 90 days; unused credentials removed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from kmsconsole.audit.models import AuditEvent
from policies import engine
from policies.engine.findings import Severity
from policies.models import AccessKey

MAX_AGE_DAYS = 90
UNUSED_DAYS = 90


@dataclass(frozen=True)
class CredentialFinding:
    """A finding on one access key, and its owner's ARN."""

    access_key_id: str
    owner_arn: str
    finding: engine.Finding

    def to_dict(self) -> dict[str, object]:
        return {"access_key_id": self.access_key_id, "owner_arn": self.owner_arn, **self.finding.to_dict()}


def last_used(key: AccessKey, owner_arn: str, since: datetime) -> datetime | None:
    """The latest request signed with `key` after `since`, from the audit trail (through the caller-ARN index,
    newest first, so a key in use is found at once and an unused one costs a scan of its owner's recent events)."""
    found = (
        AuditEvent.objects.filter(caller_arn=owner_arn, time__gte=since, access_key_id=key.access_key_id)
        .order_by("-time")
        .values_list("time", flat=True)
        .first()
    )
    return found


def _day(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d}"


def access_key_findings(
    account_id: str, now: datetime, *, may_list_keys_of: Callable[[str], bool]
) -> list[CredentialFinding]:
    """The findings on the active long-term access keys of `account_id` whose owner's ARN (a user's, or the account
    root's) `may_list_keys_of` accepts, oldest key first."""
    keys = (
        AccessKey.objects.filter(
            account__account_id=account_id,
            kind__in=(AccessKey.Kind.USER, AccessKey.Kind.ROOT),
            status=AccessKey.Status.ACTIVE,
            created_at__lte=now - timedelta(days=min(MAX_AGE_DAYS, UNUSED_DAYS)),
        )
        .select_related("account", "user")
        .order_by("created_at", "pk")
    )
    found = []
    for key in keys:
        owner = key.user.arn if key.user is not None else key.account.root_arn
        if not may_list_keys_of(owner):
            continue
        finding = _finding(key, owner, now)
        if finding is not None:
            found.append(CredentialFinding(key.access_key_id, owner, finding))
    return found


def _finding(key: AccessKey, owner: str, now: datetime) -> engine.Finding | None:
    age = (now - key.created_at).days
    if age >= UNUSED_DAYS and last_used(key, owner, now - timedelta(days=UNUSED_DAYS)) is None:
        return engine.Finding(
            id="access-key-unused",
            severity=Severity.MEDIUM,
            title="An access key has not been used for a long time",
            detail=(
                f"Access key {key.access_key_id} of {owner}, created {_day(key.created_at)}, signed no request in the "
                f"last {UNUSED_DAYS} days. A credential nobody uses is one more that can leak."
            ),
            fix="Deactivate the key (UpdateAccessKey Inactive); if nothing breaks, delete it.",
            principals=(owner,),
        )
    if age >= MAX_AGE_DAYS:
        return engine.Finding(
            id="access-key-old",
            severity=Severity.LOW,
            title="An access key is due for rotation",
            detail=(
                f"Access key {key.access_key_id} of {owner} was created {_day(key.created_at)}, {age} days ago. "
                "Long-term keys never expire, so one that leaked keeps working until someone rotates it."
            ),
            fix=(
                f"Rotate it: create a second access key, move its callers to it, then deactivate and delete "
                f"{key.access_key_id}. Keys older than {MAX_AGE_DAYS} days are reported."
            ),
            principals=(owner,),
        )
    return None

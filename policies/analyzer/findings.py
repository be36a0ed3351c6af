"""Findings for a key: the engine's findings on its policy (policies/engine/findings.py, the same the policy editor
shows) and the store's own, each a ``policies.engine.Finding`` with a severity and a fix:

- ``external-access`` (high for "*", medium for another account; low when only under request conditions): who
  outside the key's account can do what, by which route (key-policy statement or grant), from the access matrix.
- ``full-access-through-iam`` (medium): users and roles of the key's account that may perform every KMS action on
  the key through their identity policies (kms:* in effect, counted through the key policy's delegation).
- ``grant-without-constraints`` (low): grants for operations that take an encryption context, on a symmetric
  key, without an EncryptionContextEquals/Subset constraint.
- ``rotation-disabled`` (medium): a symmetric key of origin AWS_KMS without automatic rotation.
- ``pending-deletion-in-use`` (high): a key pending deletion that requests used (or tried to use) in the last
  ``RECENT_USE_DAYS`` days, from the audit trail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Max

from grants.models import Grant
from grants.selectors import EQUALS, SUBSET
from keys.models import Key, KeyState
from kmsconsole.audit.models import AuditEvent
from kmsconsole.operations import OPERATIONS, KeyStates
from policies import engine
from policies.engine.analysis import Access
from policies.engine.findings import Severity
from policies.engine.grants import ENCRYPTION_CONTEXT_OPERATIONS
from policies.engine.matrix import AccessMatrix, Subject

RECENT_USE_DAYS = 30
# The cryptographic operations: what "using a key" means in the audit trail.
USE_OPERATIONS = tuple(
    op.name
    for op in OPERATIONS.values()
    if op.grantable and op.read_only and op.key_states is KeyStates.USABLE
)
_ORDER = {Severity.HIGH: 0, Severity.MEDIUM: 1, Severity.LOW: 2}


@dataclass(frozen=True)
class KeyFinding:
    """A finding on one key; `source` is "policy" (the engine's, on the key policy) or "store"."""

    key: Key
    finding: engine.Finding
    source: str

    def to_dict(self) -> dict[str, object]:
        return {
            "key_id": str(self.key.key_id),
            "key_arn": self.key.arn,
            "source": self.source,
            **self.finding.to_dict(),
        }


def policy_findings(key: Key, policy: engine.CompiledPolicy) -> list[engine.Finding]:
    return list(
        engine.key_policy_findings(
            policy,
            account_id=key.account.account_id,
            key_spec=key.key_spec,
            key_usage=key.key_usage,
            key_arn=key.arn,
        )
    )


def _list(items: Sequence[str]) -> str:
    return ", ".join(items[:-1]) + (" and " if len(items) > 1 else "") + items[-1] if items else ""


def external_access(matrix: AccessMatrix) -> list[engine.Finding]:
    """One finding per principal outside the key's account that can do anything on it."""
    by_subject: dict[str, tuple[Subject, list[str], list[str], set[str]]] = {}
    for subject, action, verdict in matrix.granted():
        if not subject.external_to(matrix.account_id):
            continue
        _, sure, conditional, routes = by_subject.setdefault(subject.arn, (subject, [], [], set()))
        (sure if verdict.access is Access.ALLOWED else conditional).append(action)
        if verdict.route is not None:
            routes.add(verdict.route.describe())
        routes.update(way.route.describe() for way in verdict.ways)
    findings = []
    for subject, sure, conditional, routes in by_subject.values():
        everyone = subject.kind == "anyone"
        if sure:
            severity = Severity.HIGH if everyone else Severity.MEDIUM
        else:
            severity = Severity.MEDIUM if everyone else Severity.LOW
        if everyone:
            who = "any principal of any account"
        elif subject.kind == "account":  # its label names the account
            who = subject.label
        else:
            who = f"{subject.label} (account {subject.account_id})"
        parts = []
        if sure:
            parts.append(f"can call {_list(sure)}")
        if conditional:
            parts.append(f"can call {_list(conditional)} when requests meet conditions")
        findings.append(
            engine.Finding(
                id="external-access",
                severity=severity,
                title="Anyone can use this key" if everyone else "A principal of another account has access",
                detail=f"{who[0].upper()}{who[1:]} {' and '.join(parts)}, through {_list(sorted(routes))}.",
                fix=(
                    "Remove the statement or grant that gives this access if it is not intended; otherwise narrow "
                    "it with a condition such as kms:CallerAccount, aws:PrincipalArn or kms:ViaService, and name "
                    "principals instead of *."
                ),
                principals=(subject.arn,),
            )
        )
    return findings


def full_access_through_iam(matrix: AccessMatrix) -> list[engine.Finding]:
    """Users and roles of the key's account allowed every action on the key, at least partly by IAM policies."""
    named: list[str] = []
    arns: list[str] = []
    for subject, verdicts in matrix.rows():
        if subject.kind not in ("user", "role") or subject.external_to(matrix.account_id):
            continue
        if not verdicts or any(verdict.access is not Access.ALLOWED for verdict in verdicts):
            continue
        policies = sorted(
            {
                verdict.route.statement.policy_name
                for verdict in verdicts
                if verdict.route is not None
                and verdict.route.kind == "identity-policy"
                and verdict.route.statement
            }
        )
        if policies:
            quoted = ", ".join(f"'{name}'" for name in policies)
            named.append(f"{subject.label} (identity polic{'ies' if len(policies) > 1 else 'y'} {quoted})")
            arns.append(subject.arn)
    if not named:
        return []
    return [
        engine.Finding(
            id="full-access-through-iam",
            severity=Severity.MEDIUM,
            title="Every KMS action is allowed to users or roles through IAM",
            detail=(
                f"{_list(named)} may perform every KMS action on this key, including changing its policy, creating "
                "grants and scheduling its deletion: their IAM policies allow it, and the key policy lets IAM "
                "policies count."
            ),
            fix=(
                "List only the KMS actions each principal needs in its identity policy and name the keys in "
                "Resource; keep kms:* for the account root's statement in the key policy."
            ),
            principals=tuple(arns),
        )
    ]


def unconstrained_grants(key: Key) -> list[engine.Finding]:
    if key.key_spec != "SYMMETRIC_DEFAULT":
        return []  # only symmetric encryption keys take encryption-context constraints
    loose = []
    for grant in Grant.objects.filter(key=key, removal_requested_at__isnull=True).order_by(
        "created_at", "pk"
    ):
        constrained = bool(grant.constraints) and (EQUALS in grant.constraints or SUBSET in grant.constraints)
        if not constrained and {op.lower() for op in grant.operations} & ENCRYPTION_CONTEXT_OPERATIONS:
            loose.append(grant)
    if not loose:
        return []
    named = [
        f"{grant.grant_id[:12]}… ({grant.name or 'no name'}, to {grant.grantee_principal})" for grant in loose
    ]
    return [
        engine.Finding(
            id="grant-without-constraints",
            severity=Severity.LOW,
            title="Grants without constraints",
            detail=(
                f"{len(loose)} grant{'s' if len(loose) > 1 else ''} on this key allow{'' if len(loose) > 1 else 's'} "
                f"cryptographic operations with any encryption context: {_list(named)}."
            ),
            fix=(
                "Create the grant again with an EncryptionContextEquals or EncryptionContextSubset constraint that "
                "names the data it is for, then retire or revoke the unconstrained one."
            ),
            principals=tuple(dict.fromkeys(grant.grantee_principal for grant in loose)),
        )
    ]


def rotation_disabled(key: Key) -> list[engine.Finding]:
    if not key.rotatable or key.rotation_enabled or key.state == KeyState.PENDING_DELETION:
        return []
    return [
        engine.Finding(
            id="rotation-disabled",
            severity=Severity.MEDIUM,
            title="Automatic rotation is off",
            detail="This symmetric key never gets new key material, so everything it protects depends on one key.",
            fix=(
                "Turn on automatic rotation on the key's rotation tab (EnableKeyRotation); old ciphertext still "
                "decrypts."
            ),
        )
    ]


def recent_uses(key: Key, now: datetime) -> tuple[int, datetime | None]:
    """How many cryptographic requests named the key in the last RECENT_USE_DAYS days, and the latest."""
    found = AuditEvent.objects.filter(
        key_arn=key.arn, time__gte=now - timedelta(days=RECENT_USE_DAYS), operation__in=USE_OPERATIONS
    ).aggregate(count=Count("pk"), last=Max("time"))
    return int(found["count"] or 0), found["last"]


def pending_deletion_in_use(key: Key, now: datetime) -> list[engine.Finding]:
    if key.state != KeyState.PENDING_DELETION:
        return []
    count, last = recent_uses(key, now)
    if not count:
        return []
    when = key.deletion_date.strftime("%Y-%m-%d %H:%M UTC") if key.deletion_date else "soon"
    return [
        engine.Finding(
            id="pending-deletion-in-use",
            severity=Severity.HIGH,
            title="A key pending deletion is still in use",
            detail=(
                f"{count} cryptographic request{'s' if count > 1 else ''} used or tried to use this key in the last "
                f"{RECENT_USE_DAYS} days, the last at {last:%Y-%m-%d %H:%M} UTC. It will be deleted on {when}, and "
                "whatever it encrypted cannot be decrypted after that."
            ),
            fix=(
                "Cancel the deletion (CancelKeyDeletion) until nothing uses the key; the audit trail names the "
                "callers. Disabling the key first shows who still depends on it without losing anything."
            ),
        )
    ]


def key_findings(
    key: Key, matrix: AccessMatrix, now: datetime, *, policy: engine.CompiledPolicy | None = None
) -> list[KeyFinding]:
    """Every finding on the key, most severe first (policy findings before store findings at equal severity)."""
    compiled = policy if policy is not None else engine.compile_key_policy(key.policy)
    found = [KeyFinding(key, finding, "policy") for finding in policy_findings(key, compiled)]
    store = [
        *external_access(matrix),
        *full_access_through_iam(matrix),
        *pending_deletion_in_use(key, now),
        *rotation_disabled(key),
        *unconstrained_grants(key),
    ]
    found += [KeyFinding(key, finding, "store") for finding in store]
    return sorted(found, key=lambda item: (_ORDER[item.finding.severity], item.source != "policy"))

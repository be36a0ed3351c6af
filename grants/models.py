"""Grants on KMS keys (kms-spec §8), and the integrated services a request may come through (§7.6).

A grant is stored at once but takes effect only when it has propagated, the way AWS's grants are eventually
consistent: `effective_at` stays null until a worker marks it, at or after `propagate_after` (the database is the
source of truth; the task enqueued at creation only makes it prompt, and the beat sweeper finds any grant whose
message was lost). Retiring and revoking delete the row at once, unless `KMS_GRANT_REVOCATION_PROPAGATION` is
`delayed`: then the row is marked (`removal_requested_at`, `remove_after`) and the same worker path deletes it.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone

from keys.models import Key
from kmsconsole.core import rowmac
from policies.arns import account_root_arn


class Grant(rowmac.MacProtectedRow, models.Model):
    """One grant: its grantee may perform `operations` on `key`, within `constraints`.

    `operations` is a list of GrantOperation names; `constraints` is `{"EncryptionContextEquals": {...}}` or
    `{"EncryptionContextSubset": {...}}` (or null). Principals are stored as ARNs (an account id becomes its root
    ARN). `parameters_digest` fingerprints what the request asked for, so that a retry with the same `name` and the
    same parameters finds the grant it made (CreateGrant's idempotency), while another request with that name makes
    a new grant, as on AWS.

    `mac` covers everything the engine reads and the state columns (`rowmac.grant_mac_fields`); the loaders
    check it, and the workers' conditional UPDATEs write the new MAC in the same statement
    (`grants.services.propagation`).
    """

    MAC_KIND = "grant"
    MAC_COLUMNS = frozenset(
        {
            "grant_id", "key", "grantee_principal", "retiring_principal", "operations", "constraints", "name",
            "issuing_account", "propagate_after", "effective_at", "removal_requested_at", "remove_after",
        }
    )  # fmt: skip

    grant_id = models.CharField(max_length=64, unique=True, editable=False, help_text="64 hex characters.")
    key = models.ForeignKey(Key, on_delete=models.CASCADE, related_name="grants")
    grantee_principal = models.CharField(max_length=256)
    retiring_principal = models.CharField(max_length=256, blank=True, default="", db_index=True)
    operations = models.JSONField()
    constraints = models.JSONField(null=True, blank=True)
    name = models.CharField(max_length=256, blank=True, default="")
    parameters_digest = models.CharField(max_length=64)
    # The account the grant was issued in (the creator's), and who created it.
    issuing_account = models.CharField(max_length=12)
    created_by = models.CharField(max_length=2048)
    created_at = models.DateTimeField(default=timezone.now)
    # Eventual consistency: due at `propagate_after`, in effect from `effective_at` (null until propagated).
    propagate_after = models.DateTimeField()
    effective_at = models.DateTimeField(null=True, blank=True)
    # Delayed retirement (KMS_GRANT_REVOCATION_PROPAGATION=delayed): retired or revoked, deleted at `remove_after`.
    removal_requested_at = models.DateTimeField(null=True, blank=True)
    remove_after = models.DateTimeField(null=True, blank=True)
    removed_by = models.CharField(max_length=2048, blank=True, default="")
    mac = models.CharField(max_length=64, blank=True, default="")

    objects: rowmac.MacProtectedManager[Grant] = rowmac.MacProtectedManager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [
            # Authorization loads only the caller's grants on a key.
            models.Index(fields=["key", "grantee_principal"], name="grant_key_grantee_idx"),
            # The sweeper's two questions: which grants are due to take effect, which are due to go.
            models.Index(
                fields=["propagate_after"], condition=Q(effective_at__isnull=True), name="grant_pending_idx"
            ),
            models.Index(
                fields=["remove_after"], condition=Q(remove_after__isnull=False), name="grant_removal_due_idx"
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["key", "name", "parameters_digest"],
                condition=~Q(name="") & Q(removal_requested_at__isnull=True),
                name="grant_name_idempotent",
            )
        ]

    def __str__(self) -> str:
        return self.grant_id

    def mac_fields(self) -> tuple[object, ...]:
        return rowmac.grant_mac_fields(self)

    @property
    def is_effective(self) -> bool:
        return self.effective_at is not None

    @property
    def issuing_account_arn(self) -> str:
        return account_root_arn(self.issuing_account)


class IntegratedService(rowmac.MacProtectedRow, models.Model):
    """A service registered as integrated with this KMS (e.g. `ec2.us-east-1.amazonaws.com`).

    A request may say (in a signed X-Kms-Via-Service header) it is made through a registered service on its
    signer's behalf, if the operator bound the signer to the service when registering it: `principals` lists the
    user and role ARNs that act as the service. Accounts cannot grant themselves this (it is what lets a request
    past key policies written for the service), so no identity policy, not even the root's, allows it. Such a
    request carries `kms:ViaService` = the name and, for CreateGrant, ListGrants and
    RevokeGrant, `kms:GrantIsForAWSResource` = true, which is what the key policy statement "Allow attachment of
    persistent resources" asks for. No caller can set those keys any other way.

    `mac` covers the name and the bound principals (`rowmac.integrated_service_mac_fields`): a principal added
    in the database fails the claim closed.
    """

    MAC_KIND = "integrated-service"
    MAC_COLUMNS = frozenset({"name", "principals"})

    name = models.CharField(max_length=128, unique=True)
    description = models.TextField(blank=True, default="")
    principals = models.JSONField(default=list, help_text="User and role ARNs that may act as this service.")
    created_at = models.DateTimeField(auto_now_add=True)
    mac = models.CharField(max_length=64, blank=True, default="")

    objects: rowmac.MacProtectedManager[IntegratedService] = rowmac.MacProtectedManager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def mac_fields(self) -> tuple[object, ...]:
        return rowmac.integrated_service_mac_fields(self)

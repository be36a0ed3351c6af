"""KMS keys, their material versions, key policy versions, aliases and tags.

Key material is stored only sealed under the root key, bound to (key id, material id), so material copied onto
another key or version does not open. The database is the source of truth for every date the workers act on
(deletion date, next rotation).
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from keys.crypto import KeySpec
from kmsconsole.core import rowmac
from policies.models import Account


class KeyState(models.TextChoices):
    ENABLED = "Enabled"
    DISABLED = "Disabled"
    PENDING_DELETION = "PendingDeletion"
    PENDING_IMPORT = "PendingImport"
    CREATING = "Creating"
    UNAVAILABLE = "Unavailable"
    UPDATING = "Updating"


class Key(rowmac.MacProtectedRow, models.Model):
    """A KMS key (customer managed, origin AWS_KMS).

    `mac` covers what authorization and cryptography read (`rowmac.key_mac_fields`: id, account, spec, usage,
    origin, state, deletion date, key policy, public key, rotation schedule, and its aliases and tags as (name,
    MAC) pairs, so an alias or a tag deleted in the database is detected too); the key loaders check it.
    """

    MAC_KIND = "key"
    MAC_FAMILY = True
    MAC_COLUMNS = frozenset(
        {
            "key_id",
            "account",
            "key_spec",
            "key_usage",
            "origin",
            "state",
            "deletion_date",
            "policy",
            "public_key_der",
            "rotation_enabled",
            "rotation_period_days",
            "next_rotation_at",
        }
    )

    key_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="keys")
    description = models.TextField(blank=True, default="")
    key_spec = models.CharField(max_length=32)
    key_usage = models.CharField(max_length=32)
    origin = models.CharField(max_length=32, default="AWS_KMS")
    state = models.CharField(max_length=20, choices=KeyState.choices, default=KeyState.ENABLED, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # Set while PendingDeletion: when the workers destroy the key, and the window that was asked for.
    deletion_date = models.DateTimeField(null=True, blank=True, db_index=True)
    pending_window_days = models.PositiveSmallIntegerField(null=True, blank=True)
    deletion_scheduled_at = models.DateTimeField(null=True, blank=True)
    deletion_scheduled_by = models.CharField(max_length=2048, blank=True, default="")
    # Automatic rotation (symmetric keys only): the period and the next due date the beat sweep picks up.
    rotation_enabled = models.BooleanField(default=False)
    rotation_period_days = models.PositiveSmallIntegerField(null=True, blank=True)
    next_rotation_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # The `default` key policy as given (the history lives in KeyPolicyVersion).
    policy = models.TextField()
    # DER SubjectPublicKeyInfo of asymmetric keys: not secret, kept beside the sealed private material so
    # GetPublicKey, Verify and RSA Encrypt never unseal the private key.
    public_key_der = models.BinaryField(null=True, blank=True)
    mac = models.CharField(max_length=64, blank=True, default="")

    objects: rowmac.MacProtectedManager[Key] = rowmac.MacProtectedManager()

    class Meta:
        ordering = ["created_at", "id"]
        # The key lists' one order, ListKeys' (creation, then id), paged with a keyset cursor, never an OFFSET. No
        # order by state, spec or description: a key's place in it would tell them to a caller who may not
        # describe the key (kmsconsole.api.key_listing).
        indexes = [models.Index(fields=["account", "created_at", "id"], name="key_account_listing_idx")]

    def __str__(self) -> str:
        return str(self.key_id)

    @property
    def arn(self) -> str:
        # Built once per instance (a cached key serves many requests, each asking several times): a key's id and
        # account never change.
        try:
            return str(self.__dict__["_arn"])
        except KeyError:
            arn = self.__dict__["_arn"] = key_arn(self.account.account_id, str(self.key_id))
            return arn

    @property
    def enabled(self) -> bool:
        return self.state == KeyState.ENABLED

    @property
    def rotatable(self) -> bool:
        """Whether the key's material can be rotated (automatically or on demand): a symmetric encryption key of
        origin AWS_KMS. Every rotation operation on any other key is UnsupportedOperationException, but for
        GetKeyRotationStatus of an asymmetric or HMAC key, which answers "off" (keys.services.rotation)."""
        return self.key_spec == KeySpec.SYMMETRIC_DEFAULT and self.origin == "AWS_KMS"

    def mac_fields(self) -> tuple[object, ...]:
        return rowmac.key_mac_fields(self)

    def check_loaded(self, aliases: list[Alias], tags: list[Tag]) -> None:
        """Raise KMSInternalException unless the key's MAC matches its row and these aliases and tags (what the
        loader read), and each of them matches its own MAC."""
        for child in (*aliases, *tags):
            child.check_row()
        self.check_fields(
            rowmac.key_mac_fields(
                self,
                [(alias.name, alias.mac) for alias in aliases],
                [(tag.tag_key, tag.mac) for tag in tags],
            )
        )


def key_arn(account_id: str, key_id: str) -> str:
    return f"arn:{settings.KMS_PARTITION}:kms:{settings.KMS_REGION}:{account_id}:key/{key_id}"


def alias_arn(account_id: str, alias_name: str) -> str:
    return f"arn:{settings.KMS_PARTITION}:kms:{settings.KMS_REGION}:{account_id}:{alias_name}"


class KeyMaterial(rowmac.MacProtectedRow, models.Model):
    """One version of a key's material. Rotation adds a version; old versions stay to decrypt old ciphertext.

    `mac` covers which version is current and how it was made (`rowmac.key_material_mac_fields`): an older
    version made current again in the database fails closed instead of being used to encrypt.
    """

    MAC_KIND = "key-material"
    MAC_COLUMNS = frozenset({"key", "material_id", "is_current", "rotation_type"})

    class RotationType(models.TextChoices):
        AUTOMATIC = "AUTOMATIC"
        ON_DEMAND = "ON_DEMAND"

    key = models.ForeignKey(Key, on_delete=models.CASCADE, related_name="materials")
    material_id = models.CharField(max_length=64, help_text="KeyMaterialId: 64 hex characters.")
    sealed = models.BinaryField()
    is_current = models.BooleanField(default=True)
    # Null for the material the key was created with; set for versions that rotation made.
    rotation_type = models.CharField(max_length=16, choices=RotationType.choices, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    mac = models.CharField(max_length=64, blank=True, default="")

    objects: rowmac.MacProtectedManager[KeyMaterial] = rowmac.MacProtectedManager()

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["key", "material_id"], name="key_material_id_unique"),
            models.UniqueConstraint(
                fields=["key"], condition=models.Q(is_current=True), name="one_current_material_per_key"
            ),
        ]

    def __str__(self) -> str:
        return self.material_id

    @property
    def sealing_identity(self) -> str:
        """Associated data for the sealed material: the key and the version it belongs to."""
        return f"key-material:{self.key.key_id}:{self.material_id}"

    def mac_fields(self) -> tuple[object, ...]:
        return rowmac.key_material_mac_fields(self)


class KeyPolicyVersion(rowmac.MacProtectedRow, models.Model):
    """Every key policy a key has had: who set it, when, and the document, for history and diffs. `mac`
    (`rowmac.key_policy_version_mac_fields`) is checked before a version is restored.

    `principal_ids` binds the version to the principals it meant: for each user, role or assumed-role ARN the
    document names, the unique id of its user or role when the version was written (null: there was none), as AWS
    binds a policy to principals' unique ids when it is saved. A restore names, instead of an ARN whose principal
    has a different unique id now (deleted, perhaps recreated), the recorded unique id
    (`keys.services.key_policy.restore_plan`). Versions written before bindings were recorded have None."""

    MAC_KIND = "key-policy-version"
    MAC_COLUMNS = frozenset(
        {"key", "version", "document", "created_by", "bypassed_lockout_check", "principal_ids"}
    )

    key = models.ForeignKey(Key, on_delete=models.CASCADE, related_name="policy_versions")
    version = models.PositiveIntegerField()
    document = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=2048)
    bypassed_lockout_check = models.BooleanField(default=False)
    principal_ids = models.JSONField(null=True, blank=True, default=None)
    mac = models.CharField(max_length=64, blank=True, default="")

    objects: rowmac.MacProtectedManager[KeyPolicyVersion] = rowmac.MacProtectedManager()

    class Meta:
        ordering = ["key", "-version"]
        constraints = [models.UniqueConstraint(fields=["key", "version"], name="key_policy_version_unique")]

    def __str__(self) -> str:
        return f"{self.key} v{self.version}"

    def mac_fields(self) -> tuple[object, ...]:
        return rowmac.key_policy_version_mac_fields(self)


class Alias(rowmac.MacProtectedRow, models.Model):
    """A friendly name (`alias/…`) for one key, unique in its account. `mac` binds the name to its account and
    key (`rowmac.alias_mac_fields`); the key's MAC covers its aliases."""

    MAC_KIND = "alias"
    MAC_COLUMNS = frozenset({"account", "name", "key"})

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(max_length=256)
    key = models.ForeignKey(Key, on_delete=models.CASCADE, related_name="aliases")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    mac = models.CharField(max_length=64, blank=True, default="")

    objects: rowmac.MacProtectedManager[Alias] = rowmac.MacProtectedManager()

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["account", "name"], name="alias_name_unique")]

    def __str__(self) -> str:
        return self.name

    @property
    def arn(self) -> str:
        return alias_arn(self.account.account_id, self.name)

    def mac_fields(self) -> tuple[object, ...]:
        return rowmac.alias_mac_fields(self)


class Tag(rowmac.MacProtectedRow, models.Model):
    """A tag on a key (not secret: tags are logged and used in aws:ResourceTag conditions). `mac` covers the key,
    the tag key and the value (`rowmac.tag_mac_fields`); the key's MAC covers its tags."""

    MAC_KIND = "tag"
    MAC_COLUMNS = frozenset({"key", "tag_key", "tag_value"})

    key = models.ForeignKey(Key, on_delete=models.CASCADE, related_name="tags")
    tag_key = models.CharField(max_length=128)
    tag_value = models.CharField(max_length=256, blank=True)
    mac = models.CharField(max_length=64, blank=True, default="")

    objects: rowmac.MacProtectedManager[Tag] = rowmac.MacProtectedManager()

    class Meta:
        ordering = ["tag_key"]
        constraints = [models.UniqueConstraint(fields=["key", "tag_key"], name="tag_key_unique")]

    def __str__(self) -> str:
        return f"{self.tag_key}={self.tag_value}"

    def mac_fields(self) -> tuple[object, ...]:
        return rowmac.tag_mac_fields(self)


class DeletedKey(models.Model):
    """The tombstone of a key whose deletion window ended: its material is destroyed and every row of it is gone;
    this is what the audit dashboard can still say about it."""

    key_id = models.UUIDField(unique=True)
    arn = models.CharField(max_length=2048)
    account_id = models.CharField(max_length=12)
    key_spec = models.CharField(max_length=32)
    created_at = models.DateTimeField()
    deletion_scheduled_at = models.DateTimeField(null=True, blank=True)
    deletion_scheduled_by = models.CharField(max_length=2048, blank=True)
    deletion_date = models.DateTimeField()
    deleted_at = models.DateTimeField()
    material_versions_destroyed = models.PositiveIntegerField()

    class Meta:
        ordering = ["-deleted_at"]

    def __str__(self) -> str:
        return self.arn

"""Principals: accounts, IAM users, roles, groups, role sessions, access keys, and identity policies.

ARNs are derived from the rows (never stored twice), exactly as AWS writes them.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from kmsconsole.core import rowmac
from policies import arns


class Account(models.Model):
    """An AWS-style account: a 12-digit id with a root principal that owns everything in it."""

    account_id = models.CharField(max_length=12, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["account_id"]

    def __str__(self) -> str:
        return self.account_id

    @property
    def root_arn(self) -> str:
        return arns.account_root_arn(self.account_id)


class IamEntity(models.Model):
    """What users, roles and groups share: a name unique in the account, a path, and a unique id."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=128)
    path = models.CharField(max_length=512, default="/")
    unique_id = models.CharField(max_length=21, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class IamUser(rowmac.MacProtectedRow, IamEntity):
    """A long-term identity that signs requests with its access keys.

    `mac` covers its identity, the set of groups it belongs to and its inline policies
    (`rowmac.iam_user_mac_fields`): a membership or a policy added or removed in the database is detected when its
    identity policies are loaded. Services that change memberships or policies lock and check the user first and
    `seal()` it after (`rowmac.locked_and_checked`).
    """

    MAC_KIND = "iam-user"
    MAC_FAMILY = True
    MAC_COLUMNS = frozenset({"account", "name", "path", "unique_id"})

    mac = models.CharField(max_length=64, blank=True, default="")

    objects: rowmac.MacProtectedManager[IamUser] = rowmac.MacProtectedManager()

    class Meta(IamEntity.Meta):
        constraints = [models.UniqueConstraint(fields=["account", "name"], name="iam_user_name_unique")]

    @property
    def arn(self) -> str:
        return arns.user_arn(self.account.account_id, self.path, self.name)

    def mac_fields(self) -> tuple[object, ...]:
        return rowmac.iam_user_mac_fields(self)

    def check_loaded(self, group_unique_ids: list[str], policies: list[IdentityPolicy]) -> None:
        """Raise KMSInternalException unless the row's MAC matches its identity and these group memberships and
        inline policies (what the loader read)."""
        self.check_fields(rowmac.iam_user_mac_fields(self, group_unique_ids, _pairs(policies)))


def _pairs(policies: list[IdentityPolicy]) -> list[tuple[str, str]]:
    return [(policy.name, policy.mac) for policy in policies]


class IamRole(rowmac.MacProtectedRow, IamEntity):
    """An identity that callers assume for temporary credentials (role sessions).

    `mac` covers its identity, its maximum session duration and its inline policies (`rowmac.iam_role_mac_fields`).
    """

    MAC_KIND = "iam-role"
    MAC_FAMILY = True
    MAC_COLUMNS = frozenset({"account", "name", "path", "unique_id", "max_session_seconds"})

    max_session_seconds = models.PositiveIntegerField(default=3600)
    mac = models.CharField(max_length=64, blank=True, default="")

    objects: rowmac.MacProtectedManager[IamRole] = rowmac.MacProtectedManager()

    class Meta(IamEntity.Meta):
        constraints = [models.UniqueConstraint(fields=["account", "name"], name="iam_role_name_unique")]

    @property
    def arn(self) -> str:
        return arns.role_arn(self.account.account_id, self.path, self.name)

    def mac_fields(self) -> tuple[object, ...]:
        return rowmac.iam_role_mac_fields(self)

    def check_loaded(self, policies: list[IdentityPolicy]) -> None:
        self.check_fields(rowmac.iam_role_mac_fields(self, _pairs(policies)))


class IamGroup(rowmac.MacProtectedRow, IamEntity):
    """A set of users sharing identity policies. Never a principal: it cannot sign or be granted to.

    `mac` covers its identity and its inline policies (`rowmac.iam_group_mac_fields`); its members are covered by
    their users' MACs.
    """

    MAC_KIND = "iam-group"
    MAC_FAMILY = True
    MAC_COLUMNS = frozenset({"account", "name", "path", "unique_id"})

    members = models.ManyToManyField(IamUser, related_name="groups", blank=True)
    mac = models.CharField(max_length=64, blank=True, default="")

    objects: rowmac.MacProtectedManager[IamGroup] = rowmac.MacProtectedManager()

    class Meta(IamEntity.Meta):
        constraints = [models.UniqueConstraint(fields=["account", "name"], name="iam_group_name_unique")]

    @property
    def arn(self) -> str:
        return arns.group_arn(self.account.account_id, self.path, self.name)

    def mac_fields(self) -> tuple[object, ...]:
        return rowmac.iam_group_mac_fields(self)

    def check_loaded(self, policies: list[IdentityPolicy]) -> None:
        self.check_fields(rowmac.iam_group_mac_fields(self, _pairs(policies)))


class IdentityPolicy(rowmac.MacProtectedRow, models.Model):
    """An inline identity policy on exactly one user, group or role. The document is kept as written.

    `mac` covers the owner (kind and unique id), the name and the document (`rowmac.identity_policy_mac_fields`);
    the owner's MAC covers the set of its policies, so a policy deleted in the database is detected too.
    """

    MAC_KIND = "identity-policy"
    MAC_COLUMNS = frozenset({"user", "group", "role", "name", "document"})

    user = models.ForeignKey(
        IamUser, null=True, blank=True, on_delete=models.CASCADE, related_name="policies"
    )
    group = models.ForeignKey(
        IamGroup, null=True, blank=True, on_delete=models.CASCADE, related_name="policies"
    )
    role = models.ForeignKey(
        IamRole, null=True, blank=True, on_delete=models.CASCADE, related_name="policies"
    )
    name = models.CharField(max_length=128)
    document = models.TextField()
    updated_at = models.DateTimeField(auto_now=True)
    mac = models.CharField(max_length=64, blank=True, default="")

    objects: rowmac.MacProtectedManager[IdentityPolicy] = rowmac.MacProtectedManager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(user__isnull=False, group__isnull=True, role__isnull=True)
                    | Q(user__isnull=True, group__isnull=False, role__isnull=True)
                    | Q(user__isnull=True, group__isnull=True, role__isnull=False)
                ),
                name="identity_policy_one_owner",
            ),
            models.UniqueConstraint(fields=["user", "name"], name="user_policy_name_unique"),
            models.UniqueConstraint(fields=["group", "name"], name="group_policy_name_unique"),
            models.UniqueConstraint(fields=["role", "name"], name="role_policy_name_unique"),
        ]

    def __str__(self) -> str:
        return self.name

    def mac_fields(self) -> tuple[object, ...]:
        return rowmac.identity_policy_mac_fields(self)


class RoleSession(models.Model):
    """Temporary credentials from assuming a role. The session token is kept only as a keyed hash."""

    role = models.ForeignKey(IamRole, on_delete=models.CASCADE, related_name="sessions")
    session_name = models.CharField(max_length=64)
    session_token_digest = models.CharField(max_length=64)
    # The root key the digest is under (blank: made before digests recorded it; `rootkey rotate` stamps it).
    # Not under the access key's row MAC: it only tells `rootkey status` what is left to move.
    session_token_key_id = models.CharField(max_length=16, blank=True, default="")
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["expires_at"], name="role_session_expiry_idx")]

    def __str__(self) -> str:
        return self.arn

    @property
    def arn(self) -> str:
        return arns.assumed_role_arn(self.role.account.account_id, self.role.name, self.session_name)


class AccessKey(rowmac.MacProtectedRow, models.Model):
    """An access key id and its secret, sealed under the root key (SigV4 needs the secret to verify).

    Owned by a user, by an account's root, or by a role session (temporary, with a session token). `mac` binds
    the key to its kind, status and owner (`rowmac.access_key_mac_fields`: a user's unique id and ARN, or a
    session's id, token digest, expiry and role), so re-pointing or reactivating it in the database is detected.
    """

    MAC_KIND = "access-key"
    MAC_COLUMNS = frozenset({"access_key_id", "account", "kind", "user", "session", "status"})

    class Kind(models.TextChoices):
        USER = "user"
        ROOT = "root"
        SESSION = "session"

    class Status(models.TextChoices):
        ACTIVE = "Active"
        INACTIVE = "Inactive"

    access_key_id = models.CharField(max_length=20, unique=True)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="access_keys")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    user = models.ForeignKey(
        IamUser, null=True, blank=True, on_delete=models.CASCADE, related_name="access_keys"
    )
    session = models.OneToOneField(
        RoleSession, null=True, blank=True, on_delete=models.CASCADE, related_name="access_key"
    )
    secret_sealed = models.BinaryField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    mac = models.CharField(max_length=64, blank=True, default="")

    objects: rowmac.MacProtectedManager[AccessKey] = rowmac.MacProtectedManager()

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind="user", user__isnull=False, session__isnull=True)
                    | Q(kind="root", user__isnull=True, session__isnull=True)
                    | Q(kind="session", user__isnull=True, session__isnull=False)
                ),
                name="access_key_owner_matches_kind",
            )
        ]

    def __str__(self) -> str:
        return self.access_key_id

    @property
    def sealing_identity(self) -> str:
        """Associated data for the sealed secret: a sealed secret copied to another row will not open."""
        return f"access-key-secret:{self.account.account_id}:{self.access_key_id}"

    def mac_fields(self) -> tuple[object, ...]:
        return rowmac.access_key_mac_fields(self)


class ConsoleIdentity(rowmac.MacProtectedRow, models.Model):
    """Links a console login (a Django user) to the IAM user it acts as. `mac` binds the login to the IAM user's
    unique id."""

    MAC_KIND = "console-identity"
    MAC_COLUMNS = frozenset({"login", "iam_user"})

    login = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="kms_identity"
    )
    iam_user = models.ForeignKey(IamUser, on_delete=models.CASCADE, related_name="console_logins")
    mac = models.CharField(max_length=64, blank=True, default="")

    objects: rowmac.MacProtectedManager[ConsoleIdentity] = rowmac.MacProtectedManager()

    def __str__(self) -> str:
        return f"{self.login} → {self.iam_user}"

    def mac_fields(self) -> tuple[object, ...]:
        return rowmac.console_identity_mac_fields(self)

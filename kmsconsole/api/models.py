"""API tokens: bearer credentials for the REST API, each belonging to one IAM user."""

from __future__ import annotations

from django.db import models

from kmsconsole.core import rowmac
from policies.models import IamUser


class ApiToken(rowmac.MacProtectedRow, models.Model):
    """A bearer token `kmsc_<prefix>_<secret>`. Only the prefix (for lookup) and a keyed hash of the secret are
    stored; the whole token is shown once, when it is created. `mac` binds the token to its owner, expiry and
    revocation (`rowmac.api_token_mac_fields`), so a database writer cannot make a token another user's."""

    MAC_KIND = "api-token"
    MAC_COLUMNS = frozenset({"principal", "prefix", "secret_digest", "expires_at", "revoked_at"})

    principal = models.ForeignKey(IamUser, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=128, blank=True, default="")
    prefix = models.CharField(max_length=16, unique=True)
    secret_digest = models.CharField(max_length=64)
    # The root key the digest is under (`RootKey.key_id`; blank: made before digests recorded it, stamped by
    # `rootkey rotate`). Not under the row MAC: it only tells `rootkey status` what is left to move; the digest
    # itself is checked under every readable key (kmsconsole.core.token_digests).
    secret_digest_key_id = models.CharField(max_length=16, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()  # every token expires (KMS_API_TOKEN_TTL_DAYS by default)
    revoked_at = models.DateTimeField(null=True, blank=True)
    mac = models.CharField(max_length=64, blank=True, default="")

    objects: rowmac.MacProtectedManager[ApiToken] = rowmac.MacProtectedManager()

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"kmsc_{self.prefix}"

    def mac_fields(self) -> tuple[object, ...]:
        return rowmac.api_token_mac_fields(self)

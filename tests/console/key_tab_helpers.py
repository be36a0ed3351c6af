"""What the key detail tab tests share: keys and grants made as the operator, a snapshot of every row a tab can
change (to prove a refused or bad request changed nothing), and the sign-in redirect check."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponse
from django.urls import reverse

from grants import services as grant_services
from grants.models import Grant
from keys.models import Alias, Key, KeyMaterial, Tag
from kmsconsole.audit.models import AuditEvent
from tests.api.conftest import make_key
from tests.conftest import as_operator

__all__ = ["assert_signin_redirect", "audit_rows_text", "make_grant", "make_key", "snapshot", "url"]


def url(name: str, key: Key, *args: str) -> str:
    return reverse(f"console:{name}", args=[str(key.key_id), *args])


def make_grant(key: Key, grantee: str, *operations: str, **options: Any) -> grant_services.CreatedGrant:
    return as_operator(
        "CreateGrant",
        lambda ctx: grant_services.grant_create(
            ctx=ctx,
            key_id=str(key.key_id),
            grantee_principal=grantee,
            operations=list(operations) or ["Encrypt"],
            **options,
        ),
    )


def snapshot() -> dict[str, list[tuple[Any, ...]]]:
    """Every row the key tabs can change, comparable before and after a request."""
    return {
        "keys": list(
            Key.objects.order_by("pk").values_list(
                "pk", "state", "rotation_enabled", "rotation_period_days", "next_rotation_at"
            )
        ),
        "materials": list(KeyMaterial.objects.order_by("pk").values_list("pk", "material_id", "is_current")),
        "grants": list(Grant.objects.order_by("pk").values_list("pk", "grant_id", "removal_requested_at")),
        "aliases": list(Alias.objects.order_by("pk").values_list("pk", "name", "key_id")),
        "tags": list(Tag.objects.order_by("pk").values_list("pk", "tag_key", "tag_value")),
    }


def assert_signin_redirect(response: HttpResponse) -> None:
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def audit_rows_text() -> str:
    """Every recorded value of the audit trail as one text, to search for what must never be there."""
    return "\n".join(
        repr(row)
        for row in AuditEvent.objects.values_list(
            "request_parameters", "response_elements", "error_message", "reason"
        )
    )

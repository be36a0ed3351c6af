"""The key detail tabs other than general and policy: what they share, and the cryptographic configuration tab
with the public key download. Grants, rotation, aliases and tags live in key_grants, key_rotation, key_aliases
and key_tags.

Each tab is one read through `attempt()` (the operation AWS would use: DescribeKey, ListGrants, ...), which also
gives the key for the page header. The header shows what DescribeKey answers (description, state, alias), so a tab
whose read is another operation shows it only where a DescribeKey request would be allowed, asked inside that
read (`key_described`: keys.services.lifecycle.key_describable); otherwise the header is the key id. A refused
or failed read still renders the tab, with the reason in words and the status that fits it (403 refused, 404
unknown, 400 otherwise), so the other tabs stay one click away.
"""

from __future__ import annotations

import base64
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse

from grants.services.key_operations import key_type
from keys.metadata import key_metadata
from keys.services import crypto, lifecycle
from kmsconsole.console.dispatch import Outcome, attempt, console_view
from kmsconsole.console.keytabs import key_tab_context
from kmsconsole.console.views.key_try_forms import try_forms
from kmsconsole.operations import OperationContext

Value = TypeVar("Value")

# How a failed read or action answers: a refusal is 403, an unknown key or grant 404, anything else the
# caller asked for (bad value, wrong key state) 400.
FAILURE_STATUS = {"AccessDeniedException": 403, "NotFoundException": 404}
ASYMMETRIC = "ASYMMETRIC"
# DescribeKey's algorithm lists, in the order the page shows them.
ALGORITHM_FIELDS = (
    ("EncryptionAlgorithms", "Encryption algorithms"),
    ("SigningAlgorithms", "Signing algorithms"),
    ("MacAlgorithms", "MAC algorithms"),
    ("KeyAgreementAlgorithms", "Key agreement algorithms"),
    ("EncapsulationAlgorithms", "Key encapsulation algorithms"),
)
PEM_LINE = 64
CRYPTO_TEMPLATE = "console/key_crypto.html"


def failure_status(code: str) -> int:
    return FAILURE_STATUS.get(code, 400)


@dataclass(frozen=True)
class TabPage:
    """One answer of a key tab: its template, and the action (if any) that led here, whose failure it shows.

    `context["key"]` is the Key the tab's read returned; without it, or without `context["key_described"]`, the
    page's header shows the key id and the tabs."""

    request: HttpRequest
    key_id: str
    tab: str
    template: str
    action: Outcome[Any] | None = None

    @property
    def failed(self) -> Outcome[Any] | None:
        return self.action if self.action is not None and not self.action.ok else None

    def _render(self, context: dict[str, Any], status: int) -> HttpResponse:
        page = {**key_tab_context(self.key_id, self.tab), **context}
        return render(self.request, self.template, page, status=status)

    def render(self, context: dict[str, Any], *, status: int = 200) -> HttpResponse:
        """The tab with its content, and the failed action's message (and status) if there is one."""
        if self.failed is not None:
            context = {**context, "error": self.failed.error}
            status = failure_status(self.failed.code)
        return self._render(context, status)

    def refuse(self, read: Outcome[Any], **context: Any) -> HttpResponse:
        """The tab without its content: the failed action's message, else the failed read's."""
        shown = self.failed or read
        return self._render({"key": None, **context, "error": shown.error}, failure_status(shown.code))


def act(
    request: HttpRequest,
    key_id: str,
    operation: str,
    work: Callable[[OperationContext], Value],
    *,
    params: dict[str, Any],
    route: str,
    success: Callable[[Value], str],
    failure: Callable[[Outcome[Value]], HttpResponse],
    audit_response: Callable[[Value], Mapping[str, Any]] | None = None,
) -> HttpResponse:
    """A change: run it; on success say so and show the tab again (POST-redirect-GET), else `failure(outcome)`."""
    outcome = attempt(request, operation, work, params=params, audit_response=audit_response)
    if not outcome.ok:
        return failure(outcome)
    messages.success(request, success(outcome.value))  # type: ignore[arg-type]
    return HttpResponseRedirect(reverse(route, args=[key_id]))


def key_params(key_id: str, **more: Any) -> dict[str, Any]:
    """Request parameters as the audit trail records them, named as in the KMS API."""
    return {"KeyId": key_id, **more}


def describe(request: HttpRequest, key_id: str) -> Outcome[Any]:
    """DescribeKey: the key, for tabs whose own operation does not return it."""
    return attempt(
        request,
        "DescribeKey",
        lambda ctx: lifecycle.key_describe(ctx=ctx, key_id=key_id),
        params=key_params(key_id),
    )


def pem_public_key(der: bytes) -> str:
    """DER SubjectPublicKeyInfo as PEM ("PUBLIC KEY"), what OpenSSL and most libraries read."""
    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode("ascii"), PEM_LINE))
    return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"


def _public_key(request: HttpRequest, key_id: str) -> Outcome[Any]:
    return attempt(
        request,
        "GetPublicKey",
        lambda ctx: crypto.public_key_get(ctx=ctx, key_id=key_id),
        params=key_params(key_id),
    )


def crypto_page(
    request: HttpRequest, key_id: str, then: Callable[[TabPage, dict[str, Any]], HttpResponse]
) -> HttpResponse:
    """The Cryptographic configuration tab's read (DescribeKey, and GetPublicKey for an asymmetric key); `then`
    renders it, with whatever the request added (the try-encryption forms and results)."""
    page = TabPage(request, key_id, "crypto", CRYPTO_TEMPLATE)
    described = describe(request, key_id)
    if not described.ok:
        return page.refuse(described)
    key = described.value
    metadata = key_metadata(key)
    context: dict[str, Any] = {
        "key": key,
        "key_described": True,  # the tab's read is DescribeKey
        "metadata": metadata,
        "algorithms": [(label, metadata[field]) for field, label in ALGORITHM_FIELDS if field in metadata],
        "asymmetric": key_type(key) == ASYMMETRIC,
    }
    if key.key_usage == "ENCRYPT_DECRYPT":
        context.update(try_forms(key))
    if context["asymmetric"]:
        public = _public_key(request, key_id)
        context["public_key_pem"] = pem_public_key(public.value.public_key) if public.ok else ""
        context["public_key_error"] = public.error
    return then(page, context)


@console_view
def key_crypto(request: HttpRequest, key_id: UUID) -> HttpResponse:
    """Key spec, usage and algorithms; for an asymmetric key its public key, to copy or download."""
    return crypto_page(request, str(key_id), lambda page, context: page.render(context))


@console_view
def key_public_key(request: HttpRequest, key_id: UUID) -> HttpResponse:
    """GetPublicKey as a PEM file download."""
    key_id_text = str(key_id)
    public = _public_key(request, key_id_text)
    if not public.ok:
        return TabPage(request, key_id_text, "crypto", CRYPTO_TEMPLATE).refuse(public)
    response = HttpResponse(pem_public_key(public.value.public_key), content_type="application/x-pem-file")
    response["Content-Disposition"] = f'attachment; filename="{key_id_text}-public-key.pem"'
    return response

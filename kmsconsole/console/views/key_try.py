"""Try the key: encrypt a short text and decrypt a ciphertext from the Cryptographic configuration tab.

This is how an admin checks, in the browser, what a principal may really do with a key: the request is an
Encrypt or Decrypt like any SDK's, authorized by the engine as the signed-in principal and audited (the
plaintext is a secret member, so the trail never holds it). A key administrator who is not a key user sees the
refusal here, in the engine's words.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from keys.services import crypto
from kmsconsole.console.dispatch import attempt, console_view
from kmsconsole.console.views.key_tabs import crypto_page, failure_status, key_params
from kmsconsole.console.views.key_try_forms import TryDecryptForm, TryEncryptForm, key_algorithms


@dataclass(frozen=True)
class _Trial:
    """One of the two trials: its form (and form prefix), the operation, how to call the service with the
    form's data and which request parameters the audit event records, and where the page shows the result."""

    operation: str
    form_class: type[TryEncryptForm]
    prefix: str
    run: Callable[[Any, str, dict[str, Any]], Any]
    params: Callable[[dict[str, Any]], dict[str, Any]]
    shown_as: str
    shown: Callable[[Any], str]


_ENCRYPT = _Trial(
    operation="Encrypt",
    form_class=TryEncryptForm,
    prefix="encrypt",
    run=lambda ctx, key_id, data: crypto.key_encrypt(
        ctx=ctx,
        key_id=key_id,
        plaintext=data["plaintext"],
        encryption_context=data["encryption_context"] or None,
        encryption_algorithm=data["algorithm"],
    ),
    params=lambda data: {
        "Plaintext": data["plaintext"],
        "EncryptionContext": data["encryption_context"],
        "EncryptionAlgorithm": data["algorithm"],
    },
    shown_as="ciphertext",
    shown=lambda value: base64.b64encode(value.blob).decode(),
)

_DECRYPT = _Trial(
    operation="Decrypt",
    form_class=TryDecryptForm,
    prefix="decrypt",
    run=lambda ctx, key_id, data: crypto.key_decrypt(
        ctx=ctx,
        ciphertext_blob=data["ciphertext"],
        key_id=key_id,
        encryption_context=data["encryption_context"] or None,
        encryption_algorithm=data["algorithm"],
    ),
    params=lambda data: {
        "CiphertextBlob": data["ciphertext"],
        "EncryptionContext": data["encryption_context"],
        "EncryptionAlgorithm": data["algorithm"],
    },
    shown_as="decrypted",
    shown=lambda value: value.plaintext.decode("utf-8", "replace"),
)


def _try(request: HttpRequest, key_id: UUID, trial: _Trial) -> HttpResponse:
    key_id_text = str(key_id)
    form_name = f"{trial.prefix}_form"

    def result(page: Any, context: dict[str, Any]) -> HttpResponse:
        form = trial.form_class(request.POST, algorithms=key_algorithms(context["key"]), prefix=trial.prefix)
        if not form.is_valid():
            return page.render({**context, form_name: form}, status=400)
        data = form.cleaned_data
        outcome = attempt(
            request,
            trial.operation,
            lambda ctx: trial.run(ctx, key_id_text, data),
            params=key_params(key_id_text, **trial.params(data)),
        )
        extra: dict[str, Any] = {form_name: form, "try_error": outcome.error}
        if outcome.ok:
            extra[trial.shown_as] = trial.shown(outcome.value)
        return page.render({**context, **extra}, status=200 if outcome.ok else failure_status(outcome.code))

    return crypto_page(request, key_id_text, result)


@never_cache
@require_POST
@console_view
def key_try_encrypt(request: HttpRequest, key_id: UUID) -> HttpResponse:
    return _try(request, key_id, _ENCRYPT)


@never_cache
@require_POST
@console_view
def key_try_decrypt(request: HttpRequest, key_id: UUID) -> HttpResponse:
    return _try(request, key_id, _DECRYPT)

"""Try the key: encrypt a short text and decrypt a ciphertext from the Cryptographic configuration tab.

This is how an admin checks, in the browser, what a principal may really do with a key: the request is an
Encrypt or Decrypt like any SDK's, authorized by the engine as the signed-in principal and audited (the
plaintext is a secret member, so the trail never holds it). A key administrator who is not a key user sees the
refusal here, in the engine's words.
"""

from __future__ import annotations

import base64
from typing import Any
from uuid import UUID

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from keys.services import crypto
from kmsconsole.console.dispatch import attempt, console_view
from kmsconsole.console.views.key_tabs import crypto_page, failure_status, key_params
from kmsconsole.console.views.key_try_forms import TryDecryptForm, TryEncryptForm, key_algorithms


@never_cache
@require_POST
@console_view
def key_try_encrypt(request: HttpRequest, key_id: UUID) -> HttpResponse:
    key_id_text = str(key_id)

    def result(page: Any, context: dict[str, Any]) -> HttpResponse:
        form = TryEncryptForm(request.POST, algorithms=key_algorithms(context["key"]), prefix="encrypt")
        if not form.is_valid():
            return page.render({**context, "encrypt_form": form}, status=400)
        data = form.cleaned_data
        outcome = attempt(
            request,
            "Encrypt",
            lambda ctx: crypto.key_encrypt(
                ctx=ctx,
                key_id=key_id_text,
                plaintext=data["plaintext"],
                encryption_context=data["encryption_context"] or None,
                encryption_algorithm=data["algorithm"],
            ),
            params=key_params(
                key_id_text,
                Plaintext=data["plaintext"],
                EncryptionContext=data["encryption_context"],
                EncryptionAlgorithm=data["algorithm"],
            ),
        )
        extra: dict[str, Any] = {"encrypt_form": form, "try_error": outcome.error}
        if outcome.ok:
            extra["ciphertext"] = base64.b64encode(outcome.value.blob).decode()  # type: ignore[union-attr]
        return page.render({**context, **extra}, status=200 if outcome.ok else failure_status(outcome.code))

    return crypto_page(request, key_id_text, result)


@never_cache
@require_POST
@console_view
def key_try_decrypt(request: HttpRequest, key_id: UUID) -> HttpResponse:
    key_id_text = str(key_id)

    def result(page: Any, context: dict[str, Any]) -> HttpResponse:
        form = TryDecryptForm(request.POST, algorithms=key_algorithms(context["key"]), prefix="decrypt")
        if not form.is_valid():
            return page.render({**context, "decrypt_form": form}, status=400)
        data = form.cleaned_data
        outcome = attempt(
            request,
            "Decrypt",
            lambda ctx: crypto.key_decrypt(
                ctx=ctx,
                ciphertext_blob=data["ciphertext"],
                key_id=key_id_text,
                encryption_context=data["encryption_context"] or None,
                encryption_algorithm=data["algorithm"],
            ),
            params=key_params(
                key_id_text,
                CiphertextBlob=data["ciphertext"],
                EncryptionContext=data["encryption_context"],
                EncryptionAlgorithm=data["algorithm"],
            ),
        )
        extra: dict[str, Any] = {"decrypt_form": form, "try_error": outcome.error}
        if outcome.ok:
            extra["decrypted"] = outcome.value.plaintext.decode("utf-8", "replace")  # type: ignore[union-attr]
        return page.render({**context, **extra}, status=200 if outcome.ok else failure_status(outcome.code))

    return crypto_page(request, key_id_text, result)

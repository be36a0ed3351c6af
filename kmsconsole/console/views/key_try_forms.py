"""The forms of the Cryptographic configuration tab's "Try this key" panel (kmsconsole/console/views/key_try.py)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from django import forms

from keys.crypto import PLAINTEXT_MAX_BYTES
from keys.metadata import key_metadata
from keys.models import Key


def parse_encryption_context(text: str) -> dict[str, str]:
    """One `name=value` pair per line; blank lines are ignored."""
    pairs: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise forms.ValidationError(f"Line {number} is not name=value.")
        pairs[name.strip()] = value.strip()
    return pairs


class EncryptionContextField(forms.CharField):
    def to_python(self, value: Any) -> dict[str, str]:  # type: ignore[override]
        return parse_encryption_context(super().to_python(value) or "")


class TryEncryptForm(forms.Form):
    plaintext = forms.CharField(
        label="Text to encrypt",
        widget=forms.Textarea(attrs={"rows": 3}),
        strip=False,
        help_text=f"Up to {PLAINTEXT_MAX_BYTES} bytes. Do not paste a real secret: this is a test.",
    )
    encryption_context = EncryptionContextField(
        label="Encryption context",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2, "placeholder": "purpose=test"}),
        help_text="Optional, one name=value per line. Decrypt needs the same context.",
    )
    algorithm = forms.ChoiceField(label="Encryption algorithm", choices=())

    def __init__(self, *args: Any, algorithms: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["algorithm"].choices = [(name, name) for name in algorithms]

    def clean_plaintext(self) -> bytes:
        data = self.cleaned_data["plaintext"].encode()
        if len(data) > PLAINTEXT_MAX_BYTES:
            raise forms.ValidationError(f"That is {len(data)} bytes; the limit is {PLAINTEXT_MAX_BYTES}.")
        return data


class TryDecryptForm(TryEncryptForm):
    plaintext = None  # type: ignore[assignment]
    ciphertext = forms.CharField(
        label="Ciphertext (base64)",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="As Encrypt returned it.",
    )
    field_order = ["ciphertext", "encryption_context", "algorithm"]

    def clean_ciphertext(self) -> bytes:
        try:
            return base64.b64decode(self.cleaned_data["ciphertext"].strip(), validate=True)
        except (binascii.Error, ValueError):
            raise forms.ValidationError("This is not base64 text.") from None


def key_algorithms(key: Key) -> list[str]:
    return list(key_metadata(key).get("EncryptionAlgorithms", []))


def try_forms(key: Key) -> dict[str, forms.Form]:
    """The panel's empty forms."""
    algorithms = key_algorithms(key)
    return {
        "encrypt_form": TryEncryptForm(algorithms=algorithms, prefix="encrypt"),
        "decrypt_form": TryDecryptForm(algorithms=algorithms, prefix="decrypt"),
    }

"""The service's root key: where it comes from, how it is created, and the sealer built on it.

Resolution order: KMS_ROOT_KEY (or KMS_ROOT_KEY_FILE) as 64 hex characters or base64 of 32 bytes; else the
file `root.key` in KMS_DATA_DIR. `python manage.py rootkey init` creates that file once (mode 0600). There is
no silent fallback: without a root key the start fails (system check kmsconsole.E001).
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
from functools import cache
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from keys.crypto.sealing import ROOT_KEY_BYTES, Sealer, derive_subkey

logger = logging.getLogger(__name__)

HOW_TO_CREATE = (
    "No root key is configured. Set KMS_ROOT_KEY (64 hex characters; create one with "
    "`python -c 'import secrets; print(secrets.token_hex(32))'`) or KMS_ROOT_KEY_FILE, or run "
    "`python manage.py rootkey init` to generate one into KMS_DATA_DIR."
)


def _decode(text: str, source: str) -> bytes:
    text = text.strip()
    try:
        raw = (
            bytes.fromhex(text) if len(text) == 2 * ROOT_KEY_BYTES else base64.b64decode(text, validate=True)
        )
    except (ValueError, binascii.Error) as exc:
        raise ImproperlyConfigured(f"The root key from {source} is neither hex nor base64") from exc
    if len(raw) != ROOT_KEY_BYTES:
        raise ImproperlyConfigured(
            f"The root key from {source} must be 256 bits (32 bytes), not {len(raw)} bytes"
        )
    return raw


def root_key_path() -> Path:
    return Path(settings.KMS_ROOT_KEY_PATH)


def find_root_key() -> bytes | None:
    """The configured root key, or None when there is none (never generates one)."""
    if settings.KMS_ROOT_KEY:
        return _decode(settings.KMS_ROOT_KEY, "KMS_ROOT_KEY")
    path = root_key_path()
    if path.exists():
        return _decode(path.read_text(), str(path))
    return None


@cache
def root_key() -> bytes:
    key = find_root_key()
    if key is None and settings.DEBUG:
        # Development convenience only; with DEBUG off the start has already refused (check E001).
        create_root_key_file()
        key = find_root_key()
    if key is None:
        raise ImproperlyConfigured(HOW_TO_CREATE)
    return key


@cache
def sealer() -> Sealer:
    return Sealer(root_key())


@cache
def subkey(purpose: str) -> bytes:
    return derive_subkey(root_key(), purpose)


def create_root_key_file() -> bool:
    """Create `root.key` in the data dir with mode 0600 unless a root key exists. True when one was made."""
    if find_root_key() is not None:
        return False
    path = root_key_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: two starts racing cannot both write (and so disagree about) the root key.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(ROOT_KEY_BYTES) + "\n")
    logger.warning(
        "Generated a new root key at %s (mode 0600). Back it up: without it no stored key material or "
        "access-key secret can ever be decrypted.",
        path,
    )
    return True


def create_secret_key_file() -> bool:
    """Create the Django SECRET_KEY file in the data dir (mode 0600) unless SECRET_KEY is configured."""
    path = Path(settings.KMS_DATA_DIR) / "secret.key"
    if os.environ.get("SECRET_KEY") or os.environ.get("SECRET_KEY_FILE") or path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(50) + "\n")
    logger.warning("Generated a new SECRET_KEY at %s (mode 0600).", path)
    return True

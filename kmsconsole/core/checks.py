"""Start-up checks: production misconfiguration fails loudly (DESIGN.md, Settings).

Each is an Error with DEBUG off or on: the web server and the workers refuse to start on any of them
(`kmsconsole.core.startup.refuse_insecure_start`). E001 no root key, E002 the default SECRET_KEY, E003 DEBUG on a
non-loopback bind, E004 plain HTTP on a non-loopback bind, E005 a root key or SECRET_KEY file others may read, E006 a
KMS_TRUSTED_PROXY_ADDRESSES entry that is not an address or a network, E007 a KMS_SUDO_SECONDS that is not a number
of seconds, E008 a KMS_STALLED_BODIES_PER_ADDRESS below 0. W002 (a warning: the start goes on) while a root-key
rotation is under way, W003 a KMS_STALLED_BODIES_PER_ADDRESS not below KMS_WEB_THREADS.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from kmsconsole.core.client_address import ProxySettingError, parse_trusted_proxies
from kmsconsole.core.rootkey import HOW_TO_CREATE, find_root_key, find_root_keys


@register(Tags.security)
def root_key_configured(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    try:
        key = find_root_key()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), id="kmsconsole.E001")]
    if key is None and not settings.DEBUG:
        return [Error(HOW_TO_CREATE, id="kmsconsole.E001")]
    return []


@register(Tags.security)
def root_key_rotation_under_way(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Previous root keys are configured: a rotation was started and not finished (kmsconsole.core.rootkey)."""
    try:
        ring = find_root_keys()
    except ImproperlyConfigured:
        return []  # E001's to report
    if ring is None or not ring.previous:
        return []
    return [
        Warning(
            "A root key rotation is under way: run `manage.py rootkey reseal`, then `manage.py rootkey retire` "
            f"({len(ring.previous)} previous root key(s) configured).",
            hint="`rootkey status` shows what remains (processes take a rotated key file up by themselves).",
            id="kmsconsole.W002",
        )
    ]


@register(Tags.security)
def secret_key_configured(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    if settings.SECRET_KEY == settings.INSECURE_SECRET_KEY_DEFAULT and not settings.DEBUG:
        return [
            Error(
                "SECRET_KEY is the insecure default. Set SECRET_KEY or SECRET_KEY_FILE, or run "
                "`python manage.py rootkey init`, which also creates KMS_DATA_DIR/secret.key.",
                id="kmsconsole.E002",
            )
        ]
    return []


def _loopback(host: str) -> bool:
    """Whether `host` (KMS_HOST, what the web server binds) is reachable only from this machine."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a host name (or 0.0.0.0, ::) may be reachable from anywhere


@register(Tags.security)
def debug_only_on_loopback(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    # Django's debug pages show a failing request's local variables (plaintexts, unsealed secrets) to the client.
    if settings.DEBUG and not _loopback(settings.KMS_HOST):
        return [
            Error(
                f"DEBUG is on and KMS_HOST={settings.KMS_HOST} is not a loopback address: debug pages would show "
                "request data and secrets to any client. Set DEBUG=false, or bind to 127.0.0.1 for development.",
                id="kmsconsole.E003",
            )
        ]
    return []


@register(Tags.security)
def tls_beyond_loopback(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    # Passwords, session cookies, API tokens, plaintexts and data keys would cross the network in clear.
    if not settings.KMS_TLS and not _loopback(settings.KMS_HOST):
        return [
            Error(
                f"KMS_HOST={settings.KMS_HOST} is not a loopback address and KMS_TLS is off: passwords, tokens, "
                "plaintexts and data keys would travel in clear. Put a TLS proxy in front and set KMS_TLS=true "
                "(and KMS_TRUSTED_PROXY=true if it sets X-Forwarded-Proto), or bind to 127.0.0.1.",
                id="kmsconsole.E004",
            )
        ]
    return []


@register(Tags.security)
def trusted_proxy_addresses(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    # A mistyped proxy would make every request through it look as if it came from the proxy (or, if the start
    # went on without the entry, silently trust less than the operator meant): refuse to start instead.
    try:
        parse_trusted_proxies(settings.KMS_TRUSTED_PROXY_ADDRESSES)
    except ProxySettingError as exc:
        return [Error(str(exc), id="kmsconsole.E006")]
    return []


def _secret_files() -> list[tuple[str, Path]]:
    """The files the root key and SECRET_KEY are read from, where they come from files."""
    files = []
    if settings.KMS_ROOT_KEY_FILE:
        files.append(("KMS_ROOT_KEY_FILE", Path(settings.KMS_ROOT_KEY_FILE)))
    elif not settings.KMS_ROOT_KEY:
        files.append(("the root key file", Path(settings.KMS_ROOT_KEY_PATH)))
    if settings.SECRET_KEY_FILE:
        files.append(("SECRET_KEY_FILE", Path(settings.SECRET_KEY_FILE)))
    elif not os.environ.get("SECRET_KEY"):
        files.append(("the SECRET_KEY file", Path(settings.KMS_DATA_DIR) / "secret.key"))
    return files


@register(Tags.security)
def secret_files_private(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    # Whoever can read the root key can open every sealed secret and forge the audit chain (THREAT_MODEL.md, A1).
    problems = []
    for what, path in _secret_files():
        try:
            mode = path.stat().st_mode
        except OSError:
            continue  # a missing file is E001's (or the default SECRET_KEY's E002) to report
        if mode & 0o077:
            problems.append(
                Error(
                    f"{what} {path} has mode {stat.S_IMODE(mode):04o}: other users may read or change it. "
                    f"Run `chmod 600 {path}` (only its owner, the service's user, may read it).",
                    id="kmsconsole.E005",
                )
            )
    return problems


@register(Tags.security)
def sudo_seconds_valid(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """KMS_SUDO_SECONDS: how long a confirmed password opens sudo mode; 0 asks for it before every action."""
    seconds = settings.KMS_SUDO_SECONDS
    if not isinstance(seconds, int) or seconds < 0:
        return [
            Error(
                f"KMS_SUDO_SECONDS must be 0 (ask for the password before every sensitive action) or a number of "
                f"seconds; it is {seconds!r}.",
                id="kmsconsole.E007",
            )
        ]
    return []


@register(Tags.security)
def stalled_bodies_per_address_valid(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """KMS_STALLED_BODIES_PER_ADDRESS (kmsconsole.core.bodyreads): 0, or fewer than a worker's threads."""
    limit = settings.KMS_STALLED_BODIES_PER_ADDRESS
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        return [
            Error(
                "KMS_STALLED_BODIES_PER_ADDRESS must be 0 (never refuse a request for its address's unfinished "
                f"bodies) or how many application threads one address may keep waiting for bodies; it is {limit!r}.",
                id="kmsconsole.E008",
            )
        ]
    threads = os.environ.get("KMS_WEB_THREADS", "8")
    if threads.isdigit() and limit >= int(threads) > 0:
        return [
            Warning(
                f"KMS_STALLED_BODIES_PER_ADDRESS ({limit}) is not below KMS_WEB_THREADS ({threads}): one address "
                "that never finishes its request bodies can hold every application thread of a worker.",
                id="kmsconsole.W003",
            )
        ]
    return []

"""Configuration (issue 10): Django's deployment checks are clean with the production settings (TLS on, a
generated secret key, a root key); the security headers are on every interface's answers; and every exception
to ruff's security rules (bandit) in the product's code carries its justification."""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.conftest import REPO, encrypt_only_over_tls_policy

PRODUCT_CODE = ("kmsconsole", "policies", "keys", "grants")


def test_check_deploy_is_clean_with_the_production_settings(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "kmsconsole.settings",
        "KMS_DATA_DIR": str(tmp_path),
        "KMS_TLS": "true",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "DEBUG": "false",
    }
    env.pop("DATABASE_URL", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set in this process by the browser tests' Playwright fixture
    manage = [sys.executable, str(REPO / "manage.py")]
    subprocess.run([*manage, "rootkey", "init"], env=env, check=True, capture_output=True, timeout=60)
    checked = subprocess.run(
        [*manage, "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "no issues" in checked.stdout


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/signin/", "/api/v1/keys", "/kms/", "/healthz"])
def test_security_headers_on_every_interface(client: Any, path: str) -> None:
    response = client.get(path)
    assert response["X-Frame-Options"] == "DENY"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    policy = response["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    script = re.search(r"script-src ([^;]*)", policy)
    assert script is not None and script.group(1).strip() == "'self'"


def test_every_security_rule_exception_is_justified() -> None:
    unjustified = []
    for package in PRODUCT_CODE:
        for source in (REPO / package).rglob("*.py"):
            if "migrations" in source.parts:
                continue
            for number, line in enumerate(source.read_text().splitlines(), start=1):
                match = re.search(r"#\s*noqa:\s*((?:S\d+[, ]*)+)(.*)$", line)
                if match and not match.group(2).strip(" -—:"):
                    unjustified.append(f"{source.relative_to(REPO)}:{number}: {line.strip()}")
    assert not unjustified, "security rule exceptions without a reason:\n" + "\n".join(unjustified)


def _start(tmp_path: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """`args` run with the production settings, a private data dir with a root key, and `extra_env`."""
    data = tmp_path / "data"
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("KMS_", "SECRET_KEY", "DJANGO_", "DEBUG"))
    }
    env.update(KMS_DATA_DIR=str(data), DJANGO_SETTINGS_MODULE="kmsconsole.settings", SECRET_KEY="s" * 50)
    if not (data / "root.key").exists():
        subprocess.run([sys.executable, "manage.py", "rootkey", "init"], cwd=REPO, env=env, check=True,
                       capture_output=True, timeout=60)  # fmt: skip
    env.update(extra_env)
    if "SECRET_KEY_FILE" in extra_env:
        del env["SECRET_KEY"]  # only one of the two may be set
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


ANY_ADDRESS = "0.0.0.0"  # noqa: S104 - the bind to all interfaces that the start checks judge, never bound here
REFUSED = {
    "debug-on-a-public-bind": (
        {"DEBUG": "true", "KMS_HOST": ANY_ADDRESS, "KMS_TLS": "true"},
        "kmsconsole.E003",
    ),
    "plain-http-on-a-public-bind": ({"KMS_HOST": "10.1.2.3"}, "kmsconsole.E004"),
    "plain-http-on-a-host-name": ({"KMS_HOST": "kms.example.com"}, "kmsconsole.E004"),
    "a-proxy-named-by-host-name": (
        {"KMS_TRUSTED_PROXY_ADDRESSES": "10.0.0.0/8,lb.internal"},
        "kmsconsole.E006",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_a_misconfigured_start_is_refused(tmp_path: Path, case: str) -> None:
    env, code = REFUSED[case]
    checked = _start(tmp_path, "manage.py", "check", **env)
    assert checked.returncode != 0 and code in checked.stderr, checked.stderr
    # The web server imports the WSGI module in each process (and `serve` refuses first); Celery runs the refusal
    # in worker_init.
    served = _start(tmp_path, "-c", "import kmsconsole.wsgi", **env)
    assert served.returncode != 0 and "ImproperlyConfigured" in served.stderr and code in served.stderr
    # `serve` refuses before it starts anything, even told to skip Django's checks: granian would start a web
    # process that fails to load the application again and again.
    whole = _start(tmp_path, "manage.py", "serve", "--skip-checks", **env)
    assert whole.returncode != 0 and code in whole.stderr, whole.stderr
    assert "granian" not in whole.stdout + whole.stderr


@pytest.mark.parametrize(
    "env",
    [
        {"DEBUG": "true"},  # development on loopback
        {"DEBUG": "true", "KMS_HOST": "::1"},
        {"KMS_HOST": "localhost"},
        {"KMS_HOST": ANY_ADDRESS, "KMS_TLS": "true", "KMS_TRUSTED_PROXY": "true"},  # behind a TLS proxy
        {"KMS_TRUSTED_PROXY_ADDRESSES": "10.0.0.0/8, 192.0.2.10, fd00::/8"},
    ],
    ids=["debug-loopback", "debug-ipv6-loopback", "localhost", "tls-proxy", "trusted-proxy-addresses"],
)
def test_the_configurations_that_are_safe_start(tmp_path: Path, env: dict[str, str]) -> None:
    checked = _start(tmp_path, "manage.py", "check", **env)
    assert checked.returncode == 0, checked.stderr


def test_a_root_key_file_others_may_read_is_refused(tmp_path: Path) -> None:
    assert _start(tmp_path, "manage.py", "check").returncode == 0
    key_file = tmp_path / "data" / "root.key"
    key_file.chmod(0o644)
    checked = _start(tmp_path, "manage.py", "check")
    assert checked.returncode != 0 and "kmsconsole.E005" in checked.stderr and "0644" in checked.stderr
    assert "root key" in checked.stderr and key_file.read_text().strip() not in checked.stderr
    assert _start(tmp_path, "-c", "import kmsconsole.wsgi").returncode != 0
    # The same for a key passed as KMS_ROOT_KEY_FILE (Docker or systemd secrets) and for SECRET_KEY_FILE.
    key_file.chmod(0o600)
    elsewhere = tmp_path / "mounted.key"
    elsewhere.write_text(key_file.read_text())
    elsewhere.chmod(0o640)
    checked = _start(tmp_path, "manage.py", "check", KMS_ROOT_KEY_FILE=str(elsewhere))
    assert checked.returncode != 0 and "KMS_ROOT_KEY_FILE" in checked.stderr
    elsewhere.chmod(0o400)
    assert _start(tmp_path, "manage.py", "check", KMS_ROOT_KEY_FILE=str(elsewhere)).returncode == 0
    secret = tmp_path / "secret"
    secret.write_text("t" * 50)
    secret.chmod(0o604)
    checked = _start(tmp_path, "manage.py", "check", SECRET_KEY_FILE=str(secret))
    assert checked.returncode != 0 and "SECRET_KEY_FILE" in checked.stderr and "t" * 50 not in checked.stderr


@pytest.mark.django_db(transaction=True)
def test_a_client_claiming_https_is_believed_only_behind_a_trusted_proxy(
    kms_client: Any, admin: Any, settings: Any
) -> None:
    """aws:SecureTransport comes from the socket unless KMS_TRUSTED_PROXY says a TLS proxy sets
    X-Forwarded-Proto (and overwrites what clients send); with KMS_TRUSTED_PROXY_ADDRESSES, only from those
    proxies."""
    kms = kms_client(admin)
    key_id = kms.create_key(Policy=encrypt_only_over_tls_policy())["KeyMetadata"]["KeyId"]

    def claim_https(request: Any, **_: Any) -> None:
        request.headers["X-Forwarded-Proto"] = "https"

    kms.meta.events.register("before-sign.kms.*", claim_https)
    with pytest.raises(ClientError) as refused:
        kms.encrypt(KeyId=key_id, Plaintext=b"over plain http")
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")  # what KMS_TRUSTED_PROXY=true sets
    assert kms.encrypt(KeyId=key_id, Plaintext=b"through the proxy")["KeyId"].endswith(key_id)
    # With the proxies named, only they are believed: this client (127.0.0.1) is not one of them.
    settings.KMS_TRUSTED_PROXY_ADDRESSES = "192.0.2.0/24"
    with pytest.raises(ClientError) as refused:
        kms.encrypt(KeyId=key_id, Plaintext=b"straight to the server, claiming https")
    assert refused.value.response["Error"]["Code"] == "AccessDeniedException"
    settings.KMS_TRUSTED_PROXY_ADDRESSES = "192.0.2.0/24, 127.0.0.1"
    assert kms.encrypt(KeyId=key_id, Plaintext=b"through the proxy")["KeyId"].endswith(key_id)

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

from tests.conftest import REPO

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

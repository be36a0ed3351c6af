"""Start-up refuses to run insecurely: no root key with DEBUG off, or the default SECRET_KEY."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run(tmp_path: Path, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("KMS_", "SECRET_KEY", "DJANGO_", "DEBUG"))
    }
    env.update(KMS_DATA_DIR=str(tmp_path / "data"), DJANGO_SETTINGS_MODULE="kmsconsole.settings", **extra_env)
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )


def test_without_a_root_key_the_start_fails_and_says_how_to_make_one(tmp_path: Path) -> None:
    checked = run(tmp_path, "manage.py", "check", SECRET_KEY="x" * 50)
    assert checked.returncode != 0
    assert "kmsconsole.E001" in checked.stderr and "manage.py rootkey init" in checked.stderr
    served = run(tmp_path, "-c", "import kmsconsole.wsgi", SECRET_KEY="x" * 50)
    assert served.returncode != 0
    assert "ImproperlyConfigured" in served.stderr and "No root key is configured" in served.stderr


def test_rootkey_init_creates_a_private_key_once(tmp_path: Path) -> None:
    first = run(tmp_path, "manage.py", "rootkey", "init")
    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "data" / "root.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert len(bytes.fromhex(key_file.read_text().strip())) == 32
    assert "Generated a new root key" in first.stderr
    content = key_file.read_text()
    second = run(tmp_path, "manage.py", "rootkey", "init")
    assert "already configured" in second.stdout and key_file.read_text() == content
    assert run(tmp_path, "manage.py", "check").returncode == 0
    assert run(tmp_path, "-c", "import kmsconsole.wsgi").returncode == 0


def test_a_malformed_root_key_is_refused(tmp_path: Path) -> None:
    checked = run(tmp_path, "manage.py", "check", KMS_ROOT_KEY="abcd", SECRET_KEY="x" * 50)
    assert checked.returncode != 0 and "must be 256 bits" in checked.stderr


def test_the_default_secret_key_is_refused(tmp_path: Path) -> None:
    env = {"KMS_ROOT_KEY": "00" * 32}
    checked = run(tmp_path, "manage.py", "check", **env)
    assert checked.returncode != 0 and "kmsconsole.E002" in checked.stderr
    assert run(tmp_path, "manage.py", "check", SECRET_KEY="y" * 50, **env).returncode == 0

"""The engine is pure: importing it (and every module in it) loads no Django module."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import json, pkgutil, importlib, sys
import policies.engine
for module in pkgutil.walk_packages(policies.engine.__path__, "policies.engine."):
    importlib.import_module(module.name)
print(json.dumps(sorted(name for name in sys.modules if name == "django" or name.startswith("django."))))
"""


def test_engine_imports_no_django() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert json.loads(result.stdout) == []


def test_engine_source_mentions_no_django_import() -> None:
    for path in (ROOT / "policies" / "engine").glob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            assert not stripped.startswith(("import django", "from django")), f"{path.name}: {line}"

"""Where the code and the docs name a place in the grants service package, they name one of its modules
(`grants.services.<module>`, or `grants.services.<module>.<name>` with the name defined there), never the package
itself: its namespace only re-exports its modules' names, so a reference to it sends a reader (or a patch) to no
place in particular."""

from __future__ import annotations

import ast
import importlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]
# The package's name, but for `from grants.services import <module>`.
REFERENCE = re.compile(r"\bgrants\.services(?!\s+import\b)(?:\.([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*))?)?")
NOT_OURS = frozenset({".git", ".venv", "node_modules", "var"})


def tracked_files() -> list[Path]:
    """The tree's files as git tracks them (what a clean clone holds: never a local .venv, scratch file or data
    directory); where the tree is no git checkout (an unpacked archive), every file but the folders that are
    not ours."""
    git = shutil.which("git")
    if git is not None:
        listed = subprocess.run([git, "ls-files", "-z"], cwd=ROOT, capture_output=True, check=False)
        if listed.returncode == 0:
            return sorted(ROOT / name for name in listed.stdout.decode().split("\0") if name)
    found: list[Path] = []
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = sorted(name for name in subfolders if name not in NOT_OURS)
        found.extend(Path(folder, name) for name in files)
    return sorted(found)


def references() -> Iterator[tuple[str, str | None, str | None]]:
    """(file:line, module or None, name or None) for each reference in the tree's Python sources and Markdown
    (but this file, which names the package to say what is wrong)."""
    for path in tracked_files():
        if path == HERE or not path.name.endswith((".py", ".md")) or not path.is_file():
            continue
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for found in REFERENCE.finditer(line):
                yield f"{path.relative_to(ROOT)}:{number}", found.group(1), found.group(2)


def defined_in(module: ModuleType) -> set[str]:
    """The names `module` itself defines at its top level (functions, classes, assignments), not those it imports:
    a reference to an imported name sends the reader to a module that only passes it on."""
    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text())
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(
                found.id for target in targets for found in ast.walk(target) if isinstance(found, ast.Name)
            )
    return names


def test_each_reference_names_a_module_of_the_package_and_a_name_found_there() -> None:
    seen, wrong = 0, []
    for where, module_name, name in references():
        seen += 1
        if module_name is None:
            wrong.append(f"{where}: names the package grants.services, not the module meant")
            continue
        try:
            module = importlib.import_module(f"grants.services.{module_name}")
        except ModuleNotFoundError:
            wrong.append(f"{where}: grants.services.{module_name} is not a module of the package")
            continue
        if name is not None and name not in defined_in(module):
            wrong.append(
                f"{where}: {name} is not defined in {module.__name__} (imported there, or not there)"
            )
    assert seen > 20, "the references are found"
    assert not wrong, "\n".join(wrong)


def test_a_name_a_module_only_imports_is_not_found_there() -> None:
    """`grants.services.removal.errors` would pass a check of the module's namespace: errors is imported there, not
    defined there, so a reference to it sends the reader to the wrong module."""
    module = importlib.import_module("grants.services.removal")
    assert "errors" in vars(module)
    assert "errors" not in defined_in(module)
    assert "Key" in vars(module) and "Key" not in defined_in(module)

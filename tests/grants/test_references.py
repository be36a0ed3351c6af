"""Where the code and the docs name a place in the grants service package, they name one of its modules
(`grants.services.<module>`, or `grants.services.<module>.<name>` with the name found there), never the package
itself: its namespace only re-exports its modules' names, so a reference to it sends a reader (or a patch) to no
place in particular."""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parents[2]
# The package's name, but for `from grants.services import <module>`.
REFERENCE = re.compile(r"\bgrants\.services(?!\s+import\b)(?:\.([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*))?)?")
NOT_OURS = frozenset({".git", ".venv", "node_modules", "var"})


def references() -> Iterator[tuple[str, str | None, str | None]]:
    """(file:line, module or None, name or None) for each reference in the tree's Python sources and Markdown
    (but this file, which names the package to say what is wrong)."""
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = sorted(name for name in subfolders if name not in NOT_OURS)
        for path in sorted(Path(folder, name) for name in files if name.endswith((".py", ".md"))):
            if path == HERE:
                continue
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                for found in REFERENCE.finditer(line):
                    yield f"{path.relative_to(ROOT)}:{number}", found.group(1), found.group(2)


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
        if name is not None and name not in vars(module):
            wrong.append(f"{where}: {name} is not in {module.__name__}")
    assert seen > 20, "the references are found"
    assert not wrong, "\n".join(wrong)

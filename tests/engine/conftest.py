"""Engine tests need no Django. Benchmark-marked tests run only when asked for (``-m benchmark``)."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "benchmark" in (config.getoption("markexpr", "") or ""):
        return
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        mine = HERE in Path(str(item.path)).resolve().parents
        (dropped if mine and item.get_closest_marker("benchmark") else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep

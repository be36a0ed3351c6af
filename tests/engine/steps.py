"""Work counted in Python line events instead of seconds.

A cost test built on the clock fails on a slow or shared machine and passes a regression on a fast one; the number
of lines the interpreter runs is the same on any machine under any load. Code running in C (a regex engine, a hash)
counts nothing, so a test of that kind must also show the work stays in Python (e.g. on the NFA, not a regex).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

T = TypeVar("T")


def line_events(call: Callable[[], T]) -> tuple[T, int]:
    """`call()`'s result and the number of line events it ran, in every frame it entered."""
    count = 0

    def local(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "line":
            count += 1
        return local

    def tracer(frame: FrameType, event: str, arg: Any) -> Any:
        return local

    previous = sys.gettrace()
    sys.settrace(tracer)
    try:
        result = call()
    finally:
        sys.settrace(previous)
    return result, count

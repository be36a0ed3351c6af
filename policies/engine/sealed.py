"""``Sealed``: a base for slot classes that become read-only once built (compiled policies, grant indexes).

Their internal memo dicts still fill as they are used; nothing else can change after ``_seal()``.
"""

from __future__ import annotations


class Sealed:
    __slots__ = ("_sealed",)

    def __setattr__(self, name: str, value: object) -> None:
        if getattr(self, "_sealed", False):
            raise AttributeError(f"{type(self).__name__} is immutable")
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _seal(self) -> None:
        object.__setattr__(self, "_sealed", True)

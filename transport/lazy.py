"""Package attributes loaded on first access: how a package re-exports classes whose modules
import something heavy (Thespian) without importing it at ``import package`` time."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping


def lazy_getattr(package: str, table: Mapping[str, str]) -> Callable[[str], object]:
    """A module ``__getattr__`` for ``package``: ``name`` is imported from the module
    ``table[name]`` names on first access (any thread; Python's import lock serialises it);
    any other name raises AttributeError as usual."""

    def getattr_(name: str) -> object:
        module = table.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module), name)

    return getattr_

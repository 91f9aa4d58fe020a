"""Package attributes imported on first use (PEP 562 module ``__getattr__``).

A package whose ``__init__`` re-exports names from heavy submodules (torch, pandas, scipy) would
make every import of one light sibling pay for all of them: ``kedro models list`` reads the
registry through ``deployment.registry`` and must not import torch through ``deployment.account``.
Such a package lists where each public name lives; the submodule is imported when the name is
first read (``from package import Name`` included), then the name is an ordinary attribute.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(
    package: str, where: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the module ``package``: ``where`` maps each public name to the
    relative submodule that defines it (``{"PaperAccount": ".account"}``); the package's ``__all__``
    lists the same names."""
    namespace = sys.modules[package].__dict__
    listed = set(namespace.get("__all__", ()))
    if listed != set(where):
        raise ImportError(
            f"{package}: __all__ and the lazily imported names differ: {sorted(listed ^ set(where))}"
        )

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name], package), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return __getattr__, __dir__

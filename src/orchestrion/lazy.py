"""Packages whose exported names are imported on first use (so `orchestrion --help` stays light)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence


def lazy_exports(package: str, names_by_module: Mapping[str, Sequence[str]]
                 ) -> tuple[Callable[[str], object], list[str]]:
    """A module ``__getattr__`` for `package` and its ``__all__``: each exported name is
    imported from its submodule on first use, so importing the package stays light."""
    homes = {name: module for module, names in names_by_module.items() for name in names}

    def __getattr__(name: str) -> object:
        if name not in homes:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{homes[name]}"), name)

    return __getattr__, sorted(homes)

"""Package faces that import a member's module only when the member is first used.

A command imports the package (``from xenctrl import xc_physinfo``) and pays for the
modules it names, not for every module the package offers: a process starts as fast as
the least it needs.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def face(package: str, homes: Mapping[str, Sequence[str]]) -> Callable[[str], Any]:
    """The module ``__getattr__`` (PEP 562) of ``package``, whose members live in the
    modules ``homes`` names (module -> member names). The face still lists its members in
    a literal ``__all__`` and imports them for type checkers under ``TYPE_CHECKING``."""
    where = {name: module for module, names in homes.items() for name in names}

    def __getattr__(name: str) -> Any:
        try:
            module = where[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)  # found as a plain attribute next time
        return value

    return __getattr__

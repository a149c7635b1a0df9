"""The xenstore's errors: a refused request carries one of xs_wire.h's error names."""

from __future__ import annotations

from hypervisor_model.schema import SchemaError
from xenhost.xenstore.wire import ERRNO_OF


class XenstoreError(OSError):
    """A request xenstored refuses, named as on the wire (EACCES, ENOENT, EAGAIN, ...);
    ``errno`` is this system's number for that name, as libxenstore sets it."""

    def __init__(self, name: str, detail: str = "") -> None:
        super().__init__(ERRNO_OF[name], f"{name}: {detail}" if detail else name)
        self.name = name


class XenstoreStateError(SchemaError):
    """A saved tree that cannot be loaded: one line saying where and what is wrong."""

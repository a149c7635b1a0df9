"""Helpers for the xenstore tests: a guest's handle and the errors a call raises."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from xenhost.xenstore import Store, XenstoreError, XsHandle


def guest(store: Store, domid: int) -> XsHandle:
    """A handle speaking for an unprivileged domain, as its ring connection would."""
    return XsHandle.local(store, domid)


def error_of(call: Callable[..., Any], *args: Any, **kwargs: Any) -> str:
    """The xenstore error name ``call`` fails with."""
    with pytest.raises(XenstoreError) as info:
        call(*args, **kwargs)
    return info.value.name


def events(xs: XsHandle) -> list[tuple[str, str]]:
    """Every watch event waiting now."""
    found = []
    while (event := xs.read_watch(timeout=0)) is not None:
        found.append(event)
    return found

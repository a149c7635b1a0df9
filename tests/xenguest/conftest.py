"""Fixtures for the libxenguest tests: ``calls`` records the xenctrl calls meminit and the
claim code make (the gfn lists are ctypes arrays the trace shows only as addresses, so the
calls are recorded where xenguest makes them; record shapes in xg_helpers.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from xg_helpers import Call

import xenguest.claims
import xenguest.meminit
from hypervisor_model.public.domctl import XEN_DOMCTL_set_address_size


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Call]]:
    """Record every xenctrl call meminit and the claim code make, in order."""
    log: list[Call] = []

    def wrap(module: Any, name: str, record: Callable[..., Call]) -> None:
        real = getattr(module, name)

        def spy(*args: Any, **kwargs: Any) -> Any:
            log.append(record(*args, **kwargs))
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)

    wrap(
        xenguest.meminit,
        "xc_domain_populate_physmap",
        lambda xch, d, nr, order, flags, ext: ("populate", nr, order, ext[0], flags),
    )
    wrap(
        xenguest.meminit,
        "xc_domain_populate_physmap_exact",
        lambda xch, d, nr, order, flags, ext: ("exact", nr, order, ext[0], flags),
    )
    wrap(xenguest.claims, "xc_domain_claim_pages", lambda xch, d, nr: ("claim_pages", nr))
    wrap(
        xenguest.claims,
        "xc_domain_claim_memory",
        lambda xch, d, mode, nr, entries: (
            "claim_memory",
            {int(e.target): int(e.pages) for e in entries[:nr]},
        ),
    )

    def address_size(xch: Any, cmd: int, domid: int, layout: Any = None, **kw: Any) -> Call:
        assert cmd == XEN_DOMCTL_set_address_size
        return ("set_address_size", kw["size"])

    wrap(xenguest.meminit, "do_domctl", address_size)
    yield log

"""Helpers for the libxenguest tests: a domain as libxl prepares it, the shapes of the calls
meminit makes (recorded by the ``calls`` fixture in conftest.py), and readers of host state.

Record tuples: ``("populate" | "exact", nr_extents, order, first gfn, mem_flags)`` for
xc_domain_populate_physmap / _exact, ``("claim_pages", nr_pages)``,
``("claim_memory", {target: pages})`` for a claim-set SET and ``("set_address_size", bits)``.
"""

from __future__ import annotations

from typing import Any

import hypervisor_model
from xenctrl.api import Xenctrl
from xenctrl.domain import (
    default_createdomain,
    xc_domain_create,
    xc_domain_getinfolist,
    xc_domain_setmaxmem,
)
from xenctrl.handle import xc_interface
from xenguest.storm import pages_by_node

Call = tuple[Any, ...]
SP_2M, SP_1G = 512, 262144  # pages per 2 MiB and per 1 GiB extent
GiB_KB = 1 << 20


def new_domain(xch: xc_interface, max_kb: int, hvm: bool = True) -> int:
    """Create a domain and set max_mem as libxl does (max + LIBXL_MAXMEM_CONSTANT 1 MiB)."""
    domid = xc_domain_create(xch, config=default_createdomain(hvm))
    xc_domain_setmaxmem(xch, domid, max_kb + 1024)
    return domid


def two_meg_calls(first_gfn: int, calls: int, flags: int = 0, per_call: int = 4) -> list[Call]:
    """``calls`` consecutive non-exact populates of ``per_call`` 2 MiB extents each."""
    step = per_call * SP_2M
    return [("populate", per_call, 9, first_gfn + i * step, flags) for i in range(calls)]


def claim_calls(log: list[Call]) -> list[Call]:
    return [c for c in log if c[0] in ("claim_pages", "claim_memory")]


def populate_calls(log: list[Call]) -> list[Call]:
    return [c for c in log if c[0] in ("populate", "exact")]


def placement(xch: xc_interface, domid: int) -> dict[int, int]:
    """The domain's pages per node, nodes with none left out (Xen's 'u' debug-key dump)."""
    return {n: p for n, p in pages_by_node(xch).get(domid, {}).items() if p}


def host_state(hv: hypervisor_model.Hypervisor) -> tuple[Any, ...]:
    """What an administrator can see of the host's memory: physinfo, numainfo and every
    domain's claim set and tot_pages."""
    with Xenctrl(hv) as ctl:
        domains = xc_domain_getinfolist(ctl.xch, 0, 64)
        return (
            ctl.physinfo(),
            ctl.numainfo().nodes,
            [(int(i.domain), int(i.tot_pages)) for i in domains],
            [ctl.domain_get_claims(int(i.domain)) for i in domains],
        )

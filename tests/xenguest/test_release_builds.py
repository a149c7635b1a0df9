"""The domain builder on a Xen 4.17 host: its handle speaks 4.17, and every build ends
exactly as on master (the two releases differ only in how the calls are spelt).

Host: two nodes of 4096 MiB. A 2 GiB HVM guest is (2048 - 8) MiB * 256 - 32 (VGA hole)
= 522208 pages claimed, plus 16 special pages populated after meminit: 522224.
"""

from __future__ import annotations

from typing import Any

import pytest
from xg_helpers import GiB_KB, host_state, new_domain, placement

import hypervisor_model
from xenctrl.api import Xenctrl
from xenctrl.domain import xc_get_tot_pages
from xenguest import hvm_layout, vnuma_hvm, xc_dom_allocate, xc_dom_boot_mem_init, xc_dom_mem_init


def build_both(mode: str, vnuma: bool) -> dict[str, Any]:
    """One 2 GiB HVM build per release; what an administrator then sees of each host."""
    seen = {}
    for xen in ("master", "4.17"):
        hv = hypervisor_model.boot(nodes=[4096, 4096], xen=xen)
        with Xenctrl(hv) as ctl:
            assert ctl.xch.release.name == xen
            dom = xc_dom_allocate(ctl.xch, new_domain(ctl.xch, 2 * GiB_KB))
            dom.claim_mode = mode  # type: ignore[assignment]
            hvm_layout(dom, 2 * GiB_KB)
            if vnuma:
                vnuma_hvm(dom, [GiB_KB, GiB_KB], [0, 1], 8192)
            xc_dom_boot_mem_init(dom)
            seen[xen] = (placement(ctl.xch, dom.guest_domid), host_state(hv))
        hv.check_invariants()
    return seen


@pytest.mark.parametrize(("mode", "vnuma"), [("legacy", False), ("numa", True), ("off", False)])
def test_an_hvm_build_ends_alike_on_both_releases(mode: str, vnuma: bool) -> None:
    seen = build_both(mode, vnuma)
    assert seen["4.17"] == seen["master"]
    pages = seen["4.17"][0]
    assert sum(pages.values()) == 522208  # meminit's pages; no claim left outstanding
    assert seen["4.17"][1][0].outstanding_pages == 0


@pytest.mark.xen_host(xen="4.17")
def test_a_32_bit_pv_guest_on_417(xch: Any) -> None:
    """xen-3.0-x86_32p: set_address_size 32, then 64 MiB = 16384 pages."""
    dom = xc_dom_allocate(xch, new_domain(xch, 64 << 10, hvm=False), "xen-3.0-x86_32p")
    xc_dom_mem_init(dom, 64)
    xc_dom_boot_mem_init(dom)
    assert xc_get_tot_pages(xch, dom.guest_domid) == 16384

"""Claim modes of the domain builder (xenguest/claims.py): "numa" with a preferred node and
no vNUMA, and the promise of every mode that a refused claim changes nothing on the host.

Host: the default two nodes of 4096 MiB; node 0 has 1048573 free pages (MFN 0 is never
given to the allocator, dom0's structure and shared-info pages are Xen's), node 1 1048572
(its first 4 pages hold its free lists), 2097145 in all. A new HVM domain costs Xen 130
pages of node 0 and 128 of node 1 (structure, shared info, a 256-page HAP pool taken
round-robin). A 2 GiB HVM guest claims (2048 - 8) MiB * 256 - 32 (VGA hole) = 522240 - 32 =
522208 pages.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest
from xg_helpers import GiB_KB, host_state, new_domain, placement

import hypervisor_model
from xenctrl.api import HOST, Xenctrl
from xenctrl.domain import (
    xc_domain_node_getaffinity,
    xc_domain_populate_physmap_exact,
    xc_get_tot_pages,
)
from xenctrl.handle import xc_interface
from xenguest import (
    XenguestError,
    hvm_layout,
    vnuma_hvm,
    xc_dom_allocate,
    xc_dom_boot_mem_init,
    xc_dom_image,
    xc_dom_mem_init,
)

CLAIM_2G = 522208
NODE0_FREE = 1048573


def preferred_node_guest(xch: xc_interface, node: int) -> xc_dom_image:
    dom = xc_dom_allocate(xch, new_domain(xch, 2 * GiB_KB))
    dom.claim_mode = "numa"
    dom.claim_on_node = node
    hvm_layout(dom, 2 * GiB_KB)
    return dom


def claims_when_populating(
    hv: hypervisor_model.Hypervisor, ctl: Xenctrl, domid: int
) -> list[dict[int, int]]:
    """The claim set installed when the first extent (low memory, gfn 0) is populated."""
    seen: list[dict[int, int]] = []
    hv.faults.at_populate(domid, 0, lambda: seen.append(ctl.domain_get_claims(domid)))
    return seen


def test_preferred_node_claims_everything_there_when_it_fits(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface, xenctrl_api: Xenctrl
) -> None:
    """522208 <= 1048573 - 130 free on node 0: the whole claim on node 0, affinity node 0 only, and
    every page lands there."""
    dom = preferred_node_guest(xch, 0)
    seen = claims_when_populating(xen_host, xenctrl_api, dom.guest_domid)
    xc_dom_boot_mem_init(dom)
    assert seen == [{HOST: 0, 0: CLAIM_2G}]
    assert xc_domain_node_getaffinity(xch, dom.guest_domid)[0] == 0b01
    assert placement(xch, dom.guest_domid) == {0: CLAIM_2G}
    assert xenctrl_api.physinfo().outstanding_pages == 0


def test_preferred_node_claims_what_fits_and_the_shortfall_host_wide(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface, xenctrl_api: Xenctrl
) -> None:
    """Another domain holds a claim of 786432 pages (3 GiB) on node 0, leaving 1048573 -
    130 - 130 (both domains' Xen pages) - 786432 = 261881 claimable there: the set is
    {0: 261881, HOST: 522208 - 261881 = 260327} (host-wide, plenty is unclaimed). The other
    claim survives the build untouched. Placement: allocations go to node 0 (affinity) while
    261881 minus what the guest took there covers the extent: 160 + 320 low pages, then 510
    of the 2 MiB extents (261401 / 512 = 510.5) leave 281 pages of room, so the other
    1019 - 510 = 509 extents fall back to node 1: {0: 480 + 510*512 = 261600,
    1: 509*512 = 260608}."""
    other = new_domain(xch, 4 * GiB_KB)
    xenctrl_api.domain_claim_memory(other, {0: 786432})
    dom = preferred_node_guest(xch, 0)
    seen = claims_when_populating(xen_host, xenctrl_api, dom.guest_domid)
    xc_dom_boot_mem_init(dom)
    assert seen == [{HOST: 260327, 0: 261881}]
    assert xc_get_tot_pages(xch, dom.guest_domid) == CLAIM_2G
    assert xenctrl_api.domain_get_claims(other) == {HOST: 0, 0: 786432}
    assert xenctrl_api.physinfo().outstanding_pages == 786432
    assert placement(xch, dom.guest_domid) == {0: 261600, 1: 260608}


def test_preferred_node_for_a_pv_guest(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface, xenctrl_api: Xenctrl
) -> None:
    """PV 2 GiB = 524288 pages on preferred node 1 (1048572 free): all claimed there."""
    dom = xc_dom_allocate(xch, new_domain(xch, 2 * GiB_KB, hvm=False), "xen-3.0-x86_64")
    dom.claim_mode, dom.claim_on_node = "numa", 1
    xc_dom_mem_init(dom, 2048)
    seen = claims_when_populating(xen_host, xenctrl_api, dom.guest_domid)
    xc_dom_boot_mem_init(dom)
    assert seen == [{HOST: 0, 1: 524288}]
    assert placement(xch, dom.guest_domid) == {1: 524288}


# -- a refused claim changes nothing ---------------------------------------------------------------


def hvm_8g(xch: xc_interface, domid: int, mode: str) -> xc_dom_image:
    dom = xc_dom_allocate(xch, domid)
    dom.claim_mode = mode  # type: ignore[assignment]
    hvm_layout(dom, 8 * GiB_KB)
    return dom


def legacy_hvm(xch: xc_interface, domid: int) -> xc_dom_image:
    return hvm_8g(xch, domid, "legacy")


def numa_vnuma_hvm(xch: xc_interface, domid: int) -> xc_dom_image:
    dom = hvm_8g(xch, domid, "numa")
    vnuma_hvm(dom, [4 * GiB_KB, 4 * GiB_KB], [0, 1], 8192)
    return dom


def numa_preferred_node(xch: xc_interface, domid: int) -> xc_dom_image:
    dom = hvm_8g(xch, domid, "numa")
    dom.claim_on_node = 0
    return dom


def legacy_pv(xch: xc_interface, domid: int) -> xc_dom_image:
    dom = xc_dom_allocate(xch, domid, "xen-3.0-x86_64")
    xc_dom_mem_init(dom, 8192)
    return dom


# Before the build: d1 (HVM) owns one 2 MiB extent on node 0 and claims {1: 524288}; free
# 2097145 - 258 - 512 = 2096375 less the guest's own Xen pages, unclaimed at most 2096375 -
# 524288 = 1572087, on node 1 fewer than 524284 unclaimed. An 8 GiB guest needs 2095072
# (HVM) / 2097152 (PV) > 1572087 host-wide, or 1048576 on node 1 > 524284 (vNUMA), or, on
# node 0 first, still more than is unclaimed host-wide.
REFUSED = {
    "legacy-hvm": legacy_hvm,
    "numa-vnuma-hvm": numa_vnuma_hvm,
    "numa-preferred-node": numa_preferred_node,
    "legacy-pv": legacy_pv,
}


@pytest.mark.parametrize("make", REFUSED.values(), ids=REFUSED.keys())
def test_refused_claim_leaves_the_host_exactly_as_it_was(
    xen_host: hypervisor_model.Hypervisor,
    xch: xc_interface,
    xenctrl_api: Xenctrl,
    make: Callable[[xc_interface, int], xc_dom_image],
) -> None:
    """A build refused at claim time: ENOMEM, nothing populated, and physinfo, numainfo, every
    domain's tot_pages and claim set read the same before and after."""
    other = new_domain(xch, 4 * GiB_KB)
    xc_domain_populate_physmap_exact(xch, other, 1, 9, 0x20100, [0])  # exact node 0
    xenctrl_api.domain_claim_memory(other, {1: 524288})
    domid = new_domain(xch, 8 * GiB_KB, hvm=make is not legacy_pv)
    dom = make(xch, domid)
    before = host_state(xen_host)
    with pytest.raises(XenguestError) as e:
        xc_dom_boot_mem_init(dom)
    assert (e.value.errno, e.value.populated_pages) == (errno.ENOMEM, 0)
    assert host_state(xen_host) == before
    assert xc_get_tot_pages(xch, domid) == 0

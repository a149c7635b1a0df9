"""meminit_pv (tools/libs/guest/xg_dom_x86.c): address size, claim total_pages, 2 MiB extents
in batches of 512 (short counts accepted), the rest as exact 4 KiB chunks, then cancel.

Hosts are the default two nodes of 4096 MiB: node 0 = MFNs [0, 0x100000), node 1 =
[0x100000, 0x200000). XENMEMF_exact_node(0) = 0x20100, (1) = 0x20200 (public/memory.h).
"""

from __future__ import annotations

import errno

import pytest
from xg_helpers import Call, GiB_KB, claim_calls, new_domain, placement, populate_calls

import hypervisor_model
from xenctrl.domain import xc_domain_destroy, xc_get_tot_pages
from xenctrl.handle import xc_interface
from xenctrl.misc import xc_physinfo
from xenguest import (
    XenguestError,
    vnuma_pv,
    xc_dom_allocate,
    xc_dom_boot_mem_init,
    xc_dom_image,
    xc_dom_mem_init,
)

EXACT0, EXACT1 = 0x20100, 0x20200
NODE1_FIRST_MFN = 0x100000  # 4096 MiB * 256


def pv_guest(
    xch: xc_interface, mem_mb: int, mode: str = "legacy", guest_type: str = "xen-3.0-x86_64"
) -> xc_dom_image:
    dom = xc_dom_allocate(xch, new_domain(xch, mem_mb << 10, hvm=False), guest_type)
    dom.claim_mode = mode  # type: ignore[assignment]
    xc_dom_mem_init(dom, mem_mb)
    return dom


def p2m_matches_the_m2p(hv: hypervisor_model.Hypervisor, dom: xc_dom_image) -> bool:
    """Every (gfn, pages, mfn) run of pv_p2m is owned by the guest with Xen's M2P pointing
    back at those gfns, and the runs cover gfn 0..p2m_size-1 without a gap."""
    d = hv.find_domain(dom.guest_domid)
    assert d is not None
    cursor = 0
    for gfn, pages, mfn in dom.pv_p2m:
        if gfn != cursor or d.pages.covered(mfn, mfn + pages) != pages:
            return False
        for m in (mfn, mfn + pages - 1):  # both ends of the run
            run = d.pages.find(m)
            if run is None or run.value_at(m) != gfn + (m - mfn):
                return False
        cursor += pages
    return cursor == dom.p2m_size


def test_2_gib_pv_populates_two_batches_of_512_superpages(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface, calls: list[Call]
) -> None:
    """2 GiB = 524288 pages = 1024 superpages: batches of 512 at gfn 0 and 512*512 = 0x40000;
    no 4 KiB phase. Address size 64 comes first, the claim is total_pages."""
    dom = pv_guest(xch, 2048)
    xc_dom_boot_mem_init(dom)
    assert calls == [
        ("set_address_size", 64),
        ("claim_pages", 524288),
        ("populate", 512, 9, 0, 0),
        ("populate", 512, 9, 0x40000, 0),
        ("claim_pages", 0),
    ]
    assert xc_get_tot_pages(xch, dom.guest_domid) == 524288
    assert (dom.stats.pages_4k, dom.stats.pages_2m, dom.stats.pages_1g) == (0, 1024, 0)
    assert dom.p2m_size == 524288
    assert all(mfn % 512 == 0 for _, _, mfn in dom.pv_p2m)  # superpage MFNs
    assert p2m_matches_the_m2p(xen_host, dom)
    assert int(xc_physinfo(xch).outstanding_pages) == 0


def test_pv_tail_below_2_mib_goes_as_4_kib(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface, calls: list[Call]
) -> None:
    """2051 MiB = 525056 pages = 1025 superpages + 256 pages: batches 512, 512, 1 (at gfn
    0, 0x40000, 0x80000), then one exact call of 256 pages at 1025*512 = 0x80200."""
    dom = pv_guest(xch, 2051)
    xc_dom_boot_mem_init(dom)
    assert populate_calls(calls) == [
        ("populate", 512, 9, 0, 0),
        ("populate", 512, 9, 0x40000, 0),
        ("populate", 1, 9, 0x80000, 0),
        ("exact", 256, 0, 0x80200, 0),
    ]
    assert claim_calls(calls) == [("claim_pages", 525056), ("claim_pages", 0)]
    assert xc_get_tot_pages(xch, dom.guest_domid) == 525056
    assert (dom.stats.pages_4k, dom.stats.pages_2m) == (256, 1025)
    assert p2m_matches_the_m2p(xen_host, dom)


def test_short_superpage_batch_leaves_the_rest_to_4_kib(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface, calls: list[Call]
) -> None:
    """64 MiB = 32 superpages in one batch; extent 30 (gfn 30*512 = 0x3C00) fails, so the
    call returns 30 and the last 2 superpages' 1024 pages are one exact 4 KiB call."""
    dom = pv_guest(xch, 64)
    xen_host.faults.fail_populate_at(dom.guest_domid, 0x3C00)
    xc_dom_boot_mem_init(dom)
    assert populate_calls(calls) == [("populate", 32, 9, 0, 0), ("exact", 1024, 0, 0x3C00, 0)]
    assert xc_get_tot_pages(xch, dom.guest_domid) == 16384
    assert (dom.stats.pages_4k, dom.stats.pages_2m) == (1024, 30)
    assert p2m_matches_the_m2p(xen_host, dom)


def test_2_vnode_pv_populates_each_vnode_on_its_pnode(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface, calls: list[Call]
) -> None:
    """vnodes of 1024 MiB on pnodes 0 and 1: ranges [0, 1 GiB) and [1 GiB, 2 GiB), each one
    batch of 512 superpages with XENMEMF_exact_node(pnode)."""
    dom = pv_guest(xch, 2048)
    vnuma_pv(dom, [GiB_KB, GiB_KB], [0, 1])
    xc_dom_boot_mem_init(dom)
    assert populate_calls(calls) == [
        ("populate", 512, 9, 0, EXACT0),
        ("populate", 512, 9, 0x40000, EXACT1),
    ]
    assert placement(xch, dom.guest_domid) == {0: 262144, 1: 262144}
    on_node1 = {gfn < 0x40000: mfn >= NODE1_FIRST_MFN for gfn, _, mfn in dom.pv_p2m}
    assert on_node1 == {True: False, False: True}  # vnode 0 below node 1's MFNs, vnode 1 in
    assert p2m_matches_the_m2p(xen_host, dom)


def test_2_vnode_pv_claims_per_node_in_numa_mode(xch: xc_interface, calls: list[Call]) -> None:
    """numa mode: one claim-set entry per pnode, 262144 pages each."""
    dom = pv_guest(xch, 2048, "numa")
    vnuma_pv(dom, [GiB_KB, GiB_KB], [0, 1])
    xc_dom_boot_mem_init(dom)
    assert claim_calls(calls) == [("claim_memory", {0: 262144, 1: 262144}), ("claim_pages", 0)]


def test_32_bit_pv_sets_address_size_32(xch: xc_interface, calls: list[Call]) -> None:
    """x86_compat: "xen-3.0-x86_32p" -> XEN_DOMCTL_set_address_size 32, before the claim."""
    dom = pv_guest(xch, 64, guest_type="xen-3.0-x86_32p")
    xc_dom_boot_mem_init(dom)
    assert calls[:2] == [("set_address_size", 32), ("claim_pages", 16384)]
    assert xc_get_tot_pages(xch, dom.guest_domid) == 16384


def test_claim_mode_off_still_cancels_at_the_end(xch: xc_interface, calls: list[Call]) -> None:
    """No claim without claim_enabled, but the final claim_pages(0) runs regardless."""
    dom = pv_guest(xch, 2048, "off")
    xc_dom_boot_mem_init(dom)
    assert claim_calls(calls) == [("claim_pages", 0)]
    assert xc_get_tot_pages(xch, dom.guest_domid) == 524288


def test_refused_claim_returns_at_once(xch: xc_interface, calls: list[Call]) -> None:
    """16 GiB = 4194304 pages > 2097151 free: ENOMEM, and Xen returns without populating and
    without the cancel (there is no claim to cancel)."""
    dom = pv_guest(xch, 16384)
    with pytest.raises(XenguestError) as e:
        xc_dom_boot_mem_init(dom)
    assert (e.value.step, e.value.errno, e.value.populated_pages) == ("meminit_pv", errno.ENOMEM, 0)
    assert calls == [("set_address_size", 64), ("claim_pages", 4194304)]
    assert xc_get_tot_pages(xch, dom.guest_domid) == 0
    assert int(xc_physinfo(xch).outstanding_pages) == 0


def test_vnuma_page_count_mismatch_after_the_claim(xch: xc_interface, calls: list[Call]) -> None:
    """Xen checks the ranges after claiming: 1024 MiB of vnodes for 2048 MiB is 0x40000 !=
    0x80000, EINVAL, and the claim of 524288 pages stays for the toolstack's destroy."""
    dom = pv_guest(xch, 2048)
    vnuma_pv(dom, [GiB_KB >> 1, GiB_KB >> 1], [0, 1])
    with pytest.raises(XenguestError, match="0x40000 != 0x80000") as e:
        xc_dom_boot_mem_init(dom)
    assert e.value.errno == errno.EINVAL
    assert claim_calls(calls) == [("claim_pages", 524288)]
    assert int(xc_physinfo(xch).outstanding_pages) == 524288
    xc_domain_destroy(xch, dom.guest_domid)  # libxl's destroy drops it
    assert int(xc_physinfo(xch).outstanding_pages) == 0


def test_populate_failure_leaves_the_claim_to_the_destroy(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface, calls: list[Call]
) -> None:
    """64 MiB: superpage 30 and the first page of the 4 KiB fallback fail: EBUSY at gfn 0x3C00
    with 30*512 = 15360 pages populated. As Xen, the rest of the claim, 16384 - 15360 =
    1024 pages, stays staked until the toolstack destroys the domain; then the host is as
    before the build."""
    free = int(xc_physinfo(xch).free_pages)
    dom = pv_guest(xch, 64)
    d = dom.guest_domid
    faults = xen_host.faults
    faults.at_populate(d, 0x3C00, lambda: faults.fail_next_allocations(2, domid=d))
    with pytest.raises(XenguestError) as e:
        xc_dom_boot_mem_init(dom)
    err = e.value
    assert (err.step, err.errno, err.gfn, err.node) == ("meminit_pv", errno.EBUSY, 0x3C00, None)
    assert err.populated_pages == 15360 == xc_get_tot_pages(xch, d)
    assert calls[-1] == ("exact", 1024, 0, 0x3C00, 0)
    assert int(xc_physinfo(xch).outstanding_pages) == 1024
    xc_domain_destroy(xch, d)
    assert (int(xc_physinfo(xch).outstanding_pages), int(xc_physinfo(xch).free_pages)) == (0, free)


@pytest.mark.xen_host(nodes=[131072, 65536])
def test_32_bit_pv_memory_stays_below_128_gib(xch: xc_interface) -> None:
    """switch_compat (xen/arch/x86/pv/domain.c): with max_page 192 GiB = 50331648 frames above
    MACH2PHYS_COMPAT_NR_ENTRIES = (0xFFE00000 - 0xF5800000) >> 2 = 43515904, a 32-bit PV
    guest gets physaddr_bitsize = fls(43515904) - 1 + 12 = 37, and alloc_domheap_pages clamps
    every allocation below 2^37 bytes = MFN 0x2000000, the end of node 0 (128 GiB). So all
    16384 pages of a 64 MiB guest come from node 0, none from node 1."""
    dom = pv_guest(xch, 64, guest_type="xen-3.0-x86_32p")
    xc_dom_boot_mem_init(dom)
    assert placement(xch, dom.guest_domid) == {0: 16384}
    assert all(mfn + pages <= 0x2000000 for _, pages, mfn in dom.pv_p2m)

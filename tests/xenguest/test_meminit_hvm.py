"""meminit_hvm (tools/libs/guest/xg_dom_x86.c) and the geometry libxl__build_hvm hands it.

Every expected number is worked out by hand in the comments. Shorthands:
1 GiB = 0x40000 pages = one order-18 extent; a "4x2M" call = 4 order-9 extents = 2048 pages.
XENMEMF_exact_node(n) = XENMEMF_node(n) | XENMEMF_exact_node_request = (n+1) << 8 | 1 << 17,
so node 0 -> 0x20100 and node 1 -> 0x20200 (public/memory.h).
"""

from __future__ import annotations

import errno

import pytest
from xg_helpers import (
    Call,
    GiB_KB,
    claim_calls,
    new_domain,
    placement,
    populate_calls,
    two_meg_calls,
)

import hypervisor_model
from hypervisor_model.public.memory import XENMEMF_populate_on_demand
from xenctrl.api import HOST
from xenctrl.domain import xc_domain_get_pod_target, xc_domain_getinfo_single, xc_get_tot_pages
from xenctrl.handle import xc_interface
from xenctrl.misc import xc_physinfo
from xenguest import (
    XC_NUMA_NO_NODE,
    XenguestError,
    hvm_layout,
    vnuma_hvm,
    xc_dom_allocate,
    xc_dom_boot_mem_init,
    xc_dom_image,
    xen_vmemrange,
)

EXACT0, EXACT1 = 0x20100, 0x20200  # XENMEMF_exact_node(0), XENMEMF_exact_node(1)
TARGET_4G = 1046528  # (4 GiB - 8 MiB video) / 4 KiB = 4088 MiB * 256
CLAIM_4G = TARGET_4G - 0x20  # target_pages - vga_hole_size


def hvm_4g(xch: xc_interface, mode: str = "legacy") -> xc_dom_image:
    domid = new_domain(xch, 4 * GiB_KB)
    dom = xc_dom_allocate(xch, domid)
    dom.claim_mode = mode  # type: ignore[assignment]
    hvm_layout(dom, 4 * GiB_KB)
    return dom


def domain_outstanding(xch: xc_interface, domid: int) -> int:
    return int(xc_domain_getinfo_single(xch, domid).outstanding_pages)


# The populate calls of a 4 GiB HVM guest, range 0 = pfns [0, 0xF0000), range 1 = pfns
# [0x100000, 0x10F800), worked through the loop of meminit_hvm by hand:
#   low memory: one exact call of 0xA0 order-0 pfns 0..0x9F (VGA hole 0xA0-0xBF skipped);
#   cur=0xC0: 1 GiB boundary 0x40000 is 0x3FF40 away, 2 MiB boundary 0x200 is 0x140 = 320
#     pages away and 0xC0 is not 2 MiB aligned -> 320 exact 4 KiB pages;
#   cur=0x200..0x3FA00: (0x3FA00-0x200)/0x800 = 127 calls of 4x2M;
#   cur=0x3FA00: 0x600 = 1536 pages to the 1 GiB boundary -> one call of 3x2M;
#   cur=0x40000, 0x80000: aligned and 0x40000 pages left, window clear of the MMIO hole
#     [0xF0000000, 4 GiB) -> one 1 GiB extent each;
#   cur=0xC0000: 0x30000 pages left, not a 1 GiB multiple -> 0x30000/0x800 = 96 calls of 4x2M;
#   range 1: 0xF800 pages, not a 1 GiB multiple -> 0xF800/0x800 = 31 calls of 4x2M.
def range0_calls(flags: int, low_flags: int) -> list[Call]:
    return [
        ("exact", 0xA0, 0, 0, low_flags),
        ("exact", 320, 0, 0xC0, flags),
        *two_meg_calls(0x200, 127, flags),
        ("populate", 3, 9, 0x3FA00, flags),
        ("populate", 1, 18, 0x40000, flags),
        ("populate", 1, 18, 0x80000, flags),
        *two_meg_calls(0xC0000, 96, flags),
    ]


HVM_4G_CALLS = [*range0_calls(0, 0), *two_meg_calls(0x100000, 31)]


# -- geometry (libxl__build_hvm) ----------------------------------------------------------------


def test_hvm_layout_of_4_gib_moves_256_mib_above_4_gib(xch: xc_interface) -> None:
    """mem = 4 GiB - 8 MiB = 0xFF800000; the 256 MiB MMIO hole starts at 0xF0000000
    (HVM_BELOW_4G_MMIO_START), so highmem_end = 4 GiB + 0xFF800000 - 0xF0000000."""
    dom = hvm_4g(xch)
    geometry = (
        dom.total_pages,
        dom.target_pages,
        dom.lowmem_end,
        dom.highmem_end,
        dom.mmio_start,
        dom.mmio_size,
        dom.vga_hole_size,
    )
    assert geometry == (TARGET_4G, TARGET_4G, 0xF0000000, 0x10F800000, 0xF0000000, 1 << 28, 32)
    assert dom.device_model is True


def test_pvh_layout_has_a_64_mib_hole_and_no_vga_hole(xch: xc_interface) -> None:
    """PVH: no video RAM, mmio_start = min(0xFEFF8000, 0xFEE00000, 0xFC000000) = 0xFC000000,
    mem 4 GiB -> lowmem_end 0xFC000000, highmem_end 4 GiB + 64 MiB = 0x104000000."""
    dom = xc_dom_allocate(xch, new_domain(xch, 4 * GiB_KB))
    hvm_layout(dom, 4 * GiB_KB, device_model=False)
    assert (dom.total_pages, dom.lowmem_end, dom.highmem_end, dom.mmio_size) == (
        0x100000,
        0xFC000000,
        0x104000000,
        64 << 20,
    )
    assert (dom.vga_hole_size, dom.device_model) == (0, False)


# -- the populate sequence ---------------------------------------------------------------------


def test_4_gib_hvm_populate_sequence(xch: xc_interface, calls: list[Call]) -> None:
    """Xen's meminit_hvm: claim target-32, low memory, then 1 GiB / 2 MiB / 4 KiB steps."""
    dom = hvm_4g(xch)
    xc_dom_boot_mem_init(dom)
    assert populate_calls(calls) == HVM_4G_CALLS
    assert calls[0] == ("claim_pages", CLAIM_4G) and calls[-1] == ("claim_pages", 0)
    assert claim_calls(calls) == [("claim_pages", CLAIM_4G), ("claim_pages", 0)]


def test_4_gib_hvm_populates_target_minus_vga_hole(xch: xc_interface) -> None:
    """160 + 320 + 1019*512 + 2*262144 = 1046496 pages; stats: 4 KiB = 0xC0 (Xen credits the
    hole) + 320 = 512; 2 MiB = 127*4 + 3 + 96*4 + 31*4 = 1019; 1 GiB = 2. Claim released."""
    dom = hvm_4g(xch)
    xc_dom_boot_mem_init(dom)
    assert xc_get_tot_pages(xch, dom.guest_domid) == CLAIM_4G
    assert (dom.stats.pages_4k, dom.stats.pages_2m, dom.stats.pages_1g) == (512, 1019, 2)
    assert dom.p2m_size == 0x10F800  # highest range end >> 12
    assert int(xc_physinfo(xch).outstanding_pages) == 0
    assert domain_outstanding(xch, dom.guest_domid) == 0


def test_pvh_populates_from_pfn_0_with_1_gib_extents(xch: xc_interface, calls: list[Call]) -> None:
    """PVH (no device model): no low-memory call, claim = target (no VGA hole); range 0 =
    [0, 0xFC000): 1 GiB at 0, 0x40000, 0x80000, then 0x3C000/0x800 = 120 calls of 4x2M;
    range 1 = [0x100000, 0x104000): 0x4000/0x800 = 8 calls. 3*262144 + 128*4*512 = 0x100000."""
    dom = xc_dom_allocate(xch, new_domain(xch, 4 * GiB_KB))
    hvm_layout(dom, 4 * GiB_KB, device_model=False)
    xc_dom_boot_mem_init(dom)
    expected = [
        *[("populate", 1, 18, g, 0) for g in (0, 0x40000, 0x80000)],
        *two_meg_calls(0xC0000, 120),
        *two_meg_calls(0x100000, 8),
    ]
    assert populate_calls(calls) == expected
    assert claim_calls(calls) == [("claim_pages", 0x100000), ("claim_pages", 0)]
    assert xc_get_tot_pages(xch, dom.guest_domid) == 0x100000
    assert (dom.stats.pages_4k, dom.stats.pages_2m, dom.stats.pages_1g) == (0, 512, 3)


# -- vNUMA: 8 GiB in two vnodes of 4096 MiB on pnodes 0 and 1 ------------------------------------
#
# hvm_layout(8 GiB): mem = 8192 - 8 = 8184 MiB = 0x1FF800000, total 2095104 pages,
# lowmem_end 0xF0000000, highmem_end 4 GiB + 0x10F800000 = 0x20F800000.
# vnuma_hvm: vnode 0 = 4096 MiB - 8 MiB video = 0xFF800000 bytes: [0, 0xF0000000) up to the
# hole, the rest 0x0F800000 from 4 GiB: [0x100000000, 0x10F800000); vnode 1 = 4 GiB:
# [0x10F800000, 0x20F800000). Pages per pnode: node 0 = 0xF0000 - 0x20 + 0xF800 = 1046496
# (the VGA hole is never populated), node 1 = 0x100000 = 1048576. Claim = 2095104 - 32.
VNUMA_RANGES = [(0, 0xF0000000, 0), (0x100000000, 0x10F800000, 0), (0x10F800000, 0x20F800000, 1)]
NODE0_PAGES, NODE1_PAGES = 1046496, 1048576
VNUMA_CLAIM = 2095104 - 32

# Range 2 = pfns [0x10F800, 0x20F800) on pnode 1: 0x140000 - 0x10F800 = 0x30800 pages to the
# 1 GiB boundary = 97 calls of 4x2M; 1 GiB at 0x140000, 0x180000, 0x1C0000; 0xF800 left =
# 31 calls of 4x2M.
RANGE2_CALLS = [
    *two_meg_calls(0x10F800, 97, EXACT1),
    *[("populate", 1, 18, g, EXACT1) for g in (0x140000, 0x180000, 0x1C0000)],
    *two_meg_calls(0x200000, 31, EXACT1),
]


def vnuma_8g(xch: xc_interface, mode: str) -> xc_dom_image:
    dom = xc_dom_allocate(xch, new_domain(xch, 8 * GiB_KB))
    dom.claim_mode = mode  # type: ignore[assignment]
    hvm_layout(dom, 8 * GiB_KB)
    vnuma_hvm(dom, [4 * GiB_KB, 4 * GiB_KB], [0, 1], 8192)
    return dom


@pytest.mark.xen_host(nodes=[8192, 8192])
def test_vnuma_hvm_ranges_skip_the_mmio_hole(xch: xc_interface) -> None:
    """libxl__vnuma_build_vmemrange_hvm: vnode 0 is split by the hole, vnode 1 follows it."""
    dom = vnuma_8g(xch, "legacy")
    assert [(r.start, r.end, r.nid) for r in dom.vmemranges] == VNUMA_RANGES
    assert dom.total_pages == 2095104


# Legacy and off: low memory carries no node flag (Xen), so its 160 order-0 extents
# round-robin over the nodes starting after last_alloc_node 0: 80 on node 1, 80 on node 0.
# numa: the model gives low memory range 0's node (documented deviation) and claims per node.
VNUMA_CASES = {
    "legacy": (
        [("claim_pages", VNUMA_CLAIM), ("claim_pages", 0)],
        0,
        {0: NODE0_PAGES - 160 + 80, 1: NODE1_PAGES + 80},
    ),
    "numa": (
        [("claim_memory", {0: NODE0_PAGES, 1: NODE1_PAGES}), ("claim_pages", 0)],
        EXACT0,
        {0: NODE0_PAGES, 1: NODE1_PAGES},
    ),
    "off": ([("claim_pages", 0)], 0, {0: NODE0_PAGES - 160 + 80, 1: NODE1_PAGES + 80}),
}


@pytest.mark.xen_host(nodes=[8192, 8192])
@pytest.mark.parametrize("mode", list(VNUMA_CASES))
def test_vnuma_hvm_populates_each_range_exactly_on_its_pnode(
    xch: xc_interface, calls: list[Call], mode: str
) -> None:
    """Every range populate carries XENMEMF_exact_node(pnode); low memory does not (but numa)."""
    expected_claims, low_flags, expected_placement = VNUMA_CASES[mode]
    dom = vnuma_8g(xch, mode)
    xc_dom_boot_mem_init(dom)
    expected = [*range0_calls(EXACT0, low_flags), *two_meg_calls(0x100000, 31, EXACT0)]
    expected += RANGE2_CALLS
    assert populate_calls(calls) == expected
    assert claim_calls(calls) == expected_claims
    assert calls[-1] == ("claim_pages", 0)
    assert xc_get_tot_pages(xch, dom.guest_domid) == VNUMA_CLAIM
    assert placement(xch, dom.guest_domid) == expected_placement
    # 4 KiB: 512; 2 MiB: 1019 + 97*4 + 31*4 = 1531; 1 GiB: 2 + 3 = 5.
    assert (dom.stats.pages_4k, dom.stats.pages_2m, dom.stats.pages_1g) == (512, 1531, 5)
    assert int(xc_physinfo(xch).outstanding_pages) == 0


@pytest.mark.xen_host(nodes=[8192, 8192])
def test_caller_memflags_node_overrides_the_vnuma_node(
    xch: xc_interface, calls: list[Call]
) -> None:
    """Xen sets the vNUMA node "only if the caller hasn't done so": with memflags naming node 1,
    every call (low memory included) carries exactly those flags and all memory lands on
    node 1 (2095072 pages fit in its 2097152)."""
    dom = vnuma_8g(xch, "legacy")
    dom.memflags = EXACT1
    xc_dom_boot_mem_init(dom)
    assert {c[4] for c in populate_calls(calls)} == {EXACT1}
    assert placement(xch, dom.guest_domid) == {1: VNUMA_CLAIM}


@pytest.mark.parametrize(
    ("mmio_start", "second_gib"),
    [
        # The window [1 GiB, 2 GiB) overlaps a hole at 0x70000000: (0x80000 - 0x40000) / 0x800
        # = 128 calls of 4x2M instead (check_mmio_hole guards only the 1 GiB try).
        (0x70000000, two_meg_calls(0x40000, 128)),
        # A hole starting at 2 GiB only touches the window's end: still one 1 GiB extent.
        (0x80000000, [("populate", 1, 18, 0x40000, 0)]),
    ],
    ids=["overlapping-hole", "hole-at-window-end"],
)
def test_1_gib_window_must_clear_the_mmio_hole(
    xch: xc_interface, calls: list[Call], mmio_start: int, second_gib: list[Call]
) -> None:
    """A caller's range [0, 2 GiB) with the MMIO hole [mmio_start, +256 MiB) inside it."""
    dom = xc_dom_allocate(xch, new_domain(xch, 2 * GiB_KB))
    dom.total_pages = dom.target_pages = 0x80000
    dom.device_model, dom.vga_hole_size = True, 0x20
    dom.lowmem_end, dom.mmio_start, dom.mmio_size = 0x80000000, mmio_start, 1 << 28
    dom.vmemranges, dom.vnode_to_pnode = [xen_vmemrange(0, 0x80000000)], [XC_NUMA_NO_NODE]
    xc_dom_boot_mem_init(dom)
    assert populate_calls(calls) == [*range0_calls(0, 0)[: 2 + 127 + 1], *second_gib]
    assert xc_get_tot_pages(xch, dom.guest_domid) == 0x80000 - 0x20


# -- superpage fallbacks -------------------------------------------------------------------------


def test_failed_1_gib_extent_falls_back_to_2_mib(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface, calls: list[Call]
) -> None:
    """The 1 GiB extent at 0x40000 fails (the call returns 0): that iteration's 2048 pages go
    as 4x2M, then 0x3F800 to the next 1 GiB boundary as 127 more: 128 calls from 0x40000."""
    dom = hvm_4g(xch)
    xen_host.faults.fail_populate_at(dom.guest_domid, 0x40000)
    xc_dom_boot_mem_init(dom)
    expected = [
        *range0_calls(0, 0)[: 2 + 127 + 1 + 1],  # through the failed 1 GiB call at 0x40000
        *two_meg_calls(0x40000, 128),
        ("populate", 1, 18, 0x80000, 0),
        *two_meg_calls(0xC0000, 96),
        *two_meg_calls(0x100000, 31),
    ]
    assert populate_calls(calls) == expected
    assert xc_get_tot_pages(xch, dom.guest_domid) == CLAIM_4G
    # 2 MiB: 1019 + 128*4 = 1531; 1 GiB: 1.
    assert (dom.stats.pages_4k, dom.stats.pages_2m, dom.stats.pages_1g) == (512, 1531, 1)


def test_failed_1_gib_and_2_mib_fall_back_to_4_kib(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface, calls: list[Call]
) -> None:
    """1 GiB and the 4x2M retry at 0x40000 both fail: 2048 exact 4 KiB pages, then
    (0x80000 - 0x40800)/0x800 = 127 calls of 4x2M up to the next 1 GiB extent."""
    dom = hvm_4g(xch)
    d = dom.guest_domid
    faults = xen_host.faults
    faults.at_populate(d, 0x40000, lambda: faults.fail_next_allocations(2, domid=d))
    xc_dom_boot_mem_init(dom)
    expected = [
        *range0_calls(0, 0)[: 2 + 127 + 1 + 1],
        ("populate", 4, 9, 0x40000, 0),
        ("exact", 2048, 0, 0x40000, 0),
        *two_meg_calls(0x40800, 127),
        ("populate", 1, 18, 0x80000, 0),
        *two_meg_calls(0xC0000, 96),
        *two_meg_calls(0x100000, 31),
    ]
    assert populate_calls(calls) == expected
    assert xc_get_tot_pages(xch, d) == CLAIM_4G
    # 4 KiB: 512 + 2048; 2 MiB: 1019 + 127*4 = 1527; 1 GiB: 1.
    assert (dom.stats.pages_4k, dom.stats.pages_2m, dom.stats.pages_1g) == (2560, 1527, 1)


def test_partial_2_mib_call_fills_the_rest_with_4_kib(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface, calls: list[Call]
) -> None:
    """The first 4x2M call (extents 0x200, 0x400, 0x600, 0x800) stops at 0x600: 2 done, the
    remaining 1024 pages go as 4 KiB; from 0xA00, (0x3FA00 - 0xA00)/0x800 = 126 calls."""
    dom = hvm_4g(xch)
    xen_host.faults.fail_populate_at(dom.guest_domid, 0x600)
    xc_dom_boot_mem_init(dom)
    expected = [
        ("exact", 0xA0, 0, 0, 0),
        ("exact", 320, 0, 0xC0, 0),
        ("populate", 4, 9, 0x200, 0),
        ("exact", 1024, 0, 0x600, 0),
        *two_meg_calls(0xA00, 126),
        *range0_calls(0, 0)[2 + 127 :],  # 3x2M at 0x3FA00 and on, as without the fault
        *two_meg_calls(0x100000, 31),
    ]
    assert populate_calls(calls) == expected
    assert xc_get_tot_pages(xch, dom.guest_domid) == CLAIM_4G
    assert (dom.stats.pages_4k, dom.stats.pages_2m, dom.stats.pages_1g) == (512 + 1024, 1017, 2)


# -- failures ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "stake"),
    [
        # 16 GiB: (16 GiB - 8 MiB)/4 KiB - 32 = 4192256 - 32 = 4192224 > 2097151 free.
        ("legacy", ("claim_pages", 4192224)),
        ("numa", ("claim_memory", {HOST: 4192224})),
    ],
)
def test_refused_claim_populates_nothing_and_still_cancels(
    xch: xc_interface, calls: list[Call], mode: str, stake: Call
) -> None:
    """A claim bigger than the free heap (2 x 4096 MiB, less MFN 0) is ENOMEM; meminit_hvm
    goes to its exit, which cancels the claim (claim_pages(0)) as on every exit."""
    domid = new_domain(xch, 16 * GiB_KB)
    dom = xc_dom_allocate(xch, domid)
    dom.claim_mode = mode  # type: ignore[assignment]
    hvm_layout(dom, 16 * GiB_KB)
    with pytest.raises(XenguestError) as e:
        xc_dom_boot_mem_init(dom)
    err = e.value
    assert (err.step, err.errno, err.populated_pages) == ("meminit_hvm", errno.ENOMEM, 0)
    assert str(e.value).startswith("meminit_hvm: ")
    assert calls == [stake, ("claim_pages", 0)]
    assert xc_get_tot_pages(xch, domid) == 0
    assert int(xc_physinfo(xch).outstanding_pages) == 0


def test_vnuma_with_pod_is_refused_before_claiming(xch: xc_interface, calls: list[Call]) -> None:
    """target (4 GiB) < total (8 GiB) means PoD, which meminit_hvm refuses with vNUMA."""
    dom = xc_dom_allocate(xch, new_domain(xch, 8 * GiB_KB))
    hvm_layout(dom, 8 * GiB_KB, target_memkb=4 * GiB_KB)
    vnuma_hvm(dom, [4 * GiB_KB, 4 * GiB_KB], [0, 1], 8192)
    with pytest.raises(XenguestError, match="vNUMA and PoD") as e:
        xc_dom_boot_mem_init(dom)
    assert (e.value.step, e.value.errno) == ("meminit_hvm", errno.EINVAL)
    assert calls == [("claim_pages", 0)]
    assert xc_get_tot_pages(xch, dom.guest_domid) == 0


def test_vnuma_page_mismatch_is_refused_before_claiming(
    xch: xc_interface, calls: list[Call]
) -> None:
    """vnodes of 4096 + 2048 MiB for 8 GiB: ranges hold (4096 - 8 + 2048) * 256 = 0x17F800
    pages, total_pages is 8184 * 256 = 0x1FF800."""
    dom = xc_dom_allocate(xch, new_domain(xch, 8 * GiB_KB))
    hvm_layout(dom, 8 * GiB_KB)
    vnuma_hvm(dom, [4 * GiB_KB, 2 * GiB_KB], [0, 1], 8192)
    with pytest.raises(XenguestError, match=r"0x17f800 != 0x1ff800") as e:
        xc_dom_boot_mem_init(dom)
    assert e.value.errno == errno.EINVAL
    assert calls == [("claim_pages", 0)]


@pytest.mark.xen_host(nodes=[8192, 8192])
def test_populate_failure_part_way_names_step_gfn_node(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface, calls: list[Call]
) -> None:
    """Three allocations fail from gfn 0x40000 on (1 GiB, the 4x2M retry, the first 4 KiB
    page): the exact call is EBUSY. Populated by then: 160 + 320 + 127*2048 + 1536 = 262112."""
    dom = vnuma_8g(xch, "legacy")
    d = dom.guest_domid
    faults = xen_host.faults
    faults.at_populate(d, 0x40000, lambda: faults.fail_next_allocations(3, domid=d))
    with pytest.raises(XenguestError) as e:
        xc_dom_boot_mem_init(dom)
    err = e.value
    assert (err.step, err.errno, err.gfn, err.node) == ("meminit_hvm", errno.EBUSY, 0x40000, 0)
    assert err.populated_pages == 262112 == xc_get_tot_pages(xch, d)
    assert str(err) == (
        "meminit_hvm: populating 0x800 4 KiB pages at gfn 0x40000 on node 0: EBUSY"
        " (262112 pages populated)"
    )
    assert calls[-2:] == [("exact", 2048, 0, 0x40000, EXACT0), ("claim_pages", 0)]
    assert int(xc_physinfo(xch).outstanding_pages) == 0
    assert domain_outstanding(xch, d) == 0


POD = XENMEMF_populate_on_demand  # 1 << 16


@pytest.mark.parametrize(
    ("mode", "stake"),
    [
        # target = (2 GiB - 8 MiB)/4 KiB = 522240; claim = target - 32 = 522208.
        ("legacy", ("claim_pages", 522208)),
        ("numa", ("claim_memory", {HOST: 522208})),
    ],
)
def test_pod_build_fills_the_cache_and_marks_every_gfn(
    xch: xc_interface, calls: list[Call], mode: str, stake: Call
) -> None:
    """max 4 GiB, target 2 GiB: claim the target first (Xen claims before the PoD target
    "because that function actually allocates"), set the PoD target to it (522208 pages:
    the cache takes 522208 // 512 = 1019 superpages = 521728 pages, then 480 single pages,
    redeeming the whole claim), then make the same populate calls as a 4 GiB guest, each
    with XENMEMF_populate_on_demand: they mark 160 + 1046336 = 1046496 gfns PoD and
    allocate nothing. tot_pages is the cache; the claim is released."""
    domid = new_domain(xch, 2 * GiB_KB)  # libxl: max_mem = target + 1 MiB
    dom = xc_dom_allocate(xch, domid)
    dom.claim_mode = mode  # type: ignore[assignment]
    hvm_layout(dom, 4 * GiB_KB, target_memkb=2 * GiB_KB)
    free = int(xc_physinfo(xch).free_pages)
    xc_dom_boot_mem_init(dom)
    assert claim_calls(calls) == [stake, ("claim_pages", 0)]
    assert populate_calls(calls) == [*range0_calls(POD, POD), *two_meg_calls(0x100000, 31, POD)]
    assert xc_domain_get_pod_target(xch, domid) == (522208, 522208, CLAIM_4G)
    assert xc_get_tot_pages(xch, domid) == 522208
    assert int(xc_physinfo(xch).free_pages) == free - 522208
    assert int(xc_physinfo(xch).outstanding_pages) == 0
    assert (dom.stats.pages_4k, dom.stats.pages_2m, dom.stats.pages_1g) == (512, 1019, 2)


def test_pod_target_above_max_pages_stops_the_build(xch: xc_interface, calls: list[Call]) -> None:
    """A max_mem below the target (here 1 GiB + 1 MiB = 262400 pages, the target 522208),
    claims off (a claim above max_pages would be refused first): XENMEM_set_pod_target is
    EINVAL before anything is allocated."""
    domid = new_domain(xch, 1 * GiB_KB)
    dom = xc_dom_allocate(xch, domid)
    dom.claim_mode = "off"
    hvm_layout(dom, 4 * GiB_KB, target_memkb=2 * GiB_KB)
    with pytest.raises(XenguestError, match="setting the PoD target") as e:
        xc_dom_boot_mem_init(dom)
    assert (e.value.step, e.value.errno) == ("meminit_hvm", errno.EINVAL)
    assert calls == [("claim_pages", 0)]
    assert xc_get_tot_pages(xch, domid) == 0
    assert int(xc_physinfo(xch).outstanding_pages) == 0

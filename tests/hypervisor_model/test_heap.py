"""The buddy allocator (page_alloc.c): boot chunks, zones, split and merge, DMA zone, node choice.

Every expected MFN is worked out by hand from Xen's rules (fact sheet section 3):
boot cuts each range into maximal aligned power-of-two chunks of at most MAX_ORDER 18
(_init_heap_pages), MFN 0 excluded (init_heap_pages); zone = bit length of the MFN;
get_free_buddy scans zones from high to low and, in a zone, orders from the request up;
alloc_heap_pages halves a bigger buddy keeping the UPPER half; free_heap_pages merges with
an equal free buddy of the same node. Allocations go through hypercalls (dom0 populating a
PV domain, whose extent list comes back holding MFNs) wherever that is possible.

Xen's own pages come out of the same heap: dom0's structure and shared-info pages at boot
and a PV domain's two at createdomain (alloc_domain_struct, arch_domain_create), all from
the boot CPU's node (node 0), the topmost pages of its highest zone first; and every node
after the first gives its first range's head (or tail) to its free lists (init_node_heap).
Hosts below carry 4 spare pages at the top of node 0 for dom0 and the test's domain, or
say where those pages go.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypercalls import Guest

import hypervisor_model
from hypervisor_model.heap import MAX_ORDER, bits_to_zone, page_to_zone
from hypervisor_model.memflags import MEMF_exact_node, MEMF_node
from hypervisor_model.public import domctl, sysctl
from hypervisor_model.public.memory import (
    XENMEM_populate_physmap,
    XENMEMF_address_bits,
    XENMEMF_exact_node,
    XENMEMF_node,
)


def boot(**kwargs: Any) -> hypervisor_model.Hypervisor:
    hv = hypervisor_model.boot(**kwargs)
    hv.check_after_each_hypercall = True
    return hv


def free_blocks(hv: hypervisor_model.Hypervisor) -> set[tuple[int, int, int]]:
    """The free buddies as ``(head MFN, order, node)``."""
    return set(hv.heap.free_blocks())


def without_top_two(head: int, order: int) -> set[tuple[int, int]]:
    """What is left of a free block once its two topmost pages are allocated one by one
    (dom0's structure and shared info at boot): each split gives back the lower half, from
    order - 1 down to 1, and the order-0 half left by the last split is the second page."""
    return {(head + (1 << order) - (2 << j), j) for j in range(1, order)}


def pv_domain(dom0: Guest, max_mib: int = 64) -> int:
    """A PV domain, so that populate writes each extent's MFN back into the list."""
    return dom0.create(hvm=False, max_mib=max_mib)


def populate(dom0: Guest, domid: int, count: int, order: int = 0, flags: int = 0) -> list[int]:
    """Populate ``count`` extents in one call; return their MFNs (all must succeed)."""
    rc, mfns = dom0.reservation(XENMEM_populate_physmap, domid, list(range(count)), order, flags)
    assert rc == count, f"populated {rc} of {count} extents"
    return mfns


def set_node_affinity(dom0: Guest, domid: int, nodes: set[int]) -> None:
    """XEN_DOMCTL_setnodeaffinity with a 64-bit node map."""
    mask = sum(1 << n for n in nodes)
    with dom0.hv.arena.alloc(8) as bitmap:
        bitmap.mem[:8] = mask.to_bytes(8, "little")
        rc, _ = dom0.domctl(
            domctl.XEN_DOMCTL_setnodeaffinity,
            domid,
            domctl.xen_domctl_nodeaffinity,
            dict(nodemap=dict(bitmap=bitmap.addr, nr_bits=64)),
        )
    assert rc == 0, rc


# -- boot: maximal aligned chunks ---------------------------------------------------------

BOOT_CASES = [
    pytest.param(
        [[[1, 100]]],
        # 1 | 2-3 | 4-7 | 8-15 | 16-31 | 32-63 | 64-95 | 96-99; dom0 takes 99 and 98 from
        # zone 7's smallest block, 96 (order 2), leaving 96 (order 1).
        {(1, 0), (2, 1), (4, 2), (8, 3), (16, 4), (32, 5), (64, 5), (96, 1)},
        id="1-100",
    ),
    pytest.param(
        [[[0, 0x5000]]],
        # MFN 0 dropped: 2^k of order k for k = 0..12, then 0x2000 (order 13), 0x4000 (12),
        # which gives dom0 0x4FFF and 0x4FFE.
        {(1 << k, k) for k in range(13)} | {(0x2000, 13)} | without_top_two(0x4000, 12),
        id="0-0x5000",
    ),
    pytest.param(
        [[[0x123, 0x456]]],
        # The head's lowest set bit limits the order on the way up, the remaining size on
        # the way down: 0x123 o0, 0x124 o2, 0x128 o3, 0x130 o4, 0x140 o6, 0x180 o7,
        # 0x200 o9 | 0x400 o6, 0x440 o4, 0x450 o2, 0x454 o1 (819 pages in all); dom0
        # takes zone 11's smallest block, 0x454 (order 1), whole.
        {
            (0x123, 0),
            (0x124, 2),
            (0x128, 3),
            (0x130, 4),
            (0x140, 6),
            (0x180, 7),
            (0x200, 9),
            (0x400, 6),
            (0x440, 4),
            (0x450, 2),
        },
        id="0x123-0x456",
    ),
    pytest.param(
        [[[0, 0x100000]]],
        # 4 GiB: 2^k of order k for k = 0..17, then three order-18 (MAX_ORDER) chunks
        # where the alignment would allow order 19; the last one freed, 0xC0000, heads
        # zone 20's list and gives dom0 0xFFFFF and 0xFFFFE.
        {(1 << k, k) for k in range(18)}
        | {(0x40000, 18), (0x80000, 18)}
        | without_top_two(0xC0000, 18),
        id="4GiB-capped-at-MAX_ORDER",
    ),
    pytest.param(
        [[[0x100, 0x180], [0x180, 0x200]]],
        # Two order-7 chunks of one node are buddies: freeing the second merges them into
        # 0x100 (order 8), which dom0's two pages then split from the top.
        without_top_two(0x100, 8),
        id="adjacent-ranges-merge",
    ),
]


@pytest.mark.parametrize(("ranges", "expected"), BOOT_CASES)
def test_boot_cuts_ram_into_maximal_aligned_chunks(
    ranges: list[Any], expected: set[tuple[int, int]]
) -> None:
    """_init_heap_pages / init_heap_pages; free_heap_pages merges as the chunks arrive;
    then dom0 takes its two pages."""
    hv = boot(ranges=ranges)
    assert free_blocks(hv) == {(head, order, 0) for head, order in expected}
    assert hv.heap.total_avail_pages == sum(1 << order for _, order in expected)


# Two nodes meeting at 0x180, which is not aligned to their order-7 chunks. Node 0's extra
# range [0x800, 0x804) pays for dom0 and one PV domain (it is node 0's highest zone); node 1's
# extra range [0x1000, 0x1004) is the first of node 1 to reach the heap (end_boot_allocator
# goes through the other regions from the top) and all of it becomes node 1's free lists.
SPLIT_AT_0x180 = [[[1, 0x180], [0x800, 0x804]], [[0x180, 0x400], [0x1000, 0x1004]]]


def test_boot_does_not_merge_across_a_non_aligned_node_boundary() -> None:
    """free_heap_pages merges only with a buddy on the same node: node 0's 0x100 (order 7)
    and node 1's 0x180 (order 7) are buddies by address but stay apart."""
    hv = boot(ranges=SPLIT_AT_0x180)
    node0 = {(1 << k, k, 0) for k in range(8)} | {(0x100, 7, 0), (0x800, 1, 0)}
    node1 = {(0x180, 7, 1), (0x200, 9, 1)}
    assert free_blocks(hv) == node0 | node1
    assert hv.heap.node_avail_pages == [0x17F + 2, 0x280]
    assert hv.heap.metadata == [(0x1000, 0x1004)]


def test_freeing_does_not_merge_across_a_non_aligned_node_boundary() -> None:
    """Give node 1's 0x180 (order 7) to a domain and take it back: it must come back alone."""
    hv = boot(ranges=SPLIT_AT_0x180)
    dom0 = Guest(hv)
    d = pv_domain(dom0)
    # Node 1's zone 10 holds 0x200 (order 9): the order-9 request takes it whole; the
    # order-7 request then finds 0x180 in zone 9.
    assert populate(dom0, d, 1, 9, XENMEMF_exact_node(1)) == [0x200]
    assert populate(dom0, d, 1, 7, XENMEMF_exact_node(1)) == [0x180]
    assert dom0.decrease(d, [0x180], 7) == 1
    assert (0x180, 7, 1) in free_blocks(hv)
    assert (0x100, 7, 0) in free_blocks(hv)
    assert not any(head == 0x100 and order == 8 for head, order, _ in free_blocks(hv))


def test_heap_api_free_does_not_merge_across_nodes() -> None:
    """The same rule on the Heap itself: alloc_heap_pages then free_heap_pages."""
    hv = boot(ranges=SPLIT_AT_0x180)
    heap = hv.heap
    zone = page_to_zone(0x180)  # 9
    found = heap.alloc_heap_pages(zone, zone, 7, MEMF_node(1) | MEMF_exact_node, None)
    assert found == (0x180, 1)
    heap.free_heap_pages(0x180, 7)
    assert {(0x100, 7, 0), (0x180, 7, 1)} <= free_blocks(hv)
    hv.check_invariants()


# -- zones ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mfn", "zone"),
    [(0, 1), (1, 1), (2, 2), (3, 2), (4, 3), (0x3FFFF, 18), (0x40000, 19), (0xFFFFF, 20)],
)
def test_zone_is_the_bit_length_of_the_mfn(mfn: int, zone: int) -> None:
    """page_to_zone: flsl(mfn), MFN 0 in zone 1."""
    assert page_to_zone(mfn) == zone


@pytest.mark.parametrize(("bits", "zone"), [(0, 1), (12, 1), (13, 1), (14, 2), (32, 20), (52, 40)])
def test_bits_to_zone(bits: int, zone: int) -> None:
    """bits_to_zone: 1 below 13 bits, else bits - PAGE_SHIFT (32 bits: MFNs below 2^20)."""
    assert bits_to_zone(bits) == zone


def test_boot_counts_free_pages_per_zone() -> None:
    """avail[node][zone] after booting [1, 100): zone z holds MFNs [2^(z-1), 2^z), less
    dom0's two pages in zone 7 (99 and 98)."""
    hv = boot(ranges=[[[1, 100]]])
    assert hv.heap.avail[0][:8] == [0, 1, 2, 4, 8, 16, 32, 100 - 64 - 2]
    assert sum(hv.heap.avail[0][8:]) == 0


@pytest.mark.parametrize(
    ("min_bits", "max_bits", "pages"),
    [
        pytest.param(0, 0, 99 - 2, id="everything"),  # dom0 holds 99 and 98
        # 18 address bits: MFNs below 2^6 = zones 1..6 = MFNs 1..63.
        pytest.param(0, 18, 63, id="below-2^18"),
        # Zone 7 alone: MFNs 64..97.
        pytest.param(19, 19, 34, id="zone-7"),
        # Zones 3..4: MFNs 4..15.
        pytest.param(15, 16, 12, id="zones-3-4"),
    ],
)
def test_availheap_reports_free_memory_by_zone(min_bits: int, max_bits: int, pages: int) -> None:
    """XEN_SYSCTL_availheap sums avail[][] over bits_to_zone(min)..bits_to_zone(max)."""
    dom0 = Guest(boot(ranges=[[[1, 100]]]))
    rc, reply = dom0.sysctl(
        sysctl.XEN_SYSCTL_availheap,
        sysctl.xen_sysctl_availheap,
        dict(min_bitwidth=min_bits, max_bitwidth=max_bits, node=0, avail_bytes=0),
    )
    assert rc == 0
    assert reply is not None and reply.avail_bytes == pages * 4096


# -- allocation: smallest order, upper half ------------------------------------------------------

# [1, 100) plus 100..103, which pay for dom0's and the test domain's Xen pages (103, 102;
# 101, 100): after them the heap holds exactly [1, 100)'s boot blocks, 96 (order 2) on top.
RAM_1_100 = [[[1, 104]]]


def test_order0_allocations_come_top_down() -> None:
    """On [1, 100): zone 7 is scanned first; its smallest block is 96 (order 2), halved
    twice keeping the upper half (99; 98 and 96 go back), then 98, 97, 96; then the order-5
    block at 64 is halved down to 95; 94 is the order-0 half left from that, and the
    order-1 half 92 is halved to 93."""
    hv = boot(ranges=RAM_1_100)
    dom0 = Guest(hv)
    d = pv_domain(dom0)
    assert populate(dom0, d, 7) == [99, 98, 97, 96, 95, 94, 93]


def test_split_gives_back_the_lower_halves() -> None:
    """After one order-0 extent from 64 (order 5) is split down to 95: 64 o4, 80 o3, 88 o2,
    92 o1 and 94 o0 are free."""
    hv = boot(ranges=RAM_1_100)
    dom0 = Guest(hv)
    d = pv_domain(dom0)
    populate(dom0, d, 1, 2)  # the whole of 96 (order 2)
    assert populate(dom0, d, 1) == [95]
    zone7 = {(h, o) for h, o, _ in free_blocks(hv) if page_to_zone(h) == 7}
    assert zone7 == {(64, 4), (80, 3), (88, 2), (92, 1), (94, 0)}


@pytest.mark.parametrize(
    ("order", "nr", "mfns"),
    [
        # order 1: 96 (o2) halves to 98; then 96; then 64 (o5) halves down to 94.
        pytest.param(1, 3, [98, 96, 94], id="order-1"),
        # order 2: 96 whole (smallest sufficient), then 64 (o5) halves down to 92, then 88.
        pytest.param(2, 3, [96, 92, 88], id="order-2"),
        # order 5: 64 whole; then zone 7 has only 96..99 left and zone 6 holds 32 (o5);
        # then no zone has 32 free pages.
        pytest.param(5, 3, [64, 32], id="order-5"),
        # order 6: [1, 100) has no block of order 6 or more.
        pytest.param(6, 1, [], id="order-6-none"),
    ],
)
def test_allocation_takes_the_smallest_sufficient_order(
    order: int, nr: int, mfns: list[int]
) -> None:
    hv = boot(ranges=RAM_1_100)
    dom0 = Guest(hv)
    d = pv_domain(dom0)
    rc, got = dom0.reservation(XENMEM_populate_physmap, d, list(range(nr)), order)
    assert rc == len(mfns)
    assert got[:rc] == mfns


def test_highest_zone_first_even_when_a_lower_zone_has_an_exact_fit() -> None:
    """[1, 100): MFN 1 is a free order-0 block in zone 1, yet an order-0 request splits
    zone 7's order-2 block: zones go from zone_hi down, orders only within a zone."""
    hv = boot(ranges=RAM_1_100)
    dom0 = Guest(hv)
    assert populate(dom0, pv_domain(dom0), 1) == [99]
    assert (1, 0, 0) in free_blocks(hv)


# -- freeing merges buddies back -----------------------------------------------------------


def test_freeing_merges_buddies_back_into_the_boot_blocks() -> None:
    hv = boot(ranges=RAM_1_100)
    dom0 = Guest(hv)
    d = pv_domain(dom0)
    booted = free_blocks(hv)
    assert populate(dom0, d, 4) == [99, 98, 97, 96]
    assert dom0.decrease(d, [99]) == 1
    assert (99, 0, 0) in free_blocks(hv)  # buddy 98 still in use
    assert dom0.decrease(d, [98]) == 1
    assert (98, 1, 0) in free_blocks(hv)  # 98+99; buddy 96 (order 1) still in use
    assert dom0.decrease(d, [97, 96]) == 2
    assert free_blocks(hv) == booted  # 96 o2 again; its buddy 100 holds Xen's pages


def test_freeing_an_extent_from_a_split_block_merges_all_the_way_up() -> None:
    """Take 95 out of 64 (order 5), give it back: 94+95, 92..95, 88..95, 80..95, 64..95."""
    hv = boot(ranges=RAM_1_100)
    dom0 = Guest(hv)
    d = pv_domain(dom0)
    populate(dom0, d, 1, 2)  # 96 (order 2) whole
    booted_without_96 = free_blocks(hv)
    assert populate(dom0, d, 1) == [95]
    assert dom0.decrease(d, [95]) == 1
    assert free_blocks(hv) == booted_without_96


# -- counters ---------------------------------------------------------------------------------


def test_allocation_and_free_move_every_free_counter() -> None:
    """avail[node][zone], node_avail_pages, total_avail_pages and physinfo free_pages."""
    hv = boot(ranges=SPLIT_AT_0x180)
    dom0 = Guest(hv)
    heap = hv.heap
    d = pv_domain(dom0)
    # Node 1, order 9: 0x200 whole, zone 10 (0x200..0x3FF).
    assert populate(dom0, d, 1, 9, XENMEMF_exact_node(1)) == [0x200]
    assert heap.avail[1][10] == 0
    assert heap.avail[1][9] == 0x80
    assert heap.node_avail_pages == [0x17F, 0x80]
    assert heap.total_avail_pages == 0x17F + 0x80
    assert dom0.physinfo().free_pages == 0x17F + 0x80
    assert dom0.decrease(d, [0x200], 9) == 1
    assert heap.avail[1][10] == 0x200
    assert heap.node_avail_pages == [0x17F, 0x280]
    assert dom0.physinfo().free_pages == 0x17F + 0x280


# -- the DMA zone ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "dma_bitsize"),
    [
        pytest.param(dict(nodes=[4096]), 0, id="single-node"),
        pytest.param(dict(nodes=[1024, 1024], offline=[1]), 0, id="one-online-node"),
        # Node 0 spans 2^20 pages from 0: flsl(2^18 - 1) + 12 = 30.
        pytest.param(dict(nodes=[4096, 4096]), 30, id="2x4GiB"),
        # 2^18 pages: flsl(2^16 - 1) + 12 = 28.
        pytest.param(dict(nodes=[1024, 1024]), 28, id="2x1GiB"),
        # 2^22 pages: flsl(2^20 - 1) + 12 = 32.
        pytest.param(dict(nodes=[16384, 16]), 32, id="16GiB-node0"),
        # 2^24 pages: flsl(2^22 - 1) + 12 = 34, capped at 32.
        pytest.param(dict(nodes=[65536, 16]), 32, id="64GiB-node0-capped"),
        # Node 0 spans [1, 0x180): 1 + 0x17F/4 - 1 = 0x5F, flsl 7: 19.
        pytest.param(dict(ranges=[[[1, 0x180]], [[0x180, 0x400]]]), 19, id="small"),
        # Node 0 offline: node 1 starts at 2^18 and spans 2^18: flsl(0x4FFFF) + 12 = 31.
        pytest.param(dict(nodes=[1024, 1024, 1024], offline=[0]), 31, id="node0-offline"),
        # Node 0 is memoryless: node 1 spans [0, 2^18): 28.
        pytest.param(dict(nodes=[0, 1024]), 28, id="node0-memoryless"),
        # Node 0 starts at 4 GiB, so node 1 decides: 0x1000 + 0x2000 - 1 = 0x2FFF: 14 + 12.
        pytest.param(
            dict(ranges=[[[0x100000, 0x140000]], [[0x1000, 0x9000]]]), 26, id="node0-above-4GiB"
        ),
        # start 0, 3 pages: 0 + 3/4 - 1 wraps to ~0UL, flsl 64: 76, capped at 32.
        pytest.param(dict(ranges=[[[0, 3]], [[0x1000, 0x2000]]]), 32, id="tiny-node0-wraps"),
        # The node's spanned pages count its holes: [1, 8) + [0x7F0, 0x800) spans 0x7FF.
        pytest.param(
            dict(ranges=[[[1, 8], [0x7F0, 0x800]], [[0x800, 0x900]]]), 21, id="holes-span"
        ),
    ],
)
def test_dma_bitsize_follows_arch_get_dma_bitsize(kwargs: dict[str, Any], dma_bitsize: int) -> None:
    """end_boot_allocator: only with more than one online node (arch_want_default_dmazone),
    min(flsl(start + spanned/4 - 1) + PAGE_SHIFT, 32) of the first online node with memory
    starting below 4 GiB (x86 arch_get_dma_bitsize)."""
    assert boot(**kwargs).heap.dma_bitsize == dma_bitsize


def test_allocations_try_above_the_dma_zone_on_every_node_first() -> None:
    """alloc_domheap_pages: zones above the DMA zone on all nodes first, then all zones.

    2 x 1 GiB: dma_bitsize 28, DMA zone 16 = MFNs below 0x10000. Node 0 is [0, 0x40000),
    node 1 is [0x40000, 0x80000) (one order-18 block). Node 0 has no CPUs, so node 1 is the
    boot CPU's node: it reaches the heap first and pays for dom0's and the domain's Xen
    pages (0x7FFFF..0x7FFFC), while node 0 gives its head, MFNs 1-4, to its free lists.
    """
    hv = boot(nodes=[1024, 1024], cpus_per_node=[0, 4])
    dom0 = Guest(hv)
    d = pv_domain(dom0, max_mib=2048)
    assert hv.heap.metadata == [(1, 5)]
    # Fill node 0 above the DMA zone: 0x20000 (o17) halves to 0x30000 then 0x20000,
    # then zone 17's 0x10000 (o16).
    flags = XENMEMF_exact_node(0)
    assert populate(dom0, d, 3, 16, flags) == [0x30000, 0x20000, 0x10000]
    # Node 0 prefers itself but has only DMA memory left: the first pass moves on to node 1.
    assert populate(dom0, d, 1, 0, XENMEMF_node(0)) == [0x7FFFB]
    # Exactly node 0: the first pass fails, the second takes DMA memory from the top of
    # zone 16 (0x8000, order 15).
    assert populate(dom0, d, 1, 0, flags) == [0xFFFF]


# -- address width (XENMEMF_address_bits) ---------------------------------------------------


@pytest.mark.parametrize(
    ("bits", "order", "nr", "mfns"),
    [
        # Host [0, 0x5000) and 0x5000..0x5003 for dom0's and the domain's Xen pages:
        # max_page 0x5004, get_order_from_pages 15, so widths below 15 + 12 = 27 bits limit
        # the allocation; 27 and above are no limit.
        pytest.param(0, 0, 1, [0x4FFF], id="no-limit"),
        pytest.param(27, 0, 1, [0x4FFF], id="27-bits-is-no-limit"),
        pytest.param(40, 0, 1, [0x4FFF], id="40-bits"),
        # 26 bits: zone_hi 14, MFNs below 0x4000: 0x2000 (o13) from the top.
        pytest.param(26, 0, 1, [0x3FFF], id="26-bits"),
        # 20 bits: zone 8, MFNs below 0x100: 0x80 (o7) halved down to 0xFF.
        pytest.param(20, 0, 1, [0xFF], id="20-bits"),
        # ... or, for order 4, down to 0xF0.
        pytest.param(20, 4, 1, [0xF0], id="20-bits-order-4"),
        # 14 bits: zone 2 (MFNs 2, 3) holds 2 (o1): 3 then 2, then zone 1's MFN 1, then none.
        pytest.param(14, 0, 4, [3, 2, 1], id="14-bits"),
        # 13 bits: zone 1, only MFN 1.
        pytest.param(13, 0, 2, [1], id="13-bits"),
        pytest.param(13, 1, 1, [], id="13-bits-order-1-none"),
        # 12 bits and below are invalid (construct_memop_from_reservation): nothing at all.
        pytest.param(12, 0, 1, [], id="12-bits-invalid"),
        pytest.param(1, 0, 1, [], id="1-bit-invalid"),
    ],
)
def test_address_bits_confine_allocations(bits: int, order: int, nr: int, mfns: list[int]) -> None:
    """MEMF_bits(address_bits) caps zone_hi at bits_to_zone(bits) (alloc_domheap_pages)."""
    hv = boot(ranges=[[[0, 0x5004]]])
    dom0 = Guest(hv)
    d = pv_domain(dom0)
    flags = XENMEMF_address_bits(bits)
    rc, got = dom0.reservation(XENMEM_populate_physmap, d, list(range(nr)), order, flags)
    assert rc == len(mfns)
    assert got[:rc] == mfns


def test_address_bits_below_the_dma_zone_skip_the_first_pass() -> None:
    """2 x 1 GiB (DMA zone 16; max_page 2^19, so widths below 31 bits count): 28 bits give
    zone_hi 16, not above the DMA zone, so there is one pass over zones 1..16. A fresh
    domain starts at node 1, which has nothing there, then node 0: 0x8000 (o15) -> 0xFFFF."""
    hv = boot(nodes=[1024, 1024])
    dom0 = Guest(hv)
    d = pv_domain(dom0)
    assert populate(dom0, d, 1, 0, XENMEMF_address_bits(28)) == [0xFFFF]


# -- node choice (get_free_buddy) ------------------------------------------------------------
#
# Node 0 = [0, 0x40000) and 0x40000..0x40003 (its highest zone, where dom0's and the
# domain's Xen pages come from); node 1 = [0x80000, 0x81000) (one order-12 block) and
# 0x81000..0x81003 (its range starts 1 GiB-aligned and ends less aligned, so init_node_heap
# takes its tail for the free lists); node 2 = [0x82000, 0x83000) (one order-12 block) after
# 0x81FFC..0x81FFF (its head, for the free lists). dma_bitsize 29 (node 0 spans 0x40004:
# flsl(0x10000) + 12), DMA zone 17, so all of nodes 1 and 2 and node 0 from 0x20000 up are
# above it. Top free MFN: node 0 0x3FFFF (zone 18's 0x20000, o17), node 1 0x80FFF, node 2
# 0x82FFF.

NODES = [[[0, 0x40004]], [[0x80000, 0x81004]], [[0x81FFC, 0x83000]]]
TOP = {0: 0x3FFFF, 1: 0x80FFF, 2: 0x82FFF}
NODE_BLOCK = {1: 0x80000, 2: 0x82000}  # the single order-12 block of nodes 1 and 2


def fill(dom0: Guest, domid: int, node: int) -> None:
    """Take node 1's or node 2's only block (order 12)."""
    assert populate(dom0, domid, 1, 12, XENMEMF_exact_node(node)) == [NODE_BLOCK[node]]


@pytest.mark.parametrize("node", [0, 1, 2])
def test_requested_node_is_tried_first(node: int) -> None:
    dom0 = Guest(boot(ranges=NODES))
    assert populate(dom0, pv_domain(dom0), 1, 0, XENMEMF_node(node)) == [TOP[node]]


def test_exact_node_request_fails_when_the_node_is_full() -> None:
    """MEMF_exact_node: no other node is tried, the extent fails, the count stops."""
    hv = boot(ranges=NODES)
    dom0 = Guest(hv)
    d = pv_domain(dom0)
    fill(dom0, d, 1)
    free = dom0.physinfo().free_pages
    assert dom0.populate(d, [0], 0, XENMEMF_exact_node(1)) == 0
    assert dom0.physinfo().free_pages == free


def test_non_exact_request_falls_back_to_the_next_node_by_id_not_distance() -> None:
    """Node 1 full: next_node in the mask is node 2, though node 0 is nearer (SLIT 11 vs 40).
    NUMA distance plays no part in get_free_buddy."""
    distances = [[10, 11, 40], [11, 10, 40], [40, 40, 10]]
    dom0 = Guest(boot(ranges=NODES, distances=distances))
    d = pv_domain(dom0)
    fill(dom0, d, 1)
    assert populate(dom0, d, 1, 0, XENMEMF_node(1)) == [TOP[2]]


def test_non_exact_request_wraps_to_the_first_node() -> None:
    """Node 2 full: next_node after 2 wraps to first_node, node 0."""
    dom0 = Guest(boot(ranges=NODES))
    d = pv_domain(dom0)
    fill(dom0, d, 2)
    assert populate(dom0, d, 1, 0, XENMEMF_node(2)) == [TOP[0]]


def test_node_less_extents_round_robin_after_last_alloc_node() -> None:
    """cycle_node(d->last_alloc_node): a fresh domain (last 0) starts at node 1, then 2, 0,
    1 again (0x80FFE: the order-0 half left below 0x40FFF)."""
    dom0 = Guest(boot(ranges=NODES))
    assert populate(dom0, pv_domain(dom0), 4) == [TOP[1], TOP[2], TOP[0], 0x80FFE]


def test_last_alloc_node_is_per_domain() -> None:
    """A second fresh domain starts at node 1 too, whatever the first one did."""
    dom0 = Guest(boot(ranges=NODES))
    assert populate(dom0, pv_domain(dom0), 2) == [TOP[1], TOP[2]]
    assert populate(dom0, pv_domain(dom0), 1) == [0x80FFE]


def test_a_node_request_moves_the_round_robin() -> None:
    """last_alloc_node is set by every allocation: after one on node 2, the next node-less
    extent goes to node 0."""
    dom0 = Guest(boot(ranges=NODES))
    d = pv_domain(dom0)
    assert populate(dom0, d, 1, 0, XENMEMF_node(2)) == [TOP[2]]
    assert populate(dom0, d, 1) == [TOP[0]]


def test_round_robin_stays_within_node_affinity() -> None:
    """nodemask = online & node_affinity {0, 2}: cycle_node(0) = 2, then 0, then 2."""
    dom0 = Guest(boot(ranges=NODES))
    d = pv_domain(dom0)
    set_node_affinity(dom0, d, {0, 2})
    assert populate(dom0, d, 3) == [TOP[2], TOP[0], 0x82FFE]


def test_affinity_exhausted_falls_back_to_other_online_nodes_by_id() -> None:
    """Affinity {2}, node 2 full: after a full cycle of the mask, online & ~mask = {0, 1}
    is tried from its first node, 0, though node 1 is nearer node 2 (SLIT 11 vs 40)."""
    distances = [[10, 40, 40], [40, 10, 11], [40, 11, 10]]
    dom0 = Guest(boot(ranges=NODES, distances=distances))
    d = pv_domain(dom0)
    set_node_affinity(dom0, d, {2})
    fill(dom0, d, 2)
    assert populate(dom0, d, 1) == [TOP[0]]


def test_affinity_exhausted_exact_request_fails() -> None:
    dom0 = Guest(boot(ranges=NODES))
    d = pv_domain(dom0)
    set_node_affinity(dom0, d, {2})
    fill(dom0, d, 2)
    assert dom0.populate(d, [0], 0, XENMEMF_exact_node(2)) == 0


def test_requested_node_outside_affinity_is_still_tried_first() -> None:
    """The first node may be requested from outside the mask {0, 2}; when it is full, the
    search jumps to the first node of the mask (node 0), not to the next one (node 2)."""
    dom0 = Guest(boot(ranges=NODES))
    d = pv_domain(dom0)
    set_node_affinity(dom0, d, {0, 2})
    assert populate(dom0, d, 1, 12, XENMEMF_node(1)) == [NODE_BLOCK[1]]
    assert populate(dom0, d, 1, 0, XENMEMF_node(1)) == [TOP[0]]


def test_request_for_a_node_without_memory_starts_at_the_first_node_of_the_mask() -> None:
    """XENMEMF_node(10) on a 3-node host: node 10 has no heap, is not in the mask, so the
    search restarts at first_node(mask) = 0 (not the round-robin's node 1)."""
    dom0 = Guest(boot(ranges=NODES))
    d = pv_domain(dom0)
    assert populate(dom0, d, 1, 0, XENMEMF_node(10)) == [TOP[0]]
    assert dom0.populate(d, [0], 0, XENMEMF_exact_node(10)) == 0


def test_unprivileged_node_hint_is_ignored() -> None:
    """propagate_node: a domU's XENMEMF_node is dropped silently (its exact request would be
    refused), so a fresh domU populating itself with node 2 gets node 1, the round-robin's."""
    hv = boot(ranges=NODES)
    dom0 = Guest(hv)
    d = pv_domain(dom0)
    rc, mfns = Guest(hv, d).reservation(XENMEM_populate_physmap, d, [0], 0, XENMEMF_node(2))
    assert (rc, mfns) == (1, [TOP[1]])


def test_heap_api_get_free_buddy_node_order() -> None:
    """A pure-allocator view of the same rule: with no domain, exact node 1 from a full
    node fails; the non-exact request moves on to node 2."""
    hv = boot(ranges=NODES)
    heap = hv.heap
    assert heap.alloc_heap_pages(1, 40, 12, MEMF_node(1) | MEMF_exact_node, None) == (0x80000, 1)
    assert heap.alloc_heap_pages(1, 40, 0, MEMF_node(1) | MEMF_exact_node, None) is None
    assert heap.alloc_heap_pages(1, 40, 0, MEMF_node(1), None) == (TOP[2], 2)
    assert heap.alloc_heap_pages(1, 40, MAX_ORDER + 1, 0, None) is None

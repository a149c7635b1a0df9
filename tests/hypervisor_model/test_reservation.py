"""populate_physmap, increase_reservation and decrease_reservation (xen/common/memory.c).

All three return the number of extents completed, never a negative errno (fact sheet 2.5,
gotcha 6.1): early failures give 0, a failing extent stops the loop. The host is the
``host`` fixture, 2 x 4096 MiB: node 0 = MFNs [0, 0x100000), node 1 = [0x100000, 0x200000),
2097152 pages of RAM of which 2097145 are free at boot: MFN 0 never is, dom0's structure and
shared-info pages and node 1's 4 pages of heap metadata are Xen's. Each domain a test creates
costs Xen 2 pages more (PV) or 2 + 256 (HVM, with its initial HAP pool).
"""

from __future__ import annotations

from typing import Any

import pytest
from hypercalls import Guest

import hypervisor_model
from hypervisor_model import snapshot
from hypervisor_model.public.errno import EFAULT, EINVAL, ENOSYS, EPERM, ESRCH
from hypervisor_model.public.memory import (
    XENMEM_decrease_reservation,
    XENMEM_get_sharing_freed_pages,
    XENMEM_get_sharing_shared_pages,
    XENMEM_increase_reservation,
    XENMEM_maximum_gpfn,
    XENMEM_populate_physmap,
    XENMEMF_address_bits,
    XENMEMF_exact_node,
    XENMEMF_node,
    xen_memory_domain,
    xen_memory_reservation,
)
from hypervisor_model.public.xen import DOMID_SELF, HYPERVISOR_memory_op

BOOT_FREE = 2 * 4096 * 256 - 1 - 2 - 4  # 2097145
PV_XEN, HVM_XEN = 2, 2 + 256  # what a new PV / HVM domain costs Xen
NODE1 = range(0x100000, 0x200000)


def tot_pages(dom0: Guest, domid: int) -> int:
    return int(dom0.info(domid).tot_pages)


def free_pages(dom0: Guest) -> int:
    return int(dom0.physinfo().free_pages)


def mapped(hv: hypervisor_model.Hypervisor, domid: int, gfn: int) -> int | None:
    """The MFN an HVM domain's p2m maps at ``gfn``, if any."""
    d = hv.find_domain(domid)
    assert d is not None
    run = d.p2m.find(gfn)
    return None if run is None else run.value_at(gfn)


def raw_memory_op(
    hv: hypervisor_model.Hypervisor,
    op: int,
    *,
    domid: int,
    extent_start: int,
    nr_extents: int,
    order: int = 0,
    caller: int = 0,
) -> int:
    """A reservation op whose extent_start is any address, mapped or not."""
    return Guest(hv, caller).memory_op(
        op,
        xen_memory_reservation,
        dict(
            extent_start=extent_start,
            nr_extents=nr_extents,
            extent_order=order,
            mem_flags=0,
            domid=domid,
        ),
    )


# -- the count and the early failures --------------------------------------------------------

UNKNOWN = 0x1234
TARGET, OTHER = -1, -2  # placeholders for the HVM target and another domU in the table


@pytest.mark.parametrize(
    ("caller", "domid", "order", "flags", "nr", "done"),
    [
        pytest.param(0, TARGET, 0, 0, 3, 3, id="dom0-populates-3"),
        pytest.param(0, UNKNOWN, 0, 0, 1, 0, id="unknown-domain"),
        pytest.param(0, TARGET, 0, 0, 0, 0, id="no-extents"),
        # nr_extents must fit a continuation: at most UINT_MAX >> 6 = 0x3FFFFFF.
        pytest.param(0, TARGET, 0, 0, 0x4000000, 0, id="nr-extents-too-big"),
        # The limit itself is accepted: one listed extent, then the list ends.
        pytest.param(0, TARGET, 0, 0, 0x3FFFFFF, 1, id="nr-extents-limit"),
        pytest.param(0, TARGET, 0, XENMEMF_address_bits(12), 1, 0, id="address-bits-12"),
        pytest.param(0, TARGET, 0, XENMEMF_address_bits(13), 1, 1, id="address-bits-13"),
        # max_order is the CALLER's: control domain 18, domU 9.
        pytest.param(0, TARGET, 19, 0, 1, 0, id="dom0-order-19"),
        pytest.param(0, TARGET, 18, 0, 1, 1, id="dom0-order-18-for-a-domu"),
        pytest.param(TARGET, DOMID_SELF, 10, 0, 1, 0, id="domu-order-10"),
        pytest.param(TARGET, DOMID_SELF, 9, 0, 1, 1, id="domu-order-9"),
        # propagate_node: only the hardware/control domain may ask for an exact node.
        pytest.param(TARGET, DOMID_SELF, 0, XENMEMF_exact_node(0), 1, 0, id="domu-exact-node"),
        pytest.param(TARGET, DOMID_SELF, 0, XENMEMF_node(0), 1, 1, id="domu-node-hint"),
        pytest.param(0, TARGET, 0, XENMEMF_exact_node(0), 1, 1, id="dom0-exact-node"),
        pytest.param(0, TARGET, 0, XENMEMF_node(64), 1, 0, id="dom0-node-beyond-max"),
        # xsm_memory_adjust_reservation(XSM_TARGET): self or the control domain.
        pytest.param(TARGET, TARGET, 0, 0, 1, 1, id="domu-self-by-id"),
        pytest.param(TARGET, DOMID_SELF, 0, 0, 1, 1, id="domu-DOMID_SELF"),
        pytest.param(OTHER, TARGET, 0, 0, 1, 0, id="foreign-domu"),
    ],
)
def test_populate_returns_extents_done_and_0_for_early_failures(
    host: hypervisor_model.Hypervisor,
    dom0: Guest,
    caller: int,
    domid: int,
    order: int,
    flags: int,
    nr: int,
    done: int,
) -> None:
    """do_memory_op / construct_memop_from_reservation / populate_physmap."""
    target = dom0.create(hvm=True, max_mib=2048)
    other = dom0.create(hvm=True, max_mib=16)
    ids = {TARGET: target, OTHER: other}
    gfns = [i << order for i in range(nr if nr <= 3 else 1)]  # huge counts: a 1-entry list
    rc, _ = Guest(host, ids.get(caller, caller)).reservation(
        XENMEM_populate_physmap, ids.get(domid, domid), gfns, order, flags, nr_extents=nr
    )
    assert rc == done
    assert tot_pages(dom0, target) == done << order
    assert free_pages(dom0) == BOOT_FREE - 2 * HVM_XEN - (done << order)


@pytest.mark.parametrize(
    "op", [XENMEM_populate_physmap, XENMEM_increase_reservation, XENMEM_decrease_reservation]
)
def test_unreadable_reservation_gives_0(host: hypervisor_model.Hypervisor, op: int) -> None:
    """copy_from_guest of the reservation faults: the op returns start_extent, 0."""
    assert host.hypercall(HYPERVISOR_memory_op, op, 0xDEAD0000) == 0


def test_populate_with_an_unmapped_extent_list_gives_0(
    host: hypervisor_model.Hypervisor, dom0: Guest
) -> None:
    """The first gfn cannot be read (__copy_from_guest_offset): nothing is populated."""
    d = dom0.create(hvm=True, max_mib=16)
    rc = raw_memory_op(host, XENMEM_populate_physmap, domid=d, extent_start=0x1000, nr_extents=1)
    assert rc == 0
    assert tot_pages(dom0, d) == 0


@pytest.mark.parametrize("op", [XENMEM_populate_physmap, XENMEM_increase_reservation])
def test_extent_list_outside_the_guest_address_space_gives_0(
    host: hypervisor_model.Hypervisor, dom0: Guest, op: int
) -> None:
    """guest_handle_subrange_okay fails before any allocation, even for increase, which
    never reads its list."""
    d = dom0.create(hvm=True, max_mib=16)
    rc = raw_memory_op(host, op, domid=d, extent_start=1 << 47, nr_extents=1)
    assert rc == 0
    assert free_pages(dom0) == BOOT_FREE - HVM_XEN


# -- max_pages ---------------------------------------------------------------------------------


def test_new_domain_has_max_pages_0_so_populate_gives_0(dom0: Guest) -> None:
    """assign_pages refuses (E2BIG) and the page goes back to the heap (gotcha 6.2)."""
    d = dom0.create(hvm=True)
    assert dom0.info(d).max_pages == 0
    assert dom0.populate(d, [0]) == 0
    assert (tot_pages(dom0, d), free_pages(dom0)) == (0, BOOT_FREE - HVM_XEN)


def test_an_extent_crossing_max_pages_stops_the_loop(dom0: Guest) -> None:
    """max_mem 7 MiB = 1792 pages: three order-9 extents (1536) fit, the fourth (512 more)
    does not, so the count is 3; then 256 order-0 extents fit and the 257th stops."""
    d = dom0.create(hvm=True, max_mib=7)
    assert dom0.populate(d, [i << 9 for i in range(4)], 9) == 3
    assert tot_pages(dom0, d) == 1536
    assert dom0.populate(d, list(range(0x1000, 0x1000 + 300))) == 256
    assert tot_pages(dom0, d) == 1792
    assert free_pages(dom0) == BOOT_FREE - HVM_XEN - 1792


def test_lowering_max_pages_below_tot_pages_stops_allocation(dom0: Guest) -> None:
    """assign_pages: tot_pages > max_pages is EPERM inside, a count of 0 outside."""
    d = dom0.create(hvm=True, max_mib=4)
    assert dom0.populate(d, [0, 1]) == 2
    assert dom0.max_mem(d, 4) == 0  # 4 KiB: 1 page
    assert dom0.populate(d, [2]) == 0
    assert tot_pages(dom0, d) == 2


def test_increase_respects_max_pages(dom0: Guest) -> None:
    """max_mem 1 MiB = 256 pages: one order-8 extent fits, the second does not."""
    d = dom0.create(hvm=True, max_mib=1)
    rc, _ = dom0.reservation(XENMEM_increase_reservation, d, None, 8, nr_extents=2)
    assert rc == 1
    assert tot_pages(dom0, d) == 256


# -- PV and HVM ---------------------------------------------------------------------------------


def test_pv_domains_get_the_mfns_written_back(
    host: hypervisor_model.Hypervisor, dom0: Guest
) -> None:
    """A non-translated guest learns each extent's machine frame (__copy_mfn_to_guest_offset).
    A fresh domain's node-less extents go to node 1, then node 0 (round-robin)."""
    d = dom0.create(hvm=False, max_mib=16)
    rc, out = dom0.reservation(XENMEM_populate_physmap, d, [0x10, 0x20], 0)
    assert rc == 2
    assert out[0] in NODE1
    assert out[1] < NODE1.start
    # The frames are the domain's: decreasing them (PV names MFNs) frees both.
    assert dom0.decrease(d, out) == 2
    assert (tot_pages(dom0, d), free_pages(dom0)) == (0, BOOT_FREE - PV_XEN)


def test_hvm_domains_keep_their_gfns_in_the_list(
    host: hypervisor_model.Hypervisor, dom0: Guest
) -> None:
    d = dom0.create(hvm=True, max_mib=16)
    rc, out = dom0.reservation(XENMEM_populate_physmap, d, [0x10, 0x20], 0)
    assert (rc, out) == (2, [0x10, 0x20])
    assert mapped(host, d, 0x10) in NODE1
    assert mapped(host, d, 0x11) is None


def test_hvm_populate_over_a_mapped_gfn_keeps_the_old_page_allocated(
    host: hypervisor_model.Hypervisor, dom0: Guest
) -> None:
    """p2m_add_page drops the old mapping, but the old page stays the domain's."""
    d = dom0.create(hvm=True, max_mib=16)
    assert dom0.populate(d, [5]) == 1
    first = mapped(host, d, 5)
    assert dom0.populate(d, [5]) == 1
    second = mapped(host, d, 5)
    assert second not in (first, None)
    assert tot_pages(dom0, d) == 2
    assert free_pages(dom0) == BOOT_FREE - HVM_XEN - 2
    # Decreasing gfn 5 frees only the page mapped there now.
    assert dom0.decrease(d, [5]) == 1
    assert tot_pages(dom0, d) == 1
    assert free_pages(dom0) == BOOT_FREE - HVM_XEN - 1


def test_remapping_a_descending_run_unmaps_exactly_its_old_frames(
    host: hypervisor_model.Hypervisor, dom0: Guest
) -> None:
    """Order-0 pages of one node come top-down (the buddy keeps the upper half), so gfns 0
    and 1 map MFNs T and T-1: one p2m run that descends. Populating an order-1 extent over
    them must unmap exactly T and T-1 (p2m_add_page), which stay allocated and owned."""
    d = dom0.create(hvm=True, max_mib=16)
    assert dom0.populate(d, [0, 1], 0, XENMEMF_exact_node(1)) == 2
    top = mapped(host, d, 0)
    assert mapped(host, d, 1) == top - 1
    assert dom0.populate(d, [0], 1, XENMEMF_exact_node(1)) == 1
    assert tot_pages(dom0, d) == 4
    domain = host.find_domain(d)
    assert domain is not None
    assert domain.pages.covered(top - 1, top + 1) == 2  # still the domain's
    assert all(not top - 1 <= run.value <= top for run in domain.p2m)  # mapped nowhere
    host.check_invariants()


# -- decrease_reservation ---------------------------------------------------------------------


def test_decrease_frees_pages_back_to_the_heap(dom0: Guest) -> None:
    d = dom0.create(hvm=True, max_mib=16)
    assert dom0.populate(d, [0, 0x200], 9) == 2
    assert free_pages(dom0) == BOOT_FREE - HVM_XEN - 1024
    assert dom0.decrease(d, [0x200, 0], 9) == 2
    assert (tot_pages(dom0, d), free_pages(dom0)) == (0, BOOT_FREE - HVM_XEN)


def test_decrease_stops_at_the_first_unmapped_page_of_an_extent(
    host: hypervisor_model.Hypervisor, dom0: Guest
) -> None:
    """guest_remove_page page by page: gfns 4..7 are all mapped (extent done); of 0..3,
    0..2 are removed and freed, 3 is a hole, so the loop stops with 1 extent done."""
    d = dom0.create(hvm=True, max_mib=16)
    assert dom0.populate(d, [0, 1, 2, 4, 5, 6, 7]) == 7
    assert dom0.decrease(d, [4, 0, 8], 2) == 1
    assert tot_pages(dom0, d) == 0  # 7 - 4 - 3
    assert free_pages(dom0) == BOOT_FREE - HVM_XEN
    assert [mapped(host, d, g) for g in range(8)] == [None] * 8


def test_decrease_of_an_unmapped_gfn_gives_0(dom0: Guest) -> None:
    d = dom0.create(hvm=True, max_mib=16)
    assert dom0.populate(d, [1]) == 1
    assert dom0.decrease(d, [0]) == 0
    assert tot_pages(dom0, d) == 1


def test_decrease_on_pv_takes_mfns(dom0: Guest) -> None:
    """A PV guest names machine frames: MFN 1 (free, not the domain's) stops the loop
    (get_page fails: ENXIO); the domain's own MFNs are freed."""
    d = dom0.create(hvm=False, max_mib=16)
    rc, mfns = dom0.reservation(XENMEM_populate_physmap, d, [0, 1], 0)
    assert rc == 2
    assert dom0.decrease(d, [1]) == 0
    assert dom0.decrease(d, [*mfns, 1]) == 2
    assert (tot_pages(dom0, d), free_pages(dom0)) == (0, BOOT_FREE - PV_XEN)


def test_decrease_order_is_limited_by_the_callers_max_order(
    host: hypervisor_model.Hypervisor, dom0: Guest
) -> None:
    """dom0 maps an order-10 extent; the domU itself may not free it as one order-10 extent
    (domU max_order 9), dom0 may (18)."""
    d = dom0.create(hvm=True, max_mib=16)
    assert dom0.populate(d, [0], 10) == 1
    assert Guest(host, d).decrease(DOMID_SELF, [0], 10) == 0
    assert tot_pages(dom0, d) == 1024
    assert dom0.decrease(d, [0], 10) == 1
    assert tot_pages(dom0, d) == 0


def test_another_domu_cannot_decrease_a_foreign_domain(
    host: hypervisor_model.Hypervisor, dom0: Guest
) -> None:
    d = dom0.create(hvm=True, max_mib=16)
    other = dom0.create(hvm=True, max_mib=16)
    assert dom0.populate(d, [0]) == 1
    assert Guest(host, other).decrease(d, [0]) == 0
    assert Guest(host, d).decrease(DOMID_SELF, [0]) == 1


# -- increase_reservation ---------------------------------------------------------------------


def test_increase_with_a_null_list_allocates_unmapped_pages(
    host: hypervisor_model.Hypervisor, dom0: Guest
) -> None:
    d = dom0.create(hvm=True, max_mib=16)
    rc = raw_memory_op(host, XENMEM_increase_reservation, domid=d, extent_start=0, nr_extents=3)
    assert rc == 3
    assert tot_pages(dom0, d) == 3
    assert free_pages(dom0) == BOOT_FREE - HVM_XEN - 3
    assert [mapped(host, d, g) for g in range(3)] == [None] * 3
    assert dom0.decrease(d, [0]) == 0  # nothing is mapped to take back


def test_increase_on_pv_writes_the_mfns_back(dom0: Guest) -> None:
    """Order-1 extents on a fresh PV domain: node 1, then node 0."""
    d = dom0.create(hvm=False, max_mib=16)
    rc, mfns = dom0.reservation(XENMEM_increase_reservation, d, [0, 0], 1)
    assert rc == 2
    assert mfns[0] in NODE1 and mfns[1] < NODE1.start
    assert mfns[0] % 2 == mfns[1] % 2 == 0  # order-1 extents are 2-page aligned
    assert tot_pages(dom0, d) == 4
    assert dom0.decrease(d, mfns, 1) == 2  # the frames are the domain's
    assert tot_pages(dom0, d) == 0


# -- an extent list that ends early ------------------------------------------------------------


@pytest.mark.parametrize("hvm", [True, False], ids=["hvm", "pv"])
def test_populate_stops_at_the_first_unreadable_gfn(dom0: Guest, hvm: bool) -> None:
    """nr_extents 5, a list of 2: the third read faults, 2 extents are done."""
    d = dom0.create(hvm=hvm, max_mib=16)
    rc, _ = dom0.reservation(XENMEM_populate_physmap, d, [0, 1], nr_extents=5)
    assert rc == 2
    assert tot_pages(dom0, d) == 2


def test_decrease_stops_at_the_first_unreadable_gfn(dom0: Guest) -> None:
    d = dom0.create(hvm=True, max_mib=16)
    assert dom0.populate(d, [0, 1, 2]) == 3
    rc, _ = dom0.reservation(XENMEM_decrease_reservation, d, [0, 1], nr_extents=3)
    assert rc == 2
    assert tot_pages(dom0, d) == 1


def test_pv_increase_stops_when_the_mfn_cannot_be_written_back(dom0: Guest) -> None:
    """The third extent is allocated and assigned, then writing its MFN faults: the count
    is 2, but the domain keeps 3 pages (increase_reservation does not undo the allocation)."""
    d = dom0.create(hvm=False, max_mib=16)
    rc, _ = dom0.reservation(XENMEM_increase_reservation, d, [0, 0], nr_extents=5)
    assert rc == 2
    assert tot_pages(dom0, d) == 3
    assert free_pages(dom0) == BOOT_FREE - PV_XEN - 3


# -- scale -----------------------------------------------------------------------------------------


def test_a_1tib_guest_on_a_2tib_host() -> None:
    """8 nodes of 256 GiB (2^26 pages each, 2^29 in all) and a 1 TiB guest built from 1024
    order-18 extents. State stays proportional to extents, not pages.

    At boot each node is 256 order-18 blocks, except node 0, whose first block loses MFN 0
    and is cut into orders 0..17: 8 * 256 - 1 + 18 = 2065 blocks. Nodes 1-7 each give 4
    pages of one order-18 block (its head or tail) to their free lists: 16 blocks of orders
    2..17 replace it, 7 * 15 more. dom0's two pages split node 0's top order-18 block into
    orders 17..1: 16 more. 2065 + 105 + 16 = 2186 at boot.

    The domain's structure and shared info take node 0's order-1 remnant (-1 block); its
    256-page HAP pool takes 32 order-0 pages from each node round-robin, each time from the
    node's smallest block: the orders 2, 3 and 4 blocks (28 pages) and 4 pages of the
    order-5 one, which leaves orders 4, 3, 2: -1 block per node. Every extent then takes one
    whole order-18 block (above the DMA zone; round-robin, 128 per node): 2186 - 1 - 8 -
    1024 = 1153 blocks are left.
    """
    hv = hypervisor_model.boot(nodes=[262144] * 8)
    dom0 = Guest(hv)
    boot_free = free_pages(dom0)
    assert boot_free == (1 << 29) - 1 - 2 - 7 * 4
    assert hv.heap.free_block_count() == 2186
    d = dom0.create(hvm=True, max_mib=1 << 20)  # 1 TiB = 2^28 pages
    assert dom0.populate(d, [i << 18 for i in range(1024)], 18) == 1024
    assert tot_pages(dom0, d) == 1 << 28
    assert free_pages(dom0) == boot_free - HVM_XEN - (1 << 28)
    assert hv.heap.free_block_count() == 1153
    assert hv.heap.free_block_count() < 10_000
    hv.check_invariants()
    assert dom0.destroy(d) == 0
    assert free_pages(dom0) == boot_free
    assert hv.heap.free_block_count() == 2186
    hv.check_invariants()


def test_hvm_gfns_stop_at_the_4_level_p2m_limit(
    host: hypervisor_model.Hypervisor, dom0: Guest
) -> None:
    """ept_set_entry (and p2m-pt's p2m_find_entry) reject gfns at or above 2^36: the extent
    is allocated and assigned, mapping fails, the loop stops; the page stays the domain's."""
    d = dom0.create(hvm=True, max_mib=16)
    assert dom0.populate(d, [(1 << 36) - 1]) == 1
    assert dom0.populate(d, [1 << 36]) == 0
    assert tot_pages(dom0, d) == 2
    assert mapped(host, d, (1 << 36) - 1) is not None


# -- XENMEM_maximum_gpfn (memory.c; x86 domain_get_maximum_gpfn) --------------------------------


def maximum_gpfn(dom0: Guest, domid: int, caller: int = 0, cmd: int = XENMEM_maximum_gpfn) -> int:
    return Guest(dom0.hv, caller).memory_op(cmd, xen_memory_domain, dict(domid=domid))


def test_maximum_gpfn_is_the_highest_gfn_ever_mapped(dom0: Guest) -> None:
    """A fresh HVM guest: 0 (max_mapped_pfn starts at 0). Populate gfns 5 and 0x200..0x3ff
    (one order-9 extent): 0x3ff. Remove that extent again: still 0x3ff, never lowered.
    Populate gfn 7: still 0x3ff."""
    domid = dom0.create(max_mib=4)
    assert maximum_gpfn(dom0, domid) == 0
    assert dom0.populate(domid, [5]) == 1
    assert maximum_gpfn(dom0, domid) == 5
    assert dom0.populate(domid, [0x200], order=9) == 1
    assert maximum_gpfn(dom0, domid) == 0x3FF
    assert dom0.decrease(domid, [0x200], order=9) == 1
    assert maximum_gpfn(dom0, domid) == 0x3FF
    assert dom0.populate(domid, [7]) == 1
    assert maximum_gpfn(dom0, domid) == 0x3FF


def test_maximum_gpfn_of_a_pv_guest_is_0(dom0: Guest) -> None:
    """A PV guest's comes from the shared-info max_pfn, which nobody set: (0 ?: 1) - 1."""
    domid = dom0.create(hvm=False, max_mib=4)
    assert dom0.populate(domid, [0x300]) == 1
    assert maximum_gpfn(dom0, domid) == 0


def test_maximum_gpfn_of_self(dom0: Guest) -> None:
    """DOMID_SELF is the caller (rcu_lock_domain_by_any_id)."""
    domid = dom0.create(max_mib=4)
    assert dom0.populate(domid, [9]) == 1
    assert maximum_gpfn(dom0, DOMID_SELF, caller=domid) == 9


MAXIMUM_GPFN_ERRNOS = [
    # (what, caller, asked about, cmd, errno)
    ("domu-about-another", "other", "domu", XENMEM_maximum_gpfn, EPERM),
    ("missing-domain", 0, 42, XENMEM_maximum_gpfn, ESRCH),
    ("continuation-bits", 0, "domu", XENMEM_maximum_gpfn | 1 << 6, EINVAL),
]


@pytest.mark.parametrize(
    ("caller", "target", "cmd", "errno"),
    [r[1:] for r in MAXIMUM_GPFN_ERRNOS],
    ids=[r[0] for r in MAXIMUM_GPFN_ERRNOS],
)
def test_maximum_gpfn_errno(dom0: Guest, caller: Any, target: Any, cmd: int, errno: int) -> None:
    """xsm_memory_stat_reservation (XSM_TARGET) refuses a domU another domain's number."""
    domu, other = dom0.create(), dom0.create()
    names = {"domu": domu, "other": other}
    got = maximum_gpfn(dom0, names.get(target, target), caller=names.get(caller, caller), cmd=cmd)
    assert got == -errno


def test_maximum_gpfn_of_an_unreadable_domid_is_efault(dom0: Guest) -> None:
    assert dom0.hv.hypercall(HYPERVISOR_memory_op, XENMEM_maximum_gpfn, 0) == -EFAULT


def test_maximum_gpfn_survives_save_and_resume(dom0: Guest) -> None:
    """Saved with the domain; a state saved before the model kept it resumes with the
    highest gfn mapped at the time (the best there is)."""
    domid = dom0.create(max_mib=4)
    assert dom0.populate(domid, [0x200], order=9) == 1
    assert dom0.decrease(domid, [0x200], order=9) == 1
    assert dom0.populate(domid, [3]) == 1
    doc = snapshot.save_state(dom0.hv)
    assert maximum_gpfn(Guest(snapshot.load_state(doc)), domid) == 0x3FF
    for state in doc["domains"]:
        del state["max_mapped_pfn"]
    assert maximum_gpfn(Guest(snapshot.load_state(doc)), domid) == 3


@pytest.mark.parametrize("cmd", [XENMEM_get_sharing_freed_pages, XENMEM_get_sharing_shared_pages])
def test_sharing_counters_are_0_for_anyone(dom0: Guest, cmd: int) -> None:
    """No memory sharing on this host: nothing saved, nothing shared; the call never fails
    and takes no argument, but continuation bits make it no command (arch_memory_op
    switches on the whole cmd: ENOSYS)."""
    domu = dom0.create()
    hv = dom0.hv
    assert hv.hypercall(HYPERVISOR_memory_op, cmd, 0) == 0
    assert hv.hypercall(HYPERVISOR_memory_op, cmd, 0xDEAD, caller=domu) == 0
    assert hv.hypercall(HYPERVISOR_memory_op, cmd | 1 << 6, 0) == -ENOSYS


def test_pv_extents_from_alternating_nodes_save_in_few_rows(dom0: Guest) -> None:
    """8 extents of 2 MiB go to node 1 and node 0 in turn (round-robin, as above). Node 0
    gives the odd ones (gfns 512, 1536, 2560, 3584) from one block, top down: 4 runs of 512
    frames, each 512 frames above the last and 1024 gfns below it, saved as one row. Node 1's
    first come from the pieces its low end was split into, at no fixed stride: a row each.
    A version 3 state, a row per run, loads as the same host."""
    d = dom0.create(hvm=False, max_mib=16)
    assert dom0.populate(d, [i << 9 for i in range(8)], order=9) == 8
    doc = snapshot.save_state(dom0.hv)
    (rows,) = [state["pages"] for state in doc["domains"] if state["domain_id"] == d]
    assert len(rows) == 5 and rows[0][1:] == [512, 3584, 1, 4, 512, -1024]
    assert [row[1:] for row in rows[1:]] == [[512, g, 1] for g in (0, 2048, 1024, 3072)]
    runs = [[r.start, r.length, r.value, r.step] for r in dom0.hv.find_domain(d).pages]
    assert len(runs) == 8
    older = {**doc, "version": 3, "domains": [dict(state) for state in doc["domains"]]}
    for state in older["domains"]:
        if state["domain_id"] == d:
            state["pages"] = runs
    assert snapshot.save_state(snapshot.load_state(older)) == doc

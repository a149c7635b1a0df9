"""Fault injection for domain-builder tests (hypervisor_model/faults.py, ``hv.faults``).

Each test below is a worked example for people testing a domain builder: arm a fault on the
host, run the builder through libxenctrl, and check what it reports and what it left behind.
The plugin's teardown verifies every accounting invariant after each test.

Host: one node of 64 MiB (16384 pages, MFNs [0, 16384)) and 6 pages above it, 16384-16389,
which pay for what dom0 and the (at most two, PV) domains of a test cost Xen: each its
structure and shared-info page, the topmost free pages of the highest zone. MFN 0 is never
free. Once two domains exist the heap holds exactly the aligned blocks 1, 2-3, 4-7, ...,
8192-16383, 16383 free pages: the frames from 512 up make exactly 31 order-9 (2 MiB) blocks;
the 511 frames below 512 make none.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest

import hypervisor_model
import xenctrl
from xenctrl import XenError, xc_interface
from xenctrl.api import HOST, Xenctrl

pytestmark = pytest.mark.xen_host(ranges=[[[0, 16384 + 6]]])

FREE = 16383  # pages free once dom0 and two domains have had their Xen pages
ORDER_9_BLOCKS = 31  # (16384 - 512) / 512
EXTENT = 512  # pages in an order-9 extent


def new_domain(xch: xc_interface, max_pages: int = 32768) -> int:
    """A PV domain: it costs Xen two pages (an HVM guest's HAP pool would cost 256 more)."""
    d = xenctrl.xc_domain_create(xch, config=xenctrl.default_createdomain(hvm=False))
    xenctrl.xc_domain_setmaxmem(xch, d, max_pages * 4)
    return d


def gfns(count: int, start: int = 0) -> list[int]:
    """Guest frames of ``count`` consecutive order-9 extents."""
    return [start + i * EXTENT for i in range(count)]


def tot_pages(xch: xc_interface, domid: int) -> int:
    return xenctrl.xc_get_tot_pages(xch, domid)


def outstanding(xch: xc_interface) -> int:
    return int(xenctrl.xc_physinfo(xch).outstanding_pages)


def free_pages(xch: xc_interface) -> int:
    return int(xenctrl.xc_physinfo(xch).free_pages)


# -- allocations that fail ---------------------------------------------------------------------


def test_fail_next_allocations_makes_populate_exact_raise_ebusy(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface
) -> None:
    """Make the next N allocations of a domain fail, as if the heap had no suitable block.

    ``hv.faults.fail_next_allocations(2, domid=d)`` fails the next two extents of d. A builder
    that populates with ``xc_domain_populate_physmap_exact`` sees EBUSY (libxc's report of a
    short count) and ``tot_pages`` shows exactly what was allocated: nothing, since the
    first extent failed. A retry loop needs three attempts; the third populates all 4
    extents (2048 pages).
    """
    d = new_domain(xch)
    xen_host.faults.fail_next_allocations(2, domid=d)
    attempts: list[tuple[int, int]] = []  # (errno or 0, tot_pages after the attempt)
    for _ in range(3):
        try:
            xenctrl.xc_domain_populate_physmap_exact(xch, d, 4, 9, 0, gfns(4))
            attempts.append((0, tot_pages(xch, d)))
        except XenError as e:
            attempts.append((e.errno or 0, tot_pages(xch, d)))
    assert attempts == [(errno.EBUSY, 0), (errno.EBUSY, 0), (0, 4 * EXTENT)]


def test_a_failed_allocation_leaves_the_claim_intact(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface
) -> None:
    """A claim is only redeemed by an allocation that happens, so after an injected failure
    the domain still holds its whole claim of 2048 pages and can retry.

    Count-returning populate: 0 extents done, claim still 2048; the retry does 4 x 512 pages
    and uses the claim up.
    """
    d = new_domain(xch)
    xenctrl.xc_domain_claim_pages(xch, d, 4 * EXTENT)
    xen_host.faults.fail_next_allocations(1, domid=d)
    assert xenctrl.xc_domain_populate_physmap(xch, d, 4, 9, 0, gfns(4)) == 0
    assert (tot_pages(xch, d), outstanding(xch)) == (0, 2048)
    assert xenctrl.xc_domain_populate_physmap(xch, d, 4, 9, 0, gfns(4)) == 4
    assert (tot_pages(xch, d), outstanding(xch)) == (2048, 0)


def test_fail_next_allocations_without_domid_hits_whichever_domain_allocates_first(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface
) -> None:
    """With no domid, the next allocation of any domain fails: here d1's first extent; d2
    then populates normally."""
    d1, d2 = new_domain(xch), new_domain(xch)
    xen_host.faults.fail_next_allocations(1)
    assert xenctrl.xc_domain_populate_physmap(xch, d1, 1, 0, 0, [0]) == 0
    assert xenctrl.xc_domain_populate_physmap(xch, d2, 1, 0, 0, [0]) == 1


def test_fail_populate_at_stops_populate_at_that_guest_frame(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface
) -> None:
    """Fail the populate of one guest frame, to test a builder's partial-progress path.

    ``fail_populate_at(d, 0x900)`` fails the extent covering gfn 0x900 = 2304, i.e. the
    order-9 extent at 2048, the fifth of eight. populate_physmap stops at the first extent
    it cannot do, so it returns 4 (the extents before it) and d has 4 x 512 = 2048 pages.
    The fault fires once: populating the remaining four extents then succeeds.
    """
    d = new_domain(xch)
    xen_host.faults.fail_populate_at(d, 0x900)
    assert xenctrl.xc_domain_populate_physmap(xch, d, 8, 9, 0, gfns(8)) == 4
    assert tot_pages(xch, d) == 2048
    assert xenctrl.xc_domain_populate_physmap(xch, d, 4, 9, 0, gfns(4, start=2048)) == 4
    assert tot_pages(xch, d) == 4096


def test_fail_populate_at_only_concerns_its_domain(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface
) -> None:
    d1, d2 = new_domain(xch), new_domain(xch)
    xen_host.faults.fail_populate_at(d1, 0)
    assert xenctrl.xc_domain_populate_physmap(xch, d2, 1, 0, 0, [0]) == 1
    assert xenctrl.xc_domain_populate_physmap(xch, d1, 1, 0, 0, [0]) == 0


# -- pages going offline -----------------------------------------------------------------------


def test_offline_now_takes_free_pages_at_once_and_used_pages_when_freed(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface
) -> None:
    """Offline machine frames as a machine-check handler would.

    dom0's and this PV domain's Xen pages took 16389-16386, so 16385 pages are free and the
    domain's first order-0 page is the top of the order-1 block left at 16384: 16385,
    leaving 16384 free. Offlining both: the free one leaves the heap at once (free
    16385 - 1 - 1 = 16383); the used one is only marked pending, and when the guest gives it
    back it goes offline instead of returning to the heap, so free stays 16383.
    """
    ctl = Xenctrl(xen_host)
    d = ctl.domain_create(hvm=False)
    ctl.domain_setmaxmem(d, 4)
    assert ctl.domain_populate_physmap(d, [0]) == [16385]
    xen_host.faults.offline_now([16384, 16385])
    assert ctl.physinfo().free_pages == 16383
    ctl.domain_decrease_reservation(d, [16385])
    assert (ctl.domain_getinfo(d).tot_pages, ctl.physinfo().free_pages) == (0, 16383)


@pytest.mark.xen_host(nodes=[64, 64])
def test_offline_at_populate_recalls_node_claims_that_no_longer_fit(
    xen_host: hypervisor_model.Hypervisor, xenctrl_api: Xenctrl
) -> None:
    """Take pages offline at a chosen moment of a build: the recall of v7 claim sets.

    Two 64 MiB nodes: node 0 = MFNs [0, 16384) with 16379 free (MFN 0 and the Xen pages of
    dom0 and of the PV domain d are not), node 1 = [16384, 32768) with 16380 free (its
    first 4 pages hold its free lists); 32759 in all. d claims {0: 8192, 1: 16380} (node 1
    entirely) and populates 8 order-9 extents exactly on node 0. Just before the fifth (gfn
    2048), 1024 free node-1 frames go offline:

    - 4 extents done: claim on node 0 = 8192 - 2048 = 6144; free = 32759 - 2048 = 30711.
    - offline: node 1 free 16380 - 1024 = 15356 < its claim 16380, so the node-1 claim is
      cut by the excess to 15356; outstanding 6144 + 15356 = 21500 <= free 29687, so no
      host-wide recall is needed.
    - 4 more extents: node-0 claim 4096; free 29687 - 2048 = 27639; outstanding 19452.
    """
    ctl = xenctrl_api
    d = ctl.domain_create(hvm=False)
    ctl.domain_setmaxmem(d, 32768 * 4)
    ctl.domain_claim_memory(d, {0: 8192, 1: 16380})
    xen_host.faults.offline_at_populate(d, 2048, range(16388, 16388 + 1024))
    ctl.domain_populate_physmap(d, gfns(8), order=9, mem_flags=xenctrl.XENMEMF_exact_node(0))
    assert ctl.domain_get_claims(d) == {HOST: 0, 0: 4096, 1: 15356}
    info = ctl.physinfo()
    assert (info.free_pages, info.outstanding_pages) == (27639, 19452)
    assert [n.free for n in ctl.numainfo().nodes] == [12283 * 4096, 15356 * 4096]
    xen_host.check_invariants()


@pytest.mark.xen_host(nodes=[64, 64])
def test_offlining_recalls_host_wide_claims_first_then_node_claims(
    xen_host: hypervisor_model.Hypervisor, xenctrl_api: Xenctrl
) -> None:
    """v7 reserve_offlined_page: after pages leave a node, release only the excess, node
    claims of that node first, then host-wide claims (v7 notes §7).

    d (PV) claims every free page: {HOST: 759, 0: 16000, 1: 16000} = 32759 (16379 on node
    0, 16380 on node 1 past its 4 pages of heap metadata, 16384-16387).
    - Offline 100 node-1 frames: node 1 free 16280 still covers its 16000, but the host
      has 32659 free < 32759 claimed: 100 host-wide pages are released (HOST 659).
    - Offline 300 more: node 1 free 15980 < 16000, so 20 node-1 pages go (15980); then the
      host has 32359 free < 659 + 16000 + 15980 = 32639: 280 host-wide pages go (HOST 379).
    """
    ctl = xenctrl_api
    d = ctl.domain_create(hvm=False)
    ctl.domain_setmaxmem(d, 32767 * 4)
    ctl.domain_claim_memory(d, {HOST: 759, 0: 16000, 1: 16000})
    xen_host.faults.offline_now(range(16388, 16488))
    assert ctl.domain_get_claims(d) == {HOST: 659, 0: 16000, 1: 16000}
    xen_host.faults.offline_now(range(16488, 16788))
    assert ctl.domain_get_claims(d) == {HOST: 379, 0: 16000, 1: 15980}
    info = ctl.physinfo()
    assert (info.free_pages, info.outstanding_pages) == (32359, 32359)
    xen_host.check_invariants()


# -- a competing builder -----------------------------------------------------------------------


def toy_builder(xch: xc_interface, domid: int, pages: int, *, claim: bool) -> None:
    """A domain builder in three hypercalls: set the limit, stake a claim (optional),
    populate in order-9 extents, all or nothing."""
    xenctrl.xc_domain_setmaxmem(xch, domid, pages * 4)  # hypercall 1
    if claim:
        xenctrl.xc_domain_claim_pages(xch, domid, pages)  # hypercall 2
    n = pages // EXTENT
    xenctrl.xc_domain_populate_physmap_exact(xch, domid, n, 9, 0, gfns(n))  # last hypercall


def competitor(xch: xc_interface, extents: int) -> tuple[int, list[int], Callable[[], None]]:
    """Another builder's domain, and an action that populates ``extents`` order-9 extents
    for it (recording how many it got)."""
    other = new_domain(xch)
    got: list[int] = []

    def take_memory() -> None:
        got.append(xenctrl.xc_domain_populate_physmap(xch, other, extents, 9, 0, gfns(extents)))

    return other, got, take_memory


def test_a_competing_builder_makes_an_unprotected_populate_come_up_short(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface
) -> None:
    """Run another builder between two of your hypercalls to reproduce a boot-storm race.

    ``before_hypercall(action, caller=0, skip=1)`` lets the next dom0 hypercall through (our
    setmaxmem) and runs the action before the one after (our populate). The competitor
    takes 24 order-9 extents (12288 pages) of the 31 there are; our 16 extents find only
    the 7 left: EBUSY, with 7 x 512 = 3584 pages allocated to clean up.
    """
    d = new_domain(xch)
    other, got, take_memory = competitor(xch, 24)
    xen_host.faults.before_hypercall(take_memory, caller=0, skip=1)
    with pytest.raises(XenError) as e:
        toy_builder(xch, d, 16 * EXTENT, claim=False)
    assert e.value.errno == errno.EBUSY
    assert got == [24]
    assert (tot_pages(xch, d), tot_pages(xch, other)) == (7 * EXTENT, 24 * EXTENT)


def test_a_competing_builder_makes_a_late_claim_fail_with_enomem(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface
) -> None:
    """If the competitor gets in before the claim, the claim itself fails, cleanly: 12288
    pages taken leave 16383 - 12288 = 4095 free, less than the 8192 claimed: ENOMEM, and
    nothing was allocated or claimed for our domain."""
    d = new_domain(xch)
    _, got, take_memory = competitor(xch, 24)
    xen_host.faults.before_hypercall(take_memory, caller=0, skip=1)
    with pytest.raises(XenError) as e:
        toy_builder(xch, d, 16 * EXTENT, claim=True)
    assert e.value.errno == errno.ENOMEM
    assert got == [24]
    assert (tot_pages(xch, d), outstanding(xch), free_pages(xch)) == (0, 0, 4095)


def test_a_claim_staked_first_protects_the_populate(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface
) -> None:
    """The reason claims exist: stake the claim, then populate at leisure.

    The competitor now runs after our claim of 8192 (skip=2). Unclaimed memory is
    16383 - 8192 = 8191: its k-th extent passes the host check only while
    8192 + 512 <= 16383 - 512k, so it gets k = 0..14, 15 extents (7680 pages), and comes
    up short itself. Our 16 extents are covered by our claim and fit exactly in the
    31 - 15 = 16 order-9 blocks left: the build succeeds, the claim is used up, 511 pages
    stay free.
    """
    d = new_domain(xch)
    other, got, take_memory = competitor(xch, 24)
    xen_host.faults.before_hypercall(take_memory, caller=0, skip=2)
    toy_builder(xch, d, 16 * EXTENT, claim=True)
    assert got == [15]
    assert (tot_pages(xch, d), tot_pages(xch, other)) == (8192, 15 * EXTENT)
    assert (outstanding(xch), free_pages(xch)) == (0, FREE - 8192 - 7680)


# -- how faults behave -------------------------------------------------------------------------


def test_a_fault_fires_once(xen_host: hypervisor_model.Hypervisor, xch: xc_interface) -> None:
    """Armed faults are consumed: the action runs before one hypercall only."""
    runs: list[int] = []
    xen_host.faults.before_hypercall(lambda: runs.append(1))
    for _ in range(3):
        xenctrl.xc_physinfo(xch)
    assert runs == [1]


def test_clear_disarms_every_fault(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface
) -> None:
    d = new_domain(xch)
    runs: list[str] = []
    faults = xen_host.faults
    faults.fail_next_allocations(5)
    faults.fail_populate_at(d, 0)
    faults.at_populate(d, 512, lambda: runs.append("at_populate"))
    faults.before_hypercall(lambda: runs.append("before_hypercall"))
    faults.clear()
    assert xenctrl.xc_domain_populate_physmap(xch, d, 2, 9, 0, gfns(2)) == 2
    assert runs == []


def test_before_hypercall_counts_only_the_given_caller(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface
) -> None:
    """caller=1: dom0's hypercalls neither fire nor use up the skip; d1's second one fires
    (d1 may read the highest RAM frame itself). The handle is opened first: opening asks
    the host's version, one hypercall of d1's."""
    d = new_domain(xch)
    runs: list[int] = []
    with xenctrl.xc_interface_open(xen_host, domid=d) as guest:
        xen_host.faults.before_hypercall(lambda: runs.append(1), caller=d, skip=1)
        xenctrl.xc_physinfo(xch)
        xenctrl.xc_maximum_ram_page(guest)
        xenctrl.xc_physinfo(xch)
        assert runs == []
        xenctrl.xc_maximum_ram_page(guest)
    assert runs == [1]


def test_an_actions_own_hypercalls_do_not_trigger_before_hypercall_faults(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface
) -> None:
    """The competitor's hypercalls are not "your" calls: with A armed now and B armed to
    skip one call, A's own physinfo must not count, so B fires at our second call."""
    events: list[str] = []

    def a() -> None:
        events.append("A")
        xenctrl.xc_physinfo(xch)

    xen_host.faults.before_hypercall(a)
    xen_host.faults.before_hypercall(lambda: events.append("B"), skip=1)
    xenctrl.xc_maximum_ram_page(xch)
    assert events == ["A"]
    xenctrl.xc_maximum_ram_page(xch)
    assert events == ["A", "B"]


def test_an_action_stays_shielded_after_a_nested_action_ran(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface
) -> None:
    """Action A populates d's gfn 0, which runs the at_populate action N inside it; A's next
    hypercall is still A's own and must not fire C, armed to skip one of our calls."""
    d = new_domain(xch)
    events: list[str] = []

    def a() -> None:
        events.append("A")
        xenctrl.xc_domain_populate_physmap(xch, d, 1, 0, 0, [0])
        xenctrl.xc_physinfo(xch)

    xen_host.faults.at_populate(d, 0, lambda: events.append("N"))
    xen_host.faults.before_hypercall(a)
    xen_host.faults.before_hypercall(lambda: events.append("C"), skip=1)
    xenctrl.xc_maximum_ram_page(xch)
    assert events == ["A", "N"]
    xenctrl.xc_maximum_ram_page(xch)
    assert events == ["A", "N", "C"]

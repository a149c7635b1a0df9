"""Populate-on-demand (x86 p2m-pod.c, mm.c, memory.c): the PoD target and its cache,
entries marked by populate_physmap, and what decrease_reservation and destroy do with them.

Numbers are worked out by hand from Xen's rules in each test. Shorthands: a superpage is
512 pages (order 9); XENMEMF_populate_on_demand is 1 << 16; the default host has two nodes
of 4 GiB and gives a domain's pages from the two nodes in turn (cycle_node)."""

from __future__ import annotations

import pytest
from hypercalls import Guest

import hypervisor_model
from hypervisor_model.console import KEYS
from hypervisor_model.public import domctl, memory
from hypervisor_model.public.errno import EFAULT, EINVAL, ENOMEM, ENOSYS, EPERM, ESRCH
from hypervisor_model.public.xen import DOMID_SELF
from hypervisor_model.snapshot import load_state, save_state

SET, GET = memory.XENMEM_set_pod_target, memory.XENMEM_get_pod_target
POD = memory.XENMEMF_populate_on_demand
SP = 512  # pages in a superpage


def pod_guest(dom0: Guest, max_mib: int = 64) -> int:
    return dom0.create(max_mib=max_mib)  # HVM with HAP


def free(g: Guest) -> int:
    return int(g.physinfo().free_pages)


# -- the target and its cache ----------------------------------------------------------------


def test_the_cache_fills_in_superpages_while_512_or_more_are_missing(
    host: hypervisor_model.Hypervisor, dom0: Guest
) -> None:
    """A new guest populated nothing, so its cache is to hold the whole target: 8292 =
    16 * 512 + 100 pages, sixteen order-9 blocks then a hundred single pages, all the
    domain's (tot_pages 8292), half on each node (8 blocks and 50 pages: 4146 each)."""
    d = pod_guest(dom0)
    before, nodes = free(dom0), [dom0.node_free(0), dom0.node_free(1)]
    assert dom0.pod_target(SET, d, 8292) == (0, (8292, 8292, 0))
    assert dom0.pod_target(GET, d) == (0, (8292, 8292, 0))
    assert free(dom0) == before - 8292
    assert [dom0.node_free(0), dom0.node_free(1)] == [nodes[0] - 4146, nodes[1] - 4146]
    guest = host.find_domain(d)
    assert guest is not None
    assert (len(guest.pod_super), len(guest.pod_single)) == (16, 100)
    assert dom0.info(d).tot_pages == 8292


def test_a_cache_that_cannot_be_filled_is_enomem_and_keeps_what_it_got(
    small_host: hypervisor_model.Hypervisor,
) -> None:
    """One node of 1000 free pages (and room for dom0's and one domain's own 2 pages each):
    the HVM guest's 256-page HAP pool comes from the top, leaving 744 free pages from the
    node's first (512-aligned) frame. Target 1000: one superpage (the first 512 pages),
    then single pages until none is left, 232 of them: ENOMEM with 744 in the cache."""
    hv = small_host(1000, domains=1)
    g = Guest(hv)
    d = g.create(max_mib=16)
    assert free(g) == 744
    assert g.pod_target(SET, d, 1000)[0] == -ENOMEM
    assert g.pod_target(GET, d) == (0, (744, 744, 0))
    assert free(g) == 0
    guest = hv.find_domain(d)
    assert guest is not None
    assert (len(guest.pod_super), len(guest.pod_single)) == (1, 232)
    assert g.destroy(d) == 0
    assert free(g) == 1002  # all but dom0's two pages


def test_the_cache_does_not_use_memory_claimed_by_another(
    small_host: hypervisor_model.Hypervisor,
) -> None:
    """The same node with a PV domain's claim of 700 of its pages: 744 - 700 = 44 pages are
    unclaimed (too few for a superpage), so the cache gets 44 single pages: ENOMEM."""
    hv = small_host(1000, domains=2)
    g = Guest(hv)
    pv = g.create(hvm=False, max_mib=4)
    assert g.claim_pages(pv, 700) == 0
    d = g.create(max_mib=16)
    assert g.pod_target(SET, d, 1000)[0] == -ENOMEM
    assert g.pod_target(GET, d) == (0, (44, 44, 0))


def test_a_guest_s_claim_is_spent_on_its_cache(dom0: Guest) -> None:
    """meminit_hvm claims the target before setting it: the cache's pages redeem the claim
    as they are assigned, so a claim of exactly the target is all spent."""
    d = pod_guest(dom0)
    assert dom0.claim_pages(d, 8292) == 0
    assert dom0.info(d).outstanding_pages == 8292
    assert dom0.pod_target(SET, d, 8292) == (0, (8292, 8292, 0))
    assert (dom0.info(d).outstanding_pages, dom0.physinfo().outstanding_pages) == (0, 0)


def test_a_lower_target_leaves_the_cache_to_the_balloon_driver(dom0: Guest) -> None:
    """p2m_pod_set_mem_target never shrinks the cache: a target below tot_pages does
    nothing, and so does any target once memory is populated and no entry is left."""
    d = pod_guest(dom0)
    assert dom0.pod_target(SET, d, 4096)[1] == (4096, 4096, 0)
    assert dom0.pod_target(SET, d, 1000)[1] == (4096, 4096, 0)
    assert dom0.populate(d, [0]) == 1  # populated 1, entries 0
    assert dom0.pod_target(SET, d, 8192)[1] == (4097, 4096, 0)


def test_once_memory_is_populated_the_cache_covers_the_entries_at_most(dom0: Guest) -> None:
    """Populated P = tot - cache; the cache is to hold target - P, but no more than the
    entries outstanding: 1 populated page, 1000 entries, target 8192 -> cache 1000."""
    d = pod_guest(dom0)
    assert dom0.populate(d, [5000]) == 1
    assert dom0.populate(d, [0], order=3, flags=POD) == 1  # 8 entries
    assert dom0.populate(d, [8], order=3, flags=POD) == 1  # 16
    assert dom0.populate(d, [1024], order=10, flags=POD) == 1  # 1040
    assert dom0.decrease(d, [1024], order=5) == 1  # 1008 entries
    assert dom0.decrease(d, [1056], order=3) == 1  # 1000 entries
    assert dom0.pod_target(SET, d, 8192)[1] == (1001, 1000, 1000)


# -- marking entries -------------------------------------------------------------------------


def test_populate_on_demand_marks_entries_and_allocates_nothing(
    host: hypervisor_model.Hypervisor, dom0: Guest
) -> None:
    """One order-14 extent at gfn 0 marks 16384 gfns; every extent counts as done; no page
    leaves the heap and the highest gfn ever mapped is 16383."""
    d = pod_guest(dom0)
    dom0.pod_target(SET, d, 8192)
    before = free(dom0)
    assert dom0.populate(d, [0], order=14, flags=POD) == 1
    assert dom0.pod_target(GET, d)[1] == (8192, 8192, 16384)
    assert free(dom0) == before
    maximum_gpfn = dom0.memory_op(
        memory.XENMEM_maximum_gpfn, memory.xen_memory_domain, dict(domid=d)
    )
    assert maximum_gpfn == 16383
    # extents of any order up to MAX_ORDER (18), more than the 9 a guest's memory may use
    assert dom0.populate(d, [1 << 18], order=18, flags=POD) == 1
    assert dom0.populate(d, [1 << 19], order=19, flags=POD) == 0
    assert dom0.pod_target(GET, d)[1] == (8192, 8192, 16384 + 262144)


def test_marking_entries_again_replaces_them(dom0: Guest) -> None:
    d = pod_guest(dom0)
    assert dom0.populate(d, [0, 512], order=9, flags=POD) == 2
    assert dom0.populate(d, [256], order=9, flags=POD) == 1  # 256 chunks of order 8
    assert dom0.pod_target(GET, d)[1] == (0, 0, 1024)


def test_marking_over_memory_is_ebusy_chunk_by_chunk(dom0: Guest) -> None:
    """gfn 20000 holds a page. An order-10 extent at 0x4D00 = 19712 is marked in chunks of
    order ffs(0x4D00 | 0x400) - 1 = 8: [19712, 19968) is marked, [19968, 20224) holds gfn
    20000 (EBUSY): the extent fails (0 done) with its first 256 entries made."""
    d = pod_guest(dom0)
    assert dom0.populate(d, [20000]) == 1
    assert dom0.populate(d, [0x4D00], order=10, flags=POD) == 0
    assert dom0.pod_target(GET, d)[1] == (1, 0, 256)
    assert dom0.populate(d, [19999, 20001], flags=POD) == 2  # single pages either side
    assert dom0.pod_target(GET, d)[1] == (1, 0, 258)


def test_memory_populated_over_entries_replaces_them(dom0: Guest) -> None:
    """p2m_add_page over PoD entries: the count drops by the entries replaced."""
    d = pod_guest(dom0)
    assert dom0.populate(d, [0], order=10, flags=POD) == 1
    assert dom0.populate(d, [512], order=9) == 1
    assert dom0.populate(d, [3]) == 1
    assert dom0.pod_target(GET, d)[1] == (513, 0, 1024 - 513)


def test_pv_guests_count_pod_extents_as_done_and_nothing_changes(
    host: hypervisor_model.Hypervisor, dom0: Guest
) -> None:
    pv = dom0.create(hvm=False, max_mib=64)
    assert dom0.populate(pv, [0, 4096], order=9, flags=POD) == 2
    guest = host.find_domain(pv)
    assert guest is not None and (guest.pod_entry_count, guest.tot_pages) == (0, 0)
    assert dom0.pod_target(GET, pv)[0] == -EINVAL  # "is_hvm_domain" first
    assert dom0.pod_target(SET, pv, 16)[0] == -EINVAL


def test_a_guest_cannot_mark_its_own_entries(host: hypervisor_model.Hypervisor) -> None:
    """Populate-on-demand on oneself is refused at the first extent (0 done)."""
    g = Guest(host)
    d = g.create(max_mib=64)
    assert Guest(host, d).populate(DOMID_SELF, [0], flags=POD) == 0
    assert Guest(host, d).populate(DOMID_SELF, [0]) == 1  # plain populate is allowed


def test_entries_beyond_the_p2m_crash_the_domain_unless_one_page(dom0: Guest) -> None:
    """The p2m has four levels: gfn 2^36 cannot be set. One page: the extent fails. An
    order-9 chunk: Xen cannot tell what changed and crashes the domain (SHUTDOWN_crash 3,
    shown as shut down)."""
    d = pod_guest(dom0)
    assert dom0.populate(d, [1 << 36], flags=POD) == 0
    assert not dom0.info(d).flags & domctl.XEN_DOMINF_shutdown
    assert dom0.populate(d, [(1 << 36) - 512, 1 << 36], order=9, flags=POD) == 1
    flags = dom0.info(d).flags
    assert flags & domctl.XEN_DOMINF_shutdown
    assert flags >> domctl.XEN_DOMINF_shutdownshift == 3
    assert dom0.pod_target(GET, d)[1] == (0, 0, 512)


# -- giving memory back ----------------------------------------------------------------------


def test_decreasing_entries_frees_nothing_while_they_outnumber_the_cache(dom0: Guest) -> None:
    """16384 entries, 8192 cached: giving back a 512-entry extent leaves 15872; the cache,
    still fewer pages than entries, stays."""
    d = pod_guest(dom0)
    dom0.pod_target(SET, d, 8192)
    dom0.populate(d, [0], order=14, flags=POD)
    before = free(dom0)
    assert dom0.decrease(d, [0], order=9) == 1
    assert dom0.pod_target(GET, d)[1] == (8192, 8192, 15872)
    assert free(dom0) == before


def test_the_cache_shrinks_to_the_entries_left(host: hypervisor_model.Hypervisor) -> None:
    """8292 cached (16 superpages, 100 pages) for 8292 entries at gfn 0. Giving back the
    1024 entries [7168, 8192) leaves 7268: the cache frees down to them, a superpage while
    more than 512 too many (1024 -> one, 512 left), then single pages: its 100, then a
    superpage broken up and 412 of its pages. 7268 = 14 superpages + 100 single pages;
    1024 pages back in the heap."""
    g = Guest(host)
    d = pod_guest(g)
    g.pod_target(SET, d, 8292)
    assert g.populate(d, list(range(0, 8192, SP)), order=9, flags=POD) == 16
    assert g.populate(d, list(range(8192, 8292)), flags=POD) == 100
    before = free(g)
    assert g.decrease(d, [7168], order=10) == 1
    assert g.pod_target(GET, d)[1] == (7268, 7268, 7268)
    guest = host.find_domain(d)
    assert guest is not None and (len(guest.pod_super), len(guest.pod_single)) == (14, 100)
    assert free(g) == before + 1024
    assert g.decrease(d, [8291]) == 1  # one more: one page freed, the cache's head
    assert g.pod_target(GET, d)[1] == (7267, 7267, 7267)


def test_stealing_freed_memory_for_the_cache(host: hypervisor_model.Hypervisor) -> None:
    """While entries outnumber the cache, memory the guest gives back goes to the cache
    instead of the heap: tot_pages and free memory stay, the cache grows by the page."""
    g = Guest(host)
    d = pod_guest(g)
    g.pod_target(SET, d, 100)
    assert g.populate(d, [0], order=9, flags=POD) == 1
    assert g.populate(d, [600]) == 1
    before = free(g)
    assert g.decrease(d, [600]) == 1
    assert g.pod_target(GET, d)[1] == (101, 101, 512)
    assert free(g) == before


def test_stealing_takes_a_whole_superpage_mapping(host: hypervisor_model.Hypervisor) -> None:
    """A 2 MiB extent mapped as one superpage given back while 1024 entries outnumber an
    empty cache: the whole block goes to the cache's superpage list in one step."""
    g = Guest(host)
    d = pod_guest(g)
    assert g.populate(d, [0], order=10, flags=POD) == 1
    assert g.populate(d, [2048], order=9) == 1
    assert g.decrease(d, [2048], order=9) == 1
    assert g.pod_target(GET, d)[1] == (512, 512, 1024)
    guest = host.find_domain(d)
    assert guest is not None and (len(guest.pod_super), len(guest.pod_single)) == (1, 0)


def test_a_hole_beyond_what_pod_dealt_with_fails_the_extent(dom0: Guest) -> None:
    """[1024, 1040): 8 entries, then a page, then 7 gfns never populated. PoD clears the 8
    and steals the page (entries outnumber the empty cache): 9 dealt with. The
    guest_remove_page loop then expects 9 holes: it meets 10 (the 10th at gfn 1033), so
    the extent fails (0 done), though the entries are gone and the page is in the cache."""
    d = pod_guest(dom0)
    assert dom0.populate(d, [1024], order=3, flags=POD) == 1
    assert dom0.populate(d, [2048], order=9, flags=POD) == 1
    assert dom0.populate(d, [1032]) == 1
    assert dom0.decrease(d, [1024], order=4) == 0
    assert dom0.pod_target(GET, d)[1] == (1, 1, 512)


def test_without_entries_decrease_frees_plain_memory(dom0: Guest) -> None:
    """With no PoD entry p2m_pod_decrease_reservation does nothing: the pages are freed."""
    d = pod_guest(dom0)
    before = free(dom0)
    assert dom0.populate(d, [0], order=2) == 1
    assert dom0.decrease(d, [0], order=2) == 1
    assert dom0.pod_target(GET, d)[1] == (0, 0, 0)
    assert free(dom0) == before


def test_pod_state_survives_save_and_resume(dom0: Guest) -> None:
    """Entries, cache lists and counters are saved; the resumed host saves the same."""
    d = pod_guest(dom0)
    dom0.pod_target(SET, d, 1000)
    dom0.populate(d, [0], order=12, flags=POD)
    dom0.populate(d, [8192], order=9)
    dom0.decrease(d, [8192], order=9)  # stolen: a superpage in the cache
    doc = save_state(dom0.hv)
    again = load_state(doc)
    assert save_state(again) == doc
    assert Guest(again).pod_target(GET, d)[1] == (1512, 1512, 4096)


def test_destroy_gives_back_the_cache(dom0: Guest) -> None:
    before = free(dom0)
    d = pod_guest(dom0)
    dom0.pod_target(SET, d, 8292)
    dom0.populate(d, [0], order=14, flags=POD)
    dom0.populate(d, [20000], order=9)
    assert dom0.destroy(d) == 0
    assert free(dom0) == before
    assert dom0.pod_target(GET, d)[0] == -ESRCH


# -- bad input -------------------------------------------------------------------------------


def test_pod_target_errors_change_nothing(host: hypervisor_model.Hypervisor) -> None:
    """x86 arch_memory_op's order: EFAULT reading, ESRCH, EINVAL for PV, EPERM for anyone
    but the control domain (XSM_PRIV, even for itself), EINVAL above max_pages; the whole
    cmd is switched on, so continuation bits make it ENOSYS."""
    g = Guest(host)
    d = pod_guest(g)  # max 16384 pages
    assert g.pod_target(SET, d, 16, arg=0x1000)[0] == -EFAULT
    assert g.pod_target(SET, 999, 16)[0] == -ESRCH
    assert Guest(host, d).pod_target(SET, DOMID_SELF, 16)[0] == -EPERM
    assert Guest(host, d).pod_target(GET, DOMID_SELF)[0] == -EPERM
    assert g.pod_target(SET, d, 16385)[0] == -EINVAL
    assert g.pod_target(SET | (1 << memory.MEMOP_EXTENT_SHIFT), d, 16)[0] == -ENOSYS
    assert g.pod_target(GET | (1 << memory.MEMOP_EXTENT_SHIFT), d)[0] == -ENOSYS
    assert g.pod_target(GET, d) == (0, (0, 0, 0))
    assert g.pod_target(SET, d, 16384) == (0, (16384, 16384, 0))  # max_pages itself is fine


def test_a_dying_guest_s_target_is_left_alone(host: hypervisor_model.Hypervisor) -> None:
    """p2m_pod_set_mem_target does nothing for a dying domain."""
    g = Guest(host)
    d = pod_guest(g)
    guest = host.find_domain(d)
    assert guest is not None
    guest.is_dying = 1  # as between domain_kill's steps
    assert g.pod_target(SET, d, 100) == (0, (0, 0, 0))
    guest.is_dying = 0


@pytest.mark.parametrize("order", [0, 9])
def test_decrease_reservation_of_a_pv_guest_ignores_pod(dom0: Guest, order: int) -> None:
    pv = dom0.create(hvm=False, max_mib=64)
    assert dom0.decrease(pv, [0], order=order) == 0  # nothing there (ENXIO)


def test_the_u_key_leaves_the_cache_out_of_the_per_node_counts(
    host: hypervisor_model.Hypervisor, dom0: Guest
) -> None:
    """dump_numa counts d->page_list, which the cache is not on: 100 cached pages and one
    populated page (node 0 or 1) show as total 101 with 1 page on the nodes."""
    d = pod_guest(dom0)
    dom0.pod_target(SET, d, 100)
    dom0.populate(d, [0], flags=memory.XENMEMF_exact_node(1))
    text = KEYS["u"][1](host, "u")
    lines = text.splitlines()
    at = lines.index(f"d{d} (total: 101):")
    assert lines[at + 1 : at + 3] == ["    Node 0: 0", "    Node 1: 1"]

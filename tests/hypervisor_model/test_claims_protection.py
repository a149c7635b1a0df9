"""What claims protect and how allocations spend them.

Rules: the host-wide check in alloc_heap_pages (fact sheet §2.4, v7 notes §6, gotcha 4), the
v7 per-node check in get_free_buddy (notes §5), redemption (notes §4: the allocation's node,
then host-wide, then other nodes ascending; min(outstanding_pages, 2^order) in all), a claim
lost when assign_pages fails (fact sheet §2.4, gotcha 3), and allocations that are not
reference-counted (MEMF_no_refcount or no domain), which never use claims.
Small hosts put node n at MFN 0x1000 + 0x200 * n with exactly the pages asked for free
(the fixture pays Xen's costs on top). The domains are PV: each costs Xen two pages of node 0
at createdomain, where an HVM guest's HAP pool would swamp a small node. Every expected number
is worked out by hand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import hypervisor_model
from hypervisor_model.heap import NR_ZONES
from hypervisor_model.memflags import MEMF_exact_node, MEMF_no_refcount, MEMF_node
from hypervisor_model.public.domctl import XEN_DOMCTL_CLAIM_MEMORY_HOST as HOST
from hypervisor_model.public.memory import (
    XENMEM_populate_physmap,
    XENMEMF_exact_node,
    XENMEMF_node,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from hypercalls import Guest

    SmallHost = Callable[..., hypervisor_model.Hypervisor]

UNLIMITED_KB = (1 << 64) - 1  # max_pages 0xFFFFFFFF


def new_domain(g: Guest, max_kb: int = UNLIMITED_KB) -> int:
    d = g.create(hvm=False)
    assert g.max_mem(d, max_kb) == 0
    return d


def claim_set(g: Guest, domid: int, entries: Sequence[tuple[int, int]]) -> int:
    return g.claim_set(domid, entries)


def claims(g: Guest, domid: int) -> list[tuple[int, int]]:
    rc, nr, entries = g.claim_get(domid, 65)
    assert rc == 0 and nr == len(entries)
    return entries


def totals(g: Guest) -> tuple[int, int]:
    """(outstanding_claims, free pages) from physinfo."""
    info = g.physinfo()
    return int(info.outstanding_pages), int(info.free_pages)


# -- the host-wide check ---------------------------------------------------------------

HOST_CHECK_CASES: list[Any] = [
    # claim of d1, who allocates, order, populated?, d1's claim after, free after (of 16)
    pytest.param(13, "d1", 2, True, 9, 12, id="own-claim-covers-order-2"),
    pytest.param(13, "d2", 2, False, 13, 16, id="other-13+4-above-16"),
    pytest.param(13, "d2", 1, True, 13, 14, id="other-13+2-fits"),
    pytest.param(15, "d2", 0, True, 15, 15, id="other-15+1-fits-exactly"),
    pytest.param(16, "d2", 0, False, 16, 16, id="other-all-claimed"),
    pytest.param(3, "d1", 2, True, 0, 12, id="unclaimed-covers-redeem-min-3-4"),
    pytest.param(16, "d1", 4, True, 0, 0, id="own-claim-16-covers-order-4"),
    pytest.param(14, "d1", 4, False, 14, 16, id="gotcha-4-claim-14-short-of-16"),
]


@pytest.mark.parametrize(
    ("claim", "who", "order", "ok", "claim_after", "free_after"), HOST_CHECK_CASES
)
def test_host_check(
    small_host: SmallHost,
    guest_class: type[Guest],
    claim: int,
    who: str,
    order: int,
    ok: bool,
    claim_after: int,
    free_after: int,
) -> None:
    """alloc_heap_pages fails when outstanding_claims + 2^order > free and the requester's
    own claim is below 2^order: partial coverage by the claim does not count (gotcha 4).
    One node of 16 pages (a single order-4 buddy); d1 holds a host-wide claim."""
    dom0 = guest_class(small_host(16, domains=2))
    d1, d2 = new_domain(dom0), new_domain(dom0)
    assert claim_set(dom0, d1, [(HOST, claim)]) == 0
    domid = d1 if who == "d1" else d2
    assert dom0.populate(domid, [0], order) == (1 if ok else 0)
    assert dom0.info(d1).outstanding_pages == claim_after
    assert totals(dom0) == (claim_after, free_after)


def test_gotcha_4_order_9_with_511_claimed_pages_left(
    small_host: SmallHost, guest_class: type[Guest]
) -> None:
    """One node of 1024 pages. d1 claims 1023 (1 page unclaimed); after one order-9 extent
    511 claimed pages are left, and 511 + 1 unclaimed = 512 free would cover another order-9
    extent, but the check wants the claim itself to cover 512 (v6 allowed this, v7 not)."""
    dom0 = guest_class(small_host(1024, domains=2))
    d1, d2 = new_domain(dom0), new_domain(dom0)
    assert dom0.claim_pages(d1, 1023) == 0
    assert dom0.populate(d1, [0], 9) == 1  # 1023 + 512 > 1024, but 1023 >= 512
    assert totals(dom0) == (511, 512)
    assert dom0.populate(d1, [512], 9) == 0  # 511 + 512 > 512 and 511 < 512
    assert totals(dom0) == (511, 512)
    assert dom0.populate(d1, [512], 8) == 1  # 511 >= 256: redeems 256
    assert totals(dom0) == (255, 256)
    assert dom0.populate(d2, [0]) == 1  # the one unclaimed page: 255 + 1 <= 256
    assert dom0.populate(d2, [1]) == 0  # 255 + 1 > 255, d2 holds no claim
    assert totals(dom0) == (255, 255)


def test_host_check_counts_node_claims_as_cover(
    small_host: SmallHost, guest_class: type[Guest]
) -> None:
    """The host check compares 2^order with the domain's whole outstanding_pages, node claims
    included: d1's claim on node 0 lets it allocate on node 1 while d2's host-wide claim
    leaves nothing unclaimed; redemption then takes the page from d1's node-0 claim (the
    other-nodes step), so the host stays fully covered: 7 claimed of 7 free."""
    dom0 = guest_class(small_host(4, 4, domains=2))
    d1, d2 = new_domain(dom0), new_domain(dom0)
    assert claim_set(dom0, d1, [(0, 4)]) == 0
    assert claim_set(dom0, d2, [(HOST, 4)]) == 0
    assert dom0.populate(d1, [0], 0, XENMEMF_exact_node(1)) == 1
    assert claims(dom0, d1) == [(HOST, 0), (0, 3)]
    assert totals(dom0) == (7, 7)
    assert (dom0.node_free(0), dom0.node_free(1)) == (4, 3)


# -- the per-node check ----------------------------------------------------------------


def test_node_claim_of_another_domain_is_unavailable(
    small_host: SmallHost, guest_class: type[Guest]
) -> None:
    """get_free_buddy skips a node whose free pages minus others' node claims are fewer
    than 2^order: exact-node requests fail, others fall back to the next node. d1 claims 3
    of node 0's 4 pages; d1 itself may still use them (its own claim adds back)."""
    dom0 = guest_class(small_host(4, 4, domains=2))
    d1, d2 = new_domain(dom0), new_domain(dom0)
    assert claim_set(dom0, d1, [(0, 3)]) == 0
    x0 = XENMEMF_exact_node(0)
    assert dom0.populate(d2, [0], 1, x0) == 0  # 4 - 3 = 1 < 2
    assert dom0.populate(d2, [0], 0, x0) == 1  # 1 >= 1
    assert dom0.populate(d2, [1], 0, x0) == 0  # 3 - 3 = 0 < 1
    assert dom0.populate(d2, [1], 0, XENMEMF_node(0)) == 1  # falls back to node 1
    assert (dom0.node_free(0), dom0.node_free(1)) == (3, 3)
    assert dom0.populate(d1, [0, 1, 2], 0, x0) == 3  # 3 - 3 + 3, 2 - 2 + 2, 1 - 1 + 1
    assert (dom0.node_free(0), dom0.node_free(1)) == (0, 3)
    assert totals(dom0) == (0, 3)


def test_host_wide_claim_gives_no_node_allowance(
    small_host: SmallHost, guest_class: type[Guest]
) -> None:
    """Only d->claims[node] raises a node's allowance: d2 claims all of node 0, d1 holds
    4 host-wide. d1 passes the host check (its 4 >= 1) but node 0 gives 4 - 4 + 0 = 0, so an
    exact node-0 request fails; node 1 serves it and the host-wide claim pays."""
    dom0 = guest_class(small_host(4, 4, domains=2))
    d1, d2 = new_domain(dom0), new_domain(dom0)
    assert claim_set(dom0, d2, [(0, 4)]) == 0
    assert claim_set(dom0, d1, [(HOST, 4)]) == 0
    assert dom0.populate(d1, [0], 0, XENMEMF_exact_node(0)) == 0
    assert dom0.populate(d1, [0], 0, XENMEMF_exact_node(1)) == 1
    assert claims(dom0, d1) == [(HOST, 3)]
    assert totals(dom0) == (7, 7)


def test_own_claim_on_another_node_passes_host_check_but_not_node_check(
    small_host: SmallHost, guest_class: type[Guest]
) -> None:
    """d1 claims node 0, d2 node 1 (8 of 8). d1's exact node-1 request passes the host check
    (d1 holds 4) and fails the node check (4 - 4 + 0); a preferred, non-exact node-1
    request falls back to node 0 and spends d1's node-0 claim."""
    dom0 = guest_class(small_host(4, 4, domains=2))
    d1, d2 = new_domain(dom0), new_domain(dom0)
    assert claim_set(dom0, d1, [(0, 4)]) == 0
    assert claim_set(dom0, d2, [(1, 4)]) == 0
    assert dom0.populate(d1, [0], 0, XENMEMF_exact_node(1)) == 0
    assert dom0.populate(d1, [0], 0, XENMEMF_node(1)) == 1
    assert claims(dom0, d1) == [(HOST, 0), (0, 3)]
    assert (dom0.node_free(0), dom0.node_free(1)) == (3, 4)


# -- redemption order --------------------------------------------------------------------


def test_redemption_order(small_host: SmallHost, guest_class: type[Guest]) -> None:
    """Notes §4: redeem min(outstanding, 2^order): first the allocation node's claim, then
    the host-wide claim, then other nodes in ascending order. Three nodes of 8 pages;
    d1 sets {n2 3, HOST 2, n1 3, n0 2} = 10."""
    dom0 = guest_class(small_host(8, 8, 8, domains=1))
    d = new_domain(dom0)
    assert claim_set(dom0, d, [(2, 3), (HOST, 2), (1, 3), (0, 2)]) == 0
    steps = [
        # order, node, gfn, claims after
        (1, 0, 0, [(HOST, 2), (1, 3), (2, 3)]),  # n0 pays 2
        (2, 0, 4, [(HOST, 0), (1, 1), (2, 3)]),  # n0 has 0; host pays 2, then n1 (< n2) 2
        (1, 2, 8, [(HOST, 0), (1, 1), (2, 1)]),  # n2 pays 2
        (2, 2, 12, [(HOST, 0)]),  # only 2 left of 4: n2 pays 1, host 0, n1 pays 1
    ]
    for order, node, gfn, after in steps:
        assert dom0.populate(d, [gfn], order, XENMEMF_exact_node(node)) == 1
        assert claims(dom0, d) == after
    assert totals(dom0) == (0, 24 - 2 - 4 - 2 - 4)


def test_node_less_allocation_spends_node_claims_elsewhere(
    small_host: SmallHost, guest_class: type[Guest]
) -> None:
    """A fresh domain's first node-less extent goes to node 1 (round robin after
    last_alloc_node 0); with only a node-0 claim, redemption takes it from node 0."""
    dom0 = guest_class(small_host(4, 4, domains=1))
    d = new_domain(dom0)
    assert claim_set(dom0, d, [(0, 2)]) == 0
    assert dom0.populate(d, [0]) == 1
    assert (dom0.node_free(0), dom0.node_free(1)) == (4, 3)
    assert claims(dom0, d) == [(HOST, 0), (0, 1)]


# -- claims are spent before assignment --------------------------------------------------


def test_claim_redeemed_for_pages_that_fail_assignment_is_lost(
    small_host: SmallHost, guest_class: type[Guest]
) -> None:
    """Fact sheet §2.4 / gotcha 3: 8 pages; d1 (max_pages 8) claims 4, then max_pages drops
    to 2. An order-2 extent is allocated, its 4 pages redeem the whole claim, assign_pages
    refuses them (4 > 2 - 0: E2BIG) and frees them: nothing populated, claim gone."""
    dom0 = guest_class(small_host(8, domains=1))
    d = new_domain(dom0, max_kb=8 * 4)
    assert claim_set(dom0, d, [(HOST, 4)]) == 0
    assert dom0.max_mem(d, 2 * 4) == 0
    assert dom0.populate(d, [0], 2) == 0
    info = dom0.info(d)
    assert (info.tot_pages, info.outstanding_pages) == (0, 0)
    assert totals(dom0) == (0, 8)


def test_freeing_pages_never_restores_a_claim(
    small_host: SmallHost, guest_class: type[Guest]
) -> None:
    """Claim 4, populate 2 (claim 2), give both back (by MFN: the domain is PV): the claim
    stays 2, free is 8 again."""
    dom0 = guest_class(small_host(8, domains=1))
    d = new_domain(dom0)
    assert claim_set(dom0, d, [(HOST, 4)]) == 0
    rc, mfns = dom0.reservation(XENMEM_populate_physmap, d, [0, 1])
    assert rc == 2
    assert dom0.decrease(d, mfns) == 2
    assert dom0.info(d).outstanding_pages == 2
    assert totals(dom0) == (2, 8)


# -- allocations that are not reference-counted ------------------------------------------

ALL_ZONES = (1, NR_ZONES - 1)


def test_unreferenced_allocations_use_unclaimed_memory_only(
    small_host: SmallHost, guest_class: type[Guest]
) -> None:
    """alloc_heap_pages with d = NULL or MEMF_no_refcount: the domain's claim neither lets
    the request into claimed memory nor gets redeemed. One node of 4 pages, d1 claims 3."""
    hv = small_host(4, domains=1)
    dom0 = guest_class(hv)
    d = new_domain(dom0)
    assert claim_set(dom0, d, [(HOST, 3)]) == 0
    d1 = hv.find_domain(d)
    hv.check_after_each_hypercall = False  # heap pages below belong to no domain for a while
    taken = hv.heap.alloc_heap_pages(*ALL_ZONES, 0, 0, None)
    assert taken is not None  # 3 + 1 <= 4: the one unclaimed page
    assert hv.heap.alloc_heap_pages(*ALL_ZONES, 0, 0, None) is None  # 3 + 1 > 3
    assert hv.heap.alloc_heap_pages(*ALL_ZONES, 0, MEMF_no_refcount, d1) is None
    assert totals(dom0) == (3, 3)
    own = hv.heap.alloc_heap_pages(*ALL_ZONES, 0, 0, d1)  # refcounted: own claim covers 1
    assert own is not None
    assert totals(dom0) == (2, 2)
    for mfn, _ in (taken, own):
        hv.heap.free_heap_pages(mfn, 0)
    assert totals(dom0) == (2, 4)
    hv.check_invariants()


def test_unreferenced_allocations_get_no_node_allowance(
    small_host: SmallHost, guest_class: type[Guest]
) -> None:
    """get_free_buddy adds d->claims[node] only for refcounted requests: d1 claims all of
    node 0, so an exact node-0 request fails without a refcount (4 - 4 + 0 = 0) even with d1
    as the domain, although the host check passes (4 + 1 <= 8); with one it succeeds."""
    hv = small_host(4, 4, domains=1)
    dom0 = guest_class(hv)
    d = new_domain(dom0)
    assert claim_set(dom0, d, [(0, 4)]) == 0
    d1 = hv.find_domain(d)
    hv.check_after_each_hypercall = False
    exact0 = MEMF_node(0) | MEMF_exact_node
    assert hv.heap.alloc_heap_pages(*ALL_ZONES, 0, exact0 | MEMF_no_refcount, d1) is None
    assert hv.heap.alloc_heap_pages(*ALL_ZONES, 0, exact0, None) is None
    own = hv.heap.alloc_heap_pages(*ALL_ZONES, 0, exact0, d1)
    assert own is not None and own[1] == 0
    assert claims(dom0, d) == [(HOST, 0), (0, 3)]
    hv.heap.free_heap_pages(own[0], 0)
    hv.check_invariants()

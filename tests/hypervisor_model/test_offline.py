"""XEN_SYSCTL_page_offline_op (offline, online, query) and the v7 recall of claims that
offlining leaves without free memory.

Rules: fact sheet §2.9 (offline_page, online_page, query_page_offline and the sysctl loop in
sysctl.c: end < start EINVAL, status words pre-filled byte-wise with 0x01, stop at the first
error), §1.5 (status bits), §3 (counters) and v7 notes §7 (reserve_offlined_page: the node
step, then the host step re-evaluated, each walking domains in domid order and releasing
only the excess) and §10 scenarios T3, T6, T8.

Small hosts put node n at MFN 0x1000 + 0x200 * n. A node's pages start as one buddy, and
allocation keeps the upper half at each split, so a fresh 4-page node hands out 0x..03 first.
The domains are PV (each costs Xen two pages of node 0, which the fixture adds on top of the
node's pages), so populate hands back MFNs and decrease takes them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import hypervisor_model
from hypervisor_model.public.domctl import XEN_DOMCTL_CLAIM_MEMORY_HOST as HOST
from hypervisor_model.public.errno import EINVAL, EPERM
from hypervisor_model.public.memory import XENMEMF_exact_node
from hypervisor_model.public.sysctl import (
    PG_OFFLINE_ANONYMOUS,
    PG_OFFLINE_FAILED,
    PG_OFFLINE_NOT_CONV_RAM,
    PG_OFFLINE_OFFLINED,
    PG_OFFLINE_OWNED,
    PG_OFFLINE_PENDING,
    PG_OFFLINE_STATUS_OFFLINE_PENDING,
    PG_OFFLINE_STATUS_OFFLINED,
    PG_OFFLINE_XENPAGE,
    PG_ONLINE_ONLINED,
    sysctl_page_offline,
    sysctl_page_online,
    sysctl_query_page_offline,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from hypercalls import Guest

    SmallHost = Callable[..., hypervisor_model.Hypervisor]

OFFLINE, ONLINE, QUERY = sysctl_page_offline, sysctl_page_online, sysctl_query_page_offline
UNTOUCHED = 0x01010101  # memset(status, PG_OFFLINE_INVALID, ...) fills every byte with 1
NODE_PAGES = 4096 * 256  # the `host` fixture: 2 nodes of 4096 MiB
TOTAL_PAGES = 2 * NODE_PAGES
# Node 0: MFN 0 never reaches the heap, dom0's structure and shared info are taken at boot;
# node 1: init_node_heap keeps its first 4 pages (0x100000-0x100003) for its free lists.
NODE0_FREE, NODE1_FREE = NODE_PAGES - 1 - 2, NODE_PAGES - 4
FREE = NODE0_FREE + NODE1_FREE
MAX_PAGE = TOTAL_PAGES  # highest RAM MFN + 1 = 0x200000
NOT_RAM = PG_OFFLINE_FAILED | PG_OFFLINE_NOT_CONV_RAM  # 0x808
ANONYMOUS = PG_OFFLINE_ANONYMOUS | PG_OFFLINE_FAILED | 0x7FF4 << 16  # DOMID_INVALID owner
UNLIMITED_KB = (1 << 64) - 1


def owned(domid: int) -> int:
    """An in-use page: OWNED | PENDING | owner << PG_OFFLINE_OWNER_SHIFT."""
    return PG_OFFLINE_OWNED | PG_OFFLINE_PENDING | domid << 16


def new_domain(g: Guest, domid: int | None = None) -> int:
    d = g.create(hvm=False) if domid is None else g.create(domid, hvm=False)
    assert g.max_mem(d, UNLIMITED_KB) == 0
    return d


def free_pages(g: Guest) -> int:
    return int(g.physinfo().free_pages)


def totals(g: Guest) -> tuple[int, int]:
    """(outstanding_claims, free pages) from physinfo."""
    info = g.physinfo()
    return int(info.outstanding_pages), int(info.free_pages)


def claims(g: Guest, domid: int) -> list[tuple[int, int]]:
    rc, nr, entries = g.claim_get(domid, 65)
    assert rc == 0 and nr == len(entries)
    return entries


# -- offline: status values --------------------------------------------------------------


def test_offline_free_page(dom0: Guest) -> None:
    """A free page is offlined at once: OFFLINED; free and node counters drop by 1, the
    RAM total does not."""
    assert dom0.page_offline(OFFLINE, 5, 5) == (0, [PG_OFFLINE_OFFLINED])
    info = dom0.physinfo()
    assert (info.free_pages, info.total_pages) == (FREE - 1, TOTAL_PAGES)
    assert dom0.node_free(0) == NODE0_FREE - 1


def test_counters_drop_by_one_per_offlined_page(dom0: Guest) -> None:
    """3 pages of node 0 and 2 of node 1 (past its 4 metadata pages): node counters -3
    and -2, free -5; offlining them again reports OFFLINED and changes nothing."""
    assert dom0.page_offline(OFFLINE, 5, 7) == (0, [PG_OFFLINE_OFFLINED] * 3)
    first = NODE_PAGES + 4
    assert dom0.page_offline(OFFLINE, first, first + 1) == (0, [PG_OFFLINE_OFFLINED] * 2)
    expected = (NODE0_FREE - 3, NODE1_FREE - 2, FREE - 5)
    assert (dom0.node_free(0), dom0.node_free(1), free_pages(dom0)) == expected
    assert dom0.page_offline(OFFLINE, 5, 7) == (0, [PG_OFFLINE_OFFLINED] * 3)
    assert (dom0.node_free(0), dom0.node_free(1), free_pages(dom0)) == expected


def test_owned_page_is_pending_with_its_owner(
    small_host: SmallHost, guest_class: type[Guest]
) -> None:
    """One node of 4 pages; d's single page is 0x1003 (upper half kept at each split).
    Offlining all four: three free pages OFFLINED, d's page OWNED | PENDING | d << 16."""
    dom0 = guest_class(small_host(4, domains=1))
    d = new_domain(dom0)
    assert dom0.populate(d, [0]) == 1
    assert dom0.page_offline(OFFLINE, 0x1000, 0x1003) == (
        0,
        [PG_OFFLINE_OFFLINED] * 3 + [owned(d)],
    )
    assert owned(d) == 0x11004  # d is domain 1
    assert free_pages(dom0) == 0
    assert dom0.page_offline(QUERY, 0x1000, 0x1003) == (
        0,
        [PG_OFFLINE_STATUS_OFFLINED] * 3 + [PG_OFFLINE_STATUS_OFFLINE_PENDING],
    )


def test_mfn_0_is_anonymous(dom0: Guest) -> None:
    """MFN 0 is RAM but never the allocator's and has no owner: ANONYMOUS | FAILED |
    DOMID_INVALID << 16 = 0x7FF40408 with result 0, so the loop goes on to MFN 1."""
    assert ANONYMOUS == 0x7FF40408
    assert dom0.page_offline(OFFLINE, 0, 1) == (0, [ANONYMOUS, PG_OFFLINE_OFFLINED])
    assert free_pages(dom0) == FREE - 1  # only MFN 1 left the heap
    # mark_page_offline still marked the in-use MFN 0 as offlining
    assert dom0.page_offline(QUERY, 0, 1) == (
        0,
        [PG_OFFLINE_STATUS_OFFLINE_PENDING, PG_OFFLINE_STATUS_OFFLINED],
    )


@pytest.mark.parametrize("cmd", [OFFLINE, ONLINE, QUERY], ids=["offline", "online", "query"])
def test_frame_at_max_page_is_einval_and_untouched(dom0: Guest, cmd: int) -> None:
    """!mfn_valid: EINVAL before the status word is written, so it keeps 0x01010101."""
    assert dom0.page_offline(cmd, MAX_PAGE, MAX_PAGE) == (-EINVAL, [UNTOUCHED])


def test_stop_at_the_first_error(dom0: Guest) -> None:
    """[max_page - 1, max_page + 1]: the first page is offlined, the loop stops at the
    second (EINVAL), and both later words read 0x01010101."""
    rc, status = dom0.page_offline(OFFLINE, MAX_PAGE - 1, MAX_PAGE + 1)
    assert (rc, status) == (-EINVAL, [PG_OFFLINE_OFFLINED, UNTOUCHED, UNTOUCHED])
    assert free_pages(dom0) == FREE - 1


def test_hole_below_max_page_is_not_conventional_ram(
    small_host: SmallHost, guest_class: type[Guest]
) -> None:
    """Nodes at 0x1000 and 0x1200 (4 pages each): 0x1100 and 0xFFF are holes below max_page
    0x1204: FAILED | NOT_CONV_RAM and EINVAL; the loop stops there, so 0x1000 stays free."""
    dom0 = guest_class(small_host(4, 4))
    assert dom0.page_offline(OFFLINE, 0x1100, 0x1100) == (-EINVAL, [NOT_RAM])
    assert dom0.page_offline(OFFLINE, 0xFFF, 0x1001) == (-EINVAL, [NOT_RAM, UNTOUCHED, UNTOUCHED])
    assert free_pages(dom0) == 8
    assert dom0.page_offline(QUERY, 0x1100, 0x1100) == (-EINVAL, [UNTOUCHED])


def test_a_query_answers_run_by_run_and_stops_at_a_hole(
    small_host: SmallHost, guest_class: type[Guest]
) -> None:
    """Node 0 is 0x1000-0x1005 (4 free pages and dom0's 2), a hole follows up to node 1,
    0x11FC-0x1203 (4 metadata pages, then 4 free). d takes one page of node 1, then all 4
    are offlined: 3 OFFLINED, d's PENDING. A query over 0x11FC-0x1205 answers 0 for the
    metadata, OFFLINED / OFFLINE_PENDING for the four, EINVAL at max_page 0x1204; one over
    0x1000-0x1007 answers 0 for node 0's six pages and stops at the hole, 0x1006."""
    dom0 = guest_class(small_host(4, 4))
    d = new_domain(dom0)
    assert dom0.populate(d, [0], flags=XENMEMF_exact_node(1)) == 1
    rc, status = dom0.page_offline(OFFLINE, 0x1200, 0x1203)
    assert rc == 0 and sorted(status) == [PG_OFFLINE_OFFLINED] * 3 + [owned(d)]
    asked = {PG_OFFLINE_OFFLINED: PG_OFFLINE_STATUS_OFFLINED}
    answers = [asked.get(word, PG_OFFLINE_STATUS_OFFLINE_PENDING) for word in status]
    assert dom0.page_offline(QUERY, 0x11FC, 0x1205) == (
        -EINVAL,
        [0] * 4 + answers + [UNTOUCHED] * 2,
    )
    assert dom0.page_offline(QUERY, 0x1000, 0x1007) == (-EINVAL, [0] * 6 + [UNTOUCHED] * 2)


def test_xens_own_pages_are_pending_as_xen_or_anonymous(
    small_host: SmallHost, guest_class: type[Guest]
) -> None:
    """offline_page on pages Xen uses: node 1's heap metadata (0x11FC, init_node_heap) and
    nothing else own it: ANONYMOUS | FAILED; dom0's structure page (0x1005, the topmost of
    node 0, taken first) is a xen-heap page: XENPAGE | PENDING | DOMID_XEN << 16. Both are
    marked offlining all the same."""
    dom0 = guest_class(small_host(4, 4))
    xenpage = PG_OFFLINE_XENPAGE | PG_OFFLINE_PENDING | 0x7FF2 << 16
    assert dom0.page_offline(OFFLINE, 0x11FC, 0x11FC) == (0, [ANONYMOUS])
    assert dom0.page_offline(OFFLINE, 0x1005, 0x1005) == (0, [xenpage])
    pending = PG_OFFLINE_STATUS_OFFLINE_PENDING
    assert dom0.page_offline(QUERY, 0x1005, 0x1005) == (0, [pending])
    assert free_pages(dom0) == 8


def test_end_before_start_is_einval(dom0: Guest) -> None:
    """end < start: EINVAL before any status word is written (the buffer stays zeroed)."""
    assert dom0.page_offline(OFFLINE, 7, 6) == (-EINVAL, [0])
    assert free_pages(dom0) == FREE


def test_unknown_command_is_einval(dom0: Guest) -> None:
    """The per-frame switch's default: EINVAL at the first frame, nothing written."""
    assert dom0.page_offline(7, 5, 6) == (-EINVAL, [UNTOUCHED, UNTOUCHED])
    assert free_pages(dom0) == FREE


def test_non_control_caller_is_eperm(
    host: hypervisor_model.Hypervisor, dom0: Guest, guest_class: type[Guest]
) -> None:
    """xsm_sysctl(XSM_PRIV): only the control domain may offline pages."""
    d = new_domain(dom0)
    assert guest_class(host, d).page_offline(OFFLINE, 5, 5)[0] == -EPERM
    assert free_pages(dom0) == FREE - 2  # d's structure and shared-info pages


# -- pending pages and onlining ----------------------------------------------------------


@pytest.mark.parametrize("how", ["decrease", "destroy"])
def test_pending_page_leaves_the_heap_when_freed(
    small_host: SmallHost, guest_class: type[Guest], how: str
) -> None:
    """free_heap_pages takes a page pending offline out as it is freed: free stays 3 of 4;
    the page is then OFFLINED, and onlining it gives it back (free 4)."""
    dom0 = guest_class(small_host(4, domains=1))
    d = new_domain(dom0)
    assert dom0.populate(d, [0]) == 1  # MFN 0x1003
    assert dom0.page_offline(OFFLINE, 0x1003, 0x1003) == (0, [owned(d)])
    assert free_pages(dom0) == 3
    xens = 0
    if how == "decrease":
        assert dom0.decrease(d, [0x1003]) == 1
    else:
        assert dom0.destroy(d) == 0
        xens = 2  # d's structure and shared-info pages came back too
    assert free_pages(dom0) == 3 + xens
    assert dom0.page_offline(QUERY, 0x1003, 0x1003) == (0, [PG_OFFLINE_STATUS_OFFLINED])
    assert dom0.page_offline(ONLINE, 0x1003, 0x1003) == (0, [PG_ONLINE_ONLINED])
    assert free_pages(dom0) == 4 + xens
    assert dom0.page_offline(QUERY, 0x1003, 0x1003) == (0, [0])


def test_online_puts_pages_back(small_host: SmallHost, guest_class: type[Guest]) -> None:
    """Offline all 4 pages (free 0), online them (free 4): the buddies merge again, so an
    order-2 extent fits; onlining a page that was never offline reports 0."""
    dom0 = guest_class(small_host(4, domains=1))
    d = new_domain(dom0)
    assert dom0.page_offline(OFFLINE, 0x1000, 0x1003) == (0, [PG_OFFLINE_OFFLINED] * 4)
    assert free_pages(dom0) == 0
    assert dom0.page_offline(ONLINE, 0x1000, 0x1003) == (0, [PG_ONLINE_ONLINED] * 4)
    assert free_pages(dom0) == 4
    assert dom0.page_offline(ONLINE, 0x1000, 0x1000) == (0, [0])
    assert dom0.populate(d, [0], 2) == 1
    assert free_pages(dom0) == 0


def test_online_cancels_a_pending_offline(small_host: SmallHost, guest_class: type[Guest]) -> None:
    """online_page on a pending page: ONLINED, no longer pending, and freeing it later
    returns it to the heap (free 3 -> 4)."""
    dom0 = guest_class(small_host(4, domains=1))
    d = new_domain(dom0)
    assert dom0.populate(d, [0]) == 1  # MFN 0x1003
    assert dom0.page_offline(OFFLINE, 0x1003, 0x1003) == (0, [owned(d)])
    assert dom0.page_offline(ONLINE, 0x1003, 0x1003) == (0, [PG_ONLINE_ONLINED])
    assert dom0.page_offline(QUERY, 0x1003, 0x1003) == (0, [0])
    assert dom0.decrease(d, [0x1003]) == 1
    assert free_pages(dom0) == 4


# -- recall of claims (v7 reserve_offlined_page) -----------------------------------------

T3_T8_CASES: list[Any] = [
    pytest.param("legacy", [(HOST, 2)], id="T3-legacy"),
    pytest.param([(HOST, 3)], [(HOST, 2)], id="T3-T8-host-entry"),
    pytest.param([(0, 3)], [(HOST, 0), (0, 2)], id="T8-node0"),
]


@pytest.mark.parametrize(("claim", "after"), T3_T8_CASES)
def test_T3_T8_recall_only_the_excess(
    small_host: SmallHost, guest_class: type[Guest], claim: Any, after: list[tuple[int, int]]
) -> None:
    """T3 (N OHCH) / T8 (F6 OWGC, OWNC): 4 pages, d claims 3. Offlining page 3 leaves 3
    free for 3 claimed: nothing to recall. Offlining page 1 leaves 2: 1 page of excess is
    recalled (the host step for a host-wide claim, the node step for a node-0 claim)."""
    dom0 = guest_class(small_host(4, domains=1))
    d = new_domain(dom0)
    rc = dom0.claim_pages(d, 3) if claim == "legacy" else dom0.claim_set(d, claim)
    assert rc == 0
    assert dom0.page_offline(OFFLINE, 0x1003, 0x1003) == (0, [PG_OFFLINE_OFFLINED])
    assert totals(dom0) == (3, 3)
    assert dom0.page_offline(OFFLINE, 0x1001, 0x1001) == (0, [PG_OFFLINE_OFFLINED])
    assert totals(dom0) == (2, 2)
    assert claims(dom0, d) == after


def test_T6_node_claims_host_step_then_node_step(
    small_host: SmallHost, guest_class: type[Guest]
) -> None:
    """T6 (N ONCS): 4 + 4 pages, {HOST 2, n0 3, n1 3} claims all 8. Node 0's page 3: node 0
    has 3 free for 3 claimed, but the host has 7 for 8: 1 host-wide page goes. Node 0's
    page 1: node 0 has 2 for 3: the node step takes 1 of d's node-0 claim; 6 for 6 after."""
    dom0 = guest_class(small_host(4, 4, domains=1))
    d = new_domain(dom0)
    assert dom0.claim_set(d, [(HOST, 2), (0, 3), (1, 3)]) == 0
    assert dom0.page_offline(OFFLINE, 0x1003, 0x1003) == (0, [PG_OFFLINE_OFFLINED])
    assert claims(dom0, d) == [(HOST, 1), (0, 3), (1, 3)]
    assert totals(dom0) == (7, 7)
    assert dom0.page_offline(OFFLINE, 0x1001, 0x1001) == (0, [PG_OFFLINE_OFFLINED])
    assert claims(dom0, d) == [(HOST, 1), (0, 2), (1, 3)]
    assert totals(dom0) == (6, 6)


def test_host_step_walks_domains_in_domid_order(
    small_host: SmallHost, guest_class: type[Guest]
) -> None:
    """4 pages; domain 7 (created first) and domain 3 claim 2 each. Each offlined page is
    one page of excess, taken from the lowest domid that still has a host-wide claim."""
    dom0 = guest_class(small_host(4, domains=2))
    d7, d3 = new_domain(dom0, 7), new_domain(dom0, 3)
    assert dom0.claim_set(d7, [(HOST, 2)]) == 0
    assert dom0.claim_set(d3, [(HOST, 2)]) == 0
    steps = [(0x1000, 1, 2), (0x1001, 0, 2), (0x1002, 0, 1)]  # mfn, d3's claim, d7's claim
    for mfn, left3, left7 in steps:
        assert dom0.page_offline(OFFLINE, mfn, mfn) == (0, [PG_OFFLINE_OFFLINED])
        assert (claims(dom0, d3), claims(dom0, d7)) == ([(HOST, left3)], [(HOST, left7)])


def test_node_step_walks_domains_in_domid_order(
    small_host: SmallHost, guest_class: type[Guest]
) -> None:
    """4 + 4 pages; domains 7 and 3 claim 2 pages of node 0 each. Each node-0 page offlined
    is one page of node excess, taken from the lowest domid with a node-0 claim; the host
    has room throughout (claims 3, 2, 1 against 7, 6, 5 free)."""
    dom0 = guest_class(small_host(4, 4, domains=2))
    d7, d3 = new_domain(dom0, 7), new_domain(dom0, 3)
    assert dom0.claim_set(d7, [(0, 2)]) == 0
    assert dom0.claim_set(d3, [(0, 2)]) == 0
    steps = [(0x1000, 1, 2, 7), (0x1001, 0, 2, 6), (0x1002, 0, 1, 5)]
    for mfn, left3, left7, free in steps:
        assert dom0.page_offline(OFFLINE, mfn, mfn) == (0, [PG_OFFLINE_OFFLINED])
        assert claims(dom0, d3) == [(HOST, 0)] + ([(0, left3)] if left3 else [])
        assert claims(dom0, d7) == [(HOST, 0), (0, left7)]
        assert totals(dom0) == (left3 + left7, free)


def test_host_step_is_re_evaluated_after_the_node_step(
    small_host: SmallHost, guest_class: type[Guest]
) -> None:
    """{HOST 4, n0 4} claims all 8 pages. Offlining a node-0 page: the node step releases 1
    of node 0, which already brings claims to 7 for 7 free, so the host-wide 4 stay."""
    dom0 = guest_class(small_host(4, 4, domains=1))
    d = new_domain(dom0)
    assert dom0.claim_set(d, [(HOST, 4), (0, 4)]) == 0
    assert dom0.page_offline(OFFLINE, 0x1000, 0x1000) == (0, [PG_OFFLINE_OFFLINED])
    assert claims(dom0, d) == [(HOST, 4), (0, 3)]
    assert totals(dom0) == (7, 7)


@pytest.mark.parametrize(
    ("node", "node_claim", "host_claim"),
    [
        pytest.param(1, 4, 4, id="node-claim-on-the-other-node"),
        pytest.param(0, 2, 6, id="node-claim-on-the-offlined-node"),
    ],
)
def test_host_step_releases_host_wide_claims_only(
    small_host: SmallHost, guest_class: type[Guest], node: int, node_claim: int, host_claim: int
) -> None:
    """Domain 3 holds a node claim, domain 7 the rest of the 8 pages host-wide. Offlining a
    node-0 page needs no node step (node 0 keeps 3 free for at most 2 claimed) but a host
    step of 1: domain 3 comes first with no host-wide claim, so domain 7 gives 1 and
    domain 3's node claim stays whole."""
    dom0 = guest_class(small_host(4, 4, domains=2))
    d3, d7 = new_domain(dom0, 3), new_domain(dom0, 7)
    assert dom0.claim_set(d3, [(node, node_claim)]) == 0
    assert dom0.claim_set(d7, [(HOST, host_claim)]) == 0
    assert totals(dom0) == (8, 8)
    assert dom0.page_offline(OFFLINE, 0x1000, 0x1000) == (0, [PG_OFFLINE_OFFLINED])
    assert claims(dom0, d3) == [(HOST, 0), (node, node_claim)]
    assert claims(dom0, d7) == [(HOST, host_claim - 1)]
    assert totals(dom0) == (7, 7)

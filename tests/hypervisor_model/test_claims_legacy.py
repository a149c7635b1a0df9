"""Legacy XENMEM_claim_pages, as v7 maps it onto the claim-set installer as a LEGACY entry.

Rules: fact sheet §2.3 (checks and their order in do_memory_op, domain_set_outstanding_pages),
§2.2 (release on destroy, Xen's tools/tests/mem-claim), §2.4 (redemption in alloc_heap_pages),
§6 gotchas 2, 5 and 6; v7 notes §8 (the LEGACY mapping) and §9 (reporting).
Every expected number is worked out by hand in the test or its comment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pytest

import hypervisor_model
from hypervisor_model.domain import DOMDYING_dying
from hypervisor_model.public import domctl, memory
from hypervisor_model.public.domctl import XEN_DOMCTL_CLAIM_MEMORY_HOST as HOST
from hypervisor_model.public.errno import EFAULT, EINVAL, ENOMEM, EPERM
from hypervisor_model.public.xen import DOMID_ANY, DOMID_SELF, HYPERVISOR_memory_op

if TYPE_CHECKING:
    from hypercalls import Guest

# The `host` fixture: two nodes of 4096 MiB = 2 x 1048576 pages. Free at boot: all but MFN 0
# (never the heap's), dom0's structure and shared-info pages and node 1's 4 pages of heap
# metadata (init_node_heap). The domains are PV: each costs Xen two more pages.
NODE_PAGES = 4096 * 256
BOOT_FREE = 2 * NODE_PAGES - 1 - 2 - 4  # 2097145
PV_DOMAIN_PAGES = 2
FREE = BOOT_FREE - PV_DOMAIN_PAGES  # 2097143 free once a test's first domain exists
UNLIMITED_KB = (1 << 64) - 1  # xc_domain_setmaxmem(-1): max_pages = min(2^62 - 1, UINT_MAX)
UINT_MAX = 0xFFFFFFFF


def new_domain(g: Guest, max_kb: int = UNLIMITED_KB) -> int:
    domid = g.create(hvm=False)
    assert g.max_mem(domid, max_kb) == 0
    return domid


def populate(g: Guest, domid: int, count: int, first_gfn: int = 0) -> None:
    """Give ``domid`` ``count`` single pages (XENMEM_populate_physmap, order 0)."""
    assert g.populate(domid, range(first_gfn, first_gfn + count)) == count


def outstanding(g: Guest, domid: int) -> int:
    return int(g.info(domid).outstanding_pages)


def host_outstanding(g: Guest) -> int:
    return int(g.physinfo().outstanding_pages)


# -- a legacy claim is a target total --------------------------------------------------


def test_claim_is_target_total_minus_tot_pages(dom0: Guest) -> None:
    """domain_set_outstanding_pages: claim = target - domain_tot_pages (10 - 3 = 7)."""
    d = new_domain(dom0)
    populate(dom0, d, 3)
    assert dom0.claim_pages(d, 10) == 0
    assert outstanding(dom0, d) == 7
    assert host_outstanding(dom0) == 7


def test_legacy_claim_reads_back_as_a_host_wide_entry(dom0: Guest) -> None:
    """v7 §8: the LEGACY request is stored as a host-wide claim; node_claims stays 0."""
    d = new_domain(dom0)
    populate(dom0, d, 3)
    assert dom0.claim_pages(d, 10) == 0
    assert dom0.claim_get(d, 65) == (0, 1, [(HOST, 7)])


@pytest.mark.parametrize(
    ("target", "expected_rc", "expected_claim"),
    [
        pytest.param(2, -EINVAL, 0, id="below-tot_pages"),
        pytest.param(3, -EINVAL, 0, id="equal-to-tot_pages"),
        pytest.param(4, 0, 1, id="one-above-tot_pages"),  # 4 - 3
        pytest.param(16, 0, 13, id="equal-to-max_pages"),  # 16 - 3
        pytest.param(17, -EINVAL, 0, id="above-max_pages"),
    ],
)
def test_claim_target_bounds(
    dom0: Guest, target: int, expected_rc: int, expected_claim: int
) -> None:
    """§2.3 step 3: EINVAL unless tot_pages < target <= max_pages (tot 3, max 16 pages)."""
    d = new_domain(dom0, max_kb=16 * 4)
    populate(dom0, d, 3)
    assert dom0.claim_pages(d, target) == expected_rc
    assert outstanding(dom0, d) == expected_claim


def test_new_domain_cannot_claim_before_max_mem(dom0: Guest) -> None:
    """Gotcha 2: a new domain has max_pages 0, so any non-zero claim is EINVAL."""
    d = dom0.create()
    assert dom0.claim_pages(d, 1) == -EINVAL


def test_nr_extents_is_not_truncated(dom0: Guest) -> None:
    """v7 §8: nr_extents is 64-bit; 2^32 + 1 > max_pages 0xFFFFFFFF is EINVAL, not a claim of 1."""
    d = new_domain(dom0)
    assert dom0.claim_pages(d, (1 << 32) + 1) == -EINVAL
    assert outstanding(dom0, d) == 0


# -- releasing ---------------------------------------------------------------------------


def test_claim_zero_releases(dom0: Guest) -> None:
    """§2.3 step 1: 0 releases the claim; the host total goes back to 0."""
    d = new_domain(dom0)
    assert dom0.claim_pages(d, 10) == 0
    assert dom0.claim_pages(d, 0) == 0
    assert outstanding(dom0, d) == 0
    assert host_outstanding(dom0) == 0


def test_claim_zero_succeeds_without_a_claim_even_with_max_pages_zero(dom0: Guest) -> None:
    """Gotcha 6: claim 0 always succeeds on a live domain (release skips every check)."""
    d = dom0.create()
    assert dom0.claim_pages(d, 0) == 0
    assert outstanding(dom0, d) == 0


def test_claim_zero_also_releases_node_claims(dom0: Guest) -> None:
    """v7 §8: nr = 0 releases all claims, host-wide and per node (5 + 3 -> 0)."""
    d = new_domain(dom0)
    assert dom0.claim_set(d, [(0, 5), (HOST, 3)]) == 0
    assert host_outstanding(dom0) == 8
    assert dom0.claim_pages(d, 0) == 0
    assert dom0.claim_get(d, 65) == (0, 1, [(HOST, 0)])
    assert host_outstanding(dom0) == 0


def test_destroy_releases_the_claim(dom0: Guest) -> None:
    """domain_kill releases every claim (§2.2); other domains keep theirs (100 + 50 -> 50)."""
    d1, d2 = new_domain(dom0), new_domain(dom0)
    assert dom0.claim_pages(d1, 100) == 0
    assert dom0.claim_pages(d2, 50) == 0
    assert host_outstanding(dom0) == 150
    assert dom0.destroy(d1) == 0
    assert host_outstanding(dom0) == 50
    assert outstanding(dom0, d2) == 50


def test_destroy_releases_node_claims_too(dom0: Guest) -> None:
    """v7 domain_kill installs {HOST, 0}, which releases node claims as well (4 + 6 -> 0)."""
    d = new_domain(dom0)
    assert dom0.claim_set(d, [(0, 4), (1, 6)]) == 0
    assert dom0.destroy(d) == 0
    assert host_outstanding(dom0) == 0


# -- one claim at a time ---------------------------------------------------------------


@pytest.mark.parametrize("second", [10, 20, 5], ids=["same", "larger", "smaller"])
def test_second_claim_is_einval_not_eexist(dom0: Guest, second: int) -> None:
    """Gotcha 6: a claim on a domain that already has one is EINVAL; the first stays."""
    d = new_domain(dom0)
    assert dom0.claim_pages(d, 10) == 0
    assert dom0.claim_pages(d, second) == -EINVAL
    assert outstanding(dom0, d) == 10


def test_existing_node_claim_blocks_a_legacy_claim(dom0: Guest) -> None:
    """v7 §8: "existing claim" includes node claims, which master did not have."""
    d = new_domain(dom0)
    assert dom0.claim_set(d, [(1, 5)]) == 0
    assert dom0.claim_pages(d, 10) == -EINVAL
    assert dom0.claim_get(d, 65) == (0, 2, [(HOST, 0), (1, 5)])


# -- argument checks ---------------------------------------------------------------------

Call = Callable[["Guest", int], int]


def _reservation(g: Guest, domid: int, cmd: int = memory.XENMEM_claim_pages, **fields: int) -> int:
    payload = dict(extent_start=0, nr_extents=10, extent_order=0, mem_flags=0, domid=domid)
    payload.update(fields)
    return g.memory_op(cmd, memory.xen_memory_reservation, payload)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda g, d: g.claim_pages(4242, 10), id="unknown-domain"),
        pytest.param(lambda g, d: g.claim_pages(DOMID_SELF, 10), id="DOMID_SELF"),
        pytest.param(lambda g, d: g.claim_pages(d, 10, extent_start=0x1000), id="extent_start"),
        pytest.param(lambda g, d: g.claim_pages(d, 10, extent_order=1), id="extent_order-1"),
        pytest.param(lambda g, d: g.claim_pages(d, 10, mem_flags=1 << 8), id="mem_flags-node0"),
        pytest.param(
            lambda g, d: _reservation(g, d, memory.XENMEM_claim_pages | 1 << 6),
            id="start_extent-1",
        ),
    ],
)
def test_bad_arguments_are_einval(dom0: Guest, call: Call) -> None:
    """§2.3 do_memory_op checks: each is EINVAL (an unknown domain too, not ESRCH)."""
    d = new_domain(dom0)
    assert call(dom0, d) == -EINVAL
    assert host_outstanding(dom0) == 0


def test_dying_domain_is_einval(host: hypervisor_model.Hypervisor, dom0: Guest) -> None:
    """§2.3: a dying domain is EINVAL (set mid-destroy: destroy itself completes in one call)."""
    d = new_domain(dom0)
    victim = host.find_domain(d)
    assert victim is not None
    victim.is_dying = DOMDYING_dying
    assert dom0.claim_pages(d, 10) == -EINVAL
    assert victim.outstanding_pages == 0


def test_start_extent_is_checked_before_the_copy_in(host: hypervisor_model.Hypervisor) -> None:
    """§2.3 order: start_extent (EINVAL) before copy_from_guest (EFAULT); then EFAULT alone."""
    bad = 0x10  # not a hypercall buffer
    op = memory.XENMEM_claim_pages
    assert host.hypercall(HYPERVISOR_memory_op, op | 1 << 6, bad) == -EINVAL
    assert host.hypercall(HYPERVISOR_memory_op, op, bad) == -EFAULT


@pytest.mark.parametrize(
    ("target", "fields", "dying", "expected"),
    [
        pytest.param("unknown", {}, False, -EINVAL, id="lookup-before-xsm"),
        pytest.param("self", {"extent_order": 1}, False, -EINVAL, id="arguments-before-xsm"),
        pytest.param("self", {}, False, -EPERM, id="xsm-own-domain"),
        pytest.param("other", {}, False, -EPERM, id="xsm-other-domain"),
        pytest.param("self", {}, True, -EPERM, id="xsm-before-dying"),
    ],
)
def test_non_control_caller(
    host: hypervisor_model.Hypervisor,
    dom0: Guest,
    guest_class: type[Guest],
    target: str,
    fields: dict[str, int],
    dying: bool,
    expected: int,
) -> None:
    """xsm_claim_pages(XSM_PRIV): only the control domain may claim, even for itself; the
    argument checks and the domain lookup come first, the dying check after (§2.3)."""
    me, other = new_domain(dom0), new_domain(dom0)
    domid = {"unknown": 4242, "self": me, "other": other}[target]
    if dying:
        victim = host.find_domain(domid)
        assert victim is not None
        victim.is_dying = DOMDYING_dying
    assert guest_class(host, me).claim_pages(domid, 10, **fields) == expected
    assert host_outstanding(dom0) == 0


# -- available memory ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        pytest.param(FREE, 0, id="all-free-memory"),
        pytest.param(FREE + 1, -ENOMEM, id="one-page-more"),
    ],
)
def test_claim_above_free_memory_is_enomem(dom0: Guest, target: int, expected: int) -> None:
    """§2.3 step 4: the claim must fit in total_avail_pages - outstanding_claims."""
    d = new_domain(dom0)
    assert dom0.claim_pages(d, target) == expected


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        # free = FREE - 3 after the populate; claim = target - 3
        pytest.param(FREE, 0, id="claim-equals-free"),
        pytest.param(FREE + 1, -ENOMEM, id="claim-one-above-free"),
    ],
)
def test_enomem_check_uses_the_claim_after_subtracting_tot_pages(
    dom0: Guest, target: int, expected: int
) -> None:
    """§2.3 step 4: compares target - tot_pages (not the target) with unclaimed memory."""
    d = new_domain(dom0)
    populate(dom0, d, 3)
    assert dom0.claim_pages(d, target) == expected


def test_other_domains_claims_are_not_available(dom0: Guest) -> None:
    """Unclaimed memory is free minus every domain's claim: free - 1000 fits, one more not."""
    d1, d2 = new_domain(dom0), new_domain(dom0)
    free = FREE - PV_DOMAIN_PAGES  # d2 cost Xen two pages too
    assert dom0.claim_pages(d2, 1000) == 0
    assert dom0.claim_pages(d1, free - 1000 + 1) == -ENOMEM
    assert dom0.claim_pages(d1, free - 1000) == 0
    assert host_outstanding(dom0) == free
    assert dom0.claim_pages(d2, 0) == 0  # releasing d2's claim makes its 1000 pages unclaimed
    assert host_outstanding(dom0) == free - 1000


# -- redemption --------------------------------------------------------------------------


def test_claim_shrinks_as_the_domain_allocates(dom0: Guest) -> None:
    """alloc_heap_pages redeems min(outstanding_pages, 2^order) per extent:
    1024 -> 512 (order 9) -> 509 (3 x order 0) -> 0 (order 9: min(509, 512))."""
    d = new_domain(dom0)
    assert dom0.claim_pages(d, 1024) == 0
    steps = [(9, [0], 512), (0, [512, 513, 514], 509), (9, [1024], 0)]
    for order, gfns, left in steps:
        assert dom0.populate(d, gfns, order) == len(gfns)
        assert outstanding(dom0, d) == left
        assert host_outstanding(dom0) == left
    assert dom0.info(d).tot_pages == 512 + 3 + 512


def test_physinfo_sums_the_getdomaininfo_claims(dom0: Guest) -> None:
    """v7 §9: physinfo.outstanding_pages = outstanding_claims = sum of the domains'
    outstanding_pages (30 + 7 + 5 = 42); free_pages still counts claimed pages."""
    d1, d2, d3 = new_domain(dom0), new_domain(dom0), new_domain(dom0)
    populate(dom0, d2, 3)
    assert dom0.claim_pages(d1, 30) == 0
    assert dom0.claim_pages(d2, 10) == 0  # 10 - 3
    assert dom0.claim_set(d3, [(0, 2), (HOST, 3)]) == 0
    assert [outstanding(dom0, d) for d in (d1, d2, d3)] == [30, 7, 5]
    info = dom0.physinfo()
    assert info.outstanding_pages == 42
    assert info.free_pages == FREE - 2 * PV_DOMAIN_PAGES - 3  # d2 and d3 cost Xen 2 each


# -- Xen's own test ----------------------------------------------------------------------


def test_port_of_xen_test_mem_claim(dom0: Guest) -> None:
    """tools/tests/mem-claim/test-mem-claim.c at the hypercall level, same calls in the same
    order: quiescent host; create its HVM/HAP domain; setmaxmem(-1); claim 4 MiB = 1024
    pages; populate one order-9 (2 MiB) extent at gfn 0 -> 512 left; destroy -> 0."""
    assert dom0.physinfo().outstanding_pages == 0
    rc, after = dom0.domctl(
        domctl.XEN_DOMCTL_createdomain,
        DOMID_ANY,
        domctl.xen_domctl_createdomain,
        dict(
            ssidref=0,
            handle=bytes(16),
            flags=domctl.XEN_DOMCTL_CDF_hvm | domctl.XEN_DOMCTL_CDF_hap,
            iommu_opts=0,
            max_vcpus=1,
            max_evtchn_port=0,
            max_grant_frames=1,
            max_maptrack_frames=0,
            grant_opts=1,  # XEN_DOMCTL_GRANT_version(1)
            altp2m=dict(opts=0, nr=0),
            vmtrace_size=0,
            cpupool_id=0,
            arch=dict(emulation_flags=1, misc_flags=0),  # XEN_X86_EMU_LAPIC
        ),
    )
    assert rc == 0
    d = int(after.domain)
    assert dom0.max_mem(d, UNLIMITED_KB) == 0
    assert dom0.info(d).max_pages == UINT_MAX
    assert dom0.physinfo().outstanding_pages == 0
    assert dom0.claim_pages(d, 1024) == 0
    assert dom0.physinfo().outstanding_pages == 1024
    assert dom0.populate(d, [0], order=9) == 1  # xc_domain_populate_physmap_exact: all done
    assert dom0.physinfo().outstanding_pages == 512
    assert dom0.destroy(d) == 0
    assert dom0.physinfo().outstanding_pages == 0

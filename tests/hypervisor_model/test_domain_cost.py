"""What a domain costs Xen, and what a node costs it at boot.

Rules: page_alloc.c init_node_heap (a node's free lists and avail[] counters, 4 pages, kept
from the head of its first range, or its tail when the range starts 1 GiB-aligned and ends
no less aligned, else allocated from the heap); domain.c alloc_domain_struct and x86
arch_domain_create (a xen-heap page each: structure and shared info, from the boot CPU's
node, owned by no one); hap.c hap_enable (256 pages of HAP pool, MEMF_no_owner, then the host
and 10 nested p2m top-level tables from it); shadow/common.c shadow_enable (at least 1024
pages); hap_domctl / shadow_domctl / paging_domctl (XEN_DOMCTL_shadow_op) and
arch_{get,set}_paging_mempool_size. None of these pages is refcounted to the domain, so
claims protect against them: they may use unclaimed memory only.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypercalls import Guest, createdomain_payload

import hypervisor_model
from hypervisor_model.domheap import alloc_domheap_pages
from hypervisor_model.heap import HEAP_METADATA_PAGES, MAX_ORDER, NR_ZONES
from hypervisor_model.host import HostConfigError
from hypervisor_model.memflags import MEMF_no_owner
from hypervisor_model.public import domctl
from hypervisor_model.public.domctl import XEN_DOMCTL_CLAIM_MEMORY_HOST as HOST
from hypervisor_model.public.errno import EINVAL, ENOMEM, ENOSYS, EOPNOTSUPP, EPERM
from hypervisor_model.snapshot import load_state, save_state

MiB = 256
GET, SET = domctl.XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION, domctl.XEN_DOMCTL_SHADOW_OP_SET_ALLOCATION
INVALID_M2P_ENTRY = (1 << 64) - 1


def boot(**kwargs: Any) -> hypervisor_model.Hypervisor:
    hv = hypervisor_model.boot(**kwargs)
    hv.check_after_each_hypercall = True
    return hv


def with_vcpus(g: Guest, hvm: bool = True, cdf: int | None = None) -> int:
    """A domain with its vCPU created (paging_domctl wants vcpu[0])."""
    payload = createdomain_payload(
        cdf
        if cdf is not None
        else (domctl.XEN_DOMCTL_CDF_hvm | domctl.XEN_DOMCTL_CDF_hap)
        if hvm
        else 0
    )
    rc, after = g.domctl(
        domctl.XEN_DOMCTL_createdomain, 0x7FF5, domctl.xen_domctl_createdomain, payload
    )
    assert rc == 0, rc
    domid = int(after.domain)
    rc, _ = g.domctl(domctl.XEN_DOMCTL_max_vcpus, domid, domctl.xen_domctl_max_vcpus, dict(max=1))
    assert rc == 0
    return domid


# -- init_node_heap --------------------------------------------------------------------------


def test_a_nodes_heap_metadata_is_four_pages() -> None:
    """sizeof(heap_by_zone_and_order_t) = NR_ZONES 41 x (MAX_ORDER 18 + 1) list heads of 16
    bytes = 12464, plus avail[NR_ZONES] longs = 328: 12792 bytes, 4 pages rounded up."""
    assert (NR_ZONES, MAX_ORDER) == (41, 18)
    assert HEAP_METADATA_PAGES == (41 * 19 * 16 + 41 * 8 + 4095) // 4096 == 4


@pytest.mark.parametrize(
    ("ranges", "metadata"),
    [
        # node 1 starts 1 GiB-aligned (2^21, ffs 22) and ends at 2^22 (ffs 23): more aligned
        # than its start, so init_node_heap takes its head
        pytest.param([[[0, 1 << 21]], [[1 << 21, 1 << 22]]], [(1 << 21, (1 << 21) + 4)], id="head"),
        # node 1 ends at 0x210000 (ffs 17) <= ffs(2^21): its tail
        pytest.param([[[0, 1 << 21]], [[1 << 21, 0x210000]]], [(0x20FFFC, 0x210000)], id="tail"),
        # node 1 starts off 1 GiB alignment: its head, whatever its end
        pytest.param([[[0, 0x1000]], [[0x1200, 0x1400]]], [(0x1200, 0x1204)], id="unaligned"),
        # end_boot_allocator gives node 1's top range first: it pays, the lower one does not
        pytest.param(
            [[[0, 0x1000]], [[0x1000, 0x2000], [0x3000, 0x3004]]],
            [(0x3000, 0x3004)],
            id="first-range-to-boot",
        ),
        # a 3-page range cannot hold 4 pages: they come from the heap (alloc_xenheap_pages,
        # order 2), here the top of node 0's highest zone, 0x7FC..0x7FF; dom0's two pages are
        # then the top of what is left
        pytest.param([[[0, 0x800]], [[0x1000, 0x1003]]], [(0x7FC, 0x800)], id="from-the-heap"),
    ],
)
def test_every_node_after_the_first_pays_for_its_free_lists(
    ranges: list[Any], metadata: list[tuple[int, int]]
) -> None:
    """The boot CPU's node (node 0) boots first and has static metadata; every later node
    gives 4 pages. Node 1's free memory is its RAM less those pages."""
    hv = boot(ranges=ranges)
    assert hv.heap.metadata == metadata
    ram1 = sum(e - s for s, e in ranges[1][0:])
    own = sum(e - s for s, e in metadata if any(a <= s < b for a, b in ranges[1]))
    assert hv.heap.node_avail_pages[1] == ram1 - own


def test_a_memoryless_or_offline_node_pays_nothing() -> None:
    hv = boot(nodes=[64, 0, 64], offline=[2])
    assert hv.heap.metadata == []


def test_a_node_without_room_for_its_free_lists_cannot_boot() -> None:
    """init_node_heap's last resort is alloc_xenheap_pages; with nothing to give, Xen's
    BUG_ON stops the boot."""
    with pytest.raises(HostConfigError, match="heap metadata"):
        hypervisor_model.boot(ranges=[[[0x1000, 0x1002]], [[0x2000, 0x2003]]])


def test_the_boot_cpus_node_boots_first_and_keeps_static_metadata() -> None:
    """Node 0 has no CPUs: node 1 is cpu_to_node(0), boots first and pays nothing; node 0
    pays from its head, which starts at MFN 1 (init_heap_pages keeps MFN 0 back)."""
    hv = boot(nodes=[64, 64], cpus_per_node=[0, 4])
    assert hv.heap.metadata == [(1, 5)]
    dom0 = hv.find_domain(0)
    assert dom0 is not None
    # dom0's structure and shared info come from the boot CPU's node: node 1's top pages
    assert (dom0.struct_page, dom0.shared_info) == (0x7FFF, 0x7FFE)


# -- createdomain ----------------------------------------------------------------------------


def test_a_pv_domain_costs_two_pages_of_the_boot_cpus_node() -> None:
    """alloc_domain_struct and the shared-info page: node 0's top free pages (dom0 took
    0x7FFF and 0x7FFE at boot, so 0x7FFD and 0x7FFC); tot_pages stays 0, and
    getdomaininfo's shared_info_frame is the page's MFN (mfn_to_gfn of a PV guest)."""
    hv = boot(nodes=[32, 32])
    g = Guest(hv)
    before = [g.node_free(0), g.node_free(1)]
    domid = g.create(hvm=False)
    assert [g.node_free(0), g.node_free(1)] == [before[0] - 2, before[1]]
    d = hv.find_domain(domid)
    assert d is not None and (d.struct_page, d.shared_info) == (0x1FFD, 0x1FFC)
    info = g.info(domid)
    assert (info.tot_pages, info.shared_info_frame) == (0, 0x1FFC)
    assert g.info(0).shared_info_frame == 0x1FFE  # dom0's


def test_an_hvm_domain_costs_its_hap_pool_too() -> None:
    """hap_enable: 256 MEMF_no_owner pages, round-robin from node 1 (last_alloc_node 0):
    128 + 128, with the structure and shared info (node 0): node 0 -130, node 1 -128. The
    pool reads 256 pages (1 MiB), 11 of them p2m tables; shared_info_frame is unmapped."""
    hv = boot(nodes=[32, 32])
    g = Guest(hv)
    before = [g.node_free(0), g.node_free(1)]
    domid = with_vcpus(g)
    assert [g.node_free(0), g.node_free(1)] == [before[0] - 130, before[1] - 128]
    assert g.info(domid).shared_info_frame == INVALID_M2P_ENTRY
    assert g.info(domid).tot_pages == 0
    assert g.mempool(domid) == (0, 256 * 4096)
    assert g.shadow_op(domid, GET) == (0, 1)
    d = hv.find_domain(domid)
    assert d is not None and (len(d.paging_pool), len(d.paging_p2m)) == (245, 11)


def test_a_shadowed_hvm_domain_starts_with_4_mib() -> None:
    """shadow_enable (HVM without CDF_hap): below sh_min_allocation, the pool is set to
    1024 pages (max(1024, 128 x 1 vCPU + 7)); the p2m and the 1:1 table come out of it."""
    hv = boot(nodes=[32, 32])
    g = Guest(hv)
    domid = with_vcpus(g, cdf=domctl.XEN_DOMCTL_CDF_hvm)
    assert g.mempool(domid) == (0, 1024 * 4096)
    assert g.shadow_op(domid, GET) == (0, 4)
    d = hv.find_domain(domid)
    assert d is not None and len(d.paging_p2m) == 2


def test_destroy_gives_every_page_back() -> None:
    hv = boot(nodes=[32, 32])
    g = Guest(hv)
    before = g.physinfo().free_pages
    domid = with_vcpus(g)
    assert g.mempool(domid, 2048 * 4096)[0] == 0
    assert g.populate(domid, range(100)) == 0  # max_pages is 0: nothing
    assert g.destroy(domid) == 0
    assert g.physinfo().free_pages == before


def test_createdomain_on_a_fully_claimed_host_is_enomem_and_leaks_the_domid() -> None:
    """alloc_domain_struct may use unclaimed memory only: with every free page claimed it
    fails, domain_create returns -ENOMEM before the domain exists, and the domid stays
    reserved (domid_alloc's id is never freed on that path), as for a bad config."""
    hv = boot(nodes=[32])
    g = Guest(hv)
    hog = g.create(hvm=False)
    assert g.max_mem(hog, 1 << 40) == 0
    assert g.claim_pages(hog, int(g.physinfo().free_pages)) == 0
    free = g.physinfo().free_pages
    assert g.createdomain(5, hvm=False)[0] == -ENOMEM
    assert g.physinfo().free_pages == free
    assert g.createdomain(5, hvm=False)[0] == -17  # EEXIST: 5 stays taken
    assert g.claim_pages(hog, 0) == 0
    assert g.createdomain(6, hvm=False) == (0, 6)


def test_an_hvm_domain_fails_on_its_hap_pool_and_gives_back_the_domid() -> None:
    """With 100 unclaimed pages the structure and shared info fit but the 256-page pool
    does not: hap_enable fails, domain_create's fail path frees everything and the domid."""
    hv = boot(nodes=[32])
    g = Guest(hv)
    hog = g.create(hvm=False)
    assert g.max_mem(hog, 1 << 40) == 0
    assert g.claim_pages(hog, int(g.physinfo().free_pages) - 100) == 0
    free = g.physinfo().free_pages
    assert g.createdomain(5, hvm=True)[0] == -ENOMEM
    assert g.physinfo().free_pages == free
    assert g.createdomain(5, hvm=False) == (0, 5)  # the id was freed


# -- XEN_DOMCTL_shadow_op and the paging_mempool_size domctls -------------------------------


def test_hap_allocation_in_mib_and_the_p2m_tables_stay() -> None:
    """SET_ALLOCATION 10 MiB: 2560 pages, 11 of them already p2m tables; GET 10. SET 0:
    hap_set_allocation keeps what holds p2m tables (11 pages), which GET rounds up to 1 MiB
    and the mempool domctl shows as 11 x 4096 bytes."""
    hv = boot(nodes=[32, 32])
    g = Guest(hv)
    domid = with_vcpus(g)
    free = g.physinfo().free_pages
    assert g.shadow_op(domid, SET, 10) == (0, 10)
    assert g.physinfo().free_pages == free - (2560 - 256)
    assert g.shadow_op(domid, GET) == (0, 10)
    assert g.shadow_op(domid, SET, 0) == (0, 1)
    assert g.mempool(domid) == (0, 11 * 4096)
    assert g.physinfo().free_pages == free + 256 - 11


@pytest.mark.parametrize(
    ("hvm", "mb", "expected"),
    [
        # PV: no shadow mode yet, so 0 is allowed; 2 MiB = 512 >= sh_min 128 x 1 vCPU
        (False, 2, (0, 2)),
        (False, 0, (0, 0)),
        # shadowed HVM: the pool may not go to 0 (EINVAL, mb copied back unchanged); 1 MiB
        # is below nothing: max(256, 128 + 7) = 256, 254 free and 2 p2m tables
        (True, 0, (-EINVAL, 0)),
        (True, 1, (0, 1)),
    ],
)
def test_shadow_allocation(hvm: bool, mb: int, expected: tuple[int, int]) -> None:
    hv = boot(nodes=[32])
    g = Guest(hv)
    domid = with_vcpus(g, cdf=domctl.XEN_DOMCTL_CDF_hvm if hvm else 0)
    assert g.shadow_op(domid, SET, mb) == expected


def test_pool_growth_uses_unclaimed_memory_only() -> None:
    """MEMF_no_owner pages are not refcounted: a claim on the domain does not let them into
    claimed memory. 100 unclaimed pages: growing by 300 stops at ENOMEM with 100 taken (what
    was done stays done), and the claim is untouched."""
    hv = boot(nodes=[32])
    g = Guest(hv)
    domid = with_vcpus(g)
    assert g.max_mem(domid, 1 << 40) == 0
    assert g.claim_set(domid, [(HOST, int(g.physinfo().free_pages) - 100)]) == 0
    outstanding = g.physinfo().outstanding_pages
    assert g.mempool(domid, (256 + 300) * 4096)[0] == -ENOMEM
    assert g.mempool(domid) == (0, (256 + 100) * 4096)
    assert g.physinfo().outstanding_pages == outstanding


@pytest.mark.parametrize("unclaimed", [None, 100])
@pytest.mark.parametrize("nodes", [[32, 32], [64]])
def test_pool_growth_takes_the_pages_one_allocation_after_another_would(
    nodes: list[int], unclaimed: int | None
) -> None:
    """The pool grows in batches up to each continuation point (64 pages); the pages, their
    order in the pool and the heap left behind must be those of 300 alloc_domheap_pages
    calls, each MEMF_no_owner from the node after the last (two nodes: alternating; one:
    down a split block), made on an identical host. With 100 unclaimed pages both stop
    after 100 pages, at ENOMEM."""
    hosts = [boot(nodes=nodes) for _ in range(2)]
    domains = []
    for hv in hosts:
        g = Guest(hv)
        domid = with_vcpus(g)
        if unclaimed is not None:
            assert g.max_mem(domid, 1 << 40) == 0
            assert g.claim_set(domid, [(HOST, int(g.physinfo().free_pages) - unclaimed)]) == 0
        domains.append((g, domid, hv.find_domain(domid)))
    (g, domid, batched), (_, _, reference) = domains
    assert batched is not None and reference is not None
    rc = g.mempool(domid, (256 + 300) * 4096)[0]
    assert rc == (0 if unclaimed is None else -ENOMEM)
    for _ in range(300):
        mfn = alloc_domheap_pages(hosts[1].heap, reference, 0, MEMF_no_owner)
        if mfn is None:
            break
        reference.paging_pool.add_tail(mfn)
    assert len(batched.paging_pool) == 245 + (300 if unclaimed is None else 100)
    assert batched.paging_pool.runs() == reference.paging_pool.runs()
    assert save_state(hosts[0]) == save_state(hosts[1])


CHECKS: list[Any] = [
    pytest.param("self", GET, 0, -EINVAL, id="on-itself"),
    pytest.param("no-vcpus", GET, 0, -EINVAL, id="no-vcpus"),
    pytest.param("hvm", 7, 0, -EINVAL, id="unknown-op"),
    pytest.param("hvm", domctl.XEN_DOMCTL_SHADOW_OP_ENABLE, 0, -EINVAL, id="hap-enable"),
    pytest.param("hvm", domctl.XEN_DOMCTL_SHADOW_OP_CLEAN, 2, -EINVAL, id="clean-bad-mode"),
    pytest.param("hvm", domctl.XEN_DOMCTL_SHADOW_OP_CLEAN, 0, -ENOSYS, id="log-dirty"),
    pytest.param("hvm", domctl.XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY, 0, -ENOSYS, id="logdirty"),
    pytest.param("hvm", domctl.XEN_DOMCTL_SHADOW_OP_OFF, 0, 0, id="off"),
]


@pytest.mark.parametrize(("who", "op", "mode", "rc"), CHECKS)
def test_shadow_op_checks(who: str, op: int, mode: int, rc: int) -> None:
    """paging_domctl: not on itself, not without vCPUs; hap_domctl knows GET, SET and OFF
    only. Nothing changes either way."""
    hv = boot(nodes=[32])
    g = Guest(hv)
    domid = 0 if who == "self" else g.create() if who == "no-vcpus" else with_vcpus(g)
    free = g.physinfo().free_pages
    assert g.shadow_op(domid, op, mode=mode)[0] == rc
    assert g.physinfo().free_pages == free


@pytest.mark.parametrize(
    ("size", "rc"),
    [(4097, -EINVAL), (1 << 44, -EINVAL), ((1 << 44) - 4096, -ENOMEM)],
    ids=["not-whole-pages", "2^32-pages", "too-big-for-the-host"],
)
def test_set_paging_mempool_size_checks(size: int, rc: int) -> None:
    hv = boot(nodes=[32])
    g = Guest(hv)
    domid = with_vcpus(g)
    assert g.mempool(domid, size)[0] == rc


def test_pv_guests_have_no_paging_mempool() -> None:
    hv = boot(nodes=[32])
    g = Guest(hv)
    domid = g.create(hvm=False)
    assert g.mempool(domid) == (-EOPNOTSUPP, 0)
    assert g.mempool(domid, 4096)[0] == -EOPNOTSUPP


def test_only_the_control_domain_may_size_a_pool() -> None:
    hv = boot(nodes=[32])
    g = Guest(hv)
    domid = with_vcpus(g)
    assert Guest(hv, domid).shadow_op(domid, GET)[0] == -EPERM
    assert Guest(hv, domid).mempool(domid, 8192)[0] == -EPERM


# -- save and resume ------------------------------------------------------------------------


def test_xens_pages_survive_save_and_resume() -> None:
    """Heap metadata, each domain's structure, shared info and pool are in the saved state;
    the resumed host saves the same document and passes the invariant check."""
    hv = boot(nodes=[32, 32])
    g = Guest(hv)
    domid = with_vcpus(g)
    assert g.mempool(domid, 600 * 4096)[0] == 0
    doc = save_state(hv)
    again = load_state(doc)
    assert save_state(again) == doc
    assert Guest(again).paging_pool(domid) == 600

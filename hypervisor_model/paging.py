"""What a domain costs Xen: its structure and shared-info pages, and its paging pool.

domain_create takes a page for the domain structure (alloc_domain_struct) and one for the
shared-info page (arch_domain_create); an HVM guest's paging code then fills a pool of pages
for its p2m and page tables (hap_enable, shadow_enable), which the toolstack resizes
(XEN_DOMCTL_shadow_op SET_ALLOCATION, XEN_DOMCTL_set_paging_mempool_size). None of these
pages belongs to the domain (alloc_xenheap_pages, MEMF_no_owner): they are not in tot_pages,
and claims protect against them, so they may use unclaimed memory only.

The pool's own consumption is limited to the top-level p2m tables taken when paging is
enabled; lower p2m tables and the vCPUs' monitor tables are not drawn from it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hypervisor_model.domain import Domain
from hypervisor_model.domheap import alloc_domheap_extents, alloc_domheap_pages
from hypervisor_model.errors import Restart, XenError
from hypervisor_model.guest_memory import parse
from hypervisor_model.heap import PAGE_SHIFT, Heap
from hypervisor_model.memflags import MEMF_bits, MEMF_get_bits, MEMF_no_owner, MEMF_no_scrub
from hypervisor_model.pagelist import PageList
from hypervisor_model.public import domctl as abi
from hypervisor_model.public.errno import EINVAL, ENOMEM, ENOSYS, EOPNOTSUPP

if TYPE_CHECKING:
    from hypervisor_model.domctl import _Reply as Reply
    from hypervisor_model.hypervisor import Hypervisor

DOMAIN_STRUCT_BITS = 44  # arch_domain_struct_memflags: the structure's PDX fits 32 bits
HAP_INITIAL_PAGES = 256  # hap_enable
SHADOW_INITIAL_PAGES = 1024  # shadow_enable: "use at least 4MB"
MAX_NESTEDP2M = 10  # hap_enable allocates a table for each nested p2m too
CONFIG_PAGING_LEVELS = 4
PAGES_PER_MB = 1 << (20 - PAGE_SHIFT)
PREEMPT_EVERY = 64  # pool pages between continuation points


# -- pages owned by no one ----------------------------------------------------------------


def alloc_xenheap_page(heap: Heap, memflags: int = 0) -> int | None:
    """alloc_xenheap_pages(0, memflags) on x86 (no separate xen heap): a domain-heap page
    with no owner, kept inside the direct map (xenheap_bits) when RAM reaches beyond it."""
    if heap.xenheap_bits and MEMF_get_bits(memflags) > heap.xenheap_bits:
        memflags &= ~MEMF_bits(0xFF)
    if not MEMF_get_bits(memflags):
        memflags |= MEMF_bits(heap.xenheap_bits)
    return alloc_domheap_pages(heap, None, 0, memflags | MEMF_no_scrub)


def free_xenheap_page(heap: Heap, mfn: int | None) -> None:
    if mfn is not None:
        heap.free_heap_pages(mfn, 0)


# -- the paging pool ----------------------------------------------------------------------


def hap_enabled(d: Domain) -> bool:
    return d.is_hvm and bool(d.cdf_flags & abi.XEN_DOMCTL_CDF_hap)


def shadow_mode_enabled(d: Domain) -> bool:
    """An HVM guest without HAP runs on shadow page tables (PV: only for log-dirty)."""
    return d.is_hvm and not hap_enabled(d)


def sh_min_allocation(d: Domain) -> int:
    """The least a shadow pool may hold: 128 pages per vCPU plus one per MiB of RAM, or
    the HVM minimum for the p2m and the 1:1 table (shadow/common.c sh_min_allocation)."""
    extra = max(d.tot_pages // 256, CONFIG_PAGING_LEVELS + 2 if d.is_hvm else 0) + d.is_hvm
    return 128 * d.max_vcpus + max(extra, len(d.paging_p2m))


def pool_pages(d: Domain) -> int:
    """total_pages + p2m_pages: every page of the pool, free or holding p2m tables."""
    return len(d.paging_pool) + len(d.paging_p2m)


def allocation_mb(d: Domain) -> int:
    """{hap,shadow}_get_allocation: the pool in MiB, rounded up."""
    return -(-pool_pages(d) // PAGES_PER_MB)


def set_allocation(hv: Hypervisor, d: Domain, pages: int, preemptible: bool = True) -> None:
    """Grow or shrink the pool to ``pages`` (hap_set_allocation / shadow_set_allocation):
    order-0 MEMF_no_owner pages in at the tail, out from the head. Raises ENOMEM when the
    heap runs dry; what was done stays done, as in Xen. Only the domctls may be preempted
    (paging_enable passes no ``preempted``)."""
    p2m = len(d.paging_p2m)
    if hap_enabled(d):
        pages = max(pages - p2m, 0)
    elif pages > 0:
        pages = max(pages, sh_min_allocation(d)) - p2m
    done = 0
    while True:
        with d.page_alloc_lock:
            if len(d.paging_pool) < pages:
                # The pages up to the next continuation point, one after another, in a batch.
                want = min(pages - len(d.paging_pool), PREEMPT_EVERY - done % PREEMPT_EVERY)
                runs = alloc_domheap_extents(hv.heap, d, 0, MEMF_no_owner, want)
                for run in runs:
                    for page in run.mfns():
                        d.paging_pool.add_tail(page)
                got = sum(run.length for run in runs)
                if got < want:
                    raise XenError(ENOMEM, f"d{d.domain_id}: no page for the paging pool")
            elif len(d.paging_pool) > pages:
                mfn = d.paging_pool.remove_head()
                assert mfn is not None
                hv.heap.free_heap_pages(mfn, 0)
                got = 1
            else:
                return
        done += got
        if preemptible and done % PREEMPT_EVERY == 0:
            raise Restart  # the domctl returns -ERESTART: re-issued, it goes on from here


def _take_p2m_table(d: Domain) -> None:
    """A top-level p2m table from the pool's free list (p2m_alloc_table via alloc_page)."""
    with d.page_alloc_lock:
        mfn = d.paging_pool.remove_head()
        if mfn is None:
            raise XenError(ENOMEM, f"d{d.domain_id}: paging pool empty")
        d.paging_p2m.append(mfn)


def paging_enable(hv: Hypervisor, d: Domain) -> None:
    """Translated paging for a new HVM guest (hvm_domain_initialise -> paging_enable):
    HAP fills a 256-page pool and takes the host and ten nested p2m tables from it; shadow
    fills 1024 pages (at least its minimum) and takes the p2m and the 1:1 table. A failure
    empties the pool again and is ENOMEM."""
    try:
        if hap_enabled(d):
            set_allocation(hv, d, HAP_INITIAL_PAGES, preemptible=False)
            tables = 1 + MAX_NESTEDP2M
        else:
            if pool_pages(d) < sh_min_allocation(d):
                set_allocation(hv, d, SHADOW_INITIAL_PAGES, preemptible=False)
            tables = 2
        for _ in range(tables):
            _take_p2m_table(d)
    except XenError:
        paging_teardown(hv, d)
        raise


def paging_teardown(hv: Hypervisor, d: Domain) -> None:
    """Give the whole pool back (hap_teardown / shadow_teardown): the nested p2m tables,
    then the host p2m's, then the free list from its head."""
    with d.page_alloc_lock:
        tables = d.paging_p2m[1:] + d.paging_p2m[:1]
        d.paging_p2m = []
        pool = list(d.paging_pool)
        d.paging_pool = PageList()
    for mfn in tables + pool:
        hv.heap.free_heap_pages(mfn, 0)


# -- the domctls --------------------------------------------------------------------------


def shadow_op(hv: Hypervisor, current: Domain, d: Domain, reply: Reply) -> int:
    """XEN_DOMCTL_shadow_op (paging_domctl, then hap_domctl or shadow_domctl): the pool's
    GET/SET_ALLOCATION in MiB, OFF as a no-op; the whole domctl is copied back. Log-dirty
    tracking is not modelled (ENOSYS)."""
    sc = parse(abi.xen_domctl_shadow_op, reply.op.u)
    reply.copyback = True
    if d is current or d.is_dying or not d.nr_vcpus:
        return reply.send(-EINVAL)  # a paging op on itself, a dying domain, or no vCPUs
    op = sc.op
    if op in (abi.XEN_DOMCTL_SHADOW_OP_CLEAN, abi.XEN_DOMCTL_SHADOW_OP_PEEK):
        if sc.mode & ~abi.XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL:
            return reply.send(-EINVAL)
        return reply.send(-ENOSYS)
    log_dirty = op == abi.XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY or (
        op == abi.XEN_DOMCTL_SHADOW_OP_ENABLE and sc.mode & abi.XEN_DOMCTL_SHADOW_ENABLE_LOG_DIRTY
    )
    if log_dirty or (not hap_enabled(d) and op in _SHADOW_ENABLES):
        return reply.send(-ENOSYS)
    rc = 0
    if op == abi.XEN_DOMCTL_SHADOW_OP_SET_ALLOCATION:
        if sc.mb == 0 and shadow_mode_enabled(d):
            return reply.send(-EINVAL)  # a shadowed guest cannot give up its whole pool
        try:
            set_allocation(hv, d, sc.mb * PAGES_PER_MB)
        except XenError as e:
            rc = -e.errno
        else:
            sc.mb = allocation_mb(d)
    elif op == abi.XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION:
        sc.mb = allocation_mb(d)
    elif op != abi.XEN_DOMCTL_SHADOW_OP_OFF:
        return reply.send(-EINVAL)  # hap_domctl / shadow_domctl: unknown op
    reply.payload(abi.xen_domctl_shadow_op, sc)
    return reply.send(rc)


_SHADOW_ENABLES = (abi.XEN_DOMCTL_SHADOW_OP_ENABLE_TEST, abi.XEN_DOMCTL_SHADOW_OP_ENABLE)


def get_paging_mempool_size(hv: Hypervisor, current: Domain, d: Domain, reply: Reply) -> int:
    """arch_get_paging_mempool_size: the pool in bytes; PV guests have none (EOPNOTSUPP)."""
    if not d.is_hvm:
        raise XenError(EOPNOTSUPP, "PV guests have no paging pool")
    reply.payload(abi.xen_domctl_paging_mempool, dict(size=pool_pages(d) << PAGE_SHIFT))
    return reply.send(0)


def set_paging_mempool_size(hv: Hypervisor, current: Domain, d: Domain, reply: Reply) -> int:
    """arch_set_paging_mempool_size: whole pages only, at most 2^32 - 1 of them."""
    size = parse(abi.xen_domctl_paging_mempool, reply.op.u).size
    if not d.is_hvm:
        raise XenError(EOPNOTSUPP, "PV guests have no paging pool")
    pages = size >> PAGE_SHIFT
    if size & ((1 << PAGE_SHIFT) - 1) or pages > 0xFFFFFFFF:
        raise XenError(EINVAL, f"expected whole pages below 2^32, got {size:#x} bytes")
    set_allocation(hv, d, pages)
    return 0

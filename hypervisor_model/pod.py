"""Populate-on-demand (x86 p2m-pod.c): guest frames marked to be backed later, and the
cache of the domain's own pages that will back them.

A PoD entry is a gfn with no page behind it (``d.pod_entries``, gfn -> None). The cache
(``d.pod_super``: heads of 2 MiB blocks, ``d.pod_single``: single pages, each in list order)
holds pages the domain owns, counted in ``tot_pages`` but mapped nowhere. Xen keeps two
counters: ``pod_entry_count`` (entries) and ``pod_count`` (pages in the cache).

No guest runs here, so no guest touches an entry: nothing is ever populated on demand,
and the zero-page sweeps that would reclaim guest pages found all zeroes (the zero checks
in p2m-pod.c) never reclaim one, the model keeping no page contents.

Locking: a domain's PoD state changes under its ``page_alloc_lock`` (Xen's pod lock and
p2m lock, taken before the heap's lock, as Xen orders them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hypervisor_model.domain import Domain, domain_crash
from hypervisor_model.domheap import P2M_LIMIT, alloc_domheap_pages, free_domheap_pages, mfn_span
from hypervisor_model.errors import XenError
from hypervisor_model.guest_memory import build, copy_struct_from_guest
from hypervisor_model.paging import hap_enabled
from hypervisor_model.public import memory as abi
from hypervisor_model.public.errno import EINVAL, ENOMEM, EPERM, ERESTART, ESRCH
from hypervisor_model.public.xen import DOMID_SELF

if TYPE_CHECKING:
    from hypervisor_model.hypervisor import Hypervisor

SUPERPAGE_ORDER = 9  # PAGE_ORDER_2M
SUPERPAGE_PAGES = 1 << SUPERPAGE_ORDER
PAGE_ORDER_1G = 18
PREEMPT_EVERY = 64  # cache steps between continuation points of XENMEM_set_pod_target


def _ffs_order(gfn: int, pages: int) -> int:
    """``ffsl(gfn | pages) - 1``: the largest order both the start and the size allow."""
    bits = gfn | pages
    return (bits & -bits).bit_length() - 1


# -- the cache ------------------------------------------------------------------------------


def _cache_add(d: Domain, mfn: int, order: int) -> None:
    """p2m_pod_cache_add: 2 MiB blocks (or larger, split) go on the superpage list, smaller
    extents page by page on the single list."""
    if order >= SUPERPAGE_ORDER:
        d.pod_super.add_tail_run(mfn, 1 << (order - SUPERPAGE_ORDER), SUPERPAGE_PAGES)
    else:
        d.pod_single.add_tail_run(mfn, 1 << order, 1)
    d.pod_count += 1 << order


def _cache_get(d: Domain, order: int) -> int:
    """p2m_pod_cache_get for a shrinking cache: a 2 MiB block, or a single page, breaking
    the first 2 MiB block up when no single page is left."""
    if order == 0 and not d.pod_single:
        head = d.pod_super.remove_head()
        assert head is not None, "the PoD cache is empty"
        d.pod_single.add_tail_run(head, SUPERPAGE_PAGES, 1)  # count unchanged
    mfn = (d.pod_super if order else d.pod_single).remove_head()
    assert mfn is not None, "the PoD cache is empty"
    d.pod_count -= 1 << order
    return mfn


def set_cache_target(hv: Hypervisor, d: Domain, target: int, preemptible: bool) -> int:
    """p2m_pod_set_cache_target: grow the cache in 2 MiB blocks while at least 512 pages
    are missing (a single page when a block cannot be had), then single pages; shrink it
    a 2 MiB block at a time while more than 512 too many, else a page at a time. The
    pages are the domain's (alloc_domheap_pages(d, order, 0): counted against max_pages
    and its claim). Returns 0, ENOMEM (what was added stays) or ERESTART (to continue)."""
    steps = 0
    while True:
        with d.page_alloc_lock:
            if target > d.pod_count:
                order = SUPERPAGE_ORDER if target - d.pod_count >= SUPERPAGE_PAGES else 0
                mfn = alloc_domheap_pages(hv.heap, d, order, 0)
                if mfn is None and order:
                    order = 0
                    mfn = alloc_domheap_pages(hv.heap, d, 0, 0)
                if mfn is None:
                    return ENOMEM
                _cache_add(d, mfn, order)
            elif target < d.pod_count:
                big = d.pod_count - target > SUPERPAGE_PAGES and bool(d.pod_super)
                order = SUPERPAGE_ORDER if big else 0
                mfn = _cache_get(d, order)
                free_domheap_pages(hv.heap, d, mfn, 1 << order)
            else:
                return 0
            done = target == d.pod_count
        steps += 1
        if preemptible and not done and steps % PREEMPT_EVERY == 0:
            return ERESTART


def set_mem_target(hv: Hypervisor, d: Domain, target: int) -> int:
    """p2m_pod_set_mem_target: size the cache for a new target. Nothing happens once the
    guest has populated memory and has no entries left, while it dies, or when the target
    is below what it holds (the balloon driver gives memory back); else the cache is to
    hold ``target - populated`` pages, at most the outstanding entries once any memory
    is populated."""
    with d.page_alloc_lock:
        populated = d.tot_pages - d.pod_count
        if populated > 0 and d.pod_entry_count == 0:
            return 0
        if d.is_dying or target < d.tot_pages:
            return 0
        pod_target = target - populated
        if populated > 0 and pod_target > d.pod_entry_count:
            pod_target = d.pod_entry_count
    return set_cache_target(hv, d, pod_target, preemptible=True)


def empty_cache(d: Domain) -> None:
    """paging_teardown's p2m_pod_empty_cache, with the p2m teardown that drops the entries:
    the cache pages go back to the domain's list, to be freed with the rest of its memory;
    ``pod_entry_count`` keeps its value, as Xen leaves it."""
    with d.page_alloc_lock:
        d.pod_super = type(d.pod_super)()
        d.pod_single = type(d.pod_single)()
        d.pod_count = 0
        d.pod_entries = type(d.pod_entries)()


def cache_spans(d: Domain) -> list[tuple[int, int]]:
    """The cache's frames as ``(lowest MFN, pages)``."""
    return list(d.pod_super.spans(SUPERPAGE_PAGES)) + list(d.pod_single.spans())


# -- marking entries ------------------------------------------------------------------------


def mark_populate_on_demand(d: Domain, gfn: int, order: int) -> bool:
    """guest_physmap_mark_populate_on_demand: mark ``2**order`` gfns PoD, in chunks of the
    largest order the start allows, stopping at the first chunk that fails. A chunk
    (mark_populate_on_demand) fails with EBUSY if any of its gfns holds memory; else it
    becomes PoD, the count growing by the entries it did not hold already. Setting the
    entries fails once the p2m is torn down (dying) or beyond its four levels; a failure
    for more than one page leaves Xen unsure what changed, so it crashes the domain."""
    if not d.is_translated:
        return False  # EINVAL
    pages = 1 << order
    size = 1 << _ffs_order(gfn, pages)
    end = gfn + pages
    with d.page_alloc_lock:
        # The chunks run in order: the first to fail ends the marking (chunks are aligned
        # to their size, so none straddles the p2m's limit).
        mapped = d.p2m.overlapping(gfn, end)
        busy = gfn + (mapped[0].start - gfn) // size * size if mapped else end
        settable = gfn if d.is_dying else max(gfn, min(end, P2M_LIMIT))
        ok_end = min(busy, settable)
        if ok_end > gfn:
            replaced = d.pod_entries.remove(gfn, ok_end)
            d.pod_entries.insert(gfn, ok_end - gfn, None, 1, None)
            d.pod_entry_count += ok_end - gfn - sum(r.length for r in replaced)
            d.max_mapped_pfn = max(d.max_mapped_pfn, ok_end - 1)  # ept_set_entry
        if ok_end < end and settable < busy and size > 1:
            domain_crash(d)
    return ok_end == end


def hole_end(d: Domain, gfn: int, end: int) -> int:
    """Where the hole at ``gfn`` ends: the next mapping, the next entry, or ``end``."""
    nxt = end
    for index in (d.p2m, d.pod_entries):
        pieces = index.overlapping(gfn, end)
        if pieces:
            nxt = min(nxt, pieces[0].start)
    return nxt


# -- giving memory back ---------------------------------------------------------------------


def _ram_entry_order(d: Domain, gfn: int) -> int:
    """The order of the p2m entry mapping ``gfn`` (get_entry's cur_order). The model keeps
    no p2m levels: a HAP guest's entry is a superpage where the p2m maps a whole aligned
    1 GiB or 2 MiB block to an aligned run of frames, as populating with that order leaves
    it; shadow-paged guests' p2m entries are all 4 KiB (p2m_set_entry)."""
    if not hap_enabled(d):
        return 0
    run = d.p2m.find(gfn)
    assert run is not None and run.value is not None
    for order in (PAGE_ORDER_1G, SUPERPAGE_ORDER):
        base = gfn & ~((1 << order) - 1)
        whole = run.start <= base and base + (1 << order) <= run.end
        contiguous = run.step == 1 or run.length == 1
        if whole and contiguous and (run.value_at(base) or 0) % (1 << order) == 0:
            return order
    return 0


def _decrease_chunk(hv: Hypervisor, d: Domain, gfn: int, order: int) -> int:
    """p2m-pod.c decrease_reservation for one aligned chunk: clear its PoD entries and, while
    the entries outnumber the cache, steal the memory being freed for the cache instead.
    Returns the pages it dealt with (the caller's guest_remove_page loop expects exactly
    that many holes)."""
    pages = 1 << order
    end = gfn + pages
    with d.page_alloc_lock:
        if d.pod_entry_count == 0 or d.is_dying:
            return 0
        steal = d.pod_entry_count > d.pod_count
        pod = d.pod_entries.covered(gfn, end)
        ram = d.p2m.covered(gfn, end)
        if not pod and not steal:
            return 0
        done = 0
        if pod == pages:  # all PoD: the whole chunk becomes invalid
            d.pod_entries.remove(gfn, end)
            d.pod_entry_count -= pages
            done = pages
        else:
            # (the whole-superpage steal needs its pages to be all zeroes: never, here)
            at = gfn
            while at < end and (pod > 0 or (steal and ram > 0)):
                entry = d.pod_entries.find(at)
                mapped = d.p2m.find(at) if entry is None else None
                if entry is not None:  # a PoD run: cleared whole, pod stays > 0 through it
                    stop = min(entry.end, end)
                    d.pod_entries.remove(at, stop)
                    d.pod_entry_count -= stop - at
                    pod -= stop - at
                    done += stop - at
                    at = stop
                elif mapped is not None and steal:  # the entry (or the chunk's part of it)
                    k = min(order, _ram_entry_order(d, at))
                    n = 1 << k
                    (piece,) = d.p2m.remove(at, at + n)
                    _cache_add(d, mfn_span(piece)[0], k)
                    steal = d.pod_entry_count > d.pod_count
                    ram -= n
                    done += n
                    at += n
                elif mapped is not None:  # not stealing: RAM is left to the caller
                    at = min(mapped.end, end)
                else:
                    at = hole_end(d, at, end)
        if d.pod_entry_count < d.pod_count:  # fewer liabilities than assets: free some
            set_cache_target(hv, d, d.pod_entry_count, preemptible=False)
    return done


def decrease_reservation(hv: Hypervisor, d: Domain, gfn: int, order: int) -> int:
    """p2m_pod_decrease_reservation: the extent in chunks of the largest order its start
    allows. Returns how many of its pages PoD dealt with."""
    pages = 1 << order
    chunk = _ffs_order(gfn, pages)
    return sum(
        _decrease_chunk(hv, d, first, chunk) for first in range(gfn, gfn + pages, 1 << chunk)
    )


# -- XENMEM_{set,get}_pod_target ------------------------------------------------------------


def pod_target_op(hv: Hypervisor, current: Domain, arg: int, cmd: int) -> int:
    """x86 arch_memory_op's XENMEM_set_pod_target / XENMEM_get_pod_target: HVM guests only
    (EINVAL), the control domain only (XSM_PRIV), a target no larger than max_pages; the
    counts are copied back after any success. A long cache fill continues as Xen's
    continuation does: the whole operation runs again."""
    while True:
        rc = _pod_target_once(hv, current, arg, cmd)
        if rc != -ERESTART:
            return rc
        hv.preempt_check()


def _pod_target_once(hv: Hypervisor, current: Domain, arg: int, cmd: int) -> int:
    target = copy_struct_from_guest(hv.caller_memory, arg, abi.xen_pod_target)  # EFAULT
    d = current if target.domid == DOMID_SELF else hv.find_domain(target.domid)
    if d is None:
        raise XenError(ESRCH)
    if not d.is_hvm:
        raise XenError(EINVAL, "populate-on-demand is for HVM guests")
    if not hv.is_control_domain(current):
        raise XenError(EPERM)  # xsm_{set,get}_pod_target(XSM_PRIV)
    rc = 0
    if cmd == abi.XENMEM_set_pod_target:
        if target.target_pages > d.max_pages:
            raise XenError(EINVAL, "target above max_pages")
        rc = set_mem_target(hv, d, target.target_pages)
        if rc == ERESTART:
            return -ERESTART
        if rc:
            raise XenError(rc, "cannot fill the PoD cache")
    with d.page_alloc_lock:  # p2m_pod_get_mem_target
        target.tot_pages = d.tot_pages
        target.pod_cache_pages = d.pod_count
        target.pod_entries = d.pod_entry_count
    hv.caller_memory.copy_to_guest(arg, build(abi.xen_pod_target, target))  # EFAULT
    return rc

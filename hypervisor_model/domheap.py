"""Pages of domains: allocate and assign, free, and map into the guest's physmap.

The counterparts of alloc_domheap_pages / assign_pages / free_domheap_pages (page_alloc.c)
and guest_physmap_add_page / guest_remove_page (memory.c, the x86 p2m). Lock order is
Xen's: a domain's ``page_alloc_lock`` before ``heap_lock``, never the other way round.
"""

from __future__ import annotations

from itertools import islice

from hypervisor_model.domain import Domain
from hypervisor_model.errors import XenError
from hypervisor_model.heap import NR_ZONES, Heap, aligned_chunks, bits_to_zone
from hypervisor_model.memflags import (
    MEMF_get_bits,
    MEMF_no_dma,
    MEMF_no_owner,
    MEMF_no_refcount,
)
from hypervisor_model.public.errno import E2BIG, EINVAL, EPERM
from hypervisor_model.runmap import Run, RunMap

BITS_PER_LONG = 64
# Xen's p2m has four levels (ept_set_entry / p2m-pt p2m_find_entry refuse more): guest
# frames below 2^36, a 48-bit guest-physical space.
P2M_LIMIT = 1 << (48 - 12)


def alloc_domheap_pages(
    heap: Heap, d: Domain | None, order: int, memflags: int, gfn: int | None = None
) -> int | None:
    """Allocate ``2**order`` pages for ``d`` and assign them to it; return the first MFN.
    ``gfn`` is the guest frame they are for (recorded with ownership, as the M2P).

    Zones above the DMA zone are tried first, then all zones unless MEMF_no_dma
    (alloc_domheap_pages). A failed assignment frees the pages: a claim already redeemed
    for them stays spent, as in Xen.
    """
    if heap.faults is not None and heap.faults.allocation_fails(d):
        return None
    bits = MEMF_get_bits(memflags) or BITS_PER_LONG + 12
    if d is not None and d.physaddr_bitsize and not memflags & MEMF_no_owner:
        bits = min(bits, d.physaddr_bitsize)  # domain_clamp_alloc_bitsize
    zone_hi = min(bits_to_zone(bits), NR_ZONES - 1)
    if memflags & MEMF_no_owner:
        memflags |= MEMF_no_refcount
    found = None
    if not heap.dma_bitsize:
        memflags &= ~MEMF_no_dma
    elif (dma_zone := bits_to_zone(heap.dma_bitsize)) < zone_hi:
        found = heap.alloc_heap_pages(dma_zone + 1, zone_hi, order, memflags, d)
    if found is None:
        if memflags & MEMF_no_dma:
            return None
        found = heap.alloc_heap_pages(1, zone_hi, order, memflags, d)
        if found is None:
            return None
    mfn, node = found
    if d is not None and not memflags & MEMF_no_owner:
        try:
            assign_pages(d, mfn, 1 << order, node, memflags, gfn)
        except XenError:
            heap.free_heap_pages(mfn, order)
            return None
    return mfn


def assign_pages(
    d: Domain, mfn: int, nr: int, node: int, memflags: int, gfn: int | None = None
) -> None:
    """Make ``d`` the owner of ``nr`` pages (assign_pages): refused for a dying domain
    (EINVAL), or beyond max_pages (EPERM when already over, else E2BIG)."""
    with d.page_alloc_lock:
        if d.is_dying:
            raise XenError(EINVAL, f"d{d.domain_id} is dying")
        if not memflags & MEMF_no_refcount:
            if d.tot_pages > d.max_pages:
                raise XenError(EPERM, f"d{d.domain_id} already above max_pages")
            if nr > d.max_pages - d.tot_pages:
                raise XenError(E2BIG, f"d{d.domain_id} would exceed max_pages")
            d.tot_pages += nr
        # A PV guest's frames keep their guest frame (Xen's M2P); a translated guest's p2m
        # says the same the other way round, so its frames need no value and coalesce.
        d.pages.insert(mfn, nr, None if d.is_translated else gfn, 1, None)
        d.node_pages[node] = d.node_pages.get(node, 0) + nr


def _disown(heap: Heap, d: Domain, mfn: int, nr: int) -> None:
    """Take ``nr`` pages from ``d``'s books (free_domheap_pages' accounting; freeing never
    gives a claim back); the caller holds ``d.page_alloc_lock``."""
    removed = d.pages.remove(mfn, mfn + nr)
    assert sum(p.length for p in removed) == nr, "freeing pages the domain does not own"
    d.tot_pages -= nr
    for start, end, node in heap.split_by_node(mfn, mfn + nr):
        d.node_pages[node] -= end - start
        if not d.node_pages[node]:
            del d.node_pages[node]


def _give_back(heap: Heap, mfn: int, nr: int) -> None:
    """Return frames to the heap as aligned buddies, node by node."""
    for start, end, _ in heap.split_by_node(mfn, mfn + nr):
        for head, order in aligned_chunks(start, end):
            heap.free_heap_pages(head, order)


def free_domheap_pages(heap: Heap, d: Domain, mfn: int, nr: int) -> None:
    """Free ``nr`` pages ``d`` owns from ``mfn`` (the last put_page of each)."""
    with d.page_alloc_lock:
        _disown(heap, d, mfn, nr)
    _give_back(heap, mfn, nr)


def relinquish_some(heap: Heap, d: Domain, budget: int) -> bool:
    """Free up to ``budget`` runs of a dying domain's pages; True once none are left."""
    with d.page_alloc_lock:
        d.p2m = RunMap()
        runs = list(islice(d.pages, budget))
        for run in runs:
            _disown(heap, d, run.start, run.length)
    for run in runs:
        _give_back(heap, run.start, run.length)
    return not runs


# -- the guest physmap ---------------------------------------------------------------------


def guest_physmap_add_page(d: Domain, gfn: int, mfn: int, order: int) -> bool:
    """Map ``2**order`` owned pages at ``gfn``. A translated guest's old mappings there are
    dropped (their pages stay allocated to the domain, unmapped, as in Xen's p2m); a PV
    guest only records the machine-to-phys entries. False if the p2m cannot map ``gfn``."""
    nr = 1 << order
    with d.page_alloc_lock:
        owned = d.pages.find(mfn)
        if owned is None or owned.end < mfn + nr:
            return False  # the domain died and gave the pages back meanwhile
        if d.is_translated:
            if gfn + nr > P2M_LIMIT:
                return False
            d.p2m.remove(gfn, gfn + nr)
            d.p2m.insert(gfn, nr, mfn, 1, None)
            replaced = d.pod_entries.remove(gfn, gfn + nr)  # p2m_add_page over PoD entries
            d.pod_entry_count -= sum(r.length for r in replaced)
            d.max_mapped_pfn = max(d.max_mapped_pfn, gfn + nr - 1)  # p2m_pt/ept_set_entry
        elif owned.value_at(mfn) != gfn or (nr > 1 and owned.step != 1):
            d.pages.remove(mfn, mfn + nr)  # set_gpfn_from_mfn for each page
            d.pages.insert(mfn, nr, gfn, 1, None)
        return True


def mfn_span(run: Run) -> tuple[int, int]:
    """The machine frames behind a p2m run: (lowest MFN, count), whichever way it runs."""
    assert run.value is not None
    return (run.value if run.step == 1 else run.value - run.length + 1), run.length


def mapped_prefix(pieces: list[Run], start: int) -> int:
    """How many keys from ``start`` the pieces cover without a gap."""
    cursor = start
    for piece in pieces:
        if piece.start != cursor:
            break
        cursor = piece.end
    return cursor - start


def guest_remove_pages(heap: Heap, d: Domain, gmfn: int, nr: int) -> bool:
    """Remove and free the pages at ``gmfn .. gmfn+nr-1`` one by one until one cannot be
    removed (guest_remove_page): a hole in a translated guest's physmap (ENOENT), or, for PV
    where gmfn is a machine frame, a frame the domain does not own (ENXIO) or not RAM
    (EINVAL). Returns True only if all ``nr`` pages went."""
    with d.page_alloc_lock:
        index = d.p2m if d.is_translated else d.pages
        done = mapped_prefix(index.overlapping(gmfn, gmfn + nr), gmfn)
        frames: list[tuple[int, int]] = []  # (lowest MFN, pages) of each removed piece
        if d.is_translated:
            frames = [mfn_span(p) for p in d.p2m.remove(gmfn, gmfn + done)]
        elif done:
            frames.append((gmfn, done))
        for mfn, length in frames:
            _disown(heap, d, mfn, length)
    for mfn, length in frames:
        _give_back(heap, mfn, length)
    return done == nr

"""Pages of domains: allocate and assign, free, and map into the guest's physmap.

The counterparts of alloc_domheap_pages / assign_pages / free_domheap_pages (page_alloc.c)
and guest_physmap_add_page / guest_remove_page (memory.c, the x86 p2m). Lock order is
Xen's: a domain's ``page_alloc_lock`` before ``heap_lock``, never the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from itertools import islice

from hypervisor_model.domain import Domain
from hypervisor_model.heap import NR_ZONES, Extents, Heap, aligned_chunks, bits_to_zone
from hypervisor_model.memflags import (
    MEMF_get_bits,
    MEMF_no_dma,
    MEMF_no_owner,
    MEMF_no_refcount,
)
from hypervisor_model.runmap import Progression, Run, RunMap

BITS_PER_LONG = 64
# Xen's p2m has four levels (ept_set_entry / p2m-pt p2m_find_entry refuse more): guest
# frames below 2^36, a 48-bit guest-physical space.
P2M_LIMIT = 1 << (48 - 12)


def alloc_domheap_pages(
    heap: Heap, d: Domain | None, order: int, memflags: int, gfn: int | None = None
) -> int | None:
    """Allocate ``2**order`` pages for ``d`` and assign them to it; return the first MFN.
    ``gfn`` is the guest frame they are for (recorded with ownership, as the M2P)."""
    runs = alloc_domheap_extents(heap, d, order, memflags, 1, None if gfn is None else [gfn])
    return runs[0].mfn if runs else None


def alloc_domheap_extents(
    heap: Heap,
    d: Domain | None,
    order: int,
    memflags: int,
    count: int,
    gfns: Sequence[int] | None = None,
) -> list[Extents]:
    """Allocate ``count`` extents of ``2**order`` pages for ``d`` one after another and
    assign each to it, as that many alloc_domheap_pages calls would; stop at the first
    that fails. ``gfns[i]`` is the guest frame extent i is for (the M2P of a PV guest).

    Zones above the DMA zone are tried first, then all zones unless MEMF_no_dma
    (alloc_domheap_pages). An extent assign_pages refuses is freed again and ends the
    batch: a claim already redeemed for it stays spent, as in Xen. The batch holds the
    domain's page_alloc_lock throughout, so what assign_pages will accept is known first.
    """
    clamp = d.physaddr_bitsize if d is not None else 0
    memflags, attempts = _zone_attempts(memflags, clamp, heap.dma_bitsize)
    if d is None or memflags & MEMF_no_owner:
        return heap.alloc_extents(attempts, order, memflags, d, count, heap.faults)
    with d.page_alloc_lock:
        fits = _assignable(d, 1 << order, memflags, count)
        asked = min(count, fits + 1)  # one more than fits: the extent assign_pages refuses
        runs = heap.alloc_extents(attempts, order, memflags, d, asked, heap.faults)
        if asked > fits and sum(r.length for r in runs) > fits:
            refused = runs.pop()
            if refused.length > 1:
                runs.append(refused._replace(length=refused.length - 1))
            heap.free_heap_pages(refused.last, order)
        _assign(d, runs, memflags, gfns)
    return runs


@lru_cache(maxsize=256)  # bounded: a caller may try any memflags
def _zone_attempts(
    memflags: int, physaddr_bitsize: int, dma_bitsize: int
) -> tuple[int, tuple[tuple[int, int], ...]]:
    """alloc_domheap_pages' memflags and zone ranges for them, in the order tried: above
    the DMA zone first, then all zones unless MEMF_no_dma. The same few arguments recur
    with every call, so the answer is worked out once for each."""
    bits = MEMF_get_bits(memflags) or BITS_PER_LONG + 12
    if physaddr_bitsize and not memflags & MEMF_no_owner:
        bits = min(bits, physaddr_bitsize)  # domain_clamp_alloc_bitsize
    zone_hi = min(bits_to_zone(bits), NR_ZONES - 1)
    if memflags & MEMF_no_owner:
        memflags |= MEMF_no_refcount
    attempts = []
    if not dma_bitsize:
        memflags &= ~MEMF_no_dma
    elif (dma_zone := bits_to_zone(dma_bitsize)) < zone_hi:
        attempts.append((dma_zone + 1, zone_hi))
    if not memflags & MEMF_no_dma:
        attempts.append((1, zone_hi))
    return memflags, tuple(attempts)


def _assignable(d: Domain, nr: int, memflags: int, most: int) -> int:
    """How many extents of ``nr`` pages assign_pages accepts one after another, up to
    ``most``: none for a dying domain (EINVAL), none once tot_pages is above max_pages
    (EPERM), then as many as fit under max_pages (E2BIG after)."""
    if d.is_dying:
        return 0
    if memflags & MEMF_no_refcount:
        return most
    if d.tot_pages > d.max_pages:
        return 0
    return min(most, (d.max_pages - d.tot_pages) // nr)


def _assign(d: Domain, runs: list[Extents], memflags: int, gfns: Sequence[int] | None) -> None:
    """Make ``d`` the owner of the extents (assign_pages), each with its guest frame for a
    PV guest (Xen's M2P); a translated guest's p2m says the same the other way round, so
    its frames need no value and coalesce."""
    if not runs:
        return
    size = runs[0].size
    owned: list[Run] = []
    first = 0
    for r in runs:
        pages = r.length * size
        d.node_pages[r.node] = d.node_pages.get(r.node, 0) + pages
        if gfns is not None and not d.is_translated:
            owned += pairs_as_runs(r.mfns(), gfns[first : first + r.length], size, any_step=True)
        elif len(runs) == 1:  # the common case: one run, entered as it is
            d.pages.insert(r.last, pages, None, 1, None)
        else:
            owned.append(Run(r.last, pages, None, 1, None))
        first += r.length
    if not memflags & MEMF_no_refcount:
        d.tot_pages += first * size
    if len(owned) == 1:
        d.pages.insert(*owned[0])
    elif owned:
        owned.sort()
        d.pages.insert_many(owned)


def pairs_as_runs(
    keys: Sequence[int], values: Sequence[int], size: int, *, any_step: bool = False
) -> list[Run]:
    """Runs mapping ``size`` keys from each of ``keys`` to as many values from the matching
    one of ``values`` (unsorted): one run where single keys go one by one and their values
    step evenly (by 1 or -1 unless ``any_step``), else one per key."""
    n = len(keys)
    if size == 1 and n > 1:
        across, step = keys[1] - keys[0], values[1] - values[0]
        if (
            across in (1, -1)
            and step
            and (any_step or step in (1, -1))
            and _evenly(keys, across)
            and _evenly(values, step)
        ):
            first = 0 if across == 1 else n - 1
            return [Run(keys[first], n, values[first], step * across, None)]
    return [Run(key, size, value, 1, None) for key, value in zip(keys, values, strict=True)]


def _evenly(values: Sequence[int], step: int) -> bool:
    """True if ``values`` go from the first by ``step``."""
    return [*values] == [*range(values[0], values[0] + step * len(values), step)]


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
            _map(d, [Run(gfn, nr, mfn, 1, None)])
        elif owned.value_at(mfn) != gfn or (nr > 1 and owned.step != 1):
            d.pages.remove(mfn, mfn + nr)  # set_gpfn_from_mfn for each page
            d.pages.insert(mfn, nr, gfn, 1, None)
        return True


def guest_physmap_add_extents(d: Domain, runs: list[Extents], gfns: Sequence[int]) -> None:
    """Map extent i of ``runs``, just allocated for a translated guest, at ``gfns[i]``, as
    guest_physmap_add_page would one extent after another; the caller holds
    page_alloc_lock since the allocation and keeps every extent below P2M_LIMIT. Extents
    carved from one block for gfns that rise by an extent each (a guest populated in order)
    go in as one progression: their MFNs fall by an extent each."""
    if len(runs) == 1 and runs[0].length > 1 and runs[0].size > 1:
        r = runs[0]
        if _evenly(gfns, r.size):
            batch = Progression(gfns[0], r.size, r.mfn, 1, None, r.length, -r.size)
            if _map_new(d, batch):
                return
    mappings: list[Run] = []
    first = 0
    for r in runs:
        mappings += pairs_as_runs(gfns[first : first + r.length], r.mfns(), r.size)
        first += r.length
    mappings.sort()
    end = -1
    for run in mappings:
        if run.start < end:  # a gfn mapped twice: the later extent wins, so map in turn
            first = 0
            for r in runs:
                for gfn, mfn in zip(gfns[first : first + r.length], r.mfns(), strict=True):
                    _map(d, [Run(gfn, r.size, mfn, 1, None)])
                first += r.length
            return
        end = run.start + run.length
    if mappings:
        _map(d, mappings)


def _map_new(d: Domain, batch: Progression) -> bool:
    """Map ``batch`` where neither the p2m nor a PoD entry has any of its gfns: raise
    max_mapped_pfn (p2m_pt/ept_set_entry) and say True; else False, nothing changed. The
    p2m's own overlap check (insert_progression's, before any change) is the test."""
    if d.pod_entries.overlapping(batch.start, batch.end):
        return False
    try:
        d.p2m.insert_progression(batch)
    except ValueError:
        return False
    d.max_mapped_pfn = max(d.max_mapped_pfn, batch.end - 1)
    return True


def _map(d: Domain, mappings: list[Run]) -> None:
    """Enter disjoint p2m runs, in gfn order, over whatever was mapped there (left
    allocated) and over PoD entries (p2m_add_page takes them out of the count)."""
    if d.p2m.meets(mappings):
        for run in mappings:
            d.p2m.remove(run.start, run.end)
    if d.pod_entries.meets(mappings):
        for run in mappings:
            d.pod_entry_count -= sum(p.length for p in d.pod_entries.remove(run.start, run.end))
    d.p2m.insert_many(mappings)
    d.max_mapped_pfn = max(d.max_mapped_pfn, mappings[-1].end - 1)  # p2m_pt/ept_set_entry


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


def guest_remove_pages(heap: Heap, d: Domain, gmfn: int, nr: int) -> int:
    """Remove and free the pages at ``gmfn .. gmfn+nr-1`` one by one until one cannot be
    removed (guest_remove_page): a hole in a translated guest's physmap (ENOENT), or, for PV
    where gmfn is a machine frame, a frame the domain does not own (ENXIO) or not RAM
    (EINVAL). Returns how many went."""
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
    return done

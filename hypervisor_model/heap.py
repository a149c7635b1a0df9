"""Xen's binary buddy allocator (xen/common/page_alloc.c): free lists per node, zone and order.

State is one entry per free block, never per page. Every rule here is Xen's; the only
simplification is scrubbing: the model scrubs instantly, so every free block is clean, lists
take blocks at the head, and ``scrub_pages`` is always 0 (as Xen reports it anyway).
The claim rules that live inside the allocator are delegated to :mod:`claims`.

Extents are allocated in batches (:meth:`Heap.alloc_extents`) with exactly the outcome of
one allocation after another, and a block split for one request stays a *carve* for the
next ones of its order until anything else looks at the node's lists (:meth:`Heap._take`).
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right, insort
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from hypervisor_model import claims
from hypervisor_model.faults import Faults
from hypervisor_model.host import MAX_NUMNODES, HostConfig, HostConfigError
from hypervisor_model.memflags import (
    NUMA_NO_NODE,
    MEMF_exact_node,
    MEMF_get_node,
    MEMF_no_refcount,
)

PAGE_SHIFT = 12
MAX_ORDER = 18  # 2 * PAGETABLE_ORDER on x86: the largest buddy is 1 GiB
NR_ZONES = 52 - PAGE_SHIFT + 1  # PADDR_BITS - PAGE_SHIFT + 1; zone 0 (MEMZONE_XEN) unused
ALL_ZONES = (1, NR_ZONES - 1)
# init_node_heap: a node's free lists (NR_ZONES x (MAX_ORDER+1) 16-byte list heads) and its
# avail[] counters (NR_ZONES longs) rounded up to pages: (12464 + 328 + 4095) >> 12 = 4.
HEAP_METADATA_PAGES = -(-(NR_ZONES * (MAX_ORDER + 1) * 16 + NR_ZONES * 8) // 4096)
# The x86 direct map ends at 5 TiB (HYPERVISOR_VIRT_END - DIRECTMAP_VIRT_START); RAM above
# it reaches the heap only after end_boot_allocator (__start_xen).
DIRECTMAP_END_MFN = 5 << (40 - PAGE_SHIFT)


def page_to_zone(mfn: int) -> int:
    """Zone = bit length of the MFN, MFN 0 in zone 1 (page_to_zone)."""
    return mfn.bit_length() or 1


def bits_to_zone(bits: int) -> int:
    return 1 if bits < PAGE_SHIFT + 1 else bits - PAGE_SHIFT


def aligned_chunks(start: int, end: int) -> Iterator[tuple[int, int]]:
    """Cut ``[start, end)`` into maximal aligned power-of-two blocks (_init_heap_pages)."""
    while start < end:
        order = min(MAX_ORDER, (end - start).bit_length() - 1)
        if start:
            order = min(order, (start & -start).bit_length() - 1)
        yield start, order
        start += 1 << order


def _ffs(x: int) -> int:
    """The 1-based index of the lowest set bit, 0 for 0 (ffsl)."""
    return (x & -x).bit_length()


def _next_node(node: int, mask: int) -> int:
    """The next node after ``node`` in ``mask``, or MAX_NUMNODES (next_node)."""
    rest = mask >> (node + 1)
    return node + 1 + (rest & -rest).bit_length() - 1 if rest else MAX_NUMNODES


def first_node(mask: int) -> int:
    return (mask & -mask).bit_length() - 1 if mask else MAX_NUMNODES


def cycle_node(node: int, mask: int) -> int:
    nxt = _next_node(node, mask)
    return nxt if nxt < MAX_NUMNODES else first_node(mask)


class Extents(NamedTuple):
    """``length`` extents of ``size`` pages on ``node``: at ``mfn``, ``mfn - size``, ... (the
    buddy allocator hands a split block out from the top down)."""

    mfn: int
    length: int
    node: int
    size: int

    @property
    def last(self) -> int:
        """The last extent's first frame, the lowest frame of the run."""
        return self.mfn - (self.length - 1) * self.size

    def longer(self, more: int) -> Extents:
        return self._replace(length=self.length + more)

    def mfns(self) -> range:
        """Each extent's first frame, in order."""
        return range(self.mfn, self.mfn - self.length * self.size, -self.size)


class Heap:
    """The domain heap of one host, with the counters Xen keeps under ``heap_lock``."""

    def __init__(self, host: HostConfig, *, boot: bool = True) -> None:
        self.lock = threading.Lock()  # heap_lock
        nr_nodes = len(host.nodes)
        self.online_mask = sum(1 << n for n, node in enumerate(host.nodes) if node.online)
        self.avail = [[0] * NR_ZONES for _ in range(nr_nodes)]
        self.node_avail_pages = [0] * nr_nodes
        self.total_avail_pages = 0
        # Claim counters are heap state in Xen too (page_alloc.c, v7 claim sets).
        self.outstanding_claims = 0
        self.claimed_pages = [0] * nr_nodes
        self._free: dict[int, tuple[int, int]] = {}  # head MFN -> (order, node)
        # Free lists by node, zone and order; a zone's lists are made when it first holds
        # memory (a 64-node host would otherwise start with 64 * 41 * 19 empty lists).
        self._lists: list[list[list[OrderedDict[int, None]] | None]] = [
            [None] * NR_ZONES for _ in range(nr_nodes)
        ]
        self.offlined: list[int] = []  # sorted MFNs taken out of the heap
        self.offlining: list[int] = []  # sorted MFNs in use, to be taken out when freed
        self._recall_hook: claims.RecallHook | None = None
        self.faults: Faults | None = None  # armed by the host for tests of error paths

        # An offline node's memory is not the heap's: its frames are as absent as a hole.
        ranges = sorted(
            (s, e, n) for n, node in enumerate(host.nodes) if node.online for s, e in node.ranges
        )
        self._range_starts = [s for s, _, _ in ranges]
        self._ranges = ranges
        # The zones each node's RAM lies in: a search for free memory looks at no others.
        self._zone_span = [(1, 0)] * nr_nodes
        for s, e, n in ranges:
            low, high = self._zone_span[n]
            span = (page_to_zone(s), page_to_zone(e - 1))
            self._zone_span[n] = span if low > high else (min(low, span[0]), max(high, span[1]))
        self._carves: dict[int, list[int]] = {}  # node -> [zone, head, pages, order], see _take
        self.total_pages = sum(e - s for s, e, _ in ranges)
        self.max_page = max((e for _, e, _ in ranges), default=0)  # highest RAM MFN + 1
        # cpu_to_node(0): the boot CPU's node, where Xen runs what no domain asks for
        with_cpus = [n for n, node in enumerate(host.nodes) if node.online and node.cpus]
        self.cpu_node = with_cpus[0] if with_cpus else first_node(self.online_mask)
        # Frames Xen keeps for the free lists of nodes after the first (init_node_heap).
        self.metadata: list[tuple[int, int]] = []
        self.dma_bitsize = 0  # end_boot_allocator sets it once the boot regions are in
        # xenheap_max_mfn: with RAM beyond the direct map, Xen's own pages stay inside it.
        self.xenheap_bits = 0
        if self.max_page - 1 > DIRECTMAP_END_MFN - 1:
            self.xenheap_bits = min((DIRECTMAP_END_MFN - 1).bit_length() - 1 + PAGE_SHIFT, 52)
        dma_bitsize = self._default_dma_bitsize(host)
        if boot:
            self._boot(dma_bitsize)
        self.dma_bitsize = dma_bitsize

    # -- topology -------------------------------------------------------------------------

    def mfn_to_nid(self, mfn: int) -> int | None:
        """The node owning ``mfn``, or None for a hole (mfn_valid is false there)."""
        i = bisect_right(self._range_starts, mfn) - 1
        if i < 0:
            return None
        _, end, node = self._ranges[i]
        return node if mfn < end else None

    @property
    def ram_ranges(self) -> list[tuple[int, int, int]]:
        """The host's RAM as ``(start, end, node)`` in MFN order (online nodes only)."""
        return self._ranges

    def split_by_node(self, start: int, end: int) -> Iterator[tuple[int, int, int]]:
        """The RAM parts of ``[start, end)`` as ``(start, end, node)``."""
        i = max(bisect_right(self._range_starts, start) - 1, 0)
        for s, e, node in self._ranges[i:]:
            if s >= end:
                break
            if e > start:
                yield max(s, start), min(e, end), node

    def _default_dma_bitsize(self, host: HostConfig) -> int:
        """DMA zone width: only with more than one online node (arch_get_dma_bitsize)."""
        if self.online_mask.bit_count() <= 1:
            return 0
        for node in host.nodes:
            start, spanned = node.spanned
            if node.online and spanned and not start >> (32 - PAGE_SHIFT):
                last = (start + spanned // 4 - 1) & ((1 << 64) - 1)
                return min(last.bit_length() + PAGE_SHIFT, 32)
        raise HostConfigError("no online node with memory below 4 GiB (Xen panics at boot)")

    def _boot(self, dma_bitsize: int) -> None:
        """Hand RAM to the heap as end_boot_allocator does: the boot CPU's node's first
        region, then the rest in reverse order; RAM beyond the direct map follows in
        ascending order (__start_xen). MFN 0 is kept away from the buddy allocator."""
        limit = DIRECTMAP_END_MFN
        low = [(s, min(e, limit), n) for s, e, n in self._ranges if s < limit]
        high = [(max(s, limit), e, n) for s, e, n in self._ranges if e > limit]
        first = next((r for r in low if r[2] == self.cpu_node), None)
        order = ([first] if first else []) + [r for r in reversed(low) if r is not first]
        initialised: set[int] = set()
        for start, end, node in order:
            self._init_heap_pages(start, end, node, initialised)
        self.dma_bitsize = dma_bitsize
        for start, end, node in high:
            self._init_heap_pages(start, end, node, initialised)

    def _init_heap_pages(self, start: int, end: int, node: int, initialised: set[int]) -> None:
        """One node's contiguous RAM into the heap (init_heap_pages, _init_heap_pages); the
        first range of each node after the first pays for its free lists (init_node_heap):
        from its tail if the range starts 1 GiB-aligned and ends no less aligned, else from
        its head, else, if the range is too short or outside the direct map, from the heap."""
        start = max(start, 1)
        if start >= end:
            return
        if node not in initialised:
            if initialised:
                use_tail = not start % (1 << MAX_ORDER) and _ffs(end) <= _ffs(start)
                needed = HEAP_METADATA_PAGES
                if use_tail and end - start >= needed and end <= DIRECTMAP_END_MFN:
                    self.metadata.append((end - needed, end))
                    end -= needed
                elif end - start >= needed and start + needed <= DIRECTMAP_END_MFN:
                    self.metadata.append((start, start + needed))
                    start += needed
                else:
                    self._alloc_metadata(needed)
                self.metadata.sort()
            initialised.add(node)
        for head, chunk_order in aligned_chunks(start, end):
            self._free_block(head, chunk_order)

    def _alloc_metadata(self, pages: int) -> None:
        """init_node_heap's fallback: alloc_xenheap_pages from the heap built so far."""
        from hypervisor_model.domheap import alloc_domheap_pages  # domheap builds on the heap
        from hypervisor_model.memflags import MEMF_bits

        order = (pages - 1).bit_length()
        memflags = MEMF_bits(self.xenheap_bits) if self.xenheap_bits else 0
        mfn = alloc_domheap_pages(self, None, order, memflags)
        if mfn is None:  # BUG_ON(!_heap[node]) in Xen
            raise HostConfigError("no memory for a node's heap metadata: Xen cannot boot")
        self.metadata.append((mfn, mfn + (1 << order)))

    # -- free lists -------------------------------------------------------------------------

    def _push(self, head: int, order: int, node: int) -> None:
        """Add a free block at the head of its list (page_list_add_scrub, clean)."""
        lst = self._zone_lists(node, page_to_zone(head))[order]
        lst[head] = None
        lst.move_to_end(head, last=False)
        self._free[head] = (order, node)

    def _unlink(self, head: int) -> tuple[int, int]:
        order, node = self._free.pop(head)
        del self._zone_lists(node, page_to_zone(head))[order][head]
        return order, node

    def _zone_lists(self, node: int, zone: int) -> list[OrderedDict[int, None]]:
        """The free lists of one zone of a node, one per order (made on first use)."""
        orders = self._lists[node][zone]
        if orders is None:
            orders = self._lists[node][zone] = [OrderedDict() for _ in range(MAX_ORDER + 1)]
        return orders

    def free_blocks(self) -> Iterator[tuple[int, int, int]]:
        """Every free block as ``(head, order, node)``."""
        self._settle_carves()
        for head, (order, node) in self._free.items():
            yield head, order, node

    def free_lists(self) -> Iterator[tuple[int, int, int, list[int]]]:
        """Every non-empty free list as ``(node, zone, order, heads)``, heads in list order."""
        self._settle_carves()
        for node, zones in enumerate(self._lists):
            for zone, orders in enumerate(zones):
                for order, lst in enumerate(orders or ()):
                    if lst:
                        yield node, zone, order, list(lst)

    def restore_free_list(self, node: int, zone: int, order: int, heads: list[int]) -> None:
        """Append blocks to a free list in the given order, counting them as free."""
        self._settle_carves()
        lst = self._zone_lists(node, zone)[order]
        for head in heads:
            lst[head] = None
            self._free[head] = (order, node)
            self.avail[node][zone] += 1 << order
            self.node_avail_pages[node] += 1 << order
            self.total_avail_pages += 1 << order

    def free_block_count(self) -> int:
        self._settle_carves()
        return len(self._free)

    def find_free_block(self, mfn: int) -> int | None:
        """Head of the free block containing ``mfn``, if it is free."""
        self._settle_carves()
        for order in range(MAX_ORDER + 1):
            head = mfn & ~((1 << order) - 1)
            if self._free.get(head, (None,))[0] == order:
                return head
        return None

    # -- allocation -----------------------------------------------------------------------

    def get_free_buddy(
        self, zone_lo: int, zone_hi: int, order: int, memflags: int, d: claims.ClaimHolder | None
    ) -> tuple[int, int] | None:
        """Find a free block of at least ``order``, split it and take ``2**order`` pages of
        it: ``(mfn, node)``.

        Node choice (get_free_buddy): the requested node, else round-robin after
        ``d.last_alloc_node`` within the domain's node affinity, then the other online
        nodes; exact-node requests fail after their node. NUMA distance plays no part.
        """
        nodemask = self.online_mask
        if d is not None and nodemask & d.node_affinity:
            nodemask &= d.node_affinity
        node = req_node = MEMF_get_node(memflags)
        if node == NUMA_NO_NODE:
            if d is not None:
                node = cycle_node(d.last_alloc_node, nodemask)
            if node >= MAX_NUMNODES:
                node = self.cpu_node  # cpu_to_node(smp_processor_id())
        elif node >= MAX_NUMNODES:
            return None
        holder = d if d is not None and not memflags & MEMF_no_refcount else None
        first, retried = node, False
        while True:
            if node < len(self.avail) and claims.node_can_serve(self, node, 1 << order, holder):
                mfn = self._take(node, zone_lo, zone_hi, order)
                if mfn is not None:
                    return mfn, node
            if memflags & MEMF_exact_node and req_node != NUMA_NO_NODE:
                return None
            if not nodemask >> node & 1:
                # The first node may be requested from outside the mask.
                first = node = first_node(nodemask)
                if node < MAX_NUMNODES:
                    continue
            elif (node := _next_node(node, nodemask)) >= MAX_NUMNODES:
                node = first_node(nodemask)
            if node == first:
                if memflags & MEMF_exact_node or retried:
                    return None
                retried = True
                nodemask = self.online_mask & ~nodemask
                first = node = first_node(nodemask)
                if node >= MAX_NUMNODES:
                    return None

    def _take(self, node: int, zone_lo: int, zone_hi: int, order: int) -> int | None:
        """Take ``2**order`` pages from the first block of the smallest sufficient order,
        zones high to low: the block's top, its lower halves going back to the lists of their
        orders (alloc_heap_pages keeps the upper half at each halving).

        Those halves are the rest of the block, which the next requests of the same order
        split from the top in turn. So the rest stays a carve (``zone, head, pages left,
        order``) instead of being pushed half by half: the lists of the orders it would fill
        held nothing else when the block was taken, so a request of that order reaching the
        carve's zone takes the carve's top, as it would have taken the smallest half. Any
        other look at the node's lists settles the carve first (:meth:`_settle_carves`)."""
        request = 1 << order
        carve = self._carves.get(node)
        if carve is not None and carve[3] != order:
            self._settle_carves()
            carve = None
        avail, lists = self.avail[node], self._lists[node]
        low, high = self._zone_span[node]
        for zone in range(min(zone_hi, high), max(zone_lo, low) - 1, -1):
            if carve is not None and zone == carve[0]:
                left = carve[2] - request
                if left:
                    carve[2] = left
                else:
                    del self._carves[node]
                return carve[1] + left
            if avail[zone] < request:
                continue
            orders = lists[zone]
            assert orders is not None  # the zone has free memory
            for j in range(order, MAX_ORDER + 1):
                lst = orders[j]
                if lst:
                    head, _ = lst.popitem(last=False)
                    del self._free[head]
                    end = head + (1 << j)
                    if not lst:
                        head = self._adopt(orders, j, head)
                    left = end - head - request
                    if left:
                        if carve is not None:
                            self._settle_carves()  # a carve in a zone below: give it back
                        self._carves[node] = [zone, head, left, order]
                    return head + left
        return None

    def _adopt(self, orders: list[OrderedDict[int, None]], order: int, head: int) -> int:
        """Take into a carve the free blocks that lie right below the one of ``order`` at
        ``head``, each of the next larger order and alone in its list: the requests after it
        would take them in turn, from the top down (a settled carve looks so). Returns where
        the carve starts."""
        for j in range(order + 1, MAX_ORDER + 1):
            lst = orders[j]
            if not lst:
                continue
            below = next(iter(lst))
            if len(lst) != 1 or below + (1 << j) != head:
                break
            lst.clear()
            del self._free[below]
            head = below
        return head

    def _settle_carves(self) -> None:
        """Give each carve's rest to the free lists, as the halvings would have left it:
        one block per set bit of its size, largest first (each alone in its list)."""
        if not self._carves:
            return
        free = self._free
        for node, (zone, head, left, _) in self._carves.items():
            orders = self._lists[node][zone]
            assert orders is not None
            while left:
                order = left.bit_length() - 1
                lst = orders[order]
                lst[head] = None
                lst.move_to_end(head, last=False)
                free[head] = (order, node)
                head += 1 << order
                left -= 1 << order
        self._carves.clear()

    def alloc_heap_pages(
        self,
        zone_lo: int,
        zone_hi: int,
        order: int,
        memflags: int,
        d: claims.ClaimHolder | None,
    ) -> tuple[int, int] | None:
        """Allocate ``2**order`` contiguous pages; return ``(mfn, node)`` (alloc_heap_pages)."""
        runs = self.alloc_extents(((zone_lo, zone_hi),), order, memflags, d, 1)
        return (runs[0].mfn, runs[0].node) if runs else None

    def alloc_extents(
        self,
        attempts: Sequence[tuple[int, int]],
        order: int,
        memflags: int,
        d: claims.ClaimHolder | None,
        count: int,
        faults: Faults | None = None,
    ) -> list[Extents]:
        """Allocate up to ``count`` extents of ``2**order`` pages, one after another, each
        as alloc_heap_pages over the zone ranges ``attempts`` in turn would (the DMA
        fallback of alloc_domheap_pages), stopping at the first that fails (or that
        ``faults`` fails). Returns the extents in order, as runs.

        The result is exactly that of ``count`` separate allocations: the batch holds
        heap_lock throughout (one of the interleavings Xen allows) and saves their work
        in two ways. A block split for one extent is carved from the top for the next
        (:meth:`_take`). And where every extent starts its node search at the same node
        and no fault is armed, an extent that search would take from the node's carve is
        taken with as many more as the carve, the node's unclaimed memory and the host's
        allow, in one step, their claims redeemed at once: redemption drains the node's
        claim, then the host-wide one, then the other nodes', so the sum of per-extent
        redemptions is one redemption of the sum.
        """
        if order > MAX_ORDER:
            return []
        request = 1 << order
        holder = d if d is not None and not memflags & MEMF_no_refcount else None
        start = self._search_start(memflags, d) if attempts else None
        runs: list[Extents] = []
        done = 0
        with self.lock:
            while done < count:
                run = None
                if start is not None and (faults is None or faults.calm(d)):
                    carve = self._carve_next(start, *attempts[0], order)
                    if carve is not None:
                        run = self._carry_on(start, carve, request, holder, count - done)
                if run is not None:
                    if d is not None:
                        d.last_alloc_node = run.node
                else:
                    if faults is not None and faults.allocation_fails(d):
                        break
                    found = self._alloc_locked(attempts, order, memflags, d, holder)
                    if found is None:
                        break
                    run = Extents(found[0], 1, found[1], request)
                if runs and runs[-1].node == run.node and runs[-1].last == run.mfn + request:
                    runs[-1] = runs[-1].longer(run.length)
                else:
                    runs.append(run)
                done += run.length
        return runs

    def _search_start(self, memflags: int, d: claims.ClaimHolder | None) -> int | None:
        """The node every one of a batch's extents starts its search at (get_free_buddy):
        the requested node, the boot CPU's without a domain, the only node of a domain's
        affinity; None where the search moves round the nodes from extent to extent."""
        node = MEMF_get_node(memflags)
        if node != NUMA_NO_NODE:
            return node
        if d is None:
            return self.cpu_node
        nodemask = self.online_mask
        if nodemask & d.node_affinity:
            nodemask &= d.node_affinity
        return first_node(nodemask) if nodemask.bit_count() == 1 else None

    def _carve_next(self, node: int, zone_lo: int, zone_hi: int, order: int) -> list[int] | None:
        """``node``'s carve if a request of ``order`` in zones ``zone_lo .. zone_hi`` would
        take its top (:meth:`_take`): no zone above the carve's has a block big enough."""
        carve = self._carves.get(node)
        if carve is None or carve[3] != order or not zone_lo <= carve[0] <= zone_hi:
            return None
        request, avail, lists = 1 << order, self.avail[node], self._lists[node]
        for zone in range(min(zone_hi, self._zone_span[node][1]), carve[0], -1):
            orders = lists[zone]
            if avail[zone] >= request and orders is not None and any(orders[order:]):
                return None
        return carve

    def _alloc_locked(
        self,
        attempts: Sequence[tuple[int, int]],
        order: int,
        memflags: int,
        d: claims.ClaimHolder | None,
        holder: claims.ClaimHolder | None,
    ) -> tuple[int, int] | None:
        """One extent, heap_lock held: the host-wide claim check comes first, the per-node
        check is part of the node search, and the claim is redeemed in the same region."""
        request = 1 << order
        for zone_lo, zone_hi in attempts:
            if not claims.host_can_serve(self, request, holder):
                continue
            found = self.get_free_buddy(zone_lo, zone_hi, order, memflags, d)
            if found is None:
                continue
            mfn, node = found
            self.avail[node][page_to_zone(mfn)] -= request
            self.total_avail_pages -= request
            self.node_avail_pages[node] -= request
            if holder is not None and holder.outstanding_pages:
                claims.redeem(self, holder, node, request)
            if d is not None:
                d.last_alloc_node = node
            return found
        return None

    def _carry_on(
        self,
        node: int,
        carve: list[int],
        request: int,
        holder: claims.ClaimHolder | None,
        most: int,
    ) -> Extents | None:
        """Take up to ``most`` extents from the top of ``node``'s carve in one step, as many
        as the checks of alloc_heap_pages would pass one by one (None if not even one).
        Each extent lowers the node's memory unclaimed by others by ``request``. The
        host-wide check passes on the domain's claim while it covers a request (unclaimed
        memory stays as it is), then, with what is left of the claim spent, on unclaimed
        memory alone: so on ``claim + unclaimed`` pages if unclaimed memory covers a
        request, else on the claim's whole requests."""
        zone, head, left, _ = carve
        node_room = self.node_avail_pages[node] - self.claimed_pages[node]
        claim = 0
        if holder is not None:
            node_room += holder.claims.get(node, 0)
            claim = holder.outstanding_pages
        unclaimed = self.total_avail_pages - self.outstanding_claims
        host_room = claim + unclaimed if unclaimed >= request else claim
        steps = min(most, left // request, node_room // request, host_room // request)
        if steps <= 0:
            return None
        pages = steps * request
        if left > pages:
            carve[2] = left - pages
        else:
            del self._carves[node]
        self.avail[node][zone] -= pages
        self.total_avail_pages -= pages
        self.node_avail_pages[node] -= pages
        if claim:
            claims.redeem(self, holder, node, pages)  # type: ignore[arg-type]
        return Extents(head + left - request, steps, node, request)

    # -- freeing --------------------------------------------------------------------------

    def free_heap_pages(self, head: int, order: int) -> None:
        """Return an aligned block to the heap, merging with free buddies (free_heap_pages)."""
        with self.lock:
            self._free_block(head, order)

    def _free_block(self, head: int, order: int) -> None:
        self._settle_carves()  # a buddy may be in a carve
        node = self.mfn_to_nid(head)
        assert node is not None and head & ((1 << order) - 1) == 0
        size = 1 << order
        self.avail[node][page_to_zone(head)] += size
        self.total_avail_pages += size
        self.node_avail_pages[node] += size
        became_offlined = self._settle_offlining(head, head + size)
        while order < MAX_ORDER:
            buddy = head ^ (1 << order)
            if self._free.get(buddy) != (order, node):
                break
            self._unlink(buddy)
            head = min(head, buddy)
            order += 1
        self._push(head, order, node)
        if became_offlined:
            self._reserve_offlined(head)

    def _settle_offlining(self, start: int, end: int) -> bool:
        """Pages pending offline become offlined as they are freed (mark_page_free)."""
        lo, hi = bisect_left(self.offlining, start), bisect_left(self.offlining, end)
        if lo == hi:
            return False
        for mfn in self.offlining[lo:hi]:
            insort(self.offlined, mfn)
        del self.offlining[lo:hi]
        return True

    def _offlined_in(self, start: int, end: int) -> list[int]:
        return self.offlined[bisect_left(self.offlined, start) : bisect_left(self.offlined, end)]

    def _reserve_offlined(self, head: int) -> None:
        """Split the free block at ``head`` around its offlined pages and take those pages
        out of every counter (reserve_offlined_page); then recall claims that no longer fit."""
        order, node = self._unlink(head)
        end = head + (1 << order)
        bad = self._offlined_in(head, end)
        gap_start = head
        for mfn in [*bad, end]:
            for chunk, chunk_order in aligned_chunks(gap_start, mfn):
                self._push(chunk, chunk_order, node)
            gap_start = mfn + 1
        zone = page_to_zone(head)
        self.avail[node][zone] -= len(bad)
        self.total_avail_pages -= len(bad)
        self.node_avail_pages[node] -= len(bad)
        if self._recall_hook is not None:
            self._recall_hook(self, node)

    def offline_page(self, mfn: int) -> bool:
        """Offline a RAM page (mark_page_offline): a free page leaves the heap at once
        (True); a page in use is only marked, and leaves when it is freed (False)."""
        with self.lock:
            if self.is_offlined(mfn):
                return True
            head = self.find_free_block(mfn)
            if head is None:
                if not self.is_offlining(mfn):
                    insort(self.offlining, mfn)
                return False
            insort(self.offlined, mfn)
            self._reserve_offlined(head)
            return True

    def online_page(self, mfn: int) -> bool:
        """Undo offlining (online_page): an offlined page goes back to the heap, a pending
        one is simply kept. False if the page was neither."""
        with self.lock:
            if self.is_offlined(mfn):
                self.offlined.remove(mfn)
                self._free_block(mfn, 0)
                return True
            if self.is_offlining(mfn):
                self.offlining.remove(mfn)
                return True
            return False

    def is_offlined(self, mfn: int) -> bool:
        i = bisect_left(self.offlined, mfn)
        return i < len(self.offlined) and self.offlined[i] == mfn

    def is_offlining(self, mfn: int) -> bool:
        i = bisect_left(self.offlining, mfn)
        return i < len(self.offlining) and self.offlining[i] == mfn

    # -- readers ----------------------------------------------------------------------------

    def avail_heap_pages(self, zone_lo: int, zone_hi: int, node: int) -> int:
        """Free pages in a zone range of one node, or of all online nodes for -1."""
        zone_hi = min(zone_hi, NR_ZONES - 1)
        total = 0
        for n, zones in enumerate(self.avail):
            if self.online_mask >> n & 1 and node in (-1, n):
                total += sum(zones[zone_lo : zone_hi + 1])
        return total

    def avail_node_heap_pages(self, node: int) -> int:
        online = 0 <= node < len(self.avail) and self.online_mask >> node & 1
        return self.node_avail_pages[node] if online else 0

"""The accounting invariants of the model, checked all at once.

Claims (v7): outstanding_claims <= total_avail_pages; claimed_pages[n] <= node_avail_pages[n];
both totals equal the sums over domains; a domain's node claims sum to ``node_claims`` and
fit in ``outstanding_pages``. Heap: the free blocks are aligned buddies on one node and zone,
and sum to every free counter. Memory: each RAM frame is exactly one of free, owned by one
domain, Xen's for a domain (structure, shared info, paging pool), Xen's heap metadata,
offlined, or MFN 0 (never given to the allocator); physmaps agree with ownership and lie at
or below the highest gfn each ever mapped. Populate-on-demand: the cache holds pages the
domain owns and has not mapped, counted in ``pod_count``; ``pod_entry_count`` counts the
PoD entries, which no mapping overlaps.
"""

from __future__ import annotations

from contextlib import ExitStack
from itertools import pairwise
from operator import itemgetter
from typing import TYPE_CHECKING

from hypervisor_model.domain import Domain
from hypervisor_model.domheap import mfn_span
from hypervisor_model.heap import MAX_ORDER, NR_ZONES, page_to_zone
from hypervisor_model.vnuma import vnuma_problems

SUPERPAGE_PAGES = 512

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from hypervisor_model.heap import Heap
    from hypervisor_model.hypervisor import Hypervisor
    from hypervisor_model.runmap import RunMap


class InvariantError(AssertionError):
    """An accounting invariant does not hold; the message lists every violation."""


def check_invariants(hv: Hypervisor, *, frames: bool = True) -> None:
    """Every invariant; ``frames=False`` leaves out the walk over every frame's owner (the
    claims and the heap's counters are still checked), for a host that will only be read."""
    domains = hv.domain_list()
    with ExitStack() as stack:
        for d in domains:  # page_alloc_lock before heap_lock, as Xen orders them
            stack.enter_context(d.page_alloc_lock)
        stack.enter_context(hv.heap.lock)
        problems = _claim_problems(hv, domains) + _heap_problems(hv)
        if frames:
            problems += _frame_problems(hv, domains)
    if problems:
        raise InvariantError("; ".join(problems))


def _claim_problems(hv: Hypervisor, domains: list) -> list[str]:  # type: ignore[type-arg]
    heap, out = hv.heap, []
    if heap.outstanding_claims > heap.total_avail_pages:
        out.append(f"outstanding_claims {heap.outstanding_claims} > free {heap.total_avail_pages}")
    if heap.outstanding_claims != sum(d.outstanding_pages for d in domains):
        out.append("outstanding_claims differs from the sum of domains' outstanding_pages")
    for n, claimed in enumerate(heap.claimed_pages):
        if claimed > heap.node_avail_pages[n]:
            out.append(f"node {n}: claimed {claimed} > free {heap.node_avail_pages[n]}")
        if claimed != sum(d.claims.get(n, 0) for d in domains):
            out.append(f"node {n}: claimed_pages differs from the sum of domains' claims")
    for d in domains:
        if d.vcpu_online >> d.nr_vcpus:
            out.append(f"d{d.domain_id}: a vCPU online that was never created")
        every = (1 << hv.nr_cpus) - 1
        for which in (d.cpu_hard_affinity, d.cpu_soft_affinity):
            if any(v >= d.nr_vcpus or mask & ~every or mask == every for v, mask in which.items()):
                out.append(f"d{d.domain_id}: an affinity kept for no vCPU, no CPU or every CPU")
        if not all(mask for mask in d.cpu_hard_affinity.values()):  # vcpu_set_hard_affinity
            out.append(f"d{d.domain_id}: a vCPU's hard affinity has no CPU")
        if d.node_claims != sum(d.claims.values()) or d.node_claims > d.outstanding_pages:
            out.append(f"d{d.domain_id}: node_claims inconsistent with claims[]")
        if any(pages <= 0 or not heap.online_mask >> n & 1 for n, pages in d.claims.items()):
            out.append(f"d{d.domain_id}: claim entry on an offline node or empty")
    return out


def _heap_problems(hv: Hypervisor) -> list[str]:
    heap, out = hv.heap, []
    counted = [[0] * NR_ZONES for _ in heap.avail]
    for head, order, node in heap.free_blocks():
        size = 1 << order
        zone = page_to_zone(head)
        if head & (size - 1) or order > MAX_ORDER or head == 0:
            out.append(f"free block {head:#x} order {order} misaligned")
        if page_to_zone(head + size - 1) != zone:
            out.append(f"free block {head:#x} order {order} spans zones")
        if any(p != (head, head + size, node) for p in heap.split_by_node(head, head + size)):
            out.append(f"free block {head:#x} order {order} leaves node {node}'s RAM")
        counted[node][zone] += size
    for n, zones in enumerate(heap.avail):
        if zones != counted[n]:
            out.append(f"node {n}: avail[][] differs from its free lists")
        if heap.node_avail_pages[n] != sum(zones):
            out.append(f"node {n}: node_avail_pages {heap.node_avail_pages[n]} != {sum(zones)}")
    if heap.total_avail_pages != sum(heap.node_avail_pages):
        out.append("total_avail_pages differs from the sum of node_avail_pages")
    return out


def _frame_problems(hv: Hypervisor, domains: list) -> list[str]:  # type: ignore[type-arg]
    heap, out = hv.heap, []
    spans: list[tuple[int, int, str, Domain | None]] = [
        (head, head + (1 << order), "free", None) for head, order, _ in heap.free_blocks()
    ]
    spans += [(mfn, mfn + 1, "offlined", None) for mfn in heap.offlined]
    spans += [(start, end, "heap metadata", None) for start, end in heap.metadata]
    in_use = [(start, end) for start, end in heap.metadata]
    if heap.mfn_to_nid(0) is not None:
        spans.append((0, 1, "MFN 0", None))
    for d in domains:
        for mfn, count in d.xen_frames():
            spans.append((mfn, mfn + count, f"Xen's for d{d.domain_id}", None))
            in_use.append((mfn, mfn + count))
        label = f"d{d.domain_id}"
        spans += [(run.start, run.start + run.length, label, d) for run in d.pages]
    spans.sort(key=itemgetter(0, 1, 2))  # start, end, then what (never the Domain)
    per_node, outside = _place(heap, spans)
    for d in domains:
        out += _pod_problems(d) + vnuma_problems(d)
        owned = sum(run.length for run in d.pages)
        if owned != d.tot_pages:
            out.append(f"d{d.domain_id}: tot_pages {d.tot_pages} but owns {owned} pages")
        if per_node.get(d.domain_id, {}) != d.node_pages:
            out.append(f"d{d.domain_id}: per-node page counts out of date")
        last_gfn = max((run.end for run in d.p2m), default=0) - 1
        if last_gfn > d.max_mapped_pfn:
            out.append(f"d{d.domain_id}: gfn {last_gfn:#x} mapped above max_mapped_pfn")
        mapped = sorted(mfn_span(run) for run in d.p2m)  # the p2m is one-to-one onto owned frames
        for low, count in _not_within(mapped, d.pages):
            out.append(f"d{d.domain_id}: p2m maps frames {low:#x}+{count} it does not own")
        for (low, count), (nxt, _) in pairwise(mapped):
            if nxt < low + count:
                out.append(f"d{d.domain_id}: frame {nxt:#x} mapped at two gfns")
    for (_, e1, w1, _), (s2, _, w2, _) in pairwise(spans):
        if s2 < e1:
            out.append(f"frames {s2:#x}.. both {w1} and {w2}")
    covered = sum(e - s for s, e, _, _ in spans)
    if covered != heap.total_pages:
        out.append(f"{covered} frames accounted for, expected {heap.total_pages} RAM frames")
    out += outside
    for mfn in heap.offlining:
        xens = any(s <= mfn < e for s, e in in_use)
        if mfn and not xens and not any(d.pages.find(mfn) for d in domains):
            out.append(f"pending-offline frame {mfn:#x} is not in use")
    return out


def _pod_problems(d: Domain) -> list[str]:
    """PoD state: the cache is owned, unmapped and counted; the entries are counted and
    lie outside the p2m; a PV guest has none."""
    out = []
    cache = list(d.pod_super.spans(SUPERPAGE_PAGES)) + list(d.pod_single.spans())
    if sum(pages for _, pages in cache) != d.pod_count:
        out.append(f"d{d.domain_id}: pod_count {d.pod_count} differs from its cache lists")
    if any(head % SUPERPAGE_PAGES for head in d.pod_super):
        out.append(f"d{d.domain_id}: a PoD superpage is not 2 MiB aligned")
    for low, pages in cache:
        if d.pages.covered(low, low + pages) != pages:
            out.append(f"d{d.domain_id}: PoD cache frames {low:#x}+{pages} not owned")
    tagged = sorted(
        [(low, n, "cache") for low, n in cache] + [(*mfn_span(r), "p2m") for r in d.p2m]
    )
    for (low, pages, what), (nxt, _, other) in pairwise(tagged):
        if nxt < low + pages and "cache" in (what, other):
            out.append(f"d{d.domain_id}: PoD cache frame {nxt:#x} is in the {what} and {other}")
    entries = sum(run.length for run in d.pod_entries)
    if entries != d.pod_entry_count and not d.is_dying:  # the p2m teardown leaves the count
        out.append(f"d{d.domain_id}: pod_entry_count {d.pod_entry_count} but {entries} entries")
    if any(d.p2m.covered(run.start, run.end) for run in d.pod_entries):
        out.append(f"d{d.domain_id}: a gfn is both a PoD entry and mapped")
    if not d.is_translated and (entries or cache):
        out.append(f"d{d.domain_id}: a PV guest with PoD state")
    return out


def _not_within(spans: list[tuple[int, int]], runs: RunMap) -> Iterator[tuple[int, int]]:
    """The sorted ``(start, count)`` spans not wholly covered by ``runs``: one sweep along
    both, not a search per span."""
    owned = [(run.start, run.start + run.length) for run in runs]
    j = 0
    for low, count in spans:
        end = low + count
        while j < len(owned) and owned[j][1] <= low:
            j += 1
        k, reached = j, low
        while reached < end and k < len(owned) and owned[k][0] <= reached:
            reached = max(reached, owned[k][1])
            k += 1
        if reached < end:
            yield low, count


def _place(
    heap: Heap, spans: list[tuple[int, int, str, Domain | None]]
) -> tuple[dict[int, dict[int, int]], list[str]]:
    """Walk the sorted spans along the RAM ranges once: each owner's pages per node, and the
    spans that leave RAM. A span inside one range costs a comparison, not a search."""
    ranges = heap.ram_ranges
    per_node: dict[int, dict[int, int]] = {}
    outside = []
    r = 0
    for start, end, what, d in spans:
        while r < len(ranges) and ranges[r][1] <= start:
            r += 1
        if r < len(ranges) and ranges[r][0] <= start and end <= ranges[r][1]:
            parts: Iterable[tuple[int, int, int]] = ((start, end, ranges[r][2]),)
        else:
            parts = list(heap.split_by_node(start, end))
            if sum(pe - ps for ps, pe, _ in parts) != end - start:
                outside.append(f"{what} frames {start:#x}..{end:#x} outside RAM")
        if d is not None:
            counts = per_node.setdefault(d.domain_id, {})
            for ps, pe, node in parts:
                counts[node] = counts.get(node, 0) + pe - ps
    return per_node, outside

"""Memory claims: legacy host-wide claims and v7 NUMA claim sets, as the allocator sees them.

Follows v7 of the series "xen/mm: Introduce NUMA-aware memory claim sets" (2026-05-08), the
newest posted revision. A domain's ``outstanding_pages`` is its whole claim (host-wide plus
per-node); ``node_claims`` is the per-node part; ``claims[n]`` what it holds on node n. The
heap keeps ``outstanding_claims`` (all domains) and ``claimed_pages[n]`` (node claims on n).
Every function here runs with ``heap_lock`` held; installers also hold the domain's
``page_alloc_lock`` (taken first, as in Xen).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Protocol

from hypervisor_model.errors import XenError
from hypervisor_model.host import MAX_NUMNODES
from hypervisor_model.public.domctl import (
    XEN_DOMCTL_CLAIM_MEMORY_HOST,
    XEN_DOMCTL_CLAIM_MEMORY_LEGACY,
)
from hypervisor_model.public.errno import EINVAL, ENOENT, ENOMEM

if TYPE_CHECKING:
    from hypervisor_model.heap import Heap


class ClaimHolder(Protocol):
    """The domain fields the allocator and the claim code use."""

    domain_id: int
    outstanding_pages: int
    node_claims: int
    claims: dict[int, int]
    node_affinity: int
    last_alloc_node: int
    tot_pages: int
    max_pages: int


RecallHook = Callable[["Heap", int], None]


def host_claim(d: ClaimHolder) -> int:
    """The host-wide part of a domain's claim."""
    return d.outstanding_pages - d.node_claims


# -- protection --------------------------------------------------------------------------


def host_can_serve(heap: Heap, request: int, d: ClaimHolder | None) -> bool:
    """Claimed memory is off limits unless the domain's own claim covers the whole request
    (alloc_heap_pages; ``d`` is None for requests that are not reference-counted)."""
    if heap.outstanding_claims + request <= heap.total_avail_pages:
        return True
    return d is not None and d.outstanding_pages >= request


def node_can_serve(heap: Heap, node: int, request: int, d: ClaimHolder | None) -> bool:
    """A node serves a request only from memory not claimed by others (v7 get_free_buddy)."""
    avail = heap.node_avail_pages[node] - heap.claimed_pages[node]
    if d is not None:
        avail += d.claims.get(node, 0)
    return avail >= request


# -- redemption --------------------------------------------------------------------------


def _take_node(heap: Heap, d: ClaimHolder, node: int, pages: int) -> int:
    """Drop up to ``pages`` of the domain's claim on ``node``; return how many."""
    taken = min(d.claims.get(node, 0), pages)
    if taken:
        left = d.claims.pop(node) - taken  # what is left goes last, as a new entry
        if left:
            d.claims[node] = left
        d.node_claims -= taken
        heap.claimed_pages[node] -= taken
        d.outstanding_pages -= taken
        heap.outstanding_claims -= taken
    return taken


def _take_host(heap: Heap, d: ClaimHolder, pages: int) -> int:
    taken = min(host_claim(d), pages)
    d.outstanding_pages -= taken
    heap.outstanding_claims -= taken
    return taken


def redeem(heap: Heap, d: ClaimHolder, node: int, request: int) -> None:
    """Spend the claim on an allocation of ``request`` pages on ``node``: that node's claim,
    then the host-wide claim, then other nodes' claims in node order (v7 alloc_heap_pages).
    The total spent is min(outstanding_pages, request)."""
    left = min(d.outstanding_pages, request)
    if node in d.claims:
        left -= _take_node(heap, d, node, left)
    if left:
        left -= _take_host(heap, d, left)
    for other in sorted(d.claims) if left else ():
        if not left:
            break
        left -= _take_node(heap, d, other, left)


# -- installation ------------------------------------------------------------------------


def release_all(heap: Heap, d: ClaimHolder) -> None:
    """Drop every claim of a domain: node claims node by node, then the host-wide claim."""
    for node in sorted(d.claims):
        _take_node(heap, d, node, d.claims[node])
    _take_host(heap, d, host_claim(d))


def set_claim_entries(heap: Heap, d: ClaimHolder, entries: Sequence[tuple[int, int, int]]) -> None:
    """Install a claim set atomically, replacing the old one (v7 domain_set_claim_entries).

    ``entries`` are ``(pages, target, cmd)``. Raises XenError and changes nothing on failure.
    """
    legacy = False
    host: int | None = None
    nodes: dict[int, int] = {}
    avail, claimed, online = heap.node_avail_pages, heap.claimed_pages, heap.online_mask
    own = d.claims
    for pages, target, cmd in entries:
        if cmd != 0:
            raise XenError(EINVAL, "claim entry cmd must be 0")
        if target in (XEN_DOMCTL_CLAIM_MEMORY_HOST, XEN_DOMCTL_CLAIM_MEMORY_LEGACY):
            if host is not None:
                raise XenError(EINVAL, "more than one host-wide entry")
            legacy |= target == XEN_DOMCTL_CLAIM_MEMORY_LEGACY
            host = pages
            continue
        if target >= MAX_NUMNODES or target >= len(avail) or not (online >> target & 1):
            raise XenError(ENOENT, f"no online node {target:#x}")
        if target in nodes:
            raise XenError(EINVAL, f"node {target} claimed twice")
        if pages > avail[target] - claimed[target] + own.get(target, 0):
            raise XenError(ENOMEM, f"node {target} has too little unclaimed memory")
        nodes[target] = pages
    host = host or 0
    node_sum = sum(nodes.values())

    if legacy:
        if node_sum:
            raise XenError(EINVAL, "LEGACY cannot be combined with node claims")
        if host == 0:
            release_all(heap, d)
            return
        if d.outstanding_pages:
            raise XenError(EINVAL, "the domain already has a claim")
        if host <= d.tot_pages:
            raise XenError(EINVAL, "legacy claim not above tot_pages")
        host -= d.tot_pages
    elif host == 0 and node_sum == 0:
        release_all(heap, d)
        return

    if host > d.max_pages or node_sum > d.max_pages - host:
        raise XenError(EINVAL, "claim above max_pages")
    if node_sum + host + d.tot_pages > d.max_pages:
        raise XenError(EINVAL, "claim plus tot_pages above max_pages")
    unclaimed = heap.total_avail_pages - heap.outstanding_claims
    if node_sum + host > unclaimed + d.outstanding_pages:
        raise XenError(ENOMEM, "not enough unclaimed memory on the host")

    # The old set released and the new one staked, as counter changes in one step.
    for node, pages in own.items():
        claimed[node] -= pages
    own.clear()
    for node, pages in nodes.items():
        if pages:
            claimed[node] += pages
            own[node] = pages
    heap.outstanding_claims += host + node_sum - d.outstanding_pages
    d.node_claims = node_sum
    d.outstanding_pages = host + node_sum


def get_claim_entries(heap: Heap, d: ClaimHolder) -> list[tuple[int, int]]:
    """The claim set as ``(target, pages)``: the host-wide entry first, even when 0, then
    each online node with a claim in node order (v7 domain_get_claim_entries)."""
    entries = [(XEN_DOMCTL_CLAIM_MEMORY_HOST, host_claim(d))]
    for node in sorted(d.claims):
        if heap.online_mask >> node & 1 and d.claims[node]:
            entries.append((node, d.claims[node]))
    return entries


# -- recall on offlining -----------------------------------------------------------------


def recall_after_offline(heap: Heap, node: int, domains: Iterable[ClaimHolder]) -> None:
    """After pages left ``node``, release claims until the invariants hold again: node
    claims on that node first, then host-wide claims, walking domains in domid order
    (v7 reserve_offlined_page)."""
    ordered = sorted(domains, key=lambda d: d.domain_id)
    for d in ordered:
        excess = heap.claimed_pages[node] - heap.node_avail_pages[node]
        if excess <= 0:
            break
        _take_node(heap, d, node, excess)
    for d in ordered:
        excess = heap.outstanding_claims - heap.total_avail_pages
        if excess <= 0:
            break
        _take_host(heap, d, excess)

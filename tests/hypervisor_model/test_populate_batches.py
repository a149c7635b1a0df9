"""The batched populate path against a straightforward per-extent reference.

populate_physmap and increase_reservation take their extents in batches (one lock for a
batch, blocks carved from the top, runs of extents taken in one step, one physmap insert
for a run). Xen does them one extent at a time: per extent, alloc_domheap_pages (the DMA
zones last; the host-wide claim check, the node walk of get_free_buddy with its per-node
claim check, the smallest sufficient block of the highest zone, halved keeping the upper
half, the claim redeemed on the node, then the host, then other nodes), assign_pages (a
dying domain or max_pages refuses, the pages go back to the heap), guest_physmap_add_page
(nothing beyond the p2m's four levels) and, for a PV guest, the MFN written back
(memory.c populate_physmap / increase_reservation). The reference below does exactly that,
written plainly against the heap's free lists.

Two hosts are built the same way from a random recipe (nodes in different zones, some
with holes, a DMA zone when there are several nodes, memory fragmented by other domains,
claims, max_pages, node affinity), then take the same random sequence of reservations,
each perhaps with a fault armed first (failing allocations, a failing populate extent,
frames taken offline before one): one through the hypercall, one through the reference,
which calls the fault hooks where Xen's per-extent loop would meet them. Every call must
return the same count, write back the same MFNs and reach the same continuation points;
at the end the hosts must be identical: free lists in list order, every counter, each
domain's pages, physmap, claims and last node.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypercalls import Guest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hypervisor_model
from hypervisor_model import claims, memory_op, pod
from hypervisor_model.domain import Domain
from hypervisor_model.domheap import P2M_LIMIT, guest_remove_pages
from hypervisor_model.guest_memory import build
from hypervisor_model.heap import MAX_ORDER, NR_ZONES, Heap, bits_to_zone, cycle_node, first_node
from hypervisor_model.host import MAX_NUMNODES
from hypervisor_model.memflags import (
    NUMA_NO_NODE,
    MEMF_bits,
    MEMF_exact_node,
    MEMF_get_bits,
    MEMF_get_node,
    MEMF_no_refcount,
    MEMF_node,
)
from hypervisor_model.memory_op import PREEMPT_EVERY
from hypervisor_model.public import domctl, memory
from hypervisor_model.public.xen import HYPERVISOR_memory_op
from hypervisor_model.runmap import RunMap
from hypervisor_model.snapshot import save_state

POPULATE, INCREASE = memory.XENMEM_populate_physmap, memory.XENMEM_increase_reservation
DECREASE = memory.XENMEM_decrease_reservation
HOST = domctl.XEN_DOMCTL_CLAIM_MEMORY_HOST

# -- the per-extent reference ---------------------------------------------------------------


def ref_take(heap: Heap, node: int, zone_lo: int, zone_hi: int, order: int) -> int | None:
    """The first block of the smallest sufficient order, zones high to low, split down to
    ``order`` keeping the upper half each time; the head of what is left."""
    for zone in range(zone_hi, zone_lo - 1, -1):
        if heap.avail[node][zone] < 1 << order:
            continue
        lists = heap._lists[node][zone]
        assert lists is not None
        for j in range(order, MAX_ORDER + 1):
            if lists[j]:
                head, _ = lists[j].popitem(last=False)
                del heap._free[head]
                while j > order:
                    j -= 1
                    heap._push(head, j, node)
                    head += 1 << j
                return head
    return None


def ref_alloc_heap(
    heap: Heap, zone_lo: int, zone_hi: int, order: int, memflags: int, d: Domain
) -> tuple[int, int] | None:
    """alloc_heap_pages for one extent, written out."""
    request = 1 << order
    holder = None if memflags & MEMF_no_refcount else d
    if not claims.host_can_serve(heap, request, holder):
        return None
    nodemask = heap.online_mask
    if nodemask & d.node_affinity:
        nodemask &= d.node_affinity
    node = req = MEMF_get_node(memflags)
    if node == NUMA_NO_NODE:
        node = cycle_node(d.last_alloc_node, nodemask)
    first, retried = node, False
    while True:
        if claims.node_can_serve(heap, node, request, holder):
            mfn = ref_take(heap, node, zone_lo, zone_hi, order)
            if mfn is not None:
                break
        if memflags & MEMF_exact_node and req != NUMA_NO_NODE:
            return None
        if not nodemask >> node & 1:
            first = node = first_node(nodemask)
            continue
        node = cycle_node(node, nodemask)
        if node == first:
            if memflags & MEMF_exact_node or retried:
                return None
            retried = True
            nodemask = heap.online_mask & ~nodemask
            first = node = first_node(nodemask)
            if node >= MAX_NUMNODES:
                return None
    heap.avail[node][mfn.bit_length()] -= request
    heap.node_avail_pages[node] -= request
    heap.total_avail_pages -= request
    if holder is not None and holder.outstanding_pages:
        claims.redeem(heap, holder, node, request)
    d.last_alloc_node = node
    return mfn, node


def ref_alloc_domheap(
    heap: Heap, d: Domain, order: int, memflags: int, gfn: int | None
) -> int | None:
    """alloc_domheap_pages and assign_pages for one extent."""
    if heap.faults is not None and heap.faults.allocation_fails(d):
        return None
    bits = MEMF_get_bits(memflags) or 64 + 12
    zone_hi = min(bits_to_zone(bits), NR_ZONES - 1)
    found = None
    if heap.dma_bitsize and bits_to_zone(heap.dma_bitsize) < zone_hi:
        found = ref_alloc_heap(
            heap, bits_to_zone(heap.dma_bitsize) + 1, zone_hi, order, memflags, d
        )
    if found is None:
        found = ref_alloc_heap(heap, 1, zone_hi, order, memflags, d)
    if found is None:
        return None
    mfn, node = found
    nr = 1 << order
    if d.is_dying or d.tot_pages > d.max_pages or nr > d.max_pages - d.tot_pages:
        heap.free_heap_pages(mfn, order)  # the claim redeemed for it stays spent
        return None
    d.tot_pages += nr
    d.pages.insert(mfn, nr, None if d.is_translated else gfn, 1, None)
    d.node_pages[node] = d.node_pages.get(node, 0) + nr
    return mfn


def ref_map(d: Domain, gfn: int, mfn: int, order: int) -> bool:
    """guest_physmap_add_page for a page just assigned (a PV guest's M2P is set already)."""
    nr = 1 << order
    if d.is_translated:
        if gfn + nr > P2M_LIMIT:
            return False
        d.p2m.remove(gfn, gfn + nr)
        d.p2m.insert(gfn, nr, mfn, 1, None)
        d.pod_entry_count -= sum(r.length for r in d.pod_entries.remove(gfn, gfn + nr))
        d.max_mapped_pfn = max(d.max_mapped_pfn, gfn + nr - 1)
    return True


def ref_memflags(hv: hypervisor_model.Hypervisor, flags: int) -> int:
    """construct_memop_from_reservation for dom0: an address width below the host's, a
    node, exactly or not."""
    memflags = 0
    bits = memory.XENMEMF_get_address_bits(flags)
    if bits and bits < (hv.heap.max_page - 1).bit_length() + 12:
        memflags = MEMF_bits(bits)
    node = memory.XENMEMF_get_node(flags)
    if node != NUMA_NO_NODE:
        memflags |= MEMF_node(node)
        if flags & memory.XENMEMF_exact_node_request:
            memflags |= MEMF_exact_node
    return memflags


def ref_reservation(
    hv: hypervisor_model.Hypervisor, op: int, d: Domain, call: dict[str, Any], handle: int
) -> tuple[int, int]:
    """The extent loop, one extent at a time: (extents done, continuation points)."""
    order, nr = call["order"], call["nr"]
    memflags = ref_memflags(hv, call["flags"])
    readable = hv.arena.readable(handle) // 8 if handle else 0
    listed = (
        [
            struct.unpack_from("<Q", hv.arena.copy_from_guest(handle + 8 * i, 8))[0]
            for i in range(min(nr, readable))
        ]
        if op != INCREASE
        else []
    )
    done = preempts = 0
    for i in range(len(listed) if op != INCREASE else nr):
        if i and i % PREEMPT_EVERY == 0:
            preempts += 1
        if op == DECREASE:  # the extent's pages one by one (its PoD entries first)
            pages = 1 << order
            if d.is_hvm:
                pod_done = pod.decrease_reservation(hv, d, listed[i], order)
                if not memory_op._remove_after_pod(hv, d, listed[i], pages, pod_done):
                    break
            elif guest_remove_pages(hv.heap, d, listed[i], pages) < pages:
                break
            done += 1
            continue
        gfn = listed[i] if op == POPULATE else None
        if gfn is not None and not hv.faults.extent_may_populate(d, gfn, order):
            break
        mfn = ref_alloc_domheap(hv.heap, d, order, memflags, gfn)
        if mfn is None:
            break
        if gfn is not None and not ref_map(d, gfn, mfn, order):
            break
        written = d.is_translated or not handle
        if not written and not hv.arena.try_copy_to_guest(handle + 8 * i, struct.pack("<Q", mfn)):
            break
        done += 1
    return done, preempts


# -- hosts and requests ---------------------------------------------------------------------

# Node layouts in MFNs: nodes in zones 12..15, some with a hole; node 0 holds MFN 0x800..
LAYOUTS = [
    [[(0x800, 0x1400)]],
    [[(0x800, 0x1000)], [(0x1000, 0x1A00)]],
    [[(0x400, 0x1000)], [(0x1000, 0x1800), (0x1C00, 0x2300)], [(0x4000, 0x4900)]],
    [[(0x100, 0x900)], [(0x900, 0x1000)], [(0x2000, 0x2600)], [(0x8000, 0x8500)]],
]

node_st = st.one_of(st.none(), st.integers(0, 3))
flags_st = st.tuples(node_st, st.booleans(), st.sampled_from([0, 0, 0, 24, 25, 26, 27]))
gfns_st = st.one_of(
    st.tuples(st.just("ascending"), st.integers(0, 0x3000)),
    st.tuples(st.just("strided"), st.integers(0, 0x3000)),
    st.tuples(st.just("random"), st.integers(0, 2**32)),
    st.tuples(st.just("top"), st.integers(0, 40)),  # up to and beyond the p2m's limit
)
call_st = st.fixed_dictionaries(
    {
        "op": st.sampled_from([POPULATE, POPULATE, POPULATE, INCREASE, DECREASE, DECREASE]),
        "who": st.integers(0, 2),
        "order": st.sampled_from([0, 0, 1, 2, 3, 5, 5, 9]),
        "nr": st.one_of(st.integers(0, 8), st.integers(0, 300)),
        "gfns": gfns_st,
        "flags": flags_st,
        "listed": st.sampled_from(["all", "all", "short", "none"]),
        "short": st.integers(0, 200),
        # armed before the call: allocations that fail (of the caller or of anyone), a
        # populate extent that fails, or one before which free frames go offline
        "fault": st.one_of(
            st.none(),
            st.tuples(st.just("allocations"), st.integers(1, 3), st.booleans()),
            st.tuples(st.just("gfn"), st.integers(0, 300)),
            st.tuples(st.just("offline"), st.integers(0, 300), st.integers(0, 0x9000)),
        ),
    }
)
# Mostly small claims; some that take most of a node, or all of the host's unclaimed
# memory but a few pages ("rest"), so that claims and unclaimed memory run out together.
claim_st = st.one_of(st.integers(0, 500), st.integers(500, 3000))
recipe_st = st.fixed_dictionaries(
    {
        "layout": st.integers(0, len(LAYOUTS) - 1),
        "noise": st.lists(
            st.tuples(st.integers(0, 5), st.integers(1, 60), st.booleans()), max_size=6
        ),
        "guests": st.lists(
            st.fixed_dictionaries(
                {
                    "hvm": st.booleans(),
                    "max_pages": st.one_of(st.integers(0, 400), st.just(1 << 20), st.just(1 << 20)),
                    "claim": st.one_of(
                        st.none(),
                        st.tuples(st.just("legacy"), st.one_of(claim_st, st.integers(1, 9000))),
                        st.tuples(
                            st.just("rest"), st.one_of(st.integers(0, 40), st.integers(0, 1100))
                        ),
                        st.lists(
                            st.tuples(st.sampled_from([HOST, 0, 1, 2, 3]), claim_st),
                            min_size=1,
                            max_size=3,
                            unique_by=lambda e: e[0],
                        ),
                    ),
                    "affinity": st.integers(0, 15),
                    "last_node": st.integers(0, 3),
                }
            ),
            min_size=1,
            max_size=3,
        ),
        "calls": st.lists(call_st, min_size=1, max_size=6),
    }
)


def gfn_list(kind: str, base: int, count: int, order: int) -> list[int]:
    size = 1 << order
    if kind == "ascending":
        return [base + i * size for i in range(count)]
    if kind == "strided":  # every other extent, then the ones between
        return [base + i * size for i in [*range(0, count, 2), *range(1, count, 2)]]
    if kind == "top":
        return [P2M_LIMIT - (count - i - base) * size for i in range(count)]
    rnd = base
    out = []
    for _ in range(count):  # a few repeats and clashes on purpose
        rnd = (rnd * 1103515245 + 12345) % 2**31
        out.append((rnd % 64) * size)
    return out


def build_host(recipe: dict[str, Any]) -> tuple[hypervisor_model.Hypervisor, list[int]]:
    """Boot the recipe's host, fragment it with other domains' memory, make its guests."""
    layout = LAYOUTS[recipe["layout"]]
    hv = hypervisor_model.boot(ranges=[[list(r) for r in node] for node in layout])
    dom0 = Guest(hv)
    nodes = len(layout)
    noise = []
    for i, (node, pages, hvm) in enumerate(recipe["noise"]):
        domid = dom0.create(hvm=hvm, max_mib=4)
        flags = memory.XENMEMF_exact_node(node % nodes) if node < nodes else 0
        dom0.populate(domid, [g * 2 for g in range(pages)], 0, flags)
        noise.append(domid)
        if i % 2 and hvm:
            dom0.decrease(domid, [g * 2 for g in range(0, pages, 3)])
    for domid in noise[::2]:
        dom0.destroy(domid)
    guests = [dom0.create(hvm=g["hvm"]) for g in recipe["guests"]]
    for domid, g in zip(guests, recipe["guests"], strict=True):
        dom0.max_mem(domid, g["max_pages"] * 4)
        if g["claim"] and g["claim"][0] == "legacy":
            dom0.claim_pages(domid, g["claim"][1])
        elif g["claim"] and g["claim"][0] == "rest":  # all unclaimed memory but a few pages
            info = dom0.physinfo()
            dom0.claim_pages(
                domid, max(info.free_pages - info.outstanding_pages - g["claim"][1], 0)
            )
        elif g["claim"]:
            dom0.claim_set(domid, [(t, p) for t, p in g["claim"] if t == HOST or t < nodes])
        d = hv.find_domain(domid)
        d.node_affinity = g["affinity"] & ((1 << nodes) - 1) or d.node_affinity
        d.last_alloc_node = g["last_node"] % nodes
    return hv, guests


def request(call: dict[str, Any], nodes: int, d: Domain) -> tuple[int, list[int] | None]:
    """The reservation's mem_flags and its extent list (None: a NULL handle). A decrease
    lists frames ``d`` has (gfns of a translated guest, MFNs of a PV one), an extent apart,
    in the order the gfn kind says; "random" puts one it has not in the middle."""
    node, exact, bits = call["flags"]
    flags = memory.XENMEMF_address_bits(bits) if bits else 0
    if node is not None and node < nodes:
        flags |= memory.XENMEMF_exact_node(node) if exact else memory.XENMEMF_node(node)
    if call["op"] == INCREASE and call["listed"] == "none":
        return flags, None
    frames = gfn_list(*call["gfns"], call["nr"], call["order"])
    if call["op"] == DECREASE:
        index = d.p2m if d.is_translated else d.pages
        keys = [key for run in index for key in range(run.start, run.end)][:: 1 << call["order"]]
        kind, half = call["gfns"][0], len(keys) // 2
        if kind == "strided":
            keys = keys[::2] + keys[1::2]
        elif kind == "top":
            keys.reverse()
        elif kind == "random":
            keys = [*keys[:half], P2M_LIMIT - 1, *keys[half:]]
        frames = keys[: call["nr"]]
    if call["op"] == INCREASE:
        frames = [0] * call["nr"]
    if call["listed"] == "short":  # the buffer ends early: reads stop, or write-backs fail
        frames = frames[: call["short"]]
    return flags, frames


def arm(
    hv: hypervisor_model.Hypervisor, domid: int, call: dict[str, Any], frames: list[int] | None
) -> None:
    """Arm the call's fault, the same on either host."""
    fault = call["fault"]
    if fault is None:
        return
    if fault[0] == "allocations":
        hv.faults.fail_next_allocations(fault[1], None if fault[2] else domid)
    elif frames:
        gfn = frames[fault[1] % len(frames)]
        if fault[0] == "gfn":
            hv.faults.fail_populate_at(domid, gfn)
        else:  # 64 frames from a point of the host: the free ones leave the heap
            hv.faults.offline_at_populate(domid, gfn, range(fault[2], fault[2] + 64))


def normalized(hv: hypervisor_model.Hypervisor) -> dict[str, Any]:
    """The saved host with each run map spelt out key by key (how runs merge may depend
    on the order they were entered in) and dicts in key order."""
    doc = save_state(hv)
    for dom in doc["domains"]:
        for name in ("pages", "p2m", "pod_entries"):
            runs = RunMap.from_saved(dom[name], any_step=True)
            dom[name] = [
                (key, run.value_at(key)) for run in runs for key in range(run.start, run.end)
            ]
        for name in ("claims", "node_pages"):
            dom[name] = sorted(dom[name])
    return doc


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(recipe_st)
def test_batched_reservations_equal_extent_by_extent(recipe: dict[str, Any]) -> None:
    batched, guests = build_host(recipe)
    reference, _ = build_host(recipe)
    reference.heap._settle_carves()  # the reference reads the free lists as they are
    nodes = len(LAYOUTS[recipe["layout"]])
    preempted = [0]

    def count_preemption() -> None:
        preempted[0] += 1

    batched.preempt_check = count_preemption  # type: ignore[method-assign]
    for call in recipe["calls"]:
        domid = guests[call["who"] % len(guests)]
        flags, frames = request(call, nodes, batched.find_domain(domid))
        results = []
        for hv in (batched, reference):
            arm(hv, domid, call, frames)
            # the list ends where the caller's buffer does
            with hv.arena.alloc(8 * len(frames) if frames is not None else 8) as lst:
                handle = lst.addr if frames is not None else 0
                if frames:
                    lst.mem[: 8 * len(frames)] = struct.pack(f"<{len(frames)}Q", *frames)
                raw = dict(
                    extent_start=handle,
                    nr_extents=call["nr"],
                    extent_order=call["order"],
                    mem_flags=flags,
                    domid=domid,
                )
                if hv is batched:
                    preempted[0] = 0
                    with hv.arena.alloc(64) as arg:
                        arg.mem[:32] = build(memory.xen_memory_reservation, raw)
                        done = hv.hypercall(HYPERVISOR_memory_op, call["op"], arg.addr)
                    preempts = preempted[0]
                else:
                    d = hv.find_domain(domid)
                    ops = dict(order=call["order"], nr=call["nr"], flags=flags)
                    done, preempts = ref_reservation(hv, call["op"], d, ops, handle)
                results.append((done, preempts, bytes(lst.mem[: 8 * len(frames or [])])))
            hv.faults.clear()  # what did not fire
        assert results[0] == results[1], f"batched {results[0][:2]}, per extent {results[1][:2]}"
    batched.check_invariants()
    assert normalized(batched) == normalized(reference)


@pytest.mark.parametrize(("unclaimed", "done", "left"), [(20, 40, 20), (100, 43, 22)])
def test_a_run_of_extents_stops_where_claim_and_unclaimed_memory_run_out(
    unclaimed: int, done: int, left: int
) -> None:
    """alloc_heap_pages lets an extent of 32 pages through while the domain's claim covers
    it, or else while the memory nobody claimed does. A claims 1298 = 40 * 32 + 18 pages,
    B all the rest but ``unclaimed``; A asks for 64 extents of order 5 at once. 40 go on
    A's claim, leaving 18 of it. With 20 unclaimed pages the 41st fails (18 < 32 and
    20 < 32). With 100, the 41st goes on unclaimed memory and spends the 18 (100 - 32 + 18
    = 86 unclaimed), then two more (86 -> 54 -> 22), and the 44th fails: 43. Extents on
    the claim leave unclaimed memory as it was: 20 after the first, 22 after the second."""
    hv = hypervisor_model.boot(ranges=[[(0x10000, 0x20000)]])
    dom0 = Guest(hv)
    a, b = dom0.create(hvm=False, max_mib=64), dom0.create(hvm=False, max_mib=256)
    assert dom0.claim_pages(a, 1298) == 0
    info = dom0.physinfo()
    assert dom0.claim_pages(b, info.free_pages - info.outstanding_pages - unclaimed) == 0
    assert dom0.populate(a, [i << 5 for i in range(64)], 5) == done
    info = dom0.physinfo()
    assert info.free_pages - info.outstanding_pages == left
    hv.check_invariants()

"""``__HYPERVISOR_memory_op``: reservations, populate_physmap and legacy claims (memory.c).

populate / increase / decrease never return a negative errno: every failure, early or per
extent, becomes the count of extents completed so far (0 for bad arguments).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from functools import partial
from typing import TYPE_CHECKING, NamedTuple

from hypervisor_model import claims, pod, vnuma
from hypervisor_model.codec import codec
from hypervisor_model.domain import Domain
from hypervisor_model.domheap import (
    P2M_LIMIT,
    alloc_domheap_extents,
    guest_physmap_add_extents,
    guest_remove_pages,
)
from hypervisor_model.errors import XenError
from hypervisor_model.guest_memory import GuestFault, copy_struct_from_guest, handle_range_ok
from hypervisor_model.heap import MAX_ORDER, PAGE_SHIFT, Extents
from hypervisor_model.host import MAX_NUMNODES
from hypervisor_model.memflags import NUMA_NO_NODE, MEMF_bits, MEMF_exact_node, MEMF_node
from hypervisor_model.public import domctl as domctl_abi
from hypervisor_model.public import memory as abi
from hypervisor_model.public.errno import EINVAL, ENOSYS, EPERM, ESRCH
from hypervisor_model.public.xen import DOMID_SELF

if TYPE_CHECKING:
    from hypervisor_model.hypervisor import Hypervisor

UINT_MAX = 0xFFFFFFFF
DOMU_MAX_ORDER, HWDOM_MAX_ORDER, CTLDOM_MAX_ORDER = 9, 12, MAX_ORDER  # x86 defaults
# max_order's two answers: dom0 is the control and the hardware domain at once.
_DOMU_MAX_ORDER = min(DOMU_MAX_ORDER, MAX_ORDER)
_CONTROL_MAX_ORDER = min(max(DOMU_MAX_ORDER, CTLDOM_MAX_ORDER, HWDOM_MAX_ORDER), MAX_ORDER)
PFN = struct.Struct("<Q")  # xen_pfn_t in an extent list
PREEMPT_EVERY = 64  # extents between continuation points
RESERVATION = codec(abi.xen_memory_reservation)  # read as flat values, padding skipped


class Reservation(NamedTuple):
    """What the extent loops use of a reservation (memory.c struct memop_args)."""

    extent_start: int  # the extent list's guest handle
    nr_extents: int
    extent_order: int


def do_memory_op(hv: Hypervisor, current: Domain, cmd: int, arg: int, *_: int) -> int:
    op, start_extent = cmd & abi.MEMOP_CMD_MASK, cmd >> abi.MEMOP_EXTENT_SHIFT
    if op in _EXTENT_LOOPS:
        return _reservation_op(hv, current, op, start_extent, arg)
    handler = _SIMPLE_OPS.get(op)
    if handler is None:
        arch = _ARCH_OPS.get(cmd)  # arch_memory_op switches on the whole cmd
        if arch is None:
            raise XenError(ENOSYS)  # its default
        return arch(hv, current, arg)
    if start_extent:
        raise XenError(EINVAL, "start_extent is internal to continuations")
    return handler(hv, current, arg)


def lookup_any_id(hv: Hypervisor, current: Domain, domid: int) -> Domain | None:
    """rcu_lock_domain_by_any_id: DOMID_SELF is the caller."""
    return current if domid == DOMID_SELF else hv.find_domain(domid)


def max_order(hv: Hypervisor, d: Domain) -> int:
    """The largest extent a domain may request (max_order in memory.c)."""
    return _CONTROL_MAX_ORDER if hv.is_control_domain(d) else _DOMU_MAX_ORDER


# -- increase / decrease / populate -------------------------------------------------------


def _construct_memflags(hv: Hypervisor, current: Domain, d: Domain, mem_flags: int) -> int:
    """Translate XENMEMF_* into MEMF_* (construct_memop_from_reservation); EINVAL if the
    flags are invalid for this caller or, for a vnode, for the target domain ``d``."""
    memflags = 0
    address_bits = abi.XENMEMF_get_address_bits(mem_flags)
    if address_bits:
        max_page_order = max(hv.heap.max_page - 1, 0).bit_length()  # get_order_from_pages
        if address_bits < max_page_order + PAGE_SHIFT:
            if address_bits <= PAGE_SHIFT:
                raise XenError(EINVAL, "address width too small")
            memflags = MEMF_bits(address_bits)
    if mem_flags & abi.XENMEMF_vnode:
        return memflags | vnuma.vnode_memflags(d, mem_flags)
    node = abi.XENMEMF_get_node(mem_flags)
    if node == NUMA_NO_NODE:
        return memflags
    if hv.is_control_domain(current):  # propagate_node
        if node >= MAX_NUMNODES:
            raise XenError(EINVAL, f"node {node} beyond MAX_NUMNODES")
        memflags |= MEMF_node(node)
        if mem_flags & abi.XENMEMF_exact_node_request:
            memflags |= MEMF_exact_node
    elif mem_flags & abi.XENMEMF_exact_node_request:
        raise XenError(EINVAL, "exact node requests need privilege")
    return memflags


def _reservation_op(hv: Hypervisor, current: Domain, op: int, start: int, arg: int) -> int:
    memory = hv.caller_memory
    try:
        raw = memory.copy_from_guest(arg, RESERVATION.size)
    except GuestFault:
        return start
    extent_start, nr_extents, order, mem_flags, domid = RESERVATION.unpack_from(raw)
    if nr_extents > UINT_MAX >> abi.MEMOP_EXTENT_SHIFT or start >= nr_extents:
        return start
    d = lookup_any_id(hv, current, domid)
    if d is None:
        return start
    try:
        memflags = _construct_memflags(hv, current, d, mem_flags)
    except XenError:
        return start
    populate_on_demand = op == abi.XENMEM_populate_physmap and (
        mem_flags & abi.XENMEMF_populate_on_demand
    )
    if not (d is current or hv.is_control_domain(current)):
        return start  # xsm_memory_adjust_reservation(XSM_TARGET)
    # An extent list must lie in the caller's address space (guest_handle_subrange_okay;
    # increase_reservation alone accepts none), and no extent may exceed max_order (PoD
    # entries: MAX_ORDER, they take no memory).
    listed = extent_start or op != abi.XENMEM_increase_reservation
    if listed and not handle_range_ok(extent_start, nr_extents, PFN.size):
        return start
    if order > (MAX_ORDER if populate_on_demand else max_order(hv, current)):
        return start
    r = Reservation(extent_start, nr_extents, order)
    if populate_on_demand:
        return _populate_on_demand(hv, current, d, r, start)
    return _EXTENT_LOOPS[op](hv, d, r, start, memflags)


def _extent_list(hv: Hypervisor, handle: int, start: int, end: int) -> list[int]:
    """The readable part of an extent list: entries stop at the first unreadable one."""
    if not handle:
        return []
    at = handle + start * PFN.size
    try:
        raw = hv.caller_memory.copy_from_guest(at, (end - start) * PFN.size)
    except GuestFault:  # the list runs out of its buffer: as much as is there
        count = min(end - start, hv.caller_memory.readable(at) // PFN.size)
        raw = hv.caller_memory.copy_from_guest(at, count * PFN.size)
    return list(struct.unpack(f"<{len(raw) // PFN.size}Q", raw))


def _extent_loop(
    hv: Hypervisor, start: int, items: Sequence[int], step: Callable[[int, int], bool]
) -> int:
    """Run ``step(index, item)`` per extent until one fails; return the extents done."""

    def batch(first: int, stop: int) -> int:
        for index in range(first, stop):
            if not step(index, items[index - start]):
                return index - first
        return stop - first

    return _batch_loop(hv, start, start + len(items), batch)


def _batch_loop(
    hv: Hypervisor,
    start: int,
    end: int,
    batch: Callable[[int, int], int],
    one_by_one: Callable[[], bool] | None = None,
) -> int:
    """Do extents ``start .. end-1`` in batches, ``batch(first, stop)`` returning how many
    of its extents went through (fewer: the next one failed, which ends the loop); return
    the extents done. Other hypercalls get to run every PREEMPT_EVERY extents, as with
    Xen's continuations, so batches end there (or after one extent while ``one_by_one()``
    says so, asked before each batch)."""
    done = start
    while done < end:
        if done != start and (done - start) % PREEMPT_EVERY == 0:
            hv.preempt_check()
        stop = done + PREEMPT_EVERY - (done - start) % PREEMPT_EVERY
        if one_by_one is not None and one_by_one():
            stop = done + 1
        stop = min(stop, end)
        done += batch(done, stop)
        if done < stop:
            break
    return done


def _allocate(
    hv: Hypervisor,
    d: Domain,
    r: Reservation,
    memflags: int,
    first: int,
    count: int,
    gfns: Sequence[int] | None = None,
) -> int:
    """Allocate extents ``first .. first+count-1`` (for ``gfns``, if given) and hand them
    over: mapped at their gfns in a translated guest's p2m, their MFNs written back for a
    PV guest with an extent list. Returns how many went through. Two failures come after
    the extent was allocated and assigned, and leave it so: a gfn beyond what the p2m maps
    (guest_physmap_add_page), and an MFN that cannot be written back."""
    nr = 1 << r.extent_order
    translated = d.is_translated
    whole = count  # extents that can go all the way through
    if translated and gfns is not None and max(gfns) + nr > P2M_LIMIT:
        whole = next(i for i, gfn in enumerate(gfns) if gfn + nr > P2M_LIMIT)
    elif not translated and r.extent_start:
        at = r.extent_start + first * PFN.size
        whole = min(count, hv.caller_memory.readable(at) // PFN.size)
    with d.page_alloc_lock:
        asked = min(count, whole + 1)
        runs = alloc_domheap_extents(hv.heap, d, r.extent_order, memflags, asked, gfns)
        went = sum(run.length for run in runs)
        if went > whole:
            went, runs = whole, _first_extents(runs, whole)
        if translated and gfns is not None:
            guest_physmap_add_extents(d, runs, gfns)
    if not translated and r.extent_start and went:
        mfns = [mfn for run in runs for mfn in run.mfns()]
        hv.caller_memory.copy_to_guest(at, struct.pack(f"<{went}Q", *mfns))
    return went


def _first_extents(runs: list[Extents], count: int) -> list[Extents]:
    """The runs of the first ``count`` extents."""
    kept: list[Extents] = []
    for run in runs:
        if count <= 0:
            break
        kept.append(run if run.length <= count else run._replace(length=count))
        count -= run.length
    return kept


def _populate_physmap(hv: Hypervisor, d: Domain, r: Reservation, start: int, memflags: int) -> int:
    """Allocate and map one extent per listed gfn; PV guests get the MFNs written back.
    Armed faults run before their extents, outside every lock: while one is armed for
    ``d`` (perhaps by another thread since the call began), each extent is a batch of its
    own."""
    gfns = _extent_list(hv, r.extent_start, start, r.nr_extents)

    def batch(first: int, stop: int) -> int:
        mine = gfns[first - start : stop - start]
        if not hv.faults.extent_may_populate(d, mine[0], r.extent_order):
            return 0
        return _allocate(hv, d, r, memflags, first, len(mine), mine)

    faulty = partial(hv.faults.populate_armed, d)
    return _batch_loop(hv, start, start + len(gfns), batch, one_by_one=faulty)


def _populate_on_demand(
    hv: Hypervisor, current: Domain, d: Domain, r: Reservation, start: int
) -> int:
    """populate_physmap with XENMEMF_populate_on_demand: each extent marks its gfns PoD on
    an HVM guest (no memory taken, no frame written back) and counts as done on a PV one;
    never on oneself."""

    def mark(_: int, gfn: int) -> bool:
        if d is current:
            return False  # "Disallow populating PoD pages on oneself"
        return not d.is_hvm or pod.mark_populate_on_demand(d, gfn, r.extent_order)

    gfns = _extent_list(hv, r.extent_start, start, r.nr_extents)
    return _extent_loop(hv, start, gfns, mark)


def _increase_reservation(
    hv: Hypervisor, d: Domain, r: Reservation, start: int, memflags: int
) -> int:
    """Allocate extents without mapping them; PV callers may get the MFNs in a list."""

    def batch(first: int, stop: int) -> int:
        return _allocate(hv, d, r, memflags, first, stop - first)

    return _batch_loop(hv, start, r.nr_extents, batch)


def _decrease_reservation(
    hv: Hypervisor, d: Domain, r: Reservation, start: int, memflags: int
) -> int:
    """Free the pages behind each listed extent; stop at the first page that is not there.
    An HVM guest's PoD entries go first (p2m_pod_decrease_reservation): the holes they
    leave, as many as it dealt with, are expected. A PV guest's extents that continue one
    another are removed as one range: the same pages go in the same order, and the extent
    holding the first page that cannot go is not done."""
    pages = 1 << r.extent_order
    gfns = _extent_list(hv, r.extent_start, start, r.nr_extents)
    if d.is_hvm:

        def decrease(_: int, gfn: int) -> bool:
            pod_done = pod.decrease_reservation(hv, d, gfn, r.extent_order)
            return _remove_after_pod(hv, d, gfn, pages, pod_done)

        return _extent_loop(hv, start, gfns, decrease)

    def batch(first: int, stop: int) -> int:
        done = first
        while done < stop:
            gmfn, end = gfns[done - start], done + 1
            while end < stop and gfns[end - start] == gmfn + (end - done) * pages:
                end += 1
            removed = guest_remove_pages(hv.heap, d, gmfn, (end - done) * pages)
            if removed < (end - done) * pages:
                return done + removed // pages - first
            done = end
        return stop - first

    return _batch_loop(hv, start, start + len(gfns), batch)


def _remove_after_pod(hv: Hypervisor, d: Domain, gfn: int, pages: int, pod_done: int) -> bool:
    """memory.c decrease_reservation's guest_remove_page loop after PoD dealt with
    ``pod_done`` pages: page j is looked at while ``j + pod_done < pages``; mapped memory is
    freed, a hole (ENOENT) uses up one of ``pod_done`` (none left: stop), a PoD entry still
    there is EINVAL (stop)."""
    j = 0
    while j + pod_done < pages:
        at = gfn + j
        if d.pod_entries.find(at) is not None:
            return False
        mapped = d.p2m.find(at)
        if mapped is not None:
            count = min(mapped.end, gfn + pages - pod_done) - at
            if guest_remove_pages(hv.heap, d, at, count) < count:
                return False
            j += count
            continue
        if not pod_done:
            return False
        count = min(
            pod.hole_end(d, at, gfn + pages) - at, pod_done
        )  # each hole page moves j on and pod_done down
        j += count
        pod_done -= count
    return True


_EXTENT_LOOPS: dict[int, Callable[[Hypervisor, Domain, Reservation, int, int], int]] = {
    abi.XENMEM_increase_reservation: _increase_reservation,
    abi.XENMEM_decrease_reservation: _decrease_reservation,
    abi.XENMEM_populate_physmap: _populate_physmap,
}


# -- the simple ops ------------------------------------------------------------------------


def _maximum_ram_page(hv: Hypervisor, current: Domain, arg: int) -> int:
    return hv.heap.max_page


def _domain_stat(stat: Callable[[Domain], int]) -> Callable[[Hypervisor, Domain, int], int]:
    """current_reservation / maximum_reservation / maximum_gpfn: a number about a domain,
    the caller itself or one it controls."""

    def handler(hv: Hypervisor, current: Domain, arg: int) -> int:
        domid = copy_struct_from_guest(hv.caller_memory, arg, abi.xen_memory_domain).domid
        d = lookup_any_id(hv, current, domid)
        if d is None:
            raise XenError(ESRCH)
        if not (d is current or hv.is_control_domain(current)):
            raise XenError(EPERM)  # xsm_memory_stat_reservation(XSM_TARGET)
        return stat(d)

    return handler


def domain_get_maximum_gpfn(d: Domain) -> int:
    """x86 domain_get_maximum_gpfn: the p2m's highest gfn ever mapped; a PV guest's comes
    from the max_pfn its shared-info page holds, which nothing in the model writes (0)."""
    return d.max_mapped_pfn if d.is_translated else 0


def _claim_pages(hv: Hypervisor, current: Domain, arg: int) -> int:
    """XENMEM_claim_pages: a legacy claim, through the v7 claim-set installer as LEGACY."""
    r = copy_struct_from_guest(hv.caller_memory, arg, abi.xen_memory_reservation)
    if r.extent_start or r.extent_order or r.mem_flags:
        raise XenError(EINVAL, "claims take no extent list, order or flags")
    d = hv.find_domain(r.domid)  # DOMID_SELF is not accepted here
    if d is None:
        raise XenError(EINVAL, "no such domain")
    if not hv.is_control_domain(current):
        raise XenError(EPERM)  # xsm_claim_pages(XSM_PRIV)
    if d.is_dying:
        raise XenError(EINVAL, "domain is dying")
    entry = (r.nr_extents, domctl_abi.XEN_DOMCTL_CLAIM_MEMORY_LEGACY, 0)
    with d.page_alloc_lock, hv.heap.lock:
        claims.set_claim_entries(hv.heap, d, [entry])
    return 0


_SIMPLE_OPS: dict[int, Callable[[Hypervisor, Domain, int], int]] = {
    abi.XENMEM_maximum_ram_page: _maximum_ram_page,
    abi.XENMEM_current_reservation: _domain_stat(lambda d: d.tot_pages),
    abi.XENMEM_maximum_reservation: _domain_stat(lambda d: d.max_pages),
    abi.XENMEM_maximum_gpfn: _domain_stat(domain_get_maximum_gpfn),
    abi.XENMEM_claim_pages: _claim_pages,
    abi.XENMEM_get_vnumainfo: vnuma.get_vnumainfo,
}


def _no_sharing(hv: Hypervisor, current: Domain, arg: int) -> int:
    """The memory-sharing counters, for anyone: nothing is ever shared here (no
    CONFIG_MEM_SHARING), so no page is saved or shared (mem_sharing.h)."""
    return 0


# x86 arch_memory_op / subarch_memory_op: reached with the whole cmd, continuation bits
# included, so those bits make any of them ENOSYS.
_ARCH_OPS: dict[int, Callable[[Hypervisor, Domain, int], int]] = {
    abi.XENMEM_get_sharing_freed_pages: _no_sharing,
    abi.XENMEM_get_sharing_shared_pages: _no_sharing,
    abi.XENMEM_set_pod_target: lambda hv, cur, arg: pod.pod_target_op(
        hv, cur, arg, abi.XENMEM_set_pod_target
    ),
    abi.XENMEM_get_pod_target: lambda hv, cur, arg: pod.pod_target_op(
        hv, cur, arg, abi.XENMEM_get_pod_target
    ),
}

"""Page offlining for XEN_SYSCTL_page_offline_op: offline, online, query (page_alloc.c).

Frames at or above ``max_page`` are invalid (EINVAL, status untouched); frames below it
that are not RAM cannot be offlined (FAILED | NOT_CONV_RAM, EINVAL).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Callable
from typing import TYPE_CHECKING

from hypervisor_model.public import sysctl as abi
from hypervisor_model.public.errno import EINVAL
from hypervisor_model.public.xen import DOMID_INVALID, DOMID_XEN

if TYPE_CHECKING:
    from hypervisor_model.hypervisor import Hypervisor

PageAction = Callable[["Hypervisor", int, int], tuple[int, int]]
# An action over the MFNs from a start, one status word each: 0 or -errno where it stopped.
Action = Callable[["Hypervisor", int, "array[int]"], int]


def _owner(hv: Hypervisor, mfn: int) -> int | None:
    """The domain owning ``mfn``, DOMID_XEN for a xen-heap page (a domain's structure or
    shared info), or None for a page nobody owns (a paging pool page, heap metadata)."""
    for d in hv.domain_list():
        with d.page_alloc_lock:
            if d.pages.find(mfn) is not None:
                return d.domain_id
            if mfn in (d.struct_page, d.shared_info):
                return DOMID_XEN
    return None


def offline_page(hv: Hypervisor, mfn: int, status: int) -> tuple[int, int]:
    """offline_page(): a free page is offlined now; a page in use becomes pending and is
    reported with its owner, as Xen's own (PGC_xen_heap), or as anonymous, which counts as
    a failure."""
    if mfn >= hv.heap.max_page:
        return -EINVAL, status
    if hv.heap.mfn_to_nid(mfn) is None:
        return -EINVAL, abi.PG_OFFLINE_FAILED | abi.PG_OFFLINE_NOT_CONV_RAM
    if hv.heap.offline_page(mfn):
        return 0, abi.PG_OFFLINE_OFFLINED
    owner = _owner(hv, mfn)
    shift = abi.PG_OFFLINE_OWNER_SHIFT
    if owner is None:
        return 0, abi.PG_OFFLINE_ANONYMOUS | abi.PG_OFFLINE_FAILED | DOMID_INVALID << shift
    if owner == DOMID_XEN:
        return 0, abi.PG_OFFLINE_XENPAGE | abi.PG_OFFLINE_PENDING | DOMID_XEN << shift
    return 0, abi.PG_OFFLINE_OWNED | abi.PG_OFFLINE_PENDING | owner << shift


def online_page(hv: Hypervisor, mfn: int, status: int) -> tuple[int, int]:
    if mfn >= hv.heap.max_page:
        return -EINVAL, status
    return 0, abi.PG_ONLINE_ONLINED if hv.heap.online_page(mfn) else 0


def query_page_offline(hv: Hypervisor, start: int, status: array[int]) -> int:
    """query_page_offline for each MFN from ``start`` into ``status``, a run of RAM at a
    time: its pages all answer 0 but the few offlined or pending. Returns 0, or -EINVAL at
    the first MFN that is not RAM, whose status and the rest's are left as they were."""
    heap, end, mfn = hv.heap, start + len(status), start
    with heap.lock:
        for lo, hi, _ in heap.split_by_node(start, end):
            if lo != mfn:
                break  # a hole at mfn
            status[lo - start : hi - start] = array("I", bytes(4 * (hi - lo)))
            for pages, bit in (
                (heap.offlining, abi.PG_OFFLINE_STATUS_OFFLINE_PENDING),
                (heap.offlined, abi.PG_OFFLINE_STATUS_OFFLINED),
            ):
                for page in pages[bisect_left(pages, lo) : bisect_left(pages, hi)]:
                    status[page - start] |= bit
            mfn = hi
    return 0 if mfn == end else -EINVAL


def _page_by_page(action: PageAction) -> Action:
    """The sysctl loop over one page after another, stopping at the first error."""

    def run(hv: Hypervisor, start: int, status: array[int]) -> int:
        for i in range(len(status)):
            rc, status[i] = action(hv, start + i, status[i])
            if rc:
                return rc
        return 0

    return run


ACTIONS: dict[int, Action] = {
    abi.sysctl_page_offline: _page_by_page(offline_page),
    abi.sysctl_page_online: _page_by_page(online_page),
    abi.sysctl_query_page_offline: query_page_offline,
}

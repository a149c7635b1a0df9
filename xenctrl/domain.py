"""Domain calls of libxenctrl (tools/libs/ctrl/xc_domain.c): lifecycle, limits, NUMA
affinity, claims and the reservation ops.

Same names and argument order as C; out-parameters are returned; failures raise XenError.
"""

from __future__ import annotations

import ctypes
from collections.abc import MutableSequence, Sequence
from typing import Any

from hypervisor_model.guest_memory import build, parse
from hypervisor_model.public import domctl, memory, sysctl
from hypervisor_model.public.errno import EBUSY, EINVAL, ENOMEM, ESRCH
from hypervisor_model.public.xen import DOMID_ANY
from xenctrl import trace
from xenctrl.cints import (
    domid_t,
    uint32_t,
    uint64_t,
    unsigned_int,
    unsigned_long,
    xenctrl_call,
)
from xenctrl.errors import XenError
from xenctrl.handle import (
    Bounce,
    Tail,
    check,
    do_domctl,
    do_sysctl,
    memory_op_struct,
    reservation,
    xc_interface,
    xc_memory_op,
)
from xenctrl.misc import xc_get_nodemap_size
from xenctrl.types import (
    xc_domaininfo_t,
    xen_domctl_createdomain,
    xen_memory_claim_t,
    xen_vmemrange_t,
)

traced = xenctrl_call  # traced as libxenctrl, its C integers converted
CLAIM_SIZE = ctypes.sizeof(xen_memory_claim_t)


def _to_ctypes(ctype: type[ctypes.Structure], raw: bytes) -> Any:
    return ctype.from_buffer_copy(raw[: ctypes.sizeof(ctype)])


def default_createdomain(
    hvm: bool = True, max_vcpus: int = 1, *, pvh: bool = False
) -> xen_domctl_createdomain:
    """A createdomain config as libxl fills it: HVM gets every emulator but vPCI, PVH only
    the local APIC, PV none (libxl__arch_domain_prepare_config)."""
    config = xen_domctl_createdomain()
    config.flags = (domctl.XEN_DOMCTL_CDF_hvm | domctl.XEN_DOMCTL_CDF_hap) if hvm or pvh else 0
    if pvh:
        config.arch.emulation_flags = domctl.XEN_X86_EMU_LAPIC
    elif hvm:
        config.arch.emulation_flags = domctl.XEN_X86_EMU_ALL & ~domctl.XEN_X86_EMU_VPCI
    config.max_vcpus = max_vcpus
    config.max_evtchn_port = 1023
    config.max_grant_frames = -1
    config.max_maptrack_frames = -1
    config.grant_opts = 2  # XEN_DOMCTL_GRANT_version(2)
    return config


# -- lifecycle ------------------------------------------------------------------------------


@traced
def xc_domain_create(
    xch: xc_interface, domid: domid_t = DOMID_ANY, config: xen_domctl_createdomain | None = None
) -> int:
    """Create a domain (paused); returns its domid. ``config`` is written back, as in C.

    The handle's release decides the wire layout (4.17's has no ``altp2m``) and how "any
    domid" is asked for: DOMID_ANY becomes 0 for a release without it.
    """
    config = config if config is not None else default_createdomain()
    layout = xch.release.xen_domctl_createdomain
    fields = parse(domctl.xen_domctl_createdomain, bytes(config))
    members = {sc.name for sc in layout.subcons}
    if "altp2m" not in members and (fields.altp2m.opts or fields.altp2m.nr):
        raise ValueError(f"Xen {xch.release.name}'s createdomain has no altp2m member")
    if domid == DOMID_ANY:
        domid = xch.release.any_domid
    rc, reply = do_domctl(xch, domctl.XEN_DOMCTL_createdomain, domid, layout, **dict(fields))
    check(rc)
    back = dict(fields) | dict(reply.payload)  # a member the release lacks keeps its value
    raw = build(domctl.xen_domctl_createdomain, back)
    memoryview(config).cast("B")[:] = raw[: ctypes.sizeof(config)]  # a copy that keeps the GIL
    return int(reply.domain)


@traced
def xc_domain_destroy(xch: xc_interface, domid: domid_t) -> None:
    check(do_domctl(xch, domctl.XEN_DOMCTL_destroydomain, domid)[0])


@traced
def xc_domain_pause(xch: xc_interface, domid: domid_t) -> None:
    check(do_domctl(xch, domctl.XEN_DOMCTL_pausedomain, domid)[0])


@traced
def xc_domain_unpause(xch: xc_interface, domid: domid_t) -> None:
    check(do_domctl(xch, domctl.XEN_DOMCTL_unpausedomain, domid)[0])


@traced
def xc_domain_max_vcpus(xch: xc_interface, domid: domid_t, max: unsigned_int) -> None:
    check(
        do_domctl(xch, domctl.XEN_DOMCTL_max_vcpus, domid, domctl.xen_domctl_max_vcpus, max=max)[0]
    )


@traced
def xc_domain_setmaxmem(xch: xc_interface, domid: domid_t, max_memkb: uint64_t) -> None:
    """Set the domain's memory limit in KiB (a uint64_t: -1 means all ones)."""
    check(
        do_domctl(
            xch, domctl.XEN_DOMCTL_max_mem, domid, domctl.xen_domctl_max_mem, max_memkb=max_memkb
        )[0]
    )


# -- information -----------------------------------------------------------------------------


@traced
def xc_domain_getinfo_single(xch: xc_interface, domid: domid_t) -> xc_domaininfo_t:
    """The record of exactly ``domid``. A release whose getdomaininfo answers a missing id
    with the next domain gets ESRCH for that answer, as its toolstack checks (libxl 4.17
    libxl_domain_info)."""
    rc, reply = do_domctl(xch, domctl.XEN_DOMCTL_getdomaininfo, domid)
    check(rc)
    if reply.domain != domid & 0xFFFF:
        raise XenError(ESRCH, trace.current_call(), f"the next domain is d{reply.domain}")
    return _to_ctypes(xc_domaininfo_t, reply.u)


@traced
def xc_domain_getinfolist(
    xch: xc_interface, first_domain: uint32_t, max_domains: unsigned_int
) -> list[xc_domaininfo_t]:
    """Up to ``max_domains`` records of domains with id >= ``first_domain``, in id order."""
    size = ctypes.sizeof(xc_domaininfo_t)
    out = bytearray(max_domains * size)
    with Bounce(xch, out, len(out), "out") as buf:
        rc, reply = do_sysctl(
            xch,
            sysctl.XEN_SYSCTL_getdomaininfolist,
            sysctl.xen_sysctl_getdomaininfolist,
            first_domain=first_domain,
            max_domains=max_domains,
            buffer=buf.addr,
            num_domains=0,
        )
    check(rc)
    return list((xc_domaininfo_t * reply.num_domains).from_buffer_copy(out))


@traced
def xc_domain_maximum_gpfn(xch: xc_interface, domid: domid_t) -> int:
    """The highest gfn the domain ever had mapped (XENMEM_maximum_gpfn; 0 for PV)."""
    return check(
        xc_memory_op(
            xch, memory.XENMEM_maximum_gpfn, memory.xen_memory_domain, domid=domid & 0xFFFF
        )
    )


@traced
def xc_domain_nr_gpfns(xch: xc_interface, domid: domid_t) -> int:
    """How many gfns the domain's physmap spans: maximum_gpfn + 1."""
    return xc_domain_maximum_gpfn(xch, domid) + 1


@traced
def xc_get_tot_pages(xch: xc_interface, domid: domid_t) -> int:
    return int(xc_domain_getinfo_single(xch, domid).tot_pages)


# -- NUMA node affinity ----------------------------------------------------------------------


def _nodemap_call(xch: xc_interface, cmd: int, domid: domid_t, nodemap: bytes) -> bytes:
    size = xc_get_nodemap_size(xch)
    local = bytearray(nodemap[:size].ljust(size, b"\0"))
    with Bounce(xch, local, size, "both") as buf:
        rc, _ = do_domctl(
            xch,
            cmd,
            domid,
            domctl.xen_domctl_nodeaffinity,
            nodemap=dict(bitmap=buf.addr, nr_bits=size * 8),
        )
    check(rc)
    return bytes(local)


@traced
def xc_domain_node_setaffinity(
    xch: xc_interface, domid: domid_t, nodemap: bytes | Sequence[int]
) -> None:
    """Pin memory allocation to the nodes set in ``nodemap`` (bit n = node n)."""
    _nodemap_call(xch, domctl.XEN_DOMCTL_setnodeaffinity, domid, bytes(nodemap))


@traced
def xc_domain_node_getaffinity(xch: xc_interface, domid: domid_t) -> bytes:
    return _nodemap_call(xch, domctl.XEN_DOMCTL_getnodeaffinity, domid, b"")


# -- claims ----------------------------------------------------------------------------------


@traced
def xc_domain_claim_pages(xch: xc_interface, domid: domid_t, nr_pages: unsigned_long) -> None:
    """Stake (or with 0 release) a legacy host-wide claim: a target total of pages."""
    check(
        xc_memory_op(
            xch,
            memory.XENMEM_claim_pages,
            memory.xen_memory_reservation,
            extent_start=0,
            nr_extents=nr_pages,
            extent_order=0,
            mem_flags=0,
            domid=domid & 0xFFFF,
        )
    )


@traced
def xc_domain_claim_memory(
    xch: xc_interface,
    domid: domid_t,
    mode: uint32_t,
    nr_entries: uint32_t,
    claim_set: Any = None,
) -> int:
    """Set or get a NUMA claim set (v7 of the claim-set series); returns ``nr_entries`` as
    Xen left it. SET takes a sequence of ``memory_claim_t``; GET fills a ctypes array (or a
    list) of capacity ``nr_entries``. A short GET raises ERANGE with ``.nr_entries`` needed."""
    user = claim_set
    if claim_set is not None and not isinstance(claim_set, ctypes.Array):
        claim_set = (xen_memory_claim_t * max(len(claim_set), 1))(*claim_set)
    if claim_set is not None and len(claim_set) < nr_entries:
        raise ValueError(f"expected a claim_set of at least {nr_entries}, got {len(claim_set)}")
    # The bounce is BOTH, but Xen's SET only reads the set (v7 claim_memory): nothing of it
    # comes back, so nothing is copied back.
    direction = "in" if mode == domctl.XEN_DOMCTL_CLAIM_MEMORY_SET else "both"
    rc, reply = do_domctl(
        xch,
        domctl.XEN_DOMCTL_claim_memory,
        domid,
        domctl.xen_domctl_claim_memory,
        tail=Tail("claim_set", claim_set, nr_entries * CLAIM_SIZE, direction),
        nr_entries=nr_entries,
        mode=mode,
    )
    returned = int(reply.payload.nr_entries)
    if direction == "both" and user is not claim_set and isinstance(user, MutableSequence):
        user[:nr_entries] = list(claim_set[:nr_entries])  # GET fills a list in place
    check(rc, nr_entries=returned)
    return returned


# -- reservations ----------------------------------------------------------------------------


@traced
def xc_domain_populate_physmap(
    xch: xc_interface,
    domid: domid_t,
    nr_extents: unsigned_long,
    extent_order: unsigned_int,
    mem_flags: unsigned_int,
    extent_start: Any,
) -> int:
    """Populate extents at the listed gfns; returns how many were done (never raises for a
    short count). PV guests get MFNs written back into ``extent_start``."""
    return check(
        reservation(
            xch,
            memory.XENMEM_populate_physmap,
            domid,
            nr_extents,
            extent_order,
            mem_flags,
            extent_start,
        )
    )


def _exact(done: int, nr_extents: unsigned_long, errno: int) -> None:
    if done != nr_extents:
        raise XenError(errno, trace.current_call(), f"{done} of {nr_extents} extents done")


@traced
def xc_domain_populate_physmap_exact(
    xch: xc_interface,
    domid: domid_t,
    nr_extents: unsigned_long,
    extent_order: unsigned_int,
    mem_flags: unsigned_int,
    extent_start: Any,
) -> None:
    """All extents or an error: a short count is EBUSY, as libxc reports it."""
    done = xc_domain_populate_physmap(xch, domid, nr_extents, extent_order, mem_flags, extent_start)
    _exact(done, nr_extents, EBUSY)


@traced
def xc_domain_increase_reservation(
    xch: xc_interface,
    domid: domid_t,
    nr_extents: unsigned_long,
    extent_order: unsigned_int,
    mem_flags: unsigned_int,
    extent_start: Any = None,
) -> int:
    return check(
        reservation(
            xch,
            memory.XENMEM_increase_reservation,
            domid,
            nr_extents,
            extent_order,
            mem_flags,
            extent_start,
        )
    )


@traced
def xc_domain_increase_reservation_exact(
    xch: xc_interface,
    domid: domid_t,
    nr_extents: unsigned_long,
    extent_order: unsigned_int,
    mem_flags: unsigned_int,
    extent_start: Any = None,
) -> None:
    """All extents or ENOMEM."""
    done = xc_domain_increase_reservation(
        xch, domid, nr_extents, extent_order, mem_flags, extent_start
    )
    _exact(done, nr_extents, ENOMEM)


@traced
def xc_domain_decrease_reservation(
    xch: xc_interface,
    domid: domid_t,
    nr_extents: unsigned_long,
    extent_order: unsigned_int,
    extent_start: Any,
) -> int:
    """Give back the listed extents; a NULL list is EINVAL without a hypercall."""
    if extent_start is None:
        raise XenError(EINVAL, trace.current_call(), "extent_start is NULL")
    return check(
        reservation(
            xch,
            memory.XENMEM_decrease_reservation,
            domid,
            nr_extents,
            extent_order,
            0,
            extent_start,
        )
    )


@traced
def xc_domain_decrease_reservation_exact(
    xch: xc_interface,
    domid: domid_t,
    nr_extents: unsigned_long,
    extent_order: unsigned_int,
    extent_start: Any,
) -> None:
    """All extents or EINVAL."""
    done = xc_domain_decrease_reservation(xch, domid, nr_extents, extent_order, extent_start)
    _exact(done, nr_extents, EINVAL)


def _pod_target(xch: xc_interface, op: int, domid: int, target_pages: int) -> tuple[int, int, int]:
    rc, out = memory_op_struct(
        xch,
        op,
        memory.xen_pod_target,
        target_pages=target_pages & ((1 << 64) - 1),
        tot_pages=0,
        pod_cache_pages=0,
        pod_entries=0,
        domid=domid & 0xFFFF,
    )
    check(rc)
    assert out is not None
    return int(out.tot_pages), int(out.pod_cache_pages), int(out.pod_entries)


@traced
def xc_domain_set_pod_target(
    xch: xc_interface, domid: domid_t, target_pages: int
) -> tuple[int, int, int]:
    """Set the populate-on-demand target; returns (tot_pages, pod_cache_pages, pod_entries)."""
    return _pod_target(xch, memory.XENMEM_set_pod_target, domid, target_pages)


@traced
def xc_domain_get_pod_target(xch: xc_interface, domid: domid_t) -> tuple[int, int, int]:
    """(tot_pages, pod_cache_pages, pod_entries) of an HVM guest; C passes a target of -1."""
    return _pod_target(xch, memory.XENMEM_get_pod_target, domid, -1)


# -- vNUMA ----------------------------------------------------------------------------------


def _c_array(ctype: Any, values: Any, count: int, what: str) -> Any:
    """A ctypes array of at least ``count`` items from a ctypes array or a sequence."""
    if not isinstance(values, ctypes.Array):
        values = (ctype * max(len(values), 1))(*values)
    if len(values) < count:
        raise ValueError(f"expected {what} of at least {count} items, got {len(values)}")
    return values


@traced
def xc_domain_setvnuma(
    xch: xc_interface,
    domid: domid_t,
    nr_vnodes: uint32_t,
    nr_vmemranges: uint32_t,
    nr_vcpus: uint32_t,
    vmemrange: Any,
    vdistance: Any,
    vcpu_to_vnode: Any,
    vnode_to_pnode: Any,
) -> None:
    """Give a domain its vNUMA topology (XEN_DOMCTL_setvnumainfo): ``vmemrange`` holds
    ``xen_vmemrange_t`` items, the others unsigned ints (distances row by row). A zero
    count or a missing array is EINVAL before any hypercall, as in libxc."""
    arrays = (vmemrange, vdistance, vcpu_to_vnode, vnode_to_pnode)
    if not (nr_vnodes and nr_vmemranges and nr_vcpus) or any(a is None for a in arrays):
        raise XenError(EINVAL, trace.current_call(), "no vNUMA topology to set")
    uint = ctypes.c_uint
    ranges = _c_array(xen_vmemrange_t, vmemrange, nr_vmemranges, "vmemrange")
    distances = _c_array(uint, vdistance, nr_vnodes * nr_vnodes, "vdistance")
    vcpus = _c_array(uint, vcpu_to_vnode, nr_vcpus, "vcpu_to_vnode")
    pnodes = _c_array(uint, vnode_to_pnode, nr_vnodes, "vnode_to_pnode")
    size = ctypes.sizeof(xen_vmemrange_t)
    with (
        Bounce(xch, ranges, size * nr_vmemranges, "both") as r,
        Bounce(xch, distances, 4 * nr_vnodes * nr_vnodes, "both") as dist,
        Bounce(xch, vcpus, 4 * nr_vcpus, "both") as v2v,
        Bounce(xch, pnodes, 4 * nr_vnodes, "both") as v2p,
    ):
        rc, _ = do_domctl(
            xch,
            domctl.XEN_DOMCTL_setvnumainfo,
            domid,
            domctl.xen_domctl_vnuma,
            nr_vnodes=nr_vnodes,
            nr_vmemranges=nr_vmemranges,
            nr_vcpus=nr_vcpus,
            pad=0,
            vdistance=dist.addr,
            vcpu_to_vnode=v2v.addr,
            vnode_to_pnode=v2p.addr,
            vmemrange=r.addr,
        )
    check(rc)


@traced
def xc_domain_getvnuma(
    xch: xc_interface,
    domid: domid_t,
    nr_vnodes: uint32_t,
    nr_vmemranges: uint32_t,
    nr_vcpus: uint32_t,
    vmemrange: Any,
    vdistance: Any,
    vcpu_to_vnode: Any,
) -> tuple[int, int, int]:
    """A domain's vNUMA topology (XENMEM_get_vnumainfo) into arrays with room for the
    given counts (ctypes arrays, filled in place); returns (nr_vnodes, nr_vmemranges,
    nr_vcpus) as Xen left them. Too little room is ENOBUFS, the error's ``.counts``
    saying what is needed; a domain without a topology is EOPNOTSUPP."""
    size = ctypes.sizeof(xen_vmemrange_t)
    with (
        Bounce(xch, vmemrange, size * nr_vmemranges, "out") as r,
        Bounce(xch, vdistance, 4 * nr_vnodes * nr_vnodes, "out") as dist,
        Bounce(xch, vcpu_to_vnode, 4 * nr_vcpus, "out") as v2v,
    ):
        rc, out = memory_op_struct(
            xch,
            memory.XENMEM_get_vnumainfo,
            memory.xen_vnuma_topology_info,
            domid=domid,
            pad=0,
            nr_vnodes=nr_vnodes,
            nr_vcpus=nr_vcpus,
            nr_vmemranges=nr_vmemranges,
            vdistance=dist.addr,
            vcpu_to_vnode=v2v.addr,
            vmemrange=r.addr,
        )
    assert out is not None
    counts = (int(out.nr_vnodes), int(out.nr_vmemranges), int(out.nr_vcpus))
    check(rc, counts=counts)
    return counts


# -- the paging pool -------------------------------------------------------------------------


@traced
def xc_shadow_control(
    xch: xc_interface,
    domid: domid_t,
    sop: unsigned_int,
    mb: int | None = None,
    mode: unsigned_int = 0,
) -> int | None:
    """XEN_DOMCTL_shadow_op; returns ``mb`` as Xen left it (the pool in MiB for GET and
    SET_ALLOCATION), or None when no ``mb`` was passed (C's NULL)."""
    rc, reply = do_domctl(
        xch,
        domctl.XEN_DOMCTL_shadow_op,
        domid,
        domctl.xen_domctl_shadow_op,
        op=sop,
        mode=mode,
        mb=(mb or 0) & 0xFFFFFFFF,
        dirty_bitmap=0,
        pages=0,
        stats=dict(fault_count=0, dirty_count=0),
    )
    check(rc)
    return None if mb is None else int(reply.payload.mb)


@traced
def xc_get_paging_mempool_size(xch: xc_interface, domid: domid_t) -> int:
    """The paging pool of an HVM/PVH guest, in bytes."""
    rc, reply = do_domctl(
        xch,
        domctl.XEN_DOMCTL_get_paging_mempool_size,
        domid,
        domctl.xen_domctl_paging_mempool,
        size=0,
    )
    check(rc)
    return int(reply.payload.size)


@traced
def xc_set_paging_mempool_size(xch: xc_interface, domid: domid_t, size: uint64_t) -> None:
    """Resize the paging pool to ``size`` bytes (whole pages), as libxl does from
    shadow_memkb."""
    check(
        do_domctl(
            xch,
            domctl.XEN_DOMCTL_set_paging_mempool_size,
            domid,
            domctl.xen_domctl_paging_mempool,
            size=size,
        )[0]
    )

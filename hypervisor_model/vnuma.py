"""A domain's virtual NUMA topology: XEN_DOMCTL_setvnumainfo (domctl.c vnuma_init),
XENMEM_get_vnumainfo (memory.c), XENMEMF_vnode in reservations (memory.c
construct_memop_from_reservation) and its block of the 'u' dump (numa.c dump_numa).

The topology lives in ``d.vnuma`` (:class:`VnumaInfo`): vnodes, their distances, each
vCPU's vnode, each vnode's physical node and the guest-physical ranges. It changes under
the domain's ``page_alloc_lock`` (standing in for Xen's ``vnuma_rwlock``).
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

from hypervisor_model.domain import Domain, VnumaInfo
from hypervisor_model.errors import XenError
from hypervisor_model.guest_memory import build, copy_struct_from_guest, parse, parse_array
from hypervisor_model.host import MAX_NUMNODES
from hypervisor_model.memflags import NUMA_NO_NODE, MEMF_exact_node, MEMF_node
from hypervisor_model.public import domctl as domctl_abi
from hypervisor_model.public import memory as abi
from hypervisor_model.public.errno import (
    E2BIG,
    EFAULT,
    EINVAL,
    ENOBUFS,
    EOPNOTSUPP,
    EPERM,
    ESRCH,
)
from hypervisor_model.public.xen import DOMID_SELF

if TYPE_CHECKING:
    from hypervisor_model.domctl import _Reply as Reply
    from hypervisor_model.hypervisor import Hypervisor

PAGE_SIZE = 4096
UINT = struct.Struct("<I")  # unsigned int in a guest array
VMEMRANGE_SIZE = abi.xen_vmemrange.sizeof()  # 24
MAX_VMEMRANGES = PAGE_SIZE // VMEMRANGE_SIZE  # 170: each array fits a page (XSA-77)


def _uints(hv: Hypervisor, addr: int, count: int) -> list[int]:
    """``count`` unsigned ints from the caller (copy_from_guest; GuestFault: EFAULT)."""
    raw = hv.caller_memory.copy_from_guest(addr, count * UINT.size)
    return [v for (v,) in UINT.iter_unpack(raw)]


# -- XEN_DOMCTL_setvnumainfo ------------------------------------------------------------------


def setvnumainfo(hv: Hypervisor, current: Domain, d: Domain, reply: Reply) -> int:
    """vnuma_init, then vnuma_replace. Checked in Xen's order: the vCPU count must be the
    domain's max_vcpus and the pad 0 (EINVAL); 1..32 vnodes, at most 170 ranges, so each
    array fits a page (EINVAL); the distances, ranges and vCPU map are read (EFAULT);
    every vCPU's vnode must exist (E2BIG); each vnode's pnode is read in turn (EFAULT)
    and must be below MAX_NUMNODES (E2BIG); the ranges' flags must be 0 (EINVAL). Only
    then does the new topology replace the old one."""
    u = parse(domctl_abi.xen_domctl_vnuma, reply.op.u)
    nr = u.nr_vnodes
    if u.nr_vcpus != d.max_vcpus or u.pad != 0:
        raise XenError(EINVAL, "vCPU count differs from max_vcpus, or pad set")
    if nr == 0 or nr > PAGE_SIZE // UINT.size // nr or u.nr_vmemranges > MAX_VMEMRANGES:
        raise XenError(EINVAL, "vNUMA arrays would exceed a page")  # vnuma_alloc
    vdistance = _uints(hv, u.vdistance, nr * nr)
    raw = hv.caller_memory.copy_from_guest(u.vmemrange, u.nr_vmemranges * VMEMRANGE_SIZE)
    ranges = parse_array(abi.xen_vmemrange, raw)
    vcpu_to_vnode = _uints(hv, u.vcpu_to_vnode, d.max_vcpus)
    if any(v >= nr for v in vcpu_to_vnode):
        raise XenError(E2BIG, "a vCPU on a vnode that does not exist")
    vnode_to_pnode = []
    for i in range(nr):
        (pnode,) = _uints(hv, u.vnode_to_pnode + i * UINT.size, 1)
        if pnode >= MAX_NUMNODES:
            raise XenError(E2BIG, f"vnode {i} on pnode {pnode}")
        vnode_to_pnode.append(pnode)
    if any(r.flags for r in ranges):
        raise XenError(EINVAL, "vmemrange flags must be 0")
    info = VnumaInfo(
        nr,
        vdistance,
        vcpu_to_vnode,
        vnode_to_pnode,
        [(r.start, r.end, r.flags, r.nid) for r in ranges],
    )
    with d.page_alloc_lock:
        d.vnuma = info
    return 0


# -- XENMEM_get_vnumainfo ---------------------------------------------------------------------


def get_vnumainfo(hv: Hypervisor, current: Domain, arg: int) -> int:
    """memory.c XENMEM_get_vnumainfo: the caller says how much room it has; too little and
    it gets the counts it needs (ENOBUFS). The ranges, distances and vCPU map are copied
    out in that order (EFAULT stops the copy), then the counts."""
    topology = copy_struct_from_guest(hv.caller_memory, arg, abi.xen_vnuma_topology_info)
    if topology.pad != 0:
        raise XenError(EINVAL, "pad must be 0")
    d = current if topology.domid == DOMID_SELF else hv.find_domain(topology.domid)
    if d is None:
        raise XenError(ESRCH)
    if not (d is current or hv.is_control_domain(current)):
        raise XenError(EPERM)  # xsm_get_vnumainfo(XSM_TARGET)
    with d.page_alloc_lock:
        info = d.vnuma
        max_vcpus = d.max_vcpus
    if info is None:
        raise XenError(EOPNOTSUPP, "the domain has no vNUMA topology")
    counts = dict(nr_vnodes=info.nr_vnodes, nr_vcpus=max_vcpus, nr_vmemranges=len(info.vmemrange))
    if any(getattr(topology, k) < v for k, v in counts.items()):
        for k, v in counts.items():
            setattr(topology, k, v)
        if not hv.caller_memory.try_copy_to_guest(
            arg, build(abi.xen_vnuma_topology_info, topology)
        ):
            raise XenError(EFAULT)
        raise XenError(ENOBUFS, "the caller's arrays are too small")
    ranges = b"".join(
        build(abi.xen_vmemrange, dict(start=s, end=e, flags=f, nid=n))
        for s, e, f, n in info.vmemrange
    )
    out = [
        (topology.vmemrange, ranges),
        (topology.vdistance, b"".join(UINT.pack(v) for v in info.vdistance)),
        (topology.vcpu_to_vnode, b"".join(UINT.pack(v) for v in info.vcpu_to_vnode)),
    ]
    for addr, data in out:
        if not hv.caller_memory.try_copy_to_guest(addr, data):
            raise XenError(EFAULT)
    for k, v in counts.items():
        setattr(topology, k, v)
    if not hv.caller_memory.try_copy_to_guest(arg, build(abi.xen_vnuma_topology_info, topology)):
        raise XenError(EFAULT)
    return 0


# -- reservations and the dump ----------------------------------------------------------------


def vnode_memflags(d: Domain, mem_flags: int) -> int:
    """construct_memop_from_reservation for XENMEMF_vnode: the node is one of the target
    domain's vnodes (EINVAL beyond them), allocated on its pnode (exactly with
    XENMEMF_exact_node_request); without a topology the node is ignored."""
    with d.page_alloc_lock:
        info = d.vnuma
        if info is None:
            return 0
        vnode = abi.XENMEMF_get_node(mem_flags)
        if vnode >= info.nr_vnodes:
            raise XenError(EINVAL, f"vnode {vnode} of {info.nr_vnodes}")
        pnode = info.vnode_to_pnode[vnode]
    if pnode == NUMA_NO_NODE:
        return 0
    exact = MEMF_exact_node if mem_flags & abi.XENMEMF_exact_node_request else 0
    return MEMF_node(pnode) | exact


def dump_lines(d: Domain) -> list[str]:
    """dump_numa's vNUMA block for one domain (none without a topology)."""
    with d.page_alloc_lock:
        info = d.vnuma
        max_vcpus = d.max_vcpus
    if info is None:
        return []
    lines = [f"     {info.nr_vnodes} vnodes, {max_vcpus} vcpus, guest physical layout:"]
    for i in range(info.nr_vnodes):
        pnode = info.vnode_to_pnode[i]
        where = "pnode ???," if pnode == NUMA_NO_NODE else f"pnode {pnode:3d},"
        text, first = "", None
        for j in range(max_vcpus):  # runs of this vnode's vCPUs: "0-3 5 "
            if info.vcpu_to_vnode[j] == i:
                if first is None:
                    text += f"{j}"
                    first = j
            elif first is not None:
                text += f"-{j - 1} " if j - 1 != first else " "
                first = None
        if first is not None and first != max_vcpus - 1:
            text += f"-{max_vcpus - 1}"
        lines.append(f"       {i:3d}: {where} vcpus {text}")
        lines.extend(
            f"           {start:016x} - {end:016x}"
            for start, end, _, nid in info.vmemrange
            if nid == i
        )
    return lines


def vnuma_problems(d: Domain) -> list[str]:
    """The topology's arrays agree with its counts and the domain (vnuma_init's checks)."""
    info = d.vnuma
    if info is None:
        return []
    nr, name = info.nr_vnodes, f"d{d.domain_id}: vNUMA"
    out = []
    if not 0 < nr <= PAGE_SIZE // UINT.size // nr or len(info.vmemrange) > MAX_VMEMRANGES:
        out.append(f"{name} sizes beyond a page")
    if len(info.vdistance) != nr * nr or len(info.vnode_to_pnode) != nr:
        out.append(f"{name} distances or pnodes not one per vnode")
    if len(info.vcpu_to_vnode) != d.max_vcpus or any(v >= nr for v in info.vcpu_to_vnode):
        out.append(f"{name} vCPU map does not fit the domain")
    if any(p >= MAX_NUMNODES for p in info.vnode_to_pnode):
        out.append(f"{name} pnode beyond MAX_NUMNODES")
    if any(flags for _, _, flags, _ in info.vmemrange):
        out.append(f"{name} range with flags")
    return out

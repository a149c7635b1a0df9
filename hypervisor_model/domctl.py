"""``__HYPERVISOR_domctl``: domain control for the toolstack (xen/common/domctl.c).

Order of checks as do_domctl: copy in (EFAULT), interface version (EACCES), domain lookup
(ESRCH for the control domain, EPERM for others), the XSM check (dummy policy: control
domain only), then the command under the global domctl lock.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from construct import Construct, Container

from hypervisor_model import claims
from hypervisor_model.domain import Domain, DOMDYING_alive, DOMDYING_dead, DOMDYING_dying
from hypervisor_model.domheap import relinquish_some
from hypervisor_model.errors import XenError
from hypervisor_model.guest_memory import GuestFault, build, copy_struct_from_guest, parse
from hypervisor_model.host import MAX_NUMNODES
from hypervisor_model.public import domctl as abi
from hypervisor_model.public.errno import (
    E2BIG,
    EACCES,
    EEXIST,
    EFAULT,
    EINVAL,
    ENOSYS,
    EOPNOTSUPP,
    EPERM,
    ERANGE,
    ESRCH,
)

if TYPE_CHECKING:
    from hypervisor_model.hypervisor import Hypervisor

MAX_CLAIM_ENTRIES = MAX_NUMNODES + 1  # one entry per node plus the host-wide one (v7)
RELINQUISH_BATCH = 64  # runs freed between continuation points of destroydomain
GRANT_VERSION_MASK = 0xF  # XEN_DOMCTL_GRANT_version_mask
KNOWN_CDF = (abi.XEN_DOMCTL_CDF_MAX << 1) - 1


def do_domctl(hv: Hypervisor, current: Domain, arg: int, *_: int) -> int:
    op = copy_struct_from_guest(hv.arena, arg, abi.xen_domctl)
    stable = op.cmd == abi.XEN_DOMCTL_get_domain_state
    if op.interface_version != (0 if stable else abi.XEN_DOMCTL_INTERFACE_VERSION):
        raise XenError(EACCES, "interface version mismatch")
    d = None
    if op.cmd != abi.XEN_DOMCTL_createdomain:
        d = hv.find_domain(op.domain)
        if d is None:
            raise XenError(ESRCH if hv.is_control_domain(current) else EPERM)
    reply = _Reply(hv, arg, op)
    if op.cmd == abi.XEN_DOMCTL_getdomaininfo:
        assert d is not None
        if not (hv.is_control_domain(current) or current.cdf_flags & abi.XEN_DOMCTL_CDF_xs_domain):
            raise XenError(EPERM)  # xsm_getdomaininfo(XSM_XS_PRIV)
        reply.payload(abi.xen_domctl_getdomaininfo, getdomaininfo(hv, d))
        return reply.send(0)
    if not hv.is_control_domain(current):
        raise XenError(EPERM)  # xsm_domctl(XSM_PRIV)
    with hv.domctl_lock:
        handler = _COMMANDS.get(op.cmd)
        if handler is None:
            raise XenError(ENOSYS)  # arch_do_domctl's default
        return handler(hv, current, d, reply)


class _Reply:
    """The domctl as it will be copied back (``copyback`` in do_domctl)."""

    def __init__(self, hv: Hypervisor, arg: int, op: Container) -> None:
        self.hv, self.arg, self.op = hv, arg, op
        self.copyback = False

    def payload(self, layout: Construct, obj: Mapping[str, object]) -> None:
        """Overwrite the start of the union; the rest keeps the caller's bytes, as in C."""
        new = build(layout, obj)
        self.op.u = new + self.op.u[len(new) :]
        self.copyback = True

    def send(self, rc: int) -> int:
        if self.copyback:
            try:
                self.hv.arena.copy_to_guest(self.arg, build(abi.xen_domctl, self.op))
            except GuestFault:
                return -EFAULT
        return rc


# -- createdomain / destroydomain / pause ------------------------------------------------


def _sanitise_domain_config(config: Container) -> None:
    """The createdomain checks that apply to this host (sanitise_domain_config and the x86
    arch checks): no IOMMU, vPMU, vmtrace, TBOOT or nested virtualisation here."""
    flags = config.flags
    if flags & ~KNOWN_CDF or config.grant_opts & ~GRANT_VERSION_MASK or config.max_vcpus < 1:
        raise XenError(EINVAL, "bad createdomain configuration")
    hvm = flags & abi.XEN_DOMCTL_CDF_hvm
    if flags & abi.XEN_DOMCTL_CDF_hap and not hvm:
        raise XenError(EINVAL, "HAP requested for a PV guest")
    unsupported = (
        abi.XEN_DOMCTL_CDF_iommu
        | abi.XEN_DOMCTL_CDF_vpmu
        | abi.XEN_DOMCTL_CDF_s3_integrity
        | abi.XEN_DOMCTL_CDF_nested_virt
    )
    if flags & unsupported or config.iommu_opts or config.vmtrace_size:
        raise XenError(EINVAL, "feature not available on this host")


def _createdomain(hv: Hypervisor, current: Domain, d: Domain | None, reply: _Reply) -> int:
    config = parse(abi.xen_domctl_createdomain, reply.op.u)
    domid = hv.domid_alloc(reply.op.domain)
    if domid is None:
        raise XenError(EEXIST, "domid taken or reserved")
    _sanitise_domain_config(config)
    new = Domain(
        domid,
        is_hvm=bool(config.flags & abi.XEN_DOMCTL_CDF_hvm),
        cdf_flags=config.flags,
        ssidref=config.ssidref,
        handle=bytes(config.handle),
        max_vcpus=config.max_vcpus,
        cpupool=config.cpupool_id,
    )
    hv.add_domain(new)
    reply.op.domain = domid
    reply.copyback = True
    return reply.send(0)


def _destroydomain(hv: Hypervisor, current: Domain, d: Domain, reply: _Reply) -> int:
    """domain_kill: release every claim at once, then give the memory back in batches,
    letting other hypercalls run in between (Xen's continuations)."""
    if d is current:
        raise XenError(EINVAL, "a domain cannot destroy itself")
    if d.is_dying == DOMDYING_alive:
        with d.page_alloc_lock:
            d.is_dying = DOMDYING_dying
            with hv.heap.lock:
                claims.release_all(hv.heap, d)
    if d.is_dying == DOMDYING_dying:
        while not relinquish_some(hv.heap, d, RELINQUISH_BATCH):
            hv.preempt_check()
        d.is_dying = DOMDYING_dead
        hv.remove_domain(d)
    return 0


def _pausedomain(hv: Hypervisor, current: Domain, d: Domain, reply: _Reply) -> int:
    if d is current:
        raise XenError(EINVAL, "a domain cannot pause itself")
    d.controller_pause_count += 1
    return 0


def _unpausedomain(hv: Hypervisor, current: Domain, d: Domain, reply: _Reply) -> int:
    """domain_unpause_by_systemcontroller: the first unpause to zero ends creation."""
    if d.controller_pause_count == 0:
        raise XenError(EINVAL, "domain is not paused by the controller")
    d.controller_pause_count -= 1
    if d.controller_pause_count == 0:
        d.creation_finished = True
    return 0


# -- information and limits --------------------------------------------------------------


def getdomaininfo(hv: Hypervisor, d: Domain) -> dict[str, object]:
    """The getdomaininfo record (getdomaininfo() in domctl.c)."""
    online = d.nr_vcpus if d.creation_finished else 0
    flags = abi.XEN_DOMINF_blocked if online else 0
    if d.domain_id == 0:
        flags = abi.XEN_DOMINF_running  # dom0 is running the toolstack
    flags |= abi.XEN_DOMINF_dying if d.is_dying == DOMDYING_dead else 0
    flags |= abi.XEN_DOMINF_paused if d.controller_pause_count > 0 else 0
    flags |= abi.XEN_DOMINF_xs_domain if d.cdf_flags & abi.XEN_DOMCTL_CDF_xs_domain else 0
    flags |= abi.XEN_DOMINF_hvm_guest if d.is_hvm else 0
    flags |= abi.XEN_DOMINF_hap if d.cdf_flags & abi.XEN_DOMCTL_CDF_hap else 0
    flags |= (d.shutdown_code << abi.XEN_DOMINF_shutdownshift) & 0xFFFFFFFF
    return dict(
        domain=d.domain_id,
        flags=flags,
        tot_pages=d.tot_pages,
        max_pages=d.max_pages,
        outstanding_pages=d.outstanding_pages,
        shr_pages=0,
        paged_pages=0,
        shared_info_frame=0,
        cpu_time=0,
        nr_online_vcpus=online,
        max_vcpu_id=d.nr_vcpus - 1 if d.nr_vcpus else abi.XEN_INVALID_MAX_VCPU_ID,
        ssidref=d.ssidref,
        handle=d.handle,
        cpupool=d.cpupool,
        gpaddr_bits=52 if d.is_hvm else 0,
        arch_config=dict(emulation_flags=0, misc_flags=0),
    )


def _max_mem(hv: Hypervisor, current: Domain, d: Domain, reply: _Reply) -> int:
    """Set max_pages from KiB, clamped to 32 bits, with no check against tot_pages."""
    max_memkb = parse(abi.xen_domctl_max_mem, reply.op.u).max_memkb
    with d.page_alloc_lock:
        d.max_pages = min(max_memkb >> 2, 0xFFFFFFFF)
    return 0


def _max_vcpus(hv: Hypervisor, current: Domain, d: Domain, reply: _Reply) -> int:
    """Create the vCPUs fixed at createdomain; any other count is EINVAL."""
    wanted = parse(abi.xen_domctl_max_vcpus, reply.op.u).max
    if d is current or wanted != d.max_vcpus:
        raise XenError(EINVAL, f"expected max_vcpus {d.max_vcpus}, got {wanted}")
    d.nr_vcpus = wanted
    return 0


# -- node affinity -----------------------------------------------------------------------

NODEMAP_BYTES = MAX_NUMNODES // 8


def _setnodeaffinity(hv: Hypervisor, current: Domain, d: Domain, reply: _Reply) -> int:
    """xenctl_bitmap_to_nodemask, then domain_set_node_affinity: a mask with no online node
    is EINVAL, a full mask means automatic affinity."""
    nodemap = parse(abi.xen_domctl_nodeaffinity, reply.op.u).nodemap
    nr_bits = nodemap.nr_bits
    guest_bytes = -(-nr_bits // 8)
    copy_bytes = min(guest_bytes, NODEMAP_BYTES)
    raw = bytearray(hv.arena.copy_from_guest(nodemap.bitmap, copy_bytes))
    if nr_bits & 7 and guest_bytes == copy_bytes:
        raw[-1] &= ~(0xFF << (nr_bits & 7)) & 0xFF
    mask = int.from_bytes(raw, "little")
    if not mask & hv.heap.online_mask:
        raise XenError(EINVAL, "node affinity without an online node")
    if mask == (1 << MAX_NUMNODES) - 1:
        d.auto_node_affinity = True
    else:
        d.auto_node_affinity = False
        d.node_affinity = mask
    return 0


def _getnodeaffinity(hv: Hypervisor, current: Domain, d: Domain, reply: _Reply) -> int:
    """bitmap_to_xenctl_bitmap. Quirk kept from Xen: when the caller's bitmap is shorter than
    Xen's, its last byte receives Xen's *last* byte, not the corresponding one."""
    nodemap = parse(abi.xen_domctl_nodeaffinity, reply.op.u).nodemap
    xen = d.node_affinity.to_bytes(NODEMAP_BYTES, "little")
    guest_bytes = -(-nodemap.nr_bits // 8)
    copy_bytes = min(guest_bytes, NODEMAP_BYTES)
    out = bytearray(guest_bytes)
    if copy_bytes:
        out[: copy_bytes - 1] = xen[: copy_bytes - 1]
        out[copy_bytes - 1] = xen[-1]
    hv.arena.copy_to_guest(nodemap.bitmap, bytes(out))
    return 0


# -- claim sets (v7) ----------------------------------------------------------------------


def _claim_memory(hv: Hypervisor, current: Domain, d: Domain, reply: _Reply) -> int:
    """v7 claim_memory(): SET installs a claim set, GET reads it back. ``nr_entries`` is
    copied back only on GET once its buffer exists (success, ERANGE or EFAULT)."""
    req = parse(abi.xen_domctl_claim_memory, reply.op.u)
    nr = req.nr_entries
    if req.mode == abi.XEN_DOMCTL_CLAIM_MEMORY_SET:
        if nr == 0:
            raise XenError(EINVAL, "empty claim set")
        if nr > MAX_CLAIM_ENTRIES:
            raise XenError(E2BIG, f"expected at most {MAX_CLAIM_ENTRIES} entries, got {nr}")
    elif req.mode == abi.XEN_DOMCTL_CLAIM_MEMORY_GET:
        nr = min(nr, MAX_CLAIM_ENTRIES)
    else:
        raise XenError(EOPNOTSUPP, f"unknown claim mode {req.mode}")
    if d.is_dying:
        raise XenError(ESRCH, "domain is dying")
    size = abi.xen_memory_claim.sizeof()
    if req.mode == abi.XEN_DOMCTL_CLAIM_MEMORY_SET:
        raw = hv.arena.copy_from_guest(req.claim_set, nr * size)
        entries = [
            (e.pages, e.target, e.cmd)
            for e in (
                parse(abi.xen_memory_claim, raw[i : i + size]) for i in range(0, len(raw), size)
            )
        ]
        with d.page_alloc_lock, hv.heap.lock:
            claims.set_claim_entries(hv.heap, d, entries)
        return 0
    with hv.heap.lock:
        current_set = claims.get_claim_entries(hv.heap, d)
    needed = len(current_set)
    reply.payload(abi.xen_domctl_claim_memory, dict(req, nr_entries=needed))
    if needed > nr:
        return reply.send(-ERANGE)
    out = b"".join(
        build(abi.xen_memory_claim, dict(pages=pages, target=target, cmd=0))
        for target, pages in current_set
    )
    try:
        hv.arena.copy_to_guest(req.claim_set, out)
    except GuestFault:
        return reply.send(-EFAULT)
    return reply.send(0)


_COMMANDS = {
    abi.XEN_DOMCTL_createdomain: _createdomain,
    abi.XEN_DOMCTL_destroydomain: _destroydomain,
    abi.XEN_DOMCTL_pausedomain: _pausedomain,
    abi.XEN_DOMCTL_unpausedomain: _unpausedomain,
    abi.XEN_DOMCTL_max_mem: _max_mem,
    abi.XEN_DOMCTL_max_vcpus: _max_vcpus,
    abi.XEN_DOMCTL_setnodeaffinity: _setnodeaffinity,
    abi.XEN_DOMCTL_getnodeaffinity: _getnodeaffinity,
    abi.XEN_DOMCTL_claim_memory: _claim_memory,
}

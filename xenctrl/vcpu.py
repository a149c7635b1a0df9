"""vCPU calls of libxenctrl (tools/libs/ctrl/xc_domain.c): load a vCPU's context (PV or,
for HVM guests, a stream of HVM save records), read a vCPU's state.

Contexts travel as the bytes of their public layouts (``hypervisor_model.public.arch_x86``
and ``hvm_save``): build one with :func:`hypervisor_model.guest_memory.build`.
"""

from __future__ import annotations

import ctypes

from hypervisor_model.guest_memory import sizeof
from hypervisor_model.public import arch_x86, domctl
from xenctrl.cints import domid_t, int32_t, uint32_t, xenctrl_call
from xenctrl.handle import Bounce, Buffer, check, do_domctl, xc_interface
from xenctrl.misc import xc_get_cpumap_size
from xenctrl.types import xc_vcpuinfo_t

traced = xenctrl_call  # traced as libxenctrl, its C integers converted

# vcpu_guest_context_any_t: the union of the 64-bit and 32-bit contexts, bounced whole.
VCPU_GUEST_CONTEXT_ANY = max(
    sizeof(arch_x86.vcpu_guest_context), sizeof(arch_x86.compat_vcpu_guest_context)
)


@traced
def xc_vcpu_setcontext(
    xch: xc_interface, domid: domid_t, vcpu: uint32_t, ctxt: Buffer | None
) -> None:
    """Load vCPU ``vcpu``'s context (64-bit layout, or the 32-bit one for a 32-bit PV
    guest); it comes up if the context's flags hold VGCF_online. ``None`` resets it (down)."""
    local = None
    if ctxt is not None:
        raw = bytes(memoryview(ctxt).cast("B"))  # type: ignore[arg-type]
        if len(raw) > VCPU_GUEST_CONTEXT_ANY:
            raise ValueError(f"expected a context of at most {VCPU_GUEST_CONTEXT_ANY} bytes")
        local = bytearray(raw.ljust(VCPU_GUEST_CONTEXT_ANY, b"\0"))
    with Bounce(xch, local, VCPU_GUEST_CONTEXT_ANY, "in") as buf:
        rc, _ = do_domctl(
            xch,
            domctl.XEN_DOMCTL_setvcpucontext,
            domid,
            domctl.xen_domctl_vcpucontext,
            vcpu=vcpu,
            ctxt=buf.addr,
        )
    check(rc)


@traced
def xc_vcpu_getinfo(xch: xc_interface, domid: domid_t, vcpu: uint32_t) -> xc_vcpuinfo_t:
    """Whether the vCPU is online, blocked or running, its CPU time and CPU."""
    rc, reply = do_domctl(
        xch,
        domctl.XEN_DOMCTL_getvcpuinfo,
        domid,
        domctl.xen_domctl_getvcpuinfo,
        vcpu=vcpu,
        online=0,
        blocked=0,
        running=0,
        cpu_time=0,
        cpu=0,
    )
    check(rc)
    size = ctypes.sizeof(xc_vcpuinfo_t)
    return xc_vcpuinfo_t.from_buffer_copy(bytes(reply.u[:size]))


@traced
def xc_vcpu_getaffinity(
    xch: xc_interface, domid: domid_t, vcpu: uint32_t, flags: uint32_t
) -> tuple[bytes | None, bytes | None]:
    """The CPUs a vCPU may run on (hard) and prefers (soft), as xc_cpumap_t bytes, for
    the maps ``flags`` asks for (XEN_VCPUAFFINITY_HARD / _SOFT); None for the others."""
    size = xc_get_cpumap_size(xch)
    hard = bytearray(size) if flags & domctl.XEN_VCPUAFFINITY_HARD else None
    soft = bytearray(size) if flags & domctl.XEN_VCPUAFFINITY_SOFT else None
    _vcpu_affinity(xch, domctl.XEN_DOMCTL_getvcpuaffinity, domid, vcpu, flags, hard, soft, "out")
    return (None if hard is None else bytes(hard)), (None if soft is None else bytes(soft))


@traced
def xc_vcpu_setaffinity(
    xch: xc_interface,
    domid: domid_t,
    vcpu: int32_t,
    cpumap_hard_inout: bytearray | None,
    cpumap_soft_inout: bytearray | None,
    flags: uint32_t,
) -> None:
    """Set the CPUs a vCPU may run on (hard) and prefers (soft), for the maps ``flags``
    asks for; as in C, each map given is xc_get_cpumap_size bytes, sent and overwritten
    with what the scheduler uses (hard within the pool; soft within the pool and hard)."""
    size = xc_get_cpumap_size(xch)
    for cpumap in (cpumap_hard_inout, cpumap_soft_inout):
        if cpumap is not None and len(cpumap) < size:
            raise ValueError(f"expected a cpumap of {size} bytes, got {len(cpumap)}")
    hard, soft = cpumap_hard_inout, cpumap_soft_inout
    _vcpu_affinity(xch, domctl.XEN_DOMCTL_setvcpuaffinity, domid, vcpu, flags, hard, soft, "both")


def _vcpu_affinity(
    xch: xc_interface,
    cmd: int,
    domid: int,
    vcpu: int,
    flags: int,
    hard: bytearray | None,
    soft: bytearray | None,
    direction: str,
) -> None:
    """XEN_DOMCTL_{get,set}vcpuaffinity, the two cpumaps (None: a NULL handle) bounced
    ``direction`` at xc_get_cpumap_size bytes each."""
    size = xc_get_cpumap_size(xch)
    with Bounce(xch, hard, size, direction) as h, Bounce(xch, soft, size, direction) as s:
        rc, _ = do_domctl(
            xch,
            cmd,
            domid,
            domctl.xen_domctl_vcpuaffinity,
            vcpu=vcpu,
            flags=flags,
            cpumap_hard=dict(bitmap=h.addr, nr_bits=size * 8),
            cpumap_soft=dict(bitmap=s.addr, nr_bits=size * 8),
        )
    check(rc)


@traced
def xc_domain_hvm_getcontext(xch: xc_interface, domid: domid_t, ctxt_buf: Buffer | None) -> int:
    """Fill ``ctxt_buf`` with the domain's HVM save records; returns the bytes written, or
    with ``None`` the size a buffer needs. A buffer too small is ENOSPC."""
    size = 0 if ctxt_buf is None else len(memoryview(ctxt_buf).cast("B"))  # type: ignore[arg-type]
    with Bounce(xch, ctxt_buf, size, "out") as buf:
        rc, reply = do_domctl(
            xch,
            domctl.XEN_DOMCTL_gethvmcontext,
            domid,
            domctl.xen_domctl_hvmcontext,
            size=size,
            buffer=buf.addr,
        )
    check(rc)
    return int(reply.payload.size)


@traced
def xc_domain_hvm_setcontext(xch: xc_interface, domid: domid_t, hvm_ctxt: Buffer) -> None:
    """Load HVM save records: every vCPU goes down, those with a CPU record come up."""
    raw = bytearray(memoryview(hvm_ctxt).cast("B"))  # type: ignore[arg-type]
    with Bounce(xch, raw, len(raw), "in") as buf:
        rc, _ = do_domctl(
            xch,
            domctl.XEN_DOMCTL_sethvmcontext,
            domid,
            domctl.xen_domctl_hvmcontext,
            size=len(raw),
            buffer=buf.addr,
        )
    check(rc)

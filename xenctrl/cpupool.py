"""CPU pool calls of libxenctrl (tools/libs/ctrl/xc_cpupool.c): what ``xl cpupool-list``
reads, and the calls that would change the pools.

CPU maps are ``xc_cpumap_t`` bytes, bit n = CPU n, of xc_get_cpumap_size bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypervisor_model.public import sysctl
from xenctrl.cints import domid_t, int32_t, uint32_t, xenctrl_call
from xenctrl.handle import Bounce, check, do_sysctl, xc_interface
from xenctrl.misc import xc_get_cpumap_size

traced = xenctrl_call  # traced as libxenctrl, its C integers converted
XC_CPUPOOL_POOLID_ANY = 0xFFFFFFFF


@dataclass(frozen=True)
class xc_cpupoolinfo_t:
    """One CPU pool: its id, scheduler (XEN_SCHEDULER_*), domains and CPUs."""

    cpupool_id: int
    sched_id: int
    n_dom: int
    cpumap: bytes


def _pool_op(
    xch: xc_interface, op: int, *, cpumap: bytearray | None = None, **fields: int
) -> dict[str, int]:
    """One XEN_SYSCTL_cpupool_op, the map (if any) bounced out; the fields Xen wrote."""
    size = 0 if cpumap is None else len(cpumap)
    with Bounce(xch, cpumap, size, "out") as buf:
        values = dict(op=op, cpupool_id=0, sched_id=0, domid=0, cpu=0, n_dom=0) | fields
        rc, reply = do_sysctl(
            xch,
            sysctl.XEN_SYSCTL_cpupool_op,
            sysctl.xen_sysctl_cpupool_op,
            cpumap=dict(bitmap=buf.addr, nr_bits=size * 8),
            **values,
        )
    check(rc)
    return dict(cpupool_id=reply.cpupool_id, sched_id=reply.sched_id, n_dom=reply.n_dom)


@traced
def xc_cpupool_getinfo(xch: xc_interface, poolid: uint32_t) -> xc_cpupoolinfo_t:
    """The first pool whose id is ``poolid`` or above (ENOENT past the last): libxl lists
    the pools by asking again from the id after each one returned."""
    cpumap = bytearray(xc_get_cpumap_size(xch))
    got = _pool_op(xch, sysctl.XEN_SYSCTL_CPUPOOL_OP_INFO, cpupool_id=poolid, cpumap=cpumap)
    return xc_cpupoolinfo_t(got["cpupool_id"], got["sched_id"], got["n_dom"], bytes(cpumap))


@traced
def xc_cpupool_freeinfo(xch: xc_interface) -> bytes:
    """The CPUs in no pool."""
    cpumap = bytearray(xc_get_cpumap_size(xch))
    _pool_op(xch, sysctl.XEN_SYSCTL_CPUPOOL_OP_FREEINFO, cpumap=cpumap)
    return bytes(cpumap)


@traced
def xc_cpupool_create(xch: xc_interface, poolid: uint32_t, sched_id: uint32_t) -> int:
    """Make a pool (XC_CPUPOOL_POOLID_ANY: Xen picks the id); returns its id."""
    got = _pool_op(xch, sysctl.XEN_SYSCTL_CPUPOOL_OP_CREATE, cpupool_id=poolid, sched_id=sched_id)
    return got["cpupool_id"]


@traced
def xc_cpupool_destroy(xch: xc_interface, poolid: uint32_t) -> None:
    _pool_op(xch, sysctl.XEN_SYSCTL_CPUPOOL_OP_DESTROY, cpupool_id=poolid)


@traced
def xc_cpupool_addcpu(xch: xc_interface, poolid: uint32_t, cpu: int32_t) -> None:
    """Add a free CPU (a negative ``cpu``: any free one)."""
    cpu = sysctl.XEN_SYSCTL_CPUPOOL_PAR_ANY if cpu < 0 else cpu
    _pool_op(xch, sysctl.XEN_SYSCTL_CPUPOOL_OP_ADDCPU, cpupool_id=poolid, cpu=cpu)


@traced
def xc_cpupool_removecpu(xch: xc_interface, poolid: uint32_t, cpu: int32_t) -> None:
    """Take a CPU out of a pool (a negative ``cpu``: its last one)."""
    cpu = sysctl.XEN_SYSCTL_CPUPOOL_PAR_ANY if cpu < 0 else cpu
    _pool_op(xch, sysctl.XEN_SYSCTL_CPUPOOL_OP_RMCPU, cpupool_id=poolid, cpu=cpu)


@traced
def xc_cpupool_movedomain(xch: xc_interface, poolid: uint32_t, domid: domid_t) -> None:
    _pool_op(xch, sysctl.XEN_SYSCTL_CPUPOOL_OP_MOVEDOMAIN, cpupool_id=poolid, domid=domid)

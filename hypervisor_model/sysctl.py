"""``__HYPERVISOR_sysctl``: host-wide information and control (xen/common/sysctl.c).

Copy in (EFAULT), interface version (EACCES), the XSM check (control domain only), then
the command under the sysctl lock; the struct is copied back only on success.
"""

from __future__ import annotations

from array import array
from collections.abc import Mapping
from typing import TYPE_CHECKING

from construct import Construct

from hypervisor_model.bitmap import bitmap_to_xenctl_bitmap
from hypervisor_model.codec import Record, codec
from hypervisor_model.console import handle_keypress
from hypervisor_model.domain import Domain
from hypervisor_model.errors import XenError
from hypervisor_model.guest_memory import GuestFault, build, copy_struct_from_guest, parse, sizeof
from hypervisor_model.heap import NR_ZONES, bits_to_zone
from hypervisor_model.host import MAX_NUMNODES
from hypervisor_model.memflags import NUMA_NO_DISTANCE
from hypervisor_model.public import domctl as domctl_abi
from hypervisor_model.public import physdev
from hypervisor_model.public import sysctl as abi
from hypervisor_model.public.errno import (
    EACCES,
    EBUSY,
    EEXIST,
    EFAULT,
    EINVAL,
    ENODEV,
    ENOENT,
    ENOMEM,
    ENOSYS,
    EOPNOTSUPP,
    EPERM,
    ESRCH,
)

if TYPE_CHECKING:
    from hypervisor_model.hypervisor import Hypervisor

# The model's xmalloc limit for page_offline_op's status array (Xen's depends on its heap).
MAX_OFFLINE_STATUS_BYTES = 64 << 20
PREEMPT_EVERY = 64  # pcitopoinfo devices between continuation points


def do_sysctl(hv: Hypervisor, current: Domain, arg: int, *_: int) -> int:
    op = copy_struct_from_guest(hv.caller_memory, arg, abi.xen_sysctl)
    if op.interface_version != hv.release.sysctl_interface_version:
        raise XenError(EACCES, "interface version mismatch")
    if not hv.is_control_domain(current):
        raise XenError(EPERM)  # xsm_sysctl(XSM_PRIV)
    handler = _COMMANDS.get(op.cmd)
    with hv.sysctl_lock:
        if handler is None:
            raise XenError(ENOSYS)  # arch_do_sysctl's default
        union = handler(hv, op)
    if union is not None:  # copied back on success, except for page_offline_op
        op.u = union
        try:
            hv.caller_memory.copy_to_guest(arg, build(abi.xen_sysctl, op))
        except GuestFault:
            raise XenError(EFAULT) from None
    return 0


def _reply(op: Record, layout: Construct, obj: Mapping[str, object]) -> bytes:
    """The union with the payload written over its start; the rest keeps the caller's bytes."""
    new = build(layout, obj)
    return bytes(new + op.u[len(new) :])


Payload = bytes | None


def _physinfo(hv: Hypervisor, op: Record) -> Payload:
    heap = hv.heap
    with heap.lock:  # free and outstanding are read together (get_outstanding_claims)
        free_pages = heap.avail_heap_pages(1, NR_ZONES - 1, -1)
        outstanding = heap.outstanding_claims
    cores = hv.host.nodes[0].cpus if hv.host.nodes[0].online else hv.nr_cpus
    return _reply(
        op,
        abi.xen_sysctl_physinfo,
        dict(
            threads_per_core=1,
            cores_per_socket=max(cores, 1),
            nr_cpus=hv.nr_cpus,
            max_cpu_id=hv.nr_cpus - 1,
            nr_nodes=heap.online_mask.bit_count(),
            max_node_id=MAX_NUMNODES - 1,
            cpu_khz=hv.host.cpu_khz,
            capabilities=abi.XEN_SYSCTL_PHYSCAP_hvm
            | abi.XEN_SYSCTL_PHYSCAP_pv
            | abi.XEN_SYSCTL_PHYSCAP_hap
            | abi.XEN_SYSCTL_PHYSCAP_shadow
            | abi.XEN_SYSCTL_PHYSCAP_gnttab_v1
            | abi.XEN_SYSCTL_PHYSCAP_gnttab_v2,
            arch_capabilities=0,
            pad=0,
            total_pages=heap.total_pages,
            free_pages=free_pages,
            scrub_pages=0,
            outstanding_pages=outstanding,
            # get_upper_mfn_bound(): below 2^32 frames without CONFIG_BIGMEM
            max_mfn=min(heap.max_page, 1 << 32) - 1,
            hw_cap=[0] * 8,
        ),
    )


def _numainfo(hv: Hypervisor, op: Record) -> Payload:
    """Per-node memory and distances. The row count is the highest online node + 1; when
    the caller's buffer is smaller, Xen writes fewer rows and reports that count."""
    ni = parse(abi.xen_sysctl_numainfo, op.u)
    heap = hv.heap
    count = heap.online_mask.bit_length()
    if ni.meminfo or ni.distance:
        count = min(count, ni.num_nodes)
        for i in range(count):
            online = heap.online_mask >> i & 1
            if ni.meminfo:
                if online:
                    _, spanned = hv.host.nodes[i].spanned
                    row = dict(memsize=spanned << 12, memfree=heap.avail_node_heap_pages(i) << 12)
                else:
                    row = dict(memsize=abi.XEN_INVALID_MEM_SZ, memfree=abi.XEN_INVALID_MEM_SZ)
                hv.caller_memory.copy_to_guest(
                    ni.meminfo + i * sizeof(abi.xen_sysctl_meminfo),
                    build(abi.xen_sysctl_meminfo, row),
                )
            if ni.distance:
                distances = [hv.host.distance(i, j) for j in range(count)]
                raw = b"".join(
                    (abi.XEN_INVALID_NODE_DIST if d == NUMA_NO_DISTANCE or d <= 9 else d).to_bytes(
                        4, "little"
                    )
                    for d in distances
                )
                hv.caller_memory.copy_to_guest(ni.distance + i * count * 4, raw)
    return _reply(op, abi.xen_sysctl_numainfo, dict(ni, num_nodes=count))


def _getdomaininfolist(hv: Hypervisor, op: Record) -> Payload:
    """Records of the domains from ``first_domain`` on, up to ``max_domains``, copied one
    after another; at a record that cannot be written the call fails (EFAULT), the records
    before it written. Each domain's values are packed straight into one buffer."""
    from hypervisor_model.domctl import getdomaininfo  # with the domctls, when first needed

    req = parse(abi.xen_sysctl_getdomaininfolist, op.u)
    info = codec(domctl_abi.xen_domctl_getdomaininfo)
    size, pack_into = info.size, info.pack_into
    first = req.first_domain
    domains = [d for d in hv.domain_list() if d.domain_id >= first][: req.max_domains]
    records = bytearray(len(domains) * size)
    for at, d in zip(range(0, len(records), size), domains, strict=True):
        pack_into(records, at, *getdomaininfo(hv, d))
    memory = hv.caller_memory
    if not memory.try_copy_to_guest(req.buffer, records):  # all at once, or ...
        for at in range(0, len(records), size):  # ... as far as they go
            memory.copy_to_guest(req.buffer + at, records[at : at + size])
    return _reply(op, abi.xen_sysctl_getdomaininfolist, dict(req, num_domains=len(domains)))


def _signed32(value: int) -> int:
    return value - (1 << 32) if value & 1 << 31 else value


def _availheap(hv: Hypervisor, op: Record) -> Payload:
    """Free bytes in a zone range of a node, or of all nodes for node -1. Claims are not
    subtracted (avail_domheap_pages_region, with its signed clamping of the zones)."""
    req = parse(abi.xen_sysctl_availheap, op.u)
    lo = bits_to_zone(req.min_bitwidth) if req.min_bitwidth else 1
    hi = bits_to_zone(req.max_bitwidth) if req.max_bitwidth else NR_ZONES - 1
    lo = max(1, min(NR_ZONES - 1, _signed32(lo & 0xFFFFFFFF)))
    hi = max(1, min(NR_ZONES - 1, _signed32(hi & 0xFFFFFFFF)))
    with hv.heap.lock:
        pages = hv.heap.avail_heap_pages(lo, hi, req.node)
    return _reply(op, abi.xen_sysctl_availheap, dict(req, avail_bytes=pages << 12))


def _page_offline_op(hv: Hypervisor, op: Record) -> Payload:
    """Offline, online or query each MFN in ``[start, end]``, stopping at the first error;
    the whole status array is copied out, unvisited entries reading 0x01010101."""
    req = parse(abi.xen_sysctl_page_offline_op, op.u)
    if req.end < req.start:
        raise XenError(EINVAL, "end before start")
    count = req.end - req.start + 1
    if count * 4 > MAX_OFFLINE_STATUS_BYTES:
        raise XenError(ENOMEM, "status array too large")
    from hypervisor_model import offline

    action = offline.ACTIONS.get(req.cmd)
    status = array("I", [abi.PG_OFFLINE_INVALID * 0x01010101]) * count  # memset to 1s
    rc = -EINVAL if action is None else action(hv, req.start, status)
    hv.caller_memory.copy_to_guest(req.status, status.tobytes())
    if rc:
        raise XenError(-rc)
    return None


def _readconsole(hv: Hypervisor, op: Record) -> Payload:
    """read_console_ring: copy the ring out piece by piece (EFAULT at the first piece that
    cannot be written, the ring untouched), then clear it only if the caller asked."""
    req = parse(abi.xen_sysctl_readconsole, op.u)
    pieces, index, producer = hv.console.read(
        req.count, incremental=bool(req.incremental), index=req.index
    )
    sofar = 0
    for piece in pieces:
        hv.caller_memory.copy_to_guest(req.buffer + sofar, piece)
        sofar += len(piece)
    if req.clear:
        hv.console.consume(index, producer)
    return _reply(op, abi.xen_sysctl_readconsole, dict(req, count=sofar, index=index & 0xFFFFFFFF))


def _debug_keys(hv: Hypervisor, op: Record) -> Payload:
    """Press each key in turn; a key that cannot be read is EFAULT (no copy-back)."""
    req = parse(abi.xen_sysctl_debug_keys, op.u)
    for i in range(req.nr_keys):
        key = hv.caller_memory.copy_from_guest(req.keys + i, 1)
        handle_keypress(hv, key.decode("latin-1"))
    return None


def _sched_id(hv: Hypervisor, op: Record) -> Payload:
    """The scheduler of cpupool 0: credit2, Xen's default since 4.12."""
    return _reply(op, abi.xen_sysctl_sched_id, dict(sched_id=abi.XEN_SCHEDULER_CREDIT2))


def _cputopoinfo(hv: Hypervisor, op: Record) -> Payload:
    """Core, socket and node of each CPU; the model has one socket per node and one
    thread per core. A NULL buffer asks for the count (last present CPU + 1)."""
    req = parse(abi.xen_sysctl_cputopoinfo, op.u)
    topology = [
        (core, node, node)
        for node, cfg in enumerate(hv.host.nodes)
        if cfg.online
        for core in range(cfg.cpus)
    ]
    count = len(topology)
    if req.cputopo:
        count = min(count, req.num_cpus)
        raw = b"".join(
            build(abi.xen_sysctl_cputopo, dict(core=c, socket=s, node=n))
            for c, s, n in topology[:count]
        )
        hv.caller_memory.copy_to_guest(req.cputopo, raw)
    return _reply(op, abi.xen_sysctl_cputopoinfo, dict(req, num_cpus=count))


# -- CPU pools (sched/cpupool.c cpupool_do_sysctl) ------------------------------------------

POOL0 = 0  # Pool-0: every CPU and every domain; the model has no other pool


def _cpupool_op(hv: Hypervisor, op: Record) -> Payload:
    """INFO and FREEINFO report Pool-0 and the (no) free CPUs; the other sub-ops answer
    what Xen answers for a request the one pool decides. Making a second pool or taking a
    CPU out of Pool-0 would change the topology, which the model keeps fixed (EOPNOTSUPP)."""
    req = parse(abi.xen_sysctl_cpupool_op, op.u)
    handler = _CPUPOOL_OPS.get(req.op)
    if handler is None:
        raise XenError(ENOSYS, f"unknown cpupool op {req.op}")
    changes = handler(hv, req)
    return _reply(op, abi.xen_sysctl_cpupool_op, dict(req, **changes))


def _cpumap_out(hv: Hypervisor, req: Record, cpus: int) -> None:
    """cpumask_to_xenctl_bitmap over nr_cpu_ids bits."""
    quirk = hv.release.bitmap_last_byte_quirk
    bitmap_to_xenctl_bitmap(hv.caller_memory, req.cpumap, cpus, hv.nr_cpus, last_byte_quirk=quirk)


def _pool_info(hv: Hypervisor, req: Record) -> dict[str, int]:
    """cpupool_get_next_by_id: the first pool with an id from ``cpupool_id`` on."""
    if req.cpupool_id > POOL0:
        raise XenError(ENOENT, f"no cpupool from id {req.cpupool_id}")
    domains = sum(d.cpupool == POOL0 for d in hv.domain_list())
    _cpumap_out(hv, req, (1 << hv.nr_cpus) - 1)
    return dict(cpupool_id=POOL0, sched_id=abi.XEN_SCHEDULER_CREDIT2, n_dom=domains)


def _pool_freeinfo(hv: Hypervisor, req: Record) -> dict[str, int]:
    _cpumap_out(hv, req, 0)  # every CPU is in Pool-0
    return {}


def _pool_create(hv: Hypervisor, req: Record) -> dict[str, int]:
    if req.cpupool_id == POOL0:
        raise XenError(EEXIST, "Pool-0 exists")
    raise XenError(EOPNOTSUPP, "the model keeps a single cpupool")


def _pool_destroy(hv: Hypervisor, req: Record) -> dict[str, int]:
    if req.cpupool_id != POOL0:
        raise XenError(ENOENT, f"no cpupool {req.cpupool_id}")
    raise XenError(EBUSY, "Pool-0 has domains and CPUs")  # cpupool_destroy


def _pool_addcpu(hv: Hypervisor, req: Record) -> dict[str, int]:
    """No CPU is free to add: ENODEV, once the pool and the CPU number are checked."""
    if req.cpupool_id != POOL0:
        raise XenError(ENOENT, f"no cpupool {req.cpupool_id}")
    if req.cpu != abi.XEN_SYSCTL_CPUPOOL_PAR_ANY and req.cpu >= hv.nr_cpus:
        raise XenError(EINVAL, f"no CPU {req.cpu}")
    raise XenError(ENODEV, "no free CPU")


def _pool_rmcpu(hv: Hypervisor, req: Record) -> dict[str, int]:
    """cpupool_unassign_cpu: CPU 0 stays in Pool-0 (EINVAL)."""
    if req.cpupool_id != POOL0:
        raise XenError(ENOENT, f"no cpupool {req.cpupool_id}")
    cpu = hv.nr_cpus - 1 if req.cpu == abi.XEN_SYSCTL_CPUPOOL_PAR_ANY else req.cpu
    if cpu >= hv.nr_cpus or cpu == 0:
        raise XenError(EINVAL, f"CPU {cpu} cannot leave Pool-0")
    raise XenError(EOPNOTSUPP, "the model keeps every CPU in Pool-0")


def _pool_movedomain(hv: Hypervisor, req: Record) -> dict[str, int]:
    """rcu_lock_remote_domain_by_id, then a move to the pool the domain is in is done."""
    d = hv.find_domain(req.domid & 0xFFFF)  # taken as a domid_t
    if d is None:
        raise XenError(ESRCH, f"no domain {req.domid}")
    if hv.is_control_domain(d):
        raise XenError(EPERM, "the caller cannot move itself")  # the caller is dom0
    if req.cpupool_id != d.cpupool:
        raise XenError(ENOENT, f"no cpupool {req.cpupool_id}")
    return {}


_CPUPOOL_OPS = {
    abi.XEN_SYSCTL_CPUPOOL_OP_CREATE: _pool_create,
    abi.XEN_SYSCTL_CPUPOOL_OP_DESTROY: _pool_destroy,
    abi.XEN_SYSCTL_CPUPOOL_OP_INFO: _pool_info,
    abi.XEN_SYSCTL_CPUPOOL_OP_ADDCPU: _pool_addcpu,
    abi.XEN_SYSCTL_CPUPOOL_OP_RMCPU: _pool_rmcpu,
    abi.XEN_SYSCTL_CPUPOOL_OP_MOVEDOMAIN: _pool_movedomain,
    abi.XEN_SYSCTL_CPUPOOL_OP_FREEINFO: _pool_freeinfo,
}


def _pcitopoinfo(hv: Hypervisor, op: Record) -> Payload:
    """The node of each listed PCI device: the host has none, so every one is
    XEN_INVALID_DEV. Both arrays must be given (EINVAL); a device that cannot be read or
    its node written stops the walk with EFAULT, the nodes before it written."""
    req = parse(abi.xen_sysctl_pcitopoinfo, op.u)
    if not req.devs or not req.nodes:
        raise XenError(EINVAL, "NULL device or node array")
    dev_size = sizeof(physdev.physdev_pci_device)
    invalid = abi.XEN_INVALID_DEV.to_bytes(4, "little")
    memory = hv.caller_memory
    for i in range(req.num_devs):
        memory.copy_from_guest(req.devs + i * dev_size, dev_size)  # pci_get_pdev: none
        memory.copy_to_guest(req.nodes + i * 4, invalid)
        if i and i % PREEMPT_EVERY == 0:
            hv.preempt_check()
    return _reply(op, abi.xen_sysctl_pcitopoinfo, dict(req))


_COMMANDS = {
    abi.XEN_SYSCTL_sched_id: _sched_id,
    abi.XEN_SYSCTL_cputopoinfo: _cputopoinfo,
    abi.XEN_SYSCTL_readconsole: _readconsole,
    abi.XEN_SYSCTL_debug_keys: _debug_keys,
    abi.XEN_SYSCTL_physinfo: _physinfo,
    abi.XEN_SYSCTL_numainfo: _numainfo,
    abi.XEN_SYSCTL_getdomaininfolist: _getdomaininfolist,
    abi.XEN_SYSCTL_availheap: _availheap,
    abi.XEN_SYSCTL_page_offline_op: _page_offline_op,
    abi.XEN_SYSCTL_cpupool_op: _cpupool_op,
    abi.XEN_SYSCTL_pcitopoinfo: _pcitopoinfo,
}

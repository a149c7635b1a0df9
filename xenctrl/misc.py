"""Host-wide calls of libxenctrl (tools/libs/ctrl/xc_misc.c, xc_private.c): physinfo,
NUMA topology, free heap, the highest RAM frame."""

from __future__ import annotations

import ctypes
from collections.abc import Iterable, Sequence

from hypervisor_model.codec import Record
from hypervisor_model.guest_memory import build, parse, parse_array, sizeof
from hypervisor_model.public import memory, physdev, sysctl, version
from hypervisor_model.public.xen import HYPERVISOR_xen_version
from xenctrl.cints import int32_t, uint32_t, unsigned_int, xenctrl_call
from xenctrl.handle import Bounce, check, do_sysctl, xc_interface, xc_memory_op
from xenctrl.types import xc_meminfo_t, xc_physinfo_t

traced = xenctrl_call  # traced as libxenctrl, its C integers converted


@traced
def xc_physinfo(xch: xc_interface) -> xc_physinfo_t:
    rc, info = do_sysctl(xch, sysctl.XEN_SYSCTL_physinfo, sysctl.xen_sysctl_physinfo)
    check(rc)
    return xc_physinfo_t.from_buffer_copy(build(sysctl.xen_sysctl_physinfo, info))


@traced
def xc_get_max_nodes(xch: xc_interface) -> int:
    """max_node_id + 1 from physinfo: MAX_NUMNODES (64), whatever the topology."""
    return int(xc_physinfo(xch).max_node_id) + 1


@traced
def xc_get_nodemap_size(xch: xc_interface) -> int:
    """Bytes in a node bitmap: (max nodes + 7) / 8."""
    return (xc_get_max_nodes(xch) + 7) // 8


@traced
def xc_get_max_cpus(xch: xc_interface) -> int:
    """max_cpu_id + 1 from physinfo."""
    return int(xc_physinfo(xch).max_cpu_id) + 1


@traced
def xc_get_cpumap_size(xch: xc_interface) -> int:
    """Bytes in a CPU bitmap: (max CPUs + 7) / 8."""
    return (xc_get_max_cpus(xch) + 7) // 8


def nodemap(xch: xc_interface, nodes: Iterable[int]) -> bytes:
    """An ``xc_nodemap_t`` with bit n set for each node n (xc_nodemap_alloc, then set)."""
    return sum(1 << n for n in set(nodes)).to_bytes(xc_get_nodemap_size(xch), "little")


@traced
def xc_numainfo(
    xch: xc_interface, max_nodes: int | None = None
) -> tuple[list[xc_meminfo_t], list[int]]:
    """Per-node memory (bytes) and the flat distance matrix, row-major ``i*N + j``.

    Without ``max_nodes`` it first asks Xen for the node count (NULL buffers), as libxl does.
    """
    if max_nodes is None:
        rc, reply = do_sysctl(
            xch,
            sysctl.XEN_SYSCTL_numainfo,
            sysctl.xen_sysctl_numainfo,
            num_nodes=0,
            meminfo=0,
            distance=0,
        )
        check(rc)
        max_nodes = int(reply.num_nodes)
    meminfo = (xc_meminfo_t * max(max_nodes, 1))()
    distance = (ctypes.c_uint32 * max(max_nodes * max_nodes, 1))()
    with (
        Bounce(xch, meminfo, max_nodes * ctypes.sizeof(xc_meminfo_t), "out") as m,
        Bounce(xch, distance, max_nodes * max_nodes * 4, "out") as dist,
    ):
        rc, reply = do_sysctl(
            xch,
            sysctl.XEN_SYSCTL_numainfo,
            sysctl.xen_sysctl_numainfo,
            num_nodes=max_nodes,
            meminfo=m.addr,
            distance=dist.addr,
        )
    check(rc)
    n = int(reply.num_nodes)  # Xen lays the rows out with this count as the stride
    return list(meminfo[:n]), list(distance[: n * n])


@traced
def xc_availheap(xch: xc_interface, min_width: int32_t, max_width: int32_t, node: int32_t) -> int:
    """Free bytes between two address widths on a node (-1: all); claims not subtracted."""
    rc, reply = do_sysctl(
        xch,
        sysctl.XEN_SYSCTL_availheap,
        sysctl.xen_sysctl_availheap,
        min_bitwidth=min_width & 0xFFFFFFFF,
        max_bitwidth=max_width & 0xFFFFFFFF,
        node=node,
        avail_bytes=0,
    )
    check(rc)
    return int(reply.avail_bytes)


@traced
def xc_maximum_ram_page(xch: xc_interface) -> int:
    """The highest RAM frame number plus one (XENMEM_maximum_ram_page)."""
    return check(xc_memory_op(xch, memory.XENMEM_maximum_ram_page, None))


@traced
def xc_sharing_freed_pages(xch: xc_interface) -> int:
    """Pages memory sharing has saved (xc_memshr.c): always 0 here, nothing is shared."""
    return check(xc_memory_op(xch, memory.XENMEM_get_sharing_freed_pages, None))


@traced
def xc_sharing_used_frames(xch: xc_interface) -> int:
    """Frames shared between domains (xc_memshr.c): always 0 here."""
    return check(xc_memory_op(xch, memory.XENMEM_get_sharing_shared_pages, None))


@traced
def xc_send_debug_keys(xch: xc_interface, keys: str) -> None:
    """Press debug keys on Xen's console (``xl debug-keys``)."""
    raw = bytearray(keys.encode())
    with Bounce(xch, raw, len(raw), "in") as buf:
        rc, _ = do_sysctl(
            xch,
            sysctl.XEN_SYSCTL_debug_keys,
            sysctl.xen_sysctl_debug_keys,
            keys=buf.addr,
            nr_keys=len(raw),
        )
    check(rc)


@traced
def xc_readconsolering(
    xch: xc_interface,
    nr_chars: unsigned_int,
    clear: int32_t = 0,
    incremental: int32_t = 0,
    index: uint32_t = 0,
) -> tuple[bytes, int]:
    """Read up to ``nr_chars`` of Xen's console ring; returns the text and the new index
    (pass it back with ``incremental=1`` to read on from there)."""
    out = bytearray(nr_chars)
    with Bounce(xch, out, nr_chars, "out") as buf:
        rc, reply = do_sysctl(
            xch,
            sysctl.XEN_SYSCTL_readconsole,
            sysctl.xen_sysctl_readconsole,
            clear=clear,
            incremental=incremental,
            index=index,
            buffer=buf.addr,
            count=nr_chars,
        )
    check(rc)
    return bytes(out[: reply.count]), int(reply.index)


@traced
def xc_version(xch: xc_interface, cmd: int32_t) -> int | bytes | Record:
    """xc_version: an int for XENVER_version / XENVER_pagesize, a structure for compile
    info, platform parameters and features (submap 0), the caller's 16-byte handle for
    XENVER_guest_handle, the NUL-trimmed text for the string queries."""
    if cmd in (version.XENVER_version, version.XENVER_pagesize):
        return check(xch.hypercall(HYPERVISOR_xen_version, cmd, 0))
    layouts = {
        version.XENVER_compile_info: version.xen_compile_info,
        version.XENVER_platform_parameters: version.xen_platform_parameters,
        # bounced out only, as xc_version does: Xen reads submap_idx from the zeroed
        # hypercall buffer, so this asks for submap 0, the only one there is
        version.XENVER_get_features: version.xen_feature_info,
    }
    sizes = {
        version.XENVER_extraversion: version.XEN_EXTRAVERSION_LEN,
        version.XENVER_capabilities: version.XEN_CAPABILITIES_INFO_LEN,
        version.XENVER_changeset: version.XEN_CHANGESET_INFO_LEN,
        version.XENVER_commandline: version.XEN_COMMANDLINE_LEN,
        version.XENVER_guest_handle: 16,  # xen_domain_handle_t
    }
    layout = layouts.get(cmd)
    size = sizeof(layout) if layout is not None else sizes.get(cmd, 0)
    out = bytearray(size)
    with Bounce(xch, out, size, "out") as buf:
        check(xch.hypercall(HYPERVISOR_xen_version, cmd, buf.addr))
    if layout is not None:
        return parse(layout, bytes(out))
    if cmd == version.XENVER_guest_handle:
        return bytes(out)  # the caller's 16-byte handle, not text
    return bytes(out).split(b"\0", 1)[0]


def _varbuf(xch: xc_interface, subop: int) -> bytes:
    """varbuf_op (xc_version.c): ask for the length, then fetch into a buffer that size."""
    size = check(xch.hypercall(HYPERVISOR_xen_version, subop, 0))
    header = sizeof(version.xen_varbuf)
    buf = bytearray(build(version.xen_varbuf, dict(len=size)) + bytes(size))
    with Bounce(xch, buf, len(buf), "both") as b:
        got = check(xch.hypercall(HYPERVISOR_xen_version, subop, b.addr))
    return bytes(buf[header : header + got])


@traced
def xc_xenver_extraversion(xch: xc_interface) -> str:
    return _varbuf(xch, version.XENVER_extraversion2).decode()


@traced
def xc_xenver_capabilities(xch: xc_interface) -> str:
    return _varbuf(xch, version.XENVER_capabilities2).decode()


@traced
def xc_xenver_changeset(xch: xc_interface) -> str:
    return _varbuf(xch, version.XENVER_changeset2).decode()


@traced
def xc_xenver_commandline(xch: xc_interface) -> str:
    """Xen's command line; EPERM for a domain other than the control domain."""
    return _varbuf(xch, version.XENVER_commandline2).decode()


@traced
def xc_xenver_buildid(xch: xc_interface) -> str:
    """Xen's build id in hex; ENODATA when Xen was linked without one (as the model)."""
    return _varbuf(xch, version.XENVER_build_id).hex()


@traced
def xc_pcitopoinfo(xch: xc_interface, devs: Sequence[tuple[int, int, int]]) -> list[int]:
    """The node of each PCI device ``(seg, bus, devfn)``: XEN_INVALID_DEV for a device
    Xen does not know, XEN_INVALID_NODE_ID for one on no node. Asks again for the rest
    whenever Xen stops part-way, as libxenctrl does."""
    size = sizeof(physdev.physdev_pci_device)
    raw = bytearray(
        b"".join(build(physdev.physdev_pci_device, dict(seg=s, bus=b, devfn=f)) for s, b, f in devs)
    )
    nodes = bytearray(4 * len(devs))
    with Bounce(xch, raw, len(raw), "in") as d, Bounce(xch, nodes, len(nodes), "both") as n:
        done = 0
        while done < len(devs):
            rc, reply = do_sysctl(
                xch,
                sysctl.XEN_SYSCTL_pcitopoinfo,
                sysctl.xen_sysctl_pcitopoinfo,
                num_devs=len(devs) - done,
                devs=d.addr + done * size,
                nodes=n.addr + done * 4,
            )
            check(rc)
            done += int(reply.num_devs)
    return [int.from_bytes(nodes[i : i + 4], "little") for i in range(0, len(nodes), 4)]


@traced
def xc_sched_id(xch: xc_interface) -> int:
    rc, reply = do_sysctl(xch, sysctl.XEN_SYSCTL_sched_id, sysctl.xen_sysctl_sched_id)
    check(rc)
    return int(reply.sched_id)


@traced
def xc_cputopoinfo(xch: xc_interface) -> list[tuple[int, int, int]]:
    """(core, socket, node) of every CPU, asking for the count first as libxl does."""
    rc, reply = do_sysctl(
        xch, sysctl.XEN_SYSCTL_cputopoinfo, sysctl.xen_sysctl_cputopoinfo, num_cpus=0, cputopo=0
    )
    check(rc)
    count = int(reply.num_cpus)
    size = sizeof(sysctl.xen_sysctl_cputopo)
    out = bytearray(count * size)
    with Bounce(xch, out, len(out), "out") as buf:
        rc, reply = do_sysctl(
            xch,
            sysctl.XEN_SYSCTL_cputopoinfo,
            sysctl.xen_sysctl_cputopoinfo,
            num_cpus=count,
            cputopo=buf.addr,
        )
    check(rc)
    cpus = parse_array(sysctl.xen_sysctl_cputopo, bytes(out[: int(reply.num_cpus) * size]))
    return [(int(c.core), int(c.socket), int(c.node)) for c in cpus]

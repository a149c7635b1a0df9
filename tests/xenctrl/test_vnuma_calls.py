"""libxenctrl's vNUMA calls (xc_domain.c): xc_domain_setvnuma (XEN_DOMCTL_setvnumainfo,
domctl.c vnuma_init) and xc_domain_getvnuma (XENMEM_get_vnumainfo, memory.c), and
XENMEMF_vnode in a populate (construct_memop_from_reservation)."""

from __future__ import annotations

import ctypes
import errno

import pytest

import hypervisor_model
import xenctrl
from hypervisor_model.console import KEYS
from hypervisor_model.public.memory import (
    XENMEMF_exact_node_request,
    XENMEMF_node,
    XENMEMF_vnode,
)
from xenctrl import XenError, xc_interface, xen_vmemrange_t

MiB = 1 << 20
# Two vnodes of 16 MiB on pnodes 1 and 0, vCPUs 0-1 on vnode 0 and 2-3 on vnode 1.
RANGES = [xen_vmemrange_t(0, 16 * MiB, 0, 0), xen_vmemrange_t(16 * MiB, 32 * MiB, 0, 1)]
DISTANCES = [10, 20, 20, 10]
VCPUS = [0, 0, 1, 1]
PNODES = [1, 0]


def guest(xch: xc_interface, vcpus: int = 4) -> int:
    domid = xenctrl.xc_domain_create(xch, config=xenctrl.default_createdomain(True, vcpus))
    xenctrl.xc_domain_setmaxmem(xch, domid, 32 << 10)
    return domid


def setvnuma(xch: xc_interface, domid: int, **change: object) -> None:
    args: dict[str, object] = dict(
        nr_vnodes=2,
        nr_vmemranges=2,
        nr_vcpus=4,
        vmemrange=RANGES,
        vdistance=DISTANCES,
        vcpu_to_vnode=VCPUS,
        vnode_to_pnode=PNODES,
    )
    args.update(change)
    xenctrl.xc_domain_setvnuma(xch, domid, **args)  # type: ignore[arg-type]


def getvnuma(
    xch: xc_interface, domid: int, room: tuple[int, int, int] = (2, 2, 4)
) -> tuple[tuple[int, int, int], list[tuple[int, int, int, int]], list[int], list[int]]:
    nodes, ranges, vcpus = room
    out_ranges = (xen_vmemrange_t * max(ranges, 1))()
    out_dist = (ctypes.c_uint * max(nodes * nodes, 1))()
    out_vcpus = (ctypes.c_uint * max(vcpus, 1))()
    counts = xenctrl.xc_domain_getvnuma(
        xch, domid, nodes, ranges, vcpus, out_ranges, out_dist, out_vcpus
    )
    got = [(r.start, r.end, r.flags, r.nid) for r in out_ranges[: counts[1]]]
    return counts, got, list(out_dist[: counts[0] ** 2]), list(out_vcpus[: counts[2]])


def test_the_topology_set_is_the_topology_read(xch: xc_interface) -> None:
    domid = guest(xch)
    setvnuma(xch, domid)
    assert getvnuma(xch, domid) == (
        (2, 2, 4),
        [(0, 16 * MiB, 0, 0), (16 * MiB, 32 * MiB, 0, 1)],
        DISTANCES,
        VCPUS,
    )
    # a second topology replaces the first
    setvnuma(xch, domid, nr_vnodes=1, nr_vmemranges=1, vdistance=[10], vcpu_to_vnode=[0] * 4)
    assert getvnuma(xch, domid)[0] == (1, 1, 4)


def test_too_little_room_is_enobufs_with_the_counts_needed(xch: xc_interface) -> None:
    domid = guest(xch)
    setvnuma(xch, domid)
    with pytest.raises(XenError) as e:
        getvnuma(xch, domid, room=(2, 1, 4))
    assert (e.value.errno, e.value.counts) == (errno.ENOBUFS, (2, 2, 4))


def test_no_topology_is_eopnotsupp(xch: xc_interface) -> None:
    with pytest.raises(XenError) as e:
        getvnuma(xch, guest(xch))
    assert e.value.errno == errno.EOPNOTSUPP


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (dict(nr_vcpus=3, vcpu_to_vnode=VCPUS[:3]), errno.EINVAL),  # not max_vcpus (4)
        # 33 vnodes: 33 > 4096 / 4 / 33 = 31, the distances would not fit a page
        (dict(nr_vnodes=33, vdistance=[10] * 33 * 33, vnode_to_pnode=[0] * 33), errno.EINVAL),
        (dict(nr_vmemranges=171, vmemrange=RANGES * 86), errno.EINVAL),  # 171 * 24 > 4096
        (dict(vcpu_to_vnode=[0, 0, 1, 2]), errno.E2BIG),  # vnode 2 of 2
        (dict(vnode_to_pnode=[1, 64]), errno.E2BIG),  # MAX_NUMNODES is 64
        (dict(vmemrange=[RANGES[0], xen_vmemrange_t(16 * MiB, 32 * MiB, 1, 1)]), errno.EINVAL),
        (dict(nr_vnodes=0), errno.EINVAL),  # libxc: before any hypercall
        (dict(vdistance=None), errno.EINVAL),
    ],
    ids=["vcpus", "vnodes", "ranges", "vcpu-vnode", "pnode", "flags", "libxc-0", "libxc-null"],
)
def test_bad_topologies_change_nothing(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface, change: dict, expected: int
) -> None:
    domid = guest(xch)
    setvnuma(xch, domid)
    with pytest.raises(XenError) as e:
        setvnuma(xch, domid, **change)
    assert e.value.errno == expected
    assert getvnuma(xch, domid)[0] == (2, 2, 4)


def test_a_vnode_populates_on_its_pnode(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface
) -> None:
    """XENMEMF_vnode(1) maps through vnode_to_pnode to node 0, exactly when asked; vnode 2
    does not exist (EINVAL: nothing done); without a topology the node is ignored."""
    domid = guest(xch)
    setvnuma(xch, domid)
    vnode1 = XENMEMF_vnode | XENMEMF_node(1) | XENMEMF_exact_node_request
    gfns = (ctypes.c_uint64 * 4)(0, 1, 2, 3)
    assert xenctrl.xc_domain_populate_physmap(xch, domid, 4, 0, vnode1, gfns) == 4
    d = xen_host.find_domain(domid)
    assert d is not None and d.node_pages == {0: 4}
    vnode2 = XENMEMF_vnode | XENMEMF_node(2)
    assert xenctrl.xc_domain_populate_physmap(xch, domid, 1, 0, vnode2, gfns) == 0
    plain = guest(xch)
    assert xenctrl.xc_domain_populate_physmap(xch, plain, 1, 0, vnode2, gfns) == 1


def test_the_u_key_shows_the_layout(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface
) -> None:
    """dump_numa: counts, then per vnode its pnode, its vCPUs as runs, its ranges."""
    domid = guest(xch)
    setvnuma(xch, domid)
    lines = KEYS["u"][1](xen_host, "u").splitlines()
    at = lines.index(f"d{domid} (total: 0):")
    assert lines[at + 3 :] == [
        "     2 vnodes, 4 vcpus, guest physical layout:",
        "         0: pnode   1, vcpus 0-1 ",
        "           0000000000000000 - 0000000001000000",
        "         1: pnode   0, vcpus 2-3",
        "           0000000001000000 - 0000000002000000",
    ]


def test_a_guest_reads_its_own_topology_but_not_anothers(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface
) -> None:
    domid, other = guest(xch), guest(xch)
    setvnuma(xch, domid)
    setvnuma(xch, other)
    as_guest = xenctrl.xc_interface_open(xen_host, domid)
    try:
        assert getvnuma(as_guest, 0x7FF0)[0] == (2, 2, 4)  # DOMID_SELF
        with pytest.raises(XenError) as e:
            getvnuma(as_guest, other)
        assert e.value.errno == errno.EPERM  # XSM_TARGET
    finally:
        xenctrl.xc_interface_close(as_guest)

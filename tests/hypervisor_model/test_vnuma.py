"""A domain's vNUMA topology through the raw hypercalls: XEN_DOMCTL_setvnumainfo
(domctl.c vnuma_init) and XENMEM_get_vnumainfo (memory.c), their checks in Xen's order and
what each failure leaves behind. The topology used: 2 vnodes on pnodes 1 and 0, one vCPU
(createdomain's max_vcpus) on vnode 1, distances 10/20, two 1 MiB ranges."""

from __future__ import annotations

import struct

import pytest
from hypercalls import Guest

import hypervisor_model
from hypervisor_model.guest_memory import build
from hypervisor_model.public import domctl, memory
from hypervisor_model.public.errno import (
    E2BIG,
    EFAULT,
    EINVAL,
    ENOBUFS,
    EOPNOTSUPP,
    EPERM,
    ESRCH,
)
from hypervisor_model.public.xen import DOMID_SELF, HYPERVISOR_memory_op
from hypervisor_model.snapshot import StateError, load_state, save_state

RANGES = struct.pack("<QQIIQQII", 0, 1 << 20, 0, 0, 1 << 20, 2 << 20, 0, 1)


def place(hv: hypervisor_model.Hypervisor, raw: bytes) -> int:
    buf = hv.arena.alloc(max(len(raw), 1))
    buf.mem[: len(raw)] = raw
    return buf.addr


def setvnuma(g: Guest, domid: int, **change: int) -> int:
    hv = g.hv
    fields = dict(
        nr_vnodes=2,
        nr_vmemranges=2,
        nr_vcpus=1,
        pad=0,
        vdistance=place(hv, struct.pack("<4I", 10, 20, 20, 10)),
        vcpu_to_vnode=place(hv, struct.pack("<I", 1)),
        vnode_to_pnode=place(hv, struct.pack("<2I", 1, 0)),
        vmemrange=place(hv, RANGES),
    )
    fields.update(change)
    return g.domctl(domctl.XEN_DOMCTL_setvnumainfo, domid, domctl.xen_domctl_vnuma, fields)[0]


def getvnuma(
    g: Guest, domid: int, room: tuple[int, int, int] = (2, 1, 2), cmd: int = 0, **change: int
) -> tuple[int, tuple[int, int, int], bytes]:
    """The result, the counts copied back (nr_vnodes, nr_vcpus, nr_vmemranges) and the
    arrays' bytes: ranges (48), distances (16), vCPU map (4)."""
    hv = g.hv
    arrays = place(hv, bytes(68))
    fields = dict(
        domid=domid,
        pad=0,
        nr_vnodes=room[0],
        nr_vcpus=room[1],
        nr_vmemranges=room[2],
        vmemrange=arrays,
        vdistance=arrays + 48,
        vcpu_to_vnode=arrays + 64,
    )
    fields.update(change)
    raw = build(memory.xen_vnuma_topology_info, fields)
    arg = place(hv, raw)
    rc = hv.hypercall(HYPERVISOR_memory_op, memory.XENMEM_get_vnumainfo | cmd, arg, caller=g.domid)
    counts = struct.unpack_from("<III", hv.arena.copy_from_guest(arg, 16), 4)
    return rc, counts, hv.arena.copy_from_guest(arrays, 68)


WHOLE = RANGES + struct.pack("<4I", 10, 20, 20, 10) + struct.pack("<I", 1)


def test_set_then_get(dom0: Guest) -> None:
    d = dom0.create()
    assert getvnuma(dom0, d)[0] == -EOPNOTSUPP
    assert setvnuma(dom0, d) == 0
    assert getvnuma(dom0, d) == (0, (2, 1, 2), WHOLE)
    assert getvnuma(Guest(dom0.hv, d), DOMID_SELF) == (0, (2, 1, 2), WHOLE)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (dict(nr_vcpus=2), -EINVAL),  # not max_vcpus
        (dict(pad=1), -EINVAL),
        (dict(nr_vnodes=0), -EINVAL),
        (dict(nr_vmemranges=171), -EINVAL),
        (dict(vdistance=0x1000), -EFAULT),
        (dict(vmemrange=0x1000), -EFAULT),
        (dict(vcpu_to_vnode=0x1000), -EFAULT),
        (dict(nr_vnodes=1, vdistance=0), -EFAULT),  # a NULL handle: one distance to read
        (dict(nr_vnodes=1), -E2BIG),  # vCPU 0 on vnode 1 of 1
        (dict(vnode_to_pnode=0x1000), -EFAULT),
        (dict(nr_vmemranges=0, vnode_to_pnode=0x1000), -EFAULT),
    ],
)
def test_bad_topologies_leave_the_old_one(
    dom0: Guest, change: dict[str, int], expected: int
) -> None:
    d = dom0.create()
    assert setvnuma(dom0, d) == 0
    assert setvnuma(dom0, d, **change) == expected
    assert getvnuma(dom0, d) == (0, (2, 1, 2), WHOLE)


def test_each_pnode_is_checked_as_it_is_read(dom0: Guest) -> None:
    """vnode 0's pnode 64 is E2BIG before vnode 1's unreadable one (EFAULT) is reached;
    a range with flags is EINVAL, checked last."""
    d = dom0.create()
    hv = dom0.hv  # a buffer of one pnode: vnode 1's cannot be read
    assert setvnuma(dom0, d, vnode_to_pnode=place(hv, struct.pack("<I", 64))) == -E2BIG
    assert setvnuma(dom0, d, vnode_to_pnode=place(hv, struct.pack("<I", 0))) == -EFAULT
    flagged = RANGES[:16] + struct.pack("<I", 1) + RANGES[20:]
    assert setvnuma(dom0, d, vmemrange=place(hv, flagged)) == -EINVAL
    assert getvnuma(dom0, d)[0] == -EOPNOTSUPP


def test_get_checks_in_xens_order(host: hypervisor_model.Hypervisor, dom0: Guest) -> None:
    """start_extent EINVAL; pad EINVAL; ESRCH; another guest's topology EPERM; too little
    room ENOBUFS with the counts needed copied back; arrays out in order, stopping at the
    first that cannot be written (EFAULT) with the counts not copied back."""
    d, other = dom0.create(), dom0.create()
    setvnuma(dom0, d)
    setvnuma(dom0, other)
    assert getvnuma(dom0, d, cmd=1 << memory.MEMOP_EXTENT_SHIFT)[0] == -EINVAL
    assert getvnuma(dom0, d, pad=1)[0] == -EINVAL
    assert getvnuma(dom0, 999)[0] == -ESRCH
    assert getvnuma(Guest(host, d), other)[0] == -EPERM  # xsm_get_vnumainfo(XSM_TARGET)
    assert getvnuma(dom0, d, room=(1, 1, 2)) == (-ENOBUFS, (2, 1, 2), bytes(68))
    # room for 3 vnodes and 3 ranges: the ranges are written, the distances cannot be
    rc, counts, arrays = getvnuma(dom0, d, room=(3, 1, 3), vdistance=0x1000)
    assert (rc, counts, arrays) == (-EFAULT, (3, 1, 3), RANGES + bytes(20))


def test_the_topology_survives_save_and_resume(dom0: Guest) -> None:
    d = dom0.create()
    assert setvnuma(dom0, d) == 0
    doc = save_state(dom0.hv)
    again = load_state(doc)
    assert save_state(again) == doc
    assert getvnuma(Guest(again), d) == (0, (2, 1, 2), WHOLE)


def test_a_damaged_topology_is_refused_on_load(dom0: Guest) -> None:
    """A saved vCPU map naming a vnode that does not exist fails the invariant check."""
    d = dom0.create()
    assert setvnuma(dom0, d) == 0
    doc = save_state(dom0.hv)
    saved = next(s for s in doc["domains"] if s["domain_id"] == d)
    saved["vnuma"]["vcpu_to_vnode"] = [2]
    with pytest.raises(StateError, match="vCPU map does not fit"):
        load_state(doc)

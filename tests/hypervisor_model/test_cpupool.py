"""XEN_SYSCTL_cpupool_op (sched/cpupool.c cpupool_do_sysctl) and XEN_SYSCTL_pcitopoinfo
(sysctl.c) on the ``host`` fixture: 8 CPUs (4 per node), all in Pool-0 under credit2,
no PCI devices.

CPU maps leave Xen through bitmap_to_xenctl_bitmap over nr_cpu_ids (8) bits: one byte,
0xff for Pool-0, 0x00 for the free CPUs; bytes beyond it in the caller's map are zeroed.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypercalls import Guest

from hypervisor_model.public import sysctl
from hypervisor_model.public.errno import (
    EBUSY,
    EEXIST,
    EFAULT,
    EINVAL,
    ENODEV,
    ENOENT,
    ENOSYS,
    EOPNOTSUPP,
    EPERM,
    ESRCH,
)

ANY = sysctl.XEN_SYSCTL_CPUPOOL_PAR_ANY
OP = sysctl
FIELDS = dict(cpupool_id=0, sched_id=0, domid=0, cpu=0, n_dom=0)


def pool_op(
    dom0: Guest,
    op: int,
    map_bytes: int = 0,
    caller: int = 0,
    bitmap: int | None = None,
    **fields: int,
) -> tuple[int, Any, bytes]:
    """The result, the payload as Xen left it, and the caller's map (0xAA-filled before)."""
    with dom0.hv.arena.alloc(max(map_bytes, 1)) as buf:
        buf.mem[:map_bytes] = b"\xaa" * map_bytes
        addr = buf.addr if bitmap is None else bitmap
        payload = dict(FIELDS, op=op, cpumap=dict(bitmap=addr, nr_bits=map_bytes * 8)) | fields
        rc, out = Guest(dom0.hv, caller).sysctl(
            sysctl.XEN_SYSCTL_cpupool_op, sysctl.xen_sysctl_cpupool_op, payload
        )
        return rc, out, bytes(buf.mem[:map_bytes])


def test_info_of_pool_0_has_every_cpu_and_domain(dom0: Guest) -> None:
    """Two domUs and dom0: n_dom 3; sched_id credit2 (6); cpumap 0xff, then the caller's
    second byte zeroed."""
    dom0.create()
    dom0.create(hvm=False)
    rc, out, cpumap = pool_op(dom0, OP.XEN_SYSCTL_CPUPOOL_OP_INFO, map_bytes=2)
    assert rc == 0
    assert (out.cpupool_id, out.sched_id, out.n_dom) == (0, sysctl.XEN_SCHEDULER_CREDIT2, 3)
    assert cpumap == b"\xff\x00"


def test_info_from_a_later_id_is_enoent_so_a_listing_ends_after_pool_0(dom0: Guest) -> None:
    """cpupool_get_next_by_id: libxl asks from 0, then from the id after each answer."""
    rc, out, cpumap = pool_op(dom0, OP.XEN_SYSCTL_CPUPOOL_OP_INFO, map_bytes=1, cpupool_id=1)
    assert (rc, out.n_dom, cpumap) == (-ENOENT, 0, b"\xaa")  # nothing copied back or written


def test_freeinfo_has_no_cpu(dom0: Guest) -> None:
    rc, _, cpumap = pool_op(dom0, OP.XEN_SYSCTL_CPUPOOL_OP_FREEINFO, map_bytes=2)
    assert (rc, cpumap) == (0, b"\x00\x00")


def test_a_map_xen_cannot_write_is_efault(dom0: Guest) -> None:
    rc, out, _ = pool_op(dom0, OP.XEN_SYSCTL_CPUPOOL_OP_INFO, map_bytes=1, bitmap=0xDEAD000)
    assert (rc, out.n_dom) == (-EFAULT, 0)


def test_moving_a_domain_to_the_pool_it_is_in_is_done(dom0: Guest) -> None:
    domid = dom0.create()
    assert pool_op(dom0, OP.XEN_SYSCTL_CPUPOOL_OP_MOVEDOMAIN, domid=domid)[0] == 0
    # the domid is a domid_t: the top half of the 32-bit field is dropped
    assert pool_op(dom0, OP.XEN_SYSCTL_CPUPOOL_OP_MOVEDOMAIN, domid=domid | 1 << 16)[0] == 0


POOL_ERRNOS: list[tuple[str, dict[str, int], int]] = [
    ("unknown-op-0", dict(op=0), ENOSYS),
    ("unknown-op-8", dict(op=8), ENOSYS),
    ("create-pool-0-exists", dict(op=OP.XEN_SYSCTL_CPUPOOL_OP_CREATE, cpupool_id=0), EEXIST),
    ("create-a-second-pool", dict(op=OP.XEN_SYSCTL_CPUPOOL_OP_CREATE, cpupool_id=ANY), EOPNOTSUPP),
    ("destroy-pool-0-busy", dict(op=OP.XEN_SYSCTL_CPUPOOL_OP_DESTROY, cpupool_id=0), EBUSY),
    ("destroy-no-pool", dict(op=OP.XEN_SYSCTL_CPUPOOL_OP_DESTROY, cpupool_id=3), ENOENT),
    ("addcpu-no-pool", dict(op=OP.XEN_SYSCTL_CPUPOOL_OP_ADDCPU, cpupool_id=1), ENOENT),
    ("addcpu-no-such-cpu", dict(op=OP.XEN_SYSCTL_CPUPOOL_OP_ADDCPU, cpu=8), EINVAL),
    ("addcpu-cpu-not-free", dict(op=OP.XEN_SYSCTL_CPUPOOL_OP_ADDCPU, cpu=3), ENODEV),
    ("addcpu-none-free", dict(op=OP.XEN_SYSCTL_CPUPOOL_OP_ADDCPU, cpu=ANY), ENODEV),
    ("rmcpu-no-pool", dict(op=OP.XEN_SYSCTL_CPUPOOL_OP_RMCPU, cpupool_id=2), ENOENT),
    ("rmcpu-no-such-cpu", dict(op=OP.XEN_SYSCTL_CPUPOOL_OP_RMCPU, cpu=99), EINVAL),
    ("rmcpu-cpu-0-stays", dict(op=OP.XEN_SYSCTL_CPUPOOL_OP_RMCPU, cpu=0), EINVAL),
    ("rmcpu-would-reshape", dict(op=OP.XEN_SYSCTL_CPUPOOL_OP_RMCPU, cpu=ANY), EOPNOTSUPP),
    ("move-no-domain", dict(op=OP.XEN_SYSCTL_CPUPOOL_OP_MOVEDOMAIN, domid=42), ESRCH),
    ("move-the-caller", dict(op=OP.XEN_SYSCTL_CPUPOOL_OP_MOVEDOMAIN, domid=0), EPERM),
    (
        "move-to-no-pool",
        dict(op=OP.XEN_SYSCTL_CPUPOOL_OP_MOVEDOMAIN, domid=1, cpupool_id=1),
        ENOENT,
    ),
]


@pytest.mark.parametrize(
    ("fields", "errno"), [r[1:] for r in POOL_ERRNOS], ids=[r[0] for r in POOL_ERRNOS]
)
def test_cpupool_op_errno(dom0: Guest, fields: dict[str, int], errno: int) -> None:
    """The answers Xen gives with one pool holding every CPU and domain (domain 1 exists);
    a new pool or a CPU leaving Pool-0 is a topology the model does not keep."""
    dom0.create()
    op = fields.pop("op")
    rc, out, _ = pool_op(dom0, op, map_bytes=1, **fields)
    assert rc == -errno
    assert out.n_dom == 0  # no copy-back on failure


def test_a_domu_is_eperm(dom0: Guest) -> None:
    domid = dom0.create()
    assert pool_op(dom0, OP.XEN_SYSCTL_CPUPOOL_OP_INFO, 1, caller=domid)[0] == -EPERM


# -- XEN_SYSCTL_pcitopoinfo -----------------------------------------------------------------------


def pcitopoinfo(
    dom0: Guest, num_devs: int, devs: int | None = 4, nodes: int | None = 4
) -> tuple[int, int, list[int]]:
    """``devs``/``nodes`` buffers of that many entries (None: NULL); result, num_devs as
    copied back, the nodes array (0xAA-filled before)."""
    hv = dom0.hv
    dbuf = hv.arena.alloc(4 * max(devs or 0, 1))
    nbuf = hv.arena.alloc(4 * max(nodes or 0, 1))
    nbuf.mem[: 4 * (nodes or 0)] = b"\xaa" * 4 * (nodes or 0)
    rc, out = dom0.sysctl(
        sysctl.XEN_SYSCTL_pcitopoinfo,
        sysctl.xen_sysctl_pcitopoinfo,
        dict(
            num_devs=num_devs,
            devs=dbuf.addr if devs is not None else 0,
            nodes=nbuf.addr if nodes is not None else 0,
        ),
    )
    found = [int.from_bytes(nbuf.mem[i : i + 4], "little") for i in range(0, 4 * (nodes or 0), 4)]
    return rc, out.num_devs, found


def test_every_device_is_unknown_to_a_host_without_pci_devices(dom0: Guest) -> None:
    assert pcitopoinfo(dom0, 3) == (0, 3, [sysctl.XEN_INVALID_DEV] * 3 + [0xAAAAAAAA])


def test_zero_devices_is_fine(dom0: Guest) -> None:
    assert pcitopoinfo(dom0, 0) == (0, 0, [0xAAAAAAAA] * 4)


@pytest.mark.parametrize(
    ("devs", "nodes", "errno", "written"),
    [
        (None, 4, EINVAL, 0),
        (4, None, EINVAL, 0),
        (2, 4, EFAULT, 2),  # the third device cannot be read: two nodes written
        (4, 2, EFAULT, 2),  # the third node cannot be written
    ],
    ids=["null-devs", "null-nodes", "devs-run-out", "nodes-run-out"],
)
def test_pcitopoinfo_errno(
    dom0: Guest, devs: int | None, nodes: int | None, errno: int, written: int
) -> None:
    rc, num_devs, found = pcitopoinfo(dom0, 4, devs, nodes)
    assert (rc, num_devs) == (-errno, 4)  # no copy-back on failure
    assert found[:written] == [sysctl.XEN_INVALID_DEV] * written
    assert all(n == 0xAAAAAAAA for n in found[written:])

"""A faithful model of Xen's NUMA page allocator and memory claims, reached by hypercalls.

``boot(nodes=[4096, 4096])`` powers on an emulated host (node memory in MiB) with dom0;
everything else goes through :meth:`Hypervisor.hypercall`, as it does on real Xen.
"""

from __future__ import annotations

import typing
from collections.abc import Sequence

from hypervisor_model import lazy

# Members are imported on first use: the public ABI or one layer needs no whole hypervisor.
__getattr__ = lazy.face(
    __name__,
    {
        "hypervisor_model.errors": ("XenError",),
        "hypervisor_model.guest_memory": (
            "Arena",
            "GuestFault",
            "GuestMemory",
            "HypercallBuffer",
        ),
        "hypervisor_model.host": ("HostConfig", "HostConfigError", "load_host", "make_host"),
        "hypervisor_model.hypervisor": ("Hypervisor",),
        "hypervisor_model.invariants": ("InvariantError",),
    },
)
__all__ = [
    "Arena",
    "GuestFault",
    "GuestMemory",
    "HostConfig",
    "HostConfigError",
    "HypercallBuffer",
    "Hypervisor",
    "InvariantError",
    "XenError",
    "boot",
    "boot_from_toml",
    "load_host",
    "make_host",
]

if typing.TYPE_CHECKING:  # the members, for type checkers
    from pathlib import Path

    from hypervisor_model.errors import XenError
    from hypervisor_model.guest_memory import Arena, GuestFault, GuestMemory, HypercallBuffer
    from hypervisor_model.host import HostConfig, HostConfigError, load_host, make_host
    from hypervisor_model.hypervisor import Hypervisor
    from hypervisor_model.invariants import InvariantError


def boot(
    nodes: Sequence[int] | None = None,
    *,
    ranges: Sequence[Sequence[Sequence[int]]] | None = None,
    offline: Sequence[int] = (),
    distances: Sequence[Sequence[int]] | None = None,
    cpus_per_node: int | Sequence[int] = 4,
    dom0_memory: int = 0,
    xen: str = "master",
) -> Hypervisor:
    """Boot an emulated host: ``nodes`` in MiB per node, or explicit MFN ``ranges``.

    ``offline`` node ids keep their memory out of the heap; ``distances`` is the SLIT
    matrix (default 10 local, 20 remote); ``dom0_memory`` is dom0's RAM in MiB; ``xen`` the
    Xen release whose hypercall ABI the host speaks ("master" or "4.17").
    """
    from hypervisor_model.host import make_host
    from hypervisor_model.hypervisor import Hypervisor

    return Hypervisor(
        make_host(
            nodes,
            ranges=ranges,
            offline=offline,
            distances=distances,
            cpus_per_node=cpus_per_node,
            dom0_memory=dom0_memory,
            xen=xen,
        )
    )


def boot_from_toml(path: str | Path) -> Hypervisor:
    """Boot the host a TOML file describes (see :func:`hypervisor_model.host.load_host`)."""
    from hypervisor_model.host import load_host
    from hypervisor_model.hypervisor import Hypervisor

    return Hypervisor(load_host(path))

"""A Pythonic face on libxenctrl, in the manner of the OCaml ``Xenctrl`` bindings.

Methods of :class:`Xenctrl` call the ``xc_*`` functions (never around them) and return
dataclasses and plain Python values: no out-parameters, ctypes arrays or bitmaps::

    with Xenctrl(hv) as ctl:
        domid = ctl.domain_create()
        ctl.domain_setmaxmem(domid, 4 << 20)
        ctl.domain_claim_memory(domid, {0: 262144, 1: 262144, HOST: 1024})
        ctl.domain_get_claims(domid)    # {HOST: 1024, 0: 262144, 1: 262144}
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from hypervisor_model.public import domctl
from hypervisor_model.public.errno import ERANGE
from hypervisor_model.public.xen import DOMID_ANY
from xenctrl import domain as xcd
from xenctrl import misc, trace
from xenctrl.errors import XenError
from xenctrl.handle import Host, xc_interface, xc_interface_close, xc_interface_open
from xenctrl.types import xc_domaininfo_t, xen_memory_claim_t

HOST = domctl.XEN_DOMCTL_CLAIM_MEMORY_HOST
LEGACY = domctl.XEN_DOMCTL_CLAIM_MEMORY_LEGACY


class Physinfo(NamedTuple):
    nr_cpus: int
    nr_nodes: int
    max_node_id: int
    cpu_khz: int
    total_pages: int
    free_pages: int
    scrub_pages: int
    outstanding_pages: int
    max_mfn: int


class NodeMemory(NamedTuple):
    """One node's memory in bytes; ``None`` for an offline node (XEN_INVALID_MEM_SZ)."""

    size: int | None
    free: int | None


class Numainfo(NamedTuple):
    nodes: list[NodeMemory]
    distances: list[list[int]]


class DomainInfo(NamedTuple):
    domid: int
    tot_pages: int
    max_pages: int
    outstanding_pages: int
    hvm: bool
    paused: bool
    dying: bool
    shutdown: bool
    nr_online_vcpus: int
    flags: int

    @classmethod
    def from_c(cls, info: xc_domaininfo_t) -> DomainInfo:
        f = info.flags
        return cls(
            domid=info.domain,
            tot_pages=info.tot_pages,
            max_pages=info.max_pages,
            outstanding_pages=info.outstanding_pages,
            hvm=bool(f & domctl.XEN_DOMINF_hvm_guest),
            paused=bool(f & domctl.XEN_DOMINF_paused),
            dying=bool(f & domctl.XEN_DOMINF_dying),
            shutdown=bool(f & domctl.XEN_DOMINF_shutdown),
            nr_online_vcpus=info.nr_online_vcpus,
            flags=f,
        )


def _invalid(value: int) -> int | None:
    return None if value == 0xFFFFFFFF else value


class Xenctrl:
    """An open handle with OCaml-Xenctrl-style methods."""

    def __init__(self, hv: Host, domid: int = 0, *, xen: str | None = None) -> None:
        """Open a handle as :func:`xc_interface_open` does (``xen``: speak that release)."""
        self.xch: xc_interface = xc_interface_open(hv, domid, xen=xen)

    def __enter__(self) -> Xenctrl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        xc_interface_close(self.xch)

    # -- host ---------------------------------------------------------------------------------

    def physinfo(self) -> Physinfo:
        p = misc.xc_physinfo(self.xch)
        return Physinfo(
            nr_cpus=p.nr_cpus,
            nr_nodes=p.nr_nodes,
            max_node_id=p.max_node_id,
            cpu_khz=p.cpu_khz,
            total_pages=p.total_pages,
            free_pages=p.free_pages,
            scrub_pages=p.scrub_pages,
            outstanding_pages=p.outstanding_pages,
            max_mfn=p.max_mfn,
        )

    def numainfo(self) -> Numainfo:
        meminfo, flat = misc.xc_numainfo(self.xch)
        n = len(meminfo)
        return Numainfo(
            nodes=[NodeMemory(_invalid(m.memsize), _invalid(m.memfree)) for m in meminfo],
            distances=[flat[i * n : (i + 1) * n] for i in range(n)],
        )

    def availheap(self, node: int = -1, min_width: int = 0, max_width: int = 0) -> int:
        return misc.xc_availheap(self.xch, min_width, max_width, node)

    def maximum_ram_page(self) -> int:
        return misc.xc_maximum_ram_page(self.xch)

    # -- domains ------------------------------------------------------------------------------

    def domain_create(self, *, hvm: bool = True, max_vcpus: int = 1, domid: int = DOMID_ANY) -> int:
        config = xcd.default_createdomain(hvm=hvm, max_vcpus=max_vcpus)
        return xcd.xc_domain_create(self.xch, domid, config)

    def domain_destroy(self, domid: int) -> None:
        xcd.xc_domain_destroy(self.xch, domid)

    def domain_pause(self, domid: int) -> None:
        xcd.xc_domain_pause(self.xch, domid)

    def domain_unpause(self, domid: int) -> None:
        xcd.xc_domain_unpause(self.xch, domid)

    def domain_setmaxmem(self, domid: int, max_memkb: int) -> None:
        xcd.xc_domain_setmaxmem(self.xch, domid, max_memkb)

    def domain_getinfo(self, domid: int) -> DomainInfo:
        return DomainInfo.from_c(xcd.xc_domain_getinfo_single(self.xch, domid))

    def domain_getinfolist(
        self, first_domain: int = 0, max_domains: int = 1024
    ) -> list[DomainInfo]:
        infos = xcd.xc_domain_getinfolist(self.xch, first_domain, max_domains)
        return [DomainInfo.from_c(i) for i in infos]

    def domain_node_setaffinity(self, domid: int, nodes: Iterable[int]) -> None:
        xcd.xc_domain_node_setaffinity(self.xch, domid, misc.nodemap(self.xch, nodes))

    def domain_node_getaffinity(self, domid: int) -> set[int]:
        mask = int.from_bytes(xcd.xc_domain_node_getaffinity(self.xch, domid), "little")
        return {n for n in range(mask.bit_length()) if mask >> n & 1}

    # -- claims -------------------------------------------------------------------------------

    def domain_claim_pages(self, domid: int, pages: int) -> None:
        xcd.xc_domain_claim_pages(self.xch, domid, pages)

    def domain_claim_memory(self, domid: int, claims: Mapping[int, int]) -> None:
        """Install a claim set: ``{node: pages, HOST: pages}``; ``{}`` releases everything."""
        entries = [xen_memory_claim_t(pages=p, target=t) for t, p in claims.items()]
        if not entries:
            entries = [xen_memory_claim_t(pages=0, target=HOST)]
        xcd.xc_domain_claim_memory(
            self.xch, domid, domctl.XEN_DOMCTL_CLAIM_MEMORY_SET, len(entries), entries
        )

    def domain_get_claims(self, domid: int) -> dict[int, int]:
        """The claim set: ``HOST`` first (always present), then nodes with a claim."""
        capacity = 1
        while True:
            buf = (xen_memory_claim_t * capacity)()
            try:
                with trace.expecting(ERANGE, "a probe: Xen says how many entries to ask for"):
                    n = xcd.xc_domain_claim_memory(
                        self.xch, domid, domctl.XEN_DOMCTL_CLAIM_MEMORY_GET, capacity, buf
                    )
            except XenError as e:
                if e.errno != ERANGE or e.nr_entries is None:
                    raise
                capacity = e.nr_entries
                continue
            return {int(c.target): int(c.pages) for c in buf[:n]}

    # -- memory -------------------------------------------------------------------------------

    def domain_populate_physmap(
        self, domid: int, gfns: Sequence[int], order: int = 0, mem_flags: int = 0
    ) -> list[int]:
        """Populate one extent per gfn, all or nothing (EBUSY); returns the list as Xen left
        it: the MFNs for a PV guest, the gfns unchanged for HVM."""
        frames = (ctypes.c_uint64 * max(len(gfns), 1))(*gfns)
        xcd.xc_domain_populate_physmap_exact(self.xch, domid, len(gfns), order, mem_flags, frames)
        return list(frames[: len(gfns)])

    def domain_decrease_reservation(
        self, domid: int, frames: Sequence[int], order: int = 0
    ) -> None:
        xcd.xc_domain_decrease_reservation_exact(self.xch, domid, len(frames), order, list(frames))

"""A domain as the memory code sees it: limits, claims, node affinity, its pages and physmap.

Field names are Xen's (``struct domain`` in xen/include/xen/sched.h). A domain owns its pages
as runs of MFNs (with the guest frame each backs, Xen's M2P) and, when translated (HVM/PVH),
a physmap of runs gfn -> mfn (Xen's p2m) beside its populate-on-demand entries. All grow
with extents, not pages. Xen's own pages for the domain (its structure, the shared-info
page, the paging pool) are not the domain's: they are not counted in ``tot_pages``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import NamedTuple

from hypervisor_model.host import MAX_NUMNODES
from hypervisor_model.pagelist import PageList
from hypervisor_model.runmap import RunMap

DOMDYING_alive, DOMDYING_dying, DOMDYING_dead = 0, 1, 2
NODE_MASK_ALL = (1 << MAX_NUMNODES) - 1
SHUTDOWN_CODE_NONE = 0xFFFFFFFF  # shutdown_code starts as ~0u (domain_create)
SHUTDOWN_crash = 3  # public/sched.h
MAX_VIRT_CPUS = 8192  # x86 asm/config.h: the most vCPUs a domain can have


@dataclass(eq=False, slots=True)
class Domain:
    """One domain. Counters change under ``page_alloc_lock`` and, for claims, ``heap_lock``."""

    domain_id: int
    is_hvm: bool = False
    pv_32bit: bool = False  # a 32-bit PV guest (XEN_DOMCTL_set_address_size 32)
    physaddr_bitsize: int = 0  # a 32-bit PV guest's limit on machine addresses, 0: none
    cdf_flags: int = 0
    emulation_flags: int = 0  # XEN_X86_EMU_* chosen at createdomain
    ssidref: int = 0
    handle: bytes = bytes(16)
    max_vcpus: int = 0
    nr_vcpus: int = 0  # vCPUs created by XEN_DOMCTL_max_vcpus
    vcpu_online: int = 0  # bit i: vCPU i is up (not VPF_down); vCPUs are created down
    # Per-vCPU scheduling affinity (sched_unit cpu_hard_affinity / cpu_soft_affinity) as CPU
    # masks, kept only for vCPUs set to less than every CPU, which is where vCPUs start.
    cpu_hard_affinity: dict[int, int] = field(default_factory=dict)
    cpu_soft_affinity: dict[int, int] = field(default_factory=dict)
    vm_assist: int = 0  # VMASST_TYPE_* bits, from vCPU 0's first context (arch_set_info_guest)
    cpupool: int = 0
    is_dying: int = DOMDYING_alive
    max_pages: int = 0  # a new domain may not allocate until max_mem raises this
    tot_pages: int = 0
    outstanding_pages: int = 0  # whole claim: host-wide plus node claims (v7)
    node_claims: int = 0
    claims: dict[int, int] = field(default_factory=dict)
    node_affinity: int = NODE_MASK_ALL
    auto_node_affinity: bool = True
    last_alloc_node: int = 0
    controller_pause_count: int = 1  # created paused by the controller
    creation_finished: bool = False
    shutdown_code: int = SHUTDOWN_CODE_NONE
    is_shut_down: bool = False
    # mfn -> gfn (or None), owned pages; a PV guest's gfns are labels, so any step merges
    pages: RunMap = field(default_factory=lambda: RunMap(any_step=True))
    p2m: RunMap = field(default_factory=RunMap)  # gfn -> mfn, translated domains only
    max_mapped_pfn: int = 0  # the highest gfn the p2m ever mapped, never lowered
    node_pages: dict[int, int] = field(default_factory=dict)  # pages owned per node
    # Xen's pages for the domain (MFNs), owned by no one (alloc_domain_struct, shared_info)
    struct_page: int | None = None
    shared_info: int | None = None
    # The HAP/shadow paging pool (d->arch.paging): free pool pages in list order, and the
    # pool pages holding the top-level p2m tables (p2m_pages).
    paging_pool: PageList = field(default_factory=PageList)
    paging_p2m: list[int] = field(default_factory=list)
    # Populate-on-demand (p2m->pod): entries gfn -> None, the cache of domain-owned pages
    # (2 MiB heads and single pages, each in list order) and Xen's two counters.
    pod_entries: RunMap = field(default_factory=RunMap)
    pod_entry_count: int = 0
    pod_count: int = 0
    pod_super: PageList = field(default_factory=PageList)
    pod_single: PageList = field(default_factory=PageList)
    vnuma: VnumaInfo | None = None
    page_alloc_lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def is_translated(self) -> bool:
        """HVM and PVH guests have a p2m (paging_mode_translate); PV guests do not."""
        return self.is_hvm

    def xen_frames(self) -> list[tuple[int, int]]:
        """Xen's frames for this domain as ``(mfn, pages)``: structure, shared info, pool."""
        single = [self.struct_page, self.shared_info, *self.paging_p2m]
        return [(mfn, 1) for mfn in single if mfn is not None] + list(self.paging_pool.spans())


def domain_crash(d: Domain) -> None:
    """domain_crash -> domain_shutdown(d, SHUTDOWN_crash): the first reason sticks. No vCPU
    runs here, so each is paused for the shutdown at once and the domain is shut down
    (__domain_finalise_shutdown)."""
    if d.shutdown_code == SHUTDOWN_CODE_NONE:
        d.shutdown_code = SHUTDOWN_crash
    d.is_shut_down = True


class VnumaInfo(NamedTuple):
    """A domain's virtual NUMA topology (struct vnuma_info, XEN_DOMCTL_setvnumainfo)."""

    nr_vnodes: int
    vdistance: list[int]  # nr_vnodes * nr_vnodes, row-major
    vcpu_to_vnode: list[int]  # one per vCPU (max_vcpus)
    vnode_to_pnode: list[int]  # nodeid_t per vnode
    vmemrange: list[tuple[int, int, int, int]]  # (start, end, flags, nid)

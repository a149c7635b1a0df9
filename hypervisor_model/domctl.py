"""``__HYPERVISOR_domctl``: domain control for the toolstack (xen/common/domctl.c).

Order of checks as do_domctl: copy in (EFAULT), interface version (EACCES), domain lookup
(ESRCH for the control domain, EPERM for others), the XSM check (dummy policy: control
domain only), then the command under the global domctl lock. Where the host's release
differs (versions, layouts, lookups), ``hv.release`` says how.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from construct import Construct

from hypervisor_model import claims, paging, pod, vcpu, vnuma
from hypervisor_model.bitmap import bitmap_to_xenctl_bitmap, xenctl_bitmap_to_bitmap
from hypervisor_model.codec import Record, codec
from hypervisor_model.domain import (
    MAX_VIRT_CPUS,
    Domain,
    DOMDYING_alive,
    DOMDYING_dead,
    DOMDYING_dying,
)
from hypervisor_model.domheap import relinquish_some
from hypervisor_model.errors import Restart, XenError
from hypervisor_model.guest_memory import (
    build,
    copy_struct_from_guest,
    parse,
)
from hypervisor_model.host import MAX_NUMNODES
from hypervisor_model.memflags import MEMF_bits
from hypervisor_model.public import domctl as abi
from hypervisor_model.public.errno import (
    E2BIG,
    EACCES,
    EFAULT,
    EINVAL,
    ENOMEM,
    ENOSYS,
    EOPNOTSUPP,
    EOVERFLOW,
    EPERM,
    ERANGE,
    ESRCH,
)
from hypervisor_model.public.releases import Release
from hypervisor_model.public.xen import DOMID_FIRST_RESERVED

if TYPE_CHECKING:
    from hypervisor_model.hypervisor import Hypervisor

# Entries of a 32-bit PV guest's machine-to-phys window (0xF5800000..0xFFE00000, 4 bytes each).
MACH2PHYS_COMPAT_NR_ENTRIES = (0xFFE00000 - 0xF5800000) >> 2
PAGE_SHIFT = 12
MAX_CLAIM_ENTRIES = MAX_NUMNODES + 1  # one entry per node plus the host-wide one (v7)
RELINQUISH_BATCH = 64  # runs freed between continuation points of destroydomain
GRANT_VERSION_MASK = 0xF  # XEN_DOMCTL_GRANT_version_mask
GNTTAB_MAX_VERSION = 2  # grant_table.c default on x86 (gnttab=max-ver: unset)
INITIAL_NR_GRANT_FRAMES = 1  # x86 asm/grant_table.h
KNOWN_CDF = (abi.XEN_DOMCTL_CDF_MAX << 1) - 1
HVM_MAX_VCPUS = 128  # public/hvm/hvm_info_table.h
XEN_X86_MSR_RELAXED = 1 << 0  # the only x86 arch misc_flags bit
MAX_CONTROLLER_PAUSES = 255  # _domain_pause_by_systemcontroller's limit
INVALID_M2P_ENTRY = (1 << 64) - 1  # a page with no guest frame (x86 asm/mm.h)
HAP_PADDR_BITS = 52  # hap_paddr_bits of the model's CPUs: the full PADDR_BITS
# getdomaininfo's constants, bound once: it runs per domain of a list
XEN_DOMINF_dying, XEN_DOMINF_shutdown = abi.XEN_DOMINF_dying, abi.XEN_DOMINF_shutdown
XEN_DOMINF_paused, XEN_DOMINF_xs_domain = abi.XEN_DOMINF_paused, abi.XEN_DOMINF_xs_domain
XEN_DOMINF_hvm_guest, XEN_DOMINF_hap = abi.XEN_DOMINF_hvm_guest, abi.XEN_DOMINF_hap
XEN_DOMINF_shutdownshift = abi.XEN_DOMINF_shutdownshift
XEN_DOMCTL_CDF_xs_domain, XEN_DOMCTL_CDF_hap = abi.XEN_DOMCTL_CDF_xs_domain, abi.XEN_DOMCTL_CDF_hap
XEN_INVALID_MAX_VCPU_ID = abi.XEN_INVALID_MAX_VCPU_ID


def do_domctl(hv: Hypervisor, current: Domain, arg: int, *_: int) -> int:
    """A domctl; one preempted (Restart) has left the domctl lock and is issued again."""
    while True:
        try:
            return _domctl(hv, current, arg)
        except Restart:
            hv.preempt_check()  # the continuation, re-issued after other callers ran


def _domctl(hv: Hypervisor, current: Domain, arg: int) -> int:
    release = hv.release
    op = copy_struct_from_guest(hv.caller_memory, arg, abi.xen_domctl)
    stable = op.cmd in release.stable_domctls
    if op.interface_version != (0 if stable else release.domctl_interface_version):
        raise XenError(EACCES, "interface version mismatch")
    d = None
    if op.cmd != abi.XEN_DOMCTL_createdomain:
        d = hv.find_domain(op.domain)
        if d is None and op.cmd == abi.XEN_DOMCTL_getdomaininfo and release.getdomaininfo_next:
            d = _next_domain(hv, op.domain)
        if d is None:
            eperm = release.missing_domain_eperm and not hv.is_control_domain(current)
            raise XenError(EPERM if eperm else ESRCH)
    reply = _Reply(hv, arg, op)
    if op.cmd == abi.XEN_DOMCTL_getdomaininfo:
        assert d is not None
        if not (hv.is_control_domain(current) or current.cdf_flags & abi.XEN_DOMCTL_CDF_xs_domain):
            raise XenError(EPERM)  # xsm_getdomaininfo(XSM_XS_PRIV)
        info = codec(abi.xen_domctl_getdomaininfo).make(getdomaininfo(hv, d))
        reply.payload(abi.xen_domctl_getdomaininfo, info)
        reply.op.domain = d.domain_id  # the domain found, when it was not the one asked for
        return reply.send(0)
    if not hv.is_control_domain(current):
        raise XenError(EPERM)  # xsm_domctl(XSM_PRIV)
    if op.cmd == abi.XEN_DOMCTL_getvcpuinfo:  # answered without the domctl lock
        assert d is not None
        return vcpu.getvcpuinfo(hv, current, d, reply)
    with hv.domctl_lock:
        handler = None if op.cmd in release.missing_domctls else _COMMANDS.get(op.cmd)
        if handler is None:
            raise XenError(ENOSYS)  # arch_do_domctl's default
        return handler(hv, current, d, reply)


def _next_domain(hv: Hypervisor, domid: int) -> Domain | None:
    """4.17's getdomaininfo of a missing id: the first domain at or above it, in the domain
    list's (domid) order; a reserved id is EINVAL (4.17 domctl.c)."""
    if domid >= DOMID_FIRST_RESERVED:
        raise XenError(EINVAL, "reserved domid")
    return next((d for d in hv.domain_list() if d.domain_id >= domid), None)


class _Reply:
    """The domctl as it will be copied back (``copyback`` in do_domctl)."""

    def __init__(self, hv: Hypervisor, arg: int, op: Record) -> None:
        self.hv, self.arg, self.op = hv, arg, op
        self.copyback = False

    def payload(self, layout: Construct, obj: Mapping[str, object] | Record) -> None:
        """Overwrite the start of the union; the rest keeps the caller's bytes, as in C."""
        new = build(layout, obj)
        self.op.u = new + self.op.u[len(new) :]
        self.copyback = True

    def send(self, rc: int) -> int:
        if self.copyback and not self.hv.caller_memory.try_copy_to_guest(
            self.arg, build(abi.xen_domctl, self.op)
        ):
            return -EFAULT
        return rc


# -- createdomain / destroydomain / pause ------------------------------------------------


def _sanitise_domain_config(config: Record) -> None:
    """The createdomain checks that apply to this host (sanitise_domain_config and the x86
    arch checks): no IOMMU, vPMU, vmtrace, TBOOT or nested virtualisation here."""
    flags = config.flags
    if flags & ~KNOWN_CDF or config.grant_opts & ~GRANT_VERSION_MASK or config.max_vcpus < 1:
        raise XenError(EINVAL, "bad createdomain configuration")
    hvm = flags & abi.XEN_DOMCTL_CDF_hvm
    if flags & abi.XEN_DOMCTL_CDF_hap and not hvm:
        raise XenError(EINVAL, "HAP requested for a PV guest")
    unsupported = (
        abi.XEN_DOMCTL_CDF_iommu
        | abi.XEN_DOMCTL_CDF_vpmu
        | abi.XEN_DOMCTL_CDF_s3_integrity
        | abi.XEN_DOMCTL_CDF_nested_virt
        | abi.XEN_DOMCTL_CDF_trap_unmapped_accesses  # Arm only: x86 refuses it
    )
    if flags & unsupported or config.iommu_opts or config.vmtrace_size:
        raise XenError(EINVAL, "feature not available on this host")
    # arch_sanitise_domain_config: vCPU limit, misc flags, altp2m (unavailable here; before
    # 4.22 createdomain has no altp2m member to ask with)
    if config.max_vcpus > (HVM_MAX_VCPUS if hvm else MAX_VIRT_CPUS):
        raise XenError(EINVAL, f"too many vCPUs: {config.max_vcpus}")
    altp2m = "altp2m" in config and (config.altp2m.opts or config.altp2m.nr)
    if config.arch.misc_flags & ~XEN_X86_MSR_RELAXED or altp2m:
        raise XenError(EINVAL, "bad arch misc_flags or altp2m options")


def _grant_table_init(config: Record, release: Release) -> None:
    """grant_table_init's checks, after the domain exists (so the domid is freed again): a
    grant version 1..GNTTAB_MAX_VERSION, and at least INITIAL_NR_GRANT_FRAMES grant frames
    where a negative count means Xen's default (64); 4.17 also caps both counts at the
    defaults (opt_max_grant_frames, opt_max_maptrack_frames)."""
    version = config.grant_opts & GRANT_VERSION_MASK
    if not 1 <= version <= GNTTAB_MAX_VERSION:
        raise XenError(EINVAL, f"expected grant version 1..{GNTTAB_MAX_VERSION}, got {version}")
    if 0 <= config.max_grant_frames < INITIAL_NR_GRANT_FRAMES:
        raise XenError(EINVAL, f"expected at least {INITIAL_NR_GRANT_FRAMES} grant frame, got 0")
    if release.grant_frame_caps is not None:
        caps = release.grant_frame_caps
        frames = (config.max_grant_frames, config.max_maptrack_frames)
        if any(n > cap for n, cap in zip(frames, caps, strict=True)):  # negative: the cap
            raise XenError(EINVAL, f"expected at most {caps} grant/maptrack frames, got {frames}")


def emulation_flags_ok(hvm: bool, flags: int, pirq_optional: bool = True) -> bool:
    """The emulators a domU may have (x86 emulation_flags_ok): a PV guest at most the PIT;
    a PVH guest exactly the LAPIC; an HVM guest every emulator but vPCI, PIRQ optional
    (master) or required (4.17)."""
    if not hvm:
        return not flags & ~abi.XEN_X86_EMU_PIT
    hvm_all = abi.XEN_X86_EMU_ALL & ~abi.XEN_X86_EMU_VPCI
    optional = abi.XEN_X86_EMU_USE_PIRQ if pirq_optional else 0
    return flags == abi.XEN_X86_EMU_LAPIC or (flags | optional) == hvm_all


def _createdomain(hv: Hypervisor, current: Domain, d: Domain | None, reply: _Reply) -> int:
    layout = hv.release.xen_domctl_createdomain
    config = parse(layout, reply.op.u)
    domid = hv.domid_alloc(reply.op.domain)
    try:
        _sanitise_domain_config(config)
    except XenError:
        hv.leak_domid(domid)  # domain_create returns before the id is ever freed
        raise
    hvm = bool(config.flags & abi.XEN_DOMCTL_CDF_hvm)
    if not config.flags & abi.XEN_DOMCTL_CDF_hvm:
        config.flags |= abi.XEN_DOMCTL_CDF_oos_off  # arch_sanitise_domain_config, copied back
        reply.payload(layout, config)
    struct_page = paging.alloc_xenheap_page(hv.heap, MEMF_bits(paging.DOMAIN_STRUCT_BITS))
    if struct_page is None:  # alloc_domain_struct: domain_create returns before the id is freed
        hv.leak_domid(domid)
        raise XenError(ENOMEM, "no page for the domain structure")
    new = Domain(
        domid,
        is_hvm=hvm,
        emulation_flags=config.arch.emulation_flags,
        cdf_flags=config.flags,
        ssidref=config.ssidref,
        handle=bytes(config.handle),
        max_vcpus=config.max_vcpus,
        cpupool=config.cpupool_id,
        struct_page=struct_page,
    )
    try:
        _arch_domain_create(hv, new)
        _grant_table_init(config, hv.release)
        if config.cpupool_id != 0:
            raise XenError(ESRCH, "no such cpupool")  # cpupool_add_domain: only pool 0 exists
    except XenError:
        _free_xen_pages(hv, new)  # domain_create's fail path, which frees the domid
        raise
    hv.add_domain(new)
    reply.op.domain = domid
    reply.copyback = True
    return reply.send(0)


def _arch_domain_create(hv: Hypervisor, d: Domain) -> None:
    """The emulator checks, the shared-info page, and an HVM guest's paging pool."""
    if d.emulation_flags & ~abi.XEN_X86_EMU_ALL:
        raise XenError(EINVAL, "invalid emulation bitmap")
    if not emulation_flags_ok(d.is_hvm, d.emulation_flags, hv.release.hvm_pirq_optional):
        raise XenError(EOPNOTSUPP, f"emulators {d.emulation_flags:#x} not allowed")
    d.shared_info = paging.alloc_xenheap_page(hv.heap)
    if d.shared_info is None:
        raise XenError(ENOMEM, "no page for shared info")
    if d.is_hvm:
        paging.paging_enable(hv, d)  # hvm_domain_initialise


def _free_xen_pages(hv: Hypervisor, d: Domain) -> None:
    """Xen's pages for a domain go back: the pool, then shared info, then the structure
    (paging_teardown, arch_domain_destroy, free_domain_struct)."""
    paging.paging_teardown(hv, d)
    for mfn in (d.shared_info, d.struct_page):
        paging.free_xenheap_page(hv.heap, mfn)
    d.shared_info = d.struct_page = None


def _destroydomain(hv: Hypervisor, current: Domain, d: Domain, reply: _Reply) -> int:
    """domain_kill: release every claim at once, then give the memory back in batches,
    letting other hypercalls run in between (Xen's continuations)."""
    if d is current:
        raise XenError(EINVAL, "a domain cannot destroy itself")
    if d.is_dying == DOMDYING_alive:
        with d.page_alloc_lock:
            d.is_dying = DOMDYING_dying
            with hv.heap.lock:
                claims.release_all(hv.heap, d)
        paging.paging_teardown(hv, d)  # domain_relinquish_resources: PROG_paging first
        pod.empty_cache(d)  # ... whose paging_teardown ends with p2m_pod_empty_cache
    if d.is_dying == DOMDYING_dying:
        if not relinquish_some(hv.heap, d, RELINQUISH_BATCH):
            raise Restart  # domain_kill's -ERESTART: the next batch when re-issued
        d.is_dying = DOMDYING_dead
        with d.page_alloc_lock:
            hv.remove_domain(d)
            _free_xen_pages(hv, d)  # complete_domain_destroy
    return 0


def _pausedomain(hv: Hypervisor, current: Domain, d: Domain, reply: _Reply) -> int:
    if d is current:
        raise XenError(EINVAL, "a domain cannot pause itself")
    if d.controller_pause_count >= MAX_CONTROLLER_PAUSES:
        raise XenError(EOVERFLOW, "controller pause count at its limit")
    d.controller_pause_count += 1
    return 0


def _unpausedomain(hv: Hypervisor, current: Domain, d: Domain, reply: _Reply) -> int:
    """domain_unpause_by_systemcontroller: the first unpause to zero ends creation."""
    if d.controller_pause_count == 0:
        raise XenError(EINVAL, "domain is not paused by the controller")
    d.controller_pause_count -= 1
    if d.controller_pause_count == 0 and not d.creation_finished:
        d.creation_finished = True
        vcpu.first_unpause(d)  # no guest runs: stand in for its kernel's boot
    return 0


# -- information and limits --------------------------------------------------------------


def getdomaininfo(hv: Hypervisor, d: Domain) -> tuple[Any, ...]:
    """The getdomaininfo record (getdomaininfo() in domctl.c) as its values, flat in the
    layout's order: a record is made from them, or a list packs them straight into its
    buffer (naming twenty fields, or making a record per domain, costs more than packing)."""
    online, flags = vcpu.domain_state(hv, d)
    cdf = d.cdf_flags
    if d.is_dying == DOMDYING_dead:
        flags |= XEN_DOMINF_dying
    if d.is_shut_down:
        flags |= XEN_DOMINF_shutdown
    if d.controller_pause_count > 0:
        flags |= XEN_DOMINF_paused
    if cdf & XEN_DOMCTL_CDF_xs_domain:
        flags |= XEN_DOMINF_xs_domain
    if d.is_hvm:
        flags |= XEN_DOMINF_hvm_guest
    if cdf & XEN_DOMCTL_CDF_hap:
        flags |= XEN_DOMINF_hap
    flags |= (d.shutdown_code << XEN_DOMINF_shutdownshift) & 0xFFFFFFFF
    nr_vcpus = d.nr_vcpus
    return (
        d.domain_id,  # domain
        0,  # pad1
        flags,
        d.tot_pages,
        d.max_pages,
        d.outstanding_pages,
        0,  # shr_pages
        0,  # paged_pages
        # shared_info_frame, mfn_to_gfn of the shared-info page: unmapped (~0) for a
        # translated guest, its MFN for a PV guest
        INVALID_M2P_ENTRY if d.is_translated else d.shared_info or 0,
        0,  # cpu_time
        online,  # nr_online_vcpus
        nr_vcpus - 1 if nr_vcpus else XEN_INVALID_MAX_VCPU_ID,  # max_vcpu_id
        0,  # ssidref: the dummy XSM's xsm_security_domaininfo fills nothing in
        d.handle,
        d.cpupool,
        HAP_PADDR_BITS,  # gpaddr_bits, arch_get_domain_info's: for PV guests too
        bytes(7),  # pad2
        d.emulation_flags,  # arch_config.emulation_flags
        0,  # arch_config.misc_flags
    )


def _max_mem(hv: Hypervisor, current: Domain, d: Domain, reply: _Reply) -> int:
    """Set max_pages from KiB, clamped to 32 bits, with no check against tot_pages."""
    max_memkb = parse(abi.xen_domctl_max_mem, reply.op.u).max_memkb
    with d.page_alloc_lock:
        d.max_pages = min(max_memkb >> 2, 0xFFFFFFFF)
    return 0


def _max_vcpus(hv: Hypervisor, current: Domain, d: Domain, reply: _Reply) -> int:
    """Create the vCPUs fixed at createdomain; any other count is EINVAL."""
    wanted = parse(abi.xen_domctl_max_vcpus, reply.op.u).max
    if d is current or wanted != d.max_vcpus:
        raise XenError(EINVAL, f"expected max_vcpus {d.max_vcpus}, got {wanted}")
    d.nr_vcpus = wanted
    vcpu.update_node_affinity(hv, d)
    return 0


def _set_address_size(hv: Hypervisor, current: Domain, d: Domain, reply: _Reply) -> int:
    """A PV guest's address width (x86 arch_do_domctl): 64, or 32 to switch to compat while
    the guest has no memory yet (switch_compat: EACCES after); back from 32 to 64 is
    EINVAL; HVM guests have none (EOPNOTSUPP)."""
    size = parse(abi.xen_domctl_address_size, reply.op.u).size
    if d.is_hvm:
        raise XenError(EOPNOTSUPP, "HVM guests have no PV address size")
    if size == 32 and not d.pv_32bit:
        if d.tot_pages:
            raise XenError(EACCES, "switch_compat after the guest has memory")
        d.pv_32bit = True
        if hv.heap.max_page > MACH2PHYS_COMPAT_NR_ENTRIES:  # switch_compat
            # a 32-bit guest's M2P window holds 2^25 entries: keep its frames below them
            d.physaddr_bitsize = MACH2PHYS_COMPAT_NR_ENTRIES.bit_length() - 1 + PAGE_SHIFT
    elif size not in (32, 64) or (size == 64 and d.pv_32bit):
        raise XenError(EINVAL, f"cannot set address size {size}")
    return 0


def _get_address_size(hv: Hypervisor, current: Domain, d: Domain, reply: _Reply) -> int:
    if d.is_hvm:
        raise XenError(EOPNOTSUPP, "HVM guests have no PV address size")
    reply.payload(abi.xen_domctl_address_size, dict(size=32 if d.pv_32bit else 64))
    return reply.send(0)


# -- node affinity -----------------------------------------------------------------------


def _setnodeaffinity(hv: Hypervisor, current: Domain, d: Domain, reply: _Reply) -> int:
    """xenctl_bitmap_to_nodemask, then domain_set_node_affinity: a mask with no online node
    is EINVAL, a full mask means automatic affinity."""
    nodemap = parse(abi.xen_domctl_nodeaffinity, reply.op.u).nodemap
    mask = xenctl_bitmap_to_bitmap(hv.caller_memory, nodemap, MAX_NUMNODES)
    if not mask & hv.heap.online_mask:
        raise XenError(EINVAL, "node affinity without an online node")
    if mask == (1 << MAX_NUMNODES) - 1:
        d.auto_node_affinity = True
    else:
        d.auto_node_affinity = False
        d.node_affinity = mask
    vcpu.update_node_affinity(hv, d)
    return 0


def _getnodeaffinity(hv: Hypervisor, current: Domain, d: Domain, reply: _Reply) -> int:
    """nodemask_to_xenctl_bitmap."""
    nodemap = parse(abi.xen_domctl_nodeaffinity, reply.op.u).nodemap
    bitmap_to_xenctl_bitmap(
        hv.caller_memory,
        nodemap,
        d.node_affinity,
        MAX_NUMNODES,
        last_byte_quirk=hv.release.bitmap_last_byte_quirk,
    )
    return 0


# -- claim sets (v7) ----------------------------------------------------------------------


def _claim_memory(hv: Hypervisor, current: Domain, d: Domain, reply: _Reply) -> int:
    """v7 claim_memory(): SET installs a claim set, GET reads it back. ``nr_entries`` is
    copied back only on GET once its buffer exists (success, ERANGE or EFAULT)."""
    req = parse(abi.xen_domctl_claim_memory, reply.op.u)
    nr = req.nr_entries
    if req.mode == abi.XEN_DOMCTL_CLAIM_MEMORY_SET:
        if nr == 0:
            raise XenError(EINVAL, "empty claim set")
        if nr > MAX_CLAIM_ENTRIES:
            raise XenError(E2BIG, f"expected at most {MAX_CLAIM_ENTRIES} entries, got {nr}")
    elif req.mode == abi.XEN_DOMCTL_CLAIM_MEMORY_GET:
        nr = min(nr, MAX_CLAIM_ENTRIES)
    else:
        raise XenError(EOPNOTSUPP, f"unknown claim mode {req.mode}")
    if d.is_dying:
        raise XenError(ESRCH, "domain is dying")
    if req.mode == abi.XEN_DOMCTL_CLAIM_MEMORY_SET:
        entry = codec(abi.xen_memory_claim)
        raw = hv.caller_memory.copy_from_guest(req.claim_set, nr * entry.size)
        entries = entry.unpack_array(raw)  # (pages, target, cmd), the fields in order
        with d.page_alloc_lock, hv.heap.lock:
            claims.set_claim_entries(hv.heap, d, entries)
        return 0
    with hv.heap.lock:
        current_set = claims.get_claim_entries(hv.heap, d)
    needed = len(current_set)
    reply.payload(abi.xen_domctl_claim_memory, dict(req, nr_entries=needed))
    if needed > nr:
        return reply.send(-ERANGE)
    out = b"".join(
        build(abi.xen_memory_claim, dict(pages=pages, target=target, cmd=0))
        for target, pages in current_set
    )
    return reply.send(0 if hv.caller_memory.try_copy_to_guest(req.claim_set, out) else -EFAULT)


_COMMANDS: dict[int, Callable[..., int]] = {
    abi.XEN_DOMCTL_createdomain: _createdomain,
    abi.XEN_DOMCTL_destroydomain: _destroydomain,
    abi.XEN_DOMCTL_pausedomain: _pausedomain,
    abi.XEN_DOMCTL_unpausedomain: _unpausedomain,
    abi.XEN_DOMCTL_max_mem: _max_mem,
    abi.XEN_DOMCTL_max_vcpus: _max_vcpus,
    abi.XEN_DOMCTL_set_address_size: _set_address_size,
    abi.XEN_DOMCTL_get_address_size: _get_address_size,
    abi.XEN_DOMCTL_setnodeaffinity: _setnodeaffinity,
    abi.XEN_DOMCTL_getnodeaffinity: _getnodeaffinity,
    abi.XEN_DOMCTL_claim_memory: _claim_memory,
    abi.XEN_DOMCTL_setvcpucontext: vcpu.setvcpucontext,
    abi.XEN_DOMCTL_getvcpuaffinity: vcpu.getvcpuaffinity,
    abi.XEN_DOMCTL_setvcpuaffinity: vcpu.setvcpuaffinity,
    abi.XEN_DOMCTL_gethvmcontext: vcpu.gethvmcontext,
    abi.XEN_DOMCTL_sethvmcontext: vcpu.sethvmcontext,
    abi.XEN_DOMCTL_shadow_op: paging.shadow_op,
    abi.XEN_DOMCTL_setvnumainfo: vnuma.setvnumainfo,
    abi.XEN_DOMCTL_get_paging_mempool_size: paging.get_paging_mempool_size,
    abi.XEN_DOMCTL_set_paging_mempool_size: paging.set_paging_mempool_size,
}

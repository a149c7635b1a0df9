"""vCPUs: which are up, what an idle host reports of them, and the domctls that load a vCPU's
context, read its state or set where it may run (common/domctl.c; sched/core.c; x86 domain.c
arch_set_info_guest; hvm/save.c).

A vCPU is created down (vcpu_create sets VPF_down). It comes up when its context is set
with VGCF_online, or when an HVM context load carries a CPU record for it; a NULL context
(vcpu_reset) and every HVM context load put vCPUs down again. No guest code runs here, so
two things stand in for it: at a built domain's first unpause its kernel brings the other
vCPUs up, as a booting kernel does, and every online vCPU then idles, blocked, except that
dom0's vCPU 0 runs the toolstack issuing the hypercalls. Registers are checked where Xen
checks them without page-table contents or a CPU policy, and not kept: a saved HVM context
holds the registers of a vCPU after reset.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from hypervisor_model.bitmap import bitmap_to_xenctl_bitmap, xenctl_bitmap_to_bitmap
from hypervisor_model.errors import XenError
from hypervisor_model.guest_memory import (
    USER_LIMIT,
    GuestFault,
    build,
    copy_struct_from_guest,
    parse,
    sizeof,
)
from hypervisor_model.public import arch_x86, hvm_save
from hypervisor_model.public import domctl as abi
from hypervisor_model.public.errno import EFAULT, EINVAL, ENODATA, ENOENT, ENOSPC, ESRCH
from hypervisor_model.public.xen import (
    VMASST_TYPE_4gb_segments,
    VMASST_TYPE_4gb_segments_notify,
    VMASST_TYPE_architectural_iopl,
    VMASST_TYPE_m2p_strict,
    VMASST_TYPE_pae_extended_cr3,
    VMASST_TYPE_runstate_update_flag,
    VMASST_TYPE_writable_pagetables,
)

if TYPE_CHECKING:
    from hypervisor_model.domain import Domain
    from hypervisor_model.domctl import _Reply
    from hypervisor_model.hypervisor import Hypervisor

# x86 asm/domain.h: the VM assists each kind of guest may ask for (vCPU 0's context).
PV32_VM_ASSIST_MASK = sum(
    1 << t
    for t in (
        VMASST_TYPE_4gb_segments,
        VMASST_TYPE_4gb_segments_notify,
        VMASST_TYPE_writable_pagetables,
        VMASST_TYPE_pae_extended_cr3,
        VMASST_TYPE_architectural_iopl,
        VMASST_TYPE_runstate_update_flag,
    )
)
PV64_VM_ASSIST_MASK = PV32_VM_ASSIST_MASK | 1 << VMASST_TYPE_m2p_strict
HVM_VM_ASSIST_MASK = 1 << VMASST_TYPE_runstate_update_flag
HYPERVISOR_VIRT_END = 0xFFFF_8800_0000_0000
MAX_GDT_FRAMES, GDT_ENTRIES_PER_FRAME = 16, 512  # pv.gdt_frames; 4 KiB of 8-byte descriptors
MAX_LDT_ENTRIES = 8192
X86_EFLAGS_VM = 1 << 17
X86_CR0_PE, X86_CR0_ET, X86_CR0_PG = 1 << 0, 1 << 4, 1 << 31
# CR0 bits a guest may have (HVM_CR0_GUEST_RESERVED_BITS is the rest): PE MP EM TS ET NE,
# WP, AM, NW CD PG
HVM_CR0_GUEST_ALLOWED = sum(1 << bit for bit in (0, 1, 2, 3, 4, 5, 16, 18, 29, 30, 31))
X86_DR6_DEFAULT, X86_DR7_DEFAULT = 0xFFFF0FF0, 0x400
XEN_MSR_PAT = 0x0007040600070406  # the PAT every vCPU starts with (asm/processor.h)
MTRR_CAP_RESET = hvm_save.MTRR_VCNT | 1 << 8 | 1 << 10  # VCNT, fixed ranges, write-combining
DESCRIPTOR = sizeof(hvm_save.hvm_save_descriptor)


# -- state -----------------------------------------------------------------------------------


def is_online(d: Domain, vcpu: int) -> bool:
    return bool(d.vcpu_online >> vcpu & 1)


def is_running(hv: Hypervisor, d: Domain, vcpu: int) -> bool:
    """Only dom0's vCPU 0 runs: it is issuing the hypercalls."""
    return vcpu == 0 and is_online(d, 0) and hv.is_control_domain(d)


def is_blocked(hv: Hypervisor, d: Domain, vcpu: int) -> bool:
    """An online vCPU of a started domain idles, waiting for events; a domain never
    unpaused has never run, so nothing of it waits."""
    return is_online(d, vcpu) and d.creation_finished and not is_running(hv, d, vcpu)


def domain_state(hv: Hypervisor, d: Domain) -> tuple[int, int]:
    """getdomaininfo's online count and flags: blocked only if every online vCPU is,
    running if any is; neither without an online vCPU (domctl.c getdomaininfo)."""
    online = d.vcpu_online.bit_count()
    if not online:
        return 0, 0
    running = is_running(hv, d, 0)
    blocked = d.creation_finished and not running
    return online, (abi.XEN_DOMINF_blocked if blocked else 0) | (
        abi.XEN_DOMINF_running if running else 0
    )


def first_unpause(d: Domain) -> None:
    """The guest starts: a kernel whose boot vCPU is up brings up the others."""
    if d.vcpu_online & 1:
        d.vcpu_online = (1 << d.nr_vcpus) - 1


def processor(hv: Hypervisor, d: Domain, vcpu: int) -> int:
    """Where Xen placed the vCPU (sched_select_initial_cpu): vCPU 0 on the first CPU of the
    domain's nodes, each next vCPU on the next of those CPUs, round. A vCPU whose hard
    affinity leaves that CPU moves (sched_unit_migrate_finish) to the lowest CPU it prefers,
    or else may, run on: the model's pick, as no scheduler runs here."""
    every = range(hv.nr_cpus)
    cpus = [c for c in every if d.node_affinity >> hv.cpu_node[c] & 1] or list(every)
    cpu = cpus[vcpu % len(cpus)]
    hard = hard_affinity(hv, d, vcpu) & pool_cpus(hv, d)
    if hard >> cpu & 1:
        return cpu
    pick = hard & soft_affinity(hv, d, vcpu) or hard
    return (pick & -pick).bit_length() - 1


# -- scheduling affinity ------------------------------------------------------------------------


def pool_cpus(hv: Hypervisor, d: Domain) -> int:
    """cpupool_domain_master_cpumask: the CPUs of the domain's pool; Pool-0 has them all."""
    return (1 << hv.nr_cpus) - 1


def hard_affinity(hv: Hypervisor, d: Domain, vcpu: int) -> int:
    """The CPUs the vCPU may run on; every CPU unless set (sched_init_vcpu)."""
    return d.cpu_hard_affinity.get(vcpu, (1 << hv.nr_cpus) - 1)


def soft_affinity(hv: Hypervisor, d: Domain, vcpu: int) -> int:
    """The CPUs the vCPU prefers; every CPU unless set."""
    return d.cpu_soft_affinity.get(vcpu, (1 << hv.nr_cpus) - 1)


def update_node_affinity(hv: Hypervisor, d: Domain) -> None:
    """domain_update_node_affinity: once a domain has vCPUs, automatic node affinity is the
    nodes of the pool's CPUs its vCPUs may run on (the union of their hard affinities),
    narrowed to those they prefer (soft) if that leaves any."""
    if not d.nr_vcpus or not d.auto_node_affinity:
        return
    every = (1 << hv.nr_cpus) - 1

    def union(masks: dict[int, int]) -> int:
        # vCPUs without an entry have every CPU
        return every if len(masks) < d.nr_vcpus else _or(masks.values())

    hard = union(d.cpu_hard_affinity) & pool_cpus(hv, d)
    soft = union(d.cpu_soft_affinity) & hard
    d.node_affinity = hv.cpu_node_mask(soft or hard)


def _or(masks: Iterable[int]) -> int:
    total = 0
    for mask in masks:
        total |= mask
    return total


def _set_affinity(hv: Hypervisor, d: Domain, which: dict[int, int], vcpu: int, mask: int) -> None:
    """sched_set_affinity, then domain_update_node_affinity; every CPU is kept as no entry."""
    if mask == (1 << hv.nr_cpus) - 1:
        which.pop(vcpu, None)
    else:
        which[vcpu] = mask
    update_node_affinity(hv, d)


# -- XEN_DOMCTL_getvcpuinfo -------------------------------------------------------------------


def getvcpuinfo(hv: Hypervisor, current: Domain, d: Domain, reply: _Reply) -> int:
    """A vCPU's state; ENOENT for a vCPU that was never created (domain_vcpu)."""
    vcpu = parse(abi.xen_domctl_getvcpuinfo, reply.op.u).vcpu
    if vcpu >= d.nr_vcpus:
        raise XenError(ENOENT, f"d{d.domain_id} has no vCPU {vcpu}")
    reply.payload(
        abi.xen_domctl_getvcpuinfo,
        dict(
            vcpu=vcpu,
            online=int(is_online(d, vcpu)),
            blocked=int(is_blocked(hv, d, vcpu)),
            running=int(is_running(hv, d, vcpu)),
            cpu_time=0,  # no guest code runs
            cpu=processor(hv, d, vcpu),
        ),
    )
    return reply.send(0)


# -- XEN_DOMCTL_getvcpuaffinity / setvcpuaffinity (sched/core.c vcpu_affinity_domctl) ---------


def _affinity_request(d: Domain, reply: _Reply) -> Any:
    """The request, checked: EINVAL beyond max_vcpus, ESRCH for a vCPU not created, EINVAL
    without a map asked for or with a NULL handle for one (vcpuaffinity_params_invalid)."""
    req = parse(abi.xen_domctl_vcpuaffinity, reply.op.u)
    if req.vcpu >= d.max_vcpus:
        raise XenError(EINVAL, f"vCPU {req.vcpu} beyond max_vcpus")
    if req.vcpu >= d.nr_vcpus:
        raise XenError(ESRCH, f"vCPU {req.vcpu} not created")
    hard, soft = req.flags & abi.XEN_VCPUAFFINITY_HARD, req.flags & abi.XEN_VCPUAFFINITY_SOFT
    if (
        not req.flags
        or (hard and not req.cpumap_hard.bitmap)
        or (soft and not req.cpumap_soft.bitmap)
    ):
        raise XenError(EINVAL, "no affinity map asked for")
    return req


def _write_map(hv: Hypervisor, cpumap: Any, mask: int) -> int:
    """cpumask_to_xenctl_bitmap: 0, or EFAULT if the caller's map is not writable."""
    quirk = hv.release.bitmap_last_byte_quirk
    try:
        bitmap_to_xenctl_bitmap(hv.caller_memory, cpumap, mask, hv.nr_cpus, last_byte_quirk=quirk)
    except XenError as e:
        return e.errno
    return 0


def _answer(hret: int, ret: int) -> int:
    """``hret ?: ret``: both maps are handled even when the hard one's copy faults."""
    if hret or ret:
        raise XenError(hret or ret, "affinity map not writable")
    return 0


def getvcpuaffinity(hv: Hypervisor, current: Domain, d: Domain, reply: _Reply) -> int:
    """The vCPU's hard and soft affinity, as set (not narrowed to the pool)."""
    req = _affinity_request(d, reply)
    hret = ret = 0
    if req.flags & abi.XEN_VCPUAFFINITY_HARD:
        hret = _write_map(hv, req.cpumap_hard, hard_affinity(hv, d, req.vcpu))
    if req.flags & abi.XEN_VCPUAFFINITY_SOFT:
        ret = _write_map(hv, req.cpumap_soft, soft_affinity(hv, d, req.vcpu))
    return _answer(hret, ret)


def setvcpuaffinity(hv: Hypervisor, current: Domain, d: Domain, reply: _Reply) -> int:
    """Set the hard map, then the soft one; each is written back as the scheduler uses it:
    hard within the pool, soft within the pool and the hard map. A hard map with no CPU of
    the pool is EINVAL (vcpu_set_hard_affinity); an unreadable soft map undoes the hard one.
    As in Xen, a map that cannot be written back is EFAULT but the affinity stays set.
    XEN_VCPUAFFINITY_FORCE undoes a guest's temporary pin, which no guest here makes."""
    req = _affinity_request(d, reply)
    vcpu, memory, online = req.vcpu, hv.caller_memory, pool_cpus(hv, d)
    hard_asked = req.flags & abi.XEN_VCPUAFFINITY_HARD
    old_hard = hard_affinity(hv, d, vcpu)
    hret = ret = 0
    if hard_asked:
        new = xenctl_bitmap_to_bitmap(memory, req.cpumap_hard, hv.nr_cpus)
        if not new & online:
            raise XenError(EINVAL, "hard affinity with no CPU of the domain's pool")
        _set_affinity(hv, d, d.cpu_hard_affinity, vcpu, new)
        hret = _write_map(hv, req.cpumap_hard, online & new)
    if req.flags & abi.XEN_VCPUAFFINITY_SOFT:
        try:
            new = xenctl_bitmap_to_bitmap(memory, req.cpumap_soft, hv.nr_cpus)
        except GuestFault:
            if hard_asked:
                _set_affinity(hv, d, d.cpu_hard_affinity, vcpu, old_hard)
            return _answer(hret, EFAULT)
        _set_affinity(hv, d, d.cpu_soft_affinity, vcpu, new)
        ret = _write_map(hv, req.cpumap_soft, new & online & hard_affinity(hv, d, vcpu))
    return _answer(hret, ret)


# -- XEN_DOMCTL_setvcpucontext -----------------------------------------------------------------


def setvcpucontext(hv: Hypervisor, current: Domain, d: Domain, reply: _Reply) -> int:
    """Load a vCPU's context (arch_set_info_guest), or with a NULL context reset it, down."""
    req = parse(abi.xen_domctl_vcpucontext, reply.op.u)
    if d is current or req.vcpu >= d.nr_vcpus:  # no domain_pause(); no such vCPU
        raise XenError(EINVAL, f"cannot set the context of vCPU {req.vcpu} of d{d.domain_id}")
    if not req.ctxt:
        _set_online(d, req.vcpu, False)  # vcpu_reset
        return 0
    compat = d.pv_32bit
    layout = arch_x86.compat_vcpu_guest_context if compat else arch_x86.vcpu_guest_context
    c = copy_struct_from_guest(hv.caller_memory, req.ctxt, layout)
    _check_context(hv, d, req.vcpu, c, compat)
    # arch_set_info_guest: vCPU 0's context sets the domain's VM assists, a PV guest's
    # only while the vCPU is not yet initialised (here: not up)
    if req.vcpu == 0 and (d.is_hvm or not is_online(d, 0)):
        d.vm_assist = c.vm_assist
    _set_online(d, req.vcpu, bool(c.flags & arch_x86.VGCF_online))
    return 0


def _set_online(d: Domain, vcpu: int, online: bool) -> None:
    d.vcpu_online = d.vcpu_online | 1 << vcpu if online else d.vcpu_online & ~(1 << vcpu)


def _canonical(addr: int) -> bool:
    """is_canonical_address: bits 47..63 all equal."""
    top = addr >> 47
    return top in (0, (1 << 17) - 1)


def _addr_ok(addr: int) -> bool:
    """__addr_ok: a guest address, below Xen's range or above its end."""
    return addr < USER_LIMIT or addr >= HYPERVISOR_VIRT_END


def _owns(d: Domain, frame: int) -> bool:
    """get_page_from_mfn: a frame the domain owns (a PV guest's gfns are machine frames)."""
    return d.pages.find(frame) is not None


def _cr3_to_pfn(cr3: int, compat: bool) -> int:
    """xen_cr3_to_pfn of the guest's ABI; the 32-bit one rotates the frame's top bits."""
    if compat:
        return (cr3 >> 12 | cr3 << 20) & 0xFFFFFFFF
    return cr3 >> 12


def _check_context(hv: Hypervisor, d: Domain, vcpu: int, c: Any, compat: bool) -> None:
    """arch_set_info_guest's refusals (EINVAL), in its order, for a vCPU set for the first
    time; a top page table must be a frame the guest owns, its contents are not checked."""
    if not compat and (c.debugreg[6] >> 32 or c.debugreg[7] >> 32):
        raise XenError(EINVAL, "DR6 or DR7 beyond 32 bits")
    if not d.is_hvm:
        if not all(_addr_ok(dr) for dr in c.debugreg[:4]):
            raise XenError(EINVAL, "breakpoint in Xen's range")
        if not compat:
            regs = c.user_regs
            addresses = [regs.rip, regs.rsp, c.kernel_sp, c.fs_base, c.gs_base_kernel]
            addresses += [c.gs_base_user, c.event_callback_eip, c.syscall_callback_eip]
            addresses += [c.failsafe_callback_eip, *(t.address for t in c.trap_ctxt)]
            addresses += [c.ldt_base] if c.ldt_ents else []
            if not all(_canonical(a) for a in addresses) or not _addr_ok(c.ldt_base):
                raise XenError(EINVAL, "non-canonical address in the context")
        elif c.user_regs.eflags & X86_EFLAGS_VM:
            raise XenError(EINVAL, "vm86 mode")
        if c.ldt_base & 0xFFF or c.ldt_ents > MAX_LDT_ENTRIES:
            raise XenError(EINVAL, "bad LDT")
    mask = (
        HVM_VM_ASSIST_MASK if d.is_hvm else PV32_VM_ASSIST_MASK if compat else PV64_VM_ASSIST_MASK
    )
    if vcpu == 0 and c.vm_assist & ~mask:
        raise XenError(EINVAL, f"VM assists {c.vm_assist:#x} not allowed")
    if d.is_hvm:
        return
    gdt_frames = -(-c.gdt_ents // GDT_ENTRIES_PER_FRAME)
    if gdt_frames > MAX_GDT_FRAMES:
        raise XenError(EINVAL, f"{c.gdt_ents} GDT entries")
    if not compat and not c.flags & arch_x86.VGCF_in_kernel and not c.ctrlreg[1]:
        raise XenError(EINVAL, "a user-mode context needs a user page table")
    if not all(_owns(d, frame) for frame in c.gdt_frames[:gdt_frames]):
        raise XenError(EINVAL, "GDT frame not the guest's")  # pv_set_gdt
    tables = [c.ctrlreg[3]] + ([c.ctrlreg[1]] if not compat and c.ctrlreg[1] else [])
    if not all(_owns(d, _cr3_to_pfn(cr3, compat)) for cr3 in tables):
        raise XenError(EINVAL, "page table not the guest's")


# -- XEN_DOMCTL_gethvmcontext / sethvmcontext ---------------------------------------------------


def _record(typecode: int, instance: int, layout: Any, fields: dict[str, Any]) -> bytes:
    body = build(layout, fields)
    descriptor = dict(typecode=typecode, instance=instance, length=len(body))
    return build(hvm_save.hvm_save_descriptor, descriptor) + body


def _reset_cpu(layout: Any) -> dict[str, Any]:
    """A vCPU's registers after reset: everything 0 but CR0.ET, RFLAGS bit 1, DR6, DR7."""
    fields: dict[str, Any] = {
        sub.name: bytes(sub.sizeof()) if sub.name == "fpu_regs" else 0
        for sub in layout.subcons
        if sub.name
    }
    return fields | dict(cr0=X86_CR0_ET, rflags=2, dr6=X86_DR6_DEFAULT, dr7=X86_DR7_DEFAULT)


def hvm_save_stream(hv: Hypervisor, d: Domain) -> bytes:
    """hvm_save: the header, every record kind the model keeps (CPU, then MTRR, one per
    vCPU), the END record."""
    header = dict(
        magic=hvm_save.HVM_FILE_MAGIC,
        version=hvm_save.HVM_FILE_VERSION,
        changeset=(1 << 64) - 1,  # the model's changeset string has no ":hash" to parse
        cpuid=0,
        gtsc_khz=hv.host.cpu_khz,
    )
    out = _record(hvm_save.HVM_SAVE_CODE_HEADER, 0, hvm_save.hvm_save_header, header)
    cpu = _reset_cpu(hvm_save.hvm_hw_cpu)
    for v in range(d.nr_vcpus):
        out += _record(hvm_save.HVM_SAVE_CODE_CPU, v, hvm_save.hvm_hw_cpu, cpu)
    mtrr = dict(
        msr_pat_cr=XEN_MSR_PAT,
        msr_mtrr_var=[0] * (2 * hvm_save.MTRR_VCNT),
        msr_mtrr_fixed=[0] * hvm_save.NUM_FIXED_MSR,
        msr_mtrr_cap=MTRR_CAP_RESET,
        msr_mtrr_def_type=0,
    )
    for v in range(d.nr_vcpus):
        out += _record(hvm_save.HVM_SAVE_CODE_MTRR, v, hvm_save.hvm_hw_mtrr, mtrr)
    return out + build(hvm_save.hvm_save_descriptor, dict(typecode=0, instance=0, length=0))


def gethvmcontext(hv: Hypervisor, current: Domain, d: Domain, reply: _Reply) -> int:
    """The HVM context: its size for a NULL buffer, ENOSPC if the buffer is smaller; the
    domctl is copied back either way (size = bytes written on success)."""
    req = parse(abi.xen_domctl_hvmcontext, reply.op.u)
    if d is current or not d.is_hvm:
        raise XenError(EINVAL, "not another HVM domain")
    stream = hvm_save_stream(hv, d)
    rc, size = 0, req.size
    if not req.buffer:
        size = len(stream)
    elif req.size < len(stream):
        rc = -ENOSPC
    elif d.is_dying:
        rc, size = -EINVAL, 0  # hvm_save wrote nothing
    else:
        size = len(stream)
        if not hv.caller_memory.try_copy_to_guest(req.buffer, stream):
            rc = -EFAULT
    reply.payload(abi.xen_domctl_hvmcontext, dict(size=size, buffer=req.buffer))
    return reply.send(rc)


def sethvmcontext(hv: Hypervisor, current: Domain, d: Domain, reply: _Reply) -> int:
    """hvm_load twice: a pass that checks the stream's shape, then one that puts every vCPU
    down and loads the records in order, stopping at the first bad one (the vCPUs stay as
    far as it got)."""
    req = parse(abi.xen_domctl_hvmcontext, reply.op.u)
    if d is current or not d.is_hvm:
        raise XenError(EINVAL, "not another HVM domain")
    stream = hv.caller_memory.copy_from_guest(req.buffer, req.size)
    _hvm_load(d, stream, real=False)
    _hvm_load(d, stream, real=True)
    return 0


_LOADERS = {hvm_save.HVM_SAVE_CODE_CPU, hvm_save.HVM_SAVE_CODE_MTRR}
_DESCRIPTOR = struct.Struct("<HHI")


def _hvm_load(d: Domain, h: bytes, *, real: bool) -> None:
    if d.is_dying:
        raise XenError(EINVAL, "domain is dying")
    header_size = sizeof(hvm_save.hvm_save_header)
    cur = _entry(h, 0, hvm_save.HVM_SAVE_CODE_HEADER, header_size, strict=True)
    if cur is None:
        raise XenError(ENODATA, "no header first")
    header = parse(hvm_save.hvm_save_header, h[cur : cur + header_size])
    if header.magic != hvm_save.HVM_FILE_MAGIC or header.version != hvm_save.HVM_FILE_VERSION:
        raise XenError(EINVAL, "bad magic or version")  # arch_hvm_check
    cur += header_size
    if real:
        d.vcpu_online = 0  # down every vCPU: only those with state saved come back
    while True:
        if len(h) - cur < DESCRIPTOR:
            raise XenError(ENODATA, "save did not end with a null entry")
        typecode, instance, length = _DESCRIPTOR.unpack_from(h, cur)
        if typecode == hvm_save.HVM_SAVE_CODE_END:
            return
        if typecode not in _LOADERS:
            raise XenError(EINVAL, f"unknown entry typecode {typecode}")
        if not real:  # neither kind has a check handler: only the length is checked
            if length > len(h) - cur - DESCRIPTOR:
                raise XenError(ENODATA, "entry runs past the data")
            cur += DESCRIPTOR + length
        elif typecode == hvm_save.HVM_SAVE_CODE_CPU:
            cur = _load_cpu(d, h, cur, instance)
        else:
            cur = _load_mtrr(d, h, cur, instance)


def _entry(h: bytes, cur: int, typecode: int, size: int, *, strict: bool) -> int | None:
    """_hvm_check_entry: the offset of the body, if a ``typecode`` entry of ``size`` bytes
    (or, not strict, at most that) fits at ``cur``."""
    if len(h) - cur < DESCRIPTOR:
        return None
    code, _, length = _DESCRIPTOR.unpack_from(h, cur)
    too_long = length != size if strict else length > size
    if code != typecode or too_long or length > len(h) - cur - DESCRIPTOR:
        return None
    return cur + DESCRIPTOR


def _load_cpu(d: Domain, h: bytes, cur: int, vcpu: int) -> int:
    """hvm_load_cpu_ctxt: the checks that need no CPU policy, then the vCPU comes up."""
    if vcpu >= d.nr_vcpus:
        raise XenError(EINVAL, f"no vCPU {vcpu}")
    size = sizeof(hvm_save.hvm_hw_cpu)
    body = _entry(h, cur, hvm_save.HVM_SAVE_CODE_CPU, size, strict=False)
    if body is None:
        raise XenError(EINVAL, "bad CPU record")
    (length,) = struct.unpack_from("<I", h, cur + 4)
    c = parse(hvm_save.hvm_hw_cpu, h[body : body + length].ljust(size, b"\0"))  # zero-extend
    bad_cr0 = (
        c.cr0 & ~HVM_CR0_GUEST_ALLOWED
        or not c.cr0 & X86_CR0_ET
        or c.cr0 & (X86_CR0_PE | X86_CR0_PG) == X86_CR0_PG
    )
    if c.pad0 or bad_cr0 or c.dr6 >> 32 or c.dr7 >> 32:
        raise XenError(EINVAL, "bad CR0, DR6 or DR7")
    if c.flags & ~hvm_save.XEN_X86_FPU_INITIALISED or c.msr_tsc_aux >> 32:
        raise XenError(EINVAL, "bad flags or TSC_AUX")
    _set_online(d, vcpu, True)
    return body + length


def _load_mtrr(d: Domain, h: bytes, cur: int, vcpu: int) -> int:
    """hvm_load_mtrr_msr: an existing vCPU, an exact-size record, at most 8 variable ranges."""
    if vcpu >= d.nr_vcpus:
        raise XenError(EINVAL, f"no vCPU {vcpu}")
    size = sizeof(hvm_save.hvm_hw_mtrr)
    body = _entry(h, cur, hvm_save.HVM_SAVE_CODE_MTRR, size, strict=True)
    if body is None:
        raise XenError(EINVAL, "bad MTRR record")
    if parse(hvm_save.hvm_hw_mtrr, h[body : body + size]).msr_mtrr_cap & 0xFF > 8:
        raise XenError(EINVAL, "too many variable-range MTRRs")
    return body + size

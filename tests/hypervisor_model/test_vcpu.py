"""vCPUs: created down, brought up by a context (XEN_DOMCTL_setvcpucontext with
VGCF_online, or a CPU record of XEN_DOMCTL_sethvmcontext), read by XEN_DOMCTL_getvcpuinfo
and counted by getdomaininfo (common/domctl.c, x86 domain.c arch_set_info_guest,
hvm/save.c hvm_load, hvm.c hvm_load_cpu_ctxt, mtrr.c hvm_load_mtrr_msr).

The ``host`` fixture: 2 nodes x 4 CPUs, so CPUs 0-3 on node 0 and 4-7 on node 1.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypercalls import Guest, createdomain_payload

from hypervisor_model import snapshot
from hypervisor_model.guest_memory import build, parse, sizeof
from hypervisor_model.public import arch_x86, domctl, hvm_save, memory
from hypervisor_model.public.errno import EFAULT, EINVAL, ENODATA, ENOENT, ENOSPC, EPERM, ESRCH
from hypervisor_model.public.version import XENVER_get_features
from hypervisor_model.public.xen import (
    DOMID_ANY,
    HYPERVISOR_xen_version,
    VMASST_TYPE_pae_extended_cr3,
)

DESC = struct.Struct("<HHI")  # hvm_save_descriptor
HEADER = DESC.size + 24
CPU, MTRR, END = hvm_save.HVM_SAVE_CODE_CPU, hvm_save.HVM_SAVE_CODE_MTRR, hvm_save.HVM_SAVE_CODE_END


def domain(dom0: Guest, vcpus: int, hvm: bool = True, nodes: int | None = None) -> int:
    """A new domain of 1 MiB with ``vcpus`` vCPUs created (XEN_DOMCTL_max_vcpus), its node
    affinity set to the mask ``nodes`` first if given."""
    flags = domctl.XEN_DOMCTL_CDF_hvm | domctl.XEN_DOMCTL_CDF_hap if hvm else 0
    payload = dict(createdomain_payload(flags), max_vcpus=vcpus)
    rc, after = dom0.domctl(
        domctl.XEN_DOMCTL_createdomain, DOMID_ANY, domctl.xen_domctl_createdomain, payload
    )
    assert rc == 0
    domid = int(after.domain)
    assert dom0.max_mem(domid, 1024) == 0
    if nodes is not None:
        with dom0.hv.arena.alloc(8) as nodemap:
            nodemap.mem[:8] = nodes.to_bytes(8, "little")
            bitmap = dict(bitmap=nodemap.addr, nr_bits=64)
            rc, _ = dom0.domctl(
                domctl.XEN_DOMCTL_setnodeaffinity,
                domid,
                domctl.xen_domctl_nodeaffinity,
                dict(nodemap=bitmap),
            )
        assert rc == 0
    rc, _ = dom0.domctl(
        domctl.XEN_DOMCTL_max_vcpus, domid, domctl.xen_domctl_max_vcpus, dict(max=vcpus)
    )
    assert rc == 0
    return domid


def populate_pv(dom0: Guest, domid: int) -> int:
    """One page at pfn 0 of a PV guest: its MFN, written back into the list."""
    rc, (mfn,) = dom0.reservation(memory.XENMEM_populate_physmap, domid, [0])
    assert rc == 1
    return mfn


def vcpuinfo(dom0: Guest, domid: int, vcpu: int, caller: int = 0) -> tuple[int, Any]:
    rc, after = Guest(dom0.hv, caller).domctl(
        domctl.XEN_DOMCTL_getvcpuinfo,
        domid,
        domctl.xen_domctl_getvcpuinfo,
        dict(vcpu=vcpu, online=0, blocked=0, running=0, cpu_time=0, cpu=0),
    )
    return rc, after.payload


def state(dom0: Guest, domid: int, vcpu: int) -> tuple[int, int, int, int]:
    """(online, blocked, running, cpu) of one vCPU."""
    rc, info = vcpuinfo(dom0, domid, vcpu)
    assert rc == 0
    return info.online, info.blocked, info.running, info.cpu


def online_count(dom0: Guest, domid: int) -> int:
    return int(dom0.info(domid).nr_online_vcpus)


def setcontext(
    dom0: Guest, domid: int, vcpu: int, ctxt: bytes | None, handle: int | None = None
) -> int:
    with dom0.hv.arena.alloc(max(len(ctxt or b""), 1)) as buf:
        buf.mem[: len(ctxt or b"")] = ctxt or b""
        addr = handle if handle is not None else buf.addr if ctxt is not None else 0
        return dom0.domctl(
            domctl.XEN_DOMCTL_setvcpucontext,
            domid,
            domctl.xen_domctl_vcpucontext,
            dict(vcpu=vcpu, ctxt=addr),
        )[0]


def context(compat: bool = False, **changes: Any) -> bytes:
    """A zeroed vCPU context, kernel mode and online, with ``changes`` ("a.b" for nested;
    "ctrlreg3" style for an array element)."""
    layout = arch_x86.compat_vcpu_guest_context if compat else arch_x86.vcpu_guest_context
    c = parse(layout, bytes(sizeof(layout)))
    c["flags"] = arch_x86.VGCF_in_kernel | arch_x86.VGCF_online
    for name, value in changes.items():
        if "." in name:
            outer, inner = name.split(".")
            c[outer][inner] = value
        elif name[-1].isdigit():
            c[name.rstrip("0123456789")][int(name[len(name.rstrip("0123456789")) :])] = value
        else:
            c[name] = value
    return build(layout, c)


# -- created down; getvcpuinfo ------------------------------------------------------------------


def test_vcpus_are_created_down_on_the_cpus_of_the_domains_nodes(dom0: Guest) -> None:
    """Three vCPUs of a domain with every node: CPUs 0, 1, 2 (sched_select_initial_cpu:
    vCPU 0 on the first CPU, each next one on the next CPU); none online, none blocked."""
    domid = domain(dom0, 3)
    assert [state(dom0, domid, v) for v in range(3)] == [(0, 0, 0, 0), (0, 0, 0, 1), (0, 0, 0, 2)]
    assert (online_count(dom0, domid), dom0.info(domid).flags & 0x30) == (0, 0)


def test_vcpus_of_a_domain_on_node_1_cycle_over_its_cpus(dom0: Guest) -> None:
    """Node affinity {1}: CPUs 4-7; six vCPUs land on 4, 5, 6, 7, 4, 5."""
    domid = domain(dom0, 6, nodes=0b10)
    assert [state(dom0, domid, v)[3] for v in range(6)] == [4, 5, 6, 7, 4, 5]


def test_dom0_runs_the_toolstack_on_vcpu_0_and_idles_on_the_others(dom0: Guest) -> None:
    """All 8 online; vCPU 0 running (not blocked), 1-7 blocked on CPUs 1-7: getdomaininfo
    says running and not blocked (not every online vCPU is blocked)."""
    assert state(dom0, 0, 0) == (1, 0, 1, 0)
    assert [state(dom0, 0, v) for v in range(1, 8)] == [(1, 1, 0, v) for v in range(1, 8)]
    info = dom0.info(0)
    assert (info.nr_online_vcpus, info.flags & 0x30) == (8, domctl.XEN_DOMINF_running)


GETVCPUINFO_ERRNOS = [
    ("vcpu-beyond-those-created", 0, 3, 0, ENOENT),
    ("vcpu-of-a-domain-without-vcpus", 0, 0, "no-vcpus", ENOENT),
    ("domu-caller", "domu", 0, 0, EPERM),  # xsm_domctl(XSM_PRIV)
    ("missing-domain", 0, 0, 42, ESRCH),
]


@pytest.mark.parametrize(
    ("caller", "vcpu", "target", "errno"),
    [row[1:] for row in GETVCPUINFO_ERRNOS],
    ids=[row[0] for row in GETVCPUINFO_ERRNOS],
)
def test_getvcpuinfo_errno(dom0: Guest, caller: Any, vcpu: int, target: Any, errno: int) -> None:
    domid = domain(dom0, 2)
    target = {0: domid, "no-vcpus": dom0.create()}.get(target, target)
    caller = domid if caller == "domu" else caller
    assert vcpuinfo(dom0, target, vcpu, caller=caller)[0] == -errno


# -- XEN_DOMCTL_setvcpucontext ------------------------------------------------------------------


def test_a_context_with_vgcf_online_brings_the_vcpu_up_and_null_resets_it(dom0: Guest) -> None:
    domid = domain(dom0, 2)
    assert setcontext(dom0, domid, 1, context()) == 0
    assert (state(dom0, domid, 1), online_count(dom0, domid)) == ((1, 0, 0, 1), 1)
    assert setcontext(dom0, domid, 1, context(flags=0)) == 0  # no VGCF_online: down
    assert online_count(dom0, domid) == 0
    assert setcontext(dom0, domid, 0, context()) == 0
    assert setcontext(dom0, domid, 0, None) == 0  # vcpu_reset
    assert online_count(dom0, domid) == 0


def test_a_pv_context_needs_its_page_table_to_be_the_guests(dom0: Guest) -> None:
    """CR3 names a frame (xen_cr3_to_pfn; the MFN, for PV) the guest must own
    (get_page_from_mfn); a 32-bit guest's CR3 holds the frame rotated (xen_pfn_to_cr3 of
    x86_32), and a vm86 context is refused."""
    domid = domain(dom0, 1, hvm=False)
    mfn = populate_pv(dom0, domid)
    assert setcontext(dom0, domid, 0, context(ctrlreg3=(mfn + 1000) << 12)) == -EINVAL
    assert setcontext(dom0, domid, 0, context(ctrlreg3=mfn << 12)) == 0
    assert online_count(dom0, domid) == 1


def test_a_32_bit_pv_guest_takes_the_compat_layout(dom0: Guest) -> None:
    """A frame on node 1 is at least 2^20, so its CR3 only fits 32 bits rotated: frame
    bits 20 and up go to CR3's low bits (xen_pfn_to_cr3 of x86_32). The plain shift loses
    them and names a frame the guest does not own."""
    domid = domain(dom0, 1, hvm=False)
    rc, _ = dom0.domctl(
        domctl.XEN_DOMCTL_set_address_size, domid, domctl.xen_domctl_address_size, dict(size=32)
    )
    assert rc == 0
    rc, (mfn,) = dom0.reservation(
        memory.XENMEM_populate_physmap, domid, [0], flags=memory.XENMEMF_exact_node(1)
    )
    assert rc == 1 and mfn >= 1 << 20
    rotated = (mfn << 12 | mfn >> 20) & 0xFFFFFFFF
    vm86 = context(compat=True, ctrlreg3=rotated, **{"user_regs.eflags": 1 << 17})
    assert setcontext(dom0, domid, 0, vm86) == -EINVAL
    shifted = (mfn << 12) & 0xFFFFFFFF
    assert setcontext(dom0, domid, 0, context(compat=True, ctrlreg3=shifted)) == -EINVAL
    assert setcontext(dom0, domid, 0, context(compat=True, ctrlreg3=rotated)) == 0
    assert online_count(dom0, domid) == 1


NON_CANONICAL = 0x0000_8000_0000_0000
SETCONTEXT_ERRNOS: list[tuple[str, bool, int, dict[str, Any], int]] = [
    # (what, hvm, vcpu, context changes, errno)
    ("vcpu-beyond", True, 2, {}, EINVAL),
    ("dr6-beyond-32-bits", True, 0, {"debugreg6": 1 << 32}, EINVAL),
    ("dr7-beyond-32-bits", False, 0, {"debugreg7": 1 << 40}, EINVAL),
    ("hvm-vm-assist-m2p_strict", True, 0, {"vm_assist": 1 << 32}, EINVAL),
    ("pv-vm-assist-bit-6", False, 0, {"vm_assist": 1 << 6}, EINVAL),
    ("pv-breakpoint-in-xen", False, 0, {"debugreg0": 0xFFFF_8000_0000_0000}, EINVAL),
    ("pv-rip-non-canonical", False, 0, {"user_regs.rip": NON_CANONICAL}, EINVAL),
    ("pv-kernel_sp-non-canonical", False, 0, {"kernel_sp": NON_CANONICAL}, EINVAL),
    ("pv-ldt-unaligned", False, 0, {"ldt_base": 0x1008, "ldt_ents": 1}, EINVAL),
    ("pv-ldt-8193-entries", False, 0, {"ldt_ents": 8193}, EINVAL),
    ("pv-17-gdt-frames", False, 0, {"gdt_ents": 16 * 512 + 1}, EINVAL),
    ("pv-user-mode-without-user-cr3", False, 0, {"flags": arch_x86.VGCF_online}, EINVAL),
    ("pv-gdt-frame-not-the-guests", False, 0, {"gdt_ents": 1, "gdt_frames0": 7}, EINVAL),
]


@pytest.mark.parametrize(
    ("hvm", "vcpu", "changes", "errno"),
    [row[1:] for row in SETCONTEXT_ERRNOS],
    ids=[row[0] for row in SETCONTEXT_ERRNOS],
)
def test_setvcpucontext_errno_changes_nothing(
    dom0: Guest, hvm: bool, vcpu: int, changes: dict[str, Any], errno: int
) -> None:
    """Each context is valid but for its one change (a PV guest's CR3 names its page)."""
    if hvm:
        domid, base = domain(dom0, 2), {}
    else:
        domid = domain(dom0, 2, hvm=False)
        base = {"ctrlreg3": populate_pv(dom0, domid) << 12}
    assert setcontext(dom0, domid, 1, context(**base)) == 0  # vCPU 1 up, to stay up
    assert setcontext(dom0, domid, vcpu, context(**(base | changes))) == -errno
    assert [state(dom0, domid, v)[0] for v in range(2)] == [0, 1]
    assert setcontext(dom0, domid, 0, context(**base)) == 0  # the valid one is accepted


def test_vm_assists_are_checked_on_vcpu_0_only(dom0: Guest) -> None:
    domid = domain(dom0, 2)
    assert setcontext(dom0, domid, 1, context(vm_assist=1 << 6)) == 0


def test_vcpu_0s_pae_extended_cr3_becomes_the_domains_pae_pgdir_above_4gb(dom0: Guest) -> None:
    """arch_set_info_guest keeps vCPU 0's VM assists for the domain; XENVER_get_features
    then adds XENFEAT_pae_pgdir_above_4gb (bit 4) to a master PV domU's 0x1E20E0 (see
    test_version). vCPU 1's assists, and vCPU 0's once it is up, change nothing."""
    domid = domain(dom0, 2, hvm=False)
    base = {"ctrlreg3": populate_pv(dom0, domid) << 12}
    pae = 1 << VMASST_TYPE_pae_extended_cr3
    with dom0.hv.arena.alloc(8) as fi:

        def submap() -> int:
            fi.mem[:8] = bytes(8)
            assert (
                dom0.hv.hypercall(
                    HYPERVISOR_xen_version, XENVER_get_features, fi.addr, caller=domid
                )
                == 0
            )
            return int.from_bytes(fi.mem[4:8], "little")

        assert setcontext(dom0, domid, 1, context(**base, vm_assist=pae)) == 0
        assert submap() == 0x1E20E0
        assert setcontext(dom0, domid, 0, context(**base, vm_assist=pae)) == 0
        assert submap() == 0x1E20E0 | 1 << 4
        assert setcontext(dom0, domid, 0, context(**base)) == 0  # initialised: kept
        assert submap() == 0x1E20E0 | 1 << 4


def test_setvcpucontext_refuses_the_caller_itself_no_vcpus_and_bad_handles(dom0: Guest) -> None:
    """d == current (no domain_pause of oneself) and a vCPU not created are EINVAL; a
    context that cannot be read is EFAULT."""
    assert setcontext(dom0, 0, 0, context()) == -EINVAL
    assert setcontext(dom0, dom0.create(), 0, context()) == -EINVAL  # before max_vcpus
    domid = domain(dom0, 1)
    assert setcontext(dom0, domid, 0, None, handle=0xDEAD000) == -EFAULT
    with dom0.hv.arena.alloc(100) as short:  # 100 of 5168 bytes
        assert setcontext(dom0, domid, 0, None, handle=short.addr) == -EFAULT
    assert online_count(dom0, domid) == 0


# -- the first unpause ---------------------------------------------------------------------------


def test_at_the_first_unpause_the_guest_brings_its_vcpus_up_and_idles(dom0: Guest) -> None:
    """vCPU 0 up, paused: --p---, 1 online. Unpaused: its kernel brings up vCPUs 1-2, and
    all three idle: blocked, getdomaininfo -b----."""
    domid = domain(dom0, 3)
    assert setcontext(dom0, domid, 0, context()) == 0
    info = dom0.info(domid)
    assert (info.nr_online_vcpus, info.flags & 0x38) == (1, domctl.XEN_DOMINF_paused)
    assert dom0.domctl(domctl.XEN_DOMCTL_unpausedomain, domid)[0] == 0
    info = dom0.info(domid)
    assert (info.nr_online_vcpus, info.flags & 0x38) == (3, domctl.XEN_DOMINF_blocked)
    assert [state(dom0, domid, v) for v in range(3)] == [(1, 1, 0, v) for v in range(3)]


def test_a_domain_unpaused_without_a_boot_context_never_runs(dom0: Guest) -> None:
    domid = domain(dom0, 2)
    assert dom0.domctl(domctl.XEN_DOMCTL_unpausedomain, domid)[0] == 0
    info = dom0.info(domid)
    assert (info.nr_online_vcpus, info.flags & 0x30) == (0, 0)


def test_vcpu_state_survives_save_and_resume(dom0: Guest) -> None:
    domid = domain(dom0, 3)
    assert setcontext(dom0, domid, 2, context()) == 0
    resumed = Guest(snapshot.load_state(snapshot.save_state(dom0.hv)))
    assert [state(resumed, domid, v)[0] for v in range(3)] == [0, 0, 1]


# -- XEN_DOMCTL_gethvmcontext / sethvmcontext -----------------------------------------------------


def hvmcontext(dom0: Guest, cmd: int, domid: int, size: int, buffer: int) -> tuple[int, int]:
    rc, after = dom0.domctl(
        cmd, domid, domctl.xen_domctl_hvmcontext, dict(size=size, buffer=buffer)
    )
    return rc, int(after.payload.size)


def get_context(dom0: Guest, domid: int) -> bytes:
    rc, size = hvmcontext(dom0, domctl.XEN_DOMCTL_gethvmcontext, domid, 0, 0)
    assert rc == 0
    with dom0.hv.arena.alloc(size) as buf:
        assert hvmcontext(dom0, domctl.XEN_DOMCTL_gethvmcontext, domid, size, buf.addr) == (0, size)
        return bytes(buf.mem[:size])


def set_context(dom0: Guest, domid: int, stream: bytes) -> int:
    with dom0.hv.arena.alloc(max(len(stream), 1)) as buf:
        buf.mem[: len(stream)] = stream
        return hvmcontext(dom0, domctl.XEN_DOMCTL_sethvmcontext, domid, len(stream), buf.addr)[0]


def records(stream: bytes) -> list[tuple[int, int, bytes]]:
    out, cur = [], 0
    while True:
        code, instance, length = DESC.unpack_from(stream, cur)
        out.append((code, instance, stream[cur + 8 : cur + 8 + length]))
        cur += 8 + length
        if code == END:
            assert cur == len(stream)
            return out


def test_the_hvm_context_of_two_vcpus(dom0: Guest) -> None:
    """Header (8 + 24), a CPU record per vCPU (8 + 1032 each), an MTRR record per vCPU
    (8 + 240 each), END (8): 32 + 2080 + 496 + 8 = 2616 bytes. CPU registers after reset
    (CR0.ET, RFLAGS 2, DR6 0xffff0ff0, DR7 0x400); MTRRs: PAT 0x0007040600070406,
    MTRRcap 0x508 (8 variable ranges, fixed ranges, write-combining), disabled."""
    domid = domain(dom0, 2)
    stream = get_context(dom0, domid)
    assert len(stream) == 2616
    found = records(stream)
    assert [(c, i) for c, i, _ in found] == [
        (1, 0),
        (CPU, 0),
        (CPU, 1),
        (MTRR, 0),
        (MTRR, 1),
        (END, 0),
    ]
    header = parse(hvm_save.hvm_save_header, found[0][2])
    assert (header.magic, header.version, header.gtsc_khz) == (0x54381286, 1, 2_000_000)
    cpu = parse(hvm_save.hvm_hw_cpu, found[1][2])
    assert (cpu.cr0, cpu.rflags, cpu.dr6, cpu.dr7, cpu.rip) == (0x10, 2, 0xFFFF0FF0, 0x400, 0)
    mtrr = parse(hvm_save.hvm_hw_mtrr, found[3][2])
    assert (mtrr.msr_pat_cr, mtrr.msr_mtrr_cap, mtrr.msr_mtrr_def_type) == (
        0x0007040600070406,
        0x508,
        0,
    )


def test_a_short_buffer_is_enospc_and_the_size_stays(dom0: Guest) -> None:
    domid = domain(dom0, 1)
    with dom0.hv.arena.alloc(100) as buf:
        assert hvmcontext(dom0, domctl.XEN_DOMCTL_gethvmcontext, domid, 100, buf.addr) == (
            -ENOSPC,
            100,
        )


def test_loading_the_saved_context_brings_every_vcpu_with_a_cpu_record_up(dom0: Guest) -> None:
    domid = domain(dom0, 3)
    assert set_context(dom0, domid, get_context(dom0, domid)) == 0
    assert online_count(dom0, domid) == 3


def test_a_load_puts_every_vcpu_down_first(dom0: Guest) -> None:
    """Header, vCPU 1's CPU record, END: only vCPU 1 is up afterwards, though 0 and 2
    were (hvm_load downs all, then each CPU record brings its vCPU up)."""
    domid = domain(dom0, 3)
    full = get_context(dom0, domid)
    assert set_context(dom0, domid, full) == 0
    cpu1 = next(body for code, i, body in records(full) if (code, i) == (CPU, 1))
    stream = full[:HEADER] + DESC.pack(CPU, 1, len(cpu1)) + cpu1 + DESC.pack(END, 0, 0)
    assert set_context(dom0, domid, stream) == 0
    assert [state(dom0, domid, v)[0] for v in range(3)] == [0, 1, 0]


def _cpu(**changes: int) -> bytes:
    c = parse(hvm_save.hvm_hw_cpu, bytes(1032))
    c["cr0"], c["dr6"], c["dr7"] = 0x11, 0xFFFF0FF0, 0x400
    for name, value in changes.items():
        c[name] = value
    return build(hvm_save.hvm_hw_cpu, c)


def _stream(header: bytes, *recs: tuple[int, int, bytes], end: bool = True) -> bytes:
    body = b"".join(DESC.pack(code, i, len(b)) + b for code, i, b in recs)
    return header + body + (DESC.pack(END, 0, 0) if end else b"")


# (what, stream from the saved header, errno, are the vCPUs then down: Xen's second pass
# downs them all before it meets a bad CPU or MTRR record; the first pass catches the rest)
SETHVM_ERRNOS: list[tuple[str, Any, int, bool]] = [
    ("empty", lambda h: b"", ENODATA, False),
    ("no-header-first", lambda h: _stream(b"", (CPU, 0, _cpu())), ENODATA, False),
    ("header-wrong-length", lambda h: DESC.pack(1, 0, 23) + h[8:31], ENODATA, False),
    ("bad-magic", lambda h: h[:8] + b"\0\0\0\0" + h[12:], EINVAL, False),
    ("bad-version", lambda h: h[:12] + struct.pack("<I", 2) + h[16:], EINVAL, False),
    ("no-end", lambda h: _stream(h, (CPU, 0, _cpu()), end=False), ENODATA, False),
    ("record-past-the-end", lambda h: h + DESC.pack(CPU, 0, 2000) + _cpu(), ENODATA, False),
    ("unknown-typecode-3", lambda h: _stream(h, (3, 0, bytes(8))), EINVAL, False),
    ("typecode-beyond-max", lambda h: _stream(h, (21, 0, b"")), EINVAL, False),
    ("cpu-of-no-vcpu", lambda h: _stream(h, (CPU, 5, _cpu())), EINVAL, True),
    ("cpu-too-long", lambda h: _stream(h, (CPU, 0, _cpu() + bytes(8))), EINVAL, True),
    ("cr0-without-et", lambda h: _stream(h, (CPU, 0, _cpu(cr0=1))), EINVAL, True),
    ("cr0-pg-without-pe", lambda h: _stream(h, (CPU, 0, _cpu(cr0=0x80000010))), EINVAL, True),
    ("cr0-reserved-bit", lambda h: _stream(h, (CPU, 0, _cpu(cr0=0x11 | 1 << 8))), EINVAL, True),
    ("dr7-beyond-32-bits", lambda h: _stream(h, (CPU, 0, _cpu(dr7=1 << 32))), EINVAL, True),
    ("pad0", lambda h: _stream(h, (CPU, 0, _cpu(pad0=1))), EINVAL, True),
    ("unknown-flags", lambda h: _stream(h, (CPU, 0, _cpu(flags=2))), EINVAL, True),
    (
        "tsc_aux-beyond-32-bits",
        lambda h: _stream(h, (CPU, 0, _cpu(msr_tsc_aux=1 << 32))),
        EINVAL,
        True,
    ),
    ("mtrr-short", lambda h: _stream(h, (MTRR, 0, bytes(232))), EINVAL, True),
    (
        "mtrr-9-variable-ranges",
        lambda h: _stream(h, (MTRR, 0, bytes(224) + struct.pack("<QQ", 9, 0))),
        EINVAL,
        True,
    ),
]


@pytest.mark.parametrize(
    ("make", "errno", "downed"),
    [row[1:] for row in SETHVM_ERRNOS],
    ids=[row[0] for row in SETHVM_ERRNOS],
)
def test_sethvmcontext_errno(dom0: Guest, make: Any, errno: int, downed: bool) -> None:
    domid = domain(dom0, 2)
    full = get_context(dom0, domid)
    assert set_context(dom0, domid, full) == 0  # both vCPUs up
    assert set_context(dom0, domid, make(full[:HEADER])) == -errno
    assert online_count(dom0, domid) == (0 if downed else 2)


def test_a_cpu_record_shorter_than_the_structure_is_zero_extended(dom0: Guest) -> None:
    """hvm_load_entry_zeroextend: the first 1024 bytes (flags and pad0 left out) load."""
    domid = domain(dom0, 1)
    header = get_context(dom0, domid)[:HEADER]
    assert set_context(dom0, domid, _stream(header, (CPU, 0, _cpu()[:1024]))) == 0
    assert online_count(dom0, domid) == 1


@pytest.mark.parametrize("cmd", [domctl.XEN_DOMCTL_gethvmcontext, domctl.XEN_DOMCTL_sethvmcontext])
def test_hvm_context_of_a_pv_domain_or_of_oneself_is_einval(dom0: Guest, cmd: int) -> None:
    pv = domain(dom0, 1, hvm=False)
    with dom0.hv.arena.alloc(64) as buf:
        assert hvmcontext(dom0, cmd, pv, 64, buf.addr)[0] == -EINVAL
        assert hvmcontext(dom0, cmd, 0, 64, buf.addr)[0] == -EINVAL


def test_hvm_context_buffers_xen_cannot_reach_are_efault(dom0: Guest) -> None:
    """The full context into an unmapped buffer; a load of more bytes than the buffer has."""
    domid = domain(dom0, 1)
    size = len(get_context(dom0, domid))
    assert hvmcontext(dom0, domctl.XEN_DOMCTL_gethvmcontext, domid, size, 0xDEAD000) == (
        -EFAULT,
        size,
    )
    with dom0.hv.arena.alloc(16) as buf:
        assert (
            hvmcontext(dom0, domctl.XEN_DOMCTL_sethvmcontext, domid, 1 << 31, buf.addr)[0]
            == -EFAULT
        )


# -- XEN_DOMCTL_getvcpuaffinity -------------------------------------------------------------------


def affinity(
    dom0: Guest, domid: int, vcpu: int, flags: int, hard: int | None = 2, soft: int | None = 2
) -> tuple[int, bytes, bytes]:
    """Maps of ``hard``/``soft`` bytes (None: a NULL handle), 0xAA-filled; the result and
    both maps afterwards."""
    hv = dom0.hv
    bufs = [hv.arena.alloc(max(n or 0, 1)) for n in (hard, soft)]
    for buf, n in zip(bufs, (hard, soft), strict=True):
        buf.mem[: n or 0] = b"\xaa" * (n or 0)
    maps = [
        dict(bitmap=buf.addr if n is not None else 0, nr_bits=8 * (n or 0))
        for buf, n in zip(bufs, (hard, soft), strict=True)
    ]
    rc, _ = dom0.domctl(
        domctl.XEN_DOMCTL_getvcpuaffinity,
        domid,
        domctl.xen_domctl_vcpuaffinity,
        dict(vcpu=vcpu, flags=flags, cpumap_hard=maps[0], cpumap_soft=maps[1]),
    )
    return rc, bytes(bufs[0].mem[: hard or 0]), bytes(bufs[1].mem[: soft or 0])


HARD, SOFT = domctl.XEN_VCPUAFFINITY_HARD, domctl.XEN_VCPUAFFINITY_SOFT


def test_every_vcpu_may_run_and_prefers_to_run_on_every_cpu(dom0: Guest) -> None:
    """8 CPUs: one byte 0xff (nr_cpu_ids bits), the caller's second byte zeroed; only the
    maps asked for are written."""
    domid = domain(dom0, 2)
    assert affinity(dom0, domid, 1, HARD | SOFT) == (0, b"\xff\x00", b"\xff\x00")
    assert affinity(dom0, domid, 0, SOFT) == (0, b"\xaa\xaa", b"\xff\x00")


AFFINITY_ERRNOS = [
    ("beyond-max_vcpus", dict(vcpu=2, flags=HARD), EINVAL),
    ("no-flags", dict(vcpu=0, flags=0), EINVAL),
    ("hard-without-map", dict(vcpu=0, flags=HARD, hard=None), EINVAL),
    ("soft-without-map", dict(vcpu=0, flags=SOFT, soft=None), EINVAL),
]


@pytest.mark.parametrize(
    ("args", "errno"), [r[1:] for r in AFFINITY_ERRNOS], ids=[r[0] for r in AFFINITY_ERRNOS]
)
def test_getvcpuaffinity_errno(dom0: Guest, args: dict[str, Any], errno: int) -> None:
    domid = domain(dom0, 2)
    assert affinity(dom0, domid, **args)[0] == -errno


def test_a_vcpu_not_yet_created_is_esrch(dom0: Guest) -> None:
    """max_vcpus 2 at createdomain, none created yet: vcpu_affinity_domctl's ESRCH."""
    payload = dict(createdomain_payload(domctl.XEN_DOMCTL_CDF_hvm), max_vcpus=2)
    rc, after = dom0.domctl(
        domctl.XEN_DOMCTL_createdomain, DOMID_ANY, domctl.xen_domctl_createdomain, payload
    )
    assert rc == 0
    assert affinity(dom0, int(after.domain), 1, HARD)[0] == -ESRCH


def test_a_hard_map_that_faults_still_lets_the_soft_one_be_written(dom0: Guest) -> None:
    """hret ?: ret: both maps are tried; the result is the first error."""
    domid = domain(dom0, 1)
    rc, _, soft = affinity(dom0, domid, 0, HARD | SOFT, hard=0)  # a 0-byte map...
    assert (rc, soft) == (0, b"\xff\x00")  # ...takes nothing and is no fault
    hv = dom0.hv
    soft_buf = hv.arena.alloc(1)
    maps = dict(
        cpumap_hard=dict(bitmap=0xDEAD000, nr_bits=8),
        cpumap_soft=dict(bitmap=soft_buf.addr, nr_bits=8),
    )
    rc, _ = dom0.domctl(
        domctl.XEN_DOMCTL_getvcpuaffinity,
        domid,
        domctl.xen_domctl_vcpuaffinity,
        dict(vcpu=0, flags=HARD | SOFT, **maps),
    )
    assert (rc, bytes(soft_buf.mem[:1])) == (-EFAULT, b"\xff")


# -- XEN_DOMCTL_setvcpuaffinity ------------------------------------------------------------------


def set_affinity(
    dom0: Guest,
    domid: int,
    vcpu: int,
    flags: int,
    hard: bytes | None = None,
    soft: bytes | None = None,
    nr_bits: int = 16,
    handles: tuple[int | None, int | None] = (None, None),
) -> tuple[int, bytes, bytes]:
    """Maps in 2-byte buffers (None: a NULL handle, or ``handles`` given); the result and
    both maps as Xen left them."""
    hv = dom0.hv
    bufs = [hv.arena.alloc(2) for _ in range(2)]
    maps = []
    for buf, data, handle in zip(bufs, (hard, soft), handles, strict=True):
        buf.mem[:2] = data or bytes(2)
        addr = handle if handle is not None else buf.addr if data is not None else 0
        maps.append(dict(bitmap=addr, nr_bits=nr_bits))
    rc, _ = dom0.domctl(
        domctl.XEN_DOMCTL_setvcpuaffinity,
        domid,
        domctl.xen_domctl_vcpuaffinity,
        dict(vcpu=vcpu, flags=flags, cpumap_hard=maps[0], cpumap_soft=maps[1]),
    )
    return rc, bytes(bufs[0].mem[:2]), bytes(bufs[1].mem[:2])


FAULT = 0xDEAD000  # an address no hypercall buffer covers


def node_affinity(dom0: Guest, domid: int) -> int:
    with dom0.hv.arena.alloc(8) as nodemap:
        rc, _ = dom0.domctl(
            domctl.XEN_DOMCTL_getnodeaffinity,
            domid,
            domctl.xen_domctl_nodeaffinity,
            dict(nodemap=dict(bitmap=nodemap.addr, nr_bits=64)),
        )
        assert rc == 0
        return int.from_bytes(nodemap.mem[:8], "little")


def test_set_affinity_writes_back_what_the_scheduler_uses_and_get_reads_what_was_set(
    dom0: Guest,
) -> None:
    """Hard {1, 2} (0x06), soft {2, 5} (0x24): hard comes back as hard & Pool-0's 8 CPUs =
    0x06, soft as soft & pool & hard = 0x04, each caller's second byte zeroed; get reports
    the maps as set. Soft CPU 2 is within hard, so the domain's node affinity is CPU 2's
    node 0 (mask 0x1), and vCPU 0 (first placed on CPU 0 of nodes {0, 1}) moves to CPU 2."""
    domid = domain(dom0, 1)
    assert state(dom0, domid, 0)[3] == 0
    both = HARD | SOFT
    assert set_affinity(dom0, domid, 0, both, b"\x06\xaa", b"\x24\xaa") == (
        0,
        b"\x06\x00",
        b"\x04\x00",
    )
    assert affinity(dom0, domid, 0, both) == (0, b"\x06\x00", b"\x24\x00")
    assert node_affinity(dom0, domid) == 0x1
    assert state(dom0, domid, 0)[3] == 2


def test_node_affinity_follows_the_union_of_hard_then_soft_maps(dom0: Guest) -> None:
    """Two vCPUs. Only vCPU 0 pinned to {4, 5} (node 1): vCPU 1 still may run anywhere, so
    both nodes (0x3). vCPU 1 pinned to {6}: the union {4, 5, 6} is node 1 (0x2). A soft map
    {0} on vCPU 0 meets no hard CPU, so the hard union decides still (0x2); soft {5} on
    vCPU 0 and the unset vCPU 1 soft (every CPU) leave {4, 5, 6}: 0x2."""
    domid = domain(dom0, 2)
    assert set_affinity(dom0, domid, 0, HARD, b"\x30\x00")[0] == 0
    assert node_affinity(dom0, domid) == 0x3
    assert set_affinity(dom0, domid, 1, HARD, b"\x40\x00")[0] == 0
    assert node_affinity(dom0, domid) == 0x2
    assert set_affinity(dom0, domid, 0, SOFT, soft=b"\x01\x00") == (0, bytes(2), b"\x00\x00")
    assert node_affinity(dom0, domid) == 0x2
    assert affinity(dom0, domid, 0, HARD | SOFT) == (0, b"\x30\x00", b"\x01\x00")
    # vCPU 0 was placed on CPU 4 (first of node 1) and stays; vCPU 1 moves to CPU 6
    assert [state(dom0, domid, v)[3] for v in range(2)] == [4, 6]


def test_an_explicit_node_affinity_is_not_recomputed(dom0: Guest) -> None:
    """domain_update_node_affinity leaves a domain with auto_node_affinity off alone."""
    domid = domain(dom0, 1, nodes=0x1)
    assert set_affinity(dom0, domid, 0, HARD, b"\x30\x00")[0] == 0
    assert node_affinity(dom0, domid) == 0x1


def _affinities(dom0: Guest, domid: int) -> tuple[bytes, bytes, int]:
    rc, hard, soft = affinity(dom0, domid, 0, HARD | SOFT)
    assert rc == 0
    return hard, soft, node_affinity(dom0, domid)


SET_AFFINITY_ERRNOS = [
    # (what, vcpu, flags, hard, soft, nr_bits, handles, errno)
    ("beyond-max_vcpus", 1, HARD, b"\x01\x00", None, 16, (None, None), EINVAL),
    ("no-flags", 0, 0, b"\x01\x00", None, 16, (None, None), EINVAL),
    ("hard-null", 0, HARD, None, None, 16, (None, None), EINVAL),
    ("soft-null", 0, HARD | SOFT, b"\x01\x00", None, 16, (None, None), EINVAL),
    ("hard-empty", 0, HARD, b"\x00\x00", None, 16, (None, None), EINVAL),
    # CPU 8 and up do not exist: only nr_cpu_ids bits (one byte) are read
    ("hard-beyond-the-cpus", 0, HARD, b"\x00\xff", None, 16, (None, None), EINVAL),
    # nr_bits 4 keeps CPUs 0-3 only (xenctl_bitmap_to_bitmap masks the last byte)
    ("hard-beyond-nr_bits", 0, HARD, b"\xf0\x00", None, 4, (None, None), EINVAL),
    ("hard-unreadable", 0, HARD, b"\x01\x00", None, 16, (FAULT, None), EFAULT),
    # the hard map was set, then undone when the soft one could not be read
    ("soft-unreadable", 0, HARD | SOFT, b"\x01\x00", b"\x01\x00", 16, (None, FAULT), EFAULT),
]


@pytest.mark.parametrize(
    ("vcpu", "flags", "hard", "soft", "nr_bits", "handles", "errno"),
    [r[1:] for r in SET_AFFINITY_ERRNOS],
    ids=[r[0] for r in SET_AFFINITY_ERRNOS],
)
def test_setvcpuaffinity_errno_changes_nothing(
    dom0: Guest,
    vcpu: int,
    flags: int,
    hard: bytes | None,
    soft: bytes | None,
    nr_bits: int,
    handles: tuple[int | None, int | None],
    errno: int,
) -> None:
    domid = domain(dom0, 1)
    assert set_affinity(dom0, domid, 0, HARD | SOFT, b"\x0c\x00", b"\x08\x00")[0] == 0
    before = _affinities(dom0, domid)
    assert before == (b"\x0c\x00", b"\x08\x00", 0x1)
    rc = set_affinity(dom0, domid, vcpu, flags, hard, soft, nr_bits, handles)[0]
    assert rc == -errno
    assert _affinities(dom0, domid) == before


def test_a_vcpu_not_yet_created_is_esrch_for_set_too(dom0: Guest) -> None:
    payload = dict(createdomain_payload(domctl.XEN_DOMCTL_CDF_hvm), max_vcpus=2)
    rc, after = dom0.domctl(
        domctl.XEN_DOMCTL_createdomain, DOMID_ANY, domctl.xen_domctl_createdomain, payload
    )
    assert rc == 0
    assert set_affinity(dom0, int(after.domain), 1, HARD, b"\x01\x00")[0] == -ESRCH


def test_a_map_xen_cannot_write_back_is_efault_but_the_affinity_is_set(dom0: Guest) -> None:
    """As vcpu_affinity_domctl does: the new hard map is in force before it is copied back.
    nr_bits says 2 pages of map where the buffer has 1 page: the first byte is read, the
    zeroing of the rest runs into the guard page."""
    domid = domain(dom0, 1)
    with dom0.hv.arena.alloc(4096) as buf:
        buf.mem[0] = 0x30
        rc, _ = dom0.domctl(
            domctl.XEN_DOMCTL_setvcpuaffinity,
            domid,
            domctl.xen_domctl_vcpuaffinity,
            dict(
                vcpu=0,
                flags=HARD,
                cpumap_hard=dict(bitmap=buf.addr, nr_bits=8 * 8192),
                cpumap_soft=dict(bitmap=0, nr_bits=0),
            ),
        )
    assert rc == -EFAULT
    assert _affinities(dom0, domid) == (b"\x30\x00", b"\xff\x00", 0x2)


def test_affinities_survive_save_and_resume(dom0: Guest) -> None:
    domid = domain(dom0, 2)
    assert set_affinity(dom0, domid, 1, HARD | SOFT, b"\x06\x00", b"\x02\x00")[0] == 0
    hv = snapshot.load_state(snapshot.save_state(dom0.hv))
    again = Guest(hv)
    assert affinity(again, domid, 1, HARD | SOFT) == (0, b"\x06\x00", b"\x02\x00")
    assert affinity(again, domid, 0, HARD | SOFT) == (0, b"\xff\x00", b"\xff\x00")


def test_a_state_saved_before_affinities_loads_with_every_cpu(dom0: Guest) -> None:
    domid = domain(dom0, 1)
    doc = snapshot.save_state(dom0.hv)
    for d in doc["domains"]:
        del d["cpu_hard_affinity"], d["cpu_soft_affinity"]
    again = Guest(snapshot.load_state(doc))
    assert affinity(again, domid, 0, HARD | SOFT) == (0, b"\xff\x00", b"\xff\x00")

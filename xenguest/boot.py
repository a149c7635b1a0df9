"""The last step of a build: loading the boot vCPU's context, which brings it up
(xg_dom_boot.c xc_dom_boot_image's ``vcpu`` hook: vcpu_x86_64 and vcpu_x86_32 for PV guests,
vcpu_hvm for HVM and PVH guests, in xg_dom_x86.c).

The model loads no kernel and builds no page tables: a PV guest's entry point, stack and
start info are placeholders, and its top-level page table is taken to be its first page.
"""

from __future__ import annotations

import struct
from typing import Any

from hypervisor_model.guest_memory import build, parse, sizeof
from hypervisor_model.public import arch_x86, hvm_save
from xenctrl import XenError
from xenctrl.vcpu import xc_domain_hvm_getcontext, xc_domain_hvm_setcontext, xc_vcpu_setcontext
from xenguest.dom import traced, xc_dom_image
from xenguest.errors import XenguestError

X86_CR0_PE, X86_CR0_ET = 1 << 0, 1 << 4
X86_DR6_DEFAULT, X86_DR7_DEFAULT = 0xFFFF0FF0, 0x400
X86_EFLAGS_IF = 1 << 9
MTRR_TYPE_WRBACK, MTRR_DEF_TYPE_ENABLE = 6, 1 << 11
# Flat kernel selectors (xen-x86_64.h, xen-x86_32.h: the 32-bit kernel runs in ring 1).
FLAT_KERNEL_CS_X86_64, FLAT_KERNEL_SS_X86_64, FLAT_KERNEL_DS_X86_64 = 0xE033, 0xE02B, 0
FLAT_KERNEL_CS_X86_32, FLAT_KERNEL_SS_X86_32, FLAT_KERNEL_DS_X86_32 = 0xE019, 0xE021, 0xE021
# Placeholders for what a kernel image would give (elfnotes): Linux's usual virt_base.
VIRT_BASE_64, VIRT_BASE_32 = 0xFFFF_FFFF_8000_0000, 0xC000_0000
DESCRIPTOR = struct.Struct("<HHI")  # hvm_save_descriptor


@traced
def xc_dom_boot_image(dom: xc_dom_image) -> None:
    """Bring vCPU 0 up with its boot context (the vCPU hook of xc_dom_boot_image)."""
    try:
        if dom.is_pv:
            _vcpu_pv(dom)
        else:
            _vcpu_hvm(dom)
    except XenError as e:
        raise XenguestError("xc_dom_boot_image", e.errno, "loading vCPU 0's context") from e


def _zeroed(layout: Any) -> Any:
    """A structure with every field 0 (the memset libxenguest starts from), to fill in."""
    return parse(layout, bytes(sizeof(layout)))


def _set(record: Any, **fields: int) -> None:
    for name, value in fields.items():
        record[name] = value


def _vcpu_pv(dom: xc_dom_image) -> None:
    """vcpu_x86_64 / vcpu_x86_32: kernel mode, online, CR3 the page tables' frame."""
    compat = dom.guest_type.startswith("xen-3.0-x86_32")
    layout = arch_x86.compat_vcpu_guest_context if compat else arch_x86.vcpu_guest_context
    _, _, cr3_mfn = dom.pv_p2m[0]  # the first page: see the module's note
    ctxt = _zeroed(layout)
    regs = ctxt["user_regs"]
    base = VIRT_BASE_32 if compat else VIRT_BASE_64
    ip, sp, si = ("eip", "esp", "esi") if compat else ("rip", "rsp", "rsi")
    regs[ip], regs[sp], regs[si] = base, base + 0x2000, base + 0x1000
    regs["eflags" if compat else "rflags"] = X86_EFLAGS_IF
    ctxt["debugreg"][6], ctxt["debugreg"][7] = X86_DR6_DEFAULT, X86_DR7_DEFAULT
    ctxt["flags"] = arch_x86.VGCF_in_kernel | arch_x86.VGCF_online
    if compat:  # xen_pfn_to_cr3_x86_32: the frame's top bits rotate into the low ones
        ctxt["ctrlreg"][3] = (cr3_mfn << 12 | cr3_mfn >> 20) & 0xFFFFFFFF
        cs, ss, ds = FLAT_KERNEL_CS_X86_32, FLAT_KERNEL_SS_X86_32, FLAT_KERNEL_DS_X86_32
    else:
        ctxt["ctrlreg"][3] = cr3_mfn << 12
        cs, ss, ds = FLAT_KERNEL_CS_X86_64, FLAT_KERNEL_SS_X86_64, FLAT_KERNEL_DS_X86_64
    _set(regs, ds=ds, es=ds, fs=ds, gs=ds, ss=ss, cs=cs)
    ctxt["kernel_ss"], ctxt["kernel_sp"] = ss, regs[sp]
    xc_vcpu_setcontext(dom.xch, dom.guest_domid, 0, build(layout, ctxt))


def _records(stream: bytes) -> dict[tuple[int, int], bytes]:
    """hvm_get_save_record for every record: (typecode, instance) -> its bytes."""
    found, cur = {}, 0
    while cur + DESCRIPTOR.size <= len(stream):
        typecode, instance, length = DESCRIPTOR.unpack_from(stream, cur)
        if typecode == hvm_save.HVM_SAVE_CODE_END:
            break
        found[(typecode, instance)] = stream[cur + DESCRIPTOR.size : cur + DESCRIPTOR.size + length]
        cur += DESCRIPTOR.size + length
    return found


def _stream(header: bytes, typecode: int, instance: int, body: bytes) -> bytes:
    """Header, one record, END: the partial contexts vcpu_hvm loads."""
    record = DESCRIPTOR.pack(typecode, instance, len(body)) + body
    return header + record + DESCRIPTOR.pack(hvm_save.HVM_SAVE_CODE_END, 0, 0)


def _vcpu_hvm(dom: xc_dom_image) -> None:
    """vcpu_hvm: take the header from the full context, enable write-back MTRRs on every vCPU
    when there is no device model (PVH), then load vCPU 0 in flat protected mode; that load
    comes last because every load puts all vCPUs down."""
    xch, domid = dom.xch, dom.guest_domid
    full = bytearray(xc_domain_hvm_getcontext(xch, domid, None))
    xc_domain_hvm_getcontext(xch, domid, full)
    header = bytes(full[: DESCRIPTOR.size + sizeof(hvm_save.hvm_save_header)])
    records = _records(bytes(full))
    if not dom.device_model:
        mtrr = records.get((hvm_save.HVM_SAVE_CODE_MTRR, 0))
        if mtrr is None:
            raise XenguestError("vcpu_hvm", 0, "unable to get the MTRR save record")
        ranges = parse(hvm_save.hvm_hw_mtrr, mtrr)
        ranges["msr_mtrr_def_type"] = MTRR_TYPE_WRBACK | MTRR_DEF_TYPE_ENABLE
        for vcpu in range(dom.max_vcpus):
            body = build(hvm_save.hvm_hw_mtrr, ranges)
            xc_domain_hvm_setcontext(
                xch, domid, _stream(header, hvm_save.HVM_SAVE_CODE_MTRR, vcpu, body)
            )
    cpu = _zeroed(hvm_save.hvm_hw_cpu)
    _set(cpu, cs_limit=0xFFFFFFFF, ds_limit=0xFFFFFFFF, es_limit=0xFFFFFFFF, ss_limit=0xFFFFFFFF)
    _set(cpu, tr_limit=0x67, tr_arbytes=0x8B)
    _set(cpu, cs_arbytes=0xC9B, ds_arbytes=0xC93, es_arbytes=0xC93, ss_arbytes=0xC93)
    _set(cpu, cr0=X86_CR0_PE | X86_CR0_ET, dr6=X86_DR6_DEFAULT, dr7=X86_DR7_DEFAULT)
    bsp = build(hvm_save.hvm_hw_cpu, cpu)  # rip: the entry point, 0 with no kernel loaded
    xc_domain_hvm_setcontext(xch, domid, _stream(header, hvm_save.HVM_SAVE_CODE_CPU, 0, bsp))

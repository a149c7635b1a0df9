"""The x86 vCPU context of ``public/arch-x86/xen.h`` (with xen-x86_64.h and xen-x86_32.h):
what XEN_DOMCTL_setvcpucontext carries, natively for 64-bit guests and in the 32-bit
("compat") layout for 32-bit PV guests."""

from construct import Array, Bytes, Construct, Padding, Struct

from .xen import uint8_t, uint16_t, uint32_t, uint64_t

# vcpu_guest_context ``flags`` (VGCF_*).
VGCF_i387_valid = 1 << 0
VGCF_in_kernel = 1 << 2
VGCF_failsafe_disables_events = 1 << 3
VGCF_syscall_disables_events = 1 << 4
VGCF_online = 1 << 5  # the vCPU comes up once the context is set

_GPRS = (
    *("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8"),
    *("rax", "rcx", "rdx", "rsi", "rdi"),
)
_SELECTORS = ("ss", "es", "ds", "fs", "gs")  # each padded to the register's width

# struct cpu_user_regs of xen-x86_64.h (200 bytes).
cpu_user_regs: Construct = Struct(
    *(name / uint64_t for name in _GPRS),
    "error_code" / uint32_t,
    "entry_vector" / uint32_t,
    "rip" / uint64_t,
    "cs" / uint16_t,
    Padding(2),
    "saved_upcall_mask" / uint8_t,
    Padding(3),
    "rflags" / uint64_t,
    "rsp" / uint64_t,
    *(sub for name in _SELECTORS for sub in (name / uint16_t, Padding(6))),
)

# struct trap_info of xen.h on x86_64 (16 bytes): one virtual IDT entry.
trap_info: Construct = Struct(
    "vector" / uint8_t, "flags" / uint8_t, "cs" / uint16_t, Padding(4), "address" / uint64_t
)

# struct vcpu_guest_context for a 64-bit guest (5168 bytes).
vcpu_guest_context: Construct = Struct(
    "fpu_ctxt" / Bytes(512),
    "flags" / uint64_t,  # VGCF_*
    "user_regs" / cpu_user_regs,
    "trap_ctxt" / Array(256, trap_info),
    "ldt_base" / uint64_t,
    "ldt_ents" / uint64_t,
    "gdt_frames" / Array(16, uint64_t),
    "gdt_ents" / uint64_t,
    "kernel_ss" / uint64_t,
    "kernel_sp" / uint64_t,
    "ctrlreg" / Array(8, uint64_t),  # ctrlreg[3]: the top page table, as xen_pfn_to_cr3
    "debugreg" / Array(8, uint64_t),
    "event_callback_eip" / uint64_t,
    "failsafe_callback_eip" / uint64_t,
    "syscall_callback_eip" / uint64_t,
    "vm_assist" / uint64_t,  # VMASST_TYPE_* bits
    "fs_base" / uint64_t,
    "gs_base_kernel" / uint64_t,
    "gs_base_user" / uint64_t,
)
vcpu_guest_context_x86_64_t: Construct = vcpu_guest_context

# struct cpu_user_regs of xen-x86_32.h (68 bytes).
compat_cpu_user_regs: Construct = Struct(
    *(name / uint32_t for name in ("ebx", "ecx", "edx", "esi", "edi", "ebp", "eax")),
    "error_code" / uint16_t,
    "entry_vector" / uint16_t,
    "eip" / uint32_t,
    "cs" / uint16_t,
    "saved_upcall_mask" / uint8_t,
    Padding(1),
    "eflags" / uint32_t,
    "esp" / uint32_t,
    *(sub for name in _SELECTORS for sub in (name / uint16_t, Padding(2))),
)

# struct trap_info on x86_32 (8 bytes).
compat_trap_info: Construct = Struct(
    "vector" / uint8_t, "flags" / uint8_t, "cs" / uint16_t, "address" / uint32_t
)

# struct vcpu_guest_context for a 32-bit PV guest (2800 bytes).
compat_vcpu_guest_context: Construct = Struct(
    "fpu_ctxt" / Bytes(512),
    "flags" / uint32_t,
    "user_regs" / compat_cpu_user_regs,
    "trap_ctxt" / Array(256, compat_trap_info),
    "ldt_base" / uint32_t,
    "ldt_ents" / uint32_t,
    "gdt_frames" / Array(16, uint32_t),
    "gdt_ents" / uint32_t,
    "kernel_ss" / uint32_t,
    "kernel_sp" / uint32_t,
    "ctrlreg" / Array(8, uint32_t),  # ctrlreg[3]: xen_pfn_to_cr3 of the 32-bit ABI
    "debugreg" / Array(8, uint32_t),
    "event_callback_cs" / uint32_t,
    "event_callback_eip" / uint32_t,
    "failsafe_callback_cs" / uint32_t,
    "failsafe_callback_eip" / uint32_t,
    "vm_assist" / uint32_t,
)
vcpu_guest_context_x86_32_t: Construct = compat_vcpu_guest_context

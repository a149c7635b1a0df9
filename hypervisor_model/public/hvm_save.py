"""HVM save records (``public/hvm/save.h``, ``public/arch-x86/hvm/save.h``): the stream
XEN_DOMCTL_gethvmcontext fills and XEN_DOMCTL_sethvmcontext loads, each record a
descriptor followed by ``length`` bytes, from a header to an END record."""

from construct import Array, Bytes, Construct, Struct

from .xen import uint16_t, uint32_t, uint64_t

HVM_FILE_MAGIC = 0x54381286
HVM_FILE_VERSION = 1

# Record type codes (HVM_SAVE_CODE): the ones the model keeps.
HVM_SAVE_CODE_END = 0
HVM_SAVE_CODE_HEADER = 1
HVM_SAVE_CODE_CPU = 2
HVM_SAVE_CODE_MTRR = 14
HVM_SAVE_CODE_MAX = 20

# What precedes every record (8 bytes).
hvm_save_descriptor: Construct = Struct(
    "typecode" / uint16_t,
    "instance" / uint16_t,  # the vCPU, for per-vCPU records
    "length" / uint32_t,  # bytes that follow
)

# HEADER, the first record (24 bytes).
hvm_save_header: Construct = Struct(
    "magic" / uint32_t,  # HVM_FILE_MAGIC
    "version" / uint32_t,  # HVM_FILE_VERSION
    "changeset" / uint64_t,  # of the Xen that saved it; ~0: unknown
    "cpuid" / uint32_t,  # CPUID[1].eax of the saving host
    "gtsc_khz" / uint32_t,  # the guest's TSC frequency
)

_REGS = (
    *("rax", "rbx", "rcx", "rdx", "rbp", "rsi", "rdi", "rsp"),
    *("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "rflags"),
    *("cr0", "cr2", "cr3", "cr4", "dr0", "dr1", "dr2", "dr3", "dr6", "dr7"),
)
_SEGS = ("cs", "ds", "es", "fs", "gs", "ss", "tr", "ldtr")
_MSRS = (
    *("sysenter_cs", "sysenter_esp", "sysenter_eip", "shadow_gs", "msr_flags"),
    *("msr_lstar", "msr_star", "msr_cstar", "msr_syscall_mask", "msr_efer"),
    *("msr_tsc_aux", "tsc"),
)

# CPU: one vCPU's registers (1032 bytes), instance = the vCPU.
hvm_hw_cpu: Construct = Struct(
    "fpu_regs" / Bytes(512),
    *(name / uint64_t for name in _REGS),
    *(f"{seg}_sel" / uint32_t for seg in _SEGS),
    *(f"{seg}_limit" / uint32_t for seg in (*_SEGS, "idtr", "gdtr")),
    *(f"{seg}_base" / uint64_t for seg in (*_SEGS, "idtr", "gdtr")),
    *(f"{seg}_arbytes" / uint32_t for seg in _SEGS),
    *(name / uint64_t for name in _MSRS),
    "pending_event" / uint32_t,
    "error_code" / uint32_t,
    "flags" / uint32_t,  # XEN_X86_FPU_INITIALISED
    "pad0" / uint32_t,
)
XEN_X86_FPU_INITIALISED = 1 << 0

MTRR_VCNT = 8
NUM_FIXED_MSR = 11

# MTRR: one vCPU's memory-type ranges (240 bytes).
hvm_hw_mtrr: Construct = Struct(
    "msr_pat_cr" / uint64_t,
    "msr_mtrr_var" / Array(MTRR_VCNT * 2, uint64_t),  # PHYSBASE/PHYSMASK pairs
    "msr_mtrr_fixed" / Array(NUM_FIXED_MSR, uint64_t),
    "msr_mtrr_cap" / uint64_t,
    "msr_mtrr_def_type" / uint64_t,
)

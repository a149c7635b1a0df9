"""Domain-control hypercall ABI (``public/domctl.h``, x86_64) as construct layouts.

``xen_domctl`` keeps its union ``u`` as 128 raw bytes; each sub-op payload below
is parsed from, or built into, those bytes by whoever handles that command.
"""

from construct import Array, Bytes, Construct, Default, FixedSized, GreedyBytes, Padding, Struct

from .xen import (
    domid_t,
    guest_handle,
    int32_t,
    uint8_t,
    uint16_t,
    uint32_t,
    uint64_aligned_t,
    uint64_t,
    xen_domain_handle_t,
    xenctl_bitmap,
)

# Non-stable commands must carry exactly this version, else -EACCES.
XEN_DOMCTL_INTERFACE_VERSION = 0x18

# Command numbers (``xen_domctl.cmd``).
XEN_DOMCTL_createdomain = 1
XEN_DOMCTL_destroydomain = 2
XEN_DOMCTL_pausedomain = 3
XEN_DOMCTL_unpausedomain = 4
XEN_DOMCTL_getdomaininfo = 5
XEN_DOMCTL_setvcpuaffinity = 9
XEN_DOMCTL_shadow_op = 10
XEN_DOMCTL_max_mem = 11
XEN_DOMCTL_setvcpucontext = 12
XEN_DOMCTL_getvcpuinfo = 14
XEN_DOMCTL_getvcpuaffinity = 25
XEN_DOMCTL_max_vcpus = 15
XEN_DOMCTL_gethvmcontext = 33
XEN_DOMCTL_sethvmcontext = 34
XEN_DOMCTL_set_address_size = 35
XEN_DOMCTL_get_address_size = 36
XEN_DOMCTL_setnodeaffinity = 68
XEN_DOMCTL_getnodeaffinity = 69
XEN_DOMCTL_setvnumainfo = 74
XEN_DOMCTL_get_paging_mempool_size = 85
XEN_DOMCTL_set_paging_mempool_size = 86
XEN_DOMCTL_get_domain_state = 90  # the one stable op: interface_version must be 0

# createdomain ``flags`` (XEN_DOMCTL_CDF_*).
XEN_DOMCTL_CDF_hvm = 1 << 0
XEN_DOMCTL_CDF_hap = 1 << 1
XEN_DOMCTL_CDF_s3_integrity = 1 << 2
XEN_DOMCTL_CDF_oos_off = 1 << 3
XEN_DOMCTL_CDF_xs_domain = 1 << 4
XEN_DOMCTL_CDF_iommu = 1 << 5
XEN_DOMCTL_CDF_nested_virt = 1 << 6
XEN_DOMCTL_CDF_vpmu = 1 << 7
XEN_DOMCTL_CDF_trap_unmapped_accesses = 1 << 8
XEN_DOMCTL_CDF_MAX = XEN_DOMCTL_CDF_trap_unmapped_accesses  # highest defined flag

# getdomaininfo ``flags`` (XEN_DOMINF_*); the guest's shutdown code sits in bits 16..23.
XEN_DOMINF_dying = 1 << 0
XEN_DOMINF_hvm_guest = 1 << 1
XEN_DOMINF_shutdown = 1 << 2
XEN_DOMINF_paused = 1 << 3
XEN_DOMINF_blocked = 1 << 4
XEN_DOMINF_running = 1 << 5
XEN_DOMINF_debugged = 1 << 6
XEN_DOMINF_xs_domain = 1 << 7
XEN_DOMINF_hap = 1 << 8
XEN_DOMINF_shutdownmask = 255
XEN_DOMINF_shutdownshift = 16

# getdomaininfo ``max_vcpu_id`` of a domain without vCPUs.
XEN_INVALID_MAX_VCPU_ID = 0xFFFFFFFF

# get_domain_state ``state`` and ``caps`` bits.
XEN_DOMCTL_GETDOMSTATE_STATE_EXIST = 0x0001
XEN_DOMCTL_GETDOMSTATE_STATE_SHUTDOWN = 0x0002
XEN_DOMCTL_GETDOMSTATE_STATE_DYING = 0x0004
XEN_DOMCTL_GETDOMSTATE_STATE_DEAD = 0x0008
XEN_DOMCTL_GETDOMSTATE_CAP_CONTROL = 0x0001
XEN_DOMCTL_GETDOMSTATE_CAP_HARDWARE = 0x0002
XEN_DOMCTL_GETDOMSTATE_CAP_XENSTORE = 0x0004

# The domctl envelope: a 16-byte header and a 128-byte union, 144 bytes.
xen_domctl: Construct = Struct(
    "cmd" / uint32_t,
    "interface_version" / uint32_t,
    "domain" / domid_t,
    "_pad" / Default(Array(3, uint16_t), [0, 0, 0]),
    # The union, raw; a shorter payload is zero-filled to 128 bytes on build.
    "u" / FixedSized(128, GreedyBytes),
)

# x86 emulators a domain has (xen_arch_domainconfig.emulation_flags, arch-x86/xen.h).
XEN_X86_EMU_LAPIC = 1 << 0
XEN_X86_EMU_HPET = 1 << 1
XEN_X86_EMU_PM = 1 << 2
XEN_X86_EMU_RTC = 1 << 3
XEN_X86_EMU_IOAPIC = 1 << 4
XEN_X86_EMU_PIC = 1 << 5
XEN_X86_EMU_VGA = 1 << 6
XEN_X86_EMU_IOMMU = 1 << 7
XEN_X86_EMU_PIT = 1 << 8
XEN_X86_EMU_USE_PIRQ = 1 << 9
XEN_X86_EMU_VPCI = 1 << 10
XEN_X86_EMU_ALL = (1 << 11) - 1

# x86's per-architecture part of createdomain and getdomaininfo.
xen_arch_domainconfig: Construct = Struct(
    "emulation_flags" / uint32_t,
    "misc_flags" / uint32_t,
)

# XEN_DOMCTL_createdomain payload (68 bytes); xen_domctl.domain is IN/OUT.
xen_domctl_createdomain: Construct = Struct(
    "ssidref" / uint32_t,
    "handle" / xen_domain_handle_t,
    "flags" / uint32_t,
    "iommu_opts" / uint32_t,
    "max_vcpus" / uint32_t,
    "max_evtchn_port" / uint32_t,
    "max_grant_frames" / int32_t,  # negative: use Xen's default
    "max_maptrack_frames" / int32_t,  # negative: use Xen's default
    "grant_opts" / uint32_t,
    "altp2m" / Struct("opts" / uint16_t, "nr" / uint16_t),
    "vmtrace_size" / uint32_t,
    "cpupool_id" / uint32_t,
    "arch" / xen_arch_domainconfig,
)

# XEN_DOMCTL_getdomaininfo payload (112 bytes), libxc's xc_domaininfo_t.
xen_domctl_getdomaininfo: Construct = Struct(
    "domain" / domid_t,
    "pad1" / Default(uint16_t, 0),
    "flags" / uint32_t,
    "tot_pages" / uint64_aligned_t,
    "max_pages" / uint64_aligned_t,
    "outstanding_pages" / uint64_aligned_t,
    "shr_pages" / uint64_aligned_t,
    "paged_pages" / uint64_aligned_t,
    "shared_info_frame" / uint64_aligned_t,
    "cpu_time" / uint64_aligned_t,
    "nr_online_vcpus" / uint32_t,
    "max_vcpu_id" / uint32_t,
    "ssidref" / uint32_t,
    "handle" / xen_domain_handle_t,
    "cpupool" / uint32_t,
    "gpaddr_bits" / uint8_t,
    "pad2" / Default(Bytes(7), bytes(7)),
    "arch_config" / xen_arch_domainconfig,
)

# XEN_DOMCTL_max_mem payload: the new limit in KiB.
xen_domctl_max_mem: Construct = Struct("max_memkb" / uint64_aligned_t)

# XEN_DOMCTL_{set,get}_address_size payload: a PV guest's width, 32 or 64.
xen_domctl_address_size: Construct = Struct("size" / uint32_t)

# XEN_DOMCTL_max_vcpus payload.
xen_domctl_max_vcpus: Construct = Struct("max" / uint32_t)

# XEN_DOMCTL_setvcpucontext payload (16 bytes); a NULL context resets the vCPU.
xen_domctl_vcpucontext: Construct = Struct(
    "vcpu" / uint32_t,
    Padding(4),
    "ctxt" / guest_handle,  # vcpu_guest_context (arch_x86), compat layout for 32-bit PV
)

# XEN_DOMCTL_getvcpuinfo payload (24 bytes).
xen_domctl_getvcpuinfo: Construct = Struct(
    "vcpu" / uint32_t,  # IN
    "online" / uint8_t,  # not down
    "blocked" / uint8_t,  # waiting for an event
    "running" / uint8_t,  # on a CPU now
    Padding(1),
    "cpu_time" / uint64_aligned_t,  # ns run so far
    "cpu" / uint32_t,  # the CPU it is on, or was last
    Padding(4),
)

# XEN_DOMCTL_getvcpuaffinity ``flags``: which maps to read.
XEN_VCPUAFFINITY_HARD = 1 << 0  # where the vCPU may run
XEN_VCPUAFFINITY_SOFT = 1 << 1  # where it prefers to run
XEN_VCPUAFFINITY_FORCE = 1 << 2

# XEN_DOMCTL_{get,set}vcpuaffinity payload (40 bytes).
xen_domctl_vcpuaffinity: Construct = Struct(
    "vcpu" / uint32_t,
    "flags" / uint32_t,  # XEN_VCPUAFFINITY_*
    "cpumap_hard" / xenctl_bitmap,
    "cpumap_soft" / xenctl_bitmap,
)

# XEN_DOMCTL_{get,set}hvmcontext payload (16 bytes): a stream of HVM save records.
xen_domctl_hvmcontext: Construct = Struct(
    "size" / uint32_t,  # IN: buffer bytes; OUT (get): bytes written, or needed if NULL
    Padding(4),
    "buffer" / guest_handle,  # uint8[size]; NULL (get) asks for the size
)

# XEN_DOMCTL_{set,get}nodeaffinity payload: the domain's node mask.
xen_domctl_nodeaffinity: Construct = Struct("nodemap" / xenctl_bitmap)

# XEN_DOMCTL_setvnumainfo payload (48 bytes): counts, then four arrays by reference.
xen_domctl_vnuma: Construct = Struct(
    "nr_vnodes" / uint32_t,
    "nr_vmemranges" / uint32_t,
    "nr_vcpus" / uint32_t,
    "pad" / Default(uint32_t, 0),
    "vdistance" / guest_handle,  # uint[nr_vnodes * nr_vnodes]
    "vcpu_to_vnode" / guest_handle,  # uint[nr_vcpus]
    "vnode_to_pnode" / guest_handle,  # uint[nr_vnodes]
    "vmemrange" / guest_handle,  # xen_vmemrange[nr_vmemranges]
)

# XEN_DOMCTL_shadow_op ``op``: the paging pool accessors (deprecated in favour of the
# paging_mempool_size domctls, still served) and the log-dirty operations.
XEN_DOMCTL_SHADOW_OP_OFF = 0
XEN_DOMCTL_SHADOW_OP_ENABLE_TEST = 1
XEN_DOMCTL_SHADOW_OP_ENABLE_LOGDIRTY = 2
XEN_DOMCTL_SHADOW_OP_CLEAN = 11
XEN_DOMCTL_SHADOW_OP_PEEK = 12
XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION = 30
XEN_DOMCTL_SHADOW_OP_SET_ALLOCATION = 31
XEN_DOMCTL_SHADOW_OP_ENABLE = 32
XEN_DOMCTL_SHADOW_ENABLE_LOG_DIRTY = 1 << 2
XEN_DOMCTL_SHADOW_LOGDIRTY_FINAL = 1 << 0

# XEN_DOMCTL_shadow_op payload (40 bytes).
xen_domctl_shadow_op: Construct = Struct(
    "op" / uint32_t,
    "mode" / uint32_t,
    "mb" / uint32_t,  # GET/SET_ALLOCATION: the pool in MiB, rounded up on the way out
    "pad" / Default(uint32_t, 0),
    "dirty_bitmap" / guest_handle,
    "pages" / uint64_aligned_t,
    "stats" / Struct("fault_count" / uint32_t, "dirty_count" / uint32_t),
)

# XEN_DOMCTL_{get,set}_paging_mempool_size payload: the pool in bytes.
xen_domctl_paging_mempool: Construct = Struct("size" / uint64_aligned_t)

# XEN_DOMCTL_get_domain_state payload (16 bytes).
xen_domctl_get_domain_state: Construct = Struct(
    "state" / uint16_t,
    "caps" / uint16_t,
    "pad0" / Default(uint32_t, 0),
    "unique_id" / uint64_t,
)

# ---------------------------------------------------------------------------
# NUMA-aware claim sets. NOT in Xen master: this follows v7 of the series
# "xen/mm: Introduce NUMA-aware memory claim sets" (posted 2026-05-08), patch 2/3,
# the newest posted revision (fact sheet section 1.6). Earlier and later
# revisions differ in names and numbers; this section is the only place to change.
# ---------------------------------------------------------------------------

XEN_DOMCTL_claim_memory = 91

# xen_domctl_claim_memory ``mode``. (The v7 design document swaps these; the code wins.)
XEN_DOMCTL_CLAIM_MEMORY_SET = 0
XEN_DOMCTL_CLAIM_MEMORY_GET = 1

# Special values of xen_memory_claim ``target``; any other value is a NUMA node ID.
XEN_DOMCTL_CLAIM_MEMORY_HOST = 0x80000000  # a host-wide claim, from any node
XEN_DOMCTL_CLAIM_MEMORY_LEGACY = 0x40000000  # XENMEM_claim_pages semantics

# One entry of a claim set (16 bytes).
xen_memory_claim: Construct = Struct(
    "pages" / uint64_aligned_t,
    "target" / uint32_t,
    "cmd" / Default(uint32_t, 0),  # reserved, must be zero
)
xen_memory_claim_t: Construct = xen_memory_claim
memory_claim_t: Construct = xen_memory_claim  # the v7 design document's name

# XEN_DOMCTL_claim_memory payload (16 bytes).
xen_domctl_claim_memory: Construct = Struct(
    "claim_set" / guest_handle,  # xen_memory_claim[nr_entries]
    "nr_entries" / uint32_t,  # SET: entries given; GET: capacity in, entries needed out
    "mode" / uint32_t,
)

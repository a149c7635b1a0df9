"""System-control hypercall ABI (``public/sysctl.h``, x86_64) as construct layouts.

Host-wide queries a toolstack makes: physical and NUMA memory, free heap, domain
lists, page offlining, CPU pools and the PCI devices' nodes.
"""

from construct import Array, Construct, Default, FixedSized, GreedyBytes, Padding, Struct

from .xen import (
    domid_t,
    guest_handle,
    int32_t,
    uint8_t,
    uint32_t,
    uint64_aligned_t,
    uint64_t,
    xenctl_bitmap,
)

# Every sysctl must carry exactly this version, else -EACCES.
XEN_SYSCTL_INTERFACE_VERSION = 0x16

# Command numbers (``xen_sysctl.cmd``).
XEN_SYSCTL_readconsole = 1
XEN_SYSCTL_sched_id = 4
XEN_SYSCTL_debug_keys = 7
XEN_SYSCTL_physinfo = 3
XEN_SYSCTL_getdomaininfolist = 6
XEN_SYSCTL_availheap = 9
XEN_SYSCTL_page_offline_op = 14
XEN_SYSCTL_cputopoinfo = 16
XEN_SYSCTL_numainfo = 17
XEN_SYSCTL_cpupool_op = 18
XEN_SYSCTL_pcitopoinfo = 22

# The sysctl envelope: an 8-byte header and a 128-byte union, 136 bytes.
xen_sysctl: Construct = Struct(
    "cmd" / uint32_t,
    "interface_version" / uint32_t,
    # The union, raw; a shorter payload is zero-filled to 128 bytes on build.
    "u" / FixedSized(128, GreedyBytes),
)

# XEN_SYSCTL_readconsole payload (24 bytes).
xen_sysctl_readconsole: Construct = Struct(
    "clear" / uint8_t,  # non-zero: empty the ring after reading
    "incremental" / uint8_t,  # non-zero: start at ``index``
    "pad0" / Default(uint8_t, 0),
    "pad1" / Default(uint8_t, 0),
    "index" / uint32_t,  # IN: where to start; OUT: where reading stopped
    "buffer" / guest_handle,  # char[count]
    "count" / uint32_t,  # IN: buffer size; OUT: bytes written
    Padding(4),
)

# XEN_SYSCTL_sched_id payload: the scheduler (XEN_SCHEDULER_*, public/domctl.h).
xen_sysctl_sched_id: Construct = Struct("sched_id" / uint32_t)
XEN_SCHEDULER_CREDIT = 5
XEN_SCHEDULER_CREDIT2 = 6

# XEN_SYSCTL_debug_keys payload (16 bytes): keys to "press", as if typed on the console.
xen_sysctl_debug_keys: Construct = Struct(
    "keys" / guest_handle,  # char[nr_keys]
    "nr_keys" / uint32_t,
    Padding(4),
)

# physinfo ``capabilities`` bits (XEN_SYSCTL_PHYSCAP_*).
XEN_SYSCTL_PHYSCAP_hvm = 1 << 0
XEN_SYSCTL_PHYSCAP_pv = 1 << 1
XEN_SYSCTL_PHYSCAP_directio = 1 << 2
XEN_SYSCTL_PHYSCAP_hap = 1 << 3
XEN_SYSCTL_PHYSCAP_shadow = 1 << 4
XEN_SYSCTL_PHYSCAP_iommu_hap_pt_share = 1 << 5
XEN_SYSCTL_PHYSCAP_vmtrace = 1 << 6
XEN_SYSCTL_PHYSCAP_vpmu = 1 << 7
XEN_SYSCTL_PHYSCAP_gnttab_v1 = 1 << 8
XEN_SYSCTL_PHYSCAP_gnttab_v2 = 1 << 9
XEN_SYSCTL_PHYSCAP_MAX = XEN_SYSCTL_PHYSCAP_gnttab_v2  # highest defined bit

# XEN_SYSCTL_physinfo payload (112 bytes).
xen_sysctl_physinfo: Construct = Struct(
    "threads_per_core" / uint32_t,
    "cores_per_socket" / uint32_t,
    "nr_cpus" / uint32_t,  # online CPUs
    "max_cpu_id" / uint32_t,
    "nr_nodes" / uint32_t,  # online nodes
    "max_node_id" / uint32_t,  # MAX_NUMNODES - 1, not the highest present node
    "cpu_khz" / uint32_t,
    "capabilities" / uint32_t,  # XEN_SYSCTL_PHYSCAP_*
    "arch_capabilities" / uint32_t,
    "pad" / Default(uint32_t, 0),
    "total_pages" / uint64_aligned_t,
    "free_pages" / uint64_aligned_t,  # includes claimed pages
    "scrub_pages" / uint64_aligned_t,
    "outstanding_pages" / uint64_aligned_t,  # host-wide sum of claims
    "max_mfn" / uint64_aligned_t,
    "hw_cap" / Array(8, uint32_t),
)

# XEN_SYSCTL_getdomaininfolist payload (24 bytes).
xen_sysctl_getdomaininfolist: Construct = Struct(
    "first_domain" / domid_t,
    Padding(2),
    "max_domains" / uint32_t,
    "buffer" / guest_handle,  # xen_domctl_getdomaininfo[max_domains]
    "num_domains" / uint32_t,  # OUT
    Padding(4),
)

# XEN_SYSCTL_availheap payload (24 bytes).
xen_sysctl_availheap: Construct = Struct(
    "min_bitwidth" / uint32_t,  # 0: no lower address limit
    "max_bitwidth" / uint32_t,  # 0: no upper address limit
    "node" / int32_t,  # -1: all nodes
    Padding(4),
    "avail_bytes" / uint64_aligned_t,  # OUT
)

# XEN_SYSCTL_page_offline_op ``cmd`` values.
sysctl_page_offline = 1
sysctl_page_online = 2
sysctl_query_page_offline = 3

# XEN_SYSCTL_page_offline_op payload (24 bytes).
xen_sysctl_page_offline_op: Construct = Struct(
    "cmd" / uint32_t,  # sysctl_page_offline / _online / sysctl_query_page_offline
    "start" / uint32_t,  # first MFN
    "end" / uint32_t,  # last MFN, inclusive
    Padding(4),
    "status" / guest_handle,  # uint32[end - start + 1], one PG_OFFLINE_* word per page
)

# Per-page status words of page_offline_op: result bits low, owner domid from bit 16.
PG_OFFLINE_STATUS_MASK = 0xFF
PG_OFFLINE_INVALID = 1 << 0  # Xen did not handle the page
PG_OFFLINE_OFFLINED = 1 << 1
PG_OFFLINE_PENDING = 1 << 2
PG_OFFLINE_FAILED = 1 << 3
PG_OFFLINE_AGAIN = 1 << 4
PG_ONLINE_FAILED = PG_OFFLINE_FAILED
PG_ONLINE_ONLINED = PG_OFFLINE_OFFLINED
# Status bits answered by sysctl_query_page_offline.
PG_OFFLINE_STATUS_OFFLINED = 1 << 1
PG_OFFLINE_STATUS_ONLINE = 1 << 2
PG_OFFLINE_STATUS_OFFLINE_PENDING = 1 << 3
PG_OFFLINE_STATUS_BROKEN = 1 << 4
PG_OFFLINE_MISC_MASK = 0xFF << 4
# Why offlining failed or is pending.
PG_OFFLINE_XENPAGE = 1 << 8
PG_OFFLINE_DOM0PAGE = 1 << 9
PG_OFFLINE_ANONYMOUS = 1 << 10
PG_OFFLINE_NOT_CONV_RAM = 1 << 11
PG_OFFLINE_OWNED = 1 << 12
PG_OFFLINE_BROKEN = 1 << 13
PG_ONLINE_BROKEN = PG_OFFLINE_BROKEN
PG_OFFLINE_OWNER_SHIFT = 16

# cputopo fields of a CPU Xen knows nothing about (C's ~0U, 32 bits).
XEN_INVALID_CORE_ID = 0xFFFFFFFF
XEN_INVALID_SOCKET_ID = 0xFFFFFFFF
XEN_INVALID_NODE_ID = 0xFFFFFFFF

# One CPU's place in the topology (12 bytes).
xen_sysctl_cputopo: Construct = Struct(
    "core" / uint32_t,
    "socket" / uint32_t,
    "node" / uint32_t,
)

# XEN_SYSCTL_cputopoinfo payload (16 bytes); a NULL handle asks for the count.
xen_sysctl_cputopoinfo: Construct = Struct(
    "num_cpus" / uint32_t,
    Padding(4),
    "cputopo" / guest_handle,  # xen_sysctl_cputopo[num_cpus]
)

# numainfo values for an offline node and an unknown distance. C's ~0U is 32 bits wide,
# so in the 64-bit meminfo fields it reads 0x00000000FFFFFFFF.
XEN_INVALID_MEM_SZ = 0xFFFFFFFF
XEN_INVALID_NODE_DIST = 0xFFFFFFFF

# One node's memory in numainfo (16 bytes), in bytes.
xen_sysctl_meminfo: Construct = Struct(
    "memsize" / uint64_t,
    "memfree" / uint64_t,  # includes claimed pages
)

# XEN_SYSCTL_numainfo payload (24 bytes); two NULL handles ask for the node count.
xen_sysctl_numainfo: Construct = Struct(
    "num_nodes" / uint32_t,
    Padding(4),
    "meminfo" / guest_handle,  # xen_sysctl_meminfo[num_nodes]
    "distance" / guest_handle,  # uint32[N * N], row-major, N the count returned
)

# XEN_SYSCTL_cpupool_op sub-ops; letters say which fields each reads or writes below.
XEN_SYSCTL_CPUPOOL_OP_CREATE = 1  # C
XEN_SYSCTL_CPUPOOL_OP_DESTROY = 2  # D
XEN_SYSCTL_CPUPOOL_OP_INFO = 3  # I
XEN_SYSCTL_CPUPOOL_OP_ADDCPU = 4  # A
XEN_SYSCTL_CPUPOOL_OP_RMCPU = 5  # R
XEN_SYSCTL_CPUPOOL_OP_MOVEDOMAIN = 6  # M
XEN_SYSCTL_CPUPOOL_OP_FREEINFO = 7  # F
XEN_SYSCTL_CPUPOOL_PAR_ANY = 0xFFFFFFFF  # any pool id (C) or any CPU (A, R)

# XEN_SYSCTL_cpupool_op payload (40 bytes).
xen_sysctl_cpupool_op: Construct = Struct(
    "op" / uint32_t,  # XEN_SYSCTL_CPUPOOL_OP_*
    "cpupool_id" / uint32_t,  # IN: CDIARM; OUT: CI (INFO: the first pool from this id)
    "sched_id" / uint32_t,  # IN: C; OUT: I
    "domid" / uint32_t,  # IN: M
    "cpu" / uint32_t,  # IN: AR
    "n_dom" / uint32_t,  # OUT: I
    "cpumap" / xenctl_bitmap,  # OUT: I (the pool's CPUs), F (CPUs in no pool)
)

# pcitopoinfo's node of a device Xen does not know (XEN_INVALID_NODE_ID - 1).
XEN_INVALID_DEV = XEN_INVALID_NODE_ID - 1

# XEN_SYSCTL_pcitopoinfo payload (24 bytes).
xen_sysctl_pcitopoinfo: Construct = Struct(
    "num_devs" / uint32_t,  # IN: entries in both arrays; OUT: entries done
    Padding(4),
    "devs" / guest_handle,  # physdev_pci_device[num_devs]
    "nodes" / guest_handle,  # uint32[num_devs], OUT: each device's node
)

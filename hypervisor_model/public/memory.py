"""Memory-reservation hypercall ABI (``public/memory.h``, x86_64) as construct layouts.

Covers the ``memory_op`` commands a domain builder uses: populating, releasing and
claiming pages, and reading a domain's reservation.
"""

from construct import Construct, Padding, Struct

from .xen import domid_t, guest_handle, uint16_t, uint32_t, uint64_t, xen_ulong_t

# memory_op commands.
XENMEM_increase_reservation = 0
XENMEM_decrease_reservation = 1
XENMEM_maximum_ram_page = 2
XENMEM_current_reservation = 3
XENMEM_maximum_reservation = 4
XENMEM_populate_physmap = 6
XENMEM_exchange = 11
XENMEM_maximum_gpfn = 14
XENMEM_set_pod_target = 16
XENMEM_get_pod_target = 17
XENMEM_get_sharing_freed_pages = 18  # pages saved by sharing; never fails
XENMEM_get_sharing_shared_pages = 19  # pages shared; never fails
XENMEM_claim_pages = 24
XENMEM_get_vnumainfo = 26

# memory_op's cmd carries the command in its low bits and, on a continuation, the
# extent to resume from above them (Xen's internal xen/hypercall.h, in effect ABI).
MEMOP_EXTENT_SHIFT = 6
MEMOP_CMD_MASK = (1 << MEMOP_EXTENT_SHIFT) - 1


def XENMEMF_address_bits(x: int) -> int:
    """mem_flags asking for memory addressable with ``x`` bits (0: no limit)."""
    return x


def XENMEMF_get_address_bits(x: int) -> int:
    """The address-width limit held in mem_flags ``x``."""
    return x & 0xFF


def XENMEMF_node(n: int) -> int:
    """mem_flags preferring NUMA node ``n``; stored as n + 1 so that 0 means none."""
    return (n + 1) << 8


def XENMEMF_get_node(x: int) -> int:
    """The node held in mem_flags ``x``; 0xFF (NUMA_NO_NODE) when none was given."""
    return ((x >> 8) - 1) & 0xFF


XENMEMF_populate_on_demand = 1 << 16  # populate with PoD entries, not memory
XENMEMF_exact_node_request = 1 << 17  # fail rather than fall back to other nodes
XENMEMF_vnode = 1 << 18  # the node is a vNUMA node of the domain


def XENMEMF_exact_node(n: int) -> int:
    """mem_flags requiring NUMA node ``n`` and no other."""
    return XENMEMF_node(n) | XENMEMF_exact_node_request


# Argument of increase/decrease_reservation, populate_physmap and claim_pages (32 bytes).
xen_memory_reservation: Construct = Struct(
    "extent_start" / guest_handle,  # xen_pfn_t[nr_extents]; must be NULL for claim_pages
    "nr_extents" / xen_ulong_t,
    "extent_order" / uint32_t,  # each extent is 2**extent_order pages
    "mem_flags" / uint32_t,  # XENMEMF_*
    "domid" / domid_t,
    Padding(6),
)

# Argument of XENMEM_exchange (72 bytes; PV guests only).
xen_memory_exchange: Construct = Struct(
    "in" / xen_memory_reservation,
    "out" / xen_memory_reservation,
    "nr_exchanged" / xen_ulong_t,  # OUT; the caller must pass 0
)

# Argument of current_reservation, maximum_reservation and maximum_gpfn (2 bytes).
xen_memory_domain: Construct = Struct("domid" / domid_t)

# One guest-physical range of a vNUMA node (24 bytes), for XEN_DOMCTL_setvnumainfo.
xen_vmemrange: Construct = Struct(
    "start" / uint64_t,
    "end" / uint64_t,
    "flags" / uint32_t,
    "nid" / uint32_t,
)

# Argument of XENMEM_get_vnumainfo (40 bytes): counts in (capacity) and out, three arrays.
xen_vnuma_topology_info: Construct = Struct(
    "domid" / domid_t,
    "pad" / uint16_t,  # must be 0
    "nr_vnodes" / uint32_t,
    "nr_vcpus" / uint32_t,
    "nr_vmemranges" / uint32_t,
    "vdistance" / guest_handle,  # uint[nr_vnodes * nr_vnodes]
    "vcpu_to_vnode" / guest_handle,  # uint[nr_vcpus]
    "vmemrange" / guest_handle,  # xen_vmemrange[nr_vmemranges]
)

# Argument of XENMEM_set_pod_target / XENMEM_get_pod_target (40 bytes).
xen_pod_target: Construct = Struct(
    "target_pages" / uint64_t,  # IN
    "tot_pages" / uint64_t,  # OUT
    "pod_cache_pages" / uint64_t,  # OUT
    "pod_entries" / uint64_t,  # OUT
    "domid" / domid_t,  # IN
    Padding(6),
)

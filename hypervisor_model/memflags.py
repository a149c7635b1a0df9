"""The hypervisor's internal allocation flags (MEMF_*, xen/include/xen/mm.h) and NUMA constants.

These never cross the hypercall boundary: memory_op translates the public XENMEMF_* flags
into them (construct_memop_from_reservation), exactly as Xen does.
"""

MEMF_no_refcount = 1 << 0
MEMF_populate_on_demand = 1 << 1
MEMF_keep_scrub = 1 << 2
MEMF_no_dma = 1 << 3
MEMF_exact_node = 1 << 4
MEMF_no_owner = 1 << 5
MEMF_no_tlbflush = 1 << 6
MEMF_no_icache_flush = 1 << 7
MEMF_no_scrub = 1 << 8

NUMA_NO_NODE = 0xFF  # nodeid_t is a u8
NUMA_NO_DISTANCE = 0xFF


def MEMF_node(node: int) -> int:
    return ((node + 1) & 0xFF) << 16


def MEMF_get_node(memflags: int) -> int:
    return ((memflags >> 16) - 1) & 0xFF


def MEMF_bits(bits: int) -> int:
    return bits << 24


def MEMF_get_bits(memflags: int) -> int:
    return memflags >> 24

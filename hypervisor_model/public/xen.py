"""Primitives and constants of Xen's ``public/xen.h`` (x86_64), bound once.

Every other layout in this package is built from these aliases, so the word
size and the guest-handle width are decided here and nowhere else.
"""

from construct import (
    Array,
    Bytes,
    Construct,
    Int8ul,
    Int16ul,
    Int32sl,
    Int32ul,
    Int64ul,
    Padding,
    Struct,
)

# Fixed-width C integers; all of Xen's x86_64 ABI is little-endian.
uint8_t: Construct = Int8ul
uint16_t: Construct = Int16ul
uint32_t: Construct = Int32ul
int32_t: Construct = Int32sl
uint64_t: Construct = Int64ul

# A domain ID is 16 bits wide.
domid_t: Construct = uint16_t
# Both are ``unsigned long`` on x86_64.
xen_pfn_t: Construct = uint64_t
xen_ulong_t: Construct = uint64_t
# 8-byte aligned in C; where that alignment inserts a gap, structs say so with Padding.
uint64_aligned_t: Construct = uint64_t
# XEN_GUEST_HANDLE and XEN_GUEST_HANDLE_64 alike: an 8-byte guest address, 0 is NULL.
guest_handle: Construct = uint64_t
# A domain's 16-byte handle (usually a UUID).
xen_domain_handle_t: Construct = Bytes(16)

# Hypercall numbers (``__HYPERVISOR_*``).
HYPERVISOR_memory_op = 12
HYPERVISOR_multicall = 13
HYPERVISOR_xen_version = 17
HYPERVISOR_sched_op = 29
HYPERVISOR_sysctl = 35
HYPERVISOR_domctl = 36

# VM assists a guest may enable (VMASST_TYPE_*: bit numbers of vcpu_guest_context.vm_assist).
VMASST_TYPE_4gb_segments = 0
VMASST_TYPE_4gb_segments_notify = 1
VMASST_TYPE_writable_pagetables = 2
VMASST_TYPE_pae_extended_cr3 = 3
VMASST_TYPE_architectural_iopl = 4
VMASST_TYPE_runstate_update_flag = 5
VMASST_TYPE_m2p_strict = 32

# Reserved domain IDs: ordinary domains are below DOMID_FIRST_RESERVED.
DOMID_FIRST_RESERVED = 0x7FF0
DOMID_SELF = 0x7FF0
DOMID_IO = 0x7FF1
DOMID_XEN = 0x7FF2
DOMID_COW = 0x7FF3
DOMID_INVALID = 0x7FF4
DOMID_ANY = 0x7FF5
DOMID_IDLE = 0x7FFF
# The bits of a domid that name a domain.
DOMID_MASK = 0x7FFF

XEN_PAGE_SHIFT = 12

# A bitmap passed by reference (node and CPU masks): 16 bytes.
xenctl_bitmap: Construct = Struct(
    "bitmap" / guest_handle,  # bytes of the map, bit i of byte i // 8 is element i
    "nr_bits" / uint32_t,  # how many bits the caller's buffer holds
    Padding(4),
)

# One hypercall of a multicall batch (64 bytes): the hypercall number, the result Xen writes
# back (a long's two's complement), and six argument words, of which Xen reads five.
multicall_entry: Construct = Struct(
    "op" / xen_ulong_t,
    "result" / xen_ulong_t,
    "args" / Array(6, xen_ulong_t),
)
multicall_entry_t: Construct = multicall_entry

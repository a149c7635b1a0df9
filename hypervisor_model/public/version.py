"""Xen's version hypercall ABI (``public/version.h``): what ``xl info`` reports about Xen."""

from construct import Bytes, Construct, Struct

from .xen import uint32_t, xen_ulong_t

XENVER_version = 0  # returns (major << 16) | minor
XENVER_extraversion = 1  # char[16]
XENVER_compile_info = 2
XENVER_capabilities = 3  # char[1024]
XENVER_changeset = 4  # char[64]
XENVER_platform_parameters = 5
XENVER_get_features = 6
XENVER_pagesize = 7  # returns the page size
XENVER_guest_handle = 8
XENVER_commandline = 9  # char[1024]
# Variable-length answers in a xen_varbuf; a NULL handle asks for the length.
XENVER_build_id = 10  # raw bytes of Xen's build id
XENVER_extraversion2 = 11
XENVER_capabilities2 = 12
XENVER_changeset2 = 13
XENVER_commandline2 = 14

XEN_EXTRAVERSION_LEN = 16
XEN_CAPABILITIES_INFO_LEN = 1024
XEN_CHANGESET_INFO_LEN = 64
XEN_COMMANDLINE_LEN = 1024

# XENVER_compile_info: who built Xen, with what, when (NUL-padded strings).
xen_compile_info: Construct = Struct(
    "compiler" / Bytes(64),
    "compile_by" / Bytes(16),
    "compile_domain" / Bytes(32),
    "compile_date" / Bytes(32),
)

# XENVER_platform_parameters: where Xen's virtual address range starts.
xen_platform_parameters: Construct = Struct("virt_start" / xen_ulong_t)

# XENVER_get_features: the caller names a 32-bit submap, Xen fills it in (features.h bits).
xen_feature_info: Construct = Struct("submap_idx" / uint32_t, "submap" / uint32_t)
XENFEAT_writable_page_tables = 0
XENFEAT_auto_translated_physmap = 2
XENFEAT_pae_pgdir_above_4gb = 4
XENFEAT_mmu_pt_update_preserve_ad = 5
XENFEAT_highmem_assist = 6
XENFEAT_gnttab_map_avail_bits = 7
XENFEAT_hvm_callback_vector = 8
XENFEAT_hvm_safe_pvclock = 9
XENFEAT_hvm_pirqs = 10
XENFEAT_dom0 = 11
XENFEAT_memory_op_vnode_supported = 13
XENFEAT_not_direct_mapped = 16
XENFEAT_direct_mapped = 17
XENFEAT_runstate_phys_area = 18  # master only, as the two below
XENFEAT_vcpu_time_phys_area = 19
XENFEAT_dm_msix_all_writes = 20
XENFEAT_NR_SUBMAPS = 1

# A variable-length answer: ``len`` (IN: room in ``buf``) then the bytes, no NUL.
xen_varbuf: Construct = Struct("len" / uint32_t)
xen_build_id: Construct = xen_varbuf  # the older name of the same layout for XENVER_build_id

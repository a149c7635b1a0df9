"""libxenctrl's C-layout types as ``ctypes`` structures, with C's field names.

They are what callers fill and read, exactly as in C. The wire layouts themselves are
defined once, in :mod:`hypervisor_model.public`; a test proves each type here matches its
construct layout byte for byte.
"""

from __future__ import annotations

import ctypes
from ctypes import c_int32, c_uint8, c_uint16, c_uint32, c_uint64

xen_pfn_t = c_uint64
xen_domain_handle_t = c_uint8 * 16


class xen_arch_domainconfig(ctypes.Structure):
    _fields_ = [("emulation_flags", c_uint32), ("misc_flags", c_uint32)]


class _altp2m(ctypes.Structure):
    _fields_ = [("opts", c_uint16), ("nr", c_uint16)]


class xen_domctl_createdomain(ctypes.Structure):
    """struct xen_domctl_createdomain (68 bytes)."""

    _fields_ = [
        ("ssidref", c_uint32),
        ("handle", xen_domain_handle_t),
        ("flags", c_uint32),
        ("iommu_opts", c_uint32),
        ("max_vcpus", c_uint32),
        ("max_evtchn_port", c_uint32),
        ("max_grant_frames", c_int32),
        ("max_maptrack_frames", c_int32),
        ("grant_opts", c_uint32),
        ("altp2m", _altp2m),
        ("vmtrace_size", c_uint32),
        ("cpupool_id", c_uint32),
        ("arch", xen_arch_domainconfig),
    ]


class xc_domaininfo_t(ctypes.Structure):
    """struct xen_domctl_getdomaininfo (112 bytes), libxc's xc_domaininfo_t."""

    _fields_ = [
        ("domain", c_uint16),
        ("pad1", c_uint16),
        ("flags", c_uint32),
        ("tot_pages", c_uint64),
        ("max_pages", c_uint64),
        ("outstanding_pages", c_uint64),
        ("shr_pages", c_uint64),
        ("paged_pages", c_uint64),
        ("shared_info_frame", c_uint64),
        ("cpu_time", c_uint64),
        ("nr_online_vcpus", c_uint32),
        ("max_vcpu_id", c_uint32),
        ("ssidref", c_uint32),
        ("handle", xen_domain_handle_t),
        ("cpupool", c_uint32),
        ("gpaddr_bits", c_uint8),
        ("pad2", c_uint8 * 7),
        ("arch_config", xen_arch_domainconfig),
    ]


class xc_physinfo_t(ctypes.Structure):
    """struct xen_sysctl_physinfo (112 bytes), libxc's xc_physinfo_t."""

    _fields_ = [
        ("threads_per_core", c_uint32),
        ("cores_per_socket", c_uint32),
        ("nr_cpus", c_uint32),
        ("max_cpu_id", c_uint32),
        ("nr_nodes", c_uint32),
        ("max_node_id", c_uint32),
        ("cpu_khz", c_uint32),
        ("capabilities", c_uint32),
        ("arch_capabilities", c_uint32),
        ("pad", c_uint32),
        ("total_pages", c_uint64),
        ("free_pages", c_uint64),
        ("scrub_pages", c_uint64),
        ("outstanding_pages", c_uint64),
        ("max_mfn", c_uint64),
        ("hw_cap", c_uint32 * 8),
    ]


class xc_meminfo_t(ctypes.Structure):
    """struct xen_sysctl_meminfo: one node's memory, in bytes."""

    _fields_ = [("memsize", c_uint64), ("memfree", c_uint64)]


class xen_memory_claim_t(ctypes.Structure):
    """One claim-set entry (v7 of the NUMA claim-set series): pages on a target."""

    _fields_ = [("pages", c_uint64), ("target", c_uint32), ("cmd", c_uint32)]


memory_claim_t = xen_memory_claim_t


class xen_vmemrange_t(ctypes.Structure):
    """struct xen_vmemrange (24 bytes): guest-physical bytes [start, end) on vnode ``nid``."""

    _fields_ = [("start", c_uint64), ("end", c_uint64), ("flags", c_uint32), ("nid", c_uint32)]


class xc_vcpuinfo_t(ctypes.Structure):
    """struct xen_domctl_getvcpuinfo (24 bytes), libxc's xc_vcpuinfo_t."""

    _fields_ = [
        ("vcpu", c_uint32),
        ("online", c_uint8),
        ("blocked", c_uint8),
        ("running", c_uint8),
        ("cpu_time", c_uint64),
        ("cpu", c_uint32),
    ]

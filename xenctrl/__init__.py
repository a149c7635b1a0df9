"""libxenctrl for an emulated Xen host: the ``xc_*`` calls, C-layout types and constants.

Open a handle on a booted host and call as in C::

    hv = hypervisor_model.boot(nodes=[4096, 4096])
    with xenctrl.xc_interface_open(hv) as xch:
        domid = xenctrl.xc_domain_create(xch)
        xenctrl.xc_domain_setmaxmem(xch, domid, 1024 * 1024)
        xenctrl.xc_domain_claim_pages(xch, domid, 262144)

Every call crosses the hypercall boundary as bytes in hypercall buffers.
"""

from hypervisor_model.public.domctl import (
    XEN_DOMCTL_CLAIM_MEMORY_GET,
    XEN_DOMCTL_CLAIM_MEMORY_HOST,
    XEN_DOMCTL_CLAIM_MEMORY_LEGACY,
    XEN_DOMCTL_CLAIM_MEMORY_SET,
    XEN_VCPUAFFINITY_HARD,
    XEN_VCPUAFFINITY_SOFT,
    XEN_DOMCTL_CDF_hap,
    XEN_DOMCTL_CDF_hvm,
)
from hypervisor_model.public.memory import (
    XENMEMF_address_bits,
    XENMEMF_exact_node,
    XENMEMF_exact_node_request,
    XENMEMF_get_node,
    XENMEMF_node,
    XENMEMF_populate_on_demand,
)
from hypervisor_model.public.xen import (
    DOMID_ANY,
    DOMID_FIRST_RESERVED,
    DOMID_INVALID,
    DOMID_SELF,
)
from xenctrl.cpupool import (
    XC_CPUPOOL_POOLID_ANY,
    xc_cpupool_addcpu,
    xc_cpupool_create,
    xc_cpupool_destroy,
    xc_cpupool_freeinfo,
    xc_cpupool_getinfo,
    xc_cpupool_movedomain,
    xc_cpupool_removecpu,
    xc_cpupoolinfo_t,
)
from xenctrl.domain import (
    default_createdomain,
    xc_domain_claim_memory,
    xc_domain_claim_pages,
    xc_domain_create,
    xc_domain_decrease_reservation,
    xc_domain_decrease_reservation_exact,
    xc_domain_destroy,
    xc_domain_get_pod_target,
    xc_domain_getinfo_single,
    xc_domain_getinfolist,
    xc_domain_increase_reservation,
    xc_domain_increase_reservation_exact,
    xc_domain_max_vcpus,
    xc_domain_maximum_gpfn,
    xc_domain_node_getaffinity,
    xc_domain_node_setaffinity,
    xc_domain_nr_gpfns,
    xc_domain_pause,
    xc_domain_populate_physmap,
    xc_domain_populate_physmap_exact,
    xc_domain_set_pod_target,
    xc_domain_setmaxmem,
    xc_domain_unpause,
    xc_get_paging_mempool_size,
    xc_get_tot_pages,
    xc_set_paging_mempool_size,
    xc_shadow_control,
)
from xenctrl.errors import XenError
from xenctrl.handle import Host, xc_interface, xc_interface_close, xc_interface_open
from xenctrl.misc import (
    xc_availheap,
    xc_cputopoinfo,
    xc_get_cpumap_size,
    xc_get_max_cpus,
    xc_get_max_nodes,
    xc_get_nodemap_size,
    xc_maximum_ram_page,
    xc_numainfo,
    xc_pcitopoinfo,
    xc_physinfo,
    xc_readconsolering,
    xc_sched_id,
    xc_send_debug_keys,
    xc_sharing_freed_pages,
    xc_sharing_used_frames,
    xc_version,
    xc_xenver_buildid,
    xc_xenver_capabilities,
    xc_xenver_changeset,
    xc_xenver_commandline,
    xc_xenver_extraversion,
)
from xenctrl.remote import RemoteHost, ServerError
from xenctrl.trace import Trace
from xenctrl.types import (
    memory_claim_t,
    xc_domaininfo_t,
    xc_meminfo_t,
    xc_physinfo_t,
    xc_vcpuinfo_t,
    xen_domctl_createdomain,
    xen_memory_claim_t,
    xen_pfn_t,
)
from xenctrl.vcpu import (
    xc_domain_hvm_getcontext,
    xc_domain_hvm_setcontext,
    xc_vcpu_getaffinity,
    xc_vcpu_getinfo,
    xc_vcpu_setcontext,
)

XC_PAGE_SHIFT = 12
XC_PAGE_SIZE = 1 << XC_PAGE_SHIFT
XC_NUMA_NO_NODE = 0xFFFFFFFF  # ~0U in xenguest.h

__all__ = [name for name in dir() if not name.startswith("_")]

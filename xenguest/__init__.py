"""libxenguest for an emulated Xen host: the domain builder's memory initialisation.

``xc_dom_boot_mem_init`` runs Xen's x86 meminit (claim, populate with superpages,
cancel) through xenctrl; claim modes add NUMA claim sets beyond what Xen does today.
"""

from xenguest.boot import xc_dom_boot_image
from xenguest.dom import (
    XC_NUMA_NO_NODE,
    Allocation,
    xc_dom_allocate,
    xc_dom_boot_mem_init,
    xc_dom_image,
    xc_dom_mem_init,
    xen_vmemrange,
)
from xenguest.errors import XenguestError
from xenguest.layout import hvm_layout, vnuma_hvm, vnuma_pv
from xenguest.meminit import meminit_hvm, meminit_pv
from xenguest.offline import (
    xc_mark_page_offline,
    xc_mark_page_online,
    xc_query_page_offline_status,
)

__all__ = [
    "XC_NUMA_NO_NODE",
    "Allocation",
    "XenguestError",
    "hvm_layout",
    "meminit_hvm",
    "meminit_pv",
    "vnuma_hvm",
    "vnuma_pv",
    "xc_dom_allocate",
    "xc_dom_boot_image",
    "xc_dom_boot_mem_init",
    "xc_dom_image",
    "xc_dom_mem_init",
    "xc_mark_page_offline",
    "xc_mark_page_online",
    "xc_query_page_offline_status",
    "xen_vmemrange",
]

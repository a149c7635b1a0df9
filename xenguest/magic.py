"""The pages an HVM/PVH build populates after meminit (alloc_magic_pages_hvm in
xg_dom_x86.c): 8 special pages below 0xFF000 and, with a device model, 8 ioreq-server
pages below those. They come after the claim is cancelled, with no node flag."""

from __future__ import annotations

import ctypes

from xenctrl import XenError
from xenctrl.domain import xc_domain_populate_physmap_exact
from xenguest.dom import traced, xc_dom_image
from xenguest.errors import XenguestError

X86_HVM_END_SPECIAL_REGION = 0xFF000  # pfn
X86_HVM_NR_SPECIAL_PAGES = 8
NR_IOREQ_SERVER_PAGES = 8
SPECIAL_PFN0 = X86_HVM_END_SPECIAL_REGION - X86_HVM_NR_SPECIAL_PAGES


def _populate(dom: xc_dom_image, first: int, count: int, what: str) -> None:
    pfns = (ctypes.c_uint64 * count)(*range(first, first + count))
    try:
        xc_domain_populate_physmap_exact(dom.xch, dom.guest_domid, count, 0, 0, pfns)
    except XenError as e:
        raise XenguestError(
            "alloc_magic_pages_hvm", e.errno, f"allocating {what}", gfn=first
        ) from e


@traced
def alloc_magic_pages(dom: xc_dom_image) -> None:
    """Populate the special pages (and the ioreq-server pages with a device model)."""
    if dom.is_pv:
        return  # PV guests carve their special pages out of RAM already populated
    _populate(dom, SPECIAL_PFN0, X86_HVM_NR_SPECIAL_PAGES, "special pages")
    if dom.device_model:
        _populate(
            dom, SPECIAL_PFN0 - NR_IOREQ_SERVER_PAGES, NR_IOREQ_SERVER_PAGES, "ioreq server pages"
        )

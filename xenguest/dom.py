"""The domain image libxenguest builds memory for (``struct xc_dom_image``, xenguest.h),
and its entry points xc_dom_allocate / xc_dom_mem_init / xc_dom_boot_mem_init."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from xenctrl import trace
from xenctrl.handle import xc_interface

XC_NUMA_NO_NODE = 0xFFFFFFFF  # ~0U: a vnode not bound to a physical node
PAGE_SHIFT = 12
LIBXL_VGA_HOLE_SIZE = 0x20  # pages 0xA0..0xBF, never populated for HVM with a device model

ClaimMode = Literal["legacy", "numa", "off"]
log = logging.getLogger("xenguest.domainbuilder")
log.addHandler(logging.NullHandler())  # a library: callers decide where DETAIL lines go
traced = trace.traced("xenguest")


@dataclass
class xen_vmemrange:
    """One guest-physical range of a virtual node: bytes ``[start, end)`` on vnode ``nid``."""

    start: int
    end: int
    flags: int = 0
    nid: int = 0

    @property
    def pages(self) -> int:
        return (self.end - self.start) >> PAGE_SHIFT


@dataclass
class Allocation:
    """Extents meminit populated, by size (meminit's DETAIL statistics)."""

    pages_4k: int = 0
    pages_2m: int = 0
    pages_1g: int = 0


@dataclass
class xc_dom_image:
    """The memory-relevant fields of libxenguest's domain image.

    ``claim_mode`` extends Xen's ``claim_enabled``: "legacy" is what Xen does (one
    host-wide XENMEM_claim_pages), "numa" stakes a claim set per physical node (the claim
    sets of XEN_DOMCTL_claim_memory), "off" stakes none. ``superpages=False`` is a model
    switch (Xen always tries superpages) for exercising the 4 KiB paths.
    """

    xch: xc_interface
    guest_domid: int
    guest_type: str = "hvm-3.0-x86_32"  # "xen-3.0-x86_64" / "xen-3.0-x86_32p" for PV
    total_pages: int = 0
    target_pages: int = 0
    claim_mode: ClaimMode = "legacy"
    claim_on_node: int = XC_NUMA_NO_NODE  # preferred node without vNUMA ("numa" mode)
    memflags: int = 0
    vmemranges: list[xen_vmemrange] = field(default_factory=list)
    vnode_to_pnode: list[int] = field(default_factory=list)
    mmio_start: int = 0
    mmio_size: int = 0
    lowmem_end: int = 0
    highmem_end: int = 0
    vga_hole_size: int = 0
    device_model: bool = False
    max_vcpus: int = 1  # vcpu_hvm loads MTRRs into each of them
    superpages: bool = True
    progress: Callable[[int], None] | None = None  # told the pages populated so far
    # Written by meminit:
    p2m_size: int = 0
    pv_p2m: list[tuple[int, int, int]] = field(default_factory=list)  # (gfn, pages, mfn) runs
    stats: Allocation = field(default_factory=Allocation)

    @property
    def claim_enabled(self) -> bool:
        return self.claim_mode != "off"

    @claim_enabled.setter
    def claim_enabled(self, enabled: bool) -> None:
        self.claim_mode = "legacy" if enabled else "off"

    @property
    def is_pv(self) -> bool:
        return self.guest_type.startswith("xen-")


def xc_dom_allocate(
    xch: xc_interface, domid: int, guest_type: str = "hvm-3.0-x86_32"
) -> xc_dom_image:
    """A zero-filled domain image for ``domid`` (xc_dom_allocate + the domid libxl sets)."""
    return xc_dom_image(xch=xch, guest_domid=domid, guest_type=guest_type)


@traced
def xc_dom_mem_init(dom: xc_dom_image, mem_mb: int) -> None:
    """Set the guest's RAM size in MiB (total_pages); allocates nothing."""
    dom.total_pages = mem_mb << (20 - PAGE_SHIFT)
    if not dom.target_pages:
        dom.target_pages = dom.total_pages
    log.debug("mem %d MB, pages 0x%x pages, 4k each", mem_mb, dom.total_pages)


@traced
def xc_dom_boot_mem_init(dom: xc_dom_image) -> None:
    """Run the architecture's meminit hook (meminit_pv or meminit_hvm)."""
    from xenguest.meminit import meminit_hvm, meminit_pv

    (meminit_pv if dom.is_pv else meminit_hvm)(dom)

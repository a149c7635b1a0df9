"""Guest memory geometry as libxl hands it to libxenguest (libxl__build_hvm and
libxl_vnuma.c): RAM size and target, the MMIO hole below 4 GiB, the VGA hole, and the
vNUMA ranges that skip the hole."""

from __future__ import annotations

from collections.abc import Sequence

from hypervisor_model.public.errno import EINVAL
from xenguest.dom import (
    LIBXL_VGA_HOLE_SIZE,
    PAGE_SHIFT,
    xc_dom_image,
    xc_dom_mem_init,
    xen_vmemrange,
)
from xenguest.errors import XenguestError

FOUR_GIB = 1 << 32
HVM_BELOW_4G_MMIO_START = 0xF0000000  # public/hvm/e820.h: 256 MiB below 4 GiB for MMIO
PVH_MMIO_START = min(0xFEFF8000, 0xFEE00000, 0xFC000000)  # special pages, LAPIC, ACPI info


def hvm_layout(
    dom: xc_dom_image,
    max_memkb: int,
    target_memkb: int | None = None,
    *,
    video_memkb: int = 8192,
    device_model: bool = True,
    mmio_hole_memkb: int = 0,
) -> None:
    """Fill an HVM (``device_model``) or PVH image's geometry: RAM below the MMIO hole up
    to lowmem_end, the rest moved above 4 GiB up to highmem_end, and the 32-page VGA hole."""
    video_memkb = video_memkb if device_model else 0
    target_memkb = max_memkb if target_memkb is None else target_memkb
    mem_size = (max_memkb - video_memkb) << 10
    xc_dom_mem_init(dom, (max_memkb - video_memkb) >> 10)
    dom.target_pages = ((target_memkb - video_memkb) >> 2) or mem_size >> PAGE_SHIFT
    hole = mmio_hole_memkb << 10
    if hole and FOUR_GIB - hole < HVM_BELOW_4G_MMIO_START:
        dom.mmio_size = hole
    elif device_model:
        dom.mmio_size = FOUR_GIB - HVM_BELOW_4G_MMIO_START
    else:
        dom.mmio_size = FOUR_GIB - PVH_MMIO_START
    dom.mmio_start = FOUR_GIB - dom.mmio_size
    dom.lowmem_end = min(mem_size, dom.mmio_start)
    dom.highmem_end = FOUR_GIB + mem_size - dom.mmio_start if mem_size > dom.mmio_start else 0
    dom.vga_hole_size = LIBXL_VGA_HOLE_SIZE if device_model else 0
    dom.device_model = device_model


def vnuma_hvm(
    dom: xc_dom_image, vnode_memkb: Sequence[int], vnode_to_pnode: Sequence[int], video_memkb: int
) -> None:
    """vNUMA ranges of an HVM guest: vnodes filled in order from address 0, skipping the
    MMIO hole; vnode 0 holds the video RAM (libxl__vnuma_build_vmemrange_hvm)."""
    hole_start = min(dom.lowmem_end, dom.mmio_start)
    hole_end = max(dom.mmio_start + dom.mmio_size, FOUR_GIB)
    ranges, nxt = [], 0
    for nid, memkb in enumerate(vnode_memkb):
        remaining = memkb << 10
        if nid == 0:
            if memkb < video_memkb:
                raise XenguestError("vnuma", EINVAL, "vnode 0 too small to contain video ram")
            remaining -= video_memkb << 10
        while remaining > 0:
            if hole_start <= nxt < hole_end:
                nxt = hole_end
            count = remaining
            if nxt < hole_start <= nxt + remaining:
                count = hole_start - nxt
            ranges.append(xen_vmemrange(nxt, nxt + count, 0, nid))
            remaining -= count
            nxt += count
    dom.vmemranges = ranges
    dom.vnode_to_pnode = list(vnode_to_pnode)


def vnuma_pv(dom: xc_dom_image, vnode_memkb: Sequence[int], vnode_to_pnode: Sequence[int]) -> None:
    """vNUMA ranges of a PV guest: one contiguous range per vnode."""
    ranges, nxt = [], 0
    for nid, memkb in enumerate(vnode_memkb):
        ranges.append(xen_vmemrange(nxt, nxt + (memkb << 10), 0, nid))
        nxt += memkb << 10
    dom.vmemranges = ranges
    dom.vnode_to_pnode = list(vnode_to_pnode)

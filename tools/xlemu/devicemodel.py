"""What the device model does to a new HVM guest's memory before it first runs: QEMU backs
its video RAM with guest pages (xen_ram_alloc), just above the guest's RAM in its RAM-block
space, which is why ``xl list`` shows an HVM guest's video RAM in its memory."""

from __future__ import annotations

import ctypes

from xenctrl import domain as xcd
from xenctrl.handle import xc_interface

PAGE_SHIFT = 12
HVM_BELOW_4G_RAM_END = 0xF0000000  # public/hvm/e820.h: RAM below the 256 MiB MMIO hole
FOUR_GIB = 1 << 32
RAM_BLOCK_ALIGN_PAGES = 64  # find_ram_offset: blocks start on a long of the dirty bitmap


def video_ram_gfn(maxmem_kb: int, video_kb: int) -> int:
    """Where QEMU's next RAM block after "xen.ram" lands: libxl passes ``-m`` as the MiB of
    max - video (rounded up, libxl__sizekb_to_mb); xen_ram_init sizes xen.ram to that, or
    to 4 GiB plus the part above HVM_BELOW_4G_RAM_END; the block after it is aligned."""
    ram_size = -(-(maxmem_kb - video_kb) // 1024) << 20
    block = (
        ram_size if ram_size < HVM_BELOW_4G_RAM_END else FOUR_GIB + ram_size - HVM_BELOW_4G_RAM_END
    )
    pages = block >> PAGE_SHIFT
    return -(-pages // RAM_BLOCK_ALIGN_PAGES) * RAM_BLOCK_ALIGN_PAGES


def populate_video_ram(xch: xc_interface, domid: int, maxmem_kb: int, video_kb: int) -> None:
    """xen_ram_alloc for the VGA's video RAM: one exact 4 KiB populate, no flags."""
    count = video_kb >> 2
    if not count:
        return
    first = video_ram_gfn(maxmem_kb, video_kb)
    pfns = (ctypes.c_uint64 * count)(*range(first, first + count))
    xcd.xc_domain_populate_physmap_exact(xch, domid, count, 0, 0, pfns)

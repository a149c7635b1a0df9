"""Bitmaps passed by reference (``xenctl_bitmap``): node and CPU masks into and out of Xen
(xen/common/bitmap.c xenctl_bitmap_to_bitmap and bitmap_to_xenctl_bitmap).

The caller says how many bits its buffer holds (``nr_bits``); Xen copies
min(caller's bytes, its own) and, going out, zeroes the rest of the caller's bytes.
"""

from __future__ import annotations

from typing import Any

from hypervisor_model.errors import XenError
from hypervisor_model.guest_memory import GuestMemory
from hypervisor_model.public.errno import EFAULT

ZEROING_CHUNK = 1 << 16  # the model zeroes a caller's tail in chunks, Xen byte by byte


def bitmap_bytes(nr_bits: int) -> int:
    """DIV_ROUND_UP(nr_bits, 8) in 32-bit arithmetic, as Xen computes it: nr_bits from
    0xFFFFFFF9 up wrap to 0 bytes."""
    return ((nr_bits + 7) & 0xFFFFFFFF) // 8


def xenctl_bitmap_to_bitmap(memory: GuestMemory, xenctl: Any, nbits: int) -> int:
    """Read the caller's map into an ``nbits``-bit mask; the caller's bits beyond its
    ``nr_bits`` are ignored. An unreadable map is EFAULT."""
    nr_bits = xenctl.nr_bits
    guest_bytes = bitmap_bytes(nr_bits)
    copy_bytes = min(guest_bytes, (nbits + 7) // 8)
    raw = bytearray(memory.copy_from_guest(xenctl.bitmap, copy_bytes))
    if copy_bytes and nr_bits & 7 and guest_bytes == copy_bytes:
        raw[-1] &= ~(0xFF << (nr_bits & 7)) & 0xFF
    return int.from_bytes(raw, "little") & ((1 << nbits) - 1)


def bitmap_to_xenctl_bitmap(
    memory: GuestMemory, xenctl: Any, bitmap: int, nbits: int, *, last_byte_quirk: bool
) -> None:
    """Write an ``nbits``-bit mask into the caller's map, then zero the caller's remaining
    bytes up to the first that faults (EFAULT). With ``last_byte_quirk`` (master), a caller
    map shorter than Xen's gets Xen's *last* byte in its last byte, not the matching one;
    4.17 copies the leading bytes as they are."""
    if not nbits:
        return
    xen = (bitmap & ((1 << nbits) - 1)).to_bytes((nbits + 7) // 8, "little")
    guest_bytes = bitmap_bytes(xenctl.nr_bits)
    copy_bytes = min(guest_bytes, len(xen))
    base, ok = xenctl.bitmap, True
    if not last_byte_quirk:
        ok = memory.try_copy_to_guest(base, xen[:copy_bytes])
    else:
        if copy_bytes > 1:
            ok = memory.try_copy_to_guest(base, xen[: copy_bytes - 1])
        if copy_bytes:
            ok = memory.try_copy_to_guest(base + copy_bytes - 1, xen[-1:]) and ok
    offset = copy_bytes
    while ok and offset < guest_bytes:
        size = min(guest_bytes - offset, ZEROING_CHUNK)
        room = memory.readable(base + offset)
        ok = memory.try_copy_to_guest(base + offset, bytes(min(size, room))) and room >= size
        offset += size
    if not ok:
        raise XenError(EFAULT, "bitmap not writable")

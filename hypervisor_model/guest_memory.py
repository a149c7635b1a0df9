"""Hypercall buffers and guest handles: the only memory the hypervisor reads or writes.

A caller allocates page-granular buffers, as libxencall allocates hypercall buffers from a
mapped device, and passes their addresses as guest handles. The hypervisor touches a
caller's memory only through its :class:`GuestMemory` (``copy_from_guest`` /
``copy_to_guest``): an address outside a live buffer is a fault (EFAULT), never a read of
other memory. The host's :class:`Arena` is the memory of in-process callers; a caller in
another process brings its own (the buffers it sent with the hypercall), so two processes
may use the same addresses.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from bisect import bisect_left, bisect_right
from typing import Any

from construct import Construct

from hypervisor_model.codec import codec

PAGE_SIZE = 4096
PAGE_START = -PAGE_SIZE  # addr & PAGE_START: the start of addr's page
ARENA_BASE = 0x7F00_0000_0000  # where the arena's addresses start (user half of x86_64)
USER_LIMIT = 1 << 47  # canonical user addresses: access_ok() refuses anything above
HYPERVISOR_VIRT_END = 0xFFFF_8800_0000_0000  # ... up to the end of Xen's own range (__addr_ok)
WORD_MASK = (1 << 64) - 1


class GuestFault(Exception):
    """A guest handle that does not point into live hypercall memory (EFAULT)."""


class GuestMemory(ABC):
    """One caller's address space as the hypervisor sees it: its live hypercall buffers."""

    @abstractmethod
    def copy_from_guest(self, addr: int, size: int) -> bytes:
        """``size`` bytes at guest address ``addr``; zero bytes always succeed."""

    @abstractmethod
    def copy_to_guest(self, addr: int, data: bytes | bytearray) -> None:
        """Write ``data`` at ``addr``; GuestFault (nothing written) outside one buffer."""

    @abstractmethod
    def readable(self, addr: int) -> int:
        """How many bytes from ``addr`` lie inside one live buffer (0 if none)."""

    def try_copy_to_guest(self, addr: int, data: bytes | bytearray) -> bool:
        """copy_to_guest as Xen's callers test it: False (nothing written) on a fault."""
        try:
            self.copy_to_guest(addr, data)
        except GuestFault:
            return False
        return True


class HypercallBuffer:
    """One hypercall buffer: ``size`` bytes at guest address ``addr``, backed by ``mem``
    (``pages`` whole pages of ordinary process memory: allocating one costs no system
    call)."""

    __slots__ = ("addr", "arena", "live", "mem", "size")

    def __init__(self, arena: Arena, addr: int, size: int, pages: int) -> None:
        self.arena = arena
        self.addr = addr
        self.size = size
        self.mem = bytearray(pages * PAGE_SIZE)
        self.live = True

    def free(self) -> None:
        self.arena.free(self)

    def __enter__(self) -> HypercallBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.arena.free(self)


class Arena(GuestMemory):
    """Hypercall buffers allocated in this process: the memory of in-process callers.

    Addresses are the arena's own, each buffer followed by an unmapped guard page and never
    reused, so a stale handle faults instead of reaching a newer buffer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._starts: list[int] = []
        self._buffers: dict[int, HypercallBuffer] = {}
        self._next = ARENA_BASE

    def alloc(self, size: int) -> HypercallBuffer:
        """A zeroed buffer of at least ``size`` bytes (xencall_alloc_buffer)."""
        if size < 0:
            raise ValueError(f"expected a non-negative size, got {size}")
        pages = -(-size // PAGE_SIZE) or 1
        with self._lock:
            addr = self._next
            self._next = addr + (pages + 1) * PAGE_SIZE  # a guard page after every buffer
            self._starts.append(addr)
            buf = self._buffers[addr] = HypercallBuffer(self, addr, size, pages)
        return buf

    def free(self, buf: HypercallBuffer) -> None:
        with self._lock:
            if not buf.live:
                return
            buf.live = False
            del self._buffers[buf.addr]
            del self._starts[bisect_left(self._starts, buf.addr)]  # a search, not a scan

    def live_buffers(self) -> int:
        return len(self._buffers)

    def _locate(self, addr: int, size: int) -> tuple[HypercallBuffer, int]:
        """The buffer holding ``[addr, addr + size)`` and the offset in it. Buffers start on
        pages, so an address in a buffer's first page finds it by that page, with a lookup
        in the dict, which needs no lock; a search of the starts holds the lock that keeps
        the list and the dict in step."""
        buf = self._buffers.get(addr & PAGE_START)
        if buf is None:
            with self._lock:
                i = bisect_right(self._starts, addr) - 1
                buf = self._buffers[self._starts[i]] if i >= 0 else None
        if buf is None or addr + size > buf.addr + buf.size:
            raise GuestFault(f"no hypercall memory at {addr:#x}+{size:#x}")
        return buf, addr - buf.addr

    def live(self) -> list[HypercallBuffer]:
        """The live buffers in address order."""
        with self._lock:
            return [self._buffers[a] for a in self._starts]

    def readable(self, addr: int) -> int:
        try:
            buf, offset = self._locate(addr, 0)
        except GuestFault:
            return 0
        return buf.size - offset

    def copy_from_guest(self, addr: int, size: int) -> bytes:
        buf = self._buffers.get(addr & PAGE_START)  # most handles point into a first page
        if buf is None or addr + size > buf.addr + buf.size:
            if not size:
                return b""
            buf, _ = self._locate(addr, size)
        at = addr - buf.addr
        return bytes(memoryview(buf.mem)[at : at + size])

    def copy_to_guest(self, addr: int, data: bytes | bytearray) -> None:
        buf = self._buffers.get(addr & PAGE_START)
        if buf is None or addr + len(data) > buf.addr + buf.size:
            if not data:
                return
            buf, _ = self._locate(addr, len(data))
        at = addr - buf.addr
        buf.mem[at : at + len(data)] = data


def guest_handle_okay(addr: int, count: int, item_size: int) -> bool:
    """guest_handle_okay for an x86_64 PV caller (array_access_ok): the byte count must not
    overflow and the *start* must be a guest address; the end is left to the copies."""
    return count < WORD_MASK // item_size and (addr < USER_LIMIT or addr >= HYPERVISOR_VIRT_END)


def handle_range_ok(addr: int, count: int, item_size: int) -> bool:
    """guest_handle_subrange_okay: the range lies in the caller's address space."""
    return addr + count * item_size <= USER_LIMIT


def sizeof(layout: Construct) -> int:
    """A public layout's size in bytes."""
    return codec(layout).size


def parse(layout: Construct, data: bytes) -> Any:
    """Decode one structure into a :class:`~hypervisor_model.codec.Record`."""
    return codec(layout).parse(data)


def parse_array(layout: Construct, data: bytes) -> list[Any]:
    """Decode structures laid out back to back (a guest array), all at once."""
    return codec(layout).parse_array(data)


def build(layout: Construct, obj: Any) -> bytes:
    """Encode a record or a mapping of field values (defaults may be left out)."""
    return codec(layout).build(obj)


def copy_struct_from_guest(memory: GuestMemory, addr: int, layout: Construct) -> Any:
    """Copy a structure in and decode it with the public ABI (copy_from_guest)."""
    c = codec(layout)
    return c.parse(memory.copy_from_guest(addr, c.size))

"""Xen's console ring and the debug keys that write to it (drivers/char/console.c,
common/keyhandler.c): what ``xl dmesg`` reads and ``xl debug-keys`` triggers.

The ring is as if Xen were booted with ``conring_size=1M``, so a NUMA dump of many domains
fits. Keys: 'h' lists the handlers, 'm' the memory per zone, 'u' NUMA placement of every
domain's memory; other keys are ignored, as Xen ignores keys without a handler.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from hypervisor_model.heap import NR_ZONES, PAGE_SHIFT

if TYPE_CHECKING:
    from hypervisor_model.hypervisor import Hypervisor

CONRING_SIZE = 1 << 20


class Console:
    """The console ring: ``conringc`` (consumer) and ``conringp`` (producer) only grow."""

    def __init__(self, size: int = CONRING_SIZE) -> None:
        self.size = size
        self.ring = bytearray(size)
        self.conringc = 0
        self.conringp = 0
        self.lock = threading.Lock()

    def printk(self, text: str) -> None:
        """Append lines, each prefixed "(XEN) " as Xen's printk does."""
        data = "".join(f"(XEN) {line}\n" for line in text.splitlines()).encode()
        with self.lock:
            self._append(data)

    def _append(self, data: bytes) -> None:
        offset = 0
        while offset < len(data):
            idx = self.conringp % self.size
            n = min(len(data) - offset, self.size - idx)
            self.ring[idx : idx + n] = data[offset : offset + n]
            self.conringp += n
            offset += n
        if self.conringp - self.conringc > self.size:
            self.conringc = self.conringp - self.size

    def live(self) -> bytes:
        """Everything between consumer and producer, oldest first."""
        pieces, _, _ = self.read(self.conringp - self.conringc, incremental=False, index=0)
        return b"".join(pieces)

    def restore(self, text: bytes, conringc: int) -> None:
        """Put saved text back at its place in the ring."""
        with self.lock:
            self.conringc = self.conringp = conringc
            self._append(text)

    def read(
        self, max_bytes: int, *, incremental: bool, index: int
    ) -> tuple[list[bytes], int, int]:
        """read_console_ring's copy loop: up to ``max_bytes`` from the oldest (or from
        ``index`` when incremental and inside the ring), as the pieces Xen copies out one by
        one (two when the text wraps the ring's end); then where reading stopped and the
        producer index it read up to."""
        with self.lock:
            c, p = self.conringc, self.conringp
            if incremental and (c < index <= p):
                c = index
            pieces, sofar = [], 0
            while c != p and sofar < max_bytes:
                idx = c % self.size
                length = min(p - c, self.size - idx, max_bytes - sofar)
                pieces.append(bytes(self.ring[idx : idx + length]))
                sofar += length
                c += length
        return pieces, c, p

    def consume(self, c: int, p: int) -> None:
        """read_console_ring's clear, once the copies succeeded: the consumer moves to where
        reading stopped (keeping at most a ring's worth behind the producer it read)."""
        with self.lock:
            self.conringc = max(
                p - self.size if p - c > self.size else c, self.conringp - self.size
            )


# -- key handlers ------------------------------------------------------------------------------


def _dump_numa(hv: Hypervisor, key: str) -> str:
    """dump_numa(): nodes, CPUs, then each domain's pages per online node."""
    from hypervisor_model import pod, vnuma  # read only by this dump

    heap = hv.heap
    lines = [f"'{key}' pressed -> dumping numa info (now = 0)"]
    online = [n for n in range(len(heap.node_avail_pages)) if heap.online_mask >> n & 1]
    for n in online:
        start, spanned = hv.host.nodes[n].spanned
        lines.append(
            f"NODE{n} start->{start} size->{spanned} free->{heap.avail_node_heap_pages(n)}"
        )
    cpu = 0
    for n in online:
        count = hv.host.nodes[n].cpus
        if count > 1:
            lines.append(f"CPU{cpu}...{cpu + count - 1} -> NODE{n}")
        elif count == 1:
            lines.append(f"CPU{cpu} -> NODE{n}")
        cpu += count
    lines.append("Memory location of each domain:")
    for d in hv.domain_list():
        lines.append(f"d{d.domain_id} (total: {d.tot_pages}):")
        with d.page_alloc_lock:  # counted from d->page_list, which the PoD cache is not on
            per_node = dict(d.node_pages)
            for low, pages in pod.cache_spans(d):
                for start, end, node in heap.split_by_node(low, low + pages):
                    per_node[node] -= end - start
        lines.extend(f"    Node {n}: {per_node.get(n, 0)}" for n in online)
        lines.extend(vnuma.dump_lines(d))
    return "\n".join(lines)


def _pagealloc_info(hv: Hypervisor, key: str) -> str:
    """pagealloc_info(): free memory per zone, with the DMA heap split off."""
    heap = hv.heap
    lines = ["Physical memory information:", "    Xen heap: 0kB free"]
    total = 0
    with heap.lock:
        for zone in range(1, NR_ZONES):
            if zone + PAGE_SHIFT == heap.dma_bitsize:
                lines.append(f"    DMA heap: {total << (PAGE_SHIFT - 10)}kB free")
                total = 0
            free = heap.avail_heap_pages(zone, zone, -1)
            if free:
                total += free
                lines.append(f"    heap[{zone:02d}]: {free << (PAGE_SHIFT - 10)}kB free")
    lines.append(f"    Dom heap: {total << (PAGE_SHIFT - 10)}kB free")
    return "\n".join(lines)


def _show_handlers(hv: Hypervisor, key: str) -> str:
    lines = [f"'{key}' pressed -> showing installed handlers"]
    lines.extend(
        f" key '{k}' (ascii '{ord(k):02x}') => {desc}" for k, (desc, _) in sorted(KEYS.items())
    )
    return "\n".join(lines)


KEYS: dict[str, tuple[str, Callable[[Hypervisor, str], str]]] = {
    "h": ("show this message", _show_handlers),
    "m": ("memory info", _pagealloc_info),
    "u": ("dump NUMA info", _dump_numa),
}


def handle_keypress(hv: Hypervisor, key: str) -> None:
    """Run the key's handler, printing to the console; unknown keys do nothing."""
    entry = KEYS.get(key)
    if entry is not None:
        hv.console.printk(entry[1](hv, key))

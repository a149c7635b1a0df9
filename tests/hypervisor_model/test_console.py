"""XEN_SYSCTL_readconsole (drivers/char/console.c read_console_ring).

The ring is copied out piece by piece (two pieces when the text wraps the ring's end); a
piece that cannot be written is EFAULT with nothing copied back and the ring left whole;
only when every piece is written, and only if the caller set ``clear``, does the consumer
move up to where reading stopped. ``count`` and ``index`` are copied back on success.
"""

from __future__ import annotations

import pytest
from hypercalls import Guest

import hypervisor_model
from hypervisor_model.console import Console
from hypervisor_model.public import sysctl
from hypervisor_model.public.errno import EFAULT

Hypervisor = hypervisor_model.Hypervisor


def readconsole(
    dom0: Guest,
    size: int,
    *,
    clear: int = 0,
    incremental: int = 0,
    index: int = 0,
    buffer: int | None = None,
) -> tuple[int, bytes, int, int]:
    """Result, the bytes the buffer holds afterwards, and count and index as copied back."""
    buf = dom0.hv.arena.alloc(size)
    rc, out = dom0.sysctl(
        sysctl.XEN_SYSCTL_readconsole,
        sysctl.xen_sysctl_readconsole,
        dict(
            clear=clear,
            incremental=incremental,
            index=index,
            buffer=buf.addr if buffer is None else buffer,
            count=size,
        ),
    )
    assert out is not None
    return rc, bytes(buf.mem[:size]), out.count, out.index


def test_reading_without_clear_leaves_the_ring(dom0: Guest) -> None:
    """The boot banner, read twice: the same bytes both times (clear=0 keeps them)."""
    banner = dom0.hv.console.live()
    assert banner.startswith(b"(XEN) ")
    for _ in range(2):
        rc, data, count, index = readconsole(dom0, len(banner))
        assert (rc, data, count, index) == (0, banner, len(banner), len(banner))


def test_clear_empties_what_was_read(dom0: Guest) -> None:
    banner = dom0.hv.console.live()
    rc, data, count, _ = readconsole(dom0, len(banner) + 100, clear=1)
    assert (rc, data[:count], count) == (0, banner, len(banner))
    assert readconsole(dom0, 100)[2] == 0  # nothing left


def test_clear_keeps_what_did_not_fit(dom0: Guest) -> None:
    """A 10-byte read with clear: the consumer moves 10 bytes on, the rest stays."""
    banner = dom0.hv.console.live()
    assert readconsole(dom0, 10, clear=1)[1] == banner[:10]
    rc, data, count, _ = readconsole(dom0, len(banner))
    assert (rc, data[:count]) == (0, banner[10:])


def test_clear_with_a_buffer_xen_cannot_write_is_efault_and_clears_nothing(dom0: Guest) -> None:
    """read_console_ring returns EFAULT before its clear: the ring is whole afterwards."""
    banner = dom0.hv.console.live()
    rc, _, count, index = readconsole(dom0, len(banner), clear=1, buffer=0)
    assert (rc, count, index) == (-EFAULT, len(banner), 0)  # count as sent: no copy-back
    assert dom0.hv.console.live() == banner


def test_incremental_reads_from_the_index_returned(dom0: Guest) -> None:
    """Read everything, press 'm' (a memory dump), read on from the index: only the dump."""
    banner = dom0.hv.console.live()
    _, _, _, index = readconsole(dom0, len(banner))
    with dom0.hv.arena.alloc(1) as key:
        key.mem[:1] = b"m"
        rc, _ = dom0.sysctl(
            sysctl.XEN_SYSCTL_debug_keys,
            sysctl.xen_sysctl_debug_keys,
            dict(keys=key.addr, nr_keys=1),
        )
    assert rc == 0
    rc, data, count, _ = readconsole(dom0, 4096, incremental=1, index=index)
    assert rc == 0
    assert data[:count] == dom0.hv.console.live()[len(banner) :]
    assert data[:count].startswith(b"(XEN) Physical memory information:")


@pytest.fixture
def wrapped(dom0: Guest) -> Guest:
    """A full 64-byte ring whose text wraps its end: 50 + 40 bytes written, the oldest 26
    overwritten, so the text runs from offset 26 to the end (38 bytes) and on (26 bytes)."""
    ring = Console(64)
    ring.printk("x" * 43)  # "(XEN) " + 43 + "\n" = 50 bytes
    ring.printk("y" * 33)  # 40 more: 90 written
    dom0.hv.console = ring
    assert (ring.conringc, ring.conringp) == (26, 90)
    return dom0


def test_a_wrapped_ring_reads_in_two_pieces(wrapped: Guest) -> None:
    rc, data, count, index = readconsole(wrapped, 64)
    assert (rc, count, index) == (0, 64, 90)
    assert data == wrapped.hv.console.live()


def test_a_second_piece_that_faults_leaves_the_first_written(wrapped: Guest) -> None:
    """The first piece is the 38 bytes up to the ring's end (26..63); a buffer of 38 bytes
    takes it, the second piece (26 bytes) faults: EFAULT, the first piece in the buffer,
    and even with clear the ring keeps all 64 bytes."""
    live = wrapped.hv.console.live()
    buf = wrapped.hv.arena.alloc(38)
    rc, _ = wrapped.sysctl(
        sysctl.XEN_SYSCTL_readconsole,
        sysctl.xen_sysctl_readconsole,
        dict(clear=1, incremental=0, index=0, buffer=buf.addr, count=64),
    )
    assert rc == -EFAULT
    assert bytes(buf.mem[:38]) == live[:38]
    assert wrapped.hv.console.live() == live

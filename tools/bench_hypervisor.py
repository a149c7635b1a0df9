"""Benchmark the hypervisor model: boot a 2 TiB host and populate a 1 TiB guest (time, peak
memory), and time a claim-set SET hypercall next to packing the same bytes with ``struct``."""

# Run from the repository root after ``pip install -e .``: python tools/bench_hypervisor.py
# It prints numbers and asserts nothing about speed.

from __future__ import annotations

import argparse
import gc
import platform
import resource
import statistics
import struct
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import construct

import hypervisor_model
from hypervisor_model.guest_memory import build, parse
from hypervisor_model.public import domctl, memory
from hypervisor_model.public.xen import DOMID_ANY, HYPERVISOR_domctl, HYPERVISOR_memory_op
from xenctrl.domain import default_createdomain

NODES = [262144] * 8  # MiB per node: 8 x 256 GiB = 2 TiB
EXTENTS, ORDER = 1024, 18  # 1024 x 1 GiB = 1 TiB
CLAIM_SET = [(domctl.XEN_DOMCTL_CLAIM_MEMORY_HOST, 1000), (0, 2000), (1, 3000)]
MIB = 1 << 20

# -- the raw hypercall path (bytes through the arena, as a toolstack would) -----------------


def issue(hv: hypervisor_model.Hypervisor, op: int, raw: bytes, *words: int) -> tuple[int, bytes]:
    """Copy ``raw`` into a hypercall buffer, pass its address, return the result and the
    buffer's bytes afterwards."""
    with hv.arena.alloc(len(raw)) as buf:
        buf.mem[: len(raw)] = raw
        rc = hv.hypercall(op, *words, buf.addr)
        return rc, bytes(buf.mem[: len(raw)])


def domctl_bytes(cmd: int, domain: int, layout: Any = None, payload: Any = None) -> bytes:
    union = build(layout, payload) if layout is not None else b""
    return build(
        domctl.xen_domctl,
        dict(
            cmd=cmd,
            interface_version=domctl.XEN_DOMCTL_INTERFACE_VERSION,
            domain=domain,
            u=union,
        ),
    )


def create_hvm(hv: hypervisor_model.Hypervisor, max_pages: int) -> int:
    # libxl's HVM configuration, taken from xenctrl's C layout
    config = parse(domctl.xen_domctl_createdomain, bytes(default_createdomain(hvm=True)))
    raw = domctl_bytes(
        domctl.XEN_DOMCTL_createdomain, DOMID_ANY, domctl.xen_domctl_createdomain, config
    )
    rc, after = issue(hv, HYPERVISOR_domctl, raw)
    if rc:
        raise SystemExit(f"createdomain: expected 0, got {rc}")
    domid = int(parse(domctl.xen_domctl, after).domain)
    raw = domctl_bytes(
        domctl.XEN_DOMCTL_max_mem, domid, domctl.xen_domctl_max_mem, dict(max_memkb=max_pages * 4)
    )
    if (rc := issue(hv, HYPERVISOR_domctl, raw)[0]) != 0:
        raise SystemExit(f"max_mem: expected 0, got {rc}")
    return domid


def populate(hv: hypervisor_model.Hypervisor, domid: int, extents: int, order: int) -> int:
    """populate_physmap of ``extents`` extents of ``order`` at consecutive gfns."""
    gfns = struct.pack(f"<{extents}Q", *(i << order for i in range(extents)))
    with hv.arena.alloc(len(gfns)) as lst:
        lst.mem[: len(gfns)] = gfns
        reservation = build(
            memory.xen_memory_reservation,
            dict(
                extent_start=lst.addr,
                nr_extents=extents,
                extent_order=order,
                mem_flags=0,
                domid=domid,
            ),
        )
        rc, _ = issue(hv, HYPERVISOR_memory_op, reservation, memory.XENMEM_populate_physmap)
    return rc


# -- measurement helpers --------------------------------------------------------------------


def max_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def traced_peak(fn: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``fn`` under tracemalloc; its peak of Python allocations, in bytes."""
    gc.collect()
    tracemalloc.start()
    try:
        result = fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak


def median_ns(fn: Callable[[], Any], iterations: int) -> float:
    for _ in range(min(100, iterations)):  # warm up caches (construct's compiled codecs)
        fn()
    samples = []
    for _ in range(iterations):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples)


# -- (a) a big host and a big guest --------------------------------------------------------


def big_host() -> list[tuple[str, float, int, float]]:
    """Rows of (step, seconds, tracemalloc peak, max RSS afterwards). Times come from a run
    without tracemalloc (which slows Python down); the peaks from a second, traced run."""

    def boot() -> hypervisor_model.Hypervisor:
        return hypervisor_model.boot(nodes=NODES)

    hv, boot_s = timed(boot)
    rss_boot = max_rss_mib()
    domid = create_hvm(hv, EXTENTS << ORDER)
    done, populate_s = timed(lambda: populate(hv, domid, EXTENTS, ORDER))
    if done != EXTENTS:
        raise SystemExit(f"populate: expected {EXTENTS} extents, got {done}")
    rss_populate = max_rss_mib()
    hv.check_invariants()
    del hv
    gc.collect()

    hv, boot_peak = traced_peak(boot)
    domid = create_hvm(hv, EXTENTS << ORDER)
    _, populate_peak = traced_peak(lambda: populate(hv, domid, EXTENTS, ORDER))
    return [
        ("boot 2 TiB, 8 nodes", boot_s, boot_peak, rss_boot),
        (f"populate {EXTENTS} x order {ORDER} (1 TiB)", populate_s, populate_peak, rss_populate),
    ]


# -- (b) one claim-set SET, and struct doing the same packing ---------------------------------


def claim_set_costs(iterations: int) -> list[tuple[str, float]]:
    hv = hypervisor_model.boot(nodes=[4096] * 3)
    domid = create_hvm(hv, 1 << 20)
    nr = len(CLAIM_SET)

    def client_round_trip() -> None:
        """What a toolstack does: build the entries and the domctl, bounce them, parse."""
        entries = b"".join(
            build(domctl.xen_memory_claim, dict(pages=p, target=t, cmd=0)) for t, p in CLAIM_SET
        )
        with hv.arena.alloc(len(entries)) as buf:
            buf.mem[: len(entries)] = entries
            raw = domctl_bytes(
                domctl.XEN_DOMCTL_claim_memory,
                domid,
                domctl.xen_domctl_claim_memory,
                dict(claim_set=buf.addr, nr_entries=nr, mode=domctl.XEN_DOMCTL_CLAIM_MEMORY_SET),
            )
            rc, after = issue(hv, HYPERVISOR_domctl, raw)
            parse(domctl.xen_domctl, after)
        assert rc == 0, rc

    # The same bytes placed once, for the hypercall alone.
    entries_buf = hv.arena.alloc(16 * nr)
    entries = b"".join(struct.pack("<QII", p, t, 0) for t, p in CLAIM_SET)
    entries_buf.mem[: len(entries)] = entries
    union = struct.pack("<QII", entries_buf.addr, nr, domctl.XEN_DOMCTL_CLAIM_MEMORY_SET)
    raw = struct.pack(
        "<IIH6x128s",
        domctl.XEN_DOMCTL_claim_memory,
        domctl.XEN_DOMCTL_INTERFACE_VERSION,
        domid,
        union,
    )
    op_buf = hv.arena.alloc(len(raw))
    op_buf.mem[: len(raw)] = raw

    def hypercall_only() -> None:
        rc = hv.hypercall(HYPERVISOR_domctl, op_buf.addr)
        assert rc == 0, rc

    domctl_fmt = struct.Struct("<IIH6x128s")  # 144 bytes
    entry_fmt = struct.Struct("<QII")  # 16 bytes

    def struct_pack_unpack() -> None:
        packed = [entry_fmt.pack(p, t, 0) for t, p in CLAIM_SET]
        union = struct.pack("<QII", 0x7F0000000000, nr, 0)
        header = domctl_fmt.pack(91, 0x18, domid, union)
        domctl_fmt.unpack(header)
        struct.unpack("<QII", union)
        for e in packed:
            entry_fmt.unpack(e)

    return [
        ("hypercall only (bytes already in the arena)", median_ns(hypercall_only, iterations)),
        (
            "client round trip (construct build, arena, hypercall, parse)",
            median_ns(client_round_trip, iterations),
        ),
        (
            "struct pack + unpack of the same 144 + 3 x 16 bytes",
            median_ns(struct_pack_unpack, iterations),
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=5000, help="samples per median")
    args = parser.parse_args()

    print(
        f"xenemu hypervisor benchmark: Python {platform.python_version()}, "
        f"construct {construct.__version__}, {platform.machine()}"
    )
    print()
    print("(a) boot a 2 TiB host (8 x 256 GiB nodes), populate a 1 TiB HVM guest")
    print(f"    (max RSS before booting: {max_rss_mib():.1f} MiB, the interpreter and imports)")
    print(f"    {'step':<38} {'time':>9} {'tracemalloc peak':>17} {'max RSS after':>14}")
    for step, seconds, peak, rss in big_host():
        print(f"    {step:<38} {seconds:>7.3f} s {peak / MIB:>13.1f} MiB {rss:>10.1f} MiB")
    print()
    print(f"(b) claim-set SET of {len(CLAIM_SET)} entries, median of {args.iterations} runs")
    rows = claim_set_costs(args.iterations)
    for what, ns in rows:
        print(f"    {what:<62} {ns / 1000:>8.1f} us")
    baseline = rows[-1][1]
    print(
        f"    hypercall alone / struct: {rows[0][1] / baseline:.0f}x;"
        f" client round trip / struct: {rows[1][1] / baseline:.0f}x"
    )


if __name__ == "__main__":
    main()

"""Benchmark one hypercall against ``struct``, and a big host and guest.

(1) A claim-set SET of 3 entries: the hypercall alone (its bytes already in hypercall
    buffers), a raw client round trip (build the bytes, bounce them, issue, decode), and the
    libxenctrl call ``xc_domain_claim_memory``, each next to ``struct`` packing and unpacking
    the same 144 + 3 x 16 bytes, measured in the same run; ratios are per repeat, then the
    median. ``--instructions`` also counts instructions under valgrind (stable on a busy
    machine).
(2) Boot a 2 TiB host (8 x 256 GiB) and populate a 1 TiB HVM guest in 1 GiB extents.

Run from the repository root:  python tools/bench_hypervisor.py [--repeats 7]
It prints numbers and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import platform
import struct
import sys
from pathlib import Path
from typing import Any

sys.path.insert(1, str(Path(__file__).resolve().parent))  # _bench, beside this script

import _bench

import hypervisor_model
from hypervisor_model.guest_memory import build, parse
from hypervisor_model.public import domctl, memory
from hypervisor_model.public.xen import DOMID_ANY, HYPERVISOR_domctl, HYPERVISOR_memory_op
from xenctrl.domain import default_createdomain, xc_domain_claim_memory
from xenctrl.handle import xc_interface_open
from xenctrl.types import xen_memory_claim_t

CLAIM_SET = [(domctl.XEN_DOMCTL_CLAIM_MEMORY_HOST, 1000), (0, 2000), (1, 3000)]
NODES = [262144] * 8  # MiB per node: 8 x 256 GiB = 2 TiB
EXTENTS, ORDER = 1024, 18  # 1024 x 1 GiB = 1 TiB
DOMCTL = struct.Struct("<IIH6x128s")  # xen_domctl, 144 bytes
CLAIM = struct.Struct("<QII")  # xen_memory_claim, 16 bytes; also xen_domctl_claim_memory


# -- raw hypercalls: bytes through the arena, as a toolstack does --------------------------


def issue(hv: hypervisor_model.Hypervisor, op: int, raw: bytes, *words: int) -> tuple[int, bytes]:
    """Copy ``raw`` into a hypercall buffer, pass its address, return the result and the
    buffer's bytes afterwards."""
    with hv.arena.alloc(len(raw)) as buf:
        buf.mem[: len(raw)] = raw
        rc = hv.hypercall(op, *words, buf.addr)
        return rc, bytes(buf.mem[: len(raw)])


def domctl_bytes(cmd: int, domain: int, layout: Any = None, payload: Any = None) -> bytes:
    union = build(layout, payload) if layout is not None else b""
    fields = dict(cmd=cmd, interface_version=domctl.XEN_DOMCTL_INTERFACE_VERSION, domain=domain)
    return build(domctl.xen_domctl, dict(fields, u=union))


def create_hvm(hv: hypervisor_model.Hypervisor, max_pages: int) -> int:
    """createdomain with libxl's HVM configuration, then max_mem."""
    config = dict(parse(domctl.xen_domctl_createdomain, bytes(default_createdomain(hvm=True))))
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


def populate(hv: hypervisor_model.Hypervisor, domid: int, gfns: list[int], order: int) -> int:
    """One populate_physmap of extents of ``order`` at ``gfns``; the extents done."""
    frames = struct.pack(f"<{len(gfns)}Q", *gfns)
    with hv.arena.alloc(len(frames)) as lst:
        lst.mem[: len(frames)] = frames
        reservation = dict(
            extent_start=lst.addr,
            nr_extents=len(gfns),
            extent_order=order,
            mem_flags=0,
            domid=domid,
        )
        raw = build(memory.xen_memory_reservation, reservation)
        return issue(hv, HYPERVISOR_memory_op, raw, memory.XENMEM_populate_physmap)[0]


# -- (1) one claim-set SET -------------------------------------------------------------------


def claim_set_calls() -> tuple[dict[str, Any], Any]:
    """The three ways to issue the SET, and the struct reference."""
    hv = hypervisor_model.boot(nodes=[4096] * 3)
    domid = create_hvm(hv, 1 << 20)
    nr = len(CLAIM_SET)

    entries_buf = hv.arena.alloc(CLAIM.size * nr)
    entries = b"".join(CLAIM.pack(p, t, 0) for t, p in CLAIM_SET)
    entries_buf.mem[: len(entries)] = entries
    union = CLAIM.pack(entries_buf.addr, nr, domctl.XEN_DOMCTL_CLAIM_MEMORY_SET)
    raw = DOMCTL.pack(
        domctl.XEN_DOMCTL_claim_memory, domctl.XEN_DOMCTL_INTERFACE_VERSION, domid, union
    )
    op_buf = hv.arena.alloc(len(raw))
    op_buf.mem[: len(raw)] = raw

    def hypercall_alone() -> None:
        hv.hypercall(HYPERVISOR_domctl, op_buf.addr)

    def raw_client() -> None:
        """What a toolstack does by hand: build the entries and the domctl, bounce, decode."""
        entries = b"".join(
            build(domctl.xen_memory_claim, dict(pages=p, target=t, cmd=0)) for t, p in CLAIM_SET
        )
        with hv.arena.alloc(len(entries)) as buf:
            buf.mem[: len(entries)] = entries
            payload = dict(
                claim_set=buf.addr, nr_entries=nr, mode=domctl.XEN_DOMCTL_CLAIM_MEMORY_SET
            )
            raw = domctl_bytes(
                domctl.XEN_DOMCTL_claim_memory, domid, domctl.xen_domctl_claim_memory, payload
            )
            parse(domctl.xen_domctl, issue(hv, HYPERVISOR_domctl, raw)[1])

    xch = xc_interface_open(hv)
    claim_set = [xen_memory_claim_t(pages=p, target=t) for t, p in CLAIM_SET]

    def xenctrl_call() -> None:
        xc_domain_claim_memory(xch, domid, domctl.XEN_DOMCTL_CLAIM_MEMORY_SET, nr, claim_set)

    def struct_reference() -> None:
        packed = [CLAIM.pack(p, t, 0) for t, p in CLAIM_SET]
        union = CLAIM.pack(0x7F0000000000, nr, 0)
        DOMCTL.unpack(DOMCTL.pack(91, 0x18, domid, union))
        CLAIM.unpack(union)
        for e in packed:
            CLAIM.unpack(e)

    for call in (hypercall_alone, raw_client, xenctrl_call):  # each must succeed
        call()
    calls = {"hypercall alone": hypercall_alone, "raw client round trip": raw_client}
    calls["xc_domain_claim_memory round trip"] = xenctrl_call
    return calls, struct_reference


def claim_set_rows(iterations: int, repeats: int) -> None:
    calls, reference = claim_set_calls()
    got = _bench.compare(calls, reference, iterations=iterations, repeats=repeats)
    ref_ns = got["reference"][0]
    print(
        f"(1) claim-set SET of {len(CLAIM_SET)} entries, "
        f"median of {repeats} repeats x {iterations} calls"
    )
    print(
        _bench.row(
            "struct pack + unpack of the same 144 + 3 x 16 bytes",
            f"{ref_ns / 1000:.2f} us",
            "(reference)",
        )
    )
    for name, (ns, ratio) in got.items():
        if name != "reference":
            print(_bench.row(name, f"{ns / 1000:.2f} us", f"{ratio:5.1f} x struct"))


def instruction_rows(n: int) -> None:
    """The same calls counted in instructions: stable whatever else the machine runs."""
    script = str(Path(__file__).resolve())
    counts = {}
    for name in (
        "struct",
        "hypercall alone",
        "raw client round trip",
        "xc_domain_claim_memory round trip",
    ):
        counts[name] = _bench.instructions(
            lambda k, name=name: [sys.executable, script, "--loop", name, str(k)], n
        )
    if counts["struct"] is None:
        print("  (valgrind not found: no instruction counts)")
        return
    print(f"  instructions per call (valgrind, {n} vs {2 * n} iterations):")
    for name, count in counts.items():
        assert count is not None
        ratio = "(reference)" if name == "struct" else f"{count / counts['struct']:5.1f} x struct"
        print(_bench.row(name, f"{count:,.0f}", ratio))


def loop(name: str, n: int) -> None:
    calls, reference = claim_set_calls()
    fn = reference if name == "struct" else calls[name]
    for _ in range(n):
        fn()


# -- (2) a big host and a big guest -----------------------------------------------------


def big_host() -> None:
    """Time from a plain run; the Python allocation peak from a second, traced one."""

    def boot() -> hypervisor_model.Hypervisor:
        return hypervisor_model.boot(nodes=NODES)

    gfns = [i << ORDER for i in range(EXTENTS)]
    hv, boot_s = _bench.seconds(boot)
    domid = create_hvm(hv, EXTENTS << ORDER)
    done, populate_s = _bench.seconds(lambda: populate(hv, domid, gfns, ORDER))
    if done != EXTENTS:
        raise SystemExit(f"populate: expected {EXTENTS} extents, got {done}")
    hv.check_invariants()
    del hv
    hv, boot_peak = _bench.traced_peak(boot)
    domid = create_hvm(hv, EXTENTS << ORDER)
    _, populate_peak = _bench.traced_peak(lambda: populate(hv, domid, gfns, ORDER))
    print("(2) a 2 TiB host (8 x 256 GiB nodes) and a 1 TiB HVM guest")
    print(_bench.row("boot", _bench.ms(boot_s), f"tracemalloc peak {_bench.mib(boot_peak)}"))
    print(
        _bench.row(
            f"populate {EXTENTS} x order {ORDER}",
            _bench.ms(populate_s),
            f"tracemalloc peak {_bench.mib(populate_peak)}",
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000, help="calls per repeat")
    parser.add_argument("--repeats", type=int, default=7, help="repeats; medians are reported")
    parser.add_argument("--instructions", action="store_true", help="also count instructions")
    parser.add_argument("--loop", nargs=2, metavar=("CALL", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loop:
        loop(args.loop[0], int(args.loop[1]))
        return
    print(
        f"xenemu hypervisor benchmark: Python {platform.python_version()} on {platform.machine()}"
    )
    claim_set_rows(args.iterations, args.repeats)
    if args.instructions:
        instruction_rows(500)
    big_host()


if __name__ == "__main__":
    main()

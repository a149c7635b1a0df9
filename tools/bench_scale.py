"""Benchmark how the model's costs grow: with domains, extents, nodes and saved state.

Each measurement runs in a fresh child process (its memory its own, a time limit on it);
each row stands next to a reference measured in the same run: ``struct`` doing the same
packing, ``bisect.insort`` into one sorted list (the structure the physmap once used), or
the smallest case of the same table.

Rows of the issue's table: 1 GiB populated in 4 KiB extents (gfn order and strided
order), xc_domain_getinfolist of 10 000 domains, booting a 64-node host, and the single
huge calls (increase_reservation of 2^20 extents, PV populate of 2^19 / 2^20 extents,
destroying a 2^18-page PV guest, a page_offline_op query over 2^24 pages).

Run from the repository root:  python tools/bench_scale.py [--timeout 60] [--quick]
It prints numbers and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import json
import platform
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(1, str(Path(__file__).resolve().parent))  # _bench, beside this script

import _bench

import hypervisor_model
from hypervisor_model.guest_memory import build
from hypervisor_model.public import sysctl
from hypervisor_model.public.xen import DOMID_ANY, HYPERVISOR_sysctl
from hypervisor_model.runmap import RunMap
from hypervisor_model.snapshot import load_state, save_state
from xenctrl.domain import (
    default_createdomain,
    xc_domain_create,
    xc_domain_decrease_reservation,
    xc_domain_destroy,
    xc_domain_getinfolist,
    xc_domain_increase_reservation,
    xc_domain_populate_physmap,
    xc_domain_setmaxmem,
)
from xenctrl.handle import xc_interface, xc_interface_open

GIB_4K = 1 << 18  # 4 KiB pages in 1 GiB
BATCH = 512  # extents per populate call, as meminit's 4 KiB loop
INFO = struct.Struct("<HHI8Q3I16sIB7x2I")  # xen_domctl_getdomaininfo, 112 bytes
SCRIPT = str(Path(__file__).resolve())


def _host(
    node_mib: list[int], dom0_mib: int = 1024
) -> tuple[hypervisor_model.Hypervisor, xc_interface]:
    hv = hypervisor_model.boot(nodes=node_mib, dom0_memory=dom0_mib)
    return hv, xc_interface_open(hv)


def _guest(xch: xc_interface, hvm: bool, max_kb: int) -> int:
    domid = xc_domain_create(xch, DOMID_ANY, default_createdomain(hvm))
    xc_domain_setmaxmem(xch, domid, max_kb)
    # no extents: the first memory_op loads its handler, which is not what the rows time
    xc_domain_populate_physmap(xch, domid, 0, 0, 0, [])
    return domid


def _populate(xch: xc_interface, domid: int, gfns: list[int], order: int, flags: int = 0) -> None:
    for i in range(0, len(gfns), BATCH):
        chunk = gfns[i : i + BATCH]
        done = xc_domain_populate_physmap(xch, domid, len(chunk), order, flags, chunk)
        if done != len(chunk):
            raise SystemExit(f"populate: expected {len(chunk)} extents, got {done}")


def strided(n: int, stride: int = 2) -> list[int]:
    """Every ``stride``-th key, then the ones between: each later insert lands mid-map."""
    return [k for start in range(stride) for k in range(start, n, stride)]


# -- children: one measurement each ---------------------------------------------------------


def populate_gib(how: str) -> dict[str, Any]:
    """``order:gib`` GiB of an HVM guest in 4 KiB extents, gfns in ``order`` ("gfn" or
    "strided"): wall and CPU seconds."""
    order, gib = how.split(":")
    hv, xch = _host([4096 * int(gib)])
    domid = _guest(xch, True, (int(gib) + 1) << 20)
    pages = GIB_4K * int(gib)
    gfns = list(range(pages)) if order == "gfn" else strided(pages)
    start = time.process_time()
    _, s = _bench.seconds(lambda: _populate(xch, domid, gfns, 0))
    cpu = time.process_time() - start
    d = hv.find_domain(domid)
    return dict(seconds=s, cpu=cpu, p2m_runs=len(d.p2m), page_runs=len(d.pages))


def runmap_1gib(order: str) -> dict[str, Any]:
    """The same keys into a RunMap alone, and into one sorted list (the old structure)."""
    keys = list(range(GIB_4K)) if order == "gfn" else strided(GIB_4K)
    runs = RunMap()
    _, s = _bench.seconds(lambda: [runs.insert(k, 1, 10**9 - k, 1, None) for k in keys])
    flat: list[int] = []
    _, ref = _bench.seconds(lambda: [bisect.insort(flat, k) for k in keys])
    return dict(seconds=s, reference=ref, runs=len(runs))


def getinfolist(n: int) -> dict[str, Any]:
    """xc_domain_getinfolist of ``n`` domains (dom0 and n - 1 guests), and createdomain's
    cost at that size; reference: struct packing and unpacking n records."""
    _, xch = _host([262144])  # each domain costs Xen some memory of its own
    config = default_createdomain(True)
    _, create_s = _bench.seconds(
        lambda: [xc_domain_create(xch, DOMID_ANY, config) for _ in range(n - 1)]
    )
    last = [xc_domain_create(xch, DOMID_ANY, config) for _ in range(10)]
    _, create_at_n = _bench.seconds(
        lambda: [xc_domain_create(xch, DOMID_ANY, config) for _ in range(10)]
    )
    for domid in last:
        xc_domain_destroy(xch, domid)
    xc_domain_getinfolist(xch, 0, 1)  # first use: the sysctl handlers load, codecs derive
    # A full collection the creations made due is theirs, not the list's: whichever call
    # next allocates pays it, in time growing with the whole heap (~40 ms at 10 000).
    gc.collect()
    infos, s = _bench.seconds(lambda: xc_domain_getinfolist(xch, 0, n + 20))
    assert len(infos) == n + 10, len(infos)
    record = INFO.pack(1, 0, 2, *range(8), 0, 0, 0, bytes(16), 0, 52, 0, 0)

    def reference() -> None:
        packed = b"".join(INFO.pack(*INFO.unpack(record)) for _ in range(n + 10))
        list(INFO.iter_unpack(packed))

    gc.collect()
    _, ref = _bench.seconds(reference)
    return dict(
        seconds=s, reference=ref, create_each=create_s / max(n - 1, 1), create_at_n=create_at_n / 10
    )


def boot_nodes(n: int) -> dict[str, Any]:
    """Boot a host of ``n`` nodes x 4 GiB: time, then the Python allocation peak."""
    nodes = [4096] * n
    hv, s = _bench.seconds(lambda: hypervisor_model.boot(nodes=nodes))
    del hv
    _, peak = _bench.traced_peak(lambda: hypervisor_model.boot(nodes=nodes))
    return dict(seconds=s, peak=peak)


def extents(order: int) -> dict[str, Any]:
    """1 GiB of an HVM guest in extents of ``order`` (0, 9 or 18), in gfn order."""
    hv, xch = _host([4096])
    domid = _guest(xch, True, 2 << 20)
    gfns = [i << order for i in range(GIB_4K >> order)]
    _, s = _bench.seconds(lambda: _populate(xch, domid, gfns, order))
    d = hv.find_domain(domid)
    return dict(seconds=s, extents=len(gfns), p2m_runs=len(d.p2m), page_runs=len(d.pages))


def state(kind: str) -> dict[str, Any]:
    """Save and load a host holding one guest of ``kind``; the JSON's size."""
    if kind == "pv-4k-alternating":  # 1 GiB of 4 KiB frames, each from the other node
        hv, xch = _host([4096, 4096])
        domid = _guest(xch, False, 2 << 20)
        _populate(xch, domid, list(range(GIB_4K)), 0)
    elif kind == "pv-200g-2m":  # 200 GiB in 2 MiB extents from both nodes, as meminit_pv
        hv, xch = _host([131072, 131072])
        domid = _guest(xch, False, 201 << 20)
        _populate(xch, domid, [i << 9 for i in range(200 << 9)], 9)
    else:  # "hvm-4k-strided": 1 GiB of 4 KiB frames, every other gfn first
        hv, xch = _host([4096])
        domid = _guest(xch, True, 2 << 20)
        _populate(xch, domid, strided(GIB_4K), 0)
    d = hv.find_domain(domid)
    doc, save_s = _bench.seconds(lambda: save_state(hv))
    text = json.dumps(doc, separators=(",", ":"))
    _, load_s = _bench.seconds(lambda: load_state(json.loads(text)))
    _, read_s = _bench.seconds(lambda: load_state(json.loads(text), writable=False))
    # the reference: the same state as version 3 saved it, a row per run
    plain = {**doc, "version": 3, "domains": [dict(state) for state in doc["domains"]]}
    for state in plain["domains"]:
        for name in ("pages", "p2m", "pod_entries"):
            runs = getattr(hv.find_domain(state["domain_id"]), name)
            state[name] = [[r.start, r.length, r.value, r.step] for r in runs]
    plain_text = json.dumps(plain, separators=(",", ":"))
    _, plain_s = _bench.seconds(lambda: load_state(json.loads(plain_text), writable=False))
    return dict(
        bytes=len(text),
        plain_bytes=len(plain_text),
        save=save_s,
        load=load_s,
        read=read_s,
        plain_read=plain_s,
        page_runs=len(d.pages),
        p2m_runs=len(d.p2m),
    )


def huge(what: str) -> dict[str, Any]:
    """The single huge calls (the populate path's second wave): CPU seconds of one call."""
    if what == "increase 2^20":
        hv, xch = _host([8192])
        domid = _guest(xch, True, 8 << 20)
        done, s = _bench.cpu_seconds(
            lambda: xc_domain_increase_reservation(xch, domid, 1 << 20, 0, 0)
        )
    elif what in ("pv populate 2^19", "pv populate 2^20"):
        n = 1 << (19 if what.endswith("19") else 20)
        hv, xch = _host([8192])
        domid = _guest(xch, False, 8 << 20)
        done, s = _bench.cpu_seconds(
            lambda: xc_domain_populate_physmap(xch, domid, n, 0, 0, list(range(n)))
        )
    elif what in ("destroy pv 2^18", "destroy pv 2^18 scattered"):
        hv, xch = _host([4096, 4096])
        domid = _guest(xch, False, 2 << 20)
        # scattered: gfns in an odd multiple's order mod 2^18, so no two frames make a run
        gfns = [
            (i * 40503) % (1 << 18) if what.endswith("scattered") else i for i in range(1 << 18)
        ]
        _populate(xch, domid, gfns, 0)
        runs = len(hv.find_domain(domid).pages)
        done, s = _bench.cpu_seconds(lambda: xc_domain_destroy(xch, domid))
        done = f"{done}, {runs} page runs"
    elif what == "decrease pv 2^18":
        hv, xch = _host([4096, 4096])
        domid = _guest(xch, False, 2 << 20)
        mfns = list(range(1 << 18))
        _populate(xch, domid, mfns, 0)
        frames = [run.start + i for run in hv.find_domain(domid).pages for i in range(run.length)]
        done, s = _bench.cpu_seconds(
            lambda: xc_domain_decrease_reservation(xch, domid, len(frames), 0, frames)
        )
    else:  # "offline query 2^24": a small status buffer, as the caller had
        hv, xch = _host([65536, 65536])
        done, s = _bench.cpu_seconds(lambda: _offline_query(hv))
    return dict(seconds=s, done=str(done)[:40])


def _offline_query(hv: hypervisor_model.Hypervisor) -> int:
    """sysctl page_offline_op querying MFNs 0 .. 2^24 - 1 into a one-page status buffer."""
    payload = dict(cmd=sysctl.sysctl_query_page_offline, start=0, end=(1 << 24) - 1)
    with hv.arena.alloc(4096) as status, hv.arena.alloc(136) as op:
        union = build(sysctl.xen_sysctl_page_offline_op, dict(payload, status=status.addr))
        version = sysctl.XEN_SYSCTL_INTERFACE_VERSION
        raw = build(
            sysctl.xen_sysctl,
            dict(cmd=sysctl.XEN_SYSCTL_page_offline_op, interface_version=version, u=union),
        )
        op.mem[: len(raw)] = raw
        return hv.hypercall(HYPERVISOR_sysctl, op.addr)


CHILDREN: dict[str, Callable[[str], dict[str, Any]]] = {
    "populate": populate_gib,
    "runmap": runmap_1gib,
    "getinfolist": lambda n: getinfolist(int(n)),
    "boot": lambda n: boot_nodes(int(n)),
    "extents": lambda o: extents(int(o)),
    "state": state,
    "huge": huge,
}


# -- the tables -------------------------------------------------------------------------------


def run(kind: str, arg: str, timeout: float) -> dict[str, Any] | None:
    return _bench.child(SCRIPT, [kind, arg], timeout)  # type: ignore[no-any-return]


def over(timeout: float) -> str:
    return f"> {timeout:.0f} s"


def table_rows(timeout: float, quick: bool) -> None:
    print("(1) rows of the issue's table")
    for order in ("gfn", "strided"):
        for gib in (1, 2):  # twice the pages: linear if each extent costs the same
            got = run("populate", f"{order}:{gib}", timeout)
            value = _bench.ms(got["seconds"]) if got else over(timeout)
            extra = ""
            if got:
                each = got["cpu"] / (gib * GIB_4K) * 1e6
                extra = f"CPU {_bench.ms(got['cpu'])}, {each:.2f} us an extent, "
                extra += f"p2m runs {got['p2m_runs']}, page runs {got['page_runs']}"
            label = f"{gib} GiB in 4 KiB extents, {order} order (hypercalls)"
            print(_bench.row(label, value, extra))
        ref = run("runmap", order, timeout)
        if ref:
            print(
                _bench.row(
                    f"  the same p2m inserts into a RunMap alone, {order} order",
                    _bench.ms(ref["seconds"]),
                    f"bisect.insort into one list: {_bench.ms(ref['reference'])}",
                )
            )
    got = run("getinfolist", "10000", timeout)
    if got:
        print(
            _bench.row(
                "xc_domain_getinfolist of 10 000 domains",
                _bench.ms(got["seconds"]),
                f"struct pack + unpack of the records: {_bench.ms(got['reference'])}",
            )
        )
    else:
        print(_bench.row("xc_domain_getinfolist of 10 000 domains", over(timeout)))
    one, big = run("boot", "1", timeout), run("boot", "64", timeout)
    if one and big:
        print(
            _bench.row(
                "boot a 64-node host (64 x 4 GiB)",
                _bench.ms(big["seconds"]),
                f"peak {_bench.mib(big['peak'])}; 1 node: {_bench.ms(one['seconds'])}, "
                f"{_bench.mib(one['peak'])}",
            )
        )
    print("(2) single huge calls, CPU time of one call (the populate path's second wave)")
    huge_calls = ["increase 2^20", "pv populate 2^19", "pv populate 2^20", "destroy pv 2^18"]
    huge_calls += ["destroy pv 2^18 scattered"]
    huge_calls += ["decrease pv 2^18", "offline query 2^24"]
    for what in huge_calls[:2] if quick else huge_calls:
        got = run("huge", what, timeout)
        value = f"{got['seconds']:.2f} s" if got else over(timeout)
        print(_bench.row(what, value, f"-> {got['done']}" if got else ""))


def line(cells: list[str], widths: list[int]) -> str:
    """One table line: the first cell left-aligned, the others right-aligned."""
    first, *rest = cells
    return f"  {first:<{widths[0]}}" + "".join(
        f" {c:>{w}}" for c, w in zip(rest, widths[1:], strict=False)
    )


def scaling(timeout: float, quick: bool) -> None:
    print("(3) scaling: domains (per-call costs at each size)")
    widths = [8, 12, 11, 18, 11]
    print(line(["domains", "getinfolist", "per domain", "createdomain at N", "struct ref"], widths))
    for n in (1, 10, 100, 1000) if quick else (1, 10, 100, 1000, 10000):
        got = run("getinfolist", str(n), timeout)
        if got is None:
            print(line([str(n), over(timeout)], widths))
            continue
        per_domain = f"{got['seconds'] / (n + 10) * 1e6:.1f} us"
        create = f"{got['create_at_n'] * 1e6:.1f} us"
        ref = _bench.ms(got["reference"])
        print(line([str(n), _bench.ms(got["seconds"]), per_domain, create, ref], widths))
    print("(4) scaling: 1 GiB of HVM guest by extent size (gfn order)")
    widths = [8, 8, 10, 11, 9, 10]
    print(line(["extent", "extents", "populate", "per extent", "p2m runs", "page runs"], widths))
    for order, label in ((0, "4 KiB"), (9, "2 MiB"), (18, "1 GiB")):
        got = run("extents", str(order), timeout)
        if got is None:
            print(line([label, "", over(timeout)], widths))
            continue
        each = f"{got['seconds'] / got['extents'] * 1e6:.1f} us"
        cells = [label, str(got["extents"]), _bench.ms(got["seconds"]), each]
        print(line([*cells, str(got["p2m_runs"]), str(got["page_runs"])], widths))
    print("(5) scaling: nodes (boot, n x 4 GiB)")
    widths = [8, 10, 12]
    print(line(["nodes", "boot", "Python peak"], widths))
    for n in (1, 2, 4, 8, 16, 32, 64):
        got = run("boot", str(n), timeout)
        if got:
            print(line([str(n), _bench.ms(got["seconds"]), _bench.mib(got["peak"])], widths))
    print("(6) scaling: saved state (read: load for a read-only command; v3: a row per run)")
    widths = [22, 10, 9, 10, 10, 9, 9, 9, 9]
    head = ["guest", "page runs", "p2m runs", "JSON", "v3 JSON", "save", "load", "read"]
    print(line([*head, "v3 read"], widths))
    kinds = ["hvm-4k-strided", "pv-4k-alternating", "pv-200g-2m"]
    for kind in kinds[:2] if quick else kinds:
        got = run("state", kind, timeout)
        if got is None:
            print(line([kind, over(timeout)], widths))
            continue
        cells = [kind, str(got["page_runs"]), str(got["p2m_runs"])]
        cells += [_bench.size(got["bytes"]), _bench.size(got["plain_bytes"])]
        cells += [_bench.ms(got[k]) for k in ("save", "load", "read", "plain_read")]
        print(line(cells, widths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=60, help="seconds per measurement")
    parser.add_argument("--quick", action="store_true", help="skip the largest cases")
    parser.add_argument("--only", choices=["table", "scaling"], help="one half only")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _bench.emit(CHILDREN[args.child[0]](args.child[1]))
        return
    python = f"Python {platform.python_version()} on {platform.machine()}"
    print(f"xenemu scale benchmark: {python}, {time.strftime('%F %T')}")
    if args.only != "scaling":
        table_rows(args.timeout, args.quick)
    if args.only != "table":
        scaling(args.timeout, args.quick)


if __name__ == "__main__":
    main()

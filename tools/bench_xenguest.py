"""Benchmark of the libxenguest emulation at real-host scale; prints numbers, asserts nothing.

1. One 1 TiB HVM guest (hvm_layout 1 TiB, legacy claim) on a host of 4 nodes x 264 GiB.
2. A boot storm of 256 x 4 GiB HVM guests, each with one vNUMA node on physical node
   i % 4, in numa claim mode, on a host of 4 nodes x 256 GiB (1 TiB): one thread per
   builder taking turns, as storms do ("storm", seed 1), the same with free-running
   threads ("storm-free"), and the same builds one after another ("sequential"); when all
   three ran, a table of the three side by side.
3. One of those 4 GiB builds alone ("one-4g"): its CPU time, hypercalls and extents.

Each phase runs in a child process of its own, so ru_maxrss (the process's peak RSS) is the
phase's alone: once plain, for the wall time, and once under tracemalloc, for the peak of
Python allocations (tracemalloc slows the run down, so its time is not the one reported).
On a machine others share, threads that keep waking up get more of it than one busy thread,
so the storms' wall times flatter threads: their CPU times and context switches say more.

Run:  python tools/bench_xenguest.py [--no-tracemalloc]
          [--phase 1tib|storm|storm-free|sequential|one-4g]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import tracemalloc
from typing import Any

import hypervisor_model
from xenctrl.domain import (
    default_createdomain,
    xc_domain_create,
    xc_domain_setmaxmem,
    xc_get_tot_pages,
)
from xenctrl.handle import xc_interface_open
from xenctrl.misc import xc_physinfo
from xenguest import hvm_layout, vnuma_hvm, xc_dom_allocate, xc_dom_boot_mem_init
from xenguest.storm import BuildRequest, boot_storm

TIB_KB = 1 << 30
PAGES_PER_MIB = 256

# Expected by hand.
# 1 TiB guest: total = (1 TiB - 8 MiB video) / 4 KiB = 268435456 - 2048 = 268433408 pages;
# claim and tot_pages = total - 32 (VGA hole) = 268433376. Extents: 1 GiB at 0x40000 and
# 0x80000 below the hole, then from 4 GiB (pfn 0x100000) to the 1 GiB-aligned 0x10000000:
# 0xFF00000 / 0x40000 = 1020 more, 1022 in all; 2 MiB as for any guest > 4 GiB: 127*4 + 3 +
# 96*4 below the hole and 0xF800 / 512 = 124 at the top = 1019; 4 KiB: 0xC0 + 320 = 512.
BIG_HOST_NODES = [270336] * 4  # 4 x 264 GiB: 4 * 69206016 - 1 (MFN 0) = 276824063 free
EXPECTED_1TIB = dict(tot_pages=268433376, pages_4k=512, pages_2m=1019, pages_1g=1022)

# Storm: each 4 GiB guest populates (4096 - 8) * 256 - 32 = 1046496 pages (meminit never
# populates the 8 MiB of video RAM, QEMU does later, nor the 32-page VGA hole). A node of
# 256 GiB has 67108864 pages (node 0: 67108863, MFN 0 is never free) and takes 64 guests:
# 64 * 1046496 = 66975744 <= 67108863. So all 256 fit, leaving 268435455 - 256 * 1046496 =
# 532479 pages free, less what Xen keeps for each domain (its structure, shared info and
# paging pool; reported as measured). Counting the full 4 GiB per guest they would not fit:
# 256 * 1048576 = 268435456 is one page more than the host has free.
STORM_HOST_NODES = [262144] * 4
STORM_GUESTS, STORM_MIB = 256, 4096
EXPECTED_STORM = dict(admitted=256, refused=0, part_way=0)


def phase_1tib() -> dict[str, Any]:
    hv = hypervisor_model.boot(nodes=BIG_HOST_NODES)
    xch = xc_interface_open(hv)
    domid = xc_domain_create(xch, config=default_createdomain(True))
    xc_domain_setmaxmem(xch, domid, TIB_KB + 1024)
    dom = xc_dom_allocate(xch, domid)
    hvm_layout(dom, TIB_KB)  # claim_mode "legacy" is the default
    start = time.perf_counter()
    xc_dom_boot_mem_init(dom)
    seconds = time.perf_counter() - start
    return dict(
        seconds=seconds,
        tot_pages=xc_get_tot_pages(xch, domid),
        pages_4k=dom.stats.pages_4k,
        pages_2m=dom.stats.pages_2m,
        pages_1g=dom.stats.pages_1g,
        outstanding=int(xc_physinfo(xch).outstanding_pages),
    )


def phase_storm(builders: int | None = None, **how: Any) -> dict[str, Any]:
    """The storm with one thread per builder, or ``builders`` threads, run ``how``
    (boot_storm's seed or free_running)."""
    hv = hypervisor_model.boot(nodes=STORM_HOST_NODES)
    requests = [
        BuildRequest(f"g{i:03d}", STORM_MIB, vnuma=((i % len(STORM_HOST_NODES), STORM_MIB),))
        for i in range(STORM_GUESTS)
    ]
    before = resource.getrusage(resource.RUSAGE_SELF)
    start, cpu = time.perf_counter(), time.process_time()
    report = boot_storm(hv, requests, "numa", builders, **how)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    after = resource.getrusage(resource.RUSAGE_SELF)
    localities = [r.locality for r in report.results if r.locality is not None]
    with xc_interface_open(hv) as xch:
        free_after = int(xc_physinfo(xch).free_pages)
    return dict(
        seconds=seconds,
        cpu_seconds=cpu,
        switches=(after.ru_nvcsw - before.ru_nvcsw) + (after.ru_nivcsw - before.ru_nivcsw),
        admitted=report.count("admitted"),
        refused=report.count("refused"),
        part_way=report.count("part-way"),
        free_after=free_after,
        min_locality=min(localities) if localities else None,
        summary=report.summary() + (f", seed {report.seed}" if report.seed is not None else ""),
    )


def phase_one_4g() -> dict[str, Any]:
    """One 4 GiB HVM build of the storm (vNUMA node 0, numa claims), on the storm's host:
    CPU time of the meminit, the hypercalls it issued and the extents it populated. The
    first build in a process also loads handlers and derives codecs, so a second, built
    the same way beside it, is the one reported; the first's time is given too."""
    hv = hypervisor_model.boot(nodes=STORM_HOST_NODES)
    xch = xc_interface_open(hv)
    calls = [0]
    issue = hv.hypercall

    def counted(op: int, *args: int, **kwargs: Any) -> int:
        calls[0] += 1
        return issue(op, *args, **kwargs)

    hv.hypercall = counted  # type: ignore[method-assign]
    cpu = []
    for _ in range(2):
        domid = xc_domain_create(xch, config=default_createdomain(True))
        memkb = STORM_MIB << 10
        xc_domain_setmaxmem(xch, domid, memkb + 1024)
        dom = xc_dom_allocate(xch, domid)
        dom.claim_mode = "numa"
        hvm_layout(dom, memkb, video_memkb=8192)
        vnuma_hvm(dom, [memkb], [0], 8192)
        calls[0] = 0
        start = time.process_time()
        xc_dom_boot_mem_init(dom)
        cpu.append(time.process_time() - start)
    stats = dom.stats
    return dict(
        seconds=cpu[1],
        first_seconds=cpu[0],
        hypercalls=calls[0],
        extents=stats.pages_4k + stats.pages_2m + stats.pages_1g,
        tot_pages=xc_get_tot_pages(xch, domid),
    )


PHASES = {
    "1tib": phase_1tib,
    "storm": lambda: phase_storm(seed=1),
    "storm-free": lambda: phase_storm(free_running=True),
    "sequential": lambda: phase_storm(builders=1, free_running=True),
    "one-4g": phase_one_4g,
}
EXPECTED_ONE_4G = dict(tot_pages=(4096 - 8) * 256 - 32)  # as each storm guest, by hand above


def child(phase: str, traced: bool) -> None:
    """Run one phase and print its numbers as one JSON line."""
    if traced:
        tracemalloc.start()
    result = PHASES[phase]()
    if traced:
        result["tracemalloc_peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    result["ru_maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(result))


def run_child(phase: str, traced: bool) -> dict[str, Any]:
    args = [sys.executable, __file__, "--child", phase] + (["--tracemalloc"] if traced else [])
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def mib(n_bytes: float) -> str:
    return f"{n_bytes / (1 << 20):.1f} MiB"


def report(phase: str, plain: dict[str, Any], traced: dict[str, Any] | None) -> None:
    expected = {"1tib": EXPECTED_1TIB, "one-4g": EXPECTED_ONE_4G}.get(phase, EXPECTED_STORM)
    storm = f"boot storm, {STORM_GUESTS} x 4 GiB HVM (1 vnode each), numa claims, 4 x 256 GiB"
    title = {
        "1tib": "one 1 TiB HVM guest, legacy claim, host 4 x 264 GiB",
        "storm": f"{storm}, one thread per builder, taking turns",
        "storm-free": f"{storm}, one thread per builder, running free",
        "sequential": f"{storm}, the builds one after another",
        "one-4g": "one 4 GiB HVM build of the storm (meminit), numa claim",
    }[phase]
    print(f"== {title}")
    if phase == "one-4g":
        print(f"   CPU time            {plain['seconds'] * 1000:.1f} ms", end="")
        print(f" (the process's first build: {plain['first_seconds'] * 1000:.1f} ms)")
        print(f"   hypercalls          {plain['hypercalls']}")
        print(f"   extents             {plain['extents']}")
    else:
        print(f"   wall time           {plain['seconds']:.2f} s")
    if "cpu_seconds" in plain:
        print(f"   CPU time            {plain['cpu_seconds']:.2f} s (all threads)")
    print(f"   peak RSS            {mib(plain['ru_maxrss_kib'] * 1024)} (ru_maxrss, whole process)")
    if traced is not None:
        print(f"   tracemalloc peak    {mib(traced['tracemalloc_peak'])}")
    for key, value in expected.items():
        got = plain[key]
        print(f"   {key:<19} {got} (by hand: {value})")
    for key in ("free_after", "outstanding", "min_locality", "summary"):
        if key in plain:
            print(f"   {key:<19} {plain[key]}")


def compare_storms(storms: dict[str, dict[str, Any]]) -> None:
    """The storm's three ways side by side, each as a ratio to the builds in sequence."""
    ref = storms["sequential"]
    print("== the storm three ways, against the builds one after another")
    print(f"   {'':<22} {'wall':>7} {'ratio':>6} {'CPU':>7} {'ratio':>6} {'switches':>9}")
    for phase, name in (
        ("storm", "threads taking turns"),
        ("storm-free", "free-running threads"),
        ("sequential", "one after another"),
    ):
        got = storms[phase]
        print(
            f"   {name:<22} {got['seconds']:>6.2f}s {got['seconds'] / ref['seconds']:>5.2f}x"
            f" {got['cpu_seconds']:>6.2f}s {got['cpu_seconds'] / ref['cpu_seconds']:>5.2f}x"
            f" {got['switches']:>9}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=sorted(PHASES), action="append")
    parser.add_argument("--no-tracemalloc", action="store_true")
    parser.add_argument("--child", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--tracemalloc", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.tracemalloc)
        return
    storms = {}
    for phase in args.phase or list(PHASES):
        plain = run_child(phase, traced=False)
        traced = None if args.no_tracemalloc else run_child(phase, traced=True)
        report(phase, plain, traced)
        if "switches" in plain:
            storms[phase] = plain
    if len(storms) == 3:
        compare_storms(storms)


if __name__ == "__main__":
    main()

"""Benchmark the host server: the round trip of one hypercall (xen_version extraversion, one
16-byte hypercall buffer written back) through the privcmd bridge from a C program and
through the Python remote handle from a Python process, next to the same hypercall in
process, in the same run."""

# Run from the repository root after ``pip install -e .``: python tools/bench_xenhost.py
# The C side needs a C compiler and libxen-dev (libxencall); without them it is left out.
# Each line is the median over --calls calls (the C program times its own loop, so process
# start-up is not counted). It prints numbers and asserts nothing about speed.
# Each round trip wakes the other process: on an otherwise idle machine the CPUs' wake-up
# latency can dominate (seen: ~4 x slower than with a busy loop on the other core).

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from xenhost import bridge
from xenhost.server import HostServer

import hypervisor_model
from hypervisor_model.public.version import XENVER_extraversion
from hypervisor_model.public.xen import HYPERVISOR_xen_version

C_LOOP = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <xencall.h>
int main(int argc, char **argv)
{
    int calls = atoi(argv[1]);
    xencall_handle *xcall = xencall_open(NULL, 0);
    char *buf = xcall ? xencall_alloc_buffer(xcall, 16) : NULL;
    long long *ns = malloc(calls * sizeof(*ns));
    struct timespec a, b;
    if (!buf || !ns)
        return 1;
    for (int i = 0; i < calls; i++) {
        clock_gettime(CLOCK_MONOTONIC, &a);
        if (xencall2(xcall, 17, 1, (unsigned long)buf) != 0)
            return 1;
        clock_gettime(CLOCK_MONOTONIC, &b);
        ns[i] = (b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec);
    }
    for (int i = 0; i < calls; i++)
        printf("%lld\n", ns[i]);
    return 0;
}
"""


PY_LOOP = """
import sys, time
from xenctrl.remote import RemoteHost
conn = RemoteHost(sys.argv[1]).connect()
buf = conn.arena.alloc(16)
for i in range(int(sys.argv[2]) + 100):  # the first 100 warm up
    start = time.perf_counter_ns()
    conn.hypercall(17, 1, buf.addr)  # xen_version(XENVER_extraversion, buf)
    if i >= 100:
        print(time.perf_counter_ns() - start)
"""


def median_ns(fn: Callable[[], Any], calls: int) -> float:
    for _ in range(min(100, calls)):
        fn()
    samples = []
    for _ in range(calls):
        start = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples)


def python_median_ns(socket: Path, calls: int) -> float:
    """The Python remote handle's median, from a process of its own (as a builder is)."""
    done = subprocess.run(
        [sys.executable, "-c", PY_LOOP, str(socket), str(calls)],
        capture_output=True,
        text=True,
        check=True,
    )
    return statistics.median(int(v) for v in done.stdout.split())


def c_median_ns(tmp: Path, socket: Path, calls: int) -> float | str:
    """The C loop's median through the bridge, or why it could not run."""
    cc = bridge.compiler()
    if cc is None or not Path("/usr/include/xencall.h").exists():
        return "left out: needs a C compiler and libxen-dev"
    source, exe = tmp / "loop.c", tmp / "loop"
    source.write_text(C_LOOP)
    subprocess.run([cc, "-O2", "-o", str(exe), str(source), "-lxencall"], check=True)
    done = subprocess.run(
        [str(exe), str(calls)],
        env=bridge.environment(socket),
        capture_output=True,
        text=True,
        check=True,
    )
    return statistics.median(int(v) for v in done.stdout.split())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=5000, help="calls per line (default 5000)")
    args = parser.parse_args()

    hv = hypervisor_model.boot(nodes=[4096, 4096])
    with tempfile.TemporaryDirectory(prefix="bench-xenhost-") as d:
        tmp = Path(d)
        local = hv.arena.alloc(16)
        with HostServer(hv, tmp / "host.sock") as server:
            rows: list[tuple[str, float | str]] = [
                (
                    "in process (Hypervisor.hypercall)",
                    median_ns(
                        lambda: hv.hypercall(
                            HYPERVISOR_xen_version, XENVER_extraversion, local.addr
                        ),
                        args.calls,
                    ),
                ),
                (
                    "Python remote handle (xenctrl.remote)",
                    python_median_ns(server.path, args.calls),
                ),
                (
                    "C through the privcmd bridge (xencall2)",
                    c_median_ns(tmp, server.path, args.calls),
                ),
            ]
    print(f"python {platform.python_version()} on {platform.machine()}; one hypercall, median:")
    for label, value in rows:
        shown = f"{value / 1000:8.1f} us" if isinstance(value, float | int) else value
        print(f"  {label:<42s} {shown}")


if __name__ == "__main__":
    main()

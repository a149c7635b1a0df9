"""Measuring for the benchmark scripts: ratios taken in one run, medians of repeats,
children with a time limit, and instruction counts under valgrind.

The machine may be shared, so a speed is never reported alone: each number stands next to
a reference measured in the same run, and ratios are taken repeat by repeat (the two sides
interleaved) before the median is taken.
"""

from __future__ import annotations

import gc
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Any


def per_call_ns(fn: Callable[[], Any], iterations: int) -> float:
    """Nanoseconds per call of ``fn``, over one batch of ``iterations`` calls."""
    start = time.perf_counter_ns()
    for _ in range(iterations):
        fn()
    return (time.perf_counter_ns() - start) / iterations


def compare(
    candidates: dict[str, Callable[[], Any]],
    reference: Callable[[], Any],
    *,
    iterations: int,
    repeats: int,
) -> dict[str, tuple[float, float]]:
    """For each candidate: (median ns per call, median of its per-repeat ratio to the
    reference). Every repeat measures the reference and all candidates back to back."""
    for fn in (reference, *candidates.values()):  # warm up: first-use costs are not the rate
        per_call_ns(fn, min(iterations, 200))
    times: dict[str, list[float]] = {name: [] for name in candidates}
    ratios: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        ref = per_call_ns(reference, iterations)
        for name, fn in candidates.items():
            ns = per_call_ns(fn, iterations)
            times[name].append(ns)
            ratios[name].append(ns / ref)
        times.setdefault("reference", []).append(ref)
    out = {
        name: (statistics.median(times[name]), statistics.median(ratios[name]))
        for name in candidates
    }
    out["reference"] = (statistics.median(times["reference"]), 1.0)
    return out


def seconds(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def cpu_seconds(fn: Callable[[], Any]) -> tuple[Any, float]:
    """The calling process's CPU time (all threads) spent in ``fn``."""
    start = time.process_time()
    result = fn()
    return result, time.process_time() - start


def traced_peak(fn: Callable[[], Any]) -> tuple[Any, int]:
    """Run ``fn`` under tracemalloc: its result and the peak of Python allocations."""
    gc.collect()
    tracemalloc.start()
    try:
        result = fn()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return result, peak


def child(
    script: str, argv: Sequence[str], timeout: float, env: dict[str, str] | None = None
) -> Any:
    """Run ``script --child ARGV`` in a fresh interpreter; the JSON it prints last, or None
    if it did not finish within ``timeout`` seconds."""
    try:
        out = subprocess.run(
            [sys.executable, script, "--child", *argv],
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        ).stdout
    except subprocess.TimeoutExpired:
        return None
    return json.loads(out.strip().splitlines()[-1])


def emit(result: Any) -> None:
    """A child's answer to :func:`child`."""
    print(json.dumps(result))


def instructions(argv: Callable[[int], list[str]], n: int) -> float | None:
    """Instructions per iteration of a loop: ``argv(n)`` runs n iterations; valgrind counts
    runs of n and 2n, and the difference cancels start-up. None without valgrind."""
    if shutil.which("valgrind") is None:
        return None
    counts = []
    for iterations in (n, 2 * n):
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv(iterations)],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
        match = re.search(r"refs:\s+([\d,]+)", done.stderr)
        if match is None:
            return None
        counts.append(int(match.group(1).replace(",", "")))
    return (counts[1] - counts[0]) / n


def row(label: str, value: str, reference: str = "", width: int = 58) -> str:
    return f"  {label:<{width}} {value:>16}   {reference}"


def ms(s: float) -> str:
    return f"{s * 1000:.1f} ms"


def mib(n_bytes: float) -> str:
    return f"{n_bytes / (1 << 20):.1f} MiB"


def size(n_bytes: float) -> str:
    """MiB, or KiB below one MiB (a saved state may be either)."""
    return mib(n_bytes) if n_bytes >= 1 << 20 else f"{n_bytes / 1024:.1f} KiB"

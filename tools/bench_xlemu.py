"""Benchmark the ``xlemu`` command line as a user meets it: the wall time of ``xlemu info``
next to a bare ``python -c pass`` (the interpreter's own start-up) in the same run, and of
``xlemu create`` for a 64 GiB HVM guest on a 2 x 64 GiB host."""

# Run from the repository root after ``pip install -e .``: python tools/bench_xlemu.py
# Every command is a real subprocess on a warmed state file in a temporary directory; each
# line is the median of --runs runs (interleaved, so both sides see the same machine load).
# It prints numbers and asserts nothing about speed.

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_SCRIPT = Path(sys.executable).with_name("xlemu")
XLEMU = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "xlemu"]
BIG = 'name = "big"\ntype = "hvm"\nmemory = 65536\nvcpus = 4\n'  # 64 GiB


def wall(argv: list[str], env: dict[str, str]) -> float:
    """Seconds for one run of ``argv``; it must succeed."""
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def line(label: str, times: list[float]) -> str:
    ms = [t * 1000 for t in times]
    return (
        f"{label:<44s} median {statistics.median(ms):7.1f} ms   "
        f"min {min(ms):7.1f}   max {max(ms):7.1f}   ({len(ms)} runs)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10, help="runs per command (default 10)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-xlemu-") as tmp:
        d = Path(tmp)
        state = d / "host.json"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("XLEMU_", "XENEMU_"))},
            "XLEMU_STATE": str(state),
            "XL_GLOBAL_CONFIG": str(d / "xl.conf"),  # none: xl's default claim_mode=1
        }
        init = ["host", "init", "--nodes", "2", "--node-memory", "65536"]
        subprocess.run([*XLEMU, *init], env=env, check=True, stdout=subprocess.DEVNULL)
        (d / "big.cfg").write_text(BIG, encoding="utf-8")
        fresh = d / "fresh.json"
        shutil.copy(state, fresh)
        for _ in range(2):  # warm the page cache and the interpreter's bytecode caches
            wall([*XLEMU, "info"], env)
            wall([sys.executable, "-c", "pass"], env)

        bare, imports, info = [], [], []
        for _ in range(args.runs):
            bare.append(wall([sys.executable, "-c", "pass"], env))
            imports.append(wall([sys.executable, "-c", "import xlemu.cli"], env))
            info.append(wall([*XLEMU, "info"], env))

        create = []
        for _ in range(max(3, args.runs // 2)):
            shutil.copy(fresh, state)  # the same host every time
            create.append(wall([*XLEMU, "create", "-q", str(d / "big.cfg")], env))
        listing = subprocess.run(
            [*XLEMU, "list", "big"], env=env, check=True, capture_output=True, text=True
        ).stdout

    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    print(line("python -c pass", bare))
    print(line("python -c 'import xlemu.cli'", imports))
    print(line("xlemu info", info))
    print(line("xlemu create (HVM 64 GiB on 2 x 64 GiB)", create))
    overhead = statistics.median(info) - statistics.median(bare)
    print(f"xlemu info beyond the interpreter's start-up: {overhead * 1000:.1f} ms")
    print(listing.rstrip())


if __name__ == "__main__":
    main()

"""Benchmark the ``xlemu`` command line as a user meets it, each command a real process.

Rows of the issue's table: ``xlemu info`` cold next to ``python -c "import click"`` (the
reference: the interpreter and the CLI library alone), and ``xlemu list`` with a 200 GiB
PV guest on the host (2 MiB extents from meminit_pv, from the two nodes in turn: ~100 000
runs in the physmap) next to ``xlemu list`` of the same host without the guest.
Also ``python -c pass``, importing ``xlemu.cli``, ``xlemu list`` and ``xlemu claims`` on the
small host (each next to ``import click`` too), and creating a 64 GiB HVM guest.

Each line is the median of --runs runs, the commands interleaved so that all see the same
machine load; the ratio is taken run by run. Bytecode is compiled first (an editable
install does not compile it, and PYTHONDONTWRITEBYTECODE may keep the interpreter from
caching it), so "cold" means a new process, not a new checkout.

Run from the repository root:  python tools/bench_xlemu.py [--runs 15]
``--tree DIR`` measures another checkout of the project instead (``python -m xlemu`` with
that tree first on PYTHONPATH). It prints numbers and asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import compileall
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIG = 'name = "big"\ntype = "hvm"\nmemory = 65536\nvcpus = 4\n'  # 64 GiB
PACKAGES = ("hypervisor_model", "xenctrl", "xenguest", "xlemu", "xenhost")
PACKAGE_DIRS = "*" + " + ".join(f"{p}.__path__" for p in PACKAGES)  # each package's directory
PV = 'name = "pv200"\ntype = "pv"\nmemory = 204800\nvcpus = 4\n'  # 200 GiB


def wall(argv: list[str], env: dict[str, str]) -> float:
    """Seconds for one run of ``argv`` in the state's directory; it must succeed."""
    start = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, cwd=env["BENCH_DIR"])
    return time.perf_counter() - start


def instructions(argv: list[str], env: dict[str, str]) -> int | None:
    """Instructions one run of ``argv`` executes (valgrind): the machine's load does not
    change them. None without valgrind."""
    if shutil.which("valgrind") is None:
        return None
    done = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
        env=env,
        cwd=env["BENCH_DIR"],
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"refs:\s+([\d,]+)", done.stderr)
    return int(match.group(1).replace(",", "")) if match else None


def line(label: str, times: list[float], note: str = "") -> str:
    ms = [t * 1000 for t in times]
    return (
        f"  {label:<46s} median {statistics.median(ms):7.1f} ms  "
        f"(min {min(ms):.1f}, max {max(ms):.1f}, {len(ms)} runs){note}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per command (default 15)")
    parser.add_argument("--tree", type=Path, help="measure this checkout instead")
    parser.add_argument("--no-pv", action="store_true", help="skip the 200 GiB PV guest")
    parser.add_argument("--instructions", action="store_true", help="also count instructions")
    args = parser.parse_args()
    tree = (args.tree or ROOT).resolve()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("XLEMU_", "XENEMU_"))}
    if args.tree:
        base_env["PYTHONPATH"] = os.pathsep.join([str(tree), str(tree / "tools")])
        xlemu = [sys.executable, "-m", "xlemu"]
    else:
        script = Path(sys.executable).with_name("xlemu")
        xlemu = [str(script)] if script.exists() else [sys.executable, "-m", "xlemu"]
    # Compile where the packages are imported from (an editable install may link them from
    # a directory of its own), with the environment the commands will have.
    where = subprocess.run(
        [sys.executable, "-c", f"import {', '.join(PACKAGES)}; print({PACKAGE_DIRS})"],
        env=base_env,
        cwd=tempfile.gettempdir(),
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for directory in where:
        compileall.compile_dir(directory, quiet=1)

    with tempfile.TemporaryDirectory(prefix="bench-xlemu-") as tmp:
        d = Path(tmp)
        env = {
            **base_env,
            "XLEMU_STATE": str(d / "host.json"),
            "XL_GLOBAL_CONFIG": str(d / "xl.conf"),
            "BENCH_DIR": tmp,  # the working directory: `python -m` puts it on sys.path
        }
        wall([*xlemu, "host", "init", "--nodes", "2", "--node-memory", "65536"], env)
        (d / "big.cfg").write_text(BIG, encoding="utf-8")
        fresh = d / "fresh.json"
        shutil.copy(d / "host.json", fresh)
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            'python -c "import click"': [sys.executable, "-c", "import click"],
            "python -c 'import xlemu.cli'": [sys.executable, "-c", "import xlemu.cli"],
            "xlemu info": [*xlemu, "info"],
            "xlemu list": [*xlemu, "list"],
            "xlemu claims": [*xlemu, "claims"],
        }
        for argv in commands.values():  # warm the page cache
            wall(argv, env)
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.runs):
            for name, argv in commands.items():
                times[name].append(wall(argv, env))
        counts = {}
        if args.instructions:
            counts = {name: instructions(argv, env) for name, argv in commands.items()}
        create = []
        for _ in range(max(3, args.runs // 3)):
            shutil.copy(fresh, d / "host.json")  # the same host every time
            create.append(wall([*xlemu, "create", "-q", str(d / "big.cfg")], env))

        pv_times: list[float] = []
        empty_times: list[float] = []
        pv_state = 0
        pv_create = 0.0
        if not args.no_pv:
            pv_env = {**env, "XLEMU_STATE": str(d / "pv.json")}
            empty_env = {**env, "XLEMU_STATE": str(d / "empty.json")}
            wall([*xlemu, "host", "init", "--nodes", "2", "--node-memory", str(128 * 1024)], pv_env)
            shutil.copy(d / "pv.json", d / "empty.json")
            (d / "pv.cfg").write_text(PV, encoding="utf-8")
            pv_create = wall([*xlemu, "create", "-q", str(d / "pv.cfg")], pv_env)
            pv_state = (d / "pv.json").stat().st_size
            for _ in range(max(3, args.runs // 3)):  # interleaved with the reference
                pv_times.append(wall([*xlemu, "list"], pv_env))
                empty_times.append(wall([*xlemu, "list"], empty_env))
            if args.instructions:
                counts["xlemu list, a 200 GiB PV guest on the host"] = instructions(
                    [*xlemu, "list"], pv_env
                )

    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"  measuring {tree}")
    click_times = times['python -c "import click"']
    for name, measured in times.items():
        note = ""
        if name.startswith("xlemu "):  # the goal: `xlemu info` within 2 x import click
            ratios = [t / c for t, c in zip(measured, click_times, strict=True)]
            note = f"   {statistics.median(ratios):.1f} x import click"
        print(line(name, measured, note))
    print(line("xlemu create (HVM 64 GiB on 2 x 64 GiB)", create))
    if pv_times:
        note = f"   state {pv_state / 1024:.0f} KiB; create took {pv_create:.1f} s"
        print(line("xlemu list, a 200 GiB PV guest on the host", pv_times, note))
        ratios = [p / e for p, e in zip(pv_times, empty_times, strict=True)]
        note = f"   the guest costs {statistics.median(ratios):.2f} x"
        print(line("xlemu list, the same host without the guest", empty_times, note))
    click = counts.get('python -c "import click"')
    if click:
        print("  instructions (valgrind), one run each:")
        for name, count in counts.items():
            ratio = f"{count / click:5.2f} x import click" if count else ""
            print(f"  {name:<46s} {count or 0:>15,}   {ratio}")


if __name__ == "__main__":
    main()

"""The installed ``xlemu`` as a real process: a new user's first session, many processes on
one state file at once (the lock: no lost update), and SIGKILL at any moment (the atomic
write: the old state or the new one, never a torn one, and the lock dies with the process).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from xenhost.xenstore import XsHandle
from xlemu.state import read_state

_SCRIPT = Path(sys.executable).with_name("xlemu")
XLEMU = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "xlemu"]
TIMEOUT = 30  # seconds; a hung lock fails the test instead of hanging the suite

HEADER = "Name                                        ID   Mem VCPUs\tState\tTime(s)"
DOM0_DEFAULT = "Domain-0                                     0  1024     8     r-----       0.0"


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A clean environment: no state or xl.conf from the person running the tests."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XLEMU_", "XL_", "XENEMU_"))}
    return {**env, "HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state"), **extra}


def xlemu(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*XLEMU, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT
    )


def names_in(state: Path) -> set[str]:
    """The domain names of a state file, after loading it with its invariants checked."""
    hv, store = read_state(state)
    hv.check_invariants()
    domids = {info.domain_id for info in hv.domain_list()}
    with XsHandle.local(store) as xs:
        assert {int(d) for d in xs.directory("/local/domain")} == domids
        return {xs.read(f"/local/domain/{d}/name").decode() for d in domids - {0}}


def test_first_session(tmp_path: Path) -> None:
    """info, create, list, claims, destroy, list on the default host a first command boots
    (2 x 16 GiB, dom0 1 GiB), its state under $XDG_STATE_HOME/xlemu/host.json."""
    env = environment(tmp_path)
    state = tmp_path / "state" / "xlemu" / "host.json"
    info = xlemu(env, "info")
    notice = (
        "xlemu: no host yet: booted the default host (2 nodes x 16384 MiB, dom0 1024 MiB) "
        f"in {state}\n"
    )
    assert (info.returncode, info.stderr) == (0, notice)
    # total 2 * 4194304 pages // 256 = 32768; free (8388608 - 262144 dom0 - 1 MFN 0 - 2
    # dom0's structure and shared info - 4 node 1's heap metadata) // 256 = 8126457 // 256
    # = 31743
    assert "total_memory           : 32768\n" in info.stdout
    assert "free_memory            : 31743\n" in info.stdout
    assert state.exists()
    assert xlemu(env, "info").stderr == ""  # said once

    (tmp_path / "vm1.cfg").write_text('name = "vm1"\ntype = "hvm"\nmemory = 4096\nvcpus = 2\n')
    run = xlemu(env, "create", "vm1.cfg", cwd=tmp_path)
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "Parsing config from vm1.cfg\n")

    # vm1: (4096 - 8) MiB = 1046528 pages - 32 VGA hole + 16 special + 2048 video RAM
    # (QEMU's) = 1048560 -> 4095 MiB
    vm1 = "vm1                                          1  4095     2     -b----       0.0"
    run = xlemu(env, "list")
    assert (run.returncode, run.stdout, run.stderr) == (0, f"{HEADER}\n{DOM0_DEFAULT}\n{vm1}\n", "")
    run = xlemu(env, "claims")  # legacy claims are released at the end of the build
    assert run.stdout == f"{HEADER}  Claimed\n{DOM0_DEFAULT}     0\n{vm1}     0\n"

    run = xlemu(env, "destroy", "vm1")
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")
    run = xlemu(env, "list")
    assert (run.returncode, run.stdout) == (0, f"{HEADER}\n{DOM0_DEFAULT}\n")
    assert xlemu(env, "info", "free_memory").stdout == "31743\n"


def test_parallel_creates_lose_no_update(tmp_path: Path) -> None:
    """8 creates at once on 2 x 4096 MiB (dom0 512): free 1048575 + 917504 = 1966079 pages
    hold 7 PV guests of 262144 pages (1835008); the 8th finds 131071 left and its claim is
    refused (exit 3). Afterwards exactly the 7 admitted are listed: the lock serializes."""
    env = environment(tmp_path, XLEMU_STATE=str(tmp_path / "host.json"))
    init = xlemu(
        env, "host", "init", "--nodes", "2", "--node-memory", "4096", "--dom0-memory", "512"
    )
    assert init.returncode == 0
    procs = {}
    for i in range(8):
        cfg = tmp_path / f"g{i}.cfg"
        cfg.write_text(f'name = "g{i}"\nmemory = 1024\n')
        procs[f"g{i}"] = subprocess.Popen(
            [*XLEMU, "create", "-q", str(cfg)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    results = {name: (p.wait(TIMEOUT), *p.communicate()) for name, p in procs.items()}
    admitted = {name for name, (code, _, _) in results.items() if code == 0}
    refused = {name: err for name, (code, _, err) in results.items() if code != 0}
    assert len(admitted) == 7
    [(name, err)] = refused.items()
    assert results[name][0] == 3
    assert err.startswith("libxl: error: Domain ") and err.count("\n") == 1, err

    listed = xlemu(env, "list").stdout.splitlines()[2:]
    assert {row.split()[0] for row in listed} == admitted
    assert {row.split()[2] for row in listed} == {"1024"}
    assert names_in(tmp_path / "host.json") == admitted
    # (1966079 - 7 * 262144) // 256 = 131071 // 256 = 511
    assert xlemu(env, "info", "free_memory").stdout == "511\n"


@pytest.fixture
def small_host(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """2 x 2048 MiB with one 64 MiB guest "a"; the environment and the state file."""
    state = tmp_path / "host.json"
    env = environment(tmp_path, XLEMU_STATE=str(state))
    assert xlemu(env, "host", "init", "--nodes", "2", "--node-memory", "2048").returncode == 0
    (tmp_path / "a.cfg").write_text('name = "a"\nmemory = 64\n')
    assert xlemu(env, "create", "-q", str(tmp_path / "a.cfg")).returncode == 0
    return env, state


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_kill_between_write_and_rename_keeps_the_old_state(
    small_host: tuple[dict[str, str], Path], tmp_path: Path
) -> None:
    """SIGKILL after the new state is complete in its temporary file but before the rename
    (XLEMU_TEST_SLOW_WRITE holds the command there): the old state, byte for byte; the lock
    is free; the leftover temporary files harm nothing, and the next writer removes them."""
    env, state = small_host
    before = state.read_bytes()
    (tmp_path / "b.cfg").write_text('name = "b"\nmemory = 64\n')
    proc = subprocess.Popen(
        [*XLEMU, "create", "-q", str(tmp_path / "b.cfg")],
        env={**env, "XLEMU_TEST_SLOW_WRITE": str(TIMEOUT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    tmp = state.with_name(f".{state.name}.{proc.pid}.tmp")

    def complete() -> bool:
        try:
            return "b" in json.dumps(json.loads(tmp.read_text())["xenstore"])
        except (OSError, ValueError):
            return False

    _wait_for(complete, "the new state in the temporary file")
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(TIMEOUT) == -signal.SIGKILL

    assert state.read_bytes() == before
    assert tmp.exists()
    run = xlemu(env, "list")
    assert run.returncode == 0 and [r.split()[0] for r in run.stdout.splitlines()[1:]] == [
        "Domain-0",
        "a",
    ]
    assert names_in(state) == {"a"}

    (tmp_path / ".host.json.99999.tmp").write_text("garbage{")  # another crash's leftover
    assert xlemu(env, "list").returncode == 0  # a reader leaves them: it writes nothing
    assert tmp.exists()
    assert xlemu(env, "create", "-q", str(tmp_path / "b.cfg")).returncode == 0
    assert names_in(state) == {"a", "b"}
    # the next writer, holding the lock, knew no other writer could be running
    assert sorted(p.name for p in tmp_path.glob(".host.json.*")) == []


@pytest.mark.parametrize("seed", [0, 1])
def test_kill_at_any_moment_leaves_old_or_new_state(
    small_host: tuple[dict[str, str], Path], tmp_path: Path, seed: int
) -> None:
    """SIGKILL a create or a storm after 0.05 ... 0.6 s (start-up, lock, load, build, write):
    the state then loads with every invariant holding and is the old one or the new one."""
    env, state = small_host
    names = {"a"}
    # start-up takes ~0.1 s here: most kills land in the import, load, build and write
    delays = [0.05, 0.1, 0.13, 0.16, 0.19, 0.3] if seed == 0 else [0.085, 0.115, 0.145, 0.175, 0.6]
    for i, delay in enumerate(delays):
        if i % 2 == seed:
            cfg = tmp_path / f"k{i}.cfg"
            cfg.write_text(f'name = "k{i}"\nmemory = 64\n')
            args, new = ["create", "-q", str(cfg)], {f"k{i}"}
        else:
            cfg = tmp_path / f"s{i}.cfg"
            cfg.write_text(f'name = "s{i}"\nmemory = 32\n')
            args, new = ["storm", "3", str(cfg)], {f"s{i}-1", f"s{i}-2", f"s{i}-3"}
        proc = subprocess.Popen([*XLEMU, *args], env=env, stdout=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(TIMEOUT)
        now = names_in(state)
        assert now in (names, names | new), (delay, args, now)
        names = now
    run = xlemu(env, "list")
    assert run.returncode == 0
    assert {row.split()[0] for row in run.stdout.splitlines()[2:]} == names

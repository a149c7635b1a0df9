"""``xlemu serve``, ``xlemu exec`` and ``xlemu storm --processes`` as a user runs them: while a
server holds a state file every command goes through it and loses no update; the state on
disk follows (saved after changes and on exit, crash-safe); a killed server's advertisement
is stale and harmless; ``exec`` runs a C program against the host, starting a server for the
run when none holds it, and exits with the program's status.

Host: ``host init --nodes 2 --node-memory 4096 --dom0-memory 512``: 2097145 free pages at
boot (MFN 0 is kept; dom0's structure and shared info and node 1's 4 pages of heap metadata
are Xen's), less dom0's 131072 = 1966073; a PV guest of 256 MiB takes 65536 and costs Xen 2
pages, an HVM domain costs it 258 (with its HAP pool).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from host_helpers import BUILDER, TIMEOUT, XLEMU, environment, run_bridged, xlemu, xlemu_here
from xenhost.xenstore import XsHandle
from xlemu.served import advert_path, served_by
from xlemu.state import read_state

from hypervisor_model.public.domctl import XEN_DOMCTL_INTERFACE_VERSION

Env = dict[str, str]


@pytest.fixture
def host(short_dir: Path) -> tuple[Env, Path]:
    state = short_dir / "host.json"
    env = environment(short_dir, state)
    init = "host init --nodes 2 --node-memory 4096 --dom0-memory 512"
    assert xlemu_here(state, *init.split())[0] == 0
    for name in "abcdefg":
        (short_dir / f"{name}.cfg").write_text(f'name = "{name}"\nmemory = 256\n')
    return env, state


@contextmanager
def served(env: Env) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """``xlemu serve`` running; its process and socket. Ended with SIGTERM if still alive."""
    proc = subprocess.Popen(
        [*XLEMU, "serve"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.startswith("serving "), proc.communicate()
    socket = Path(line.split(" on ", 1)[1].split(", xenstore on ", 1)[0])
    try:
        yield proc, socket
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(TIMEOUT)


def saved_names(state: Path) -> dict[int, str]:
    """The saved state, loaded with every invariant checked: each domain's name in its
    xenstore ("" for one no toolstack named)."""
    hv, store = read_state(state)
    hv.check_invariants()
    with XsHandle.local(store) as xs:
        return {
            d.domain_id: (xs.try_read(f"/local/domain/{d.domain_id}/name") or b"").decode()
            for d in hv.domain_list()
        }


def test_commands_and_clients_at_once_through_the_server(host: tuple[Env, Path]) -> None:
    """Under ``xlemu serve``: four ``xlemu create`` and two Python builder processes (two
    domains of 1024 pages each) at once. All eight domains exist, the four created by xlemu
    with their names; free memory (1966073 - 4 * (65536 + 2) - 4 * (1024 + 258)) // 256 =
    6635 MiB; after
    SIGTERM the server exits 0, saved, and leaves no advertisement or socket."""
    env, state = host
    with served(env) as (server, socket):
        creates = [
            subprocess.Popen([*XLEMU, "create", "-q", str(state.with_name(f"{n}.cfg"))], env=env)
            for n in "abcd"
        ]
        builders = [
            subprocess.Popen([sys.executable, "-c", BUILDER, str(socket), "1", "2"])
            for _ in range(2)
        ]
        assert [p.wait(TIMEOUT) for p in creates + builders] == [0] * 6
        listed = xlemu(env, "list").stdout.splitlines()[1:]
        assert sorted(row.split()[0] for row in listed) == ["(null)"] * 4 + [
            "Domain-0",
            *"abcd",
        ]
        assert xlemu(env, "info", "free_memory").stdout == "6635\n"
        server.send_signal(signal.SIGTERM)
        assert server.wait(TIMEOUT) == 0
    names = saved_names(state)
    assert len(names) == 9
    assert sorted(n for n in names.values() if n) == ["Domain-0", "a", "b", "c", "d"]
    assert not advert_path(state).exists() and not socket.exists()


def test_the_server_saves_changes_without_being_asked(host: tuple[Env, Path]) -> None:
    """A Python client's domains reach the state file within about a second (the save
    interval), with no command asking; then SIGKILL: the saved state loads whole."""
    env, state = host
    with served(env) as (server, socket):
        builder = subprocess.run(
            [sys.executable, "-c", BUILDER, str(socket), "0", "1"], timeout=TIMEOUT
        )
        assert builder.returncode == 0
        deadline = time.monotonic() + TIMEOUT
        while len(saved_names(state)) < 2:
            assert time.monotonic() < deadline, "the server never saved the new domain"
            time.sleep(0.05)
        server.send_signal(signal.SIGKILL)
        server.wait(TIMEOUT)
    assert list(saved_names(state)) == [0, 1]


def test_a_killed_servers_advertisement_is_stale(host: tuple[Env, Path]) -> None:
    """SIGKILL leaves the advertisement and the socket file: commands then work on the file
    itself (what the create saved is there), and a new server takes over both."""
    env, state = host
    with served(env) as (server, _):
        assert xlemu_here(state, "create", "-q", str(state.with_name("a.cfg")))[0] == 0
        server.send_signal(signal.SIGKILL)
        server.wait(TIMEOUT)
    assert advert_path(state).exists()
    assert xlemu_here(state, "create", "-q", str(state.with_name("b.cfg")))[0] == 0
    assert sorted(saved_names(state).values()) == ["Domain-0", "a", "b"]
    with served(env):
        listed = xlemu_here(state, "list")[1].splitlines()[1:]
        assert [row.split()[0] for row in listed] == ["Domain-0", "a", "b"]


def test_one_server_per_state_and_no_new_host_under_it(host: tuple[Env, Path]) -> None:
    env, state = host
    with served(env) as (server, socket):
        again = xlemu(env, "serve")
        assert (again.returncode, again.stderr) == (
            1,
            f"xlemu: {state}: already served by pid {server.pid} at {socket}\n",
        )
        init = xlemu(env, "host", "init")
        assert (init.returncode, init.stderr) == (
            1,
            f"xlemu: {state}: held by the host server at {socket} (pid {server.pid});"
            " stop it first\n",
        )


def test_exec_exits_with_the_programs_status(host: tuple[Env, Path], bridge_library: Path) -> None:
    """With no server, exec serves the host for the run only; 7 comes back as 7, a missing
    program as 127 with one line."""
    env, state = host
    assert xlemu(env, "exec", "--", "sh", "-c", "exit 7").returncode == 7
    missing = xlemu(env, "exec", "--", str(state.with_name("nope")))
    assert (missing.returncode, missing.stderr) == (
        127,
        f"xlemu: exec: {state.with_name('nope')}: not found\n",
    )
    assert not advert_path(state).exists()


def test_exec_runs_a_c_program_against_the_host(
    host: tuple[Env, Path], c_program: Callable[[str], Path]
) -> None:
    """A claim set staked by a C program under exec (a server started for the run) is in
    the state afterwards: domain "a" (PV, 256 MiB, max raised to 1 GiB) claims 2560 pages
    on node 0 and 512 anywhere: 3072 pages = 12 MiB, 10 on node 0 and 2 host-wide."""
    env, state = host
    assert xlemu_here(state, "create", "-q", str(state.with_name("a.cfg")))[0] == 0
    assert xlemu_here(state, "mem-max", "a", "1G")[0] == 0
    version = hex(XEN_DOMCTL_INTERFACE_VERSION)
    claim = [str(c_program("claim_set")), version, "1", "0=2560", "0x80000000=512"]
    run = xlemu(env, "exec", "--", *claim)
    assert (run.returncode, run.stdout.splitlines()[0], run.stderr) == (0, "set 0", "")
    rows = xlemu_here(state, "claims", "--nodes")[1].splitlines()
    assert rows[2].split() == ["a", "1", "2", "10", "0"]
    with served(env) as (_, socket):  # under a server, exec uses it
        run = run_bridged(c_program("privcmd_probe"), socket=socket)
        assert run.returncode == 0 and "child 0 -unstable" in run.stdout


def test_storm_with_a_process_per_builder(short_dir: Path) -> None:
    """Each builder a process of its own, on a server started for the run: three 2 GiB
    guests pinned to node 1 (5120 MiB = 1310720 pages, no dom0 memory) under NUMA claims:
    two claims of 524288-odd pages fit, the third finds too little unclaimed and is refused
    before it populates anything."""
    state = short_dir / "numa.json"
    init = "host init --nodes 2 --node-memory 5120 --dom0-memory 0"
    assert xlemu_here(state, *init.split())[0] == 0
    cfg = short_dir / "pinned.cfg"
    cfg.write_text(
        'name = "pinned"\ntype = "hvm"\nmemory = 2048\n'
        'vnuma = [ ["pnode=1", "size=2048", "vcpus=0"] ]\n'
    )
    run = xlemu(
        environment(short_dir, state), "storm", "3", str(cfg), "--claim-mode", "numa", "--processes"
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == (
        "claim mode numa: 2 admitted, 1 refused at claim time, 0 failed part-way"
    )
    assert len([n for n in saved_names(state).values() if n.startswith("pinned-")]) == 2


def test_a_storm_on_a_served_host_runs_free(host: tuple[Env, Path]) -> None:
    """Builder threads whose hypercalls a server runs interleave as its threads are
    scheduled: no seed orders them, so one is refused and none reported; the storm runs."""
    env, state = host
    cfg = str(state.with_name("a.cfg"))
    with served(env):
        refused = xlemu(env, "storm", "2", cfg, "--seed", "1")
        assert (refused.returncode, refused.stdout, refused.stderr) == (
            1,
            "",
            "xlemu: storm: --seed orders builder threads on a host in this process; "
            "a server holds this one\n",
        )
        run = xlemu(env, "storm", "2", cfg)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == (
        "claim mode legacy: 2 admitted, 0 refused at claim time, 0 failed part-way"
    )


def test_the_xenstore_is_served_beside_the_host(
    host: tuple[Env, Path], bridge_library: Path
) -> None:
    """The server holds the xenstore too: a name written by another xenstore client is
    what ``xlemu list`` shows and reaches the state file with no hypercall (the store
    changed: within about a second); a program under exec finds it at $XENSTORED_PATH."""
    env, state = host
    assert xlemu_here(state, "create", "-q", str(state.with_name("a.cfg")))[0] == 0
    with served(env) as (server, _):
        advert = served_by(state)
        assert advert is not None and advert.pid == server.pid
        with XsHandle.open(str(advert.xenstore)) as xs:
            assert xs.read("/local/domain/1/name") == b"a"
            xs.write("/local/domain/1/name", "renamed")
        assert xlemu_here(state, "list")[1].splitlines()[2].split()[0] == "renamed"
        deadline = time.monotonic() + TIMEOUT
        while saved_names(state)[1] != "renamed":
            assert time.monotonic() < deadline, "the server never saved the xenstore"
            time.sleep(0.05)
        run = xlemu(env, "exec", "--", "sh", "-c", 'echo "$XENSTORED_PATH"')
        assert run.stdout == f"{advert.xenstore}\n"
        if Path("/usr/bin/xenstore-read").exists():  # Debian's libxenstore, through $XENSTORED_PATH
            run = xlemu(env, "exec", "--", "xenstore-read", "/local/domain/0/name")
            assert (run.returncode, run.stdout) == (0, "Domain-0\n")

"""Debian's ``xl`` (xen-utils-4.17, run through ``xlemu exec``) and ``xlemu`` on one 4.17 host
held by a host server: the same host seen by both prints the same, line for line, except
lines that differ for a reason named here:

* ``host``, ``release``, ``version`` (``info``): xl reports the uname(2) of the machine it
  runs on, xlemu the emulated dom0's.
* ``uptime``: the two commands run a moment apart; the times may differ by that moment.
* libxl's error lines carry libxl's FILE:LINE:FUNC, which xlemu's leave out.

Host: ``host init --xen 4.17 --nodes 2 --node-memory 4096 --dom0-memory 512`` with an HVM
guest "web" (512 MiB, 2 vCPUs) and a PV guest "db" (256 MiB) made by ``xlemu create``.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from host_helpers import environment, need, xlemu, xlemu_here
from xlemu.serving import serving
from xlemu.state import StateFile

XL = Path("/usr/lib/xen-4.17/bin/xl")  # /usr/sbin/xl is a wrapper that needs /sys/hypervisor
UNAME_FIELDS = ("host ", "release ", "version ")
COMMANDS = [
    "info",
    "info -n",
    "list",
    "list -n",
    "claims",
    "vcpu-list",
    "vcpu-list web",
    "cpupool-list",
    "cpupool-list -c",
]
GUESTS = {
    "web": 'name = "web"\ntype = "hvm"\nmemory = 512\nvcpus = 2\n',
    "db": 'name = "db"\nmemory = 256\n',
}
Env = dict[str, str]


class Host:
    """The host's state file and the environment of a program run against it."""

    def __init__(self, directory: Path) -> None:
        self.state = directory / "host.json"
        self.env = environment(directory, self.state)
        self.dir = directory

    def xlemu(self, command: str) -> tuple[int, str]:
        code, out, _ = xlemu_here(self.state, *command.split())
        return code, out

    def xl(self, *commands: str) -> dict[str, tuple[int, str]]:
        """Each command's exit code and stdout from Debian's xl, all in one ``xlemu exec``."""
        script = "".join(f'{XL} {c}; echo "@@ $?"\n' for c in commands)
        run = xlemu(self.env, "exec", "--", "sh", "-c", script)
        assert run.returncode == 0, run.stderr
        parts = re.split(r"^@@ (\d+)\n", run.stdout, flags=re.M)
        return {
            c: (int(code), out)
            for c, out, code in zip(commands, parts[:-1:2], parts[1::2], strict=True)
        }

    def create(self, name: str, config: str) -> None:
        (self.dir / f"{name}.cfg").write_text(config)
        code, _, err = xlemu_here(self.state, "create", "-q", str(self.dir / f"{name}.cfg"))
        assert code == 0, err


@pytest.fixture(scope="module")
def host(bridge_library: Path) -> Iterator[Host]:
    """The host, held by a server in this process for the module: xl (through exec, in a
    process of its own) and xlemu both reach it there."""
    if not XL.exists():
        need("xl")
    with tempfile.TemporaryDirectory(prefix="xenhost-xl-") as d:
        h = Host(Path(d))
        init = "host init --xen 4.17 --nodes 2 --node-memory 4096 --dom0-memory 512"
        assert xlemu_here(h.state, *init.split())[0] == 0
        for name, config in GUESTS.items():
            h.create(name, config)
        with serving(StateFile(h.state)):
            yield h


def without_uname(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith(UNAME_FIELDS)]


@pytest.fixture(scope="module")
def both(host: Host) -> dict[str, tuple[tuple[int, str], tuple[int, str]]]:
    """Every command's (exit code, stdout) from xl and from xlemu, xl first."""
    from_xl = host.xl(*COMMANDS)
    return {c: (from_xl[c], host.xlemu(c)) for c in COMMANDS}


@pytest.mark.parametrize("command", COMMANDS)
def test_xl_and_xlemu_print_the_same(both: dict, command: str) -> None:
    (xl_code, xl_out), (xlemu_code, xlemu_out) = both[command]
    assert xl_code == 0
    assert (xl_code, without_uname(xl_out)) == (xlemu_code, without_uname(xlemu_out))


def test_what_they_agree_on(both: dict) -> None:
    """The agreement is about this host: 8 CPUs in Pool-0 under credit2 with dom0 and the
    two guests; web's two vCPUs may run anywhere; 2 x 4096 MiB."""
    (_, pools), _ = both["cpupool-list"]
    assert pools.splitlines()[1].split() == ["Pool-0", "8", "credit2", "y", "3"]
    (_, vcpus), _ = both["vcpu-list web"]
    assert [row.split()[:3] for row in vcpus.splitlines()[1:]] == [
        ["web", "1", "0"],
        ["web", "1", "1"],
    ]
    assert all(row.endswith("all / all") for row in vcpus.splitlines()[1:])
    (_, info), _ = both["info"]
    assert "total_memory           : 8192" in info.splitlines()


def test_debug_keys_u_and_dmesg_from_either(host: Host) -> None:
    """``debug-keys u`` from xl, then from xlemu, writes Xen's NUMA dump to the console and
    prints nothing; ``dmesg`` from either then reads the same console: the boot lines and
    each dump so far, with dom0's 131072 pages (512 MiB)."""
    first = host.xl("debug-keys u", "dmesg")
    second_keys = host.xlemu("debug-keys u")
    second = host.xl("dmesg")["dmesg"]
    assert first["debug-keys u"] == second_keys == (0, "")
    for dumps, dmesg in ((1, first["dmesg"]), (2, second)):
        assert dmesg[0] == 0
        assert dmesg[1].count("(XEN) 'u' pressed -> dumping numa info") == dumps
        assert dmesg[1].count("(XEN) d0 (total: 131072):") == dumps
    assert second == host.xlemu("dmesg")
    assert second[1].startswith(first["dmesg"][1])  # the console only grew


def test_uptime_differs_only_by_the_moment_between(host: Host) -> None:
    (code, rows_xl), (ours, rows_xlemu) = host.xl("uptime")["uptime"], host.xlemu("uptime")
    assert code == ours == 0
    assert rows_xl.splitlines()[0] == rows_xlemu.splitlines()[0]  # the header
    for a, b in zip(rows_xl.splitlines()[1:], rows_xlemu.splitlines()[1:], strict=True):
        assert a.split()[:2] == b.split()[:2]  # name and id
        assert abs(seconds(a.split()[2]) - seconds(b.split()[2])) <= 2


def seconds(hms: str) -> int:
    h, m, s = (int(x) for x in hms.split(":"))
    return (h * 60 + m) * 60 + s


def test_a_domain_destroyed_by_either_is_gone_for_both(host: Host) -> None:
    """Two more guests: xl destroy one (libxl reads and removes its xenstore entries, keeps
    its lock file in /var/run/xen), xlemu destroy the other: both list neither."""
    host.create("gone1", 'name = "gone1"\nmemory = 64\n')
    host.create("gone2", 'name = "gone2"\nmemory = 64\n')
    assert host.xl("destroy gone1")["destroy gone1"] == (0, "")
    assert host.xlemu("destroy gone2") == (0, "")
    listed = host.xl("list")["list"]
    assert [row.split()[0] for row in listed[1].splitlines()[1:]] == ["Domain-0", "web", "db"]
    assert host.xlemu("list") == listed


def test_vcpu_pin_from_xl_is_what_both_list(host: Host) -> None:
    """``xl vcpu-pin db 0 4-5 1`` sets hard {4, 5} and soft {1} (XEN_DOMCTL_setvcpuaffinity);
    vcpu-list from either then shows them as set, on CPU 4 (db was placed on node 1, CPUs
    4-7, so its vCPU 0 already runs within the new hard map). Pinning back to all / all
    leaves the host as the other tests expect it."""
    pinned = host.xl("vcpu-pin db 0 4-5 1", "vcpu-list db")
    assert pinned["vcpu-pin db 0 4-5 1"] == (0, "")
    assert pinned["vcpu-list db"] == host.xlemu("vcpu-list db")
    row = pinned["vcpu-list db"][1].splitlines()[1].split()
    assert row[:4] + row[-3:] == ["db", "2", "0", "4", "4-5", "/", "1"]
    back = host.xl("vcpu-pin db 0 all all", "vcpu-list db")
    assert back["vcpu-pin db 0 all all"] == (0, "")
    assert back["vcpu-list db"][1].splitlines()[1].endswith("all / all")

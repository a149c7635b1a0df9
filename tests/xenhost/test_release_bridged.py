"""Debian's real libxenctrl (Xen 4.17) through the privcmd bridge: it works on a 4.17 host,
and on a master host every domctl and sysctl is EACCES, explained once on stderr.

Host: two nodes of 4096 MiB = 2 x 1048576 = 2097152 pages, no dom0 memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from host_helpers import Served, run_bridged
from xenhost.server import HostServer

import hypervisor_model

HVM_HAP = 0x2 | 0x100  # XEN_DOMINF_hvm_guest | XEN_DOMINF_hap
SHUTDOWN_BITS = 0xFFFF0000  # shutdown_code ~0u << XEN_DOMINF_shutdownshift, in 32 bits


@pytest.fixture(params=["4.17", "master"])
def served_as(request: pytest.FixtureRequest, short_dir: Path) -> Iterator[Served]:
    hv = hypervisor_model.boot(nodes=[4096, 4096], xen=request.param)
    with HostServer(hv, short_dir / "host.sock") as server:
        yield Served(hv, server.path, server)
    hv.check_invariants()


def test_debians_libxenctrl_on_each_release(served_as: Served, c_program: Callable) -> None:
    run = run_bridged(c_program("release_probe"), socket=served_as.socket)
    assert run.returncode == 0
    if served_as.hv.release.name == "4.17":
        # create: domid 0 asks 4.17 for a free one, 1; the 64-byte layout is read right
        # (an HVM guest with every emulator but vPCI); the list: dom0 (running) and d1
        assert run.stderr == ""
        assert run.stdout.splitlines() == [
            "physinfo 0 2 2097152",
            "create 0 1",
            "list 0 2",
            f"0 {SHUTDOWN_BITS | 0x20:#x}",  # XEN_DOMINF_running
            f"1 {SHUTDOWN_BITS | 0x8 | HVM_HAP:#x}",  # paused, hvm, hap
        ]
    else:
        assert run.stdout.splitlines() == [
            "physinfo EACCES 0 0",
            "create EACCES 0",
            "list EACCES 0",
        ]
        assert run.stderr.splitlines() == [
            "xenemu: the host speaks Xen 4.23-unstable (sysctl 0x16); this program speaks "
            "0x15: make a 4.17 host with `xlemu host init --xen 4.17`"
        ]
        assert [d.domain_id for d in served_as.hv.domain_list()] == [0]

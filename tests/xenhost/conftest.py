"""Fixtures for the host server's tests: a served host on a short socket path, the privcmd
bridge built once per session, and C programs built against the installed <xenctrl.h>."""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from host_helpers import TIMEOUT, Served, need
from xenhost import bridge
from xenhost.server import HostServer

import hypervisor_model

C_SOURCES = Path(__file__).with_name("c")


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A temporary directory with a short name: a socket path holds at most 107 bytes."""
    with tempfile.TemporaryDirectory(prefix="xenhost-") as d:
        yield Path(d)


@pytest.fixture
def served(short_dir: Path) -> Iterator[Served]:
    hv = hypervisor_model.boot(nodes=[4096, 4096])
    with HostServer(hv, short_dir / "host.sock") as server:
        yield Served(hv, server.path, server)
    hv.check_invariants()


@pytest.fixture(scope="session")
def bridge_library() -> Path:
    """The privcmd bridge, built (or found in the cache) once per session."""
    try:
        return bridge.library()
    except bridge.BridgeError:
        need("a C compiler")
        raise


@pytest.fixture(scope="session")
def c_program(
    bridge_library: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], Path]:
    """Build tests/xenhost/c/NAME.c against the installed libxenctrl, once per session."""
    if not Path("/usr/include/xenctrl.h").exists():
        need("libxen-dev")
    out = tmp_path_factory.mktemp("c")
    built: dict[str, Path] = {}

    def build(name: str) -> Path:
        if name not in built:
            exe = out / name
            libs = ["-lxenctrl", "-lxencall", "-lxenforeignmemory"]
            source = C_SOURCES / f"{name}.c"
            cc = bridge.compiler() or "cc"
            command = [cc, "-Wall", "-Werror", "-o", str(exe), str(source), *libs]
            subprocess.run(command, check=True, timeout=TIMEOUT)
            built[name] = exe
        return built[name]

    return build

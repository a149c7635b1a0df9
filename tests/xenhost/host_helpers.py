"""Helpers for the host server's tests: what a served host is, skipping for want of real
tools, and running a C program through the privcmd bridge.

Tests of real C programs need a C compiler and Debian's libxen-dev (xl tests also
xen-utils-4.17); without them they skip with the apt command, unless
$XENEMU_REQUIRE_REAL_TOOLS is set (CI), where a missing package fails the run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from xenhost import bridge
from xenhost.server import HostServer
from xlemu.cli import main

import hypervisor_model

_SCRIPT = Path(sys.executable).with_name("xlemu")
XLEMU = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "xlemu"]
APT = "apt-get install -y --no-install-recommends gcc libxen-dev xen-utils-4.17"
TIMEOUT = 30

# A Python builder in its own process: argv socket, node, count; each domain claims its
# 1024 pages, populates them 4 KiB at a time on the node, and drops the claim's rest.
BUILDER = textwrap.dedent(
    """
    import sys
    import xenctrl as xc
    socket, node, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with xc.xc_interface_open(server=socket) as xch:
        for _ in range(count):
            domid = xc.xc_domain_create(xch)
            xc.xc_domain_setmaxmem(xch, domid, 4096)  # KiB: 1024 pages
            xc.xc_domain_claim_pages(xch, domid, 1024)
            xc.xc_domain_populate_physmap_exact(
                xch, domid, 1024, 0, xc.XENMEMF_exact_node(node), list(range(1024))
            )
            xc.xc_domain_claim_pages(xch, domid, 0)
    """
)


@dataclass
class Served:
    """A host (two nodes of 4096 MiB, no dom0 memory) and the socket serving it."""

    hv: hypervisor_model.Hypervisor
    socket: Path
    server: HostServer


def need(what: str) -> None:
    """Skip (or, where real tools are required, fail) for want of ``what``."""
    message = f"needs {what}: {APT}"
    if os.environ.get("XENEMU_REQUIRE_REAL_TOOLS"):
        pytest.fail(message)
    pytest.skip(message)


def run_bridged(
    program: Path, *args: str, socket: Path, domid: int = 0
) -> subprocess.CompletedProcess[str]:
    """Run a C program through the bridge against the server at ``socket``."""
    return subprocess.run(
        [str(program), *args],
        env=bridge.environment(socket, domid),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def environment(home: Path, state: Path) -> dict[str, str]:
    """A clean environment for ``xlemu`` on ``state``: nothing of the person running."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XLEMU_", "XL_", "XENEMU_"))}
    return {
        **env,
        "HOME": str(home),
        "XDG_CACHE_HOME": env.get("XDG_CACHE_HOME", str(Path.home() / ".cache")),
        "XLEMU_STATE": str(state),
    }


def xlemu_here(state: Path, *args: str) -> tuple[int, str, str]:
    """``xlemu --state STATE ARGS`` in this process (``xlemu.cli.main``, as the console
    script runs it): exit code, stdout, stderr. Cheaper than a process per command."""
    with CliRunner().isolation() as (out, err, _):
        try:
            main(["--state", str(state), *args])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        sys.stdout.flush()
        sys.stderr.flush()
        return code, out.getvalue().decode(), err.getvalue().decode()


def xlemu(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*XLEMU, *args], env=env, capture_output=True, text=True, timeout=TIMEOUT)

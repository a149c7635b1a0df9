"""Fixtures for the host server's tests: a served host on a short socket path."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from xenhost.server import HostServer

import hypervisor_model


@dataclass
class Served:
    """A host (two nodes of 4096 MiB, no dom0 memory) and the socket serving it."""

    hv: hypervisor_model.Hypervisor
    socket: Path
    server: HostServer


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

"""Fixtures for the xenstore tests: a fresh store, dom0 and guest handles on it, and the
store served on a socket in a short temporary directory (Unix socket paths are short)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from xenhost.xenstore import Store, XenstoreServer, XsHandle


@pytest.fixture
def store() -> Store:
    return Store()


@pytest.fixture
def xs(store: Store) -> Iterator[XsHandle]:
    """A dom0 handle on the store, through the wire messages."""
    with XsHandle.local(store) as handle:
        yield handle


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="xs") as d:
        yield Path(d)


@pytest.fixture
def server(store: Store, sock_dir: Path) -> Iterator[XenstoreServer]:
    srv = XenstoreServer(store)
    srv.start(sock_dir / "socket")
    yield srv
    srv.close()
    assert store.problems() == []

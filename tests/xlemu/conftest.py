"""Fixtures for the xlemu tests: ``xl``, an ``xlemu`` on a state file and an xl.conf in the
test's tmp_path (see xl_helpers.Xl)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from xl_helpers import Xl


@pytest.fixture
def xl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Xl]:
    """A fresh ``xlemu`` with $XLEMU_STATE and $XL_GLOBAL_CONFIG in ``tmp_path``, on the
    default host (2 x 16 GiB, dom0 1 GiB) that ``host init`` boots."""
    x = Xl(tmp_path)
    monkeypatch.setenv("XLEMU_STATE", str(x.state))
    monkeypatch.setenv("XL_GLOBAL_CONFIG", str(x.xl_conf))
    monkeypatch.delenv("XENEMU_TRACE", raising=False)
    x.ok("host", "init")
    yield x

"""A pytest plugin for domain-builder tests: a booted host, an open handle, and an
automatic invariant check after every test (registered as the ``pytest11`` entry point).

Fixtures: ``xen_host`` (a :class:`hypervisor_model.Hypervisor`), ``xch`` (an
``xc_interface`` as dom0) and ``xenctrl_api`` (a :class:`xenctrl.api.Xenctrl`).
Choose the host with a marker, a preset name or :func:`hypervisor_model.boot` keywords::

    @pytest.mark.xen_host("four-nodes-1tib")
    def test_big(xch): ...

    @pytest.mark.xen_host(nodes=[2048, 2048, 2048], dom0_memory=512)
    def test_three_nodes(xen_host): ...

or parametrize ``xen_host`` indirectly with preset names. ``xen="4.17"`` (a keyword of the
marker) or ``pytest --xen 4.17`` (every host without its own) boots a host that speaks that
Xen release's hypercall ABI; the handles learn it from the host.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

import hypervisor_model
from xenctrl.api import Xenctrl
from xenctrl.handle import xc_interface, xc_interface_close, xc_interface_open

PRESETS: dict[str, dict[str, Any]] = {
    "one-node": dict(nodes=[8192]),
    "two-nodes": dict(nodes=[4096, 4096]),
    "four-nodes-1tib": dict(nodes=[262144] * 4),
}
DEFAULT_PRESET = "two-nodes"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--xen",
        metavar="RELEASE",
        default=None,
        help="the Xen release of xen_host fixtures that do not choose one: master or 4.17",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "xen_host(preset=None, **boot_kwargs): the emulated host for the xen_host fixture; "
        f"presets: {', '.join(PRESETS)}",
    )


def _host_spec(request: pytest.FixtureRequest) -> dict[str, Any]:
    param = getattr(request, "param", None)
    marker = request.node.get_closest_marker("xen_host")
    preset = param if isinstance(param, str) else None
    kwargs: dict[str, Any] = dict(param) if isinstance(param, dict) else {}
    if marker is not None:
        if marker.args:
            preset = marker.args[0]
        kwargs.update(marker.kwargs)
    if preset is None and not kwargs.keys() & {"nodes", "ranges"}:
        preset = DEFAULT_PRESET  # keywords without a topology refine the default host
    if preset is not None:
        if preset not in PRESETS:
            raise pytest.UsageError(f"xen_host: expected one of {sorted(PRESETS)}, got {preset!r}")
        kwargs = {**PRESETS[preset], **kwargs}
    if (xen := request.config.getoption("xen")) is not None:
        kwargs.setdefault("xen", xen)
    return kwargs


@pytest.fixture
def xen_host(request: pytest.FixtureRequest) -> Iterator[hypervisor_model.Hypervisor]:
    """A freshly booted emulated host; its invariants are checked when the test ends."""
    hv = hypervisor_model.boot(**_host_spec(request))
    yield hv
    hv.check_invariants()


@pytest.fixture
def xch(xen_host: hypervisor_model.Hypervisor) -> Iterator[xc_interface]:
    """An open xc_interface on ``xen_host``, issuing hypercalls as dom0."""
    handle = xc_interface_open(xen_host)
    yield handle
    xc_interface_close(handle)


@pytest.fixture
def xenctrl_api(xen_host: hypervisor_model.Hypervisor) -> Iterator[Xenctrl]:
    """The OCaml-style face on ``xen_host``."""
    with Xenctrl(xen_host) as ctl:
        yield ctl

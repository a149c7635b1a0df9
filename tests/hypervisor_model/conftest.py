"""Fixtures for the model's tests: hosts checked after every hypercall, and the raw client."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from hypercalls import Guest

import hypervisor_model


@pytest.fixture
def host() -> Iterator[hypervisor_model.Hypervisor]:
    """Two nodes of 4 GiB each, checked after every hypercall and at the end."""
    hv = hypervisor_model.boot(nodes=[4096, 4096])
    hv.check_after_each_hypercall = True
    yield hv
    hv.check_invariants()


@pytest.fixture
def dom0(host: hypervisor_model.Hypervisor) -> Guest:
    return Guest(host)


@pytest.fixture(scope="session")
def guest_class() -> type[Guest]:
    """The raw client itself, for tests that boot hosts of their own (hypothesis, threads)."""
    return Guest


SMALL_HOST_BASE = 0x1000  # first MFN of a small host's node 0; MFN 0 is then a hole


@pytest.fixture
def small_host() -> Iterator[Callable[..., hypervisor_model.Hypervisor]]:
    """Boot hosts whose node n holds ``pages[n]`` pages from MFN 0x1000 + 0x200 * n: free
    counts are tiny and exact, and all RAM lies in zone 13, so the DMA-zone first pass of
    alloc_domheap_pages never changes where a page comes from. Invariants are checked after
    every hypercall and at the end."""
    booted: list[hypervisor_model.Hypervisor] = []

    def boot(*pages: int) -> hypervisor_model.Hypervisor:
        assert len(pages) == 1 or max(pages) <= 0x200, "nodes would overlap"
        base = SMALL_HOST_BASE
        hv = hypervisor_model.boot(
            ranges=[[[base + 0x200 * n, base + 0x200 * n + p]] for n, p in enumerate(pages)]
        )
        hv.check_after_each_hypercall = True
        booted.append(hv)
        return hv

    yield boot
    for hv in booted:
        hv.check_invariants()

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
HEAP_METADATA_PAGES = 4  # what init_node_heap keeps of every node after the first
XEN_PAGES_PER_PV_DOMAIN = 2  # alloc_domain_struct and the shared-info page


@pytest.fixture
def small_host() -> Iterator[Callable[..., hypervisor_model.Hypervisor]]:
    """Boot hosts whose node n has ``pages[n]`` free pages from MFN 0x1000 + 0x200 * n: free
    counts are tiny and exact, and all RAM lies in zone 13, so the DMA-zone first pass of
    alloc_domheap_pages never changes where a page comes from. Xen's costs are paid on top:
    node n > 0 starts 4 pages early for its heap metadata (init_node_heap takes a range's
    head), and node 0, the boot CPU's node, holds 2 more pages for dom0 and for each of the
    ``domains`` PV domains the test creates first (their structure and shared-info pages are
    the topmost of node 0, which the buddy allocator hands out first). Invariants are
    checked after every hypercall and at the end."""
    booted: list[hypervisor_model.Hypervisor] = []

    def boot(*pages: int, domains: int = 0) -> hypervisor_model.Hypervisor:
        assert len(pages) == 1 or max(pages) <= 0x1F0, "nodes would overlap"
        base = SMALL_HOST_BASE
        ranges = [
            [[base + 0x200 * n - (HEAP_METADATA_PAGES if n else 0), base + 0x200 * n + p]]
            for n, p in enumerate(pages)
        ]
        ranges[0][0][1] += XEN_PAGES_PER_PV_DOMAIN * (1 + domains)
        hv = hypervisor_model.boot(ranges=ranges)
        hv.check_after_each_hypercall = True
        booted.append(hv)
        return hv

    yield boot
    for hv in booted:
        hv.check_invariants()

"""Host descriptions: validation, TOML loading, and what physinfo shows of a booted host.

Expected numbers are worked out by hand: 1 MiB is 256 pages; nodes given in MiB lie back to
back from MFN 0; MFN 0 is never handed to the allocator (init_heap_pages), so a host whose
RAM starts at MFN 0 has one free page less than it has RAM (fact sheet section 3).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from hypercalls import Guest

import hypervisor_model
from hypervisor_model import HostConfigError, load_host, make_host

MiB = 256  # pages


# -- validation -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        pytest.param(dict(nodes=[]), "expected 1..64 nodes, got 0", id="zero-nodes"),
        pytest.param(dict(ranges=[]), "expected 1..64 nodes, got 0", id="zero-node-ranges"),
        pytest.param(dict(nodes=[16] * 65), "expected 1..64 nodes, got 65", id="65-nodes"),
        pytest.param(dict(), "exactly one of nodes=", id="neither-nodes-nor-ranges"),
        pytest.param(dict(nodes=[16], ranges=[[[1, 2]]]), "exactly one of nodes=", id="both-forms"),
        pytest.param(
            dict(ranges=[[[0, 0x100]], [[0x80, 0x200]]]),
            "nodes 0 and 1: expected disjoint ranges, got overlap",
            id="overlapping-nodes",
        ),
        pytest.param(
            dict(ranges=[[[0, 0x100], [0xFF, 0x200]]]),
            "nodes 0 and 0: expected disjoint ranges, got overlap",
            id="overlapping-ranges-of-one-node",
        ),
        pytest.param(
            dict(ranges=[[[0x100, 0x100]]]), "node 0: expected start < end", id="empty-range"
        ),
        pytest.param(
            dict(ranges=[[[1, 2]], [[3, 4, 5]]]),
            "node 1: expected ranges [[start, end], ...], got [[3, 4, 5]]",
            id="range-triple",
        ),
        pytest.param(
            dict(ranges=[[1, 2]]),
            "node 0: expected ranges [[start, end], ...], got [1, 2]",
            id="range-not-nested",
        ),
        pytest.param(
            dict(ranges=[[[-1, 2]]]),
            "range start: expected a non-negative integer, got -1",
            id="negative-range-start",
        ),
        pytest.param(
            dict(nodes=16), "expected a list with one entry per node, got 16", id="nodes-scalar"
        ),
        pytest.param(
            dict(ranges=[[[0x200, 0x100]]]), "node 0: expected start < end", id="reversed-range"
        ),
        pytest.param(
            dict(ranges=[[[0, (1 << 40) + 1]]]),
            "beyond 52 address bits",
            id="range-beyond-paddr-bits",
        ),
        pytest.param(
            dict(nodes=[16, 16], cpus_per_node=0),
            "expected 1..4096 CPUs in all (NR_CPUS), got 0",
            id="no-cpus",
        ),
        pytest.param(
            dict(nodes=[16, 16], cpus_per_node=[0, 4], offline=[1]),  # nr_cpus would be 0
            "expected at least one CPU on an online node, got none",
            id="cpus-only-on-an-offline-node",
        ),
        pytest.param(
            dict(nodes=[16, 16], offline=[0, 1]),
            "expected at least one online node, got all offline",
            id="all-offline",
        ),
        pytest.param(
            dict(nodes=[16], offline=[0]),
            "expected at least one online node, got all offline",
            id="only-node-offline",
        ),
        pytest.param(
            dict(nodes=[16, 16], offline=[2]),
            "offline: expected node ids below 2, got [2]",
            id="offline-unknown-node",
        ),
        pytest.param(
            dict(nodes=[16, 16], distances=[[10, 20]]),
            "distances: expected a 2x2 matrix",
            id="distances-too-few-rows",
        ),
        pytest.param(
            dict(nodes=[16, 16], distances=[[10, 20], [20]]),
            "distances: expected a 2x2 matrix",
            id="distances-short-row",
        ),
        pytest.param(
            dict(nodes=[16, 16], distances=[[10, 20], 20]),
            "distances: expected a 2x2 matrix",
            id="distances-row-not-a-list",
        ),
        pytest.param(
            dict(nodes=[16, 16], distances=[]),
            "distances: expected a 2x2 matrix",
            id="distances-empty",
        ),
        pytest.param(
            dict(nodes=[16, 16], distances=[[10, 256], [20, 10]]),
            "distances: expected values up to 255, got 256",
            id="distance-above-u8",
        ),
        pytest.param(
            dict(nodes=[16, 16], distances=[[10, -1], [20, 10]]),
            "distance: expected a non-negative integer, got -1",
            id="distance-negative",
        ),
        pytest.param(
            dict(nodes=[16, -1]),
            "node memory (MiB): expected a non-negative integer, got -1",
            id="negative-node-size",
        ),
        pytest.param(
            dict(nodes=[16.5]),
            "node memory (MiB): expected a non-negative integer, got 16.5",
            id="fractional-node-size",
        ),
        pytest.param(
            dict(nodes=[16, 16], cpus_per_node=[4]),
            "cpus_per_node: expected 2 entries, got 1",
            id="cpus-per-node-length",
        ),
        pytest.param(
            dict(nodes=[16], dom0_memory=-1),
            "dom0_memory (MiB): expected a non-negative integer, got -1",
            id="negative-dom0-memory",
        ),
    ],
)
def test_make_host_rejects_bad_descriptions(kwargs: dict[str, Any], message: str) -> None:
    """A description that cannot be a machine fails early, saying what was expected."""
    with pytest.raises(HostConfigError, match=_literal(message)):
        make_host(**kwargs)


def test_boot_raises_the_same_errors_as_make_host() -> None:
    with pytest.raises(HostConfigError, match="expected at least one online node"):
        hypervisor_model.boot(nodes=[16], offline=[0])


@pytest.mark.parametrize(
    ("nodes", "dom0_memory"),
    [
        # 16 MiB = 4096 pages of RAM, 4095 free (MFN 0): 16 MiB of dom0 needs one page more.
        pytest.param([16], 16, id="all-ram-but-mfn0-is-never-free"),
        pytest.param([16], 17, id="more-than-ram"),
        pytest.param([16, 16], 33, id="more-than-two-nodes"),
    ],
)
def test_boot_rejects_dom0_memory_larger_than_the_free_heap(
    nodes: list[int], dom0_memory: int
) -> None:
    with pytest.raises(HostConfigError, match=r"dom0_memory: expected at most .* got \d+ MiB"):
        hypervisor_model.boot(nodes=nodes, dom0_memory=dom0_memory)


def test_boot_rejects_a_multi_node_host_without_memory_below_4gib() -> None:
    """arch_get_dma_bitsize panics when no online node starts below 4 GiB (MFN 0x100000)."""
    with pytest.raises(HostConfigError, match="below 4 GiB"):
        hypervisor_model.boot(ranges=[[[0x100000, 0x110000]], [[0x110000, 0x120000]]])


def test_a_single_node_above_4gib_boots() -> None:
    """With one online node there is no DMA zone to place, so no node below 4 GiB is needed.
    Its RAM is free but for dom0's structure and shared-info pages."""
    hv = hypervisor_model.boot(ranges=[[[0x100000, 0x110000]]])
    assert Guest(hv).physinfo().free_pages == 0x10000 - 2


def test_make_host_accepts_adjacent_ranges_and_memoryless_nodes() -> None:
    host = make_host(ranges=[[[1, 0x100], [0x100, 0x180]], [], [[0x180, 0x200]]])
    assert [n.pages for n in host.nodes] == [0xFF + 0x80, 0, 0x80]


def test_make_host_lays_nodes_out_back_to_back_from_mfn0() -> None:
    host = make_host(nodes=[16, 0, 32])
    assert [n.ranges for n in host.nodes] == [
        ((0, 16 * MiB),),
        (),
        ((16 * MiB, 48 * MiB),),
    ]


def test_make_host_default_distances_are_10_local_20_remote() -> None:
    """__node_distance without an ACPI SLIT."""
    assert make_host(nodes=[16, 16, 16]).distances == ((10, 20, 20), (20, 10, 20), (20, 20, 10))


# -- TOML -----------------------------------------------------------------------------------


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "host.toml"
    path.write_text(text)
    return path


def test_load_host_with_memory_form(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        dom0_memory = 4
        distances = [[10, 21], [21, 10]]
        [[node]]
        memory = 16
        [[node]]
        memory = 32
        online = false
        cpus = 2
        """,
    )
    host = load_host(path)
    assert [n.ranges for n in host.nodes] == [((0, 4096),), ((4096, 4096 + 8192),)]
    assert [n.online for n in host.nodes] == [True, False]
    assert [n.cpus for n in host.nodes] == [4, 2]
    assert host.distances == ((10, 21), (21, 10))
    assert host.dom0_memory_mib == 4


def test_load_host_with_ranges_form(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        [[node]]
        ranges = [[1, 100], [0x200, 0x300]]
        [[node]]
        ranges = [[0x1000, 0x2000]]
        """,
    )
    host = load_host(path)
    assert [n.ranges for n in host.nodes] == [((1, 100), (0x200, 0x300)), ((0x1000, 0x2000),)]
    assert host.distances == ((10, 20), (20, 10))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("[[node]]\nmemory = 16\nbogus = 1\n", "node 0: expected keys", id="node-key"),
        pytest.param("colour = 1\n[[node]]\nmemory = 16\n", "unknown host keys", id="host-key"),
        pytest.param("dom0_memory = 1\n", "at least one [[node]]", id="no-nodes"),
        pytest.param(
            "[[node]]\nmemory = 16\nranges = [[1, 2]]\n",
            "node 0: expected exactly one of memory (MiB) or ranges",
            id="node-with-both",
        ),
        pytest.param("[[node]]\ncpus = 2\n", "node 0: expected exactly one", id="node-empty"),
        pytest.param(
            "[[node]]\nmemory = 16\n[[node]]\nranges = [[0x2000, 0x3000]]\n",
            "expected every node to use memory, or every node ranges",
            id="mixed-forms",
        ),
        pytest.param(
            "[[node]]\nranges = [[0, 0x100]]\n[[node]]\nranges = [[0x80, 0x200]]\n",
            "expected disjoint ranges",
            id="overlap",
        ),
        pytest.param(
            "distances = [[10]]\n[[node]]\nmemory = 16\n[[node]]\nmemory = 16\n",
            "distances: expected a 2x2 matrix",
            id="bad-distances",
        ),
        pytest.param(
            "[[node]]\nmemory = 16\nonline = false\n",
            "expected at least one online node",
            id="all-offline",
        ),
        pytest.param("[[node]]\nranges = [1, 100]\n", "node 0: expected ranges", id="flat-ranges"),
        pytest.param("[[node]\nmemory = 16\n", "host.toml", id="not-toml"),
    ],
)
def test_load_host_rejects_bad_files(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(HostConfigError, match=_literal(message)):
        load_host(_write(tmp_path, text))


@pytest.mark.parametrize(
    ("text", "line"),
    [
        # the key named, within the [[node]] table named
        ("[[node]]\nmemory = 16\n\n[[node]]\nmemory = 16\nranges = [[1, 2]]\n", 5),
        ("[[node]]\nmemory = 16\ncpus = -1\n", 3),
        ("[[node]]\nranges = [1, 100]\n", 2),
        # the [[node]] table, when no key of it is named
        ("[[node]]\nmemory = 16\n[[node]]\n\ncpus = 2\n", 3),
        # top-level keys, before the first table
        ("dom0_memory = 1\ncolour = 1\n[[node]]\nmemory = 16\n", 2),
        ("distances = [[10]]\n[[node]]\nmemory = 16\n[[node]]\nmemory = 16\n", 1),
        ("dom0_memory = -4\n[[node]]\nmemory = 16\n", 1),
    ],
    ids=["both-forms", "cpus", "flat-ranges", "empty-node", "unknown-key", "distances", "dom0"],
)
def test_load_host_names_the_line(tmp_path: Path, text: str, line: int) -> None:
    """An error in a host file starts with FILE:LINE, as a compiler's does."""
    path = _write(tmp_path, text)
    with pytest.raises(HostConfigError, match=_literal(f"{path}:{line}: ")):
        load_host(path)


def test_a_syntax_error_keeps_tomllibs_line_and_column(tmp_path: Path) -> None:
    path = _write(tmp_path, "[[node]]\nmemory = = 1\n")
    with pytest.raises(HostConfigError, match=_literal(f"{path}: Invalid value (at line 2")):
        load_host(path)


def test_boot_from_toml_boots_the_described_host(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
        dom0_memory = 8
        [[node]]
        memory = 64
        [[node]]
        memory = 64
        [[node]]
        memory = 64
        online = false
        """,
    )
    info = Guest(hypervisor_model.boot_from_toml(path)).physinfo()
    assert info.nr_nodes == 2
    # Online RAM: 2 x 64 MiB = 32768 pages; minus MFN 0, dom0's 8 MiB (2048 pages), dom0's
    # structure and shared-info pages, and the second online node's 4 of heap metadata.
    assert info.total_pages == 32768
    assert info.free_pages == 32768 - 1 - 2048 - 2 - 4


# -- what physinfo shows ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "total", "free", "nr_nodes"),
    [
        # 2 x 4096 MiB = 2097152 pages; MFN 0 never free; dom0's structure and shared-info
        # pages (2) and node 1's heap metadata (4) are Xen's: 2097151 - 6.
        pytest.param(dict(nodes=[4096, 4096]), 2097152, 2097145, 2, id="2x4GiB"),
        # dom0's 512 MiB = 131072 pages come out of the heap.
        pytest.param(
            dict(nodes=[4096, 4096], dom0_memory=512), 2097152, 1966073, 2, id="2x4GiB-dom0"
        ),
        # 16 MiB = 4096 pages; dom0 15 MiB = 3840 pages leaves 4095 - 3840 - 2.
        pytest.param(dict(nodes=[16], dom0_memory=15), 4096, 253, 1, id="dom0-nearly-all"),
        # RAM not starting at MFN 0 loses no page (but dom0's 2).
        pytest.param(dict(ranges=[[[0x100, 0x200]]]), 256, 254, 1, id="ram-above-mfn0"),
        # Holes do not count: 99 + 256 + 4096 pages, less dom0's 2 and node 1's 4.
        pytest.param(
            dict(ranges=[[[1, 100], [0x200, 0x300]], [[0x1000, 0x2000]]]),
            4451,
            4445,
            2,
            id="holes",
        ),
        # A memoryless node is still an online node (and keeps no heap metadata).
        pytest.param(dict(nodes=[16, 0]), 4096, 4093, 2, id="memoryless-node"),
        # 63 nodes after the first keep 4 pages each: 262143 - 2 - 252.
        pytest.param(dict(nodes=[16] * 64), 64 * 4096, 261889, 64, id="64-nodes"),
    ],
)
def test_physinfo_of_a_booted_host(
    kwargs: dict[str, Any], total: int, free: int, nr_nodes: int
) -> None:
    """physinfo: total_pages (RAM), free_pages (the heap), nr_nodes (online nodes)."""
    info = Guest(hypervisor_model.boot(**kwargs)).physinfo()
    assert (info.total_pages, info.free_pages, info.nr_nodes) == (total, free, nr_nodes)


def test_offline_node_memory_is_not_free_and_the_node_not_counted() -> None:
    """Three 64 MiB nodes, node 1 offline: its 16384 pages never reach the heap (nor pay
    for heap metadata, which node 2 does)."""
    info = Guest(hypervisor_model.boot(nodes=[64, 64, 64], offline=[1])).physinfo()
    assert info.nr_nodes == 2
    assert info.free_pages == 2 * 16384 - 1 - 2 - 4


def test_dom0_owns_its_boot_memory() -> None:
    """dom0's memory is allocated to it: tot_pages = max_pages = dom0_memory in pages."""
    info = Guest(hypervisor_model.boot(nodes=[64, 64], dom0_memory=40)).info(0)
    assert (info.tot_pages, info.max_pages) == (40 * MiB, 40 * MiB)


def _literal(message: str) -> str:
    """A regular expression matching ``message`` literally."""
    return re.escape(message)

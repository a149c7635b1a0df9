"""What a host is made of: NUMA nodes (memory ranges, online state, CPUs), distances, dom0,
and the Xen release it runs.

A description is built from keyword arguments (for tests) or a TOML file (for tools); both
end in the same validated, immutable :class:`HostConfig`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any, NamedTuple

from hypervisor_model.public.releases import UnknownRelease, release
from hypervisor_model.public.xen import XEN_PAGE_SHIFT

MAX_NUMNODES = 64  # CONFIG_NR_NUMA_NODES default (xen/arch/x86/Kconfig)
# CONFIG_NR_CPUS: xen/arch/Kconfig allows 1..16383 (x86 default 256); the model's Xen is
# built with 4096, room for the large hosts it emulates.
NR_CPUS = 4096
PADDR_BITS = 52  # x86_64 physical address width (asm/config.h)
PAGES_PER_MIB = 1 << (20 - XEN_PAGE_SHIFT)
LOCAL_DISTANCE, REMOTE_DISTANCE = 10, 20  # __node_distance() without an ACPI SLIT


class HostConfigError(ValueError):
    """A host description that cannot describe a machine."""


class NodeConfig(NamedTuple):
    """One NUMA node: its RAM as MFN ranges ``[start, end)``, whether it is online, its CPUs."""

    ranges: tuple[tuple[int, int], ...]
    online: bool = True
    cpus: int = 4

    @property
    def pages(self) -> int:
        return sum(end - start for start, end in self.ranges)

    @property
    def spanned(self) -> tuple[int, int]:
        """``(start_pfn, spanned_pages)``: holes inside the node count, as node_spanned_pages."""
        if not self.ranges:
            return 0, 0
        return self.ranges[0][0], self.ranges[-1][1] - self.ranges[0][0]


class HostConfig(NamedTuple):
    """A whole host. ``distances`` is the SLIT matrix (0xFF = unreachable); ``xen`` names
    the release whose hypercall ABI it speaks (:mod:`hypervisor_model.public.releases`)."""

    nodes: tuple[NodeConfig, ...]
    distances: tuple[tuple[int, ...], ...]
    dom0_memory_mib: int = 0
    cpu_khz: int = 2_000_000
    xen: str = "master"

    def distance(self, a: int, b: int) -> int:
        return self.distances[a][b]


def _ranges_from_sizes(sizes_mib: Sequence[int]) -> list[list[tuple[int, int]]]:
    """Nodes laid out back to back from MFN 0, in node order."""
    ranges, start = [], 0
    for size in sizes_mib:
        pages = _int(size, "node memory (MiB)") * PAGES_PER_MIB
        ranges.append([(start, start + pages)] if pages else [])
        start += pages
    return ranges


def _is_list(value: Any, length: int) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str) and len(value) == length


def _range_pairs(node: int, pairs: Any) -> list[tuple[int, int]]:
    """One node's ``[[start, end], ...]``, each bound a non-negative integer."""
    if not isinstance(pairs, Sequence) or not all(_is_list(p, 2) for p in pairs):
        raise HostConfigError(f"node {node}: expected ranges [[start, end], ...], got {pairs!r}")
    return [(_int(s, "range start"), _int(e, "range end")) for s, e in pairs]


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise HostConfigError(f"{what}: expected a non-negative integer, got {value!r}")
    return value


def make_host(
    nodes: Sequence[int] | None = None,
    *,
    ranges: Sequence[Sequence[Sequence[int]]] | None = None,
    offline: Sequence[int] = (),
    distances: Sequence[Sequence[int]] | None = None,
    cpus_per_node: int | Sequence[int] = 4,
    dom0_memory: int = 0,
    cpu_khz: int = 2_000_000,
    xen: str = "master",
) -> HostConfig:
    """Validate a host description.

    ``nodes`` gives each node's memory in MiB (nodes back to back from MFN 0); ``ranges``
    instead gives each node's MFN ranges ``[start, end)``, which may leave holes. ``offline``
    lists node ids whose memory is not given to the heap. ``dom0_memory`` is in MiB. ``xen``
    is the release the host runs: "master" (4.23-unstable) or "4.17".
    """
    try:
        release(xen)
    except UnknownRelease as err:
        raise HostConfigError(str(err)) from None
    if (nodes is None) == (ranges is None):
        raise HostConfigError("expected exactly one of nodes= (MiB per node) or ranges=")
    layout = nodes if nodes is not None else ranges
    if not isinstance(layout, Sequence):
        raise HostConfigError(f"expected a list with one entry per node, got {layout!r}")
    node_ranges = (
        _ranges_from_sizes(nodes)
        if nodes is not None
        else [_range_pairs(n, r) for n, r in enumerate(layout)]
    )
    count = len(node_ranges)
    if not 1 <= count <= MAX_NUMNODES:
        raise HostConfigError(f"expected 1..{MAX_NUMNODES} nodes, got {count}")
    cpus = [cpus_per_node] * count if isinstance(cpus_per_node, int) else list(cpus_per_node)
    if len(cpus) != count:
        raise HostConfigError(f"cpus_per_node: expected {count} entries, got {len(cpus)}")
    total_cpus = sum(_int(c, f"node {n}: cpus") for n, c in enumerate(cpus))
    if not 1 <= total_cpus <= NR_CPUS:
        raise HostConfigError(f"expected 1..{NR_CPUS} CPUs in all (NR_CPUS), got {total_cpus}")
    offline_set = {_int(n, "offline node") for n in offline}
    if offline_set - set(range(count)):
        raise HostConfigError(
            f"offline: expected node ids below {count}, got {sorted(offline_set)}"
        )
    if offline_set == set(range(count)):
        raise HostConfigError("expected at least one online node, got all offline")
    online_cpus = sum(_int(c, "cpus") for n, c in enumerate(cpus) if n not in offline_set)
    if not online_cpus:
        raise HostConfigError("expected at least one CPU on an online node, got none")

    spans = sorted((s, e, n) for n, r in enumerate(node_ranges) for s, e in r)
    for s, e, n in spans:
        if e <= s:
            raise HostConfigError(f"node {n}: expected start < end, got [{s:#x}, {e:#x})")
        if e > 1 << (PADDR_BITS - XEN_PAGE_SHIFT):
            raise HostConfigError(f"node {n}: range end {e:#x} beyond {PADDR_BITS} address bits")
    for (_, e1, n1), (s2, _, n2) in pairwise(spans):
        if s2 < e1:
            raise HostConfigError(f"nodes {n1} and {n2}: expected disjoint ranges, got overlap")

    matrix = distances  # only a missing matrix means "no SLIT"; an empty one is malformed
    if matrix is None:
        matrix = [
            [LOCAL_DISTANCE if a == b else REMOTE_DISTANCE for b in range(count)]
            for a in range(count)
        ]
    if not _is_list(matrix, count) or not all(_is_list(row, count) for row in matrix):
        raise HostConfigError(f"distances: expected a {count}x{count} matrix")
    for row in matrix:
        for d in row:
            if _int(d, "distance") > 0xFF:
                raise HostConfigError(f"distances: expected values up to 255, got {d}")

    return HostConfig(
        nodes=tuple(
            NodeConfig(
                ranges=tuple(sorted(r)),
                online=n not in offline_set,
                cpus=_int(cpus[n], "cpus"),
            )
            for n, r in enumerate(node_ranges)
        ),
        distances=tuple(tuple(row) for row in matrix),
        dom0_memory_mib=_int(dom0_memory, "dom0_memory (MiB)"),
        cpu_khz=_int(cpu_khz, "cpu_khz"),
        xen=xen,
    )


def host_from_mapping(doc: Mapping[str, Any]) -> HostConfig:
    """A host from a parsed TOML document: top-level keys and a ``[[node]]`` array."""
    known = {"node", "distances", "dom0_memory", "cpu_khz", "xen"}
    if unknown := set(doc) - known:
        raise HostConfigError(f"unknown host keys {sorted(unknown)}; expected {sorted(known)}")
    nodes = doc.get("node")
    if not isinstance(nodes, list) or not nodes:
        raise HostConfigError("expected at least one [[node]] table")
    node_keys = {"memory", "ranges", "online", "cpus"}
    sizes, ranges, offline, cpus = [], [], [], []
    for i, node in enumerate(nodes):
        if not isinstance(node, Mapping) or set(node) - node_keys:
            raise HostConfigError(f"node {i}: expected keys among {sorted(node_keys)}, got {node}")
        if ("memory" in node) == ("ranges" in node):
            raise HostConfigError(f"node {i}: expected exactly one of memory (MiB) or ranges")
        sizes.append(node.get("memory"))
        ranges.append(node.get("ranges"))
        if not node.get("online", True):
            offline.append(i)
        cpus.append(node.get("cpus", 4))
    if all(r is None for r in ranges):
        layout: dict[str, Any] = {"nodes": sizes}
    elif all(s is None for s in sizes):
        layout = {"ranges": ranges}
    else:
        raise HostConfigError("expected every node to use memory, or every node ranges")
    return make_host(
        **layout,
        offline=offline,
        distances=doc.get("distances"),
        cpus_per_node=cpus,
        dom0_memory=doc.get("dom0_memory", 0),
        cpu_khz=doc.get("cpu_khz", 2_000_000),
        xen=doc.get("xen", "master"),
    )


def load_host(path: str | Path) -> HostConfig:
    """A host from a TOML file; an error names the file and, where it can tell, the line."""
    import tomllib  # only this reads TOML: not imported with the model

    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        doc = tomllib.loads(text)
    except OSError as e:
        raise HostConfigError(f"{path}: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:  # its message says the line and column
        raise HostConfigError(f"{path}: {e}") from None
    try:
        return host_from_mapping(doc)
    except HostConfigError as e:
        line = _line_of(text, str(e))
        raise HostConfigError(f"{path}:{line}: {e}" if line else f"{path}: {e}") from None


_NODE_TABLE = re.compile(r"\s*\[\[\s*node\s*\]\]")
_TOP_KEYS = ("distances", "dom0_memory", "cpu_khz", "xen")
_NODE_KEYS = ("memory", "ranges", "online", "cpus")


def _line_of(text: str, message: str) -> int | None:
    """The line an error about a host file is about: the first key it names, within the
    [[node]] table it names ("node 2: ..."), or the table itself, or a top-level key."""
    lines = text.splitlines()
    tables = [i for i, line in enumerate(lines) if _NODE_TABLE.match(line)]
    first_table = tables[0] if tables else len(lines)

    def assigns(key: str, start: int, end: int) -> int | None:
        pattern = re.compile(rf"\s*{re.escape(key)}\s*=")
        return next((i + 1 for i in range(start, end) if pattern.match(lines[i])), None)

    if (m := re.match(r"nodes? (\d+)", message)) and int(m.group(1)) < len(tables):
        n = int(m.group(1))
        start, end = tables[n], tables[n + 1] if n + 1 < len(tables) else len(lines)
        for key in _NODE_KEYS:
            if re.search(rf"\b{key}\b", message) and (line := assigns(key, start, end)):
                return line
        return start + 1
    if m := re.search(r"unknown host keys \['([^']+)'", message):
        return assigns(m.group(1), 0, first_table)
    for key in _TOP_KEYS:
        if message.startswith(key) and (line := assigns(key, 0, first_table)):
            return line
    return None

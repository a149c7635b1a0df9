"""Snapshots of the accounting counters, and what moved between two of them.

The machine reports these to trace hooks around every hypercall (as Xen's xentrace reports
from inside the hypervisor): host-wide, per node, per domain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hypervisor_model.hypervisor import Hypervisor


@dataclass(frozen=True)
class Change:
    """One counter that moved: ``name`` went from ``before`` to ``after``."""

    name: str
    before: int
    after: int

    def __str__(self) -> str:
        return f"{self.name} {self.before}->{self.after} ({self.after - self.before:+d})"


def snapshot(hv: Hypervisor) -> dict[str, int]:
    """Every counter, by name: total_avail_pages, outstanding_claims, node<n>.*, d<id>.*."""
    heap = hv.heap
    with heap.lock:
        values = {
            "total_avail_pages": heap.total_avail_pages,
            "outstanding_claims": heap.outstanding_claims,
        }
        for n, free in enumerate(heap.node_avail_pages):
            values[f"node{n}.node_avail_pages"] = free
            values[f"node{n}.claimed_pages"] = heap.claimed_pages[n]
        for d in hv.domain_list():
            prefix = f"d{d.domain_id}."
            values[prefix + "tot_pages"] = d.tot_pages
            values[prefix + "max_pages"] = d.max_pages
            values[prefix + "outstanding_pages"] = d.outstanding_pages
            for n, pages in d.claims.items():
                values[f"{prefix}claims[{n}]"] = pages
            for n, pages in d.node_pages.items():
                values[f"{prefix}pages_on_node{n}"] = pages
    return values


def changes(before: dict[str, int], after: dict[str, int]) -> list[Change]:
    """The counters that differ, in a stable order (missing counts as 0)."""
    return [
        Change(name, before.get(name, 0), after.get(name, 0))
        for name in sorted(before.keys() | after.keys(), key=_order)
        if before.get(name, 0) != after.get(name, 0)
    ]


def _order(name: str) -> tuple[int, str]:
    return (0 if "." not in name else 1 if name.startswith("node") else 2, name)

"""Snapshots of the accounting counters, and what moved between two of them.

The machine reports these to trace hooks around every hypercall (as Xen's xentrace reports
from inside the hypervisor): host-wide, per node, and per domain the hypercall reached.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from hypervisor_model.domain import Domain
    from hypervisor_model.hypervisor import Hypervisor


@dataclass(frozen=True)
class Change:
    """One counter that moved: ``name`` went from ``before`` to ``after``."""

    name: str
    before: int
    after: int

    def __str__(self) -> str:
        return f"{self.name} {self.before}->{self.after} ({self.after - self.before:+d})"


class HeapCounters(NamedTuple):
    """The heap's counters at one moment, host-wide and per node."""

    total_avail_pages: int
    outstanding_claims: int
    node_avail_pages: list[int]
    claimed_pages: list[int]


def heap_counters(hv: Hypervisor) -> HeapCounters:
    """The heap's counters, as they are now."""
    heap = hv.heap
    with heap.lock:
        return HeapCounters(
            heap.total_avail_pages,
            heap.outstanding_claims,
            heap.node_avail_pages[:],
            heap.claimed_pages[:],
        )


def host_changes(before: HeapCounters, after: HeapCounters) -> dict[str, tuple[int, int]]:
    """The heap's counters that differ, by name (node<n>.* per node), as (before, after):
    only those are named, so a many-node host costs a comparison of two lists."""
    moved: dict[str, tuple[int, int]] = {}
    for name in ("total_avail_pages", "outstanding_claims"):
        if getattr(before, name) != getattr(after, name):
            moved[name] = (getattr(before, name), getattr(after, name))
    for name in ("node_avail_pages", "claimed_pages"):
        if getattr(before, name) != getattr(after, name):
            pairs = zip(getattr(before, name), getattr(after, name), strict=True)
            for n, (old, new) in enumerate(pairs):
                if old != new:
                    moved[f"node{n}.{name}"] = (old, new)
    return moved


def domain_counters(d: Domain) -> dict[str, int]:
    """One domain's counters, by name: d<id>.tot_pages, .claims[n], .pages_on_node<n>..."""
    prefix = f"d{d.domain_id}."
    values = {
        prefix + "tot_pages": d.tot_pages,
        prefix + "max_pages": d.max_pages,
        prefix + "outstanding_pages": d.outstanding_pages,
    }
    for n, pages in list(d.claims.items()):
        values[f"{prefix}claims[{n}]"] = pages
    for n, pages in list(d.node_pages.items()):
        values[f"{prefix}pages_on_node{n}"] = pages
    return values


class Watch:
    """The counters one hypercall can move: the host's, and those of each domain it reaches
    (looks up, creates or lists), each read when first reached, before it changes. Cheaper
    than two snapshots of every domain, and the same changes."""

    def __init__(self, hv: Hypervisor) -> None:
        self.hv = hv
        self.heap_before = heap_counters(hv)
        self.before: dict[str, int] = {}  # the reached domains' counters
        self.reached: dict[int, Domain] = {}

    def reach(self, d: Domain, *, new: bool = False) -> None:
        """``d`` is looked up (its counters as they are now) or ``new`` (none before)."""
        if d.domain_id not in self.reached:
            self.reached[d.domain_id] = d
            if not new:
                self.before.update(domain_counters(d))

    def moved(self) -> list[Change]:
        before, after = dict(self.before), {}
        for domid, d in self.reached.items():
            if self.hv.find_domain(domid) is d:  # a destroyed domain has no counters left
                after.update(domain_counters(d))
        for name, (old, new) in host_changes(self.heap_before, heap_counters(self.hv)).items():
            before[name], after[name] = old, new
        return changes(before, after)


def changes(before: dict[str, int], after: dict[str, int]) -> list[Change]:
    """The counters that differ, in a stable order (missing counts as 0)."""
    return [
        Change(name, before.get(name, 0), after.get(name, 0))
        for name in sorted(before.keys() | after.keys(), key=_order)
        if before.get(name, 0) != after.get(name, 0)
    ]


def _order(name: str) -> tuple[int, str]:
    return (0 if "." not in name else 1 if name.startswith("node") else 2, name)

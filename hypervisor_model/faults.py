"""Fault injection on an emulated host, for testing a domain builder's error paths.

Faults are machine events, not hypercalls: an allocation that fails, a populate that stops
at a given guest frame, pages taken offline (as a machine-check handler would) at a chosen
moment, or any action of your own (say, a competing builder taking memory) run just before
one of your hypercalls. Each fault fires once. Example::

    hv.faults.fail_next_allocations(2, domid=1)        # the next two extents of d1 fail
    hv.faults.fail_populate_at(domid=1, gfn=0x80000)   # the extent covering gfn 0x80000 fails
    hv.faults.offline_at_populate(1, 0x40000, mfns=range(0x1000, 0x1010))
    hv.faults.before_hypercall(lambda: other_builder.populate(...), caller=0, skip=1)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hypervisor_model.claims import ClaimHolder
    from hypervisor_model.domain import Domain
    from hypervisor_model.hypervisor import Hypervisor

Action = Callable[[], object]


class _AtGfn:
    __slots__ = ("action", "domid", "gfn")

    def __init__(self, domid: int, gfn: int, action: Action | None) -> None:
        self.domid, self.gfn = domid, gfn
        self.action = action  # None: fail the extent


class _BeforeCall:
    __slots__ = ("action", "caller", "skip")

    def __init__(self, caller: int | None, skip: int, action: Action) -> None:
        self.caller, self.skip, self.action = caller, skip, action


class Faults:
    """The faults armed on one host; all methods are safe from any thread."""

    def __init__(self, hv: Hypervisor) -> None:
        self._hv = hv
        self._lock = threading.Lock()
        self._failing: dict[int | None, int] = {}  # domid (None: any) -> allocations to fail
        self._at_gfn: list[_AtGfn] = []
        self._before: list[_BeforeCall] = []
        self._firing = threading.local()

    def clear(self) -> None:
        """Disarm every fault."""
        with self._lock:
            self._failing.clear()
            self._at_gfn.clear()
            self._before.clear()

    # -- arming -------------------------------------------------------------------------------

    def fail_next_allocations(self, count: int, domid: int | None = None) -> None:
        """Make the next ``count`` domain allocations fail (of ``domid``, or of any domain),
        as if the heap had no suitable block."""
        with self._lock:
            self._failing[domid] = self._failing.get(domid, 0) + count

    def fail_populate_at(self, domid: int, gfn: int) -> None:
        """Make populate_physmap fail at the extent of ``domid`` that covers ``gfn``."""
        with self._lock:
            self._at_gfn.append(_AtGfn(domid, gfn, None))

    def at_populate(self, domid: int, gfn: int, action: Action) -> None:
        """Run ``action`` just before the extent of ``domid`` covering ``gfn`` is populated."""
        with self._lock:
            self._at_gfn.append(_AtGfn(domid, gfn, action))

    def offline_at_populate(self, domid: int, gfn: int, mfns: Iterable[int]) -> None:
        """Take machine frames offline (free ones at once, used ones when freed) just before
        the extent of ``domid`` covering ``gfn`` is populated, as a machine check would."""
        frames = list(mfns)
        self.at_populate(domid, gfn, lambda: self.offline_now(frames))

    def before_hypercall(self, action: Action, *, caller: int | None = None, skip: int = 0) -> None:
        """Run ``action`` before the next hypercall of ``caller`` (any caller if None), after
        letting ``skip`` of them through: "between two of your calls"."""
        with self._lock:
            self._before.append(_BeforeCall(caller, skip, action))

    def offline_now(self, mfns: Iterable[int]) -> None:
        """Offline frames immediately (claims are recalled as Xen v7 does)."""
        for mfn in mfns:
            if mfn < self._hv.heap.max_page and self._hv.heap.mfn_to_nid(mfn) is not None:
                self._hv.heap.offline_page(mfn)

    # -- hooks called by the model ------------------------------------------------------------

    def allocation_fails(self, d: ClaimHolder | None) -> bool:
        """Called for every domain allocation; True to fail it."""
        if d is None or not self._failing:
            return False
        with self._lock:
            for key in (d.domain_id, None):
                if self._failing.get(key, 0) > 0:
                    self._failing[key] -= 1
                    if not self._failing[key]:
                        del self._failing[key]
                    return True
        return False

    def calm(self, d: ClaimHolder | None) -> bool:
        """True if no allocation of ``d`` is armed to fail (the next ones go through)."""
        failing = self._failing
        return not failing or d is None or not (failing.get(d.domain_id) or failing.get(None))

    def populate_armed(self, d: Domain) -> bool:
        """True if some populate extent of ``d`` has a fault or an action armed."""
        return bool(self._at_gfn) and any(f.domid == d.domain_id for f in list(self._at_gfn))

    def extent_may_populate(self, d: Domain, gfn: int, order: int) -> bool:
        """Called before each populate extent; runs due actions, False to fail the extent."""
        if not self._at_gfn:
            return True
        with self._lock:
            due = [
                f
                for f in self._at_gfn
                if f.domid == d.domain_id and gfn <= f.gfn < gfn + (1 << order)
            ]
            for f in due:
                self._at_gfn.remove(f)
        ok = True
        for f in due:
            if f.action is None:
                ok = False
            else:
                self._run(f.action)
        return ok

    def before_hypercall_hook(self, caller: int) -> None:
        """Called at the start of every hypercall."""
        if not self._before or getattr(self._firing, "active", False):
            return
        due = []
        with self._lock:
            for f in list(self._before):
                if f.caller is not None and f.caller != caller:
                    continue
                if f.skip:
                    f.skip -= 1
                    continue
                self._before.remove(f)
                due.append(f)
        for f in due:
            self._run(f.action)

    def _run(self, action: Action) -> None:
        """Run an action; hypercalls it makes do not trigger before-hypercall faults."""
        outer = getattr(self._firing, "active", False)  # an action may run inside another
        self._firing.active = True
        try:
            action()
        finally:
            self._firing.active = outer

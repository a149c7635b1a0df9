"""One emulated host: heap, domains and the hypercall entry, the model's only way in.

A hypercall is a number and argument words issued on behalf of a calling domain; it
returns Xen's ``long`` (a negative errno on failure). Structures travel as guest handles
into the caller's hypercall buffers, which the handlers reach as ``hv.caller_memory``.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from itertools import chain
from operator import index
from typing import TYPE_CHECKING, Protocol

from hypervisor_model import claims
from hypervisor_model.console import Console
from hypervisor_model.domain import Domain
from hypervisor_model.domheap import alloc_domheap_pages, guest_physmap_add_page
from hypervisor_model.errors import XenError
from hypervisor_model.faults import Faults
from hypervisor_model.guest_memory import Arena, GuestFault, GuestMemory
from hypervisor_model.heap import MAX_ORDER, Heap
from hypervisor_model.host import PAGES_PER_MIB, HostConfig, HostConfigError
from hypervisor_model.invariants import check_invariants
from hypervisor_model.memflags import MEMF_bits
from hypervisor_model.public.errno import EEXIST, EFAULT, ENOMEM, ENOSYS, ESRCH
from hypervisor_model.public.releases import release
from hypervisor_model.public.xen import (
    DOMID_ANY,
    DOMID_FIRST_RESERVED,
    HYPERVISOR_domctl,
    HYPERVISOR_memory_op,
    HYPERVISOR_multicall,
    HYPERVISOR_sysctl,
    HYPERVISOR_xen_version,
)

if TYPE_CHECKING:
    from hypervisor_model.counters import Change, Watch

WORD_MASK = (1 << 64) - 1
HYPERCALL_ARGS = 6  # x86_64 passes up to six argument registers
_NO_WORDS = [0] * HYPERCALL_ARGS  # the registers a call leaves unset read as 0

Handler = Callable[..., int]
# The hypercall table (hypercall-defs.c): where each handler lives. A handler's module is
# imported on its first call, so a process pays only for the hypercalls it makes.
HANDLERS = {
    HYPERVISOR_xen_version: ("hypervisor_model.version", "do_xen_version"),
    HYPERVISOR_memory_op: ("hypervisor_model.memory_op", "do_memory_op"),
    HYPERVISOR_multicall: ("hypervisor_model.multicall", "do_multicall"),
    HYPERVISOR_domctl: ("hypervisor_model.domctl", "do_domctl"),
    HYPERVISOR_sysctl: ("hypervisor_model.sysctl", "do_sysctl"),
}


class Scheduler(Protocol):
    """Decides which calling thread runs, where a CPU could switch to another vCPU: the
    host calls :meth:`preempt` at every hypercall entry and continuation point, where the
    calling thread holds none of the model's locks."""

    def preempt(self) -> None:
        """The calling thread may be held here while others run."""


class Hypervisor:
    """An emulated Xen host. Safe to call from many threads at once."""

    def __init__(self, host: HostConfig, *, boot: bool = True) -> None:
        """Power the host on; ``boot=False`` leaves it empty for a saved state to fill."""
        self.host = host
        self.release = release(host.xen)  # the hypercall ABI this host speaks
        self.heap = Heap(host, boot=boot)
        self.heap._recall_hook = self._recall_claims
        self.faults = Faults(self)
        self.console = Console()
        self.heap.faults = self.faults
        self.arena = Arena()  # the hypercall buffers of callers in this process
        self._running = _Running()  # per thread, as Xen's `current` is per CPU
        self.domctl_lock = threading.Lock()
        self.sysctl_lock = threading.Lock()
        self._domlist_lock = threading.Lock()
        self._domains: dict[int, Domain] = {}
        self._leaked_domids: set[int] = set()
        self._domid_last = 0
        # cpu_to_node: the online nodes' CPUs, numbered node by node (as cputopoinfo shows)
        self.cpu_node = tuple(
            n for n, node in enumerate(host.nodes) if node.online for _ in range(node.cpus)
        )
        self.nr_cpus = len(self.cpu_node)
        self._handlers: dict[int, Handler] = {}  # those called so far (see HANDLERS)
        # None: callers' threads run free, as the OS schedules them (:meth:`scheduled_by`)
        self.scheduler: Scheduler | None = None
        # A debug switch for single-threaded tests: verify every invariant after each call.
        self.check_after_each_hypercall = False
        # Probes on the machine: each is told, in the calling thread, what a hypercall moved.
        self.trace_hooks: list[Callable[[list[Change]], None]] = []
        if boot:
            self._boot_dom0()
            self.console.printk(self._boot_banner())

    # -- domains ----------------------------------------------------------------------------

    def find_domain(self, domid: int) -> Domain | None:
        """The domain with this id, dying ones included (rcu_lock_domain_by_id)."""
        d = self._domains.get(domid)
        if self.trace_hooks and d is not None:
            self._reached(d)
        return d

    def _reached(self, d: Domain, *, new: bool = False) -> None:
        """Tell this thread's counter watch, if any, that the hypercall reached ``d``."""
        watch = self._running.watch
        if watch is not None:
            watch.reach(d, new=new)

    def domain_list(self) -> list[Domain]:
        """All domains in domid order (for_each_domain)."""
        with self._domlist_lock:
            domains = [self._domains[i] for i in sorted(self._domains)]
        if self.trace_hooks:
            for d in domains:
                self._reached(d)
        return domains

    def domid_alloc(self, requested: int) -> int:
        """Reserve a domid for createdomain, as the host's release does; raises XenError.

        Master (domid_alloc): an exact free id below DOMID_FIRST_RESERVED, or for DOMID_ANY
        the next free id after the last one handed out, wrapping, never 0; none is EEXIST.
        Before 4.22 (XEN_DOMCTL_createdomain): an id in 1..DOMID_FIRST_RESERVED-1 is exact
        (EEXIST if taken); 0 or any reserved id searches on from the last id handed out,
        never trying that one again, and finding none is ENOMEM.
        """
        with self._domlist_lock:
            domains, leaked = self._domains, self._leaked_domids  # no copy of either
            last = self._domid_last
            if self.release.has_domid_any:
                exact = requested < DOMID_FIRST_RESERVED
                search = not exact and requested == DOMID_ANY
                wrapped = range(1, last + 1)
            else:
                exact = 0 < requested < DOMID_FIRST_RESERVED
                search = not exact
                wrapped = range(1, last)
            if exact and requested not in domains and requested not in leaked:
                return requested
            if search:
                for domid in chain(range(last + 1, DOMID_FIRST_RESERVED), wrapped):
                    if domid not in domains and domid not in leaked:
                        self._domid_last = domid
                        return domid
                if not self.release.has_domid_any:
                    raise XenError(ENOMEM, "no free domid")
            raise XenError(EEXIST, "domid taken or reserved")

    def leak_domid(self, domid: int) -> None:
        """Keep an id reserved for good: master never frees one whose createdomain failed
        its configuration checks (domain_create returns before the domain exists). Before
        4.22 an id is taken only while its domain exists (is_free_domid): nothing leaks."""
        if self.release.has_domid_any:
            with self._domlist_lock:
                self._leaked_domids.add(domid)

    def add_domain(self, d: Domain) -> None:
        with self._domlist_lock:
            self._domains[d.domain_id] = d
        if self.trace_hooks:
            self._reached(d, new=True)

    def remove_domain(self, d: Domain) -> None:
        with self._domlist_lock:
            self._domains.pop(d.domain_id, None)

    def _recall_claims(self, heap: Heap, node: int) -> None:
        claims.recall_after_offline(heap, node, self.domain_list())

    def _boot_dom0(self) -> None:
        """Domain 0, the control domain, running with its boot memory from the heap."""
        dom0 = Domain(
            0,
            max_vcpus=self.nr_cpus,
            nr_vcpus=self.nr_cpus,
            vcpu_online=(1 << self.nr_cpus) - 1,  # dom0 booted on all of them
            controller_pause_count=0,
            creation_finished=True,
        )
        from hypervisor_model.paging import DOMAIN_STRUCT_BITS, alloc_xenheap_page

        dom0.node_affinity = self.cpu_node_mask()  # sched_setup_dom0_vcpus
        # domain_create: the structure and shared-info pages come first (alloc_domain_struct)
        dom0.struct_page = alloc_xenheap_page(self.heap, MEMF_bits(DOMAIN_STRUCT_BITS))
        dom0.shared_info = alloc_xenheap_page(self.heap)
        if dom0.struct_page is None or dom0.shared_info is None:
            raise HostConfigError("no memory for dom0's structure: Xen cannot boot")
        pages = self.host.dom0_memory_mib * PAGES_PER_MIB
        dom0.max_pages = pages
        self.add_domain(dom0)
        gfn = 0
        while gfn < pages:
            order = min(MAX_ORDER, (pages - gfn).bit_length() - 1)
            while (mfn := alloc_domheap_pages(self.heap, dom0, order, 0)) is None:
                if order == 0:
                    raise HostConfigError(
                        f"dom0_memory: expected at most the host's free memory, "
                        f"got {self.host.dom0_memory_mib} MiB"
                    )
                order -= 1
            guest_physmap_add_page(dom0, gfn, mfn, order)
            gfn += 1 << order

    def _boot_banner(self) -> str:
        heap = self.heap
        lines = [f"Xen version {self.release.version} (xenemu model)"]
        for n, node in enumerate(self.host.nodes):
            for start, end in node.ranges if node.online else ():
                lines.append(f"NUMA: Node {n} PXM {n} [{start << 12:016x}, {(end << 12) - 1:016x}]")
        dma = f" DMA width {heap.dma_bitsize} bits" if heap.dma_bitsize else ""
        lines.append(f"Domain heap initialised{dma}")
        lines.append(f"Dom0 has maximum {self.nr_cpus} VCPUs, {self.host.dom0_memory_mib} MiB")
        return "\n".join(lines)

    def cpu_node_mask(self, cpus: int | None = None) -> int:
        """The nodes of the CPUs in the mask ``cpus`` (every CPU if None): where vCPUs with
        that affinity may run."""
        every = (1 << self.nr_cpus) - 1
        cpus = every if cpus is None else cpus & every
        return sum(1 << n for n in {self.cpu_node[c] for c in range(self.nr_cpus) if cpus >> c & 1})

    def is_control_domain(self, d: Domain) -> bool:
        return d.domain_id == 0

    # -- the hypercall entry ----------------------------------------------------------------

    @property
    def caller_memory(self) -> GuestMemory:
        """The memory of the caller whose hypercall runs in this thread, where its guest
        handles point (copy_from_guest acts on current's address space)."""
        memory = self._running.memory
        return self.arena if memory is None else memory

    def hypercall(
        self, op: int, *args: int, caller: int = 0, memory: GuestMemory | None = None
    ) -> int:
        """Issue hypercall ``op`` with argument words ``args`` as domain ``caller``.

        Guest handles are addresses in ``memory``, the caller's hypercall buffers (default:
        this process's :attr:`arena`). Returns Xen's result: non-negative on success,
        ``-errno`` on failure.
        """
        if self.scheduler is not None:
            self.scheduler.preempt()  # between two hypercalls the CPU may run another vCPU
        if len(args) > HYPERCALL_ARGS:
            raise TypeError(f"expected at most {HYPERCALL_ARGS} argument words, got {len(args)}")
        words = [index(a) & WORD_MASK for a in args]
        words += _NO_WORDS[len(words) :]
        current = self._domains.get(caller)
        if current is None:
            return -ESRCH  # only an existing domain can issue hypercalls
        if self.trace_hooks:
            self._reached(current)  # find_domain's report of the caller
        op = index(op)
        handler = self._handlers.get(op) or self._load_handler(op)
        if handler is None:
            return -ENOSYS
        self.faults.before_hypercall_hook(caller)
        running = self._running
        outer = running.memory  # a fault hook's hypercall may nest
        running.memory = memory
        try:
            if self.trace_hooks:
                rc = self._watched(current, op, words)
            else:
                rc = self.dispatch(current, op, words)
        finally:
            running.memory = outer
        if self.check_after_each_hypercall:
            check_invariants(self)
        return rc

    def _watched(self, current: Domain, op: int, words: Sequence[int]) -> int:
        """Dispatch while the machine's probes watch the counters the hypercall moves."""
        from hypervisor_model.counters import Watch

        hooks = list(self.trace_hooks)
        running = self._running
        outer = running.watch
        watch = running.watch = Watch(self)
        watch.reach(current)
        try:
            rc = self.dispatch(current, op, words)
        finally:
            running.watch = outer
        moved = watch.moved()
        for hook in hooks:
            hook(moved)
        return rc

    def dispatch(self, current: Domain, op: int, words: Sequence[int]) -> int:
        """Run hypercall ``op`` for ``current`` through the hypercall table: the one path of a
        top-level call and of each multicall entry alike (call_handlers_pv64). Xen's
        errors become its ``long`` result."""
        handler = self._handlers.get(op) or self._load_handler(op)
        if handler is None:
            return -ENOSYS
        try:
            return handler(self, current, *words)
        except XenError as e:
            return -e.errno
        except GuestFault:
            return -EFAULT

    def _load_handler(self, op: int) -> Handler | None:
        """Hypercall ``op``'s handler, its module imported now; None if Xen has none."""
        home = HANDLERS.get(op)
        if home is None:
            return None
        module, name = home
        handler: Handler = getattr(importlib.import_module(module), name)
        self._handlers[op] = handler
        return handler

    def preempt_check(self) -> None:
        """A continuation point: let other threads' hypercalls run (hypercall_preempt_check,
        true only when something else waits for the CPU: here, when another thread exists)."""
        if self.scheduler is None:
            if threading.active_count() > 1:
                time.sleep(0)
        else:
            self.scheduler.preempt()

    @contextmanager
    def scheduled_by(self, scheduler: Scheduler) -> Iterator[None]:
        """Let ``scheduler`` choose which thread runs at hypercall entries and continuation
        points while inside; the host has one scheduler at a time."""
        if self.scheduler is not None:
            raise RuntimeError("expected a host without a scheduler, got one scheduled already")
        self.scheduler = scheduler
        try:
            yield
        finally:
            self.scheduler = None

    def check_invariants(self, *, frames: bool = True) -> None:
        """Raise :class:`InvariantError` unless every accounting invariant holds
        (``frames=False``: all but the walk over every frame's owner)."""
        check_invariants(self, frames=frames)


class _Running(threading.local):
    """What runs in one thread (as Xen's ``current`` per CPU): the caller's memory, and the
    counter watch of a traced hypercall."""

    memory: GuestMemory | None = None
    watch: Watch | None = None

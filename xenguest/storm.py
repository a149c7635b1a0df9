"""A boot storm: many domain builders in parallel threads against one host.

Each builder does what libxl does for a new guest: create the domain, set max_mem,
bind its node affinity when it asks for a node, run meminit with the chosen claim mode,
and destroy the domain if the build fails. The report says, per build, whether it was
admitted, refused cleanly at claim time (nothing populated) or failed part-way (memory
populated, then thrown away), and what fraction of its memory landed on the nodes it asked
for, read from Xen's own NUMA dump (debug key 'u'), as an administrator would.

Builder threads on a host in this process take turns (:class:`Turns`): one runs at a time,
and the turn passes at hypercall entries and continuation points in an order drawn from a
seed, so a storm's interleaving, and with it its outcome, is replayed by its seed. Builder
processes on a served host run free, interleaved as the operating system schedules them.
"""

from __future__ import annotations

import multiprocessing
import queue
import random
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hypervisor_model import Hypervisor
from xenctrl import XenError
from xenctrl.domain import (
    default_createdomain,
    xc_domain_create,
    xc_domain_destroy,
    xc_domain_max_vcpus,
    xc_domain_node_setaffinity,
    xc_domain_setmaxmem,
    xc_domain_unpause,
)
from xenctrl.handle import Host, xc_interface, xc_interface_open
from xenctrl.misc import nodemap, xc_readconsolering, xc_send_debug_keys
from xenguest.boot import xc_dom_boot_image
from xenguest.dom import ClaimMode, xc_dom_allocate, xc_dom_boot_mem_init
from xenguest.errors import XenguestError
from xenguest.layout import hvm_layout, vnuma_hvm, vnuma_pv

LIBXL_MAXMEM_CONSTANT_KB = 1024  # libxl adds 1 MiB to max_mem on x86
VIDEO_MEMKB = 8192  # libxl's default for an HVM guest with cirrus
TURN_EVERY = 4  # switch points (hypercall entries, continuation points) in a turn, on average


@dataclass(frozen=True)
class BuildRequest:
    """One guest: its RAM in MiB, HVM or PV, and either a vNUMA layout ``[(pnode, MiB)]``
    or a preferred ``node`` (or neither)."""

    name: str
    memory_mib: int
    hvm: bool = True
    vnuma: tuple[tuple[int, int], ...] = ()
    node: int | None = None

    def wanted_nodes(self) -> set[int]:
        if self.vnuma:
            return {pnode for pnode, _ in self.vnuma}
        return {self.node} if self.node is not None else set()


@dataclass
class BuildResult:
    """How one build fared: its guest's name and memory, the nodes it asked for (its vNUMA
    nodes or the node it was placed on; empty: no wish) and the outcome."""

    name: str
    memory_mib: int
    wanted: frozenset[int] = frozenset()
    # "admitted", "refused" (claim refused, nothing populated), "part-way" (memory
    # populated, then thrown away) or "failed" (another error before any memory)
    outcome: str = "pending"
    domid: int | None = None
    error: str = ""
    populated_pages: int = 0
    pages_by_node: dict[int, int] = field(default_factory=dict)

    def failed(self, error: Exception) -> BuildResult:
        """Record a failed build from its libxenguest or libxenctrl error."""
        self.populated_pages = getattr(error, "populated_pages", 0)
        refused = getattr(error, "claim_refused", False)
        self.outcome = "part-way" if self.populated_pages else "refused" if refused else "failed"
        self.error = str(error)
        return self

    @property
    def locality(self) -> float | None:
        """The share of the guest's memory on the nodes it asked for (None: no wish)."""
        total = sum(self.pages_by_node.values())
        if not self.wanted or not total:
            return None
        return sum(p for n, p in self.pages_by_node.items() if n in self.wanted) / total


@dataclass
class StormReport:
    """How each build fared; for builders that took turns, the seed that ordered the turns
    and the builders in the order they had them."""

    claim_mode: ClaimMode
    results: list[BuildResult]
    seed: int | None = None
    turns: list[int] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(r.outcome == outcome for r in self.results)

    def table(self) -> str:
        """A fixed-width table, one row per build."""
        rows = [("NAME", "DOMID", "OUTCOME", "MEMORY(MiB)", "LOCALITY", "ERROR")]
        for r in self.results:
            locality = "-" if r.locality is None else f"{r.locality:.0%}"
            domid = "-" if r.domid is None or r.outcome != "admitted" else str(r.domid)
            rows.append((r.name, domid, r.outcome, str(r.memory_mib), locality, r.error))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
            for row in rows
        ]
        lines.append(self.summary())
        if self.seed is not None:
            lines.append(f"turns: seed {self.seed} (the same seed replays this storm)")
        return "\n".join(line.rstrip() for line in lines)

    def summary(self) -> str:
        """How many builds ended which way."""
        return (
            f"claim mode {self.claim_mode}: {self.count('admitted')} admitted, "
            f"{self.count('refused')} refused at claim time, "
            f"{self.count('part-way')} failed part-way"
            + (f", {self.count('failed')} failed otherwise" if self.count("failed") else "")
        )


class Turns:
    """Builders taking turns on a host (its :class:`~hypervisor_model.hypervisor.Scheduler`):
    exactly one runs at a time. ``random.Random(seed)`` draws who has the turn next (maybe
    the same builder) and for how many switch points: 1 to ``2 * every - 1``, so turns end
    anywhere in a build, not at the same step of every builder (a turn ending between a
    claim and the populate it protects is a race claims exist for). A builder that is done
    hands the turn on. With the same seed and the same work the turns fall the same way
    every run.

    Free threads contend for the heap lock and the GIL in a convoy; turns run each builder
    with the CPU to itself. The first turn is given once every builder has arrived: a
    builder running while threads are still being started would share the CPU with the
    thread starting them. No model lock is held at a switch point, so the builder given
    the turn never waits for one held by a builder without it. Threads that are not builders
    pass through the switch points untouched.
    """

    def __init__(self, builders: int, seed: int, every: int = TURN_EVERY) -> None:
        if builders < 1 or every < 1:
            raise ValueError(f"expected builders and every >= 1, got {builders} and {every}")
        self.seed, self.every = seed, every
        self.history: list[int] = []  # the builders in the order they were given the turn
        self._draw = random.Random(seed)
        self._waiting = [threading.Lock() for _ in range(builders)]  # held: not its turn
        for waiting in self._waiting:
            waiting.acquire()
        self._runnable = list(range(builders))
        self._builder: dict[int, int] = {}  # thread ident -> builder, while it runs
        self._left = 0
        self._first = self._pass()
        self._absent = builders  # builders yet to arrive
        self._arrival = threading.Lock()

    @contextmanager
    def turn(self, builder: int) -> Iterator[None]:
        """Run the calling thread as ``builder``: from its first turn until it is done."""
        with self._arrival:
            self._absent -= 1
            if not self._absent:
                self._waiting[self._first].release()
        self._waiting[builder].acquire()
        me = threading.get_ident()
        self._builder[me] = builder
        try:
            yield
        finally:
            del self._builder[me]
            self._runnable.remove(builder)
            if self._runnable:
                self._waiting[self._pass()].release()

    def preempt(self) -> None:
        """A switch point: the turn passes on after as many as were drawn for it."""
        builder = self._builder.get(threading.get_ident())
        if builder is None:
            return
        self._left -= 1
        if self._left:
            return
        chosen = self._pass()
        if chosen != builder:
            self._waiting[chosen].release()
            self._waiting[builder].acquire()  # until the turn comes back

    def _pass(self) -> int:
        """Draw the builder to hold the turn next, and its turn's length. Only the holder of
        the turn changes the state, and it is done with it before it releases the one chosen."""
        chosen = self._draw.choice(self._runnable)
        self.history.append(chosen)
        self._left = self._draw.randint(1, 2 * self.every - 1)
        return chosen


def build_domain(xch: xc_interface, request: BuildRequest, claim_mode: ClaimMode) -> BuildResult:
    """Build one guest as libxl would; a failed build leaves no domain behind."""
    result = BuildResult(request.name, request.memory_mib, frozenset(request.wanted_nodes()))
    try:
        domid = result.domid = xc_domain_create(xch, config=default_createdomain(request.hvm))
    except XenError as e:
        result.outcome, result.error = "refused", str(e)
        return result
    memkb = request.memory_mib << 10
    try:
        xc_domain_max_vcpus(xch, domid, 1)
        xc_domain_setmaxmem(xch, domid, memkb + LIBXL_MAXMEM_CONSTANT_KB)
        if request.node is not None and not request.vnuma:
            xc_domain_node_setaffinity(xch, domid, nodemap(xch, [request.node]))
        dom = xc_dom_allocate(xch, domid, "hvm-3.0-x86_32" if request.hvm else "xen-3.0-x86_64")
        dom.claim_mode = claim_mode
        if request.node is not None:
            dom.claim_on_node = request.node
        sizes = [mib << 10 for _, mib in request.vnuma]
        pnodes = [pnode for pnode, _ in request.vnuma]
        if request.hvm:
            hvm_layout(dom, memkb, video_memkb=VIDEO_MEMKB)
            if request.vnuma:
                vnuma_hvm(dom, sizes, pnodes, VIDEO_MEMKB)
        else:
            dom.total_pages = dom.target_pages = memkb >> 2
            if request.vnuma:
                vnuma_pv(dom, sizes, pnodes)
        xc_dom_boot_mem_init(dom)
        xc_dom_boot_image(dom)
        xc_domain_unpause(xch, domid)
        result.outcome = "admitted"
    except (XenguestError, XenError) as e:
        result.failed(e)
        xc_domain_destroy(xch, domid)
    return result


_DUMP = "'u' pressed -> dumping numa info"
_DOMAIN = re.compile(r"\(XEN\) d(\d+) \(total: \d+\):")
_NODE = re.compile(r"\(XEN\)     Node (\d+): (\d+)")


def pages_by_node(xch: xc_interface) -> dict[int, dict[int, int]]:
    """Each domain's pages per node, from Xen's NUMA dump (debug key 'u') on the console."""
    xc_send_debug_keys(xch, "u")
    text, _ = xc_readconsolering(xch, 1 << 20)
    dump = text.decode()
    dump = dump[dump.rindex(_DUMP) :]
    result: dict[int, dict[int, int]] = {}
    current: dict[int, int] | None = None
    for line in dump.splitlines():
        if m := _DOMAIN.match(line):
            current = result.setdefault(int(m.group(1)), {})
        elif (m := _NODE.match(line)) and current is not None:
            current[int(m.group(1))] = int(m.group(2))
    return result


J = TypeVar("J")


def run_builders(
    hv: Host,
    jobs: Sequence[J],
    build: Callable[[J], BuildResult],
    claim_mode: ClaimMode,
    builders: int | None = None,
    *,
    processes: bool = False,
    seed: int | None = None,
    turn_every: int = TURN_EVERY,
    free_running: bool = False,
) -> StormReport:
    """Run ``build`` on every job in parallel, then measure where memory landed.

    ``builders`` builders (default: one per job) start together and each takes the next
    job as it finishes one, so at most that many builds race at any moment. They are
    threads, or with ``processes`` Python processes of their own (``build`` and the jobs
    are then pickled, and a build opens its own handle on the server holding the host).

    Threads on a host in this process take turns (:class:`Turns`, of ``turn_every`` switch
    points on average) in the order of ``seed`` (default: one drawn at random, reported),
    unless ``free_running``. Elsewhere builders run free and a seed is refused (ValueError):
    the turns of callers in the server holding a host are not this process's to order.
    """
    count = min(builders or len(jobs), len(jobs))
    takes_turns = isinstance(hv, Hypervisor) and not processes and not free_running
    if seed is not None and not takes_turns:
        where = "builders running free" if free_running else "builders on a served host"
        raise ValueError(f"expected builder threads on a host in this process, got {where}")
    turns = None
    if takes_turns and count:
        turns = Turns(count, random.randrange(1_000_000) if seed is None else seed, turn_every)
    if processes:
        results = _in_processes(jobs, build, count)
    else:
        assert isinstance(hv, Hypervisor) or turns is None
        with hv.scheduled_by(turns) if turns else nullcontext():  # type: ignore[union-attr]
            results = _in_threads(jobs, build, count, turns)
    done = [r for r in results if r is not None]
    with xc_interface_open(hv) as xch:
        placement = pages_by_node(xch)
    for r in done:
        if r.outcome == "admitted" and r.domid is not None:
            r.pages_by_node = placement.get(r.domid, {})
    if turns is None:
        return StormReport(claim_mode, done)
    return StormReport(claim_mode, done, turns.seed, turns.history)


def _in_threads(
    jobs: Sequence[J], build: Callable[[J], BuildResult], count: int, turns: Turns | None
) -> list[BuildResult | None]:
    results: list[BuildResult | None] = [None] * len(jobs)
    start = threading.Barrier(count) if count and turns is None else None  # turns: at once
    pending = iter(range(len(jobs)))
    claim_next = threading.Lock()

    def builder(me: int) -> None:
        with turns.turn(me) if turns else nullcontext():
            if start is not None:
                start.wait()
            while True:
                with claim_next:
                    i = next(pending, None)
                if i is None:
                    return
                results[i] = build(jobs[i])

    threads = [threading.Thread(target=builder, args=(me,)) for me in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def _in_processes(
    jobs: Sequence[J], build: Callable[[J], BuildResult], count: int
) -> list[BuildResult | None]:
    """Builder processes (spawned: the parent may hold threads) report each result as it
    is done; a build whose process died has none."""
    if not count:
        return []
    ctx = multiprocessing.get_context("spawn")
    start, taken, done = ctx.Barrier(count), ctx.Value("i", 0), ctx.Queue()
    args = (build, list(jobs), start, taken, done)
    procs = [ctx.Process(target=_builder_process, args=args) for _ in range(count)]
    for proc in procs:
        proc.start()
    results: list[BuildResult | None] = [None] * len(jobs)
    received = 0
    while received < len(jobs):
        try:
            i, result = done.get(timeout=0.2)
        except queue.Empty:
            if all(not p.is_alive() for p in procs) and done.empty():
                break
            continue
        results[i] = result
        received += 1
    for proc in procs:
        proc.join()
    return results


def _builder_process(
    build: Callable[[J], BuildResult], jobs: list[J], start: Any, taken: Any, done: Any
) -> None:
    start.wait()
    while True:
        with taken.get_lock():
            i = taken.value
            taken.value += 1
        if i >= len(jobs):
            return
        done.put((i, build(jobs[i])))


@dataclass(frozen=True)
class LibxlBuild:
    """One build as libxl would (:func:`build_domain`), on a handle of its own: picklable
    when the host is served, so that it can run in a builder process."""

    hv: Host
    claim_mode: ClaimMode

    def __call__(self, request: BuildRequest) -> BuildResult:
        with xc_interface_open(self.hv) as xch:
            return build_domain(xch, request, self.claim_mode)


def boot_storm(
    hv: Host,
    requests: Sequence[BuildRequest],
    claim_mode: ClaimMode,
    builders: int | None = None,
    *,
    processes: bool = False,
    seed: int | None = None,
    turn_every: int = TURN_EVERY,
    free_running: bool = False,
) -> StormReport:
    """Build the requests in parallel (:func:`run_builders`: threads taking turns in the
    order of ``seed``, free-running threads, or processes on a served host), each as libxl
    would (:func:`build_domain`), and report how each fared."""
    build = LibxlBuild(hv, claim_mode)
    return run_builders(
        hv,
        requests,
        build,
        claim_mode,
        builders,
        processes=processes,
        seed=seed,
        turn_every=turn_every,
        free_running=free_running,
    )

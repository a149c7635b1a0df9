"""Many domain builders on one host at once: claims, populate, release and destroy in parallel.

Xen takes a domain's page_alloc_lock before heap_lock and lets long hypercalls give the CPU
up between chunks (hypercall continuations), so builders interleave (DESIGN.md,
"Concurrency"). These tests run real threads against one host and check, once they are
joined, the model's invariants and that every frame is free, owned, Xen's, offlined or MFN 0.
Xen's frames: nodes 1 and 2 keep 4 pages each for their free lists (init_node_heap), and
every domain costs its structure and shared-info pages, plus the paging pool of an HVM guest.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import Any

import hypervisor_model
from hypervisor_model.public import domctl, memory, sysctl
from hypervisor_model.public.domctl import XEN_DOMCTL_CLAIM_MEMORY_HOST as HOST
from hypervisor_model.public.errno import ESRCH

NODE_MIB = 64  # 3 nodes of 16384 pages: nothing runs out, so every build must succeed
NODE_PAGES = NODE_MIB * 256
TOTAL_PAGES = 3 * NODE_PAGES
HEAP_METADATA = 2 * 4  # nodes 1 and 2
DOM0_XEN_PAGES = 2  # dom0's structure and shared info
BUILD_PAGES = 1024  # 4 MiB per builder
BUILDERS = 8
TIMEOUT = 10.0  # seconds a lockstep partner may take to reach its next continuation point


def boot() -> hypervisor_model.Hypervisor:
    return hypervisor_model.boot(nodes=[NODE_MIB] * 3)


def offlined_count(dom0: Any, mfns: set[int]) -> int:
    total = 0
    for mfn in mfns:
        rc, (status,) = dom0.page_offline(sysctl.sysctl_query_page_offline, mfn, mfn)
        assert rc == 0
        total += bool(status & sysctl.PG_OFFLINE_STATUS_OFFLINED)
    return total


def xen_pages(dom0: Any, domids: list[int]) -> int:
    """What the live domains cost Xen: structure, shared info and paging pool each."""
    return sum(2 + dom0.paging_pool(domid) for domid in domids)


def exists(dom0: Any, domid: int) -> bool:
    rc, _ = dom0.domctl(domctl.XEN_DOMCTL_getdomaininfo, domid, domctl.xen_domctl_getdomaininfo)
    assert rc in (0, -ESRCH)
    return rc == 0


def build_domain(dom0: Any, i: int) -> tuple[int, bool]:
    """One builder (libxenguest's meminit order): create, max_mem, claim, populate in
    small extents, release the rest of the claim; every fourth one destroys its domain."""
    hvm = i % 2 == 0
    domid = dom0.create(hvm=hvm)
    assert dom0.max_mem(domid, BUILD_PAGES * 4) == 0
    node = i % 3
    flags = 0
    if i % 3 == 0:
        assert dom0.claim_pages(domid, BUILD_PAGES) == 0  # legacy, host-wide
    elif i % 3 == 1:
        assert dom0.claim_set(domid, [(HOST, BUILD_PAGES)]) == 0
    else:
        assert dom0.claim_set(domid, [(node, BUILD_PAGES)]) == 0
        flags = memory.XENMEMF_exact_node(node)
    order = 2 if hvm else 0  # HVM in 16 KiB extents, PV in 4 KiB ones
    per_call = 16
    gfn = 0
    while gfn < BUILD_PAGES:
        gfns = [gfn + (k << order) for k in range(per_call)]
        assert dom0.populate(domid, gfns, order, flags) == per_call
        gfn += per_call << order
    info = dom0.info(domid)
    assert (info.tot_pages, info.outstanding_pages) == (BUILD_PAGES, 0)  # claim all spent
    assert dom0.claim_pages(domid, 0) == 0  # release whatever is left (xg_dom_x86.c)
    destroyed = i % 4 == 3
    if destroyed:
        assert dom0.destroy(domid) == 0
    return domid, destroyed


def churn_claims(dom0: Any, stop: threading.Event) -> int:
    """Replace one domain's claim set again and again; GET must show each SET exactly."""
    domid = dom0.create(hvm=True)
    assert dom0.max_mem(domid, 4096 * 4) == 0
    sets = [
        [(HOST, 100)],
        [(0, 300), (1, 200)],
        [(2, 500), (HOST, 50)],
        [(1, 1000)],
        [(HOST, 0)],
    ]
    expected = [
        [(HOST, 100)],
        [(HOST, 0), (0, 300), (1, 200)],
        [(HOST, 50), (2, 500)],
        [(HOST, 0), (1, 1000)],
        [(HOST, 0)],
    ]
    rounds = 0
    while not stop.is_set() or rounds < 50:
        k = rounds % len(sets)
        assert dom0.claim_set(domid, sets[k]) == 0
        assert dom0.claim_get(domid, 65)[2] == expected[k]
        rounds += 1
    assert dom0.claim_set(domid, [(HOST, 0)]) == 0
    return domid


def churn_offline(dom0: Any, seed: int) -> set[int]:
    """Offline 300 random RAM frames (free or in use), then online every other one."""
    rng = random.Random(seed)
    mfns = rng.sample(range(1, TOTAL_PAGES), 300)
    for mfn in mfns:
        rc, _ = dom0.page_offline(sysctl.sysctl_page_offline, mfn, mfn)
        assert rc == 0
    for mfn in mfns[::2]:
        rc, _ = dom0.page_offline(sysctl.sysctl_page_online, mfn, mfn)
        assert rc == 0
    return set(mfns)


def test_parallel_builders_keep_accounting_whole(guest_class: type) -> None:
    """8 builders, a claim-set churner and an offliner at once; afterwards the invariants
    hold, claims are all released, and free + owned + offlined + MFN 0 == total."""
    hv = boot()
    dom0 = guest_class(hv)
    stop = threading.Event()
    with ThreadPoolExecutor(max_workers=BUILDERS + 2) as pool:
        churner = pool.submit(churn_claims, dom0, stop)
        offliner = pool.submit(churn_offline, dom0, 1)
        builds = [pool.submit(build_domain, dom0, i) for i in range(BUILDERS)]
        results = [b.result() for b in builds]
        stop.set()
        churn_domid = churner.result()
        offline_mfns = offliner.result()
    hv.check_invariants()
    live = [domid for domid, destroyed in results if not destroyed]
    for domid, destroyed in results:
        assert exists(dom0, domid) != destroyed
    assert len(live) == BUILDERS - BUILDERS // 4
    phys = dom0.physinfo()
    assert phys.outstanding_pages == 0  # every builder and the churner released
    owned = sum(dom0.info(domid).tot_pages for domid in [0, churn_domid, *live])
    assert owned == len(live) * BUILD_PAGES
    offlined = offlined_count(dom0, offline_mfns)
    assert 0 < offlined <= 150  # the onlined half is back
    xens = HEAP_METADATA + xen_pages(dom0, [0, churn_domid, *live])
    assert phys.free_pages + owned + xens + offlined + 1 == TOTAL_PAGES


class Lockstep:
    """A preempt_check wrapper that keeps registered threads within one continuation point
    of each other. A thread that held a lock across its continuation point would stop the
    other one from getting there; the wait then times out and ``stalled`` is set."""

    def __init__(self, original: Callable[[], None]) -> None:
        self.original = original
        self.cond = threading.Condition()
        self.passes: dict[int, int] = {}
        self.finished: set[int] = set()
        self.stalled = False

    def register(self) -> None:
        with self.cond:
            self.passes[threading.get_ident()] = 0

    def finish(self) -> None:
        with self.cond:
            self.finished.add(threading.get_ident())
            self.cond.notify_all()

    def _others_caught_up(self, me: int) -> bool:
        mine = self.passes[me]
        return all(n >= mine - 1 or t in self.finished for t, n in self.passes.items() if t != me)

    def __call__(self) -> None:
        me = threading.get_ident()
        with self.cond:
            if me in self.passes:
                self.passes[me] += 1
                self.cond.notify_all()
                if not self.stalled and not self.cond.wait_for(
                    lambda: self._others_caught_up(me), timeout=TIMEOUT
                ):
                    self.stalled = True
        self.original()


def test_two_populates_interleave_between_chunks(guest_class: type) -> None:
    """Two PV builders each populate 4096 order-0 extents on node 1 in ONE hypercall.
    Populate gives its locks up at every continuation point (memory.c preempt checks), so
    with the two held in lockstep their extents come off node 1's free list in turns: the
    MFNs (written back to PV guests) alternate between the domains in many runs."""
    hv = boot()
    dom0 = guest_class(hv)
    lockstep = Lockstep(hv.preempt_check)
    hv.preempt_check = lockstep  # type: ignore[method-assign]
    extents = 4096
    domids = [dom0.create(hvm=False, max_mib=extents // 256) for _ in range(2)]
    start = threading.Barrier(2)

    def build(domid: int) -> list[int]:
        lockstep.register()
        start.wait()
        try:
            rc, mfns = dom0.reservation(
                memory.XENMEM_populate_physmap,
                domid,
                list(range(extents)),
                0,
                memory.XENMEMF_exact_node(1),
            )
        finally:
            lockstep.finish()
        assert rc == extents
        return mfns

    with ThreadPoolExecutor(max_workers=2) as pool:
        a, b = (f.result() for f in [pool.submit(build, d) for d in domids])
    assert not lockstep.stalled, "populate held a lock across a continuation point"
    hv.check_invariants()
    owner = sorted([(mfn, 0) for mfn in a] + [(mfn, 1) for mfn in b])
    runs = 1 + sum(x[1] != y[1] for x, y in pairwise(owner))
    # 4096 extents each, preempted every 64: 64 chunks each; one domain per chunk at most.
    assert runs >= 32, f"expected the domains' extents to alternate, got {runs} runs"


def test_destroy_lets_other_domctls_run_between_batches(guest_class: type) -> None:
    """While one domain's memory is relinquished in batches, another builder's domctl
    (here max_mem on its own domain) completes: Xen re-issues destroydomain as a
    continuation, releasing the domctl lock in between (domain_kill, -ERESTART)."""
    hv = boot()
    dom0 = guest_class(hv)
    victim = dom0.create(hvm=False, max_mib=4)
    other = dom0.create(hvm=True)
    # 1024 PV extents with scattered gfns: 1024 separate runs, many relinquish batches
    gfns = random.Random(2).sample(range(1 << 20), 1024)
    assert dom0.populate(victim, gfns) == 1024
    original = hv.preempt_check
    done = threading.Event()
    results: list[int] = []
    finished_during_destroy: list[bool] = []

    def other_builder() -> None:
        results.append(dom0.max_mem(other, 1024))
        done.set()

    side = threading.Thread(target=other_builder)

    def preempt_check() -> None:
        if not side.ident:  # at the first continuation point only
            side.start()
            finished_during_destroy.append(done.wait(timeout=2.0))
        original()

    hv.preempt_check = preempt_check  # type: ignore[method-assign]
    assert dom0.destroy(victim) == 0
    side.join()
    assert results == [0]
    assert finished_during_destroy == [True], "a domctl waited for a whole destroydomain"


def run_at_first_continuation(hv: Any, action: Callable[[], None]) -> list[bool]:
    """Make the first preempt_check run ``action`` in another thread and wait for it; the
    list records whether it finished while the interrupted hypercall was suspended."""
    original = hv.preempt_check
    side = threading.Thread(target=action)
    finished: list[bool] = []

    def preempt_check() -> None:
        if not side.ident:
            side.start()
            side.join(timeout=TIMEOUT)
            finished.append(not side.is_alive())
        original()

    hv.preempt_check = preempt_check
    return finished


def test_destroy_during_populate_leaks_no_page(guest_class: type) -> None:
    """A domain destroyed while its builder is populating it: the rest of the populate
    fails (assign_pages refuses a dying domain) and every page comes back to the heap."""
    hv = boot()
    dom0 = guest_class(hv)
    domid = dom0.create(hvm=True, max_mib=16)
    rcs: list[int] = []
    finished = run_at_first_continuation(hv, lambda: rcs.append(dom0.destroy(domid)))
    done = dom0.populate(domid, range(4096))
    assert finished == [True] and rcs == [0]
    assert 0 < done < 4096  # stopped at the first extent after the destroy
    hv.check_invariants()
    assert not exists(dom0, domid)
    # all RAM but MFN 0, the heap metadata and dom0's two pages is free again
    assert dom0.physinfo().free_pages == TOTAL_PAGES - 1 - HEAP_METADATA - DOM0_XEN_PAGES


def test_two_destroys_of_one_domain(guest_class: type) -> None:
    """A second destroydomain issued while the first is between relinquish batches either
    finishes the job or finds the domain gone; nothing is freed twice (domain_kill)."""
    hv = boot()
    dom0 = guest_class(hv)
    victim = dom0.create(hvm=False, max_mib=4)
    gfns = random.Random(3).sample(range(1 << 20), 1024)
    assert dom0.populate(victim, gfns) == 1024  # 1024 runs: 16 relinquish batches
    rcs: list[int] = []
    finished = run_at_first_continuation(hv, lambda: rcs.append(dom0.destroy(victim)))
    first = dom0.destroy(victim)
    assert finished == [True]
    assert sorted([first, *rcs]) in ([0, 0], [-ESRCH, 0])  # one of them did it all
    hv.check_invariants()
    assert not exists(dom0, victim)
    assert dom0.physinfo().free_pages == TOTAL_PAGES - 1 - HEAP_METADATA - DOM0_XEN_PAGES


def test_claims_protect_builders_from_greedy_ones(guest_class: type) -> None:
    """Three builders claim 1024 pages each on their own node (v7 node claims) while three
    claimless builders populate as much as they can at the same time. Claimed memory is off
    limits to the others (alloc_heap_pages' host check, get_free_buddy's node check), so
    every claimed builder gets all 1024 pages on its node, half of them after the greedy
    ones have taken everything they could; the greedy ones share the rest."""
    node_pages = 2048  # 8 MiB nodes
    hv = hypervisor_model.boot(nodes=[8] * 3)
    dom0 = guest_class(hv)
    start = threading.Barrier(6)
    greedy_done = threading.Event()

    def claimed(node: int) -> list[int]:
        domid = dom0.create(hvm=False, max_mib=4)
        assert dom0.claim_set(domid, [(node, 1024)]) == 0
        start.wait()
        mfns: list[int] = []
        for chunk in range(16):
            if chunk == 8:  # the second half only once the greedy ones took all they could
                assert greedy_done.wait(TIMEOUT)
            gfns = range(chunk * 64, chunk * 64 + 64)
            rc, out = dom0.reservation(
                memory.XENMEM_populate_physmap, domid, gfns, 0, memory.XENMEMF_exact_node(node)
            )
            assert rc == 64, f"claimed builder on node {node} starved: {rc} of 64"
            mfns += out
        return mfns

    def greedy() -> int:
        domid = dom0.create(hvm=True, max_mib=24)
        start.wait()
        gfn = 0
        while (rc := dom0.populate(domid, range(gfn, gfn + 64))) == 64:
            gfn += 64
        return gfn + rc

    with ThreadPoolExecutor(max_workers=6) as pool:
        claims = [pool.submit(claimed, node) for node in range(3)]
        greedies = [pool.submit(greedy) for _ in range(3)]
        taken = sum(g.result() for g in greedies)
        greedy_done.set()
        mfns = [c.result() for c in claims]
    hv.check_invariants()
    for node, got in enumerate(mfns):
        assert all(node * node_pages <= mfn < (node + 1) * node_pages for mfn in got)
    # The greedy ones stop only when no unclaimed page is left. Free after boot: 3 * 2048
    # less MFN 0, dom0's 2 pages and 2 * 4 of heap metadata = 6133; creating the domains
    # takes 3 * 2 (PV) and 3 * (2 + 256) (HVM, with their HAP pools) of unclaimed memory,
    # and the claims hold 3 * 1024: 6133 - 6 - 774 - 3072 = 2281 are left to the greedy.
    assert taken == 2281
    phys = dom0.physinfo()
    assert (phys.outstanding_pages, phys.free_pages) == (0, 0)  # claims redeemed in full

"""Random builder sessions on a small 3-node host: every step keeps the accounting whole.

A hypothesis state machine creates HVM and PV domains, sets max_mem, claims (legacy
XENMEM_claim_pages and v7 claim sets), populates, increases, decreases, offlines and onlines
pages, destroys domains and batches steps into multicalls, on nodes of a few hundred pages
so that claims and exhaustion really bite (an HVM guest's 256-page HAP pool may not fit:
createdomain is then ENOMEM). After every step: the model's invariants,
physinfo.outstanding_pages equal to the domains' outstanding_pages (v7 notes §9), and every
RAM frame accounted for as free, owned, Xen's (heap metadata; each domain's structure, shared
info and paging pool), offlined or MFN 0 (fact sheet §3). Each step also checks its own
result against the rules it follows (v7 notes §2 and §8, fact sheet §2.5 and §6.1)."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

import hypervisor_model
from hypervisor_model import snapshot
from hypervisor_model.guest_memory import build, parse
from hypervisor_model.public import domctl, memory, sysctl
from hypervisor_model.public.domctl import (
    XEN_DOMCTL_CLAIM_MEMORY_HOST as HOST,
)
from hypervisor_model.public.domctl import (
    XEN_DOMCTL_CLAIM_MEMORY_LEGACY as LEGACY,
)
from hypervisor_model.public.errno import E2BIG, EINVAL, ENOENT, ENOMEM, EOPNOTSUPP, ESRCH
from hypervisor_model.public.xen import (
    HYPERVISOR_domctl,
    HYPERVISOR_memory_op,
    HYPERVISOR_multicall,
)

# Node 0 starts at MFN 0 (which the allocator never gets); node 2 has a hole at 768..1023.
RANGES = [[(0, 320)], [(320, 640)], [(640, 768), (1024, 1216)]]
TOTAL_PAGES = 320 + 320 + 128 + 192  # 960 RAM frames
HEAP_METADATA = 2 * 4  # init_node_heap: nodes 1 and 2 keep 4 pages each
MAX_PAGE = 1216  # highest RAM MFN + 1
UINT_MAX = 0xFFFFFFFF
MAX_LIVE = 4  # domUs alive at once
POD = memory.XENMEMF_populate_on_demand
HAP_P2M_TABLES = 11  # the host p2m's and ten nested p2ms' top-level tables, from the pool

small_pages_st = st.one_of(st.integers(0, 64), st.integers(0, 400))
pages_st = st.one_of(
    small_pages_st,
    st.integers(0, 1100),
    st.sampled_from([2**31, UINT_MAX, 2**32, 2**64 - 1]),
)
# Mostly HOST and online nodes; sometimes LEGACY or a target that is no online node.
target_st = st.sampled_from([HOST, 0, 1, 2] * 3 + [LEGACY, 3, 63, 0xFFFFFFFF])
entry_st = st.tuples(target_st, st.one_of(small_pages_st, small_pages_st, pages_st))
entries_st = st.one_of(
    st.lists(entry_st, min_size=1, max_size=3, unique_by=lambda e: e[0]),
    st.lists(entry_st, min_size=1, max_size=3),
)
max_memkb_st = st.one_of(
    st.sampled_from([256, 512, 800, 1200]).map(lambda pages: pages * 4),
    st.integers(0, 1200).map(lambda pages: pages * 4),
    pages_st,
)
rarely_st = st.integers(0, 9).map(lambda x: x == 0)
node_flags_st = st.sampled_from([None, 0, 1, 2, 5])


def is_ram(mfn: int) -> bool:
    return any(s <= mfn < e for node in RANGES for s, e in node)


def expected_claim_set(entries: list[tuple[int, int]], tot_pages: int) -> list[tuple[int, int]]:
    """GET after a successful SET (v7 notes §2-§3): the host entry first, then non-zero
    node claims by node; a legacy request is a target total, so tot_pages comes off."""
    host = next((p for t, p in entries if t in (HOST, LEGACY)), 0)
    if any(t == LEGACY for t, _ in entries) and host:
        host -= tot_pages
    nodes = sorted((t, p) for t, p in entries if t not in (HOST, LEGACY) and p)
    if not host and not nodes:
        return [(HOST, 0)]  # an all-zero set releases everything
    return [(HOST, host), *nodes]


# A batch step: what, for whom (BuilderSessions.pick), a page count, an order, gfns.
batch_step_st = st.tuples(
    st.sampled_from(["populate", "decrease", "claim", "max_mem"]),
    st.integers(0, 9),
    small_pages_st,
    st.integers(0, 2),
    st.lists(st.integers(0, 255), min_size=1, max_size=4),
)


def parse_vnuma(union: bytes) -> Any:
    return parse(domctl.xen_domctl_vnuma, union)


def place(hv: hypervisor_model.Hypervisor, raw: bytes) -> int:
    """Bytes in a hypercall buffer of ``hv`` that lives as long as the host."""
    buf = hv.arena.alloc(len(raw))
    buf.mem[: len(raw)] = raw
    return buf.addr


def issue_bytes(hv: hypervisor_model.Hypervisor, raw: bytes, call: Any) -> tuple[int, bytes]:
    """Issue ``call(addr)`` with ``raw`` placed at ``addr``; the result and the bytes after."""
    addr = place(hv, raw)
    op, words = call(addr)
    rc = hv.hypercall(op, *words)
    return rc, hv.arena.copy_from_guest(addr, len(raw))


def batch_calls(
    hv: hypervisor_model.Hypervisor, steps: list[tuple[Any, ...]], session: BuilderSessions
) -> list[tuple[int, list[int]]]:
    """Each step as (hypercall, argument words), its structures placed in ``hv``'s arena."""
    calls = []
    for kind, pick, pages, order, gfns in steps:
        domid = session.pick(pick)
        if kind == "max_mem":
            union = build(domctl.xen_domctl_max_mem, dict(max_memkb=pages * 4))
            raw = build(
                domctl.xen_domctl,
                dict(cmd=domctl.XEN_DOMCTL_max_mem, interface_version=0x18, domain=domid, u=union),
            )
            calls.append((HYPERVISOR_domctl, [place(hv, raw)]))
            continue
        frames = b"".join((g << order).to_bytes(8, "little") for g in gfns)
        listed = kind != "claim"
        reservation = dict(
            extent_start=place(hv, frames) if listed else 0,
            nr_extents=len(gfns) if listed else pages,
            extent_order=order if listed else 0,
            mem_flags=0,
            domid=domid,
        )
        arg = place(hv, build(memory.xen_memory_reservation, reservation))
        cmd = {
            "populate": memory.XENMEM_populate_physmap,
            "decrease": memory.XENMEM_decrease_reservation,
            "claim": memory.XENMEM_claim_pages,
        }[kind]
        calls.append((HYPERVISOR_memory_op, [cmd, arg]))
    return calls


class BuilderSessions(RuleBasedStateMachine):
    """One host per example; ``client`` is the raw hypercall client (tests' conftest)."""

    client: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.hv = hypervisor_model.boot(ranges=RANGES)
        self.dom0 = self.client(self.hv)
        self.live: list[int] = []
        self.dead: list[int] = []
        self.hvm: dict[int, bool] = {0: False}  # dom0 is PV
        self.mfns: dict[int, list[int]] = {}  # MFNs handed to PV domains
        self.offline_tried: set[int] = set()  # RAM frames ever offlined
        self.max_gpfn: dict[int, int] = {}  # XENMEM_maximum_gpfn last seen, per domain

    # -- helpers ----------------------------------------------------------------------------

    def pick(self, i: int) -> int:
        """Mostly a live domU; otherwise dom0 or a destroyed one."""
        if self.live and i < 7:
            return self.live[i % len(self.live)]
        others = [0, *self.dead]
        return others[i % len(others)]

    def tot(self, domid: int) -> int:
        return int(self.dom0.info(domid).tot_pages)

    def claims(self) -> dict[int, list[tuple[int, int]]]:
        """Every live domain's claim set (GET) plus the host total."""
        state: dict[int, Any] = {}
        for domid in [0, *self.live]:
            rc, _, entries = self.dom0.claim_get(domid, 65)
            assert rc == 0, rc
            state[domid] = entries
        state[-1] = [(0, int(self.dom0.physinfo().outstanding_pages))]
        return state

    def check_claim_result(
        self, rc: int, domid: int, entries: list[tuple[int, int]], tot: int, before: Any
    ) -> None:
        if rc:
            assert self.claims() == before, "a failed claim changed the claim state"
        else:
            _, _, got = self.dom0.claim_get(domid, 65)
            assert got == expected_claim_set(entries, tot)

    # -- domains ----------------------------------------------------------------------------

    @precondition(lambda self: len(self.live) < MAX_LIVE)
    @rule(hvm=st.booleans(), max_memkb=st.one_of(st.sampled_from([800, 1600, 4800]), max_memkb_st))
    def create(self, hvm: bool, max_memkb: int) -> None:
        free = int(self.dom0.physinfo().free_pages)
        rc, domid = self.dom0.createdomain(hvm=hvm)
        if rc == -ENOMEM:  # Xen's pages for the domain found too little unclaimed memory
            assert int(self.dom0.physinfo().free_pages) == free
            return
        assert rc == 0
        assert self.dom0.max_mem(domid, max_memkb) == 0  # as a builder would
        one_vcpu = dict(max=1)
        rc, _ = self.dom0.domctl(
            domctl.XEN_DOMCTL_max_vcpus, domid, domctl.xen_domctl_max_vcpus, one_vcpu
        )
        assert rc == 0
        assert domid not in (0, *self.live)
        self.live.append(domid)
        self.hvm[domid] = hvm
        self.mfns[domid] = []
        self.max_gpfn[domid] = 0

    @rule(pick=st.integers(0, 9), max_memkb=max_memkb_st)
    def max_mem(self, pick: int, max_memkb: int) -> None:
        domid = self.pick(pick)
        rc = self.dom0.max_mem(domid, max_memkb)
        if domid in self.dead:
            assert rc == -ESRCH
            return
        assert rc == 0
        # max_pages = min(max_memkb >> 2, UINT_MAX) (fact sheet §2.2)
        assert self.dom0.info(domid).max_pages == min(max_memkb >> 2, UINT_MAX)

    @rule(pick=st.integers(0, 9))
    def destroy(self, pick: int) -> None:
        domid = self.pick(pick)
        rc = self.dom0.destroy(domid)
        if domid == 0:
            assert rc == -EINVAL  # domain_kill refuses the caller itself
        elif domid in self.dead:
            assert rc == -ESRCH
        else:
            assert rc == 0
            self.live.remove(domid)
            self.dead.append(domid)

    # -- claims -----------------------------------------------------------------------------

    @rule(
        pick=st.integers(0, 9), pages=st.one_of(small_pages_st, pages_st), above_tot=st.booleans()
    )
    def legacy_claim(self, pick: int, pages: int, above_tot: bool) -> None:
        domid = self.pick(pick)
        before = self.claims()
        tot = self.tot(domid) if domid not in self.dead else 0
        pages = min(pages + tot, 2**64 - 1) if above_tot else pages  # a target total
        rc = self.dom0.claim_pages(domid, pages)
        assert rc in (0, -EINVAL, -ENOMEM)  # an unknown domain is EINVAL too (§2.3)
        if domid in self.dead:
            assert rc == -EINVAL
        self.check_claim_result(rc, domid, [(LEGACY, pages)], tot, before)

    @rule(
        pick=st.integers(0, 9),
        entries=entries_st,
        bad_cmd=rarely_st,
    )
    def claim_set(self, pick: int, entries: list[tuple[int, int]], bad_cmd: bool) -> None:
        domid = self.pick(pick)
        before = self.claims()
        tot = self.tot(domid) if domid not in self.dead else 0
        rc = self.dom0.claim_set(domid, entries, cmd=int(bad_cmd))
        if domid in self.dead:
            assert rc == -ESRCH
            return
        assert rc in (0, -EINVAL, -ENOENT, -ENOMEM)
        if bad_cmd:
            assert rc != 0  # the reserved cmd field must be 0
        self.check_claim_result(rc, domid, entries, tot, before)

    @rule(
        pick=st.integers(0, 9),
        to=st.sampled_from([HOST, 0, 1, 2]),
        pages=st.integers(0, 150),
    )
    def claim_one(self, pick: int, to: int, pages: int) -> None:
        """A single well-formed entry, as a builder sends (mostly succeeds)."""
        self.claim_set(pick, [(to, pages)], bad_cmd=False)

    # -- memory -----------------------------------------------------------------------------

    @rule(
        pick=st.integers(0, 9),
        gfns=st.lists(st.integers(0, 255), min_size=1, max_size=6),
        order=st.integers(0, 4),
        node=node_flags_st,
        exact=st.booleans(),
    )
    def populate(
        self, pick: int, gfns: list[int], order: int, node: int | None, exact: bool
    ) -> None:
        domid = self.pick(pick)
        flags = 0 if node is None else memory.XENMEMF_node(node)
        flags |= memory.XENMEMF_exact_node_request if exact and node is not None else 0
        tot = self.tot(domid) if domid not in self.dead else 0
        rc, out = self.dom0.reservation(
            memory.XENMEM_populate_physmap, domid, [g << order for g in gfns], order, flags
        )
        assert 0 <= rc <= len(gfns)  # a count, never an errno (fact sheet §6.1)
        if domid in self.dead:
            assert rc == 0
            return
        assert self.tot(domid) - tot == rc << order  # each extent assigns 2**order pages
        if not self.hvm.get(domid, False):
            self.mfns.setdefault(domid, []).extend(out[:rc])  # PV learns its MFNs

    @rule(
        pick=st.integers(0, 9),
        nr=st.integers(0, 6),
        order=st.integers(0, 4),
        node=node_flags_st,
    )
    def increase(self, pick: int, nr: int, order: int, node: int | None) -> None:
        domid = self.pick(pick)
        flags = 0 if node is None else memory.XENMEMF_node(node)
        tot = self.tot(domid) if domid not in self.dead else 0
        rc, _ = self.dom0.reservation(
            memory.XENMEM_increase_reservation, domid, None, order, flags, nr_extents=nr
        )
        assert 0 <= rc <= nr
        if domid not in self.dead:
            assert self.tot(domid) - tot == rc << order

    @rule(
        pick=st.integers(0, 9),
        choices=st.lists(st.integers(0, 2**16), min_size=1, max_size=4),
        order=st.integers(0, 2),
    )
    def decrease(self, pick: int, choices: list[int], order: int) -> None:
        domid = self.pick(pick)
        if self.hvm.get(domid, True):
            frames = [c % 256 for c in choices]  # gfns of the populate range
        else:
            known = self.mfns.get(domid) or [1]
            frames = [known[c % len(known)] for c in choices]  # PV frees by MFN
        tot = self.tot(domid) if domid not in self.dead else 0
        entries = self.pod(domid)[2] if self.hvm.get(domid) and domid in self.live else 0
        rc = self.dom0.decrease(domid, frames, order)
        assert 0 <= rc <= len(frames)
        if domid in self.dead:
            assert rc == 0
            return
        freed = tot - self.tot(domid)
        if entries:  # PoD deals first: entries go, memory may go to the cache or back
            assert 0 <= self.pod(domid)[2] <= entries and freed >= 0
        elif rc == len(frames):
            assert freed == rc << order
        else:  # whole extents for the count; the failing one may have freed a prefix
            assert rc << order <= freed < (rc + 1) << order

    # -- populate-on-demand -----------------------------------------------------------------

    def offlined(self) -> int:
        """RAM frames offlined so far (a pending-offline frame is offlined when freed)."""
        count = 0
        for mfn in self.offline_tried:
            rc, (status,) = self.dom0.page_offline(sysctl.sysctl_query_page_offline, mfn, mfn)
            assert rc == 0
            count += bool(status & sysctl.PG_OFFLINE_STATUS_OFFLINED)
        return count

    def free_or_offlined(self) -> int:
        return int(self.dom0.physinfo().free_pages) + self.offlined()

    def pod(self, domid: int) -> tuple[int, int, int]:
        """(tot_pages, pod_cache_pages, pod_entries) of a live HVM guest."""
        rc, counts = self.dom0.pod_target(memory.XENMEM_get_pod_target, domid)
        assert rc == 0, rc
        return counts

    @rule(
        pick=st.integers(0, 9),
        gfns=st.lists(st.integers(0, 255), min_size=1, max_size=4),
        order=st.sampled_from([0, 0, 1, 3, 9]),
    )
    def mark_pod(self, pick: int, gfns: list[int], order: int) -> None:
        """populate_physmap with XENMEMF_populate_on_demand: a count of extents; an HVM
        guest's entries grow by at most those extents (the failing one may mark a prefix),
        nothing is allocated; a PV guest's extents are all done, nothing changes; dom0
        may not mark its own."""
        domid = self.pick(pick)
        hvm = self.hvm.get(domid, False) and domid in self.live
        before = self.pod(domid) if hvm else None
        tot = self.tot(domid) if domid not in self.dead else 0
        rc, _ = self.dom0.reservation(
            memory.XENMEM_populate_physmap, domid, [g << order for g in gfns], order, POD
        )
        assert 0 <= rc <= len(gfns)
        if domid in self.dead or domid == 0:
            assert rc == 0  # no such domain; or populate-on-demand on oneself
            return
        assert self.tot(domid) == tot
        if before is None:
            assert rc == len(gfns)
            return
        after = self.pod(domid)
        assert after[:2] == before[:2]
        assert before[2] <= after[2] <= before[2] + ((rc + 1) << order)

    @rule(pick=st.integers(0, 9), pages=st.one_of(st.integers(0, 300), st.integers(0, 1300)))
    def pod_target(self, pick: int, pages: int) -> None:
        """XENMEM_set_pod_target against p2m_pod_set_mem_target's rules: nothing once memory
        is populated and no entry is left, or below tot_pages; else the cache is to hold
        target - populated, at most the entries once any memory is populated. ENOMEM keeps
        what it got; the heap pays for exactly what the cache gained."""
        target = pages
        domid = self.pick(pick)
        hvm = self.hvm.get(domid, False) and domid in self.live
        before = self.pod(domid) if hvm else None
        max_pages = int(self.dom0.info(domid).max_pages) if domid not in self.dead else 0
        free = self.free_or_offlined()
        rc, counts = self.dom0.pod_target(memory.XENMEM_set_pod_target, domid, target)
        if domid in self.dead:
            assert rc == -ESRCH
            return
        if before is None or target > max_pages:
            assert rc == -EINVAL  # a PV guest (dom0 too), or above max_pages
            assert before is None or self.pod(domid) == before
            return
        tot, cache, entries = before
        populated = tot - cache
        if (populated > 0 and entries == 0) or target < tot:
            assert (rc, counts) == (0, before)
            return
        want = min(target - populated, entries) if populated > 0 else target - populated
        after = self.pod(domid)
        if rc == 0:
            assert counts == after == (populated + want, want, entries)
        else:
            assert rc == -ENOMEM and cache <= after[1] < want
        assert self.free_or_offlined() == free - (after[1] - cache)

    # -- the paging pool ---------------------------------------------------------------------

    @rule(
        pick=st.integers(0, 9),
        pages=st.one_of(st.integers(0, 400), st.sampled_from([2**32 - 1, 2**32, 2**40])),
        odd=rarely_st,
    )
    def paging_pool(self, pick: int, pages: int, odd: bool) -> None:
        """XEN_DOMCTL_set_paging_mempool_size: whole pages below 2^32, HVM only; the pool
        becomes the size asked, the p2m tables it holds at least; ENOMEM keeps what it
        got; the heap pays for exactly what the pool gained."""
        domid = self.pick(pick)
        hvm = self.hvm.get(domid, False) and domid in self.live
        before = self.dom0.paging_pool(domid)
        free = self.free_or_offlined()
        rc, _ = self.dom0.mempool(domid, (pages << 12) + odd)
        if domid in self.dead:
            assert rc == -ESRCH
            return
        after = self.dom0.paging_pool(domid)
        if not hvm:
            assert rc == -EOPNOTSUPP
        elif odd or pages > 2**32 - 1:
            assert rc == -EINVAL and after == before
        elif rc == 0:
            assert after == max(pages, HAP_P2M_TABLES)
        else:
            assert rc == -ENOMEM and before <= after < pages
        assert self.free_or_offlined() == free - (after - before)

    # -- vNUMA ------------------------------------------------------------------------------

    def get_vnuma(self, domid: int) -> tuple[int, tuple[int, ...], bytes]:
        """XENMEM_get_vnumainfo with room for 4 vnodes, 4 ranges and 8 vCPUs: the result,
        the counts as copied back and the arrays."""
        arrays = place(self.hv, bytes(4 * 24 + 16 * 4 + 8 * 4))
        raw = build(
            memory.xen_vnuma_topology_info,
            dict(
                domid=domid,
                pad=0,
                nr_vnodes=4,
                nr_vcpus=8,
                nr_vmemranges=4,
                vmemrange=arrays,
                vdistance=arrays + 96,
                vcpu_to_vnode=arrays + 160,
            ),
        )
        rc, after = issue_bytes(
            self.hv, raw, lambda addr: (HYPERVISOR_memory_op, [memory.XENMEM_get_vnumainfo, addr])
        )
        counts = struct.unpack_from("<III", after, 4)  # nr_vnodes, nr_vcpus, nr_vmemranges
        return rc, counts, self.hv.arena.copy_from_guest(arrays, 192)

    @rule(
        pick=st.integers(0, 9),
        nr=st.sampled_from([0, 1, 2, 3]),
        vcpus=st.sampled_from([1, 1, 1, 2]),
        vnode=st.integers(0, 3),
        pnodes=st.lists(st.sampled_from([0, 1, 2, 2, 63, 64]), min_size=3, max_size=3),
        flags=rarely_st,
    )
    def set_vnuma(
        self, pick: int, nr: int, vcpus: int, vnode: int, pnodes: list[int], flags: bool
    ) -> None:
        """XEN_DOMCTL_setvnumainfo against vnuma_init's order: the vCPU count must be
        max_vcpus (EINVAL), at least one vnode (EINVAL), each vCPU on a vnode that exists
        (E2BIG), each pnode below MAX_NUMNODES (E2BIG), range flags 0 (EINVAL). A failure
        leaves the old topology; a success reads back as set."""
        domid = self.pick(pick)
        d = self.hv.find_domain(domid)
        ranges = b"".join(struct.pack("<QQII", i << 20, (i + 1) << 20, 0, i) for i in range(nr))
        if flags and nr:
            ranges = ranges[:16] + struct.pack("<I", 1) + ranges[20:]
        union = build(
            domctl.xen_domctl_vnuma,
            dict(
                nr_vnodes=nr,
                nr_vmemranges=nr,
                nr_vcpus=vcpus,
                pad=0,
                vdistance=place(self.hv, bytes(4 * max(nr * nr, 1))),
                vcpu_to_vnode=place(self.hv, struct.pack("<2I", vnode, 0)),
                vnode_to_pnode=place(self.hv, struct.pack("<3I", *pnodes)),
                vmemrange=place(self.hv, ranges or bytes(24)),
            ),
        )
        before = self.get_vnuma(domid)
        rc, _ = self.dom0.domctl(
            domctl.XEN_DOMCTL_setvnumainfo, domid, domctl.xen_domctl_vnuma, parse_vnuma(union)
        )
        if d is None:
            assert rc == -ESRCH
            return
        if vcpus != d.max_vcpus or nr == 0:
            expected = -EINVAL
        elif any(vnode >= nr for _ in range(d.max_vcpus)) or any(p >= 64 for p in pnodes[:nr]):
            expected = -E2BIG
        else:
            expected = -EINVAL if flags else 0
        assert rc == expected
        after = self.get_vnuma(domid)
        if rc:
            assert after == before
        else:
            assert after[:2] == (0, (nr, d.max_vcpus, nr))

    # -- batches ----------------------------------------------------------------------------

    @rule(steps=st.lists(batch_step_st, min_size=1, max_size=4))
    def batch(self, steps: list[tuple[Any, ...]]) -> None:
        """The steps above as entries of one multicall give each entry the result, and the
        host the state, that the same hypercalls made one by one give an identical twin
        (multicall.c: each entry is its own hypercall, in order)."""
        twin = snapshot.load_state(snapshot.save_state(self.hv))
        one_by_one = [twin.hypercall(op, *words) for op, words in batch_calls(twin, steps, self)]
        calls = batch_calls(self.hv, steps, self)
        raw = b"".join(
            struct.pack("<8Q", op, 0, *words, *[0] * (6 - len(words))) for op, words in calls
        )
        rc, after = issue_bytes(
            self.hv, raw, lambda addr: (HYPERVISOR_multicall, [addr, len(calls)])
        )
        assert rc == 0
        results = [struct.unpack_from("<q", after, 64 * i + 8)[0] for i in range(len(calls))]
        assert results == one_by_one
        assert snapshot.save_state(self.hv) == snapshot.save_state(twin)

    # -- vCPUs ------------------------------------------------------------------------------

    @rule(pick=st.integers(0, 9), online=st.booleans(), reset=rarely_st, own_cr3=st.booleans())
    def vcpu_context(self, pick: int, online: bool, reset: bool, own_cr3: bool) -> None:
        """XEN_DOMCTL_setvcpucontext on vCPU 0: an HVM context always loads; a PV one only
        with a page table the guest owns; a NULL one resets. vCPU 0 is then up exactly
        when it loaded with VGCF_online, else as before."""
        domid = self.pick(pick)
        if domid == 0 or domid in self.dead:
            return
        before = self.vcpu0_online(domid)
        d = self.hv.find_domain(domid)
        assert d is not None
        known = [mfn for mfn in self.mfns.get(domid, []) if d.pages.find(mfn)]  # still its own
        pv_ok = self.hvm[domid] or (own_cr3 and bool(known))
        ctxt = bytearray(5168)  # vcpu_guest_context: flags at 512, ctrlreg[3] at 5008
        ctxt[512] = (1 << 2) | (1 << 5 if online else 0)  # VGCF_in_kernel, VGCF_online
        ctxt[5008:5016] = ((known[0] if pv_ok and known else 1) << 12).to_bytes(8, "little")
        with self.hv.arena.alloc(len(ctxt)) as buf:
            buf.mem[: len(ctxt)] = bytes(ctxt)
            payload = dict(vcpu=0, ctxt=0 if reset else buf.addr)
            rc, _ = self.dom0.domctl(
                domctl.XEN_DOMCTL_setvcpucontext, domid, domctl.xen_domctl_vcpucontext, payload
            )
        if reset or pv_ok:
            assert rc == 0
            assert self.vcpu0_online(domid) == (online and not reset)
        else:
            assert rc == -EINVAL  # arch_set_info_guest: CR3 not the guest's
            assert self.vcpu0_online(domid) == before

    def vcpu0_online(self, domid: int) -> bool:
        zero = dict(vcpu=0, online=0, blocked=0, running=0, cpu_time=0, cpu=0)
        rc, after = self.dom0.domctl(
            domctl.XEN_DOMCTL_getvcpuinfo, domid, domctl.xen_domctl_getvcpuinfo, zero
        )
        assert rc == 0
        return bool(after.payload.online)

    @invariant()
    def vcpus_and_gpfns_agree(self) -> None:
        """getdomaininfo counts the vCPUs getvcpuinfo calls online; XENMEM_maximum_gpfn
        never goes down, and covers every gfn an HVM guest has mapped."""
        for domid in self.live:
            assert self.dom0.info(domid).nr_online_vcpus == int(self.vcpu0_online(domid))
            gpfn = self.dom0.memory_op(
                memory.XENMEM_maximum_gpfn, memory.xen_memory_domain, dict(domid=domid)
            )
            d = self.hv.find_domain(domid)
            assert d is not None
            mapped = max((run.end for run in d.p2m), default=1) - 1
            assert gpfn >= max(self.max_gpfn[domid], mapped)
            assert self.hvm[domid] or gpfn == 0  # PV: (shared-info max_pfn ?: 1) - 1
            self.max_gpfn[domid] = gpfn

    # -- offlining --------------------------------------------------------------------------

    @rule(mfn=st.integers(0, 1300))
    def offline(self, mfn: int) -> None:
        rc, status = self.dom0.page_offline(sysctl.sysctl_page_offline, mfn, mfn)
        # Not RAM: beyond max_page EINVAL alone; in a hole FAILED|NOT_CONV_RAM (§2.9)
        assert rc == (0 if is_ram(mfn) else -EINVAL), (mfn, rc, status)
        if rc == 0:
            self.offline_tried.add(mfn)

    @rule(mfn=st.integers(0, 1300))
    def online(self, mfn: int) -> None:
        rc, _ = self.dom0.page_offline(sysctl.sysctl_page_online, mfn, mfn)
        assert rc == (0 if mfn < MAX_PAGE else -EINVAL)  # online_page: only !mfn_valid fails

    # -- after every step -------------------------------------------------------------------

    @invariant()
    def model_invariants(self) -> None:
        self.hv.check_invariants()

    @invariant()
    def outstanding_and_frames_add_up(self) -> None:
        """physinfo.outstanding_pages is the sum over domains (v7 notes §9), and
        free + owned + Xen's + offlined + MFN 0 == total_pages (fact sheet §3)."""
        phys = self.dom0.physinfo()
        domains = [self.dom0.info(domid) for domid in [0, *self.live]]
        assert phys.outstanding_pages == sum(info.outstanding_pages for info in domains)
        offlined = self.offlined()
        owned = sum(info.tot_pages for info in domains)
        live = [0, *self.live]
        xens = HEAP_METADATA + sum(2 + self.dom0.paging_pool(domid) for domid in live)
        assert phys.total_pages == TOTAL_PAGES
        assert phys.free_pages + owned + xens + offlined + 1 == phys.total_pages


def test_random_builder_sessions_keep_accounting_whole(guest_class: type) -> None:
    """100 random sessions of up to 30 steps, every step checked (see the module doc)."""
    BuilderSessions.client = guest_class
    run_state_machine_as_test(
        BuilderSessions,
        settings=settings(
            max_examples=100,
            stateful_step_count=30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )


@pytest.mark.parametrize(
    ("entries", "tot", "expected"),
    [
        pytest.param([(HOST, 0)], 0, [(HOST, 0)], id="host-zero-releases"),
        pytest.param([(LEGACY, 10)], 4, [(HOST, 6)], id="legacy-is-a-target-total"),
        pytest.param([(2, 5), (HOST, 3), (0, 0)], 9, [(HOST, 3), (2, 5)], id="nodes-sorted"),
    ],
)
def test_expected_claim_set_helper(
    entries: list[tuple[int, int]], tot: int, expected: list[tuple[int, int]]
) -> None:
    """The oracle the state machine uses, pinned on hand-worked cases (v7 notes §2-§3)."""
    assert expected_claim_set(entries, tot) == expected

"""The Pythonic face of libxenctrl (xenctrl/api.py): dataclass results, claim sets as dicts,
and every method built on the ``xc_*`` calls beneath it.

Unless a test boots its own host, it uses the plugin's default host: 2 x 4096 MiB, nodes back
to back from MFN 0 (node 0 = MFNs [0, 2^20), node 1 = [2^20, 2^21)), 4 CPUs per node, dom0
with no memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import hypervisor_model
import xenctrl
from hypervisor_model.public.errno import EBADF, EBUSY, EINVAL, ENOENT, ENOMEM, ERANGE, ESRCH
from xenctrl import domain as xcd
from xenctrl import misc
from xenctrl.api import HOST, DomainInfo, NodeMemory, Numainfo, Physinfo, Xenctrl
from xenctrl.trace import HypercallRecord, Trace

MiB = 256  # pages
GiB = 1 << 30
NODE_PAGES = 4096 * MiB  # 1048576 = 2^20 pages per node of the default host


@pytest.fixture
def ctl(xenctrl_api: Xenctrl) -> Xenctrl:
    return xenctrl_api


@pytest.fixture
def domid(ctl: Xenctrl) -> int:
    """A fresh HVM domain (d1) allowed 4 GiB = 1048576 pages."""
    d = ctl.domain_create()
    ctl.domain_setmaxmem(d, 4 * 1024 * 1024)
    return d


# -- host ------------------------------------------------------------------------------------


def test_physinfo_of_two_4096_mib_nodes(ctl: Xenctrl) -> None:
    """total = 2 x 4096 MiB x 256 = 2097152 pages; MFN 0 is never given to the allocator,
    dom0's structure and shared-info pages and node 1's 4 pages of heap metadata are Xen's,
    so free = 2097145; max_mfn = max_page - 1 = 2^21 - 1; max_node_id = MAX_NUMNODES - 1."""
    assert ctl.physinfo() == Physinfo(
        nr_cpus=8,
        nr_nodes=2,
        max_node_id=63,
        cpu_khz=2_000_000,
        total_pages=2097152,
        free_pages=2097145,
        scrub_pages=0,
        outstanding_pages=0,
        max_mfn=2097151,
    )


def test_numainfo_in_bytes_with_the_distance_matrix(ctl: Xenctrl) -> None:
    """Node 0 holds MFN 0 and dom0's two pages, so its free memory is 3 pages short of
    4 GiB; node 1 keeps 4 pages for its free lists."""
    assert ctl.numainfo() == Numainfo(
        nodes=[NodeMemory(4 * GiB, 4 * GiB - 3 * 4096), NodeMemory(4 * GiB, 4 * GiB - 4 * 4096)],
        distances=[[10, 20], [20, 10]],
    )


def test_numainfo_shows_an_offline_node_as_none() -> None:
    """An offline node reads XEN_INVALID_MEM_SZ in both fields, which becomes None. (Node 0
    lacks MFN 0 and dom0's two pages; node 2, the second node to boot, 4 of heap metadata.)"""
    hv = hypervisor_model.boot(nodes=[64, 64, 64], offline=[1])
    with Xenctrl(hv) as ctl:
        nodes = ctl.numainfo().nodes
    assert nodes == [
        NodeMemory(64 << 20, (64 << 20) - 3 * 4096),
        NodeMemory(None, None),
        NodeMemory(64 << 20, (64 << 20) - 4 * 4096),
    ]


def test_free_memory_includes_claims(ctl: Xenctrl, domid: int) -> None:
    """physinfo free_pages and availheap do not subtract claims (fact sheet §6.9). Free:
    2097145 at boot, less the HVM domain's structure, shared info and 256-page HAP pool
    (128 pages of it on each node, round-robin)."""
    ctl.domain_claim_pages(domid, 1000)
    info = ctl.physinfo()
    assert (info.free_pages, info.outstanding_pages) == (2097145 - 258, 1000)
    assert ctl.availheap() == (2097145 - 258) * 4096
    assert ctl.availheap(node=1) == (NODE_PAGES - 4 - 128) * 4096


def test_maximum_ram_page_is_the_highest_frame_plus_one(ctl: Xenctrl) -> None:
    assert ctl.maximum_ram_page() == 2 * NODE_PAGES


def test_a_closed_handle_refuses_calls() -> None:
    hv = hypervisor_model.boot(nodes=[64])
    with Xenctrl(hv) as ctl:
        pass
    with pytest.raises(xenctrl.XenError) as e:
        ctl.physinfo()
    assert e.value.errno == EBADF


# -- domains ---------------------------------------------------------------------------------


def test_domain_create_returns_the_next_domid_and_getinfo_describes_it(ctl: Xenctrl) -> None:
    """domid_alloc hands out 1 after dom0. A new domain is paused, has no vCPUs online, no
    memory and max_pages 0 (fact sheet §6.2); its flags carry hvm_guest (1<<1), paused (1<<3),
    hap (1<<8) and the initial shutdown code ~0u shifted by 16: 0xFFFF010A."""
    assert ctl.domain_create() == 1
    assert ctl.domain_getinfo(1) == DomainInfo(
        domid=1,
        tot_pages=0,
        max_pages=0,
        outstanding_pages=0,
        hvm=True,
        paused=True,
        dying=False,
        shutdown=False,
        nr_online_vcpus=0,
        flags=0xFFFF010A,
    )


def test_pv_domain_and_setmaxmem_in_kib(ctl: Xenctrl) -> None:
    """max_pages = max_memkb / 4: 1048576 KiB is 262144 pages."""
    d = ctl.domain_create(hvm=False)
    ctl.domain_setmaxmem(d, 1024 * 1024)
    info = ctl.domain_getinfo(d)
    assert (info.hvm, info.max_pages) == (False, 262144)


def test_unpause_clears_paused(ctl: Xenctrl) -> None:
    d = ctl.domain_create()
    ctl.domain_unpause(d)
    assert not ctl.domain_getinfo(d).paused
    ctl.domain_pause(d)
    assert ctl.domain_getinfo(d).paused


@pytest.mark.parametrize(
    ("first", "count", "expected"),
    [(0, 1024, [0, 1, 2]), (1, 1024, [1, 2]), (0, 2, [0, 1]), (3, 1024, [])],
    ids=["all", "from-d1", "first-two", "none-left"],
)
def test_getinfolist_lists_domains_in_id_order(
    ctl: Xenctrl, first: int, count: int, expected: list[int]
) -> None:
    """sysctl getdomaininfolist: ids >= first, in domid order, at most count."""
    ctl.domain_create()
    ctl.domain_create()
    assert [i.domid for i in ctl.domain_getinfolist(first, count)] == expected


def test_destroyed_domain_is_gone_and_its_claim_released(ctl: Xenctrl, domid: int) -> None:
    ctl.domain_claim_pages(domid, 1000)
    ctl.domain_destroy(domid)
    with pytest.raises(xenctrl.XenError) as e:
        ctl.domain_getinfo(domid)
    assert e.value.errno == ESRCH
    assert [i.domid for i in ctl.domain_getinfolist()] == [0]
    assert ctl.physinfo().outstanding_pages == 0


# -- node affinity ---------------------------------------------------------------------------


def test_node_affinity_defaults_to_every_node(ctl: Xenctrl, domid: int) -> None:
    """A new domain's node_affinity is NODE_MASK_ALL: all MAX_NUMNODES = 64 bits."""
    assert ctl.domain_node_getaffinity(domid) == set(range(64))


def test_node_affinity_round_trips_as_a_set(ctl: Xenctrl, domid: int) -> None:
    ctl.domain_node_setaffinity(domid, [1])
    assert ctl.domain_node_getaffinity(domid) == {1}
    ctl.domain_node_setaffinity(domid, {0, 1})
    assert ctl.domain_node_getaffinity(domid) == {0, 1}


def test_node_affinity_without_an_online_node_is_einval(ctl: Xenctrl, domid: int) -> None:
    """domain_set_node_affinity: a mask with no online node is EINVAL (fact sheet §4)."""
    with pytest.raises(xenctrl.XenError) as e:
        ctl.domain_node_setaffinity(domid, {5})
    assert e.value.errno == EINVAL


# -- claims ----------------------------------------------------------------------------------


def test_claim_set_reads_back_host_first(ctl: Xenctrl, domid: int) -> None:
    """v7 GET lists the HOST entry first, then nodes in order, whatever order SET used;
    outstanding_pages is the whole claim 262144 + 131072 + 1024 = 394240 (v7 notes §9)."""
    ctl.domain_claim_memory(domid, {0: 262144, 1: 131072, HOST: 1024})
    claims = ctl.domain_get_claims(domid)
    assert claims == {HOST: 1024, 0: 262144, 1: 131072}
    assert list(claims) == [HOST, 0, 1]
    assert ctl.domain_getinfo(domid).outstanding_pages == 394240
    assert ctl.physinfo().outstanding_pages == 394240


def test_empty_claim_set_releases_everything(ctl: Xenctrl, domid: int) -> None:
    """{} is sent as {HOST: 0}: nothing requested, so the release path (v7 notes §2)."""
    ctl.domain_claim_memory(domid, {0: 262144, HOST: 1024})
    ctl.domain_claim_memory(domid, {})
    assert ctl.domain_get_claims(domid) == {HOST: 0}
    assert ctl.domain_getinfo(domid).outstanding_pages == 0
    assert ctl.physinfo().outstanding_pages == 0


def test_legacy_claim_reads_back_as_host_wide(ctl: Xenctrl, domid: int) -> None:
    ctl.domain_claim_pages(domid, 5000)
    assert ctl.domain_get_claims(domid) == {HOST: 5000}


def test_claim_errors_raise_with_xens_errno(ctl: Xenctrl, domid: int) -> None:
    """A node claim larger than the node's free memory (1048576 on node 1) is ENOMEM,
    node 2 does not exist (ENOENT) -- Phase 1 of domain_set_claim_entries."""
    with pytest.raises(xenctrl.XenError) as e:
        ctl.domain_claim_memory(domid, {1: NODE_PAGES + 1})
    assert e.value.errno == ENOMEM
    with pytest.raises(xenctrl.XenError) as e:
        ctl.domain_claim_memory(domid, {2: 1})
    assert e.value.errno == ENOENT


def test_get_claims_retries_erange_with_the_count_xen_reported(ctl: Xenctrl, domid: int) -> None:
    """A three-entry set does not fit the first one-entry buffer: GET answers ERANGE with
    nr_entries = 3 written back, and the retry with capacity 3 succeeds."""
    ctl.domain_claim_memory(domid, {0: 10, 1: 20, HOST: 30})
    with Trace() as t:
        claims = ctl.domain_get_claims(domid)
    assert claims == {HOST: 30, 0: 10, 1: 20}
    calls = [(r.function, *r.hypercalls()) for r in t.records]
    assert [c[0] for c in calls] == ["xc_domain_claim_memory", "xc_domain_claim_memory"]
    first, second = (c[1] for c in calls)
    assert isinstance(first, HypercallRecord) and isinstance(second, HypercallRecord)
    assert (first.decoded_in["u"]["nr_entries"], first.result) == (1, -ERANGE)
    assert first.decoded_out["u"]["nr_entries"] == 3
    assert (second.decoded_in["u"]["nr_entries"], second.result) == (3, 0)


def test_get_claims_keeps_retrying_while_the_set_grows(ctl: Xenctrl, domid: int) -> None:
    """Another toolstack thread enlarges the set between two GETs: 2 entries needed, then 3
    by the time the retry runs; the loop follows until its buffer is large enough."""
    ctl.domain_claim_memory(domid, {0: 5})  # GET needs 2: HOST 0, node 0
    hv = ctl.xch.hv
    other = Xenctrl(hv)
    hv.faults.before_hypercall(
        lambda: other.domain_claim_memory(domid, {0: 5, 1: 7}), caller=0, skip=1
    )
    with Trace() as t:
        claims = ctl.domain_get_claims(domid)
    assert claims == {HOST: 0, 0: 5, 1: 7}
    results = [
        hc.result
        for r in t.records
        if r.function == "xc_domain_claim_memory"
        for hc in r.hypercalls()
        if hc.decoded_in["u"]["mode"] == 1
    ]
    assert results == [-ERANGE, -ERANGE, 0]


def test_get_claims_passes_other_errors_through(ctl: Xenctrl) -> None:
    """GET on a domain that does not exist: ESRCH from do_domctl's lookup."""
    with pytest.raises(xenctrl.XenError) as e:
        ctl.domain_get_claims(7)
    assert e.value.errno == ESRCH


# -- memory ----------------------------------------------------------------------------------


def test_populate_returns_mfns_for_a_pv_guest(ctl: Xenctrl) -> None:
    """Node 1 is MFNs [2^20, 2^21), whose first 4 pages hold its free lists: the heap gets
    [2^20 + 4, 2^21) as blocks of orders 2, 3, ..., 17 at 2^20 + 2^k, then order-18 ones.
    An order-0 request takes the smallest, the order-2 block at 1048580, and splits it
    keeping the upper half each time: 1048583; the next takes the order-0 lower half left
    by the last split, 1048582; the third splits the order-1 block 1048580-1 and keeps
    1048581."""
    d = ctl.domain_create(hvm=False)
    ctl.domain_setmaxmem(d, 1024)
    mfns = ctl.domain_populate_physmap(d, [0, 1, 2], mem_flags=xenctrl.XENMEMF_exact_node(1))
    assert mfns == [1048583, 1048582, 1048581]
    assert ctl.domain_getinfo(d).tot_pages == 3


def test_populate_round_robins_nodes_for_a_fresh_domain(ctl: Xenctrl) -> None:
    """Node-less extents start after last_alloc_node 0, i.e. on node 1 (1048583, see above),
    then node 0, whose highest zone holds the order-18 buddy at 3 x 2^18 = 786432 (freed
    after 2^19), split at its top by dom0 (1048575, 1048574) and by this domain's structure
    and shared info (1048573, 1048572): the order-2 block left at 1048568 gives 1048571;
    then node 1 again: 1048582."""
    d = ctl.domain_create(hvm=False)
    ctl.domain_setmaxmem(d, 1024)
    assert ctl.domain_populate_physmap(d, [0, 1, 2]) == [1048583, 1048571, 1048582]


def test_populate_returns_the_gfns_for_an_hvm_guest(ctl: Xenctrl, domid: int) -> None:
    """A translated guest's list is left as it was: Xen writes MFNs back for PV only."""
    assert ctl.domain_populate_physmap(domid, [0, 512, 1024], order=9) == [0, 512, 1024]
    assert ctl.domain_getinfo(domid).tot_pages == 3 * 512


def test_populate_short_is_ebusy_with_what_was_done_kept(ctl: Xenctrl) -> None:
    """max_pages 2 (8 KiB): the third extent fails assign_pages; _exact reports EBUSY, and
    the two extents done stay allocated."""
    d = ctl.domain_create()
    ctl.domain_setmaxmem(d, 8)
    with pytest.raises(xenctrl.XenError) as e:
        ctl.domain_populate_physmap(d, [0, 1, 2])
    assert e.value.errno == EBUSY
    assert ctl.domain_getinfo(d).tot_pages == 2


def test_decrease_reservation_gives_pv_frames_back(ctl: Xenctrl) -> None:
    d = ctl.domain_create(hvm=False)
    ctl.domain_setmaxmem(d, 1024)
    mfns = ctl.domain_populate_physmap(d, [0, 1, 2])
    ctl.domain_decrease_reservation(d, mfns)
    assert ctl.domain_getinfo(d).tot_pages == 0
    assert ctl.physinfo().free_pages == 2097145 - 2  # the domain's two pages stay Xen's


# -- built on the xc_* calls -----------------------------------------------------------------

Method = Callable[[Xenctrl, int], Any]

LAYERING: list[tuple[str, Method, list[str]]] = [
    ("physinfo", lambda c, d: c.physinfo(), ["xc_physinfo"]),
    ("numainfo", lambda c, d: c.numainfo(), ["xc_numainfo"]),
    ("domain_create", lambda c, d: c.domain_create(), ["xc_domain_create"]),
    ("domain_getinfo", lambda c, d: c.domain_getinfo(d), ["xc_domain_getinfo_single"]),
    ("domain_getinfolist", lambda c, d: c.domain_getinfolist(), ["xc_domain_getinfolist"]),
    (
        "domain_node_setaffinity",
        lambda c, d: c.domain_node_setaffinity(d, {0}),
        ["xc_get_nodemap_size", "xc_domain_node_setaffinity"],
    ),
    (
        "domain_claim_memory",
        lambda c, d: c.domain_claim_memory(d, {HOST: 1}),
        ["xc_domain_claim_memory"],
    ),
    ("domain_claim_pages", lambda c, d: c.domain_claim_pages(d, 1), ["xc_domain_claim_pages"]),
    (
        "domain_populate_physmap",
        lambda c, d: c.domain_populate_physmap(d, [0]),
        ["xc_domain_populate_physmap_exact"],
    ),
]


@pytest.mark.parametrize(
    ("method", "expected"), [m[1:] for m in LAYERING], ids=[m[0] for m in LAYERING]
)
def test_each_method_is_made_of_xc_calls(
    ctl: Xenctrl, domid: int, method: Method, expected: list[str]
) -> None:
    """A trace of a Xenctrl method shows the libxenctrl calls it made, with every hypercall
    inside them: the class adds no hypercall of its own."""
    with Trace() as t:
        method(ctl, domid)
    assert [r.function for r in t.records] == expected
    assert all(r.layer == "xenctrl" for r in t.records)


def test_claim_memory_hands_xc_domain_claim_memory_a_set(
    ctl: Xenctrl, domid: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dict becomes SET with one memory_claim_t per item, in the dict's order."""
    seen: list[tuple[int, int, list[tuple[int, int]]]] = []
    real = xcd.xc_domain_claim_memory

    def spy(xch: Any, d: int, mode: int, nr: int, claim_set: Any = None) -> int:
        seen.append((mode, nr, [(c.target, c.pages) for c in claim_set]))
        return real(xch, d, mode, nr, claim_set)

    monkeypatch.setattr(xcd, "xc_domain_claim_memory", spy)
    ctl.domain_claim_memory(domid, {0: 7, HOST: 9})
    assert seen == [(xenctrl.XEN_DOMCTL_CLAIM_MEMORY_SET, 2, [(0, 7), (HOST, 9)])]


def test_physinfo_is_read_through_xc_physinfo(
    ctl: Xenctrl, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = misc.xc_physinfo

    def fake(xch: Any) -> Any:
        info = real(xch)
        info.free_pages = 42
        return info

    monkeypatch.setattr(misc, "xc_physinfo", fake)
    assert ctl.physinfo().free_pages == 42

"""System control (physinfo, numainfo, getdomaininfolist, availheap) and the simple
memory_op queries (maximum_ram_page, current / maximum_reservation).

Expected numbers are worked out from Xen master's rules: do_sysctl (xen/common/sysctl.c),
avail_domheap_pages_region and avail_node_heap_pages (common/page_alloc.c),
get_upper_mfn_bound and arch_do_physinfo (arch/x86), __node_distance (arch/x86/srat.c),
do_memory_op (common/memory.c) and the fact sheet (sections 1.5, 3). Page zones: zone z
holds MFNs [2^(z-1), 2^z), and MFN 0 never reaches the allocator.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypercalls import createdomain_payload

import hypervisor_model
from hypervisor_model.guest_memory import build, parse
from hypervisor_model.public import domctl, memory, sysctl
from hypervisor_model.public.errno import EFAULT, EINVAL, EPERM, ESRCH
from hypervisor_model.public.sysctl import XEN_INVALID_MEM_SZ, XEN_INVALID_NODE_DIST
from hypervisor_model.public.xen import (
    DOMID_ANY,
    DOMID_IO,
    DOMID_SELF,
    HYPERVISOR_memory_op,
    HYPERVISOR_sysctl,
)

Hypervisor = hypervisor_model.Hypervisor
Guest = Any  # the raw client of conftest.py, reached through the guest_class fixture

MiB = 256  # pages
NODE_PAGES = 4096 * MiB  # 1048576 = 2^20 pages per node of the default host
# Free after boot: node 0 lacks MFN 0 and dom0's structure and shared-info pages (0xFFFFF and
# 0xFFFFE, the top of its highest zone); node 1 gives its head, 0x100000-0x100003, to its
# free lists (init_node_heap).
NODE0_FREE, NODE1_FREE = NODE_PAGES - 1 - 2, NODE_PAGES - 4
FREE = NODE0_FREE + NODE1_FREE  # 2097145
PV_DOMAIN_PAGES = 2  # a PV domain's structure and shared info, taken from node 0
INV = XEN_INVALID_NODE_DIST
MEMINFO_SIZE, INFO_SIZE = 16, 112  # xen_sysctl_meminfo, xen_domctl_getdomaininfo

# Three nodes: node 0 has a hole (MFNs 0x10000-0x1FFFF), node 1 is offline, and the SLIT
# is asymmetric with undefined (<= 9) and unreachable (0xFF) entries.
HOLEY_RANGES = [[(0, 0x10000), (0x20000, 0x30000)], [(0x30000, 0x40000)], [(0x40000, 0x50000)]]
HOLEY_SLIT = [[10, 21, 0xFF], [22, 10, 5], [30, 6, 10]]


@pytest.fixture
def holey(guest_class: type[Guest]) -> Iterator[Guest]:
    hv = hypervisor_model.boot(ranges=HOLEY_RANGES, offline=[1], distances=HOLEY_SLIT)
    hv.check_after_each_hypercall = True
    yield guest_class(hv, 0)
    hv.check_invariants()


@pytest.fixture
def dom0_512(guest_class: type[Guest]) -> Iterator[Guest]:
    """dom0 of a 2 x 4096 MiB host booted with 512 MiB (131072 pages) for dom0."""
    hv = hypervisor_model.boot(nodes=[4096, 4096], dom0_memory=512)
    hv.check_after_each_hypercall = True
    yield guest_class(hv, 0)
    hv.check_invariants()


def claimed_domain(g: Guest, pages: int) -> int:
    """A PV domain holding a legacy claim of ``pages`` (max_mem just large enough)."""
    domid = g.create(hvm=False)
    assert g.max_mem(domid, pages * 4) == 0
    assert g.claim_pages(domid, pages) == 0
    return int(domid)


# -- physinfo -------------------------------------------------------------------------------

PHYSCAPS = (
    sysctl.XEN_SYSCTL_PHYSCAP_hvm
    | sysctl.XEN_SYSCTL_PHYSCAP_pv
    | sysctl.XEN_SYSCTL_PHYSCAP_hap
    | sysctl.XEN_SYSCTL_PHYSCAP_shadow
    | sysctl.XEN_SYSCTL_PHYSCAP_gnttab_v1
    | sysctl.XEN_SYSCTL_PHYSCAP_gnttab_v2
)  # 1 + 2 + 8 + 16 + 256 + 512 = 0x31B: no IOMMU (directio), vmtrace or vPMU


def test_physinfo_of_a_2x4096_mib_host(dom0: Guest) -> None:
    """Two nodes of 4 CPUs (one socket each, one thread per core) and 2^20 pages each."""
    pi = dom0.physinfo()
    expected = dict(
        threads_per_core=1,
        cores_per_socket=4,
        nr_cpus=8,
        max_cpu_id=7,
        nr_nodes=2,
        max_node_id=63,  # MAX_NUMNODES - 1, whatever the topology
        cpu_khz=dom0.hv.host.cpu_khz,
        capabilities=PHYSCAPS,
        arch_capabilities=0,
        total_pages=2 * NODE_PAGES,  # 2097152
        free_pages=FREE,  # all but MFN 0, dom0's two pages and node 1's heap metadata
        scrub_pages=0,
        outstanding_pages=0,
        max_mfn=2 * NODE_PAGES - 1,  # min(max_page 0x200000, 2^32) - 1
    )
    assert {k: pi[k] for k in expected} == expected
    assert pi.capabilities == 0x31B


def test_physinfo_with_dom0_memory(dom0_512: Guest) -> None:
    """dom0's 512 MiB (131072 pages) are no longer free; total and max_mfn do not move."""
    pi = dom0_512.physinfo()
    assert (pi.total_pages, pi.free_pages) == (2097152, FREE - 131072)
    assert (pi.outstanding_pages, pi.max_mfn) == (0, 0x1FFFFF)


def test_physinfo_free_pages_include_claimed_pages(dom0: Guest) -> None:
    claimed_domain(dom0, 2048)
    pi = dom0.physinfo()
    assert (pi.free_pages, pi.outstanding_pages) == (FREE - PV_DOMAIN_PAGES, 2048)


@pytest.mark.parametrize(
    ("ranges", "total", "max_mfn"),
    [
        ([[(0, 0x10000), (0x20000, 0x30000)]], 0x20000, 0x2FFFF),  # the hole is not RAM
        ([[(0, 0x40000), (0x2_0000_0000, 0x2_0004_0000)]], 0x80000, 0xFFFFFFFF),  # 2^32 cap
    ],
    ids=["hole", "beyond-16-TiB"],
)
def test_physinfo_max_mfn_is_max_page_capped_at_2_pow_32_minus_1(
    guest_class: type[Guest], ranges: list[Any], total: int, max_mfn: int
) -> None:
    """get_upper_mfn_bound without CONFIG_BIGMEM: min(max_page, 2^32) - 1."""
    pi = guest_class(hypervisor_model.boot(ranges=ranges), 0).physinfo()
    assert (pi.nr_nodes, pi.total_pages, pi.max_mfn) == (1, total, max_mfn)


def test_physinfo_keeps_the_callers_union_bytes_beyond_112(dom0: Guest) -> None:
    tail = bytes(range(0xB0, 0xC0))
    raw = build(
        sysctl.xen_sysctl,
        dict(
            cmd=sysctl.XEN_SYSCTL_physinfo,
            interface_version=sysctl.XEN_SYSCTL_INTERFACE_VERSION,
            u=bytes(112) + tail,
        ),
    )
    with dom0.hv.arena.alloc(len(raw)) as buf:
        buf.mem[: len(raw)] = raw
        assert dom0.hv.hypercall(HYPERVISOR_sysctl, buf.addr) == 0
        assert parse(sysctl.xen_sysctl, bytes(buf.mem[: len(raw)])).u[112:] == tail


# -- numainfo -------------------------------------------------------------------------------


def numainfo(
    g: Guest, num_nodes: int, rows: int | None, dist: int | None
) -> tuple[int, int, list[tuple[int, int]], list[int]]:
    """numainfo with buffers of ``rows`` meminfo rows and ``dist`` distances (None: NULL
    handle), pre-filled with 0xEE; returns rc, num_nodes after, the rows, the distances."""
    arena = g.hv.arena
    mem = arena.alloc(rows * MEMINFO_SIZE) if rows is not None else None
    dst = arena.alloc(dist * 4) if dist is not None else None
    for b in (mem, dst):
        if b is not None:
            b.mem[: b.size] = b"\xee" * b.size
    payload = dict(
        num_nodes=num_nodes,
        meminfo=mem.addr if mem else 0,
        distance=dst.addr if dst else 0,
    )
    rc, ni = g.sysctl(sysctl.XEN_SYSCTL_numainfo, sysctl.xen_sysctl_numainfo, payload)
    meminfo = [
        (m.memsize, m.memfree)
        for m in (
            parse(sysctl.xen_sysctl_meminfo, bytes(mem.mem[i * 16 : i * 16 + 16]))
            for i in range(rows or 0)
        )
    ]
    distances = [int.from_bytes(dst.mem[i * 4 : i * 4 + 4], "little") for i in range(dist or 0)]
    for b in (mem, dst):
        if b is not None:
            b.free()
    return rc, ni.num_nodes, meminfo, distances


UNTOUCHED_ROW = (0xEEEEEEEEEEEEEEEE, 0xEEEEEEEEEEEEEEEE)
UNTOUCHED = 0xEEEEEEEE


@pytest.mark.parametrize("asked", [0, 1, 99])
def test_numainfo_size_query_returns_the_node_count(dom0: Guest, asked: int) -> None:
    """Both handles NULL: num_nodes = last online node + 1 = 2, whatever was passed."""
    assert numainfo(dom0, asked, None, None)[:2] == (0, 2)


@pytest.mark.parametrize(
    ("boot", "count"),
    [
        (dict(nodes=[64, 64, 64], offline=[2]), 2),
        (dict(nodes=[64, 64, 64], offline=[1]), 3),  # a count, not the online nodes (2)
        (dict(nodes=[64, 64, 64], offline=[0, 1]), 3),
    ],
    ids=["last-offline", "middle-offline", "only-last-online"],
)
def test_numainfo_count_is_last_online_node_plus_1(
    guest_class: type[Guest], boot: dict[str, Any], count: int
) -> None:
    g = guest_class(hypervisor_model.boot(**boot), 0)
    assert numainfo(g, 0, None, None)[:2] == (0, count)


def test_numainfo_of_the_2x4096_host(dom0: Guest) -> None:
    """4 GiB spanned per node, free as booted (NODE0_FREE, NODE1_FREE); no SLIT: 10 / 20."""
    rc, count, rows, dist = numainfo(dom0, 2, 2, 4)
    assert (rc, count) == (0, 2)
    assert rows == [(4 << 30, NODE0_FREE << 12), (4 << 30, NODE1_FREE << 12)]
    assert dist == [10, 20, 20, 10]


def test_numainfo_rows_and_distances(holey: Guest) -> None:
    """Node 0 spans 0x30000 pages (its hole included) and has 0x20000 - 3 free (no MFN 0,
    nor dom0's 0x2FFFF and 0x2FFFE); node 1 is offline; node 2's range starts 1 GiB-aligned
    and ends less aligned, so its tail (0x4FFFC-0x4FFFF) holds its free lists; distances are
    row-major, 0xFF and values <= 9 become XEN_INVALID_NODE_DIST."""
    rc, count, rows, dist = numainfo(holey, 3, 3, 9)
    assert (rc, count) == (0, 3)
    assert rows == [
        (0x30000 << 12, (0x20000 - 3) << 12),  # 805306368, 536858624
        (XEN_INVALID_MEM_SZ, XEN_INVALID_MEM_SZ),  # 0x00000000FFFFFFFF
        (0x10000 << 12, (0x10000 - 4) << 12),  # 268435456, 268419072
    ]
    assert dist == [10, 21, INV, 22, 10, INV, 30, INV, 10]


def test_numainfo_with_a_smaller_buffer_writes_fewer_rows(holey: Guest) -> None:
    """Room for 2 of 3 nodes: rows 0-1 and a 2 x 2 distance matrix (indexed with the
    clamped count); num_nodes keeps the caller's 2, not the 3 needed."""
    rc, count, rows, dist = numainfo(holey, 2, 3, 9)
    assert (rc, count) == (0, 2)
    assert rows[:2] == [(0x30000 << 12, (0x20000 - 3) << 12), (XEN_INVALID_MEM_SZ,) * 2]
    assert rows[2] == UNTOUCHED_ROW
    assert dist == [10, 21, 22, 10] + [UNTOUCHED] * 5


def test_numainfo_with_a_larger_capacity_reports_the_count(holey: Guest) -> None:
    rc, count, rows, _ = numainfo(holey, 5, 5, None)
    assert (rc, count) == (0, 3)
    assert rows[3:] == [UNTOUCHED_ROW] * 2


def test_numainfo_distance_only(holey: Guest) -> None:
    assert numainfo(holey, 3, None, 9)[:2] == (0, 3)


def test_numainfo_memfree_includes_claimed_pages(dom0: Guest) -> None:
    claimed_domain(dom0, 2048)
    rows = numainfo(dom0, 2, 2, None)[2]
    assert [free for _, free in rows] == [(NODE0_FREE - PV_DOMAIN_PAGES) << 12, NODE1_FREE << 12]


def test_numainfo_with_a_short_meminfo_buffer_is_efault(dom0: Guest) -> None:
    """Row 0 (meminfo, then distances) is written; row 1's meminfo faults, and the op is not
    copied back, so num_nodes keeps the caller's 5."""
    rc, count, rows, dist = numainfo(dom0, 5, 1, 4)
    assert (rc, count) == (-EFAULT, 5)
    assert rows == [(4 << 30, NODE0_FREE << 12)]
    assert dist == [10, 20, UNTOUCHED, UNTOUCHED]


# -- getdomaininfolist ----------------------------------------------------------------------


@pytest.fixture
def four_domains(dom0: Guest) -> Guest:
    """Domains 0, 1, 3 and 7: create 1, 2, 3 and 7, then destroy 2."""
    assert [dom0.create() for _ in range(3)] == [1, 2, 3]
    assert dom0.create(7) == 7
    assert dom0.destroy(2) == 0
    return dom0


def domaininfolist(
    g: Guest, first: int, max_domains: int, capacity: int
) -> tuple[int, int, list[int | None]]:
    """Returns rc, num_domains after, and each buffer slot's domain (None: untouched)."""
    with g.hv.arena.alloc(capacity * INFO_SIZE) as buf:
        buf.mem[: buf.size] = b"\xee" * buf.size
        payload = dict(
            first_domain=first, max_domains=max_domains, buffer=buf.addr, num_domains=0xDEAD
        )
        rc, out = g.sysctl(
            sysctl.XEN_SYSCTL_getdomaininfolist, sysctl.xen_sysctl_getdomaininfolist, payload
        )
        slots: list[int | None] = []
        for i in range(capacity):
            raw = bytes(buf.mem[i * INFO_SIZE : (i + 1) * INFO_SIZE])
            slots.append(
                None
                if raw == b"\xee" * INFO_SIZE
                else parse(domctl.xen_domctl_getdomaininfo, raw).domain
            )
    return rc, out.num_domains, slots


@pytest.mark.parametrize(
    ("first", "max_domains", "listed"),
    [
        (0, 10, [0, 1, 3, 7]),
        (2, 10, [3, 7]),
        (7, 10, [7]),
        (8, 10, []),
        (0, 2, [0, 1]),
        (1, 1, [1]),
        (0, 0, []),
    ],
    ids=["all", "from-2", "from-7", "from-8", "max-2", "from-1-max-1", "max-0"],
)
def test_getdomaininfolist_walks_domains_in_domid_order(
    four_domains: Guest, first: int, max_domains: int, listed: list[int]
) -> None:
    rc, num, slots = domaininfolist(four_domains, first, max_domains, 5)
    assert (rc, num) == (0, len(listed))
    assert slots == [*listed, *[None] * (5 - len(listed))]


def test_getdomaininfolist_records_are_getdomaininfo(four_domains: Guest) -> None:
    """Each record is the same struct getdomaininfo fills (xc_domaininfo_t)."""
    g = four_domains
    with g.hv.arena.alloc(2 * INFO_SIZE) as buf:
        payload = dict(first_domain=3, max_domains=2, buffer=buf.addr, num_domains=0)
        rc, _ = g.sysctl(
            sysctl.XEN_SYSCTL_getdomaininfolist, sysctl.xen_sysctl_getdomaininfolist, payload
        )
        records = [
            parse(domctl.xen_domctl_getdomaininfo, bytes(buf.mem[i * 112 : (i + 1) * 112]))
            for i in range(2)
        ]
    assert rc == 0
    assert records == [g.info(3), g.info(7)]
    assert records[0].flags == 0xFFFF010A  # paused | hap | hvm_guest | shutdown ~0u


def test_getdomaininfolist_with_a_short_buffer_is_efault(four_domains: Guest) -> None:
    """Record 0 fits, record 1 faults: EFAULT and no copy-back of num_domains."""
    with four_domains.hv.arena.alloc(INFO_SIZE) as buf:
        payload = dict(first_domain=0, max_domains=4, buffer=buf.addr, num_domains=0xDEAD)
        rc, out = four_domains.sysctl(
            sysctl.XEN_SYSCTL_getdomaininfolist, sysctl.xen_sysctl_getdomaininfolist, payload
        )
        first = parse(domctl.xen_domctl_getdomaininfo, bytes(buf.mem[:INFO_SIZE]))
    assert (rc, out.num_domains, first.domain) == (-EFAULT, 0xDEAD, 0)


# -- availheap ------------------------------------------------------------------------------

# Node 0 holds MFNs 1..2^20-1: zone 1 one page (MFN 1), zone z in 2..20 2^(z-1) pages, less
# dom0's two in zone 20. Node 1 holds MFNs 2^20+4..2^21-1, all of zone 21.
AVAILHEAP = {
    "all": (0, 0, -1, FREE),
    "node-0": (0, 0, 0, NODE0_FREE),
    "node-1": (0, 0, 1, NODE1_FREE),
    "below-4G": (0, 32, -1, NODE0_FREE),  # zones 1..20
    "from-4G": (33, 0, -1, NODE1_FREE),  # zones 21..40
    "below-1M": (0, 20, -1, 255),  # zones 1..8: MFNs 1..255
    "zone-1": (13, 13, -1, 1),
    "zone-2": (14, 14, -1, 2),  # MFNs 2, 3
    "width-12-is-zone-1": (12, 12, -1, 1),  # bits_to_zone(b < 13) = 1
    "width-1-is-zone-1": (1, 1, -1, 1),
    "max-60-clamps-to-40": (0, 60, -1, FREE),
    "max-ffffffff-is-zone-1": (0, 0xFFFFFFFF, -1, 1),  # (int)(0xFFFFFFFF - 12) < 1
    "min-ffffffff-is-zone-1": (0xFFFFFFFF, 0, -1, FREE),
    "min-above-max": (40, 20, -1, 0),  # zones 28..8: none
    "node-2-does-not-exist": (0, 0, 2, 0),
    "node-63": (0, 0, 63, 0),
    "node-minus-2": (0, 0, -2, 0),
}


@pytest.mark.parametrize("case", AVAILHEAP.values(), ids=AVAILHEAP.keys())
def test_availheap_counts_free_bytes_in_a_zone_range(
    dom0: Guest, case: tuple[int, int, int, int]
) -> None:
    min_w, max_w, node, pages = case
    payload = dict(min_bitwidth=min_w, max_bitwidth=max_w, node=node, avail_bytes=0xDEAD)
    rc, ah = dom0.sysctl(sysctl.XEN_SYSCTL_availheap, sysctl.xen_sysctl_availheap, payload)
    assert (rc, ah.avail_bytes) == (0, pages << 12)
    assert (ah.min_bitwidth, ah.max_bitwidth, ah.node) == (min_w, max_w, node)


def test_availheap_does_not_subtract_claims(dom0: Guest) -> None:
    claimed_domain(dom0, 2048)
    payload = dict(min_bitwidth=0, max_bitwidth=0, node=-1, avail_bytes=0)
    rc, ah = dom0.sysctl(sysctl.XEN_SYSCTL_availheap, sysctl.xen_sysctl_availheap, payload)
    assert (rc, ah.avail_bytes) == (0, (FREE - PV_DOMAIN_PAGES) << 12)


def test_availheap_of_an_offline_node_is_0(guest_class: type[Guest]) -> None:
    """for_each_online_node: nodes 0 and 2 online (64 MiB each, node 0 without MFN 0 and
    dom0's two pages, node 2 without its 4 pages of heap metadata)."""
    g = guest_class(hypervisor_model.boot(nodes=[64, 64, 64], offline=[1]), 0)
    got = []
    for node in (1, -1):
        payload = dict(min_bitwidth=0, max_bitwidth=0, node=node, avail_bytes=0)
        got.append(g.sysctl(sysctl.XEN_SYSCTL_availheap, sysctl.xen_sysctl_availheap, payload))
    free = 2 * 64 * MiB - 1 - 2 - 4
    assert [(rc, ah.avail_bytes) for rc, ah in got] == [(0, 0), (0, free << 12)]


# -- privilege ------------------------------------------------------------------------------

SYSCTLS = {
    "physinfo": (sysctl.XEN_SYSCTL_physinfo, None, None),
    "numainfo": (
        sysctl.XEN_SYSCTL_numainfo,
        sysctl.xen_sysctl_numainfo,
        dict(num_nodes=0, meminfo=0, distance=0),
    ),
    "getdomaininfolist": (
        sysctl.XEN_SYSCTL_getdomaininfolist,
        sysctl.xen_sysctl_getdomaininfolist,
        dict(first_domain=0, max_domains=0, buffer=0, num_domains=0),
    ),
    "availheap": (
        sysctl.XEN_SYSCTL_availheap,
        sysctl.xen_sysctl_availheap,
        dict(min_bitwidth=0, max_bitwidth=0, node=-1, avail_bytes=0),
    ),
    "page_offline_op": (
        sysctl.XEN_SYSCTL_page_offline_op,
        sysctl.xen_sysctl_page_offline_op,
        dict(cmd=sysctl.sysctl_query_page_offline, start=1, end=1, status=0),
    ),
    "unknown-13": (13, None, None),
}


def create_with_flags(g: Guest, domid: int, flags: int) -> int:
    """createdomain with the given CDF flags (PV unless CDF_hvm), one vCPU."""
    cfg = createdomain_payload(flags)
    create = domctl.XEN_DOMCTL_createdomain
    return int(g.domctl(create, domid, domctl.xen_domctl_createdomain, cfg)[0])


@pytest.mark.parametrize("xs", [False, True], ids=["domU", "xenstore-domain"])
@pytest.mark.parametrize("request_", SYSCTLS.values(), ids=SYSCTLS.keys())
def test_sysctl_from_a_domu_is_eperm(
    dom0: Guest, guest_class: type[Guest], request_: tuple[Any, ...], xs: bool
) -> None:
    """xsm_sysctl(XSM_PRIV), before the command switch: even unknown commands, and even
    for the xenstore domain (XSM_XS_PRIV is getdomaininfo's, not sysctl's)."""
    assert create_with_flags(dom0, 5, domctl.XEN_DOMCTL_CDF_xs_domain if xs else 0) == 0
    cmd, layout, payload = request_
    assert guest_class(dom0.hv, 5).sysctl(cmd, layout, payload)[0] == -EPERM


# -- simple memory ops ------------------------------------------------------------------------


def memop(g: Guest, cmd: int, domid: int | None) -> int:
    """A memory_op whose argument is a xen_memory_domain (None: a NULL argument)."""
    if domid is None:
        return int(g.hv.hypercall(HYPERVISOR_memory_op, cmd, 0, caller=g.domid))
    return int(g.memory_op(cmd, memory.xen_memory_domain, dict(domid=domid)))


CURRENT, MAXIMUM = memory.XENMEM_current_reservation, memory.XENMEM_maximum_reservation


@pytest.mark.parametrize(
    ("ranges", "max_page"),
    [
        ([[(0, NODE_PAGES)], [(NODE_PAGES, 2 * NODE_PAGES)]], 0x200000),
        ([[(0, 0x10000), (0x20000, 0x30000)]], 0x30000),
        ([[(0, 0x40000), (0x2_0000_0000, 0x2_0004_0000)]], 0x2_0004_0000),  # not capped
    ],
    ids=["2x4096", "hole", "beyond-16-TiB"],
)
def test_maximum_ram_page_is_highest_ram_mfn_plus_1(
    guest_class: type[Guest], ranges: list[Any], max_page: int
) -> None:
    g = guest_class(hypervisor_model.boot(ranges=ranges), 0)
    assert memop(g, memory.XENMEM_maximum_ram_page, None) == max_page


def test_maximum_ram_page_needs_no_privilege(dom0: Guest, guest_class: type[Guest]) -> None:
    """No XSM check and no argument: any domain may ask."""
    domu = guest_class(dom0.hv, dom0.create())
    assert memop(domu, memory.XENMEM_maximum_ram_page, None) == 0x200000


@pytest.mark.parametrize(
    "cmd", [memory.XENMEM_maximum_ram_page, CURRENT, MAXIMUM], ids=["max_ram", "cur", "max"]
)
def test_simple_memory_op_with_start_extent_is_einval(dom0: Guest, cmd: int) -> None:
    """start_extent is only for continuations; checked before the argument is read."""
    assert memop(dom0, cmd | 1 << memory.MEMOP_EXTENT_SHIFT, None) == -EINVAL


def test_reservations_of_dom0(dom0_512: Guest) -> None:
    """dom0 booted with 512 MiB: tot_pages = max_pages = 131072; DOMID_SELF is the caller."""
    got = [memop(dom0_512, op, d) for op in (CURRENT, MAXIMUM) for d in (DOMID_SELF, 0)]
    assert got == [131072] * 4


def test_reservations_of_a_new_domain(dom0: Guest) -> None:
    """max_pages 0 and tot_pages 0; then max_mem 4 MiB (1024 pages) and one 512-page
    extent."""
    domid = dom0.create()
    assert (memop(dom0, CURRENT, domid), memop(dom0, MAXIMUM, domid)) == (0, 0)
    assert dom0.max_mem(domid, 4096) == 0
    assert dom0.populate(domid, [0], order=9) == 1
    assert (memop(dom0, CURRENT, domid), memop(dom0, MAXIMUM, domid)) == (512, 1024)


def test_maximum_reservation_of_an_unlimited_domain(dom0: Guest) -> None:
    """max_pages 0xFFFFFFFF comes back as a positive long."""
    domid = dom0.create()
    assert dom0.max_mem(domid, (1 << 64) - 1) == 0
    assert memop(dom0, MAXIMUM, domid) == 0xFFFFFFFF


@pytest.mark.parametrize("domid", [42, DOMID_IO, DOMID_ANY, 0xFFFF])
@pytest.mark.parametrize("op", [CURRENT, MAXIMUM], ids=["current", "maximum"])
@pytest.mark.parametrize("caller", ["dom0", "domU"])
def test_reservation_of_an_unknown_domain_is_esrch(
    dom0: Guest, guest_class: type[Guest], op: int, domid: int, caller: str
) -> None:
    """rcu_lock_domain_by_any_id fails before XSM is asked, so a domU gets ESRCH too."""
    g = dom0 if caller == "dom0" else guest_class(dom0.hv, dom0.create())
    assert memop(g, op, domid) == -ESRCH


@pytest.mark.parametrize("op", [CURRENT, MAXIMUM], ids=["current", "maximum"])
def test_domu_reads_its_own_reservation_but_not_others(
    dom0: Guest, guest_class: type[Guest], op: int
) -> None:
    """xsm_memory_stat_reservation(XSM_TARGET): self (by id or DOMID_SELF) or the control
    domain; another domU or dom0 is EPERM."""
    domid, other = dom0.create(), dom0.create()
    assert dom0.max_mem(domid, 8192) == 0  # 2048 pages
    assert dom0.populate(domid, [0, 512], order=9) == 2  # 1024 pages
    mine = 1024 if op == CURRENT else 2048
    domu = guest_class(dom0.hv, domid)
    got = [memop(domu, op, d) for d in (DOMID_SELF, domid, other, 0)]
    assert got == [mine, mine, -EPERM, -EPERM]
    assert memop(dom0, op, domid) == mine

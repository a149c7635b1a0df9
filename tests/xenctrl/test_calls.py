"""Every ``xc_*`` call of xenctrl against libxenctrl's contract: the errno each can give, the
name in its message, and the result conventions of xc_domain.c / xc_misc.c / xc_private.c.

Errnos come from the fact sheet (reference/xen-claims-facts.md section 2: dispatch 2.1,
lifecycle 2.2, legacy claims 2.3, claim sets 2.6; section 4 for libxc; section 6 gotchas)
and the v7 notes (v7-claims.md sections 1, 2 and 8). Hosts come from the xenemu pytest
plugin: ``xch`` is dom0's handle on the default preset, two nodes of 4096 MiB.

Numbers for that host, by hand: 4096 MiB = 1048576 pages per node, nodes back to back from
MFN 0; MFN 0 never reaches the allocator, so node 0 has 1048575 free pages, node 1 1048576,
the host 2097151 (of 2097152). Four CPUs per node.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import hypervisor_model
from hypervisor_model.public.domctl import (
    XEN_X86_EMU_HPET,
    XEN_X86_EMU_LAPIC,
    XEN_DOMCTL_CDF_hap,
    XEN_DOMCTL_CDF_hvm,
    XEN_DOMCTL_CDF_oos_off,
)
from hypervisor_model.public.errno import (
    E2BIG,
    EBADF,
    EBUSY,
    EEXIST,
    EFAULT,
    EINVAL,
    ENOENT,
    ENOMEM,
    EOPNOTSUPP,
    EPERM,
    ERANGE,
    ESRCH,
    errorcode,
)
from xenctrl import (
    DOMID_INVALID,
    DOMID_SELF,
    XEN_DOMCTL_CLAIM_MEMORY_GET,
    XEN_DOMCTL_CLAIM_MEMORY_HOST,
    XEN_DOMCTL_CLAIM_MEMORY_LEGACY,
    XEN_DOMCTL_CLAIM_MEMORY_SET,
    XenError,
    XENMEMF_address_bits,
    default_createdomain,
    xc_availheap,
    xc_domain_claim_memory,
    xc_domain_claim_pages,
    xc_domain_create,
    xc_domain_decrease_reservation,
    xc_domain_decrease_reservation_exact,
    xc_domain_destroy,
    xc_domain_getinfo_single,
    xc_domain_getinfolist,
    xc_domain_increase_reservation,
    xc_domain_increase_reservation_exact,
    xc_domain_max_vcpus,
    xc_domain_maximum_gpfn,
    xc_domain_node_getaffinity,
    xc_domain_node_setaffinity,
    xc_domain_nr_gpfns,
    xc_domain_pause,
    xc_domain_populate_physmap,
    xc_domain_populate_physmap_exact,
    xc_domain_setmaxmem,
    xc_domain_unpause,
    xc_get_max_nodes,
    xc_get_nodemap_size,
    xc_get_tot_pages,
    xc_interface,
    xc_interface_close,
    xc_interface_open,
    xc_maximum_ram_page,
    xc_numainfo,
    xc_physinfo,
    xc_sharing_freed_pages,
    xc_sharing_used_frames,
    xen_domctl_createdomain,
    xen_memory_claim_t,
    xen_pfn_t,
)

Hypervisor = hypervisor_model.Hypervisor
HOST = XEN_DOMCTL_CLAIM_MEMORY_HOST
LEGACY = XEN_DOMCTL_CLAIM_MEMORY_LEGACY
SET, GET = XEN_DOMCTL_CLAIM_MEMORY_SET, XEN_DOMCTL_CLAIM_MEMORY_GET

NODE_PAGES = 4096 * 256  # 1048576 pages per node
TOTAL_PAGES = 2 * NODE_PAGES  # 2097152
# Free at boot: node 0 lacks MFN 0 (never free) and dom0's structure and shared-info pages;
# node 1 keeps its first 4 pages for its free lists (init_node_heap).
NODE0_FREE = NODE_PAGES - 1 - 2  # 1048573
NODE1_FREE = NODE_PAGES - 4  # 1048572
FREE_PAGES = NODE0_FREE + NODE1_FREE  # 2097145
# A new HVM domain costs Xen its structure and shared info (node 0) and a 256-page HAP pool
# taken round-robin from node 1 and node 0: 130 pages of node 0, 128 of node 1.
HVM_XEN, HVM_XEN_NODE0 = 2 + 256, 2 + 128
ABSENT = 4242  # a domid no test creates
UNLIMITED = -1  # xc_domain_setmaxmem(-1): max_pages 0xFFFFFFFF


@pytest.fixture(autouse=True)
def _check_every_hypercall(xen_host: Hypervisor) -> None:
    xen_host.check_after_each_hypercall = True


# -- helpers ---------------------------------------------------------------------------------


def domain(xch: xc_interface, maxmem_kb: int | None = UNLIMITED, hvm: bool = True) -> int:
    """A new domain (paused, no vCPUs yet), with max_pages from ``maxmem_kb`` unless None."""
    domid = xc_domain_create(xch, config=default_createdomain(hvm=hvm))
    if maxmem_kb is not None:
        xc_domain_setmaxmem(xch, domid, maxmem_kb)
    return domid


def entry(pages: int, target: int, cmd: int = 0) -> xen_memory_claim_t:
    return xen_memory_claim_t(pages=pages, target=target, cmd=cmd)


Spec = list[tuple[int, ...]] | int | None


def claims_of(spec: Spec) -> Any:
    """A claim_set argument: None (NULL), ``(target, pages[, cmd])`` tuples as a list, or a
    capacity as a zeroed ctypes array."""
    if spec is None or isinstance(spec, list):
        return None if spec is None else [entry(e[1], e[0], *e[2:]) for e in spec]
    return (xen_memory_claim_t * spec)()


def claim_set(xch: xc_interface, domid: int, *entries: tuple[int, int]) -> None:
    """SET the claim set ``(target, pages), ...``."""
    sets = [entry(pages, target) for target, pages in entries]
    xc_domain_claim_memory(xch, domid, SET, len(sets), sets)


def claim_get(xch: xc_interface, domid: int) -> list[tuple[int, int]]:
    buf = (xen_memory_claim_t * 65)()
    n = xc_domain_claim_memory(xch, domid, GET, 65, buf)
    return [(e.target, e.pages) for e in buf[:n]]


def populated(xch: xc_interface, pages: int, maxmem_kb: int = UNLIMITED) -> int:
    """A domain with gfns 0 .. pages-1 populated, one 4 KiB extent each."""
    domid = domain(xch, maxmem_kb)
    xc_domain_populate_physmap_exact(xch, domid, pages, 0, 0, list(range(pages)))
    return domid


def expect_error(errno: int, call: str, fn: Callable[..., Any], *args: Any) -> XenError:
    """``fn(*args)`` raises XenError(errno), its message starting with ``call``."""
    with pytest.raises(XenError) as info:
        fn(*args)
    error = info.value
    assert (errorcode.get(error.errno or 0), error.call) == (errorcode[errno], call)
    assert str(error).startswith(f"{call}: {errorcode[errno]} ")
    return error


Prepare = Callable[[xc_interface], int]


def fresh(xch: xc_interface) -> int:
    return domain(xch, maxmem_kb=None)  # max_pages stays 0 (section 6.2)


def unlimited(xch: xc_interface) -> int:
    return domain(xch)


def absent(xch: xc_interface) -> int:
    return ABSENT


def with_claim(pages: int) -> Prepare:
    def prepare(xch: xc_interface) -> int:
        domid = domain(xch)
        xc_domain_claim_pages(xch, domid, pages)
        return domid

    return prepare


def with_set(*entries: tuple[int, int]) -> Prepare:
    def prepare(xch: xc_interface) -> int:
        domid = domain(xch)
        claim_set(xch, domid, *entries)
        return domid

    return prepare


def after_other(other: Prepare, then: Prepare) -> Prepare:
    """Run ``other`` (another domain's claim) first, then prepare the domain under test."""

    def prepare(xch: xc_interface) -> int:
        other(xch)
        return then(xch)

    return prepare


def with_pages(pages: int, maxmem_kb: int = UNLIMITED) -> Prepare:
    return lambda xch: populated(xch, pages, maxmem_kb)


def above_max(xch: xc_interface) -> int:
    """8 pages, then max_pages ratcheted down to 2 (8 KiB): allowed, fact sheet 2.2."""
    domid = populated(xch, 8)
    xc_domain_setmaxmem(xch, domid, 8)
    return domid


# -- xc_domain_claim_pages (fact sheet 2.3, v7 notes section 8) ----------------------------


@pytest.mark.parametrize(
    ("prepare", "nr_pages", "errno"),
    [
        pytest.param(with_claim(100), 200, EINVAL, id="existing-host-claim"),
        pytest.param(with_set((0, 10)), 100, EINVAL, id="existing-node-claim-v7"),
        pytest.param(with_pages(4), 4, EINVAL, id="target-4-not-above-tot-4"),
        pytest.param(lambda x: domain(x, 1024), 257, EINVAL, id="257-above-max-256"),
        pytest.param(fresh, 1, EINVAL, id="new-domain-max-pages-0"),
        pytest.param(absent, 1, EINVAL, id="unknown-domain-is-einval"),
        pytest.param(lambda x: DOMID_SELF, 1, EINVAL, id="domid-self-not-translated"),
        pytest.param(unlimited, FREE_PAGES - HVM_XEN + 1, ENOMEM, id="one-above-free"),
        pytest.param(
            # the other domain's claim leaves 100 pages once this one has paid Xen its 258
            after_other(with_claim(FREE_PAGES - 2 * HVM_XEN - 100), unlimited),
            101,
            ENOMEM,
            id="101-above-unclaimed-100",
        ),
    ],
)
def test_claim_pages_errno(xch: xc_interface, prepare: Prepare, nr_pages: int, errno: int) -> None:
    domid = prepare(xch)
    expect_error(errno, "xc_domain_claim_pages", xc_domain_claim_pages, xch, domid, nr_pages)


@pytest.mark.parametrize(
    ("prepare", "nr_pages", "outstanding"),
    [
        pytest.param(unlimited, 100, 100, id="target-100"),
        pytest.param(with_pages(4), 5, 1, id="target-5-minus-tot-4"),
        pytest.param(lambda x: domain(x, 1024), 256, 256, id="exactly-max-256"),
        pytest.param(
            after_other(with_claim(FREE_PAGES - 2 * HVM_XEN - 100), unlimited),
            100,
            100,
            id="exactly-unclaimed-100",
        ),
    ],
)
def test_claim_pages_is_a_target_total(
    xch: xc_interface, prepare: Prepare, nr_pages: int, outstanding: int
) -> None:
    """Legacy claims subtract tot_pages (section 6.5); the boundaries are inclusive."""
    domid = prepare(xch)
    xc_domain_claim_pages(xch, domid, nr_pages)
    assert xc_domain_getinfo_single(xch, domid).outstanding_pages == outstanding


@pytest.mark.parametrize(
    "prepare",
    [
        pytest.param(fresh, id="new-domain-max-pages-0"),
        pytest.param(with_claim(100), id="host-claim"),
        pytest.param(with_set((HOST, 7), (0, 5), (1, 3)), id="claim-set"),
        pytest.param(above_max, id="tot-8-above-max-2"),
    ],
)
def test_claim_pages_zero_always_succeeds(xch: xc_interface, prepare: Prepare) -> None:
    """nr_pages 0 releases every claim, host and node, whatever the limits (section 6.6)."""
    domid = prepare(xch)
    xc_domain_claim_pages(xch, domid, 0)
    assert xc_domain_getinfo_single(xch, domid).outstanding_pages == 0
    assert xc_physinfo(xch).outstanding_pages == 0


# -- xc_domain_claim_memory (v7 notes sections 1 and 2) ------------------------------------

ZERO_ENTRIES_65 = [(0, 0)] * 65
ZERO_ENTRIES_66 = [(0, 0)] * 66


@pytest.mark.parametrize(
    ("prepare", "mode", "nr", "claims", "errno"),
    [
        pytest.param(unlimited, SET, 0, [], EINVAL, id="set-0-entries"),
        pytest.param(unlimited, SET, 0, None, EINVAL, id="set-0-entries-null"),
        pytest.param(unlimited, SET, 66, ZERO_ENTRIES_66, E2BIG, id="set-66-entries"),
        # 65 passes the size check; the second {node 0} entry is a duplicate
        pytest.param(unlimited, SET, 65, ZERO_ENTRIES_65, EINVAL, id="set-65-duplicate-node"),
        pytest.param(unlimited, SET, 1, [(0, 1, 1)], EINVAL, id="cmd-1"),
        pytest.param(unlimited, SET, 2, [(HOST, 1), (HOST, 1)], EINVAL, id="two-host-entries"),
        pytest.param(unlimited, SET, 2, [(HOST, 1), (LEGACY, 1)], EINVAL, id="host-and-legacy"),
        pytest.param(unlimited, SET, 2, [(0, 1), (0, 2)], EINVAL, id="node-0-twice"),
        pytest.param(unlimited, SET, 2, [(LEGACY, 10), (0, 5)], EINVAL, id="legacy-with-node"),
        pytest.param(fresh, SET, 1, [(HOST, 1)], EINVAL, id="host-1-above-max-0"),
        pytest.param(
            lambda x: domain(x, 1024),
            SET,
            2,
            [(0, 200), (1, 57)],
            EINVAL,
            id="nodes-257-above-max-256",
        ),
        pytest.param(
            with_pages(4, maxmem_kb=1024),
            SET,
            1,
            [(HOST, 253)],
            EINVAL,
            id="253-plus-tot-4-above-max-256",
        ),
        pytest.param(fresh, SET, 1, [(HOST, 2**31)], EINVAL, id="host-2^31-max-0"),
        pytest.param(unlimited, SET, 1, [(2, 1)], ENOENT, id="node-2-absent"),
        pytest.param(unlimited, SET, 1, [(64, 1)], ENOENT, id="node-64-max-numnodes"),
        pytest.param(unlimited, SET, 1, [(256, 1)], ENOENT, id="target-256"),
        pytest.param(unlimited, SET, 1, [(0xFFFFFFFF, 1)], ENOENT, id="target-~0"),
        pytest.param(unlimited, SET, 2, [(5, 1), (0, 1, 1)], ENOENT, id="enoent-before-cmd"),
        pytest.param(
            unlimited, SET, 1, [(0, NODE0_FREE - HVM_XEN_NODE0 + 1)], ENOMEM, id="node0-above-free"
        ),
        # Phase 1's node check comes before Phase 2's max_pages check (S test I1-4)
        pytest.param(fresh, SET, 1, [(0, 2**31)], ENOMEM, id="node-2^31-max-0"),
        pytest.param(
            # the other domain claims what is left of node 0 after its own Xen pages; this
            # domain's Xen pages then all come from node 1
            after_other(with_set((0, NODE0_FREE - HVM_XEN_NODE0)), unlimited),
            SET,
            1,
            [(0, 1)],
            ENOMEM,
            id="node0-fully-claimed-by-other",
        ),
        pytest.param(
            unlimited, SET, 1, [(HOST, FREE_PAGES - HVM_XEN + 1)], ENOMEM, id="host-above"
        ),
        pytest.param(
            # node 1 fully claimed by the other domain: this one's Xen pages all come from
            # node 0, whose free pages are then all the unclaimed memory there is
            after_other(with_set((1, NODE1_FREE - (HVM_XEN - HVM_XEN_NODE0))), unlimited),
            SET,
            1,
            [(HOST, NODE0_FREE - HVM_XEN_NODE0 - HVM_XEN + 1)],
            ENOMEM,
            id="host-one-above-unclaimed",
        ),
        pytest.param(unlimited, 2, 1, [(HOST, 1)], EOPNOTSUPP, id="mode-2"),
        pytest.param(unlimited, SET, 1, None, EFAULT, id="set-1-null-buffer"),
        pytest.param(absent, SET, 1, [(HOST, 1)], ESRCH, id="set-unknown-domain"),
        pytest.param(absent, GET, 1, [(0, 0)], ESRCH, id="get-unknown-domain"),
        pytest.param(unlimited, GET, 0, None, ERANGE, id="get-capacity-0"),
        pytest.param(with_set((0, 1)), GET, 1, [(0, 0)], ERANGE, id="get-1-of-2"),
    ],
)
def test_claim_memory_errno(
    xch: xc_interface, prepare: Prepare, mode: int, nr: int, claims: Spec, errno: int
) -> None:
    domid = prepare(xch)
    args = (xch, domid, mode, nr, claims_of(claims))
    expect_error(errno, "xc_domain_claim_memory", xc_domain_claim_memory, *args)


@pytest.mark.xen_host(nodes=[64, 64, 64], offline=[1])
def test_claim_memory_offline_node_is_enoent(xch: xc_interface) -> None:
    """A node that exists but is offline cannot be claimed (v7 Phase 1)."""
    domid = domain(xch)
    expect_error(ENOENT, "xc_domain_claim_memory", claim_set, xch, domid, (1, 1))
    claim_set(xch, domid, (2, 1))  # node 2 is online


THREE = with_set((HOST, 9), (0, 5), (1, 3))  # GET needs 3 records: HOST, node 0, node 1


@pytest.mark.parametrize(
    ("prepare", "mode", "nr", "claims", "errno", "nr_after"),
    [
        # SET never writes nr_entries back: the caller's value comes back
        pytest.param(unlimited, SET, 2, [(HOST, 1), (0, 1)], None, 2, id="set-ok-keeps-2"),
        pytest.param(unlimited, SET, 1, [(2, 1)], ENOENT, 1, id="set-enoent-keeps-1"),
        # GET writes back the count needed
        pytest.param(THREE, GET, 5, 5, None, 3, id="get-5-needs-3"),
        pytest.param(THREE, GET, 100, 100, None, 3, id="get-100-clamped-to-65"),
        pytest.param(THREE, GET, 2, 2, ERANGE, 3, id="get-2-erange"),
        pytest.param(THREE, GET, 0, None, ERANGE, 3, id="get-size-query"),
        pytest.param(unlimited, GET, 0, None, ERANGE, 1, id="get-size-query-no-claim"),
        # the copy-out to a NULL buffer faults after the count was copied back
        pytest.param(with_set((0, 5)), GET, 5, None, EFAULT, 2, id="get-null-buffer-efault"),
        # failures before GET's buffer exists leave the caller's value
        pytest.param(absent, GET, 7, 7, ESRCH, 7, id="get-esrch-keeps-7"),
        pytest.param(unlimited, 2, 7, 7, EOPNOTSUPP, 7, id="mode-2-keeps-7"),
    ],
)
def test_claim_memory_nr_entries_write_back(
    xch: xc_interface,
    prepare: Prepare,
    mode: int,
    nr: int,
    claims: Spec,
    errno: int | None,
    nr_after: int,
) -> None:
    """``*nr_entries`` after the call is what Xen left in the domctl (v7 notes section 1)."""
    args = (xch, prepare(xch), mode, nr, claims_of(claims))
    if errno is None:
        assert xc_domain_claim_memory(*args) == nr_after
    else:
        error = expect_error(errno, "xc_domain_claim_memory", xc_domain_claim_memory, *args)
        assert error.nr_entries == nr_after


def test_claim_memory_get_fills_only_the_entries_needed(xch: xc_interface) -> None:
    """GET copies out the needed records, HOST first (even when 0 pages), then nodes in
    order; the rest of the caller's buffer comes back untouched (BOTH bounce)."""
    domid = domain(xch)
    claim_set(xch, domid, (1, 3), (0, 5))
    buf = (xen_memory_claim_t * 4)(*[entry(0xDEAD, 9, cmd=9) for _ in range(4)])
    assert xc_domain_claim_memory(xch, domid, GET, 4, buf) == 3
    got = [(e.target, e.pages, e.cmd) for e in buf]
    assert got == [(HOST, 0, 0), (0, 5, 0), (1, 3, 0), (9, 0xDEAD, 9)]


def test_claim_memory_get_into_a_list(xch: xc_interface) -> None:
    """A Python list works as the GET buffer too, filled in place like the C array."""
    domid = domain(xch)
    claim_set(xch, domid, (HOST, 11), (1, 4))
    buf = [entry(0, 0) for _ in range(3)]
    assert xc_domain_claim_memory(xch, domid, GET, 3, buf) == 2
    assert [(e.target, e.pages) for e in buf[:2]] == [(HOST, 11), (1, 4)]
    assert len(buf) == 3


def test_claim_memory_set_replaces_and_zero_node_entries_vanish(xch: xc_interface) -> None:
    """A SET replaces the whole set; a 0-page node entry is accepted but not listed."""
    domid = domain(xch)
    claim_set(xch, domid, (0, 5), (1, 2))
    claim_set(xch, domid, (HOST, 0), (0, 0), (1, 7))
    assert claim_get(xch, domid) == [(HOST, 0), (1, 7)]
    assert xc_domain_getinfo_single(xch, domid).outstanding_pages == 7
    assert xc_physinfo(xch).outstanding_pages == 7


# -- xc_domain_create / destroy and the simple domain calls (fact sheet 2.1, 2.2) ----------


def config(**fields: int) -> xen_domctl_createdomain:
    c = default_createdomain()
    for name, value in fields.items():
        setattr(c, name, value)
    return c


def emulators(flags: int, hvm: bool = True) -> xen_domctl_createdomain:
    c = default_createdomain(hvm=hvm)
    c.arch.emulation_flags = flags
    return c


def create_twice(domid: int, **fields: int) -> Callable[[xc_interface], Any]:
    def run(xch: xc_interface) -> Any:
        xc_domain_create(xch, 5)
        return xc_domain_create(xch, domid, config(**fields))

    return run


@pytest.mark.parametrize(
    ("run", "errno"),
    [
        pytest.param(create_twice(5), EEXIST, id="domid-5-taken"),
        pytest.param(create_twice(5, max_vcpus=0), EEXIST, id="taken-before-bad-config"),
        pytest.param(lambda x: xc_domain_create(x, 0), EEXIST, id="domid-0-is-dom0"),
        pytest.param(lambda x: xc_domain_create(x, DOMID_SELF), EEXIST, id="domid-self"),
        pytest.param(lambda x: xc_domain_create(x, DOMID_INVALID), EEXIST, id="domid-invalid"),
        pytest.param(lambda x: xc_domain_create(x, 0x7FFF), EEXIST, id="domid-idle"),
        pytest.param(
            lambda x: xc_domain_create(x, config=config(flags=XEN_DOMCTL_CDF_hap)),
            EINVAL,
            id="hap-without-hvm",
        ),
        pytest.param(
            lambda x: xc_domain_create(x, config=config(max_vcpus=0)), EINVAL, id="no-vcpus"
        ),
        pytest.param(
            lambda x: xc_domain_create(x, config=config(flags=XEN_DOMCTL_CDF_hvm | 1 << 9)),
            EINVAL,
            id="unknown-cdf-flag",
        ),
        pytest.param(
            lambda x: xc_domain_create(x, config=config(grant_opts=0x12)),
            EINVAL,
            id="unknown-grant-opts",
        ),
        pytest.param(
            lambda x: xc_domain_create(x, config=config(iommu_opts=1)),
            EINVAL,
            id="iommu-opts-without-iommu",
        ),
        # arch_domain_create: an emulator set the guest type may not have
        pytest.param(
            lambda x: xc_domain_create(x, config=emulators(XEN_X86_EMU_HPET)),
            EOPNOTSUPP,
            id="hvm-with-only-hpet",
        ),
        pytest.param(
            lambda x: xc_domain_create(x, config=emulators(XEN_X86_EMU_LAPIC, hvm=False)),
            EOPNOTSUPP,
            id="pv-with-lapic",
        ),
        pytest.param(
            lambda x: xc_domain_create(x, config=emulators(XEN_X86_EMU_LAPIC | 1 << 11)),
            EINVAL,
            id="emulator-bit-11-unknown",
        ),
    ],
)
def test_create_errno(xch: xc_interface, run: Callable[[xc_interface], Any], errno: int) -> None:
    expect_error(errno, "xc_domain_create", run, xch)


def test_create_domid_any_goes_on_after_the_last_id(xch: xc_interface) -> None:
    """domid_alloc: DOMID_ANY searches after the last id handed out, never reusing it at
    once; an explicit free id is used exactly (fact sheet 2.2)."""
    assert [xc_domain_create(xch), xc_domain_create(xch)] == [1, 2]
    xc_domain_destroy(xch, 1)
    assert xc_domain_create(xch) == 3
    assert xc_domain_create(xch, 1) == 1
    assert xc_domain_create(xch) == 4


def test_create_failed_config_check_keeps_the_explicit_domid(xch: xc_interface) -> None:
    """Xen master leaks the id: domid_alloc() runs first in XEN_DOMCTL_createdomain, and
    domain_create() returns from sanitise_domain_config() before anything frees it."""
    expect_error(EINVAL, "xc_domain_create", xc_domain_create, xch, 5, config(max_vcpus=0))
    expect_error(EEXIST, "xc_domain_create", xc_domain_create, xch, 5)


def destroyed(xch: xc_interface) -> int:
    domid = domain(xch)
    xc_domain_destroy(xch, domid)
    return domid


def unpaused(xch: xc_interface) -> int:
    domid = domain(xch)
    xc_domain_unpause(xch, domid)  # created paused once: now 0, unpausing again is EINVAL
    return domid


def case(
    fn: Callable[..., Any],
    prepare: Prepare,
    args: tuple[Any, ...],
    errno: int,
    why: str,
    call: str | None = None,
) -> Any:
    """One row: ``fn(xch, prepare(xch), *args)`` fails with ``errno``, named ``call``."""
    name = fn.__name__.removeprefix("xc_")
    return pytest.param(call or fn.__name__, fn, prepare, args, errno, id=f"{name}-{why}")


@pytest.mark.parametrize(
    ("call", "fn", "prepare", "args", "errno"),
    [
        case(xc_domain_destroy, absent, (), ESRCH, "unknown"),
        case(xc_domain_destroy, destroyed, (), ESRCH, "destroyed"),
        case(xc_domain_destroy, lambda x: 0, (), EINVAL, "self"),  # domain_kill
        case(xc_domain_pause, absent, (), ESRCH, "unknown"),
        case(xc_domain_pause, lambda x: 0, (), EINVAL, "self"),
        case(xc_domain_unpause, absent, (), ESRCH, "unknown"),
        case(xc_domain_unpause, unpaused, (), EINVAL, "not-paused"),
        case(xc_domain_max_vcpus, unlimited, (2,), EINVAL, "not-createdomain-count"),
        case(xc_domain_max_vcpus, absent, (1,), ESRCH, "unknown"),
        case(xc_domain_setmaxmem, absent, (1024,), ESRCH, "unknown"),
        case(xc_domain_getinfo_single, absent, (), ESRCH, "unknown"),
        case(xc_domain_getinfo_single, destroyed, (), ESRCH, "destroyed"),
        # xc_get_tot_pages is xc_domain_getinfo_single underneath (xc_private.c)
        case(xc_get_tot_pages, absent, (), ESRCH, "unknown", "xc_domain_getinfo_single"),
        case(xc_domain_node_setaffinity, unlimited, (b"\x04",), EINVAL, "only-absent-node-2"),
        case(xc_domain_node_setaffinity, unlimited, (b"",), EINVAL, "empty"),
        case(xc_domain_node_setaffinity, absent, (b"\x01",), ESRCH, "unknown"),
        case(xc_domain_node_getaffinity, absent, (), ESRCH, "unknown"),
    ],
)
def test_domain_call_errno(
    xch: xc_interface,
    call: str,
    fn: Callable[..., Any],
    prepare: Prepare,
    args: tuple[Any, ...],
    errno: int,
) -> None:
    expect_error(errno, call, fn, xch, prepare(xch), *args)


# -- calls from a domU handle, and on a closed handle ----------------------------------------

OWN = "own domid"  # stands for the domain under test in an argument list
# the _exact variants fail inside the plain call they wrap
POPULATE, INCREASE, DECREASE = (
    f"xc_domain_{op}" for op in ("populate_physmap", "increase_reservation", "decrease_reservation")
)


def row(fn: Callable[..., Any], *args: Any, why: str = "", named: str | None = None) -> Any:
    """``fn(handle, *args)``, failing in the xc function ``named`` (default: ``fn`` itself)."""
    ident = fn.__name__ + (f"-{why}" if why else "")
    return pytest.param(named or fn.__name__, fn, args, id=ident)


def call_with(fn: Callable[..., Any], handle: xc_interface, args: tuple[Any, ...], d: int) -> Any:
    return fn(handle, *(d if a is OWN else a for a in args))


@pytest.mark.parametrize(
    ("call", "fn", "args"),
    [
        row(xc_physinfo),
        row(xc_get_max_nodes, named="xc_physinfo"),
        row(xc_numainfo),
        row(xc_availheap, 0, 0, -1),
        row(xc_domain_getinfolist, 0, 4),
        row(xc_domain_getinfo_single, OWN, why="self"),
        row(xc_domain_create),
        row(xc_domain_destroy, 0, why="dom0"),
        row(xc_domain_destroy, ABSENT, why="unknown"),  # EPERM, not ESRCH, for a domU
        row(xc_domain_pause, 0),
        row(xc_domain_setmaxmem, OWN, UNLIMITED, why="self"),
        row(xc_domain_claim_pages, OWN, 100, why="self"),
        row(xc_domain_claim_pages, 0, 0, why="dom0-release"),
        row(xc_domain_claim_memory, OWN, SET, 1, None, why="set"),
        row(xc_domain_claim_memory, OWN, GET, 0, None, why="get"),
    ],
)
def test_domu_handle_gets_eperm(
    xen_host: Hypervisor, xch: xc_interface, call: str, fn: Callable[..., Any], args: tuple
) -> None:
    """The dummy XSM policy lets only the control domain make these calls (fact sheet 2.1)."""
    domid = domain(xch)
    with xc_interface_open(xen_host, domid=domid) as domu:
        expect_error(EPERM, call, call_with, fn, domu, args, domid)


def test_domu_claim_memory_eperm_keeps_nr_entries(xen_host: Hypervisor, xch: xc_interface) -> None:
    """The XSM check fails before GET's buffer exists: nr_entries is not copied back."""
    domid = domain(xch)
    with xc_interface_open(xen_host, domid=domid) as domu:
        buf = (xen_memory_claim_t * 7)()
        error = expect_error(
            EPERM, "xc_domain_claim_memory", xc_domain_claim_memory, domu, domid, GET, 7, buf
        )
    assert error.nr_entries == 7


def test_domu_claim_pages_on_unknown_domain_is_einval(
    xen_host: Hypervisor, xch: xc_interface
) -> None:
    """XENMEM_claim_pages looks the domain up before the XSM check (fact sheet 2.3)."""
    with xc_interface_open(xen_host, domid=domain(xch)) as domu:
        expect_error(EINVAL, "xc_domain_claim_pages", xc_domain_claim_pages, domu, ABSENT, 1)


def test_domu_may_read_the_maximum_ram_page(xen_host: Hypervisor, xch: xc_interface) -> None:
    """XENMEM_maximum_ram_page has no XSM check: any domain reads max_page (memory.c)."""
    with xc_interface_open(xen_host, domid=domain(xch)) as domu:
        assert xc_maximum_ram_page(domu) == TOTAL_PAGES


@pytest.mark.parametrize(
    ("call", "fn", "args"),
    [
        row(xc_domain_create),
        row(xc_domain_destroy, OWN),
        row(xc_domain_pause, OWN),
        row(xc_domain_unpause, OWN),
        row(xc_domain_max_vcpus, OWN, 1),
        row(xc_domain_setmaxmem, OWN, 4),
        row(xc_domain_getinfo_single, OWN),
        row(xc_domain_getinfolist, 0, 4),
        row(xc_get_tot_pages, OWN, named="xc_domain_getinfo_single"),
        # the nodemap size comes from physinfo (xc_get_nodemap_size): the first hypercall
        row(xc_domain_node_setaffinity, OWN, b"\x01", named="xc_physinfo"),
        row(xc_domain_node_getaffinity, OWN, named="xc_physinfo"),
        row(xc_domain_claim_pages, OWN, 0),
        row(xc_domain_claim_memory, OWN, GET, 0, None),
        row(xc_domain_populate_physmap, OWN, 1, 0, 0, [0]),
        row(xc_domain_populate_physmap_exact, OWN, 1, 0, 0, [0], named=POPULATE),
        row(xc_domain_increase_reservation, OWN, 1, 0, 0),
        row(xc_domain_increase_reservation_exact, OWN, 1, 0, 0, named=INCREASE),
        row(xc_domain_decrease_reservation, OWN, 1, 0, [0]),
        row(xc_domain_decrease_reservation_exact, OWN, 1, 0, [0], named=DECREASE),
        row(xc_physinfo),
        row(xc_get_max_nodes, named="xc_physinfo"),
        row(xc_get_nodemap_size, named="xc_physinfo"),
        row(xc_numainfo),
        row(xc_availheap, 0, 0, -1),
        row(xc_maximum_ram_page),
    ],
)
def test_closed_handle_is_ebadf(
    xen_host: Hypervisor, call: str, fn: Callable[..., Any], args: tuple
) -> None:
    """The error names the xc function whose hypercall failed; nothing reached Xen, and
    every hypercall buffer was given back."""
    xch = xc_interface_open(xen_host)
    domid = domain(xch)
    assert xc_interface_close(xch) == 0
    with xc_interface_open(xen_host) as probe:
        before = bytes(xc_domain_getinfo_single(probe, domid)), bytes(xc_physinfo(probe))
        expect_error(EBADF, call, call_with, fn, xch, args, domid)
        assert (bytes(xc_domain_getinfo_single(probe, domid)), bytes(xc_physinfo(probe))) == before
    assert xen_host.arena.live_buffers() == 0


def test_close_accepts_null_and_closed_handles(xch: xc_interface) -> None:
    """xc_interface_close(NULL) is 0, as in C; closing twice is harmless here."""
    assert xc_interface_close(None) == 0
    assert xc_interface_close(xch) == 0
    assert xc_interface_close(xch) == 0


# -- reservations: counts, _exact errnos, NULL lists (fact sheet 4, section 6.1) -----------


def test_populate_returns_a_short_count(xch: xc_interface) -> None:
    """max_pages 3 (12 KiB): the 4th extent fails assign_pages (E2BIG); 3 are done."""
    domid = domain(xch, maxmem_kb=12)
    assert xc_domain_populate_physmap(xch, domid, 5, 0, 0, [0, 1, 2, 3, 4]) == 3
    assert xc_get_tot_pages(xch, domid) == 3


@pytest.mark.parametrize(
    ("call", "fn", "errno"),
    [
        ("xc_domain_populate_physmap_exact", xc_domain_populate_physmap_exact, EBUSY),
        ("xc_domain_increase_reservation_exact", xc_domain_increase_reservation_exact, ENOMEM),
    ],
    ids=["populate-ebusy", "increase-enomem"],
)
def test_exact_short_allocation(
    xch: xc_interface, call: str, fn: Callable[..., Any], errno: int
) -> None:
    """A short count becomes -1 with the call's own errno; done extents stay allocated."""
    domid = domain(xch, maxmem_kb=12)
    expect_error(errno, call, fn, xch, domid, 5, 0, 0, [0, 1, 2, 3, 4])
    assert xc_get_tot_pages(xch, domid) == 3


@pytest.mark.parametrize(
    ("maxmem_kb", "domid_of"),
    [
        pytest.param(None, None, id="max-pages-0"),  # assign_pages E2BIG (section 6.2)
        pytest.param(UNLIMITED, ABSENT, id="unknown-domain"),  # early failure returns 0
    ],
)
def test_populate_failure_is_a_count_of_zero(
    xch: xc_interface, maxmem_kb: int | None, domid_of: int | None
) -> None:
    domid = domain(xch, maxmem_kb) if domid_of is None else domid_of
    assert xc_domain_populate_physmap(xch, domid, 2, 0, 0, [0, 1]) == 0
    assert xc_domain_increase_reservation(xch, domid, 2, 0, 0) == 0
    exact = xc_domain_populate_physmap_exact
    expect_error(EBUSY, exact.__name__, exact, xch, domid, 2, 0, 0, [0, 1])


def test_populate_bad_address_width_is_a_count_of_zero(xch: xc_interface) -> None:
    """address_bits 12 cannot address a page: construct_memop_from_reservation fails."""
    domid = domain(xch)
    assert xc_domain_populate_physmap(xch, domid, 1, 0, XENMEMF_address_bits(12), [0]) == 0


def test_zero_extents_are_exact(xch: xc_interface) -> None:
    """nr_extents 0: Xen returns 0, which equals nr_extents, so _exact succeeds."""
    domid = domain(xch)
    empty: list[int] = []
    assert xc_domain_populate_physmap(xch, domid, 0, 0, 0, empty) == 0
    xc_domain_populate_physmap_exact(xch, domid, 0, 0, 0, empty)
    xc_domain_decrease_reservation_exact(xch, domid, 0, 0, empty)
    assert empty == []


def test_decrease_stops_at_the_first_hole(xch: xc_interface) -> None:
    """gfns 0..3 populated: [0, 1, 9] frees 2 and stops at 9; _exact [2, 9] frees 1, EINVAL."""
    domid = populated(xch, 4)
    assert xc_domain_decrease_reservation(xch, domid, 3, 0, [0, 1, 9]) == 2
    exact = xc_domain_decrease_reservation_exact
    expect_error(EINVAL, exact.__name__, exact, xch, domid, 2, 0, [2, 9])
    assert xc_get_tot_pages(xch, domid) == 1


def test_decrease_null_list_is_einval_without_a_hypercall(xch: xc_interface) -> None:
    """libxc checks extent_start before any hypercall: even a closed handle gives EINVAL."""
    domid = populated(xch, 1)
    for fn in (xc_domain_decrease_reservation, xc_domain_decrease_reservation_exact):
        expect_error(EINVAL, DECREASE, fn, xch, domid, 1, 0, None)
    xc_interface_close(xch)
    expect_error(EINVAL, DECREASE, xc_domain_decrease_reservation, xch, domid, 1, 0, None)


# -- extent_start: a ctypes xen_pfn_t array or a Python list, bounced both ways -------------


def node_of(mfn: int) -> int:
    return mfn // NODE_PAGES


DMA_LIMIT = 1 << 18  # dma_bitsize min(flsl(0 + 1048576/4 - 1) + 12, 32) = 30 bits: zone 18


def check_pv_frames(frames: list[int]) -> None:
    """A fresh domain's node-less extents round-robin from node 1 (after last_alloc_node 0),
    then node 0, above the DMA zone (fact sheet 3, node choice and DMA zone)."""
    assert [node_of(mfn) for mfn in frames] == [1, 0]
    assert frames[1] >= DMA_LIMIT


@pytest.mark.parametrize("kind", ["ctypes-array", "list"])
def test_pv_populate_writes_mfns_back(xch: xc_interface, kind: str) -> None:
    """A PV guest is told each extent's MFN in place of its gfn; decreasing by those MFNs
    frees exactly those pages (PV gmfn = mfn)."""
    domid = domain(xch, hvm=False)
    extents: Any = (xen_pfn_t * 2)(0, 1) if kind == "ctypes-array" else [0, 1]
    assert xc_domain_populate_physmap(xch, domid, 2, 0, 0, extents) == 2
    frames = list(extents)
    check_pv_frames(frames)
    assert xc_domain_decrease_reservation(xch, domid, 2, 0, extents) == 2
    assert xc_get_tot_pages(xch, domid) == 0
    assert xc_physinfo(xch).free_pages == FREE_PAGES - 2  # the PV domain's two Xen pages


@pytest.mark.parametrize("kind", ["ctypes-array", "list"])
def test_pv_increase_reservation_writes_mfns_back(xch: xc_interface, kind: str) -> None:
    domid = domain(xch, hvm=False)
    extents: Any = (xen_pfn_t * 2)() if kind == "ctypes-array" else [0, 0]
    assert xc_domain_increase_reservation(xch, domid, 2, 0, 0, extents) == 2
    check_pv_frames(list(extents))


def test_list_write_back_keeps_the_list_length(xch: xc_interface) -> None:
    """Only nr_extents entries are bounced back: the tail of a longer list is untouched."""
    domid = domain(xch, hvm=False)
    extents = [0, 1, 77]
    assert xc_domain_populate_physmap(xch, domid, 2, 0, 0, extents) == 2
    assert len(extents) == 3 and extents[2] == 77
    check_pv_frames(extents[:2])


@pytest.mark.parametrize("kind", ["ctypes-array", "list", "tuple"])
def test_hvm_extents_come_back_unchanged(xch: xc_interface, kind: str) -> None:
    """A translated guest is not told MFNs: the gfns come back as they went."""
    domid = domain(xch)
    gfns = [0x100, 0x101]
    extents: Any = {"ctypes-array": (xen_pfn_t * 2)(*gfns), "list": list(gfns)}.get(
        kind, tuple(gfns)
    )
    assert xc_domain_populate_physmap(xch, domid, 2, 0, 0, extents) == 2
    assert list(extents) == gfns
    assert xc_domain_decrease_reservation(xch, domid, 2, 0, extents) == 2
    assert xc_get_tot_pages(xch, domid) == 0


def test_increase_reservation_accepts_a_null_list(xch: xc_interface) -> None:
    domid = domain(xch)
    assert xc_domain_increase_reservation(xch, domid, 3, 1, 0, None) == 3  # 3 x 2 pages
    assert xc_get_tot_pages(xch, domid) == 6


# -- host information for the known host (fact sheet 1.5, 3, 4) ------------------------------


def test_physinfo_of_the_two_node_host(xch: xc_interface) -> None:
    info = xc_physinfo(xch)
    assert (info.nr_nodes, info.max_node_id) == (2, 63)  # max_node_id is MAX_NUMNODES - 1
    assert (info.nr_cpus, info.max_cpu_id) == (8, 7)
    assert (info.total_pages, info.free_pages, info.scrub_pages) == (TOTAL_PAGES, FREE_PAGES, 0)
    assert info.outstanding_pages == 0
    assert info.max_mfn == TOTAL_PAGES - 1  # get_upper_mfn_bound: max_page - 1


def test_claims_show_in_outstanding_not_in_free(xch: xc_interface) -> None:
    """free_pages, numainfo memfree and availheap all include claimed pages (section 6.9)."""
    domid = domain(xch)
    claim_set(xch, domid, (HOST, 100), (0, 50))
    info = xc_physinfo(xch)
    assert (info.free_pages, info.outstanding_pages) == (FREE_PAGES - HVM_XEN, 150)
    meminfo, _ = xc_numainfo(xch)
    assert meminfo[0].memfree == (NODE0_FREE - HVM_XEN_NODE0) << 12
    assert xc_availheap(xch, 0, 0, -1) == (FREE_PAGES - HVM_XEN) << 12


def test_numainfo_of_the_two_node_host(xch: xc_interface) -> None:
    """memsize is the spanned size, memfree the free pages, both in bytes; SLIT-less
    distances are 10 local, 20 remote, row-major."""
    meminfo, distance = xc_numainfo(xch)
    assert [(m.memsize, m.memfree) for m in meminfo] == [
        (4 << 30, NODE0_FREE << 12),  # MFN 0 and dom0's two pages are not free
        (4 << 30, NODE1_FREE << 12),  # nor node 1's heap metadata
    ]
    assert distance == [10, 20, 20, 10]


@pytest.mark.parametrize(
    ("max_nodes", "rows", "distance"),
    [
        pytest.param(1, 1, [10], id="1-row"),
        pytest.param(2, 2, [10, 20, 20, 10], id="exact"),
        pytest.param(4, 2, [10, 20, 20, 10], id="4-clamped-to-2"),  # stride is the count
    ],
)
def test_numainfo_rows_are_clamped(
    xch: xc_interface, max_nodes: int, rows: int, distance: list[int]
) -> None:
    meminfo, got = xc_numainfo(xch, max_nodes)
    assert (len(meminfo), got) == (rows, distance)


@pytest.mark.xen_host(nodes=[64, 64, 64], offline=[1])
def test_numainfo_offline_node_reads_invalid(xch: xc_interface) -> None:
    """Rows run to the last online node; an offline node reads XEN_INVALID_MEM_SZ (~0U)."""
    meminfo, distance = xc_numainfo(xch)
    assert [(m.memsize, m.memfree) for m in meminfo] == [
        (64 << 20, (64 << 20) - 3 * 4096),
        (0xFFFFFFFF, 0xFFFFFFFF),
        (64 << 20, (64 << 20) - 4 * 4096),
    ]
    assert distance == [10, 20, 20, 20, 10, 20, 20, 20, 10]


@pytest.mark.parametrize(
    ("min_width", "max_width", "node", "pages"),
    [
        pytest.param(0, 0, -1, FREE_PAGES, id="all"),
        pytest.param(0, 0, 0, NODE0_FREE, id="node-0"),
        pytest.param(0, 0, 1, NODE1_FREE, id="node-1"),
        pytest.param(0, 0, 2, 0, id="absent-node-2"),
        pytest.param(0, 0, 64, 0, id="node-64"),
        # 32 bits: zones 1..20, MFNs below 2^20: exactly node 0
        pytest.param(0, 32, -1, NODE0_FREE, id="below-4g"),
        # 33 bits up: zone 21 on, MFNs from 2^20: exactly node 1
        pytest.param(33, 0, -1, NODE1_FREE, id="from-4g"),
        pytest.param(33, 0, 0, 0, id="node-0-from-4g"),
    ],
)
def test_availheap_bytes(
    xch: xc_interface, min_width: int, max_width: int, node: int, pages: int
) -> None:
    """avail_domheap_pages_region, in bytes; an absent node is 0, not an error."""
    assert xc_availheap(xch, min_width, max_width, node) == pages << 12


def test_maximum_ram_page_is_max_page(xch: xc_interface) -> None:
    assert xc_maximum_ram_page(xch) == TOTAL_PAGES  # highest RAM MFN + 1


def test_maximum_gpfn_and_nr_gpfns(xch: xc_interface) -> None:
    """An HVM guest populated at gfns 0x10 and 0xfff: maximum_gpfn 0xfff, nr_gpfns 0x1000;
    a domU may not ask about another domain (EPERM)."""
    domid = domain(xch)
    assert xc_domain_populate_physmap(xch, domid, 2, 0, 0, [0x10, 0xFFF]) == 2
    assert xc_domain_maximum_gpfn(xch, domid) == 0xFFF
    assert xc_domain_nr_gpfns(xch, domid) == 0x1000
    with pytest.raises(XenError) as e:
        xc_domain_maximum_gpfn(xc_interface_open(xch.hv, domid), 0)
    assert e.value.errno == EPERM


def test_sharing_counters_are_0(xch: xc_interface) -> None:
    assert (xc_sharing_freed_pages(xch), xc_sharing_used_frames(xch)) == (0, 0)


def test_a_memory_op_result_beyond_32_bits_comes_back_whole() -> None:
    """The reason xc_memory_op sends a one-entry multicall (xc_private.c): a host whose RAM
    reaches MFN 2^32 has maximum_ram_page 2^32 + 16, which an int could not carry. (It needs
    RAM inside the direct map too, where Xen keeps its own pages, dom0's included.)"""
    hv = hypervisor_model.boot(ranges=[[[0x1000, 0x2000], [1 << 32, (1 << 32) + 16]]])
    with xc_interface_open(hv) as xch:
        assert xc_maximum_ram_page(xch) == (1 << 32) + 16
    assert hv.arena.live_buffers() == 0  # both bounces, the argument's and the list's, freed


def test_getinfolist_is_in_domid_order(xch: xc_interface) -> None:
    """Domains with id >= first_domain, in id order, at most max_domains (sysctl.c)."""
    for domid in (7, 3, 5):
        xc_domain_create(xch, domid)

    def ids(first: int, most: int) -> list[int]:
        return [info.domain for info in xc_domain_getinfolist(xch, first, most)]

    assert ids(0, 10) == [0, 3, 5, 7]
    assert ids(4, 10) == [5, 7]
    assert ids(0, 2) == [0, 3]
    assert ids(8, 10) == []


def test_max_nodes_and_nodemap_size(xch: xc_interface) -> None:
    """max_node_id + 1 = MAX_NUMNODES = 64 whatever the topology; (64 + 7) / 8 = 8 bytes."""
    assert (xc_get_max_nodes(xch), xc_get_nodemap_size(xch)) == (64, 8)


@pytest.mark.parametrize(
    ("maxmem_kb", "max_pages"),
    [
        pytest.param(-1, 0xFFFFFFFF, id="minus-1-all-ones"),
        pytest.param(2**34, 0xFFFFFFFF, id="2^32-pages-clamped"),
        pytest.param(1024, 256, id="1024-kib"),
        pytest.param(1023, 255, id="1023-kib-rounds-down"),
        pytest.param(0, 0, id="zero"),
    ],
)
def test_setmaxmem_kib_to_pages(xch: xc_interface, maxmem_kb: int, max_pages: int) -> None:
    """max_pages = min(max_memkb >> 2, UINT_MAX); C passes uint64_t, so -1 is all ones."""
    domid = domain(xch, maxmem_kb)
    assert xc_domain_getinfo_single(xch, domid).max_pages == max_pages


# -- node affinity (fact sheet 2.2: domain_set_node_affinity) ------------------------------

ALL_NODES = b"\xff" * 8
ONLINE_CPU_NODES = b"\x03" + bytes(7)  # nodes 0 and 1 both have CPUs


def test_node_affinity_round_trip(xch: xc_interface) -> None:
    """A pinned mask reads back as set, absent node bits included; bytes or a list of ints."""
    domid = domain(xch)
    assert xc_domain_node_getaffinity(xch, domid) == ALL_NODES  # NODE_MASK_ALL
    xc_domain_node_setaffinity(xch, domid, b"\x02")
    assert xc_domain_node_getaffinity(xch, domid) == b"\x02" + bytes(7)
    xc_domain_node_setaffinity(xch, domid, [0b111])  # node 2 is absent but kept
    assert xc_domain_node_getaffinity(xch, domid) == b"\x07" + bytes(7)


def test_full_node_mask_means_automatic(xch: xc_interface) -> None:
    """A full mask turns automatic affinity back on; without vCPUs nothing is recomputed, so
    the old mask stays; once vCPUs exist it is the nodes of the CPUs they may use."""
    domid = domain(xch)
    xc_domain_node_setaffinity(xch, domid, b"\x02")
    xc_domain_node_setaffinity(xch, domid, ALL_NODES)
    assert xc_domain_node_getaffinity(xch, domid) == b"\x02" + bytes(7)
    xc_domain_max_vcpus(xch, domid, 1)
    assert xc_domain_node_getaffinity(xch, domid) == ONLINE_CPU_NODES


def test_node_affinity_with_vcpus_is_their_cpus_nodes(xch: xc_interface) -> None:
    domid = domain(xch)
    xc_domain_max_vcpus(xch, domid, 1)
    assert xc_domain_node_getaffinity(xch, domid) == ONLINE_CPU_NODES
    xc_domain_node_setaffinity(xch, domid, b"\x01")  # pinned: no recomputation
    assert xc_domain_node_getaffinity(xch, domid) == b"\x01" + bytes(7)


def test_create_writes_the_config_back(xch: xc_interface) -> None:
    """xc_domain_create copies Xen's createdomain back into *config: for a PV guest x86's
    arch_sanitise_domain_config has set XEN_DOMCTL_CDF_oos_off."""
    config_pv = default_createdomain(hvm=False)
    assert config_pv.flags == 0
    xc_domain_create(xch, config=config_pv)
    assert config_pv.flags == XEN_DOMCTL_CDF_oos_off


def test_failing_calls_free_their_buffers(xen_host: Hypervisor, xch: xc_interface) -> None:
    """Bounce buffers are released on every path (xc_hypercall_bounce_post)."""
    domid = domain(xch)
    for mode, nr in ((GET, 0), (2, 2)):  # ERANGE after the GET buffer exists; EOPNOTSUPP
        with pytest.raises(XenError):
            xc_domain_claim_memory(xch, domid, mode, nr, (xen_memory_claim_t * 2)())
    with pytest.raises(XenError):
        xc_domain_node_setaffinity(xch, domid, b"\x04")
    assert xen_host.arena.live_buffers() == 0

"""v7 claim sets through XEN_DOMCTL_claim_memory: the handler, the installer, GET, and the
scenarios the series' own tests walk through.

Rules: v7 notes §1 (claim_memory() checks in order, copy-back of nr_entries), §2
(domain_set_claim_entries: Phase 1 per entry, Phase 2 for the set, release, commit), §3
(domain_get_claim_entries), §4 (redemption), §5 (node check) and §10 (scenarios T1, T2, T4,
T5, T7, T9, T10); fact sheet §2.6. Small hosts put node n at MFN 0x1000 + 0x200 * n, so a
node of p pages has exactly p free pages (the fixture pays Xen's costs on top). The domains
are PV: each costs Xen two pages of node 0 (its structure and shared-info page, allocated
with no owner at createdomain), where an HVM guest's 256-page HAP pool would swamp a small
node. Every expected number is worked out by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pytest

import hypervisor_model
from hypervisor_model.domain import DOMDYING_dying
from hypervisor_model.guest_memory import build, parse
from hypervisor_model.public import domctl
from hypervisor_model.public.domctl import XEN_DOMCTL_CLAIM_MEMORY_GET as GET
from hypervisor_model.public.domctl import XEN_DOMCTL_CLAIM_MEMORY_HOST as HOST
from hypervisor_model.public.domctl import XEN_DOMCTL_CLAIM_MEMORY_LEGACY as LEGACY
from hypervisor_model.public.domctl import XEN_DOMCTL_CLAIM_MEMORY_SET as SET
from hypervisor_model.public.errno import (
    E2BIG,
    EFAULT,
    EINVAL,
    ENOENT,
    ENOMEM,
    EOPNOTSUPP,
    EPERM,
    ERANGE,
    ESRCH,
)
from hypervisor_model.public.memory import XENMEMF_exact_node, XENMEMF_node
from hypervisor_model.public.xen import DOMID_SELF

if TYPE_CHECKING:
    from collections.abc import Callable

    from hypercalls import Guest

    SmallHost = Callable[..., hypervisor_model.Hypervisor]

NODE_PAGES = 4096 * 256  # the `host` fixture: 2 nodes of 4096 MiB
# Node 0: MFN 0 never reaches the heap, and dom0's structure and shared-info pages are taken
# at boot; node 1: init_node_heap keeps its first 4 pages for its free lists.
NODE0_FREE, NODE1_FREE = NODE_PAGES - 1 - 2, NODE_PAGES - 4
FREE = NODE0_FREE + NODE1_FREE  # 2097145
PV_DOMAIN_PAGES = 2  # what a PV domain costs Xen, from node 0 (structure, shared info)
UNLIMITED_KB = (1 << 64) - 1  # max_pages 0xFFFFFFFF
ENTRY = domctl.xen_memory_claim.sizeof()  # 16 bytes
SENTINEL = b"\xaa" * ENTRY

Entry = tuple[int, int] | tuple[int, int, int]  # (target, pages[, cmd])


# -- raw helpers (per-entry cmd, nr_entries as Xen left it) -------------------------------


def pack(entries: Sequence[Entry]) -> bytes:
    return b"".join(
        build(domctl.xen_memory_claim, dict(target=e[0], pages=e[1], cmd=e[2] if len(e) > 2 else 0))
        for e in entries
    )


def claim_domctl(
    g: Guest,
    domid: int,
    entries: Sequence[Entry] = (),
    *,
    nr: int | None = None,
    mode: int = SET,
    null: bool = False,
    capacity_bytes: int = 0,
    prefill: bytes = b"",
) -> tuple[int, int, bytes]:
    """One XEN_DOMCTL_claim_memory: the result, nr_entries as copied back, the buffer after."""
    raw = pack(entries) + prefill
    size = max(len(raw), capacity_bytes)
    with g.hv.arena.alloc(size) as buf:
        buf.mem[: len(raw)] = raw
        rc, after = g.domctl(
            domctl.XEN_DOMCTL_claim_memory,
            domid,
            domctl.xen_domctl_claim_memory,
            dict(
                claim_set=0 if null else buf.addr,
                nr_entries=len(entries) if nr is None else nr,
                mode=mode,
            ),
        )
        return rc, after.payload.nr_entries, bytes(buf.mem[:size])


def claim_set(g: Guest, domid: int, entries: Sequence[Entry]) -> int:
    return claim_domctl(g, domid, entries)[0]


def claims(g: Guest, domid: int) -> list[tuple[int, int]]:
    """The domain's claim set as GET reports it (capacity 65)."""
    rc, nr, entries = g.claim_get(domid, 65)
    assert rc == 0 and nr == len(entries)
    return entries


def new_domain(g: Guest, max_kb: int = UNLIMITED_KB) -> int:
    d = g.create(hvm=False)
    assert g.max_mem(d, max_kb) == 0
    return d


def host_outstanding(g: Guest) -> int:
    return int(g.physinfo().outstanding_pages)


def set_dying(hv: hypervisor_model.Hypervisor, domid: int) -> None:
    """A domain mid-destroy (destroydomain itself completes in one call)."""
    d = hv.find_domain(domid)
    assert d is not None
    d.is_dying = DOMDYING_dying


# -- claim_memory(): the handler's checks in order (notes §1) ----------------------------

# Each case: caller ("dom0" or "domU"), target ("d1", "unknown" or "self"), dying, arguments
# for claim_domctl, expected result.
HANDLER_CASES: list[Any] = [
    pytest.param("dom0", "d1", False, dict(nr=0), -EINVAL, id="set-nr-0"),
    pytest.param("dom0", "d1", False, dict(nr=66), -E2BIG, id="set-nr-66"),
    pytest.param("dom0", "d1", False, dict(mode=2), -EOPNOTSUPP, id="mode-2"),
    pytest.param("dom0", "d1", False, dict(mode=0xFFFFFFFF), -EOPNOTSUPP, id="mode-all-ones"),
    pytest.param("dom0", "d1", True, {}, -ESRCH, id="set-dying"),
    pytest.param("dom0", "d1", True, dict(mode=GET), -ESRCH, id="get-dying"),
    pytest.param("dom0", "d1", False, dict(null=True), -EFAULT, id="set-null-buffer"),
    pytest.param("domU", "d1", False, {}, -EPERM, id="non-control-caller"),
    pytest.param("domU", "d1", False, dict(mode=GET), -EPERM, id="non-control-get"),
    pytest.param("dom0", "unknown", False, {}, -ESRCH, id="unknown-domain"),
    pytest.param("domU", "unknown", False, {}, -EPERM, id="unknown-domain-non-control"),
    pytest.param("dom0", "self", False, {}, -ESRCH, id="DOMID_SELF-not-translated"),
    # the order between the checks
    pytest.param("dom0", "d1", True, dict(nr=0), -EINVAL, id="nr-0-before-dying"),
    pytest.param("dom0", "d1", True, dict(nr=66), -E2BIG, id="nr-66-before-dying"),
    pytest.param("dom0", "d1", True, dict(mode=2), -EOPNOTSUPP, id="mode-before-dying"),
    pytest.param("dom0", "d1", True, dict(null=True), -ESRCH, id="dying-before-copy-in"),
    pytest.param("domU", "d1", False, dict(nr=0), -EPERM, id="xsm-before-nr"),
    pytest.param("domU", "d1", True, {}, -EPERM, id="xsm-before-dying"),
]


@pytest.mark.parametrize(("caller", "target", "dying", "kwargs", "expected"), HANDLER_CASES)
def test_handler_checks(
    host: hypervisor_model.Hypervisor,
    dom0: Guest,
    guest_class: type[Guest],
    caller: str,
    target: str,
    dying: bool,
    kwargs: dict[str, Any],
    expected: int,
) -> None:
    """do_domctl (lookup, XSM), then claim_memory(): nr 0, nr > 65, mode, dying, copy-in."""
    d1, domu = new_domain(dom0), new_domain(dom0)
    if dying:
        set_dying(host, d1)
    g = dom0 if caller == "dom0" else guest_class(host, domu)
    domid = {"d1": d1, "unknown": 4242, "self": DOMID_SELF}[target]
    assert claim_domctl(g, domid, [(HOST, 5)], **kwargs)[0] == expected
    assert host_outstanding(dom0) == 0


def test_65_entries_pass_the_handler(dom0: Guest) -> None:
    """MAX_NUMNODES + 1 = 65 is accepted by the handler; the installer then fails on node 2
    (offline on this 2-node host) with ENOENT, not E2BIG."""
    d = new_domain(dom0)
    entries = [(HOST, 0)] + [(n, 0) for n in range(64)]
    assert len(entries) == 65
    assert claim_set(dom0, d, entries) == -ENOENT


# -- domain_set_claim_entries: Phase 1 and Phase 2 (notes §2) -----------------------------

# small_host(4, 4, domains=1): 8 free pages once d1 exists; d1 has max_pages 16.
INSTALL_CASES: list[Any] = [
    # the reserved cmd field
    pytest.param([(HOST, 1, 1)], -EINVAL, id="cmd-1"),
    pytest.param([(0, 1, 0x80000000)], -EINVAL, id="cmd-high-bit"),
    pytest.param([(7, 1, 1)], -EINVAL, id="cmd-checked-before-target"),
    # one host-wide entry at most
    pytest.param([(HOST, 1), (HOST, 1)], -EINVAL, id="host-host"),
    pytest.param([(HOST, 1), (LEGACY, 1)], -EINVAL, id="host-legacy"),
    pytest.param([(LEGACY, 1), (HOST, 1)], -EINVAL, id="legacy-host"),
    pytest.param([(LEGACY, 1), (LEGACY, 1)], -EINVAL, id="legacy-legacy"),
    pytest.param([(HOST, 0), (HOST, 0)], -EINVAL, id="host-host-zero"),
    # node range and online state: ENOENT
    pytest.param([(2, 1)], -ENOENT, id="node-2-equals-nr-nodes"),
    pytest.param([(63, 1)], -ENOENT, id="node-63-absent"),
    pytest.param([(64, 1)], -ENOENT, id="node-64-MAX_NUMNODES"),
    pytest.param([(256, 1)], -ENOENT, id="node-256"),
    pytest.param([(2, 0)], -ENOENT, id="absent-node-zero-pages"),
    pytest.param([(0xFFFFFFFF, 1)], -ENOENT, id="selector-all-ones"),
    pytest.param([(0x80000001, 1)], -ENOENT, id="selector-host-plus-1"),
    pytest.param([(0x40000001, 1)], -ENOENT, id="selector-legacy-plus-1"),
    pytest.param([(0x20000000, 1)], -ENOENT, id="selector-0x20000000"),
    # duplicate nodes
    pytest.param([(0, 1), (0, 1)], -EINVAL, id="duplicate-node"),
    pytest.param([(1, 0), (1, 0)], -EINVAL, id="duplicate-node-zero-pages"),
    pytest.param([(0, 1), (0, 9)], -EINVAL, id="duplicate-before-node-enomem"),
    # node ENOMEM: 4 free pages per node
    pytest.param([(0, 5)], -ENOMEM, id="node0-5-of-4"),
    pytest.param([(1, 5)], -ENOMEM, id="node1-5-of-4"),
    pytest.param([(0, 1 << 31)], -ENOMEM, id="node-enomem-before-max_pages"),
    # the first failing entry decides
    pytest.param([(0, 5), (HOST, 0, 1)], -ENOMEM, id="node-enomem-before-later-cmd"),
    pytest.param([(7, 1), (0, 1, 1)], -ENOENT, id="enoent-before-later-cmd"),
    pytest.param([(HOST, 1, 1), (7, 1)], -EINVAL, id="cmd-before-later-enoent"),
    pytest.param([(HOST, 99), (7, 1)], -ENOENT, id="host-entry-has-no-phase1-enomem"),
    pytest.param([(0, 1), (7, 1)], -ENOENT, id="valid-node-then-enoent"),
    # Phase 2: LEGACY with node entries
    pytest.param([(LEGACY, 5), (0, 1)], -EINVAL, id="legacy-with-node-pages"),
    pytest.param([(LEGACY, 0), (0, 1)], -EINVAL, id="legacy-0-with-node-pages"),
    pytest.param([(LEGACY, 5), (7, 0)], -ENOENT, id="legacy-zero-node-still-checked"),
    pytest.param([(LEGACY, 5), (0, 0), (0, 0)], -EINVAL, id="legacy-duplicate-zero-node"),
    # Phase 2: max_pages 16, then host ENOMEM against 8 free pages
    pytest.param([(HOST, 17)], -EINVAL, id="host-above-max_pages"),
    pytest.param([(HOST, 1 << 31)], -EINVAL, id="host-2^31-above-max_pages"),
    pytest.param([(HOST, 13), (0, 4)], -EINVAL, id="host-plus-nodes-above-max_pages"),
    pytest.param([(HOST, 9)], -ENOMEM, id="host-9-of-8"),
    pytest.param([(HOST, 1), (0, 4), (1, 4)], -ENOMEM, id="host-1-plus-nodes-8-of-8"),
    pytest.param([(LEGACY, 9)], -ENOMEM, id="legacy-9-of-8"),
    pytest.param([(LEGACY, 17)], -EINVAL, id="legacy-above-max_pages"),
]


@pytest.mark.parametrize(("entries", "expected"), INSTALL_CASES)
def test_install_checks(
    small_host: SmallHost, entries: list[Entry], expected: int, guest_class: type[Guest]
) -> None:
    """domain_set_claim_entries: per entry cmd, host/LEGACY, range and online (ENOENT),
    duplicate, node ENOMEM; then LEGACY rules, max_pages (EINVAL), host ENOMEM."""
    dom0 = guest_class(small_host(4, 4, domains=1))
    d = new_domain(dom0, max_kb=16 * 4)
    assert claim_set(dom0, d, entries) == expected
    assert host_outstanding(dom0) == 0


@pytest.mark.parametrize(
    ("entries", "expected_set"),
    [
        pytest.param([(0, 4), (1, 4)], [(HOST, 0), (0, 4), (1, 4)], id="both-nodes-full"),
        pytest.param([(HOST, 8)], [(HOST, 8)], id="host-all-free"),
        pytest.param([(HOST, 2), (1, 3), (0, 3)], [(HOST, 2), (0, 3), (1, 3)], id="mixed"),
        pytest.param([(LEGACY, 5)], [(HOST, 5)], id="legacy-alone"),
        pytest.param([(0, 0), (LEGACY, 5), (1, 0)], [(HOST, 5)], id="legacy-zero-nodes"),
        pytest.param([(0, 0), (1, 2)], [(HOST, 0), (1, 2)], id="zero-page-node-not-listed"),
    ],
)
def test_install_succeeds(
    small_host: SmallHost,
    entries: list[Entry],
    expected_set: list[tuple[int, int]],
    guest_class: type[Guest],
) -> None:
    """Sets at the limits install, and GET lists them: HOST first, then nodes ascending."""
    dom0 = guest_class(small_host(4, 4, domains=1))
    d = new_domain(dom0, max_kb=16 * 4)
    assert claim_set(dom0, d, entries) == 0
    assert claims(dom0, d) == expected_set
    assert host_outstanding(dom0) == sum(pages for _, pages in expected_set)


def test_offline_node_is_enoent(guest_class: type[Guest]) -> None:
    """Phase 1: a node that exists but is offline is ENOENT, whatever the page count. Node 0
    has 8 pages, 2 of which pay for dom0 and 2 for d (structure and shared info)."""
    hv = hypervisor_model.boot(ranges=[[[0x1000, 0x1008]], [[0x1200, 0x1204]]], offline=[1])
    hv.check_after_each_hypercall = True
    dom0 = guest_class(hv)
    d = new_domain(dom0)
    assert claim_set(dom0, d, [(1, 1)]) == -ENOENT
    assert claim_set(dom0, d, [(1, 0)]) == -ENOENT
    assert claim_set(dom0, d, [(0, 4)]) == 0


def test_node_enomem_counts_the_domains_own_claim_as_available(
    small_host: SmallHost, guest_class: type[Guest]
) -> None:
    """Phase 1: pages <= node_avail - claimed_pages[n] + d->claims[n] (node 0 has 4 pages)."""
    dom0 = guest_class(small_host(4, 4, domains=2))
    d1, d2 = new_domain(dom0), new_domain(dom0)
    assert claim_set(dom0, d1, [(0, 3)]) == 0
    assert claim_set(dom0, d2, [(0, 2)]) == -ENOMEM  # 4 - 3 + 0 = 1 < 2
    assert claim_set(dom0, d2, [(0, 1)]) == 0  # 1 <= 1; node 0 fully claimed: 3 + 1
    assert claim_set(dom0, d1, [(0, 4)]) == -ENOMEM  # 4 - 4 + 3 = 3 < 4
    assert claim_set(dom0, d1, [(0, 3)]) == 0  # 3 <= 3: re-installing its own claim
    assert claims(dom0, d1) == [(HOST, 0), (0, 3)]
    assert claims(dom0, d2) == [(HOST, 0), (0, 1)]


def test_other_domains_host_claims_count_only_at_host_level(
    small_host: SmallHost, guest_class: type[Guest]
) -> None:
    """Phase 1 ignores host-wide claims of others; Phase 2 does not: d2 {HOST 4} leaves 4
    unclaimed, d1 takes node 0's 4, then d3's 1 page on node 1 passes the node check
    (4 - 0 >= 1) and fails the host check (1 > 8 - 8 + 0)."""
    dom0 = guest_class(small_host(4, 4, domains=3))
    d1, d2, d3 = new_domain(dom0), new_domain(dom0), new_domain(dom0)
    assert claim_set(dom0, d2, [(HOST, 4)]) == 0
    assert claim_set(dom0, d1, [(0, 4)]) == 0
    assert claim_set(dom0, d3, [(1, 1)]) == -ENOMEM


def test_host_enomem_adds_back_the_domains_own_claims(
    small_host: SmallHost, guest_class: type[Guest]
) -> None:
    """Phase 2: node + host <= (free - outstanding_claims) + d->outstanding_pages."""
    dom0 = guest_class(small_host(4, 4, domains=2))
    d1, d2 = new_domain(dom0), new_domain(dom0)
    assert claim_set(dom0, d1, [(HOST, 6)]) == 0
    assert claim_set(dom0, d2, [(HOST, 2)]) == 0  # 8 of 8 claimed
    assert claim_set(dom0, d2, [(HOST, 3)]) == -ENOMEM  # 3 > 0 + 2
    assert claim_set(dom0, d1, [(0, 3), (1, 3)]) == 0  # 6 <= 0 + 6
    assert claim_set(dom0, d1, [(0, 3), (1, 3), (HOST, 1)]) == -ENOMEM  # 7 > 0 + 6
    assert claim_set(dom0, d1, [(0, 4), (1, 2)]) == 0  # node 0: 4 <= 4 - 3 + 3; host 6 <= 6
    assert claims(dom0, d1) == [(HOST, 0), (0, 4), (1, 2)]
    assert host_outstanding(dom0) == 8


@pytest.mark.parametrize(
    ("entries", "expected"),
    [
        # d1: max_pages 10, tot_pages 3
        pytest.param([(HOST, 11)], -EINVAL, id="host-11-above-max-10"),
        pytest.param([(HOST, 8)], -EINVAL, id="host-8-plus-tot-3"),
        pytest.param([(HOST, 7)], 0, id="host-7-plus-tot-3-equals-max"),
        pytest.param([(0, 11)], -EINVAL, id="node-11-above-max-minus-host"),
        pytest.param([(0, 8)], -EINVAL, id="node-8-plus-tot-3"),
        pytest.param([(0, 7)], 0, id="node-7-plus-tot-3"),
        pytest.param([(HOST, 4), (0, 4)], -EINVAL, id="4-plus-4-plus-3"),
        pytest.param([(HOST, 4), (0, 3)], 0, id="4-plus-3-plus-3"),
        pytest.param([(HOST, 4), (0, 2), (1, 2)], -EINVAL, id="4-plus-2-plus-2-plus-3"),
        pytest.param([(HOST, 4), (0, 2), (1, 1)], 0, id="4-plus-2-plus-1-plus-3"),
        pytest.param([(HOST, 11), (0, 0)], -EINVAL, id="host-11-with-zero-node"),
    ],
)
def test_max_pages_checks(dom0: Guest, entries: list[Entry], expected: int) -> None:
    """Phase 2: host > max, node > max - host, node + host + tot_pages > max are EINVAL;
    v7 claims are absolute, but tot_pages still counts toward max_pages (gotcha 5)."""
    d = new_domain(dom0, max_kb=10 * 4)
    assert dom0.populate(d, [0, 1, 2]) == 3
    assert claim_set(dom0, d, entries) == expected


@pytest.mark.parametrize(
    ("tot", "claim", "expected_host"),
    [
        pytest.param(2, 5, 3, id="target-5-minus-tot-2"),
        pytest.param(2, 2, None, id="target-equal-to-tot"),
        pytest.param(2, 1, None, id="target-below-tot"),
    ],
)
def test_legacy_entry_subtracts_tot_pages(
    dom0: Guest, tot: int, claim: int, expected_host: int | None
) -> None:
    """Phase 2 legacy: target <= tot_pages is EINVAL, otherwise target - tot_pages."""
    d = new_domain(dom0)
    assert dom0.populate(d, range(tot)) == tot
    rc = claim_set(dom0, d, [(LEGACY, claim)])
    if expected_host is None:
        assert rc == -EINVAL
        assert claims(dom0, d) == [(HOST, 0)]
    else:
        assert rc == 0
        assert claims(dom0, d) == [(HOST, expected_host)]


def test_legacy_entry_needs_no_existing_claim_and_zero_releases(dom0: Guest) -> None:
    """Phase 2 legacy: any existing claim (here a node claim) is EINVAL; LEGACY 0 releases."""
    d = new_domain(dom0)
    assert claim_set(dom0, d, [(0, 5)]) == 0
    assert claim_set(dom0, d, [(LEGACY, 10)]) == -EINVAL
    assert claim_set(dom0, d, [(LEGACY, 0)]) == 0
    assert claims(dom0, d) == [(HOST, 0)]
    assert claim_set(dom0, d, [(LEGACY, 10)]) == 0
    assert claims(dom0, d) == [(HOST, 10)]


# -- release, replace, atomicity ----------------------------------------------------------


@pytest.mark.parametrize(
    "release",
    [
        pytest.param([(HOST, 0)], id="host-0"),
        pytest.param([(0, 0), (1, 0)], id="zero-node-entries"),
        pytest.param([(LEGACY, 0)], id="legacy-0"),
        pytest.param([(0, 0)], id="node-0-only"),
    ],
)
def test_all_zero_set_releases_even_above_max_pages(dom0: Guest, release: list[Entry]) -> None:
    """Notes §2: an all-zero set jumps to release before the max_pages checks, so it works
    with tot_pages 3 > max_pages 2 (N TCCD/TCCH); a non-zero set is then EINVAL."""
    d = new_domain(dom0, max_kb=8 * 4)
    assert dom0.populate(d, [0, 1, 2]) == 3
    assert claim_set(dom0, d, [(HOST, 2), (1, 3)]) == 0  # 2 + 3 + 3 <= 8
    assert dom0.max_mem(d, 2 * 4) == 0
    assert claim_set(dom0, d, release) == 0
    assert claims(dom0, d) == [(HOST, 0)]
    assert host_outstanding(dom0) == 0
    assert claim_set(dom0, d, [(HOST, 1)]) == -EINVAL  # 1 + 0 + 3 > 2


def test_set_replaces_and_never_accumulates(dom0: Guest) -> None:
    """Notes §2 commit: every SET first releases the whole old set; unmentioned nodes lose
    their claims; the same set twice stays the same size."""
    d = new_domain(dom0)
    assert claim_set(dom0, d, [(HOST, 2), (0, 1)]) == 0
    assert host_outstanding(dom0) == 3
    assert claim_set(dom0, d, [(1, 2)]) == 0
    assert claims(dom0, d) == [(HOST, 0), (1, 2)]
    assert host_outstanding(dom0) == 2
    assert dom0.info(d).outstanding_pages == 2
    for _ in range(2):
        assert claim_set(dom0, d, [(HOST, 5)]) == 0
        assert claims(dom0, d) == [(HOST, 5)]
        assert host_outstanding(dom0) == 5


ATOMIC_CASES: list[Any] = [
    pytest.param(dict(entries=[(0, 3), (1, 1), (7, 1)]), -ENOENT, id="enoent-after-valid"),
    pytest.param(dict(entries=[(0, 1), (0, 1)]), -EINVAL, id="duplicate"),
    pytest.param(dict(entries=[(HOST, 1), (1, 1, 1)]), -EINVAL, id="cmd"),
    pytest.param(dict(entries=[(0, 5)]), -ENOMEM, id="node-enomem"),  # 5 > 4 - 2 + 2
    pytest.param(dict(entries=[(HOST, 5), (0, 4)]), -ENOMEM, id="host-enomem"),  # 9 > 4 + 4
    pytest.param(dict(entries=[(LEGACY, 6)]), -EINVAL, id="legacy-with-claim"),
    pytest.param(dict(entries=[(HOST, 1 << 32)]), -EINVAL, id="above-max_pages"),
    pytest.param(dict(entries=[(HOST, 1)], nr=66), -E2BIG, id="nr-66"),
    pytest.param(dict(entries=[(HOST, 1)], mode=3), -EOPNOTSUPP, id="mode-3"),
    pytest.param(dict(entries=[(HOST, 1)], null=True), -EFAULT, id="null-buffer"),
]


@pytest.mark.parametrize(("kwargs", "expected"), ATOMIC_CASES)
def test_failing_set_leaves_the_old_claims(
    small_host: SmallHost, kwargs: dict[str, Any], expected: int, guest_class: type[Guest]
) -> None:
    """Both locks are held and every check precedes the commit: a failure changes nothing."""
    dom0 = guest_class(small_host(4, 4, domains=1))
    d = new_domain(dom0)
    old = [(HOST, 1), (0, 2), (1, 1)]
    assert claim_set(dom0, d, old) == 0
    assert claim_domctl(dom0, d, **kwargs)[0] == expected
    assert claims(dom0, d) == old
    assert host_outstanding(dom0) == 4
    assert dom0.info(d).outstanding_pages == 4


# -- GET (notes §3) ----------------------------------------------------------------------


def test_get_lists_host_first_even_when_zero(dom0: Guest) -> None:
    """A fresh domain: one entry {HOST, 0}; a size query gives ERANGE and 1 (S test A1-8)."""
    d = new_domain(dom0)
    assert dom0.claim_get(d, 0) == (-ERANGE, 1, [])
    assert dom0.claim_get(d, 1) == (0, 1, [(HOST, 0)])


def test_get_lists_online_nodes_with_claims_ascending(
    small_host: SmallHost, guest_class: type[Guest]
) -> None:
    """Node entries follow HOST in ascending node order, whatever the SET order; nodes with
    a zero claim are left out."""
    dom0 = guest_class(small_host(4, 4, 4, domains=1))
    d = new_domain(dom0)
    assert claim_set(dom0, d, [(2, 3), (1, 0), (0, 1)]) == 0
    assert dom0.claim_get(d, 3) == (0, 3, [(HOST, 0), (0, 1), (2, 3)])


@pytest.mark.parametrize(
    ("capacity", "expected_rc"),
    [
        pytest.param(0, -ERANGE, id="capacity-0"),
        pytest.param(1, -ERANGE, id="capacity-1"),
        pytest.param(2, 0, id="capacity-2"),
        pytest.param(65, 0, id="capacity-65"),
        pytest.param(66, 0, id="capacity-66-clamped"),
        pytest.param(0xFFFFFFFF, 0, id="capacity-uint-max-clamped"),
    ],
)
def test_get_capacity(dom0: Guest, capacity: int, expected_rc: int) -> None:
    """A 2-entry set: nr_entries returns the needed count 2 whatever the capacity; a short
    buffer is ERANGE and untouched; capacity > 65 is clamped (to 65 >= 2), never an error;
    only the needed 2 records are copied out, so later ones keep the caller's bytes (the
    buffer holds min(capacity, 66) records)."""
    d = new_domain(dom0)
    assert claim_set(dom0, d, [(HOST, 7), (1, 5)]) == 0
    held = min(capacity, 66)
    rc, nr, buf = claim_domctl(
        dom0, d, nr=capacity, mode=GET, prefill=SENTINEL * held, capacity_bytes=ENTRY
    )
    assert (rc, nr) == (expected_rc, 2)
    records = [buf[i : i + ENTRY] for i in range(0, held * ENTRY, ENTRY)]
    if expected_rc:
        assert all(r == SENTINEL for r in records)
    else:
        got = [parse(domctl.xen_memory_claim, r) for r in records[:2]]
        assert [(e.target, e.pages, e.cmd) for e in got] == [(HOST, 7, 0), (1, 5, 0)]
        assert all(r == SENTINEL for r in records[2:])


def test_get_into_a_null_buffer_is_efault_but_reports_the_count(dom0: Guest) -> None:
    """Notes §1: on the GET path copyback is set before the copy-out, so a NULL buffer with
    enough capacity is EFAULT yet nr_entries still reads 3."""
    d = new_domain(dom0)
    assert claim_set(dom0, d, [(HOST, 1), (0, 1), (1, 1)]) == 0
    assert claim_domctl(dom0, d, nr=5, mode=GET, null=True)[:2] == (-EFAULT, 3)


def test_set_does_not_write_nr_entries_back(dom0: Guest) -> None:
    """Notes §1: SET never copies the domctl back: nr_entries stays 3 (GET would say 1)."""
    d = new_domain(dom0)
    assert claim_domctl(dom0, d, [(HOST, 3), (0, 0), (1, 0)])[:2] == (0, 3)
    assert claim_domctl(dom0, d, [(HOST, FREE + 1), (0, 0)])[:2] == (-ENOMEM, 2)


@pytest.mark.parametrize(
    ("caller", "dying", "mode", "expected"),
    [
        pytest.param("dom0", True, GET, -ESRCH, id="dying"),
        pytest.param("dom0", False, 2, -EOPNOTSUPP, id="bad-mode"),
        pytest.param("domU", False, GET, -EPERM, id="non-control"),
    ],
)
def test_get_early_failures_do_not_write_nr_entries_back(
    host: hypervisor_model.Hypervisor,
    dom0: Guest,
    guest_class: type[Guest],
    caller: str,
    dying: bool,
    mode: int,
    expected: int,
) -> None:
    """Notes §1: failures before the buffer exists leave the caller's nr_entries (5)."""
    d, domu = new_domain(dom0), new_domain(dom0)
    assert claim_set(dom0, d, [(HOST, 1)]) == 0
    if dying:
        set_dying(host, d)
    g = dom0 if caller == "dom0" else guest_class(host, domu)
    assert claim_domctl(g, d, nr=5, mode=mode, capacity_bytes=5 * ENTRY)[:2] == (expected, 5)


# -- scenarios (notes §10) ---------------------------------------------------------------


def _claim(g: Guest, domid: int, pages: int, legacy: bool) -> int:
    """Claim ``pages`` absolute: a HOST entry, or like N's legacy wrapper: reset, then a
    target of pages + tot_pages through XENMEM_claim_pages."""
    if not legacy:
        return claim_set(g, domid, [(HOST, pages)])
    assert g.claim_pages(domid, 0) == 0
    return g.claim_pages(domid, pages + g.info(domid).tot_pages) if pages else 0


@pytest.mark.parametrize("legacy", [True, False], ids=["DCGD-legacy", "DCGH-host-entry"])
def test_T1_alloc_redeems_claims(
    small_host: SmallHost, legacy: bool, guest_class: type[Guest]
) -> None:
    """T1 (N test_alloc_domheap_redeems_claims): UMA, one order-2 buddy of 4 pages;
    max_pages 16 for both domains."""
    dom0 = guest_class(small_host(4, domains=2))
    d1, d2 = new_domain(dom0, max_kb=16 * 4), new_domain(dom0, max_kb=16 * 4)
    assert _claim(dom0, d1, 3, legacy) == 0
    assert dom0.populate(d1, [0], order=1) == 1  # 3 - 2 = 1 left
    assert dom0.populate(d1, [2]) == 1  # 1 - 1 = 0 left
    info = dom0.physinfo()
    assert (info.outstanding_pages, info.free_pages) == (0, 1)
    assert dom0.info(d1).tot_pages == 3
    assert _claim(dom0, d2, 1, legacy) == 0  # the last free page
    assert _claim(dom0, d1, 4, legacy) == -ENOMEM  # 4 > (1 - 1) + 0
    assert _claim(dom0, d1, 17, legacy) == -EINVAL  # max_pages 16
    assert dom0.populate(d1, [3]) == 0  # host check: 1 + 1 > 1 and d1 holds no claim
    info = dom0.physinfo()
    assert (info.outstanding_pages, info.free_pages) == (1, 1)


@pytest.mark.parametrize("legacy", [True, False], ids=["TCCD-legacy", "TCCH-host-entry"])
def test_T2_claim_alloc_cancel(
    small_host: SmallHost, legacy: bool, guest_class: type[Guest]
) -> None:
    """T2 (N test_claim_alloc_cancel): UMA, one order-3 buddy of 8 pages; max_pages 16."""
    dom0 = guest_class(small_host(8, domains=2))
    d1, d2 = new_domain(dom0, max_kb=16 * 4), new_domain(dom0, max_kb=16 * 4)
    assert _claim(dom0, d1, 4, legacy) == 0
    assert dom0.populate(d1, [0], order=1) == 1
    assert host_outstanding(dom0) == 2  # 4 - 2
    assert dom0.populate(d1, [2]) == 1
    info = dom0.physinfo()
    assert (info.outstanding_pages, info.free_pages) == (1, 5)
    assert _claim(dom0, d2, 8, legacy) == -ENOMEM
    assert _claim(dom0, d2, 5, legacy) == -ENOMEM  # unclaimed 5 - 1 = 4
    assert host_outstanding(dom0) == 1
    assert dom0.max_mem(d1, 2 * 4) == 0  # max_pages 2 < tot_pages 3
    assert _claim(dom0, d1, 0, legacy) == 0  # release ignores max_pages
    assert host_outstanding(dom0) == 0
    assert _claim(dom0, d2, 5, legacy) == 0
    assert host_outstanding(dom0) == 5
    assert _claim(dom0, d1, 1, legacy) == -EINVAL  # 1 + 0 + 3 > 2
    assert dom0.max_mem(d1, 8 * 4) == 0
    assert _claim(dom0, d1, 1, legacy) == -ENOMEM  # 1 > (5 - 5) + 0
    assert dom0.populate(d1, [3]) == 0
    assert dom0.populate(d2, [0]) == 1
    assert host_outstanding(dom0) == 4
    assert dom0.populate(d2, [4], order=2) == 1  # host check: 4 + 4 > 4, but d2 holds 4
    info = dom0.physinfo()
    assert (info.outstanding_pages, info.free_pages) == (0, 0)


def _walk(
    g: Guest,
    domid: int,
    steps: Sequence[tuple[int, int, int, int, tuple[int, int], list[tuple[int, int]]]],
) -> None:
    """Populate one extent per step (order, mem_flags, gfn) and check the host totals, the
    free pages per node and the domain's GET after it."""
    for order, flags, gfn, out, frees, after in steps:
        assert g.populate(domid, [gfn], order, flags) == 1, (order, flags, gfn)
        info = g.physinfo()
        assert (info.outstanding_pages, info.free_pages) == (out, sum(frees))
        assert (g.node_free(0), g.node_free(1)) == frees
        assert claims(g, domid) == after


def test_T4_numa_install_and_redeem(small_host: SmallHost, guest_class: type[Guest]) -> None:
    """T4 (N test_claims_numa_install): 4 + 4 pages, {HOST 2, n0 2, n1 2}."""
    dom0 = guest_class(small_host(4, 4, domains=1))
    d = new_domain(dom0)
    assert claim_set(dom0, d, [(HOST, 2), (0, 2), (1, 2)]) == 0
    assert host_outstanding(dom0) == 6
    x0, x1, n1 = XENMEMF_exact_node(0), XENMEMF_exact_node(1), XENMEMF_node(1)
    _walk(
        dom0,
        d,
        [
            (0, x0, 0, 5, (3, 4), [(HOST, 2), (0, 1), (1, 2)]),
            (0, x1, 1, 4, (3, 3), [(HOST, 2), (0, 1), (1, 1)]),
            # order 1 on n1: 1 from n1's claim, 1 from the host-wide claim
            (1, x1, 2, 2, (3, 1), [(HOST, 1), (0, 1)]),
            # n1's last page is unclaimed; the host-wide claim pays for it
            (0, x1, 4, 1, (3, 0), [(HOST, 0), (0, 1)]),
            # n1 is empty: the node check skips it and the page comes from n0, whose
            # claim pays (avail 3 - 1 + 1 >= 1)
            (0, n1, 5, 0, (2, 0), [(HOST, 0)]),
        ],
    )


def test_T5_numa_get(small_host: SmallHost, guest_class: type[Guest]) -> None:
    """T5 (N test_claims_numa_get): size query, then the full set in order."""
    dom0 = guest_class(small_host(4, 4, domains=1))
    d = new_domain(dom0)
    assert claim_set(dom0, d, [(HOST, 2), (0, 2), (1, 2)]) == 0
    assert dom0.claim_get(d, 0) == (-ERANGE, 3, [])
    assert dom0.claim_get(d, 3) == (0, 3, [(HOST, 2), (0, 2), (1, 2)])


def test_T7_numa_install_on_a_small_node(small_host: SmallHost, guest_class: type[Guest]) -> None:
    """T7 (F6 test_claims_numa_install, CNI0): node 0 has 2 pages, node 1 has 4; the set
    {HOST 2, n0 2, n1 2} fits exactly (n0: 2 <= 2; total 6 <= 6)."""
    dom0 = guest_class(small_host(2, 4, domains=1))
    d = new_domain(dom0)
    assert claim_set(dom0, d, [(HOST, 2), (0, 2), (1, 2)]) == 0
    x0, x1, n1 = XENMEMF_exact_node(0), XENMEMF_exact_node(1), XENMEMF_node(1)
    _walk(
        dom0,
        d,
        [
            (0, x0, 0, 5, (1, 4), [(HOST, 2), (0, 1), (1, 2)]),
            (0, x1, 1, 4, (1, 3), [(HOST, 2), (0, 1), (1, 1)]),
            (1, x1, 2, 2, (1, 1), [(HOST, 1), (0, 1)]),
            (0, x1, 4, 1, (1, 0), [(HOST, 0), (0, 1)]),
            (0, n1, 5, 0, (0, 0), [(HOST, 0)]),  # n1 empty: falls back to n0, its own claim
        ],
    )


T9_CASES: list[Any] = [
    pytest.param(dict(entries=[(2, 1)]), -ENOENT, id="I1-1-target-nr-nodes"),
    pytest.param(dict(entries=[(0, 1)] * 256), -E2BIG, id="I1-2-256-entries"),
    pytest.param(dict(entries=[(256, 1)]), -ENOENT, id="I1-3-target-256"),
    pytest.param(dict(entries=[(0, 1 << 31)]), -ENOMEM, id="I1-4-node-2^31"),
    pytest.param(dict(entries=[(0, 1, 1)]), -EINVAL, id="I1-5-cmd-1"),
    pytest.param(dict(nr=0, null=True), -EINVAL, id="I1-6-nr-0-null"),
    pytest.param(dict(entries=[(HOST, 1)], null=True), -EFAULT, id="I1-7-nr-1-null"),
    pytest.param(dict(entries=[(HOST, 1)], nr=0), -EINVAL, id="I1-8-nr-0-valid-buffer"),
    pytest.param(dict(entries=[(HOST, FREE + 1)]), -ENOMEM, id="I1-9-host-free-plus-1"),
    pytest.param(dict(entries=[(0, NODE0_FREE + 1)]), -ENOMEM, id="I1-9-node0-free-plus-1"),
    pytest.param(dict(entries=[(1, NODE1_FREE + 1)]), -ENOMEM, id="I1-9-node1-free-plus-1"),
]


@pytest.mark.parametrize(("kwargs", "expected"), T9_CASES)
def test_T9_argument_checks(dom0: Guest, kwargs: dict[str, Any], expected: int) -> None:
    """T9 (S I1-x): SET on a fresh domain with max_pages 0xFFFFFFFF, 2 x 4 GiB host."""
    d = new_domain(dom0)
    assert claim_domctl(dom0, d, **kwargs)[0] == expected
    assert host_outstanding(dom0) == 0


def test_T9_legacy_claim_of_free_plus_one(dom0: Guest) -> None:
    """T9 I1-9 through XENMEM_claim_pages: free + 1 = 2097152 pages is ENOMEM."""
    d = new_domain(dom0)
    assert dom0.claim_pages(d, FREE + 1) == -ENOMEM


def test_T10_move_a_claim_between_nodes(small_host: SmallHost, guest_class: type[Guest]) -> None:
    """T10 (S A1-5): node 0 has 64 pages, node 1 has 32; d2 populates exact-node extents."""
    dom0 = guest_class(small_host(64, 32, domains=2))
    d1, d2 = new_domain(dom0), new_domain(dom0)
    x0, x1 = XENMEMF_exact_node(0), XENMEMF_exact_node(1)
    gfns = iter(range(1000))

    def populate(flags: int, count: int = 20) -> int:
        return dom0.populate(d2, [next(gfns) for _ in range(count)], 0, flags)

    assert claim_set(dom0, d1, [(0, 64 - 10)]) == 0
    assert host_outstanding(dom0) == 54
    assert populate(x0) == 10  # node check: 64 - 54 = 10 unclaimed pages, then stop
    assert claim_set(dom0, d1, [(1, 32 - 10)]) == 0  # replaces the node 0 claim
    assert host_outstanding(dom0) == 54 + (22 - 54)
    assert dom0.info(d1).outstanding_pages == 22
    assert claims(dom0, d1) == [(HOST, 0), (1, 22)]
    assert populate(x0) == 20  # node 0: 54 free, none claimed
    assert populate(x1) == 10  # node 1: 32 - 22
    assert claim_set(dom0, d1, [(HOST, 0)]) == 0
    assert populate(x1) == 20  # node 1: 22 free, none claimed
    assert (dom0.node_free(0), dom0.node_free(1)) == (64 - 30, 32 - 30)


@pytest.mark.parametrize(
    "hog",
    [
        pytest.param(lambda g, d, free: g.claim_pages(d, free - 200), id="legacy"),
        pytest.param(lambda g, d, free: claim_set(g, d, [(HOST, free - 200)]), id="host-entry"),
    ],
)
@pytest.mark.parametrize(
    "ask",
    [
        pytest.param(lambda g, d, n: g.claim_pages(d, n), id="legacy"),
        pytest.param(lambda g, d, n: claim_set(g, d, [(HOST, n)]), id="host-entry"),
        pytest.param(lambda g, d, n: claim_set(g, d, [(0, n)]), id="node0"),
    ],
)
def test_T10_I2_host_claim_leaves_200_pages(dom0: Guest, hog: Any, ask: Any) -> None:
    """T10 (S I2-x): d1 claims all but 200 pages host-wide; d2 may claim 200, not 400."""
    d1, d2 = new_domain(dom0), new_domain(dom0)
    free = FREE - 2 * PV_DOMAIN_PAGES  # both from node 0
    assert hog(dom0, d1, free) == 0
    assert ask(dom0, d2, 400) == -ENOMEM
    assert ask(dom0, d2, 200) == 0
    assert host_outstanding(dom0) == free


def test_T10_I2_node_claim_leaves_200_pages(dom0: Guest) -> None:
    """T10 (S I2-x), node variant: all but 200 of node 0 claimed by d1."""
    d1, d2 = new_domain(dom0), new_domain(dom0)
    node0_free = NODE0_FREE - 2 * PV_DOMAIN_PAGES
    assert claim_set(dom0, d1, [(0, node0_free - 200)]) == 0
    assert claim_set(dom0, d2, [(0, 400)]) == -ENOMEM
    assert claim_set(dom0, d2, [(0, 200)]) == 0
    assert host_outstanding(dom0) == node0_free


@pytest.mark.parametrize("target", [HOST, 0], ids=["host", "node0"])
def test_T10_A1_replacement_is_absolute(dom0: Guest, target: int) -> None:
    """T10 (S A1-2, A1-3): one extent lowers the claim 10 -> 9; the same SET again gives 10,
    not 10 - tot_pages."""
    d = new_domain(dom0)
    assert claim_set(dom0, d, [(target, 10)]) == 0
    assert dom0.populate(d, [0], 0, XENMEMF_exact_node(0)) == 1
    assert dom0.info(d).outstanding_pages == 9
    assert claim_set(dom0, d, [(target, 10)]) == 0
    assert dom0.info(d).outstanding_pages == 10
    assert dom0.info(d).tot_pages == 1
    assert host_outstanding(dom0) == 10

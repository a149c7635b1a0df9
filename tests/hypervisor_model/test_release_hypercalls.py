"""A host speaks one Xen release: master (4.23-unstable) or 4.17, as Debian 12's tools do.

Where the releases differ on a modelled call, a 4.17 host behaves as Xen 4.17.7 does: the
interface versions (do_domctl, do_sysctl), the 64-byte createdomain (4.17 domctl.h), the
domid picked from a rover for domid 0 or a reserved id (4.17 domctl.c
XEN_DOMCTL_createdomain), getdomaininfo of a missing id answering with the next domain
(4.17 domctl.c), ESRCH for every caller's missing domain, the HVM emulators
(emulation_flags_ok), the nodemap copy-back (bitmap_to_xenctl_bitmap) and the version
strings. Everything else, claim sets included, is the same: each test shows both.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pytest
from hypercalls import Guest, createdomain_payload

import hypervisor_model
from hypervisor_model.guest_memory import build, parse
from hypervisor_model.host import HostConfigError, host_from_mapping
from hypervisor_model.public import domctl, releases, sysctl, version
from hypervisor_model.public.errno import (
    EACCES,
    EEXIST,
    EFAULT,
    EINVAL,
    ENODATA,
    ENOSYS,
    EOPNOTSUPP,
    EPERM,
    ESRCH,
)
from hypervisor_model.public.memory import (
    XENMEM_maximum_ram_page,
    XENMEM_populate_physmap,
    XENMEMF_exact_node,
)
from hypervisor_model.public.releases import MASTER, XEN_4_17
from hypervisor_model.public.xen import (
    DOMID_ANY,
    DOMID_INVALID,
    DOMID_SELF,
    HYPERVISOR_domctl,
    HYPERVISOR_memory_op,
    HYPERVISOR_multicall,
    HYPERVISOR_sysctl,
    HYPERVISOR_xen_version,
)
from hypervisor_model.snapshot import load_state, save_state

HVM = domctl.XEN_DOMCTL_CDF_hvm | domctl.XEN_DOMCTL_CDF_hap
HOST = domctl.XEN_DOMCTL_CLAIM_MEMORY_HOST
MiB = 256  # pages


def boot(xen: str) -> hypervisor_model.Hypervisor:
    hv = hypervisor_model.boot(nodes=[4096, 4096], xen=xen)
    hv.check_after_each_hypercall = True
    return hv


@pytest.fixture(params=["master", "4.17"])
def any_dom0(request: pytest.FixtureRequest) -> Iterator[Guest]:
    """dom0 of a 2 x 4096 MiB host of each release, speaking its host's release."""
    hv = boot(request.param)
    yield Guest(hv)
    hv.check_invariants()


@pytest.fixture
def dom0_417() -> Iterator[Guest]:
    hv = boot("4.17")
    yield Guest(hv)
    hv.check_invariants()


@pytest.fixture
def dom0_master() -> Iterator[Guest]:
    hv = boot("master")
    yield Guest(hv)
    hv.check_invariants()


def create_raw(g: Guest, domid: int, layout: Any, payload: dict[str, Any]) -> tuple[int, Any]:
    return g.domctl(domctl.XEN_DOMCTL_createdomain, domid, layout, payload)


def info(g: Guest, domid: int) -> tuple[int, Any]:
    """getdomaininfo: the result and the domctl as left (``domain`` and ``payload``)."""
    return g.domctl(domctl.XEN_DOMCTL_getdomaininfo, domid, domctl.xen_domctl_getdomaininfo)


# -- the interface versions --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("xen", "hypercall", "version", "rc"),
    [
        ("master", HYPERVISOR_domctl, 0x18, 0),
        ("master", HYPERVISOR_domctl, 0x15, -EACCES),  # Debian 12's libxenctrl
        ("master", HYPERVISOR_domctl, 0x17, -EACCES),  # 4.19 .. 4.21
        ("master", HYPERVISOR_sysctl, 0x16, 0),
        ("master", HYPERVISOR_sysctl, 0x15, -EACCES),
        ("4.17", HYPERVISOR_domctl, 0x15, 0),
        ("4.17", HYPERVISOR_domctl, 0x18, -EACCES),
        ("4.17", HYPERVISOR_domctl, 0x16, -EACCES),  # 4.18
        ("4.17", HYPERVISOR_sysctl, 0x15, 0),
        ("4.17", HYPERVISOR_sysctl, 0x16, -EACCES),
        ("4.17", HYPERVISOR_sysctl, 0, -EACCES),
    ],
)
def test_a_host_accepts_exactly_its_releases_interface_version(
    xen: str, hypercall: int, version: int, rc: int
) -> None:
    """do_domctl / do_sysctl: any other version is EACCES before anything is looked at."""
    g = Guest(boot(xen))
    if hypercall == HYPERVISOR_domctl:
        got = g.domctl(domctl.XEN_DOMCTL_getdomaininfo, 0, version=version)[0]
    else:
        got = g.sysctl(sysctl.XEN_SYSCTL_physinfo, version=version)[0]
    assert got == rc


def test_another_releases_createdomain_is_eaccess_and_creates_nothing(any_dom0: Guest) -> None:
    other = XEN_4_17 if any_dom0.release is MASTER else MASTER
    foreign = Guest(any_dom0.hv, release=other)
    payload = createdomain_payload(HVM, other)
    rc, after = create_raw(foreign, DOMID_ANY, other.xen_domctl_createdomain, payload)
    assert (rc, after.domain) == (-EACCES, DOMID_ANY)
    assert [d.domain_id for d in any_dom0.hv.domain_list()] == [0]
    assert any_dom0.create() == 1  # the failed call moved no domid cursor


@pytest.mark.parametrize(
    ("xen", "version", "domid", "rc"),
    [
        ("4.17", 0, 0, -EACCES),  # no stable domctl before 4.21: version 0 is wrong
        ("4.17", 0x15, 0, -ENOSYS),  # command 90 does not exist: arch_do_domctl's default
        ("4.17", 0x15, 9, -ESRCH),  # the domain is looked up first
        ("master", 0x18, 0, -EACCES),  # a stable op must carry 0
    ],
)
def test_get_domain_state_is_masters_stable_op_only(
    xen: str, version: int, domid: int, rc: int
) -> None:
    g = Guest(boot(xen))
    assert g.domctl(domctl.XEN_DOMCTL_get_domain_state, domid, version=version)[0] == rc


# -- createdomain: the layout ------------------------------------------------------------------


def test_417_createdomain_is_64_bytes_with_vmtrace_cpupool_and_arch_4_bytes_earlier(
    dom0_417: Guest,
) -> None:
    """The same byte at offset 52 is 4.17's cpupool_id (ESRCH: only pool 0) and master's
    vmtrace_size (EINVAL: vmtrace unavailable): each host reads it where its release has it."""
    union = bytearray(build(XEN_4_17.xen_domctl_createdomain, createdomain_payload(HVM, XEN_4_17)))
    union[52] = 1
    raw = parse(XEN_4_17.xen_domctl_createdomain, bytes(union))
    assert raw.cpupool_id == 1 and raw.arch.emulation_flags == 0x3FF  # at 52 and 56
    assert create_raw(dom0_417, DOMID_ANY, XEN_4_17.xen_domctl_createdomain, raw)[0] == -ESRCH
    master = Guest(boot("master"))
    as_master = parse(domctl.xen_domctl_createdomain, bytes(union) + bytes(4))
    assert as_master.vmtrace_size == 1
    rc = create_raw(master, DOMID_ANY, domctl.xen_domctl_createdomain, as_master)[0]
    assert rc == -EINVAL


def test_417_pv_createdomain_copies_oos_off_back_in_its_layout(dom0_417: Guest) -> None:
    """arch_sanitise_domain_config sets CDF_oos_off for PV, copied back at offset 20; the
    rest of the 128-byte union keeps the caller's bytes (copyback of the whole domctl)."""
    payload = createdomain_payload(0, XEN_4_17)
    union = build(XEN_4_17.xen_domctl_createdomain, payload) + b"\xab" * 64
    rc, after = dom0_417.domctl(domctl.XEN_DOMCTL_createdomain, DOMID_ANY, None, None)
    assert rc == -EINVAL  # an all-zero payload has max_vcpus 0
    rc, after = _create_union(dom0_417, union)
    assert (rc, after.domain) == (0, 2)  # the failed call above moved the rover to 1
    config = parse(XEN_4_17.xen_domctl_createdomain, after.u[:64])
    assert config.flags == domctl.XEN_DOMCTL_CDF_oos_off  # 0 | 1 << 3
    assert after.u[64:] == b"\xab" * 64


def _create_union(g: Guest, union: bytes, domid: int = DOMID_ANY) -> tuple[int, Any]:
    raw = build(
        domctl.xen_domctl,
        dict(
            cmd=domctl.XEN_DOMCTL_createdomain,
            interface_version=g.release.domctl_interface_version,
            domain=domid,
            u=union,
        ),
    )
    with g.hv.arena.alloc(len(raw)) as buf:
        buf.mem[: len(raw)] = raw
        rc = g.hv.hypercall(HYPERVISOR_domctl, buf.addr, caller=g.domid)
        return rc, parse(domctl.xen_domctl, bytes(buf.mem[: len(raw)]))


def test_masters_68_byte_hvm_createdomain_on_a_417_host_is_einval(dom0_417: Guest) -> None:
    """Master's emulation_flags (0x3FF at 60) land in 4.17's arch.misc_flags: only bit 0
    (MSR_RELAXED) is known, so arch_sanitise_domain_config refuses it. Nothing is created,
    but 4.17 moved its rover to 1 before domain_create, so the next pick is 2."""
    payload = createdomain_payload(HVM, XEN_4_17)  # emulators 0x3FF, as 4.17 wants them
    rc, _ = create_raw(dom0_417, DOMID_ANY, domctl.xen_domctl_createdomain, payload)
    assert rc == -EINVAL
    assert [d.domain_id for d in dom0_417.hv.domain_list()] == [0]
    assert dom0_417.create() == 2


def test_masters_68_byte_pv_createdomain_on_a_417_host_happens_to_work(dom0_417: Guest) -> None:
    """A PV payload is zero from offset 48 on: read 4 bytes early it still says "no vmtrace,
    pool 0, no emulators, no misc flags", so the layouts agree where the bytes are zero."""
    payload = createdomain_payload(0)
    rc, after = create_raw(dom0_417, DOMID_ANY, domctl.xen_domctl_createdomain, payload)
    assert (rc, after.domain) == (0, 1)


def test_417s_64_byte_hvm_createdomain_on_master_is_eopnotsupp(dom0_master: Guest) -> None:
    """The other way round, with the version right (as the real-tools fact sheet observed):
    master reads 4.17's misc_flags (0) as emulation_flags, and an HVM guest without
    emulators is refused; 4.17's emulators (0x3FF) are taken for the cpupool after that."""
    payload = createdomain_payload(HVM, XEN_4_17)
    rc, _ = create_raw(dom0_master, DOMID_ANY, XEN_4_17.xen_domctl_createdomain, payload)
    assert rc == -EOPNOTSUPP


@pytest.mark.parametrize(
    ("emulators", "master_rc", "rc_417"),
    [
        (0x1FF, 0, -EOPNOTSUPP),  # every emulator but vPCI and PIRQ: PIRQ is optional on master
        (0x3FF, 0, 0),  # ... and PIRQ: what libxl 4.17 asks for
        (0x001, 0, 0),  # the LAPIC alone: PVH
        (0x7FF, -EOPNOTSUPP, -EOPNOTSUPP),  # vPCI: a PVH dom0's, never a domU's
    ],
)
def test_hvm_emulators_as_each_release_allows(emulators: int, master_rc: int, rc_417: int) -> None:
    for xen, rc in (("master", master_rc), ("4.17", rc_417)):
        g = Guest(boot(xen))
        payload = {**createdomain_payload(HVM, g.release), "arch": dict(emulation_flags=emulators)}
        payload["arch"]["misc_flags"] = 0
        assert create_raw(g, DOMID_ANY, g.release.xen_domctl_createdomain, payload)[0] == rc, xen


# -- createdomain: which domid -----------------------------------------------------------------


def test_417_picks_a_free_domid_for_0_and_every_reserved_id(dom0_417: Guest) -> None:
    """4.17 has no DOMID_ANY: 0, DOMID_INVALID (what xc_domain_create callers pass), 0xFFFF
    (libxl's INVALID_DOMID narrowed to domid_t) and 0x7FF5 all search from the rover."""
    ids = [dom0_417.create(domid) for domid in (0, DOMID_INVALID, 0xFFFF, DOMID_ANY, DOMID_SELF)]
    assert ids == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("domid", [0, DOMID_INVALID, 0xFFFF, DOMID_SELF])
def test_master_takes_those_ids_literally_eexist(dom0_master: Guest, domid: int) -> None:
    payload = createdomain_payload(HVM)
    assert create_raw(dom0_master, domid, domctl.xen_domctl_createdomain, payload)[0] == -EEXIST


def test_417_exact_ids_and_the_rover(dom0_417: Guest) -> None:
    """An id in 1..0x7FEF is exact (EEXIST if taken) and leaves the rover alone; the search
    continues after the last id it handed out, not at the lowest free one."""
    assert [dom0_417.create(0) for _ in range(3)] == [1, 2, 3]
    assert dom0_417.create(10) == 10
    payload = createdomain_payload(HVM, XEN_4_17)
    assert create_raw(dom0_417, 10, XEN_4_17.xen_domctl_createdomain, payload)[0] == -EEXIST
    assert dom0_417.destroy(2) == 0
    assert [dom0_417.create(0) for _ in range(2)] == [4, 5]


def test_417_rover_wraps_to_1(dom0_417: Guest) -> None:
    dom0_417.hv._domid_last = 0x7FEE  # as after handing out 0x7FEE
    assert [dom0_417.create(0) for _ in range(3)] == [0x7FEF, 1, 2]


def test_a_failed_create_keeps_its_domid_on_master_only() -> None:
    """Master's domid bitmap keeps the id of a create that failed sanitise_domain_config;
    before 4.22 an id is taken only while its domain exists (is_free_domid)."""
    bad = dict(max_vcpus=0)  # "No vCPUS": EINVAL
    for xen, retry in (("master", -EEXIST), ("4.17", 0)):
        g = Guest(boot(xen))
        layout = g.release.xen_domctl_createdomain
        payload = createdomain_payload(HVM, g.release)
        assert create_raw(g, 7, layout, {**payload, **bad})[0] == -EINVAL
        assert create_raw(g, 7, layout, payload)[0] == retry, xen


# -- getdomaininfo -----------------------------------------------------------------------------


def test_417_getdomaininfo_of_a_missing_id_answers_with_the_next_domain(dom0_417: Guest) -> None:
    """Domains 0, 1, 3: asking for 2 returns domain 3's record, and the envelope's domain
    says so; above the last domain is ESRCH, a reserved id EINVAL."""
    assert [dom0_417.create() for _ in range(3)] == [1, 2, 3]
    assert dom0_417.destroy(2) == 0
    rc, after = info(dom0_417, 2)
    assert (rc, after.domain, after.payload.domain) == (0, 3, 3)
    assert info(dom0_417, 4)[0] == -ESRCH
    assert info(dom0_417, DOMID_SELF)[0] == -EINVAL


def test_417_getdomaininfo_walk_finds_every_domain(dom0_417: Guest) -> None:
    """xc_domain_getinfo's walk (4.17): ask for next, then for the answer's id + 1."""
    for domid in (0, 5, 6, 9):
        if domid:
            assert dom0_417.create(domid) == domid
    found, next_id = [], 0
    while (result := info(dom0_417, next_id))[0] == 0:
        found.append(int(result[1].domain))
        next_id = found[-1] + 1
    assert (found, result[0]) == ([0, 5, 6, 9], -ESRCH)


def test_master_getdomaininfo_is_exact(dom0_master: Guest) -> None:
    assert [dom0_master.create() for _ in range(3)] == [1, 2, 3]
    assert dom0_master.destroy(2) == 0
    assert info(dom0_master, 2)[0] == -ESRCH
    assert info(dom0_master, DOMID_SELF)[0] == -ESRCH


@pytest.mark.parametrize(
    ("xen", "cmd", "rc"),
    [
        ("master", domctl.XEN_DOMCTL_max_mem, -EPERM),  # not the control domain: EPERM
        ("4.17", domctl.XEN_DOMCTL_max_mem, -ESRCH),  # 4.17: ESRCH for everyone
        ("master", domctl.XEN_DOMCTL_getdomaininfo, -EPERM),
        ("4.17", domctl.XEN_DOMCTL_getdomaininfo, -EPERM),  # finds d3, which xsm refuses d1
    ],
)
def test_a_domu_asking_about_a_missing_domain(xen: str, cmd: int, rc: int) -> None:
    """Domains 0, 1, 3; d1 asks about 2."""
    g = Guest(boot(xen))
    assert [g.create() for _ in range(3)] == [1, 2, 3]
    assert g.destroy(2) == 0
    assert Guest(g.hv, domid=1).domctl(cmd, 2)[0] == rc


# -- node affinity copy-back ------------------------------------------------------------


@pytest.mark.parametrize(("xen", "byte"), [("master", 0x00), ("4.17", 0x02)])
def test_getnodeaffinity_into_a_one_byte_bitmap(xen: str, byte: int) -> None:
    """Affinity node 1 only: Xen's map is 02 00 00 00 00 00 00 00. A caller with nr_bits 8
    gets master's *last* byte (00, bitmap_to_xenctl_bitmap) but 4.17's first (02)."""
    g = Guest(boot(xen))
    domid = g.create()
    with g.hv.arena.alloc(1) as buf:
        buf.mem[0] = 0x02
        nodemap = dict(nodemap=dict(bitmap=buf.addr, nr_bits=8))
        layout = domctl.xen_domctl_nodeaffinity
        assert g.domctl(domctl.XEN_DOMCTL_setnodeaffinity, domid, layout, nodemap)[0] == 0
        buf.mem[0] = 0xEE
        assert g.domctl(domctl.XEN_DOMCTL_getnodeaffinity, domid, layout, nodemap)[0] == 0
        assert buf.mem[0] == byte


# -- what stays the same: claims, claim sets, populate, sysctls --------------------------------


def test_claims_claim_sets_and_populate_on_a_417_host(dom0_417: Guest) -> None:
    """The v7 claim set (command 91, as a vendor backport has it) with 4.17's version: a
    2048 MiB guest claims 1024 pages on node 1 and 256 host-wide, populates two 2 MiB
    extents on node 1 (redeeming 1024 node-1 pages) and reads the rest of the set back."""
    hv = dom0_417.hv
    domid = dom0_417.create(max_mib=2048)
    assert dom0_417.claim_set(domid, [(1, 1024), (HOST, 256)]) == 0
    assert dom0_417.physinfo().outstanding_pages == 1280
    assert dom0_417.populate(domid, [0, 512], 9, XENMEMF_exact_node(1)) == 2
    assert dom0_417.claim_get(domid, 2) == (0, 1, [(HOST, 256)])
    assert hv.find_domain(domid).tot_pages == 1024  # type: ignore[union-attr]
    assert dom0_417.claim_pages(domid, 0) == 0  # the legacy call drops the whole claim
    assert dom0_417.physinfo().outstanding_pages == 0


def test_every_modelled_sysctl_answers_alike_on_both_releases() -> None:
    """Same host, same calls, each with its release's version: the same answers."""
    answers = []
    for xen in ("master", "4.17"):
        g = Guest(boot(xen))
        domid = g.create(max_mib=64)
        assert g.reservation(XENMEM_populate_physmap, domid, list(range(16)))[0] == 16
        rows = [
            g.physinfo(),
            g.node_free(0),
            g.node_free(1),
            g.page_offline(sysctl.sysctl_query_page_offline, 0x100, 0x103),
            g.sysctl(sysctl.XEN_SYSCTL_sched_id, sysctl.xen_sysctl_sched_id),
            g.sysctl(
                sysctl.XEN_SYSCTL_numainfo,
                sysctl.xen_sysctl_numainfo,
                dict(num_nodes=0, meminfo=0, distance=0),
            ),
        ]
        answers.append(repr(rows))
    assert answers[0] == answers[1]


@pytest.mark.parametrize(("xen", "rc"), [("master", -EFAULT), ("4.17", 0)])
def test_multicall_count_width(xen: str, rc: int) -> None:
    """nr_calls 2^32 + 1 with a one-entry list: 4.17's uint32_t sees 1 and runs it; master
    runs entry 0, then reading entry 1 faults. Either way entry 0 ran: the highest RAM
    frame + 1 of two 4096 MiB nodes, 2097152."""
    hv = boot(xen)
    with hv.arena.alloc(64) as buf:
        buf.mem[:64] = struct.pack(
            "<8Q", HYPERVISOR_memory_op, 0, XENMEM_maximum_ram_page, 0, 0, 0, 0, 0
        )
        assert hv.hypercall(HYPERVISOR_multicall, buf.addr, (1 << 32) + 1) == rc
        assert struct.unpack_from("<Q", buf.mem, 8)[0] == 2097152


# -- the version strings -----------------------------------------------------------------------


def xen_version(g: Guest, cmd: int, size: int = 0) -> tuple[int, bytes]:
    with g.hv.arena.alloc(max(size, 1)) as buf:
        rc = g.hv.hypercall(HYPERVISOR_xen_version, cmd, buf.addr, caller=g.domid)
        return rc, bytes(buf.mem[:size])


@pytest.mark.parametrize(
    ("xen", "major_minor", "extra", "compile_by"),
    [
        ("master", 0x40017, b"-unstable", b"xenemu"),  # c447b7308b13's xen/Makefile: 4.23
        ("4.17", 0x40011, b".5", b"pkg-xen-devel"),  # Debian's 4.17.5+72: xen/Makefile ".5"
    ],
)
def test_version_strings(xen: str, major_minor: int, extra: bytes, compile_by: bytes) -> None:
    g = Guest(boot(xen))
    assert xen_version(g, version.XENVER_version)[0] == major_minor  # 4 << 16 | minor
    rc, raw = xen_version(g, version.XENVER_extraversion, version.XEN_EXTRAVERSION_LEN)
    assert (rc, raw) == (0, extra.ljust(16, b"\0"))
    rc, raw = xen_version(g, version.XENVER_compile_info, 144)
    assert parse(version.xen_compile_info, raw).compile_by == compile_by.ljust(16, b"\0")
    rc, raw = xen_version(g, version.XENVER_capabilities, version.XEN_CAPABILITIES_INFO_LEN)
    caps = b"xen-3.0-x86_64 xen-3.0-x86_32p hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64 "
    assert raw.rstrip(b"\0") == caps  # init_xen_cap_info: a space after every word


@pytest.mark.parametrize(
    ("xen", "rcs"),
    [
        # master: *2 answer their length to a NULL handle ("-unstable" is 9); build_id finds
        # no build id before it looks at the caller's buffer (xenver_varbuf_op)
        ("master", [9, -ENODATA, -ENODATA]),
        # 4.17: no *2 sub-ops (ENOSYS); build_id reads the caller's xen_build_id first, and
        # its len 0 is EINVAL before Xen finds no build id
        ("4.17", [-ENOSYS, -ENODATA, -EINVAL]),
    ],
)
def test_the_variable_length_sub_ops(xen: str, rcs: list[int]) -> None:
    g = Guest(boot(xen))
    hv = g.hv
    got = [hv.hypercall(HYPERVISOR_xen_version, version.XENVER_extraversion2, 0)]
    got.append(hv.hypercall(HYPERVISOR_xen_version, version.XENVER_build_id, 0))
    with hv.arena.alloc(8) as buf:  # xen_build_id with len 0
        got.append(hv.hypercall(HYPERVISOR_xen_version, version.XENVER_build_id, buf.addr))
    assert got == rcs


@pytest.mark.parametrize(("xen", "virt_start"), [("master", 0), ("4.17", 0xFFFF800000000000)])
def test_platform_parameters_for_an_hvm_caller(xen: str, virt_start: int) -> None:
    """Master's release build tells only a PV caller where Xen's range starts; 4.17 tells
    everyone HYPERVISOR_VIRT_START."""
    g = Guest(boot(xen))
    domid = g.create()
    rc, raw = xen_version(Guest(g.hv, domid=domid), version.XENVER_platform_parameters, 8)
    assert (rc, int.from_bytes(raw, "little")) == (0, virt_start)


@pytest.mark.parametrize(
    ("frames", "master_rc", "rc_417"),
    [
        ((64, 1024), 0, 0),  # 4.17's defaults: opt_max_grant_frames, opt_max_maptrack_frames
        ((65, -1), 0, -EINVAL),  # one grant frame more than 4.17 allows
        ((-1, 1025), 0, -EINVAL),  # one maptrack frame more
        ((0, -1), -EINVAL, -EINVAL),  # fewer than INITIAL_NR_GRANT_FRAMES, on both
    ],
)
def test_grant_frame_limits(frames: tuple[int, int], master_rc: int, rc_417: int) -> None:
    for xen, rc in (("master", master_rc), ("4.17", rc_417)):
        g = Guest(boot(xen))
        payload = createdomain_payload(HVM, g.release)
        payload.update(max_grant_frames=frames[0], max_maptrack_frames=frames[1])
        assert create_raw(g, DOMID_ANY, g.release.xen_domctl_createdomain, payload)[0] == rc


def test_417_changeset_is_empty_as_a_debian_build_reports_it(dom0_417: Guest) -> None:
    rc, raw = xen_version(dom0_417, version.XENVER_changeset, version.XEN_CHANGESET_INFO_LEN)
    assert (rc, raw) == (0, bytes(64))


# -- the release as a property of the host -----------------------------------------------------


def test_the_release_is_saved_and_resumed() -> None:
    hv = boot("4.17")
    assert Guest(hv).create(0) == 1
    doc = save_state(hv)
    assert (doc["version"], doc["host"]["xen"]) == (4, "4.17")
    resumed = load_state(doc)
    assert resumed.release is XEN_4_17
    assert Guest(resumed).create(0) == 2  # the rover came along


def test_a_version_1_state_resumes_as_master() -> None:
    doc = save_state(boot("master"))
    del doc["host"]["xen"]
    doc["version"] = 1
    assert load_state(doc).release is MASTER


@pytest.mark.parametrize("xen", ["4.18", "4.17.5", 4.17, None])
def test_an_unknown_release_is_a_clear_error(xen: object) -> None:
    with pytest.raises(HostConfigError, match=r"xen: expected one of 'master', '4\.17', got"):
        hypervisor_model.boot(nodes=[1024], xen=xen)  # type: ignore[arg-type]


def test_the_host_toml_names_the_release() -> None:
    host = host_from_mapping({"xen": "4.17", "node": [{"memory": 1024}]})
    assert host.xen == "4.17"
    assert host_from_mapping({"node": [{"memory": 1024}]}).xen == "master"


def test_the_boot_banner_names_the_release() -> None:
    assert boot("4.17").console.live().startswith(b"(XEN) Xen version 4.17.5 (xenemu model)\n")


# -- explaining an EACCES ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "hypercall", "version", "line"),
    [
        (
            MASTER,
            HYPERVISOR_domctl,
            0x15,
            "the host speaks Xen 4.23-unstable (domctl 0x18); this program speaks 0x15: "
            "make a 4.17 host with `xlemu host init --xen 4.17`",
        ),
        (
            XEN_4_17,
            HYPERVISOR_sysctl,
            0x16,
            "the host speaks Xen 4.17.5 (sysctl 0x15); this program speaks 0x16: "
            "make a master host with `xlemu host init --xen master`",
        ),
        (
            MASTER,
            HYPERVISOR_domctl,
            0x17,
            "the host speaks Xen 4.23-unstable (domctl 0x18); this program speaks 0x17: "
            "no release this model emulates speaks it (master 0x18, 4.17 0x15)",
        ),
        (MASTER, HYPERVISOR_domctl, 0x18, None),  # the host's own: the EACCES had another cause
    ],
)
def test_version_mismatch_explains_in_one_line(
    host: releases.Release, hypercall: int, version: int, line: str | None
) -> None:
    assert releases.version_mismatch(host, hypercall, version) == line

"""Domain control: create, destroy, info, limits, pausing, node affinity and privilege.

Every expectation is Xen master's: do_domctl and getdomaininfo (xen/common/domctl.c),
domid_alloc (common/domid.c), sanitise_domain_config and arch_sanitise_domain_config
(common/domain.c, arch/x86/domain.c), domain_kill and the controller pause count
(common/domain.c), xenctl_bitmap_to_bitmap / bitmap_to_xenctl_bitmap (common/bitmap.c),
domain_update_node_affinity (common/sched/core.c) and the dummy XSM policy (xsm/dummy.h).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypercalls import createdomain_payload

import hypervisor_model
from hypervisor_model.guest_memory import build, parse
from hypervisor_model.public import domctl, memory
from hypervisor_model.public.domctl import (
    XEN_DOMCTL_CDF_hap,
    XEN_DOMCTL_CDF_hvm,
    XEN_DOMCTL_CDF_iommu,
    XEN_DOMCTL_CDF_oos_off,
    XEN_DOMCTL_CDF_s3_integrity,
    XEN_DOMCTL_CDF_trap_unmapped_accesses,
    XEN_DOMCTL_CDF_xs_domain,
    XEN_DOMINF_hap,
    XEN_DOMINF_hvm_guest,
    XEN_DOMINF_paused,
    XEN_DOMINF_running,
    XEN_DOMINF_xs_domain,
)
from hypervisor_model.public.errno import (
    EACCES,
    EEXIST,
    EFAULT,
    EINVAL,
    EOPNOTSUPP,
    EOVERFLOW,
    EPERM,
    ESRCH,
)
from hypervisor_model.public.xen import DOMID_ANY, DOMID_SELF, HYPERVISOR_domctl

Hypervisor = hypervisor_model.Hypervisor
Guest = Any  # the raw client of conftest.py, reached through the guest_class fixture

MiB = 256  # pages
# Free pages of the 2 x 4096 MiB host: all but MFN 0, dom0's structure and shared-info pages
# and node 1's 4 pages of heap metadata.
FREE_2X4G = 2 * 4096 * MiB - 1 - 2 - 4
HVM_XEN_PAGES = 2 + 256  # an HVM guest's structure, shared info and initial HAP pool
SHUTDOWN_BITS = 0xFFFF0000  # shutdown_code ~0u << 16, truncated to 32 bits
ALL_NODES = bytes([0xFF] * 8)  # NODE_MASK_ALL, MAX_NUMNODES = 64 bits


def config(**overrides: Any) -> dict[str, Any]:
    """A createdomain payload for an HVM guest with HAP and one vCPU, fields overridden;
    the emulators follow the flags (emulation_flags_ok) unless overridden too."""
    flags = overrides.get("flags", XEN_DOMCTL_CDF_hvm | XEN_DOMCTL_CDF_hap)
    return {**createdomain_payload(flags), **overrides}


def create(g: Guest, domid: int = DOMID_ANY, **overrides: Any) -> tuple[int, Any]:
    """Raw createdomain: the result and the domctl as left in guest memory."""
    return g.domctl(
        domctl.XEN_DOMCTL_createdomain, domid, domctl.xen_domctl_createdomain, config(**overrides)
    )


def info_rc(g: Guest, domid: int) -> int:
    return int(g.domctl(domctl.XEN_DOMCTL_getdomaininfo, domid)[0])


def simple(g: Guest, cmd: int, domid: int) -> int:
    """A domctl with an all-zero payload (destroy, pause, unpause)."""
    return int(g.domctl(cmd, domid)[0])


def max_vcpus(g: Guest, domid: int, count: int) -> int:
    cmd, layout = domctl.XEN_DOMCTL_max_vcpus, domctl.xen_domctl_max_vcpus
    return int(g.domctl(cmd, domid, layout, dict(max=count))[0])


def reservation(g: Guest, op: int, domid: int) -> int:
    return int(g.memory_op(op, memory.xen_memory_domain, dict(domid=domid)))


@pytest.fixture
def dom0_512(guest_class: type[Guest]) -> Iterator[Guest]:
    """dom0 of a 2 x 4096 MiB host booted with 512 MiB for dom0 (131072 pages)."""
    hv = hypervisor_model.boot(nodes=[4096, 4096], dom0_memory=512)
    hv.check_after_each_hypercall = True
    yield guest_class(hv, 0)
    hv.check_invariants()


# -- createdomain: domain ids ---------------------------------------------------------------


def test_domid_any_allocates_1_2_3(dom0: Guest) -> None:
    """domid_alloc starts after the last id it handed out (0 at boot) and skips 0."""
    assert [dom0.create() for _ in range(3)] == [1, 2, 3]


def test_domid_any_continues_after_the_last_id_not_the_lowest_free(dom0: Guest) -> None:
    assert [dom0.create() for _ in range(3)] == [1, 2, 3]
    assert dom0.destroy(2) == 0
    assert dom0.create() == 4


def test_domid_any_never_repeats_the_previous_id(dom0: Guest) -> None:
    """domid.c: "two consecutive calls will never return the same ID", even a free one."""
    assert dom0.create() == 1
    assert dom0.destroy(1) == 0
    assert dom0.create() == 2


def test_explicit_domid_does_not_move_the_any_cursor(dom0: Guest) -> None:
    """Only the DOMID_ANY search updates domid_last; taken ids are skipped."""
    assert dom0.create(10) == 10
    assert dom0.create(2) == 2
    assert [dom0.create() for _ in range(3)] == [1, 3, 4]


def test_domid_any_wraps_after_7fef_and_never_gives_0(dom0: Guest) -> None:
    dom0.hv._domid_last = 0x7FEE  # as after handing out 0x7FEE
    assert dom0.create() == 0x7FEF  # DOMID_FIRST_RESERVED - 1, the last usable id
    assert dom0.create() == 1  # wrapped: the search restarts at 1, never at 0
    assert dom0.create() == 2


def test_domid_any_wrap_skips_taken_ids(dom0: Guest) -> None:
    assert [dom0.create(i) for i in (1, 2, 0x7FEF)] == [1, 2, 0x7FEF]
    dom0.hv._domid_last = 0x7FEE
    assert dom0.create() == 3  # 0x7FEF taken, then 1 and 2 after the wrap


@pytest.mark.parametrize("domid", [1, 100, 0x7FEF])
def test_explicit_domid_is_used_exactly(dom0: Guest, domid: int) -> None:
    rc, after = create(dom0, domid)
    assert (rc, after.domain) == (0, domid)
    assert info_rc(dom0, domid) == 0


@pytest.mark.parametrize("domid", [0, 100], ids=["dom0", "domU"])
def test_taken_domid_is_eexist(dom0: Guest, domid: int) -> None:
    if domid:
        assert dom0.create(domid) == domid
    assert create(dom0, domid)[0] == -EEXIST


@pytest.mark.parametrize(
    "domid",
    [0x7FF0, 0x7FF1, 0x7FF2, 0x7FF3, 0x7FF4, 0x7FF6, 0x7FFF, 0x8000, 0xFFFF],
    ids=["SELF", "IO", "XEN", "COW", "INVALID", "7ff6", "IDLE", "8000", "ffff"],
)
def test_reserved_domid_other_than_any_is_eexist(dom0: Guest, domid: int) -> None:
    rc, after = create(dom0, domid)
    assert rc == -EEXIST
    assert after.domain == domid  # no copy-back on failure
    assert dom0.create() == 1  # and no id was taken


def test_new_domid_is_written_back_with_the_config(dom0: Guest) -> None:
    """op->domain carries the new id back; the HVM config comes back as it went in."""
    rc, after = create(dom0, DOMID_ANY, handle=bytes(range(16)))
    assert (rc, after.domain) == (0, 1)
    assert after.payload == parse(
        domctl.xen_domctl_createdomain,
        build(domctl.xen_domctl_createdomain, config(handle=bytes(range(16)))),
    )


def test_pv_config_comes_back_with_oos_off(dom0: Guest) -> None:
    """arch_sanitise_domain_config sets CDF_oos_off for PV guests; the op is copied back."""
    rc, after = create(dom0, DOMID_ANY, flags=0)
    assert rc == 0
    assert after.payload.flags == XEN_DOMCTL_CDF_oos_off


# -- createdomain: configurations -----------------------------------------------------------

BAD_CONFIGS = {
    "unknown-cdf-bit9": dict(flags=XEN_DOMCTL_CDF_hvm | 1 << 9),
    "unknown-cdf-bit31": dict(flags=XEN_DOMCTL_CDF_hvm | 1 << 31),
    "max_vcpus-0": dict(max_vcpus=0),
    "hap-without-hvm": dict(flags=XEN_DOMCTL_CDF_hap),
    "iommu-without-iommu-hw": dict(flags=XEN_DOMCTL_CDF_hvm | XEN_DOMCTL_CDF_iommu),
    "iommu_opts-without-iommu": dict(iommu_opts=1),
    "unknown-grant_opts": dict(grant_opts=0x12),
    "s3_integrity-without-tboot": dict(flags=XEN_DOMCTL_CDF_hvm | XEN_DOMCTL_CDF_s3_integrity),
    "trap_unmapped_accesses-on-x86": dict(
        flags=XEN_DOMCTL_CDF_hvm | XEN_DOMCTL_CDF_trap_unmapped_accesses
    ),
    "hvm-129-vcpus": dict(max_vcpus=129),  # HVM_MAX_VCPUS 128
    "pv-8193-vcpus": dict(flags=0, max_vcpus=8193),  # MAX_VIRT_CPUS 8192
    "unknown-misc_flags": dict(arch=dict(emulation_flags=0, misc_flags=2)),
    "altp2m-nr-without-mode": dict(altp2m=dict(opts=0, nr=1)),
    "vmtrace-unavailable": dict(vmtrace_size=4096),
}


@pytest.mark.parametrize("overrides", BAD_CONFIGS.values(), ids=BAD_CONFIGS.keys())
def test_bad_config_is_einval(dom0: Guest, overrides: dict[str, Any]) -> None:
    """sanitise_domain_config / arch_sanitise_domain_config; no domain appears."""
    assert create(dom0, 5, **overrides)[0] == -EINVAL
    assert info_rc(dom0, 5) == -ESRCH


GOOD_LIMITS = {
    "hvm-128-vcpus": dict(max_vcpus=128),
    "pv-8192-vcpus": dict(flags=0, max_vcpus=8192),
    "msr-relaxed": dict(arch=dict(emulation_flags=0x1FF, misc_flags=1)),
    "xs_domain": dict(flags=XEN_DOMCTL_CDF_hvm | XEN_DOMCTL_CDF_xs_domain),
}


@pytest.mark.parametrize("overrides", GOOD_LIMITS.values(), ids=GOOD_LIMITS.keys())
def test_config_at_the_limits_is_accepted(dom0: Guest, overrides: dict[str, Any]) -> None:
    assert create(dom0, 5, **overrides)[0] == 0


LATE_REFUSALS = {
    # grant_table_init, after arch_domain_create and before the cpupool (domain_create)
    "grant-version-0": (dict(grant_opts=0), EINVAL),
    "grant-version-3": (dict(grant_opts=3), EINVAL),  # GNTTAB_MAX_VERSION is 2 on x86
    "grant-version-15": (dict(grant_opts=15), EINVAL),
    "max_grant_frames-0": (dict(max_grant_frames=0), EINVAL),  # INITIAL_NR_GRANT_FRAMES 1
    "grant-before-cpupool": (dict(grant_opts=0, cpupool_id=1), EINVAL),
    "emulators-before-grant": (
        dict(grant_opts=0, arch=dict(emulation_flags=0, misc_flags=0)),
        EOPNOTSUPP,
    ),
    "cpupool-1": (dict(cpupool_id=1), ESRCH),  # cpupool_add_domain: only Pool-0 exists
}


@pytest.mark.parametrize(("overrides", "errno"), LATE_REFUSALS.values(), ids=LATE_REFUSALS.keys())
def test_a_config_refused_once_the_domain_exists_frees_the_domid(
    dom0: Guest, overrides: dict[str, Any], errno: int
) -> None:
    """Refusals after alloc_domain_struct go through _domain_destroy, which frees the
    domid: no domain 5 afterwards, and 5 can be created at once."""
    assert create(dom0, 5, **overrides)[0] == -errno
    assert info_rc(dom0, 5) == -ESRCH
    assert create(dom0, 5)[0] == 0


GRANT_LIMITS = {
    "version-1": dict(grant_opts=1),
    "version-2": dict(grant_opts=2),
    "one-grant-frame": dict(max_grant_frames=1),
    "default-grant-frames": dict(max_grant_frames=-1),
    "any-negative-is-the-default": dict(max_grant_frames=-(2**31)),
    "no-maptrack-frames": dict(max_maptrack_frames=0),
}


@pytest.mark.parametrize("overrides", GRANT_LIMITS.values(), ids=GRANT_LIMITS.keys())
def test_grant_settings_xen_accepts(dom0: Guest, overrides: dict[str, Any]) -> None:
    assert create(dom0, 5, **overrides)[0] == 0


def test_bad_config_leaks_the_reserved_domid(dom0: Guest) -> None:
    assert create(dom0, 5, max_vcpus=0)[0] == -EINVAL
    assert create(dom0, 5)[0] == -EEXIST


def test_hvm_guest_without_emulators_is_eopnotsupp(dom0: Guest) -> None:
    """emulation_flags_ok: an HVM domU needs every emulator but vPCI (PIRQ optional), a
    PVH domU exactly the LAPIC; the id is freed again (arch_domain_create fails late)."""
    assert create(dom0, 5, arch=dict(emulation_flags=0, misc_flags=0))[0] == -EOPNOTSUPP
    assert create(dom0, 5, arch=dict(emulation_flags=1, misc_flags=0))[0] == 0


def test_getdomaininfo_reports_the_emulation_flags(dom0: Guest) -> None:
    assert create(dom0, 5, arch=dict(emulation_flags=0x1FF, misc_flags=0))[0] == 0
    assert dom0.info(5).arch_config.emulation_flags == 0x1FF


# -- destroydomain ------------------------------------------------------------------------


def test_destroying_self_is_einval(dom0: Guest) -> None:
    assert dom0.destroy(0) == -EINVAL
    assert info_rc(dom0, 0) == 0


def test_destroy_returns_memory_and_releases_the_claim(dom0: Guest) -> None:
    """Claim 2048 pages, populate two 512-page extents (1024 redeemed), destroy: free goes
    back to what it was before the domain, Xen's pages for it included, and outstanding to
    0 (domain_kill, test-mem-claim.c)."""
    domid = dom0.create(max_mib=8)  # max_pages 2048
    assert dom0.claim_pages(domid, 2048) == 0
    assert dom0.populate(domid, [0, 512], order=9) == 2
    before = dom0.physinfo()
    assert (before.free_pages, before.outstanding_pages) == (FREE_2X4G - HVM_XEN_PAGES - 1024, 1024)
    assert dom0.destroy(domid) == 0
    after = dom0.physinfo()
    assert (after.free_pages, after.outstanding_pages) == (FREE_2X4G, 0)


def test_destroyed_domain_is_gone(dom0: Guest) -> None:
    domid = dom0.create()
    assert dom0.destroy(domid) == 0
    assert info_rc(dom0, domid) == -ESRCH
    assert dom0.destroy(domid) == -ESRCH
    assert dom0.max_mem(domid, 1024) == -ESRCH


def test_dom0_destroying_an_unknown_domain_is_esrch(dom0: Guest) -> None:
    assert dom0.destroy(42) == -ESRCH


@pytest.mark.parametrize("target", ["other", "missing"])
def test_domu_destroying_is_eperm(dom0: Guest, guest_class: type[Guest], target: str) -> None:
    """xsm_domctl(XSM_PRIV) for an existing target; a failed lookup is EPERM for a domU."""
    caller, other = dom0.create(), dom0.create()
    domid = other if target == "other" else 42
    assert guest_class(dom0.hv, caller).destroy(domid) == -EPERM
    assert info_rc(dom0, other) == 0


# -- getdomaininfo --------------------------------------------------------------------------


def test_getdomaininfo_of_a_new_hvm_domain(dom0: Guest) -> None:
    """Created paused (controller_pause_count 1), shutdown_code ~0u, no vCPUs yet."""
    rc, _ = create(dom0, 7, handle=bytes(range(16)), ssidref=9)
    assert rc == 0
    info = dom0.info(7)
    expected = dict(
        domain=7,
        flags=XEN_DOMINF_paused | XEN_DOMINF_hvm_guest | XEN_DOMINF_hap | SHUTDOWN_BITS,
        tot_pages=0,
        max_pages=0,  # never set by domain_create
        outstanding_pages=0,
        shr_pages=0,
        paged_pages=0,
        shared_info_frame=0xFFFF_FFFF_FFFF_FFFF,  # mfn_to_gfn: INVALID_M2P_ENTRY, unmapped
        cpu_time=0,
        nr_online_vcpus=0,
        max_vcpu_id=0xFFFFFFFF,  # XEN_INVALID_MAX_VCPU_ID
        ssidref=0,  # the dummy XSM reports none
        handle=bytes(range(16)),
        cpupool=0,
        gpaddr_bits=52,  # hap_paddr_bits
    )
    assert {k: info[k] for k in expected} == expected
    assert info.flags == 0xFFFF010A
    assert (info.arch_config.emulation_flags, info.arch_config.misc_flags) == (0x1FF, 0)


def test_getdomaininfo_flags_of_a_new_pv_domain(dom0: Guest) -> None:
    """No hvm_guest, no hap: paused 1<<3 | 0xFFFF0000; gpaddr_bits is hap_paddr_bits anyway."""
    domid = dom0.create(hvm=False)
    info = dom0.info(domid)
    assert (info.flags, info.gpaddr_bits) == (0xFFFF0008, 52)


def test_getdomaininfo_shows_the_xs_domain_flag(dom0: Guest) -> None:
    assert create(dom0, 3, flags=XEN_DOMCTL_CDF_hvm | XEN_DOMCTL_CDF_xs_domain)[0] == 0
    assert dom0.info(3).flags == XEN_DOMINF_paused | XEN_DOMINF_hvm_guest | (
        XEN_DOMINF_xs_domain | SHUTDOWN_BITS
    )  # 0xFFFF008A


def test_getdomaininfo_after_max_vcpus(dom0: Guest) -> None:
    """vCPUs exist (max_vcpu_id = 2 for three) but start down: none online."""
    assert create(dom0, 3, max_vcpus=3)[0] == 0
    assert max_vcpus(dom0, 3, 3) == 0
    info = dom0.info(3)
    assert (info.max_vcpu_id, info.nr_online_vcpus) == (2, 0)


def test_getdomaininfo_of_dom0(dom0_512: Guest) -> None:
    """A running PV dom0 with 8 vCPUs (2 nodes x 4 CPUs) and 512 MiB; the model boots it
    as with dom0_mem=512M,max:512M."""
    info = dom0_512.info(0)
    assert info.domain == 0
    assert info.flags == XEN_DOMINF_running | SHUTDOWN_BITS  # 0xFFFF0020
    assert (info.tot_pages, info.max_pages, info.outstanding_pages) == (131072, 131072, 0)
    assert (info.nr_online_vcpus, info.max_vcpu_id, info.gpaddr_bits) == (8, 7, 52)


def test_getdomaininfo_keeps_the_callers_union_bytes_beyond_112(dom0: Guest) -> None:
    """getdomaininfo fills sizeof(struct xen_domctl_getdomaininfo) = 112 bytes of the
    128-byte union; the whole op, the rest as the caller wrote it, is copied back."""
    tail = bytes(range(0xA0, 0xB0))
    raw = build(
        domctl.xen_domctl,
        dict(
            cmd=domctl.XEN_DOMCTL_getdomaininfo,
            interface_version=domctl.XEN_DOMCTL_INTERFACE_VERSION,
            domain=0,
            _pad=[1, 2, 3],
            u=bytes([0x55] * 112) + tail,
        ),
    )
    with dom0.hv.arena.alloc(len(raw)) as buf:
        buf.mem[: len(raw)] = raw
        assert dom0.hv.hypercall(HYPERVISOR_domctl, buf.addr) == 0
        after = parse(domctl.xen_domctl, bytes(buf.mem[: len(raw)]))
    assert after.u[112:] == tail
    assert after._pad == [1, 2, 3]
    assert parse(domctl.xen_domctl_getdomaininfo, after.u[:112]).pad2 == bytes(7)


def test_getdomaininfo_does_not_translate_domid_self(dom0: Guest) -> None:
    """rcu_lock_domain_by_id: DOMID_SELF is not a domain."""
    assert info_rc(dom0, DOMID_SELF) == -ESRCH


def test_getdomaininfo_of_a_missing_domain_is_esrch(dom0: Guest) -> None:
    assert info_rc(dom0, 42) == -ESRCH


# -- max_mem --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("max_memkb", "max_pages"),
    [
        (4096, 1024),  # 4 MiB
        (4097, 1024),  # KiB >> 2 truncates
        (4099, 1024),
        (4100, 1025),
        (3, 0),
        (0, 0),
        ((1 << 34) - 8, 0xFFFFFFFE),
        ((1 << 34) - 4, 0xFFFFFFFF),  # exactly UINT_MAX pages
        (1 << 34, 0xFFFFFFFF),  # 2^32 pages: clamped
        (1 << 63, 0xFFFFFFFF),
        ((1 << 64) - 1, 0xFFFFFFFF),  # xc_domain_setmaxmem(xch, d, -1)
    ],
    ids=lambda v: hex(v) if isinstance(v, int) else v,
)
def test_max_mem_is_kib_to_pages_clamped_to_32_bits(
    dom0: Guest, max_memkb: int, max_pages: int
) -> None:
    domid = dom0.create()
    assert dom0.max_mem(domid, max_memkb) == 0
    assert dom0.info(domid).max_pages == max_pages
    assert reservation(dom0, memory.XENMEM_maximum_reservation, domid) == max_pages


def test_max_mem_below_tot_pages_is_allowed(dom0: Guest) -> None:
    """No check against tot_pages ("ratchet down"): 512 pages held, max_pages set to 0."""
    domid = dom0.create(max_mib=4)
    assert dom0.populate(domid, [0], order=9) == 1
    assert dom0.max_mem(domid, 0) == 0
    info = dom0.info(domid)
    assert (info.tot_pages, info.max_pages) == (512, 0)


# -- pause / unpause ----------------------------------------------------------------------

PAUSE, UNPAUSE = domctl.XEN_DOMCTL_pausedomain, domctl.XEN_DOMCTL_unpausedomain


def paused(g: Guest, domid: int) -> bool:
    return bool(g.info(domid).flags & XEN_DOMINF_paused)


def test_unpause_to_zero_finishes_creation(dom0: Guest) -> None:
    """domain_unpause_by_systemcontroller: the count starts at 1; dropping it to 0 the first
    time sets creation_finished, which a later pause does not undo."""
    domid = dom0.create()
    d = dom0.hv.find_domain(domid)
    assert paused(dom0, domid) and not d.creation_finished
    assert simple(dom0, UNPAUSE, domid) == 0
    assert not paused(dom0, domid) and d.creation_finished
    assert simple(dom0, PAUSE, domid) == 0
    assert paused(dom0, domid) and d.creation_finished


def test_unpause_of_an_unpaused_domain_is_einval(dom0: Guest) -> None:
    domid = dom0.create()
    assert simple(dom0, UNPAUSE, domid) == 0
    assert simple(dom0, UNPAUSE, domid) == -EINVAL
    assert not paused(dom0, domid)


def test_controller_pauses_nest(dom0: Guest) -> None:
    domid = dom0.create()  # count 1
    assert simple(dom0, PAUSE, domid) == 0  # 2
    assert simple(dom0, UNPAUSE, domid) == 0  # 1
    assert paused(dom0, domid)
    assert simple(dom0, UNPAUSE, domid) == 0  # 0
    assert not paused(dom0, domid)


def test_controller_pause_count_stops_at_255(dom0: Guest) -> None:
    """_domain_pause_by_systemcontroller: a count beyond 255 is EOVERFLOW."""
    domid = dom0.create()  # count 1
    assert [simple(dom0, PAUSE, domid) for _ in range(254)] == [0] * 254  # count 255
    assert simple(dom0, PAUSE, domid) == -EOVERFLOW
    assert [simple(dom0, UNPAUSE, domid) for _ in range(255)] == [0] * 255
    assert simple(dom0, UNPAUSE, domid) == -EINVAL


def test_pausing_self_is_einval(dom0: Guest) -> None:
    """The pausedomain case refuses d == current; dom0's count is 0, so unpause is EINVAL."""
    assert simple(dom0, PAUSE, 0) == -EINVAL
    assert simple(dom0, UNPAUSE, 0) == -EINVAL
    assert not paused(dom0, 0)


# -- max_vcpus ------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [0, 1, 3, 0xFFFFFFFF])
def test_max_vcpus_other_than_the_createdomain_value_is_einval(dom0: Guest, count: int) -> None:
    assert create(dom0, 3, max_vcpus=2)[0] == 0
    assert max_vcpus(dom0, 3, count) == -EINVAL
    assert dom0.info(3).max_vcpu_id == 0xFFFFFFFF  # no vCPU created


def test_max_vcpus_equal_to_the_createdomain_value_creates_them(dom0: Guest) -> None:
    assert create(dom0, 3, max_vcpus=2)[0] == 0
    assert max_vcpus(dom0, 3, 2) == 0
    assert max_vcpus(dom0, 3, 2) == 0  # again: the vCPUs exist already
    assert dom0.info(3).max_vcpu_id == 1


def test_max_vcpus_on_self_is_einval(dom0: Guest) -> None:
    assert max_vcpus(dom0, 0, 8) == -EINVAL  # dom0 has 8 vCPUs, but cannot pause itself


# -- node affinity --------------------------------------------------------------------------


def set_affinity(g: Guest, domid: int, data: bytes, nr_bits: int, handle: int | None = None) -> int:
    with g.hv.arena.alloc(len(data)) as buf:
        buf.mem[: len(data)] = data
        nodemap = dict(bitmap=buf.addr if handle is None else handle, nr_bits=nr_bits)
        cmd, layout = domctl.XEN_DOMCTL_setnodeaffinity, domctl.xen_domctl_nodeaffinity
        return int(g.domctl(cmd, domid, layout, dict(nodemap=nodemap))[0])


def get_affinity(g: Guest, domid: int, nr_bits: int, size: int | None = None) -> tuple[int, bytes]:
    """getnodeaffinity into a buffer of ``size`` bytes (default nr_bits / 8 rounded up)
    pre-filled with 0xEE; returns the result and the buffer."""
    size = -(-nr_bits // 8) if size is None else size
    with g.hv.arena.alloc(size) as buf:
        buf.mem[:size] = b"\xee" * size
        nodemap = dict(bitmap=buf.addr, nr_bits=nr_bits)
        cmd, layout = domctl.XEN_DOMCTL_getnodeaffinity, domctl.xen_domctl_nodeaffinity
        rc = g.domctl(cmd, domid, layout, dict(nodemap=nodemap))[0]
        return int(rc), bytes(buf.mem[:size])


def mask_bytes(*nodes: int) -> bytes:
    return sum(1 << n for n in nodes).to_bytes(8, "little")


def affinity(g: Guest, domid: int) -> bytes:
    rc, data = get_affinity(g, domid, 64)
    assert rc == 0
    return data


def test_new_domain_has_every_node(dom0: Guest) -> None:
    """domain_create: node_affinity = NODE_MASK_ALL, automatic."""
    assert affinity(dom0, dom0.create()) == ALL_NODES


def test_set_then_get_node_affinity(dom0: Guest) -> None:
    domid = dom0.create()
    assert set_affinity(dom0, domid, mask_bytes(1), 64) == 0
    assert affinity(dom0, domid) == mask_bytes(1)


@pytest.mark.parametrize(
    ("data", "nr_bits"),
    [(mask_bytes(5), 64), (mask_bytes(63), 64), (mask_bytes(), 64), (mask_bytes(0, 1), 0)],
    ids=["offline-5", "offline-63", "empty", "nr_bits-0"],
)
def test_affinity_without_an_online_node_is_einval(dom0: Guest, data: bytes, nr_bits: int) -> None:
    """domain_set_node_affinity: disjoint from node_online_map (nodes 0, 1 here)."""
    domid = dom0.create()
    assert set_affinity(dom0, domid, mask_bytes(1), 64) == 0
    assert set_affinity(dom0, domid, data, nr_bits) == -EINVAL
    assert affinity(dom0, domid) == mask_bytes(1)


def test_offline_nodes_in_an_affinity_are_kept(dom0: Guest) -> None:
    domid = dom0.create()
    assert set_affinity(dom0, domid, mask_bytes(0, 5), 64) == 0
    assert affinity(dom0, domid) == bytes([0x21]) + bytes(7)


def test_full_mask_without_vcpus_leaves_the_affinity_as_it_was(dom0: Guest) -> None:
    """A full mask only turns automatic affinity on; with no vCPUs there is nothing to
    recompute it from, so node_affinity stays {1} until max_vcpus."""
    domid = dom0.create()
    assert set_affinity(dom0, domid, mask_bytes(1), 64) == 0
    assert set_affinity(dom0, domid, ALL_NODES, 64) == 0
    assert affinity(dom0, domid) == mask_bytes(1)
    assert max_vcpus(dom0, domid, 1) == 0
    assert affinity(dom0, domid) == mask_bytes(0, 1)


def test_full_mask_with_vcpus_recomputes_from_the_cpus(dom0: Guest) -> None:
    domid = dom0.create()
    assert max_vcpus(dom0, domid, 1) == 0
    assert set_affinity(dom0, domid, mask_bytes(1), 64) == 0
    assert set_affinity(dom0, domid, ALL_NODES, 64) == 0
    assert affinity(dom0, domid) == mask_bytes(0, 1)


@pytest.mark.parametrize(
    ("boot", "nodes"),
    [
        (dict(nodes=[4096, 4096]), (0, 1)),
        (dict(nodes=[64, 64, 64], cpus_per_node=[4, 4, 0]), (0, 1)),  # node 2 memory only
        (dict(nodes=[64, 64, 64], offline=[2]), (0, 1)),
        (dict(nodes=[64, 64, 64], cpus_per_node=[0, 2, 2]), (1, 2)),
    ],
    ids=["2-nodes", "memory-only-node", "offline-node", "cpuless-node-0"],
)
def test_automatic_affinity_after_max_vcpus_is_the_nodes_with_online_cpus(
    guest_class: type[Guest], boot: dict[str, Any], nodes: tuple[int, ...]
) -> None:
    """domain_update_node_affinity: vCPUs may run on every online CPU of Pool-0, so the
    domain's nodes are those CPUs' nodes."""
    g = guest_class(hypervisor_model.boot(**boot), 0)
    domid = g.create()
    assert max_vcpus(g, domid, 1) == 0
    assert affinity(g, domid) == mask_bytes(*nodes)


def test_dom0_affinity_is_the_nodes_with_online_cpus(dom0: Guest) -> None:
    assert affinity(dom0, 0) == mask_bytes(0, 1)


def test_explicit_affinity_survives_max_vcpus(dom0: Guest) -> None:
    domid = dom0.create()
    assert set_affinity(dom0, domid, mask_bytes(1), 64) == 0
    assert max_vcpus(dom0, domid, 1) == 0
    assert affinity(dom0, domid) == mask_bytes(1)


@pytest.mark.parametrize(
    ("byte", "rc", "expected"),
    [(0xE2, 0, mask_bytes(1)), (0xE0, -EINVAL, ALL_NODES)],
    ids=["bits-5-7-dropped", "only-bits-5-7"],
)
def test_set_masks_bits_beyond_nr_bits_in_the_last_byte(
    dom0: Guest, byte: int, rc: int, expected: bytes
) -> None:
    """nr_bits 5: byte 0 keeps bits 0-4 only (0xE2 -> 0x02 = node 1; 0xE0 -> nothing)."""
    domid = dom0.create()
    assert set_affinity(dom0, domid, bytes([byte]), 5) == rc
    assert affinity(dom0, domid) == expected


def test_set_with_60_bits_is_not_a_full_mask(dom0: Guest) -> None:
    """8 bytes of 0xFF with nr_bits 60: the last byte keeps bits 0-3, so the mask is
    nodes 0-59, explicit (not the full mask that would mean automatic)."""
    domid = dom0.create()
    assert set_affinity(dom0, domid, ALL_NODES, 60) == 0
    assert affinity(dom0, domid) == bytes([0xFF] * 7 + [0x0F])


def test_set_reads_at_most_8_bytes(dom0: Guest) -> None:
    """nr_bits 70 (9 bytes) from an 8-byte buffer: only MAX_NUMNODES / 8 = 8 bytes are
    copied, and since the caller's bitmap is longer than Xen's nothing is masked (masking
    byte 7 by 70 & 7 = 6 bits would have dropped node 63)."""
    domid = dom0.create()
    assert set_affinity(dom0, domid, mask_bytes(1, 63), 70) == 0
    assert affinity(dom0, domid) == mask_bytes(1, 63)


def test_set_with_nr_bits_wrapping_to_zero_bytes_is_einval(dom0: Guest) -> None:
    """DIV_ROUND_UP(0xFFFFFFFF, 8) wraps in 32 bits to 0 bytes: nothing is read."""
    domid = dom0.create()
    assert set_affinity(dom0, domid, mask_bytes(0), 0xFFFFFFFF) == -EINVAL


@pytest.mark.parametrize(
    ("nr_bits", "size", "expected"),
    [
        (8, 1, b"\x80"),  # Xen's LAST byte in the caller's last position
        (5, 1, b"\x80"),  # not masked to 5 bits: Xen masks by its own 64
        (16, 2, b"\x01\x80"),
        (64, 8, b"\x01" + bytes(6) + b"\x80"),
        (128, 16, b"\x01" + bytes(6) + b"\x80" + bytes(8)),  # zero-filled beyond 8
        (0, 4, b"\xee" * 4),  # nothing written
        (0xFFFFFFFF, 4, b"\xee" * 4),  # DIV_ROUND_UP wraps to 0 bytes
    ],
    ids=["8-bits", "5-bits", "16-bits", "64-bits", "128-bits", "0-bits", "ffffffff-bits"],
)
def test_get_copies_xen_bytes_with_the_last_byte_quirk(
    dom0: Guest, nr_bits: int, size: int, expected: bytes
) -> None:
    """Affinity {0, 63}: Xen's bytes are 01 00 00 00 00 00 00 80 (bitmap_to_xenctl_bitmap)."""
    domid = dom0.create()
    assert set_affinity(dom0, domid, mask_bytes(0, 63), 64) == 0
    assert get_affinity(dom0, domid, nr_bits, size) == (0, expected)


def test_get_with_8_bits_hides_node_0(dom0: Guest) -> None:
    """The quirk's consequence: affinity {0} read as one byte is 0x00 (Xen's byte 7)."""
    domid = dom0.create()
    assert set_affinity(dom0, domid, mask_bytes(0), 64) == 0
    assert get_affinity(dom0, domid, 8) == (0, b"\x00")


def test_node_affinity_with_a_bad_bitmap_handle_is_efault(dom0: Guest) -> None:
    domid = dom0.create()
    assert set_affinity(dom0, domid, mask_bytes(1), 64) == 0
    assert set_affinity(dom0, domid, b"", 64, handle=0) == -EFAULT
    cmd, layout = domctl.XEN_DOMCTL_getnodeaffinity, domctl.xen_domctl_nodeaffinity
    get = dom0.domctl(cmd, domid, layout, dict(nodemap=dict(bitmap=0, nr_bits=64)))
    assert get[0] == -EFAULT
    assert affinity(dom0, domid) == mask_bytes(1)


# -- privilege ------------------------------------------------------------------------------

DOMU_REFUSED = {
    "createdomain": (domctl.XEN_DOMCTL_createdomain, domctl.xen_domctl_createdomain, config()),
    "destroydomain": (domctl.XEN_DOMCTL_destroydomain, None, None),
    "pausedomain": (PAUSE, None, None),
    "unpausedomain": (UNPAUSE, None, None),
    "getdomaininfo": (domctl.XEN_DOMCTL_getdomaininfo, None, None),
    "max_mem": (domctl.XEN_DOMCTL_max_mem, domctl.xen_domctl_max_mem, dict(max_memkb=4096)),
    "max_vcpus": (domctl.XEN_DOMCTL_max_vcpus, domctl.xen_domctl_max_vcpus, dict(max=1)),
    "setnodeaffinity": (
        domctl.XEN_DOMCTL_setnodeaffinity,
        domctl.xen_domctl_nodeaffinity,
        dict(nodemap=dict(bitmap=0, nr_bits=0)),
    ),
    "getnodeaffinity": (
        domctl.XEN_DOMCTL_getnodeaffinity,
        domctl.xen_domctl_nodeaffinity,
        dict(nodemap=dict(bitmap=0, nr_bits=0)),
    ),
    "claim_memory": (
        domctl.XEN_DOMCTL_claim_memory,
        domctl.xen_domctl_claim_memory,
        dict(claim_set=0, nr_entries=0, mode=domctl.XEN_DOMCTL_CLAIM_MEMORY_GET),
    ),
}


@pytest.mark.parametrize("target", ["other", "self"])
@pytest.mark.parametrize("request_", DOMU_REFUSED.values(), ids=DOMU_REFUSED.keys())
def test_every_domctl_from_a_domu_is_eperm(
    dom0: Guest, guest_class: type[Guest], request_: tuple[Any, ...], target: str
) -> None:
    """xsm_domctl(XSM_PRIV) and xsm_getdomaininfo(XSM_XS_PRIV): a plain domU may do nothing,
    not even to itself; the target is untouched (still paused, max_pages 0)."""
    caller, other = dom0.create(), dom0.create()
    domid = other if target == "other" else caller
    cmd, layout, payload = request_
    assert guest_class(dom0.hv, caller).domctl(cmd, domid, layout, payload)[0] == -EPERM
    info = dom0.info(domid)
    assert (info.flags & XEN_DOMINF_paused, info.max_pages) == (XEN_DOMINF_paused, 0)
    assert dom0.create() == 3  # createdomain made nothing


@pytest.mark.parametrize("target", [0, 1, 2], ids=["dom0", "self", "other"])
def test_xenstore_domain_may_read_domain_info(
    dom0: Guest, guest_class: type[Guest], target: int
) -> None:
    """xsm_getdomaininfo(XSM_XS_PRIV) lets a CDF_xs_domain domain read any domain."""
    assert create(dom0, 1, flags=XEN_DOMCTL_CDF_xs_domain)[0] == 0
    assert dom0.create(2) == 2
    xs = guest_class(dom0.hv, 1)
    assert xs.info(target).domain == target


def test_xenstore_domain_is_refused_everything_else(dom0: Guest, guest_class: type[Guest]) -> None:
    assert create(dom0, 1, flags=XEN_DOMCTL_CDF_xs_domain)[0] == 0
    assert dom0.create(2) == 2
    xs = guest_class(dom0.hv, 1)
    assert xs.max_mem(2, 4096) == -EPERM
    assert info_rc(xs, 42) == -EPERM  # a failed lookup is EPERM for a non-control caller
    assert dom0.info(2).max_pages == 0


# -- set_address_size (x86 arch_do_domctl, pv/domain.c switch_compat) ----------------------------


def address_size(g: Guest, domid: int, size: int) -> int:
    return int(
        g.domctl(
            domctl.XEN_DOMCTL_set_address_size,
            domid,
            domctl.xen_domctl_address_size,
            dict(size=size),
        )[0]
    )


def test_switch_to_32_bit_before_the_guest_has_memory(dom0: Guest) -> None:
    domid = dom0.create(hvm=False)
    assert address_size(dom0, domid, 32) == 0
    assert address_size(dom0, domid, 32) == 0  # already compat: nothing to switch


def test_switch_to_32_bit_once_the_guest_has_memory_is_eacces(dom0: Guest) -> None:
    """switch_compat refuses a PV guest with pages (domain_tot_pages != 0): it stays 64-bit."""
    domid = dom0.create(hvm=False, max_mib=1)
    assert dom0.populate(domid, [0]) == 1
    assert address_size(dom0, domid, 32) == -EACCES
    rc, after = dom0.domctl(
        domctl.XEN_DOMCTL_get_address_size, domid, domctl.xen_domctl_address_size, dict(size=0)
    )
    assert (rc, after.payload.size) == (0, 64)
    assert address_size(dom0, domid, 64) == 0  # 64 on a 64-bit guest is no switch

"""``__HYPERVISOR_xen_version`` (common/kernel.c do_xen_version, xenver_varbuf_op) under
the dummy XSM policy (xsm_xen_version): version, platform parameters and features for
anyone; extraversion, compile info, capabilities, changeset, page size and guest handle
for anyone too; the command line and the build id only for the control domain: others
read "<denied>" from XENVER_commandline and get EPERM from the variable-length ops.
"""

from __future__ import annotations

import struct

import pytest
from hypercalls import Guest, createdomain_payload

import hypervisor_model
from hypervisor_model import version
from hypervisor_model.public import domctl
from hypervisor_model.public import version as abi
from hypervisor_model.public.errno import EFAULT, EINVAL, ENOBUFS, ENODATA, ENOSYS, EPERM
from hypervisor_model.public.releases import MASTER
from hypervisor_model.public.xen import DOMID_ANY, HYPERVISOR_xen_version

DENIED = b"<denied>\0"


def xen_version(dom0: Guest, cmd: int, size: int, caller: int = 0) -> tuple[int, bytes]:
    """Issue with a fresh buffer of ``size`` bytes full of 0xEE; the result and its bytes."""
    with dom0.hv.arena.alloc(size) as buf:
        buf.mem[:size] = b"\xee" * size
        rc = dom0.hv.hypercall(HYPERVISOR_xen_version, cmd, buf.addr, caller=caller)
        return rc, bytes(buf.mem[:size])


@pytest.fixture
def domu(dom0: Guest) -> int:
    return dom0.create()


def test_commandline_for_the_control_domain_is_the_whole_1024_byte_array(dom0: Guest) -> None:
    rc, out = xen_version(dom0, abi.XENVER_commandline, 1024)
    assert rc == 0
    assert out == version.COMMANDLINE.encode().ljust(1024, b"\0")


def test_commandline_for_a_domu_is_denied_and_nothing_more(dom0: Guest, domu: int) -> None:
    """xen_deny() and its NUL (9 bytes) are copied; the rest of the buffer is untouched."""
    rc, out = xen_version(dom0, abi.XENVER_commandline, 1024, caller=domu)
    assert rc == 0
    assert out == DENIED + b"\xee" * (1024 - len(DENIED))


@pytest.mark.parametrize(
    ("cmd", "size"),
    [
        (abi.XENVER_extraversion, 16),
        (abi.XENVER_capabilities, 1024),
        (abi.XENVER_changeset, 64),
        (abi.XENVER_compile_info, 144),
    ],
    ids=["extraversion", "capabilities", "changeset", "compile_info"],
)
def test_what_any_guest_may_read_reads_the_same_for_a_domu(
    dom0: Guest, domu: int, cmd: int, size: int
) -> None:
    assert xen_version(dom0, cmd, size, caller=domu) == xen_version(dom0, cmd, size)


def test_platform_parameters_tell_only_a_pv_caller_where_xen_starts(dom0: Guest, domu: int) -> None:
    """Release builds give a 64-bit PV vCPU HYPERVISOR_VIRT_START, an HVM one 0."""
    assert xen_version(dom0, abi.XENVER_platform_parameters, 8) == (
        0,
        struct.pack("<Q", 0xFFFF_8000_0000_0000),
    )
    assert xen_version(dom0, abi.XENVER_platform_parameters, 8, caller=domu) == (0, bytes(8))


def test_guest_handle_is_the_callers_own(dom0: Guest) -> None:
    """dom0's handle is all zeroes; a domU created with a handle reads that handle."""
    payload = dict(createdomain_payload(domctl.XEN_DOMCTL_CDF_hvm), handle=b"U" * 16)
    rc, after = dom0.domctl(
        domctl.XEN_DOMCTL_createdomain, DOMID_ANY, domctl.xen_domctl_createdomain, payload
    )
    assert rc == 0
    assert xen_version(dom0, abi.XENVER_guest_handle, 16) == (0, bytes(16))
    assert xen_version(dom0, abi.XENVER_guest_handle, 16, caller=after.domain) == (0, b"U" * 16)


def test_pagesize_needs_a_null_handle(dom0: Guest) -> None:
    hv = dom0.hv
    assert hv.hypercall(HYPERVISOR_xen_version, abi.XENVER_pagesize, 0) == 4096
    assert xen_version(dom0, abi.XENVER_pagesize, 8)[0] == -EINVAL


# -- the variable-length ops (xenver_varbuf_op) --------------------------------------------------


def varbuf(
    dom0: Guest, cmd: int, room: int, caller: int = 0, size: int | None = None
) -> tuple[int, bytes]:
    """A xen_varbuf with ``len`` = room in a buffer of 4 + room bytes (or ``size``)."""
    size = 4 + room if size is None else size
    with dom0.hv.arena.alloc(size) as buf:
        buf.mem[:size] = (struct.pack("<I", room) + b"\xee" * room)[:size]
        rc = dom0.hv.hypercall(HYPERVISOR_xen_version, cmd, buf.addr, caller=caller)
        return rc, bytes(buf.mem[4:size])


STRINGS = [
    (abi.XENVER_extraversion2, MASTER.extraversion),
    (abi.XENVER_capabilities2, MASTER.capabilities),
    (abi.XENVER_changeset2, MASTER.changeset),
    (abi.XENVER_commandline2, version.COMMANDLINE),
]


@pytest.mark.parametrize(("cmd", "text"), STRINGS, ids=["extra", "caps", "changeset", "cmdline"])
def test_a_null_handle_asks_the_length_then_the_text_comes_without_nul(
    dom0: Guest, cmd: int, text: str
) -> None:
    hv = dom0.hv
    assert hv.hypercall(HYPERVISOR_xen_version, cmd, 0) == len(text)
    rc, out = varbuf(dom0, cmd, len(text) + 3)
    assert (rc, out) == (len(text), text.encode() + b"\xee" * 3)


@pytest.mark.parametrize(("cmd", "text"), STRINGS, ids=["extra", "caps", "changeset", "cmdline"])
def test_too_little_room_is_enobufs_and_writes_nothing(dom0: Guest, cmd: int, text: str) -> None:
    rc, out = varbuf(dom0, cmd, len(text) - 1)
    assert (rc, out) == (-ENOBUFS, b"\xee" * (len(text) - 1))


VARBUF_ERRNOS = [
    # (what, cmd, caller is a domU, room, buffer bytes, errno)
    ("build-id-no-id", abi.XENVER_build_id, False, 64, None, ENODATA),
    ("build-id-null-handle", abi.XENVER_build_id, False, 0, 0, ENODATA),
    ("build-id-domu", abi.XENVER_build_id, True, 64, None, EPERM),
    ("cmdline2-domu", abi.XENVER_commandline2, True, 64, None, EPERM),
    ("len-unreadable", abi.XENVER_changeset2, False, 64, 2, EFAULT),
    ("text-unwritable", abi.XENVER_changeset2, False, 64, 10, EFAULT),
    ("unknown-15", 15, False, 64, None, ENOSYS),
]


@pytest.mark.parametrize(
    ("cmd", "domu", "room", "size", "errno"),
    [row[1:] for row in VARBUF_ERRNOS],
    ids=[row[0] for row in VARBUF_ERRNOS],
)
def test_errno(dom0: Guest, cmd: int, domu: bool, room: int, size: int | None, errno: int) -> None:
    """EPERM before ENODATA (the XSM check comes first); the model has no build id."""
    caller = dom0.create() if domu else 0
    if size == 0:
        rc = dom0.hv.hypercall(HYPERVISOR_xen_version, cmd, 0, caller=caller)
    else:
        rc, _ = varbuf(dom0, cmd, room, caller=caller, size=size)
    assert rc == -errno


# -- XENVER_get_features (kernel.c do_xen_version) -----------------------------------------------

# Submap 0 bit by bit (public/features.h). Every caller: memory_op_vnode_supported (13).
# Master adds runstate_phys_area (18), vcpu_time_phys_area (19), dm_msix_all_writes (20):
# 0x1C0000 more than 4.17. PV: mmu_pt_update_preserve_ad, highmem_assist,
# gnttab_map_avail_bits (5, 6, 7: 0xE0), direct_mapped (17). Translated (HVM):
# writable_page_tables, auto_translated_physmap (0, 2: 0x5), hvm_callback_vector,
# hvm_safe_pvclock (8, 9: 0x300), hvm_pirqs (10) with USE_PIRQ, not_direct_mapped (16).
# The hardware domain: dom0 (11).
PV_DOMU_4_17 = 1 << 13 | 0xE0 | 1 << 17  # 0x220E0
DOM0_4_17 = PV_DOMU_4_17 | 1 << 11  # 0x228E0
HVM_DOMU_4_17 = 1 << 13 | 0x5 | 0x300 | 1 << 16  # 0x12305
MASTER_ONLY = 1 << 18 | 1 << 19 | 1 << 20  # 0x1C0000
FEATURES = [
    # (release, caller, submap)
    ("master", "dom0", 0x1E28E0),
    ("master", "pv", 0x1E20E0),
    ("master", "hvm", 0x1D2305),
    ("master", "hvm-pirq", 0x1D2705),
    ("4.17", "dom0", 0x228E0),
    ("4.17", "pv", 0x220E0),
    ("4.17", "hvm-pirq", 0x12705),  # 4.17 requires USE_PIRQ of an HVM domU
]


def test_the_hand_worked_submaps_are_the_sums_of_their_bits() -> None:
    assert [row[2] for row in FEATURES] == [
        DOM0_4_17 | MASTER_ONLY,
        PV_DOMU_4_17 | MASTER_ONLY,
        HVM_DOMU_4_17 | MASTER_ONLY,
        HVM_DOMU_4_17 | MASTER_ONLY | 1 << 10,
        DOM0_4_17,
        PV_DOMU_4_17,
        HVM_DOMU_4_17 | 1 << 10,
    ]


def _caller(dom0: Guest, kind: str) -> int:
    """dom0 (PV, the hardware domain) or a new PV domU, HVM domU (every emulator but vPCI
    and PIRQ, 0x1FF) or HVM domU with PIRQ (0x3FF)."""
    if kind == "dom0":
        return 0
    release = dom0.hv.release
    flags = 0 if kind == "pv" else domctl.XEN_DOMCTL_CDF_hvm | domctl.XEN_DOMCTL_CDF_hap
    payload = createdomain_payload(flags, release)
    if kind == "hvm-pirq":
        payload["arch"] = dict(payload["arch"], emulation_flags=0x3FF)
    rc, after = dom0.domctl(
        domctl.XEN_DOMCTL_createdomain, release.any_domid, release.xen_domctl_createdomain, payload
    )
    assert rc == 0
    return int(after.domain)


def features(dom0: Guest, submap_idx: int = 0, caller: int = 0, size: int = 8) -> tuple[int, bytes]:
    """XENVER_get_features with ``submap_idx`` and a 0xEE submap in ``size`` bytes; the
    result and the bytes after."""
    with dom0.hv.arena.alloc(size) as buf:
        buf.mem[:size] = (struct.pack("<I", submap_idx) + b"\xee" * 4)[:size]
        rc = dom0.hv.hypercall(
            HYPERVISOR_xen_version, abi.XENVER_get_features, buf.addr, caller=caller
        )
        return rc, bytes(buf.mem[:size])


@pytest.mark.parametrize(
    ("xen", "kind", "submap"), FEATURES, ids=[f"{r}-{k}" for r, k, _ in FEATURES]
)
def test_features_submap_0_for_each_kind_of_caller(xen: str, kind: str, submap: int) -> None:
    hv = hypervisor_model.boot(nodes=[64], xen=xen)
    dom0 = Guest(hv)
    caller = _caller(dom0, kind)
    assert features(dom0, caller=caller) == (0, struct.pack("<II", 0, submap))


FEATURE_ERRNOS = [
    # (what, submap_idx, buffer bytes, errno)
    ("submap-1", 1, 8, EINVAL),
    ("submap-huge", 0xFFFFFFFF, 8, EINVAL),
    ("unreadable", 0, 4, EFAULT),
]


@pytest.mark.parametrize(
    ("idx", "size", "errno"), [r[1:] for r in FEATURE_ERRNOS], ids=[r[0] for r in FEATURE_ERRNOS]
)
def test_features_errno_and_nothing_written(dom0: Guest, idx: int, size: int, errno: int) -> None:
    rc, out = features(dom0, idx, size=size)
    assert rc == -errno
    assert out == (struct.pack("<I", idx) + b"\xee" * 4)[:size]


def test_features_null_handle_is_efault(dom0: Guest) -> None:
    assert dom0.hv.hypercall(HYPERVISOR_xen_version, abi.XENVER_get_features, 0) == -EFAULT

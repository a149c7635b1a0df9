"""``__HYPERVISOR_xen_version``: which Xen this is (common/kernel.c do_xen_version).

The emulated host reports the strings of the release it runs (``hv.release``): master is
4.23-unstable, the version of the commit the model follows. 4.17 has no variable-length
sub-ops (XENVER_*2), checks build_id's buffer before finding no build id, and reports
fewer features.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from hypervisor_model.errors import XenError
from hypervisor_model.guest_memory import build, copy_struct_from_guest, sizeof
from hypervisor_model.public import version as abi
from hypervisor_model.public.domctl import XEN_X86_EMU_USE_PIRQ
from hypervisor_model.public.errno import E2BIG, EINVAL, ENOBUFS, ENODATA, ENOSYS, EPERM
from hypervisor_model.public.xen import VMASST_TYPE_pae_extended_cr3

if TYPE_CHECKING:
    from hypervisor_model.domain import Domain
    from hypervisor_model.hypervisor import Hypervisor
    from hypervisor_model.public.releases import Release

HYPERVISOR_VIRT_START = 0xFFFF800000000000  # x86_64 PV guests' view of Xen's range
COMMANDLINE = "conring_size=1M"


def _text(value: str, size: int) -> bytes:
    return value.encode()[: size - 1].ljust(size, b"\0")


# xsm_xen_version (dummy policy): what any domain may read; everything else is the
# control domain's (XSM_PRIV), and others get "<denied>" or EPERM.
_ANYONE = {
    abi.XENVER_version,
    abi.XENVER_platform_parameters,
    abi.XENVER_get_features,
    abi.XENVER_extraversion,
    abi.XENVER_extraversion2,
    abi.XENVER_compile_info,
    abi.XENVER_capabilities,
    abi.XENVER_capabilities2,
    abi.XENVER_changeset,
    abi.XENVER_changeset2,
    abi.XENVER_pagesize,
    abi.XENVER_guest_handle,
}
DENIED = "<denied>"  # xen_deny()
BUILD_ID = b""  # the model was linked without a build id: XENVER_build_id is ENODATA
VARBUF_LIMIT = 64 << 10  # xenver_varbuf_op's limit on an answer


def do_xen_version(hv: Hypervisor, current: Domain, cmd: int, arg: int, *_: int) -> int:
    release = hv.release
    deny = cmd not in _ANYONE and not hv.is_control_domain(current)
    if cmd == abi.XENVER_version:
        return release.major << 16 | release.minor
    if cmd == abi.XENVER_pagesize:
        if arg:
            raise XenError(EINVAL, "XENVER_pagesize takes a NULL handle")
        return 4096
    if cmd == abi.XENVER_get_features:
        return _get_features(hv, current, arg)
    if cmd == abi.XENVER_build_id and not release.xenver_varbuf:
        return _build_id_4_17(hv, deny, arg)
    if cmd in _VARBUF and release.xenver_varbuf:
        if deny:
            raise XenError(EPERM)
        answer = _VARBUF[cmd](release)
        if cmd == abi.XENVER_build_id and not answer:
            raise XenError(ENODATA, "Xen was linked without a build id")
        return _varbuf(hv, answer, arg)
    replies = {
        abi.XENVER_extraversion: lambda: _text(release.extraversion, abi.XEN_EXTRAVERSION_LEN),
        abi.XENVER_capabilities: lambda: _text(release.capabilities, abi.XEN_CAPABILITIES_INFO_LEN),
        abi.XENVER_changeset: lambda: _text(release.changeset, abi.XEN_CHANGESET_INFO_LEN),
        # a denied caller gets "<denied>" and its NUL, nothing more
        abi.XENVER_commandline: lambda: (
            _text(DENIED, len(DENIED) + 1) if deny else _text(COMMANDLINE, abi.XEN_COMMANDLINE_LEN)
        ),
        abi.XENVER_compile_info: lambda: build(
            abi.xen_compile_info,
            dict(
                compiler=_text(release.compiler, 64),
                compile_by=_text(release.compile_by, 16),
                compile_domain=_text(release.compile_domain, 32),
                compile_date=_text(release.compile_date, 32),
            ),
        ),
        # master's release builds tell a 64-bit PV caller where Xen's range starts, others
        # 0; 4.17 tells everyone
        abi.XENVER_platform_parameters: lambda: build(
            abi.xen_platform_parameters,
            dict(
                virt_start=0
                if current.is_hvm and release.platform_parameters_pv_only
                else HYPERVISOR_VIRT_START
            ),
        ),
        abi.XENVER_guest_handle: lambda: current.handle,
    }
    reply = replies.get(cmd)
    if reply is None:
        raise XenError(ENOSYS)
    hv.caller_memory.copy_to_guest(arg, reply())
    return 0


_VARBUF: dict[int, Callable[[Release], bytes]] = {
    abi.XENVER_build_id: lambda r: BUILD_ID,
    abi.XENVER_extraversion2: lambda r: r.extraversion.encode(),
    abi.XENVER_capabilities2: lambda r: r.capabilities.encode(),
    abi.XENVER_changeset2: lambda r: r.changeset.encode(),
    abi.XENVER_commandline2: lambda r: COMMANDLINE.encode(),
}


def features(release: Release, d: Domain, hardware_domain: bool) -> int:
    """Submap 0 of XENVER_get_features for a caller in ``d`` (kernel.c do_xen_version)."""
    submap = 1 << abi.XENFEAT_memory_op_vnode_supported
    if release.xenfeat_phys_areas:
        submap |= 1 << abi.XENFEAT_vcpu_time_phys_area | 1 << abi.XENFEAT_runstate_phys_area
        submap |= 1 << abi.XENFEAT_dm_msix_all_writes
    if d.vm_assist >> VMASST_TYPE_pae_extended_cr3 & 1:
        submap |= 1 << abi.XENFEAT_pae_pgdir_above_4gb
    if d.is_translated:
        submap |= 1 << abi.XENFEAT_writable_page_tables | 1 << abi.XENFEAT_auto_translated_physmap
    if hardware_domain:
        submap |= 1 << abi.XENFEAT_dom0
    if d.is_hvm:
        submap |= 1 << abi.XENFEAT_hvm_safe_pvclock | 1 << abi.XENFEAT_hvm_callback_vector
        if d.emulation_flags & XEN_X86_EMU_USE_PIRQ:  # has_pirq
            submap |= 1 << abi.XENFEAT_hvm_pirqs
    else:
        submap |= 1 << abi.XENFEAT_mmu_pt_update_preserve_ad | 1 << abi.XENFEAT_highmem_assist
        submap |= 1 << abi.XENFEAT_gnttab_map_avail_bits
    # x86 never direct-maps a translated guest (CDF_directmap is Arm's), so only PV is
    direct = not d.is_translated
    return submap | 1 << (abi.XENFEAT_direct_mapped if direct else abi.XENFEAT_not_direct_mapped)


def _get_features(hv: Hypervisor, current: Domain, arg: int) -> int:
    """XENVER_get_features: the caller's xen_feature_info is read (EFAULT), only submap 0
    exists (EINVAL), and it is written back with the submap filled in."""
    fi = copy_struct_from_guest(hv.caller_memory, arg, abi.xen_feature_info)
    if fi.submap_idx >= abi.XENFEAT_NR_SUBMAPS:
        raise XenError(EINVAL, f"expected feature submap 0, got {fi.submap_idx}")
    # dom0 is the hardware domain as well as the control domain here
    submap = features(hv.release, current, hv.is_control_domain(current))
    reply = build(abi.xen_feature_info, dict(submap_idx=fi.submap_idx, submap=submap))
    hv.caller_memory.copy_to_guest(arg, reply)
    return 0


def _build_id_4_17(hv: Hypervisor, deny: bool, arg: int) -> int:
    """4.17's XENVER_build_id: the caller's xen_build_id is read first (EFAULT; ``len`` 0
    is EINVAL), then Xen finds it has no build id (ENODATA)."""
    if deny:
        raise XenError(EPERM)
    if arg and copy_struct_from_guest(hv.caller_memory, arg, abi.xen_build_id).len == 0:
        raise XenError(EINVAL, "xen_build_id.len is 0")
    raise XenError(ENODATA, "Xen was linked without a build id")


def _varbuf(hv: Hypervisor, answer: bytes, arg: int) -> int:
    """xenver_varbuf_op: a NULL handle asks for the length; else the answer goes after the
    caller's ``len`` if it fits (ENOBUFS if not); either way the length is returned."""
    if len(answer) > VARBUF_LIMIT:
        raise XenError(E2BIG)
    if not arg:
        return len(answer)
    room = copy_struct_from_guest(hv.caller_memory, arg, abi.xen_varbuf).len
    if len(answer) > room:
        raise XenError(ENOBUFS, f"expected room for {len(answer)} bytes, got {room}")
    hv.caller_memory.copy_to_guest(arg + sizeof(abi.xen_varbuf), answer)
    return len(answer)

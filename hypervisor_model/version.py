"""``__HYPERVISOR_xen_version``: which Xen this is (common/kernel.c do_xen_version).

The emulated host reports itself as Xen 4.22.0, the release the model follows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from hypervisor_model.errors import XenError
from hypervisor_model.guest_memory import build, copy_struct_from_guest, sizeof
from hypervisor_model.public import version as abi
from hypervisor_model.public.errno import E2BIG, EINVAL, ENOBUFS, ENODATA, ENOSYS, EPERM

if TYPE_CHECKING:
    from hypervisor_model.domain import Domain
    from hypervisor_model.hypervisor import Hypervisor

XEN_MAJOR, XEN_MINOR, XEN_EXTRA = 4, 22, ".0"
CAPABILITIES = "xen-3.0-x86_64 hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64"
CHANGESET = "xenemu model of c447b7308b13"
HYPERVISOR_VIRT_START = 0xFFFF800000000000  # x86_64 PV guests' view of Xen's range
COMMANDLINE = "conring_size=1M"
COMPILE_INFO = dict(
    compiler=b"xenemu", compile_by=b"xenemu", compile_domain=b"", compile_date=b"2026-08-20"
)


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
    deny = cmd not in _ANYONE and not hv.is_control_domain(current)
    if cmd == abi.XENVER_version:
        return XEN_MAJOR << 16 | XEN_MINOR
    if cmd == abi.XENVER_pagesize:
        if arg:
            raise XenError(EINVAL, "XENVER_pagesize takes a NULL handle")
        return 4096
    if cmd in _VARBUF:
        if deny:
            raise XenError(EPERM)
        answer = _VARBUF[cmd]()
        if cmd == abi.XENVER_build_id and not answer:
            raise XenError(ENODATA, "Xen was linked without a build id")
        return _varbuf(hv, answer, arg)
    replies = {
        abi.XENVER_extraversion: lambda: _text(XEN_EXTRA, abi.XEN_EXTRAVERSION_LEN),
        abi.XENVER_capabilities: lambda: _text(CAPABILITIES, abi.XEN_CAPABILITIES_INFO_LEN),
        abi.XENVER_changeset: lambda: _text(CHANGESET, abi.XEN_CHANGESET_INFO_LEN),
        # a denied caller gets "<denied>" and its NUL, nothing more
        abi.XENVER_commandline: lambda: (
            _text(DENIED, len(DENIED) + 1) if deny else _text(COMMANDLINE, abi.XEN_COMMANDLINE_LEN)
        ),
        abi.XENVER_compile_info: lambda: build(
            abi.xen_compile_info,
            {
                k: v.ljust(n, b"\0")
                for (k, v), n in zip(COMPILE_INFO.items(), (64, 16, 32, 32), strict=True)
            },
        ),
        # release builds tell a 64-bit PV caller where Xen's range starts, others 0
        abi.XENVER_platform_parameters: lambda: build(
            abi.xen_platform_parameters,
            dict(virt_start=0 if current.is_hvm else HYPERVISOR_VIRT_START),
        ),
        abi.XENVER_guest_handle: lambda: current.handle,
    }
    reply = replies.get(cmd)
    if reply is None:
        raise XenError(ENOSYS)
    hv.caller_memory.copy_to_guest(arg, reply())
    return 0


_VARBUF: dict[int, Callable[[], bytes]] = {
    abi.XENVER_build_id: lambda: BUILD_ID,
    abi.XENVER_extraversion2: lambda: XEN_EXTRA.encode(),
    abi.XENVER_capabilities2: lambda: CAPABILITIES.encode(),
    abi.XENVER_changeset2: lambda: CHANGESET.encode(),
    abi.XENVER_commandline2: lambda: COMMANDLINE.encode(),
}


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

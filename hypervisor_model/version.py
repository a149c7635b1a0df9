"""``__HYPERVISOR_xen_version``: which Xen this is (common/kernel.c do_xen_version).

The emulated host reports itself as Xen 4.22.0, the release the model follows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hypervisor_model.errors import XenError
from hypervisor_model.guest_memory import build
from hypervisor_model.public import version as abi
from hypervisor_model.public.errno import ENOSYS

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


def do_xen_version(hv: Hypervisor, current: Domain, cmd: int, arg: int, *_: int) -> int:
    if cmd == abi.XENVER_version:
        return XEN_MAJOR << 16 | XEN_MINOR
    if cmd == abi.XENVER_pagesize:
        return 4096
    replies = {
        abi.XENVER_extraversion: lambda: _text(XEN_EXTRA, abi.XEN_EXTRAVERSION_LEN),
        abi.XENVER_capabilities: lambda: _text(CAPABILITIES, abi.XEN_CAPABILITIES_INFO_LEN),
        abi.XENVER_changeset: lambda: _text(CHANGESET, abi.XEN_CHANGESET_INFO_LEN),
        abi.XENVER_commandline: lambda: _text(COMMANDLINE, abi.XEN_COMMANDLINE_LEN),
        abi.XENVER_compile_info: lambda: build(
            abi.xen_compile_info,
            {
                k: v.ljust(n, b"\0")
                for (k, v), n in zip(COMPILE_INFO.items(), (64, 16, 32, 32), strict=True)
            },
        ),
        abi.XENVER_platform_parameters: lambda: build(
            abi.xen_platform_parameters, dict(virt_start=HYPERVISOR_VIRT_START)
        ),
    }
    reply = replies.get(cmd)
    if reply is None:
        raise XenError(ENOSYS)
    hv.caller_memory.copy_to_guest(arg, reply())
    return 0

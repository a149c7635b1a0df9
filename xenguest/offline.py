"""Page offlining as libxenguest offers it (xg_offline_page.c): offline, online and query
machine frames, one status word per frame."""

from __future__ import annotations

import ctypes

from hypervisor_model.public import sysctl
from hypervisor_model.public.errno import EINVAL
from xenctrl import XenError
from xenctrl.handle import Bounce, check, do_sysctl, xc_interface
from xenctrl.trace import current_call
from xenguest.dom import traced


def _page_offline_op(xch: xc_interface, cmd: int, start: int, end: int) -> list[int]:
    """The sysctl over ``[start, end]``; returns the status words (raises on failure,
    with ``.status`` holding them: entries Xen did not reach read 0x01010101)."""
    if end < start:
        raise XenError(EINVAL, current_call(), "end before start")
    count = end - start + 1
    status = (ctypes.c_uint32 * count)()
    with Bounce(xch, status, count * 4, "both") as buf:
        rc, _ = do_sysctl(
            xch,
            sysctl.XEN_SYSCTL_page_offline_op,
            sysctl.xen_sysctl_page_offline_op,
            cmd=cmd,
            start=start,
            end=end,
            status=buf.addr,
        )
    words = list(status)
    try:
        check(rc)
    except XenError as e:
        e.status = words  # type: ignore[attr-defined]
        raise
    return words


@traced
def xc_mark_page_offline(xch: xc_interface, start: int, end: int) -> list[int]:
    """Offline frames ``start..end``: free ones at once, used ones when their owner frees
    them. Returns one PG_OFFLINE_* status word per frame."""
    return _page_offline_op(xch, sysctl.sysctl_page_offline, start, end)


@traced
def xc_mark_page_online(xch: xc_interface, start: int, end: int) -> list[int]:
    return _page_offline_op(xch, sysctl.sysctl_page_online, start, end)


@traced
def xc_query_page_offline_status(xch: xc_interface, start: int, end: int) -> list[int]:
    return _page_offline_op(xch, sysctl.sysctl_query_page_offline, start, end)

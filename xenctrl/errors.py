"""How libxenctrl calls fail: :class:`XenError`, an ``OSError`` carrying Xen's errno.

Where C returns -1 and sets ``errno``, the Python call raises; the message names the call,
so a traceback reads like libxc's PERROR lines.
"""

from __future__ import annotations

import os

from hypervisor_model.public.errno import errorcode


class XenError(OSError):
    """A failed ``xc_*`` call. ``errno`` is Xen's; ``call`` the function that failed."""

    errno: int

    def __init__(self, errno: int, call: str, detail: str = "") -> None:
        name = errorcode.get(errno, str(errno))
        text = f"{call}: {name} ({os.strerror(errno)})" + (f": {detail}" if detail else "")
        super().__init__(errno, text)
        self.call = call
        self.nr_entries: int | None = None  # xc_domain_claim_memory: the count Xen reported
        # xc_domain_getvnuma: (nr_vnodes, nr_vmemranges, nr_vcpus) as Xen left them
        self.counts: tuple[int, int, int] | None = None

    def __str__(self) -> str:
        return str(self.strerror)

"""libxenctrl's populate-on-demand calls (xc_domain.c): xc_domain_set_pod_target and
xc_domain_get_pod_target return (tot_pages, pod_cache_pages, pod_entries) as Xen copies
them back; xc_domain_populate_physmap with XENMEMF_populate_on_demand marks entries."""

from __future__ import annotations

import ctypes
import errno

import pytest

import xenctrl
from hypervisor_model.public.memory import XENMEMF_populate_on_demand
from xenctrl import XenError, xc_interface


def test_target_then_entries(xch: xc_interface) -> None:
    """Target 600 on a new HVM guest: one superpage and 88 single pages in the cache; two
    order-9 extents marked PoD: 1024 entries, nothing allocated."""
    domid = xenctrl.xc_domain_create(xch)
    xenctrl.xc_domain_setmaxmem(xch, domid, 4096)  # 1024 pages
    assert xenctrl.xc_domain_set_pod_target(xch, domid, 600) == (600, 600, 0)
    gfns = (ctypes.c_uint64 * 2)(0, 512)
    flags = XENMEMF_populate_on_demand
    assert xenctrl.xc_domain_populate_physmap(xch, domid, 2, 9, flags, gfns) == 2
    assert list(gfns) == [0, 512]  # nothing written back
    assert xenctrl.xc_domain_get_pod_target(xch, domid) == (600, 600, 1024)


@pytest.mark.parametrize(
    ("hvm", "target", "expected"),
    [(False, 16, errno.EINVAL), (True, 1025, errno.EINVAL)],
    ids=["pv", "above-max"],
)
def test_errors(xch: xc_interface, hvm: bool, target: int, expected: int) -> None:
    domid = xenctrl.xc_domain_create(xch, config=xenctrl.default_createdomain(hvm))
    xenctrl.xc_domain_setmaxmem(xch, domid, 4096)
    with pytest.raises(XenError) as e:
        xenctrl.xc_domain_set_pod_target(xch, domid, target)
    assert e.value.errno == expected

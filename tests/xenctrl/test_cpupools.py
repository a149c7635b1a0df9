"""xenctrl's CPU pool calls (xc_cpupool.c) and xc_pcitopoinfo, xc_get_cpumap_size
(xc_misc.c) on the default host: 8 CPUs in Pool-0 under credit2, no PCI devices."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import xenctrl
from hypervisor_model.public import sysctl
from hypervisor_model.public.errno import EBUSY, EEXIST, ENOENT
from xenctrl import XenError, xc_interface


def test_the_cpumap_size_is_max_cpus_in_bytes(xch: xc_interface) -> None:
    """physinfo max_cpu_id 7: 8 CPUs, one byte."""
    assert (xenctrl.xc_get_max_cpus(xch), xenctrl.xc_get_cpumap_size(xch)) == (8, 1)


def test_listing_the_pools_as_libxl_does_finds_pool_0_only(xch: xc_interface) -> None:
    """libxl_list_cpupool: ask from id 0, then from the id after each one, until ENOENT."""
    xenctrl.xc_domain_create(xch)
    pools, poolid = [], 0
    while True:
        try:
            info = xenctrl.xc_cpupool_getinfo(xch, poolid)
        except XenError as e:
            assert e.errno == ENOENT
            break
        pools.append(info)
        poolid = info.cpupool_id + 1
    assert pools == [xenctrl.xc_cpupoolinfo_t(0, sysctl.XEN_SCHEDULER_CREDIT2, 2, b"\xff")]
    assert xenctrl.xc_cpupool_freeinfo(xch) == b"\x00"


@pytest.mark.parametrize(
    ("call", "errno"),
    [
        (lambda x: xenctrl.xc_cpupool_create(x, 0, sysctl.XEN_SCHEDULER_CREDIT2), EEXIST),
        (lambda x: xenctrl.xc_cpupool_destroy(x, 0), EBUSY),
        (lambda x: xenctrl.xc_cpupool_movedomain(x, 5, 1), ENOENT),
    ],
    ids=["create-0", "destroy-0", "move-to-pool-5"],
)
def test_pool_changes_raise_xens_errno(
    xch: xc_interface, call: Callable[[xc_interface], object], errno: int
) -> None:
    xenctrl.xc_domain_create(xch)
    with pytest.raises(XenError) as e:
        call(xch)
    assert e.value.errno == errno


def test_moving_a_domain_to_pool_0_is_done(xch: xc_interface) -> None:
    xenctrl.xc_cpupool_movedomain(xch, 0, xenctrl.xc_domain_create(xch))


def test_pcitopoinfo_of_unknown_devices(xch: xc_interface) -> None:
    devs = [(0, 0, 0x10), (0, 3, 0), (1, 0xFF, 0xFF)]
    assert xenctrl.xc_pcitopoinfo(xch, devs) == [sysctl.XEN_INVALID_DEV] * 3
    assert xenctrl.xc_pcitopoinfo(xch, []) == []

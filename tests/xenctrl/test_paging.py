"""libxenctrl's paging-pool calls (xc_domain.c): xc_shadow_control with GET/SET_ALLOCATION
(the pool in MiB, mb written back) and xc_get/set_paging_mempool_size (bytes), which libxl
uses to size an HVM guest's pool from shadow_memkb."""

from __future__ import annotations

import errno

import pytest

import xenctrl
from hypervisor_model.public.domctl import (
    XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION,
    XEN_DOMCTL_SHADOW_OP_OFF,
    XEN_DOMCTL_SHADOW_OP_SET_ALLOCATION,
)
from xenctrl import XenError, xc_interface


def hvm_with_vcpu(xch: xc_interface) -> int:
    domid = xenctrl.xc_domain_create(xch)
    xenctrl.xc_domain_max_vcpus(xch, domid, 1)
    return domid


def test_shadow_control_gets_and_sets_the_pool_in_mib(xch: xc_interface) -> None:
    """A new HVM guest's HAP pool is 256 pages = 1 MiB; SET 10 answers the new size, 10."""
    domid = hvm_with_vcpu(xch)
    assert xenctrl.xc_shadow_control(xch, domid, XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION, 0) == 1
    assert xenctrl.xc_shadow_control(xch, domid, XEN_DOMCTL_SHADOW_OP_SET_ALLOCATION, 10) == 10
    assert xenctrl.xc_get_paging_mempool_size(xch, domid) == 10 << 20
    # C's NULL mb: nothing is handed back
    assert xenctrl.xc_shadow_control(xch, domid, XEN_DOMCTL_SHADOW_OP_OFF) is None


def test_paging_mempool_size_in_bytes(xch: xc_interface) -> None:
    """libxl's shadow_memkb for 2 vCPUs and 2048 MiB, 4 * (256 * 2 + 2048) = 10240 KiB."""
    domid = hvm_with_vcpu(xch)
    xenctrl.xc_set_paging_mempool_size(xch, domid, 10240 << 10)
    assert xenctrl.xc_get_paging_mempool_size(xch, domid) == 10240 << 10


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda x, d: xenctrl.xc_get_paging_mempool_size(x, d), errno.EOPNOTSUPP),
        (lambda x, d: xenctrl.xc_set_paging_mempool_size(x, d, 4096), errno.EOPNOTSUPP),
        # no vCPUs yet: paging_domctl wants vcpu[0]
        (
            lambda x, d: xenctrl.xc_shadow_control(x, d, XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION, 0),
            errno.EINVAL,
        ),
    ],
    ids=["get-pv", "set-pv", "shadow-op-without-vcpus"],
)
def test_errors_raise_xen_error(xch: xc_interface, call, expected: int) -> None:  # type: ignore[no-untyped-def]
    domid = xenctrl.xc_domain_create(xch, config=xenctrl.default_createdomain(hvm=False))
    with pytest.raises(XenError) as e:
        call(xch, domid)
    assert e.value.errno == expected

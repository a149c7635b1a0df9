"""xc_version and master's variable-length version calls (tools/libs/ctrl/xc_version.c):
what ``xl info`` reads, as dom0 and as a domU (dummy XSM: the command line and the build
id are the control domain's)."""

from __future__ import annotations

import pytest

import xenctrl
from hypervisor_model import Hypervisor, version
from hypervisor_model.public import version as abi
from hypervisor_model.public.errno import ENODATA, EPERM
from hypervisor_model.public.releases import MASTER
from xenctrl import XenError, xc_interface


def test_the_variable_length_strings_are_the_fixed_ones_without_padding(
    xch: xc_interface,
) -> None:
    assert xenctrl.xc_xenver_extraversion(xch) == MASTER.extraversion
    assert xenctrl.xc_xenver_capabilities(xch) == MASTER.capabilities
    assert xenctrl.xc_xenver_changeset(xch) == MASTER.changeset
    assert xenctrl.xc_xenver_commandline(xch) == version.COMMANDLINE
    assert xenctrl.xc_version(xch, abi.XENVER_commandline) == version.COMMANDLINE.encode()


def test_the_model_has_no_build_id(xch: xc_interface) -> None:
    """xenver_varbuf_op: a Xen linked without a build id answers ENODATA."""
    with pytest.raises(XenError) as e:
        xenctrl.xc_xenver_buildid(xch)
    assert e.value.errno == ENODATA


def test_a_domu_reads_denied_or_gets_eperm(xen_host: Hypervisor, xch: xc_interface) -> None:
    domu = xenctrl.xc_interface_open(xen_host, xenctrl.xc_domain_create(xch))
    assert xenctrl.xc_version(domu, abi.XENVER_commandline) == b"<denied>"
    for call in (xenctrl.xc_xenver_commandline, xenctrl.xc_xenver_buildid):
        with pytest.raises(XenError) as e:
            call(domu)
        assert e.value.errno == EPERM
    assert xenctrl.xc_xenver_extraversion(domu) == MASTER.extraversion


def test_guest_handle_is_the_callers_16_bytes(xen_host: Hypervisor, xch: xc_interface) -> None:
    config = xenctrl.default_createdomain()
    config.handle[:] = list(range(16))
    domu = xenctrl.xc_interface_open(xen_host, xenctrl.xc_domain_create(xch, config=config))
    assert xenctrl.xc_version(xch, abi.XENVER_guest_handle) == bytes(16)
    assert xenctrl.xc_version(domu, abi.XENVER_guest_handle) == bytes(range(16))


def test_features_are_submap_0_of_the_callers_kind(xen_host: Hypervisor, xch: xc_interface) -> None:
    """xc_version bounces xen_feature_info out only, so Xen reads submap_idx 0 from the
    zeroed buffer. On master, dom0 (PV): 0x1E28E0; xc_domain_create's default domU (HVM,
    every emulator but vPCI, so with PIRQ): 0x1D2705 (bits worked out in test_version)."""
    domu = xenctrl.xc_interface_open(xen_host, xenctrl.xc_domain_create(xch))
    fi = xenctrl.xc_version(xch, abi.XENVER_get_features)
    assert (fi.submap_idx, fi.submap) == (0, 0x1E28E0)
    assert xenctrl.xc_version(domu, abi.XENVER_get_features).submap == 0x1D2705

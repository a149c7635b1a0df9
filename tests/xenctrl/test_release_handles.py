"""libxenctrl on hosts of two Xen releases: a handle learns the host's release when it is
opened (XENVER_version) and speaks it, or is told one and speaks that whatever the host.

A real libxenctrl is built for one release; one built for 4.17 on a master host (or the
other way round) gets EACCES on every domctl and sysctl (do_domctl / do_sysctl). The
numbers below are the plugin's two 4096 MiB nodes: 1 MiB = 256 pages.
"""

from __future__ import annotations

import errno

import pytest

import hypervisor_model
import xenctrl
from hypervisor_model.public.releases import MASTER, XEN_4_17, version_mismatch
from hypervisor_model.public.xen import DOMID_ANY, HYPERVISOR_domctl, HYPERVISOR_sysctl
from xenctrl.api import Xenctrl
from xenctrl.handle import xc_interface

pytest_plugins = ["pytester"]
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")


@pytest.mark.parametrize("xen", ["master", "4.17"])
def test_a_handle_learns_the_hosts_release(xen: str) -> None:
    hv = hypervisor_model.boot(nodes=[1024], xen=xen)
    with xenctrl.xc_interface_open(hv) as xch:
        assert xch.release is hv.release
        assert xenctrl.xc_physinfo(xch).total_pages == 1024 * 256


@pytest.mark.xen_host(xen="4.17")
def test_the_plugin_boots_a_417_host(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface
) -> None:
    assert xen_host.release is XEN_4_17 and xch.release is XEN_4_17
    assert xenctrl.xc_version(xch, 0) == 4 << 16 | 17


@pytest.mark.parametrize(("host", "handle"), [("master", "4.17"), ("4.17", "master")])
def test_a_handle_of_another_release_gets_eacces(host: str, handle: str) -> None:
    """Every domctl and sysctl is refused before anything happens; memory_op and xen_version
    carry no interface version and work."""
    hv = hypervisor_model.boot(nodes=[1024, 1024], xen=host)
    with xenctrl.xc_interface_open(hv, xen=handle) as xch:
        assert xch.release.name == handle
        for call in (
            lambda: xenctrl.xc_physinfo(xch),
            lambda: xenctrl.xc_domain_create(xch),
            lambda: xenctrl.xc_domain_getinfo_single(xch, 0),
        ):
            with pytest.raises(xenctrl.XenError) as err:
                call()
            assert err.value.errno == errno.EACCES
        assert xenctrl.xc_maximum_ram_page(xch) == 2 * 1024 * 256
    assert [d.domain_id for d in hv.domain_list()] == [0]
    line = version_mismatch(hv.release, HYPERVISOR_domctl, xch.release.domctl_interface_version)
    assert (
        line is not None and f"make a {handle} host with `xlemu host init --xen {handle}`" in line
    )


def test_the_417_handle_sends_417s_createdomain() -> None:
    """DOMID_ANY does not exist in 4.17: the handle asks with 0, in the 64-byte layout."""
    hv = hypervisor_model.boot(nodes=[1024], xen="4.17")
    with xenctrl.xc_interface_open(hv) as xch, xenctrl.Trace() as t:
        assert xenctrl.xc_domain_create(xch) == 1
    (record,) = t.records
    (call,) = record.hypercalls()
    assert call.structure == "xen_domctl_createdomain_4_17"
    assert call.decoded_in["domain"] == 0 and call.decoded_in["interface_version"] == 0x15
    assert call.decoded_out["domain"] == 1


def test_a_pv_config_gets_oos_off_back_through_a_417_handle() -> None:
    """The copy-back lands in the caller's (master-shaped) config, altp2m left as it was."""
    hv = hypervisor_model.boot(nodes=[1024], xen="4.17")
    config = xenctrl.default_createdomain(hvm=False)
    with xenctrl.xc_interface_open(hv) as xch:
        assert xenctrl.xc_domain_create(xch, DOMID_ANY, config) == 1
    assert config.flags == 1 << 3  # XEN_DOMCTL_CDF_oos_off
    assert (config.arch.emulation_flags, config.max_vcpus, config.grant_opts) == (0, 1, 2)


def test_altp2m_cannot_be_asked_of_417() -> None:
    hv = hypervisor_model.boot(nodes=[1024], xen="4.17")
    config = xenctrl.default_createdomain()
    config.altp2m.opts = 1
    with xenctrl.xc_interface_open(hv) as xch, pytest.raises(ValueError, match="no altp2m"):
        xenctrl.xc_domain_create(xch, DOMID_ANY, config)
    assert [d.domain_id for d in hv.domain_list()] == [0]


def test_getinfo_single_on_417_is_exact_although_xen_answers_the_next() -> None:
    """Domains 0, 1, 3: Xen 4.17 answers a question about 2 with domain 3; the library checks
    the answer, as libxl 4.17 does, and reports ESRCH."""
    hv = hypervisor_model.boot(nodes=[1024], xen="4.17")
    with Xenctrl(hv) as ctl:
        assert [ctl.domain_create() for _ in range(3)] == [1, 2, 3]
        ctl.domain_destroy(2)
        with pytest.raises(xenctrl.XenError) as err:
            ctl.domain_getinfo(2)
        assert err.value.errno == errno.ESRCH
        assert "the next domain is d3" in str(err.value)
        assert ctl.domain_getinfo(3).domid == 3
        assert [i.domid for i in ctl.domain_getinfolist()] == [0, 1, 3]


@pytest.mark.parametrize("xen", ["master", "4.17"])
def test_claim_sets_through_the_api_on_each_release(xen: str) -> None:
    """A guest allowed 1025 MiB (262400 pages) claims 1024 pages on node 1 and 256 anywhere:
    1280 outstanding; the empty set releases them."""
    hv = hypervisor_model.boot(nodes=[4096, 4096], xen=xen)
    with Xenctrl(hv) as ctl:
        domid = ctl.domain_create()
        ctl.domain_setmaxmem(domid, (1024 + 1) << 10)
        ctl.domain_claim_memory(domid, {1: 1024, 0x80000000: 256})
        assert ctl.domain_get_claims(domid) == {0x80000000: 256, 1: 1024}
        assert ctl.physinfo().outstanding_pages == 1280
        ctl.domain_claim_memory(domid, {})
        assert ctl.physinfo().outstanding_pages == 0


def test_the_pytest_option_sets_every_hosts_release(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        def test_default(xen_host, xch):
            assert (xen_host.release.name, xch.release.name) == ("4.17", "4.17")

        @pytest.mark.xen_host(xen="master")
        def test_own_choice(xen_host):
            assert xen_host.release.name == "master"
        """
    )
    pytester.runpytest("--xen", "4.17", *QUIET).assert_outcomes(passed=2)


def test_sysctl_version_mismatch_names_the_sysctl() -> None:
    line = version_mismatch(XEN_4_17, HYPERVISOR_sysctl, MASTER.sysctl_interface_version)
    assert line == (
        "the host speaks Xen 4.17.5 (sysctl 0x15); this program speaks 0x16: "
        "make a master host with `xlemu host init --xen master`"
    )

"""Xen's own claims test, ``tools/tests/mem-claim/test-mem-claim.c`` (master), ported to
xenctrl and run against emulated hosts.

The C program is kept function for function, statement for statement:

* its file-scope statics (``xch``, ``domid``, ``physinfo``, the ``create`` config and the
  failure count) are the fields of :class:`Statics`, made fresh for each run;
* ``fail(fmt, ...)`` counts a failure and prints, exactly as the C macro does, and
  ``return fail(...)`` ends :func:`run_tests` at the first failure as in C;
* ``rc = xc_foo(...); if ( rc ) return fail("...: %d - %s", errno, strerror(errno))``
  becomes a ``try``/``except XenError`` around the xenctrl call (xenctrl raises where libxc
  returns -1 and sets errno);
* :func:`run_tests` and :func:`main` are the C functions; ``main``'s return value is the
  process exit status (``!!nr_failures``).

The pytest tests ``test_run_tests`` and ``test_main`` run them: on each preset host the
test must pass, printing what the C program prints; on a host with too little memory
``main`` must report the failed claim and destroy the domain ``run_tests`` left behind.
Expected numbers: MB_PAGES(4) = 4 MiB / 4 KiB = 1024 pages and MB_PAGES(2) = 512; the
order-9 extent (2 MiB) redeems 512 of the legacy claim's 1024 (fact sheet 2.4), and
destroying the domain releases the other 512 (domain_kill, fact sheet 2.2).
"""

from __future__ import annotations

import os

import pytest

import hypervisor_model
from hypervisor_model.public.domctl import (
    XEN_X86_EMU_LAPIC,
    XEN_DOMCTL_CDF_hap,
    XEN_DOMCTL_CDF_hvm,
)
from hypervisor_model.public.sysctl import (
    XEN_SYSCTL_PHYSCAP_hap,
    XEN_SYSCTL_PHYSCAP_hvm,
    XEN_SYSCTL_PHYSCAP_shadow,
)
from xenctrl import (
    DOMID_ANY,
    XC_PAGE_SIZE,
    XenError,
    xc_domain_claim_pages,
    xc_domain_create,
    xc_domain_destroy,
    xc_domain_getinfolist,
    xc_domain_populate_physmap_exact,
    xc_domain_setmaxmem,
    xc_interface,
    xc_interface_open,
    xc_physinfo,
    xc_physinfo_t,
    xen_domctl_createdomain,
    xen_pfn_t,
)


def XEN_DOMCTL_GRANT_version(v: int) -> int:  # public/domctl.h
    return v & 0xF


def MB(x: int) -> int:
    return x << 20


def MB_PAGES(x: int) -> int:
    return MB(x) // XC_PAGE_SIZE


def strerror(errno: int | None) -> str:
    return os.strerror(errno or 0)


class Statics:
    """The C file's statics: ``xch``, ``domid = DOMID_ANY``, ``physinfo``, ``create``."""

    def __init__(self) -> None:
        self.nr_failures = 0
        self.xch: xc_interface
        self.domid = DOMID_ANY
        self.physinfo = xc_physinfo_t()
        self.create = xen_domctl_createdomain(
            flags=XEN_DOMCTL_CDF_hvm | XEN_DOMCTL_CDF_hap,
            max_vcpus=1,
            max_grant_frames=1,
            grant_opts=XEN_DOMCTL_GRANT_version(1),
        )
        self.create.arch.emulation_flags = XEN_X86_EMU_LAPIC


def fail(s: Statics, text: str) -> None:
    s.nr_failures += 1
    print(text)


def run_tests(s: Statics) -> None:
    # Check that the system is quiescent.  Outstanding claims is a global field.
    try:
        s.physinfo = xc_physinfo(s.xch)
    except XenError as e:
        return fail(s, f"Failed to obtain physinfo: {e.errno} - {strerror(e.errno)}")

    print(
        f"Free pages: {s.physinfo.free_pages}, "
        f"Oustanding claims: {s.physinfo.outstanding_pages}"  # sic, as in the C
    )

    if s.physinfo.outstanding_pages:
        return fail(s, "  Test needs running on a quiescent system")

    # We want any arbitrary domain.  Start with HVM/HAP, falling back to HVM/Shadow and
    # then to PV.
    if not (s.physinfo.capabilities & XEN_SYSCTL_PHYSCAP_hap):
        s.create.flags &= ~XEN_DOMCTL_CDF_hap

    if not (s.physinfo.capabilities & (XEN_SYSCTL_PHYSCAP_hap | XEN_SYSCTL_PHYSCAP_shadow)) or (
        not (s.physinfo.capabilities & XEN_SYSCTL_PHYSCAP_hvm)
    ):
        s.create.flags &= ~XEN_DOMCTL_CDF_hvm
        s.create.arch.emulation_flags = 0

    try:
        s.domid = xc_domain_create(s.xch, s.domid, s.create)
    except XenError as e:
        return fail(s, f"  Domain create failure: {e.errno} - {strerror(e.errno)}")

    try:
        xc_domain_setmaxmem(s.xch, s.domid, -1)
    except XenError as e:
        return fail(s, f"  Failed to set maxmem: {e.errno} - {strerror(e.errno)}")

    print(f"  Created d{s.domid}")

    # Creating a domain shouldn't change the claim.  Check it's still 0.
    try:
        s.physinfo = xc_physinfo(s.xch)
    except XenError as e:
        return fail(s, f"  Failed to obtain physinfo: {e.errno} - {strerror(e.errno)}")

    if s.physinfo.outstanding_pages:
        return fail(s, f"  Unexpected outstanding claim of {s.physinfo.outstanding_pages} pages")

    # Set a claim for 4M.  This should be the only claim in the system, and show up
    # globally.
    try:
        xc_domain_claim_pages(s.xch, s.domid, MB_PAGES(4))
    except XenError as e:
        return fail(s, f"  Failed to claim 4M of RAM: {e.errno} - {strerror(e.errno)}")

    try:
        s.physinfo = xc_physinfo(s.xch)
    except XenError as e:
        return fail(s, f"  Failed to obtain physinfo: {e.errno} - {strerror(e.errno)}")

    if s.physinfo.outstanding_pages != MB_PAGES(4):
        return fail(s, f"  Expected claim to be 4M, got {s.physinfo.outstanding_pages} pages")

    # Allocate 2M of RAM to the domain.  This should be deducted from global claim.
    ram = (xen_pfn_t * 1)(0)
    try:
        xc_domain_populate_physmap_exact(s.xch, s.domid, len(ram), 9, 0, ram)  # Order 2M
    except XenError as e:
        return fail(s, f"  Failed to populate physmap domain: {e.errno} - {strerror(e.errno)}")

    try:
        s.physinfo = xc_physinfo(s.xch)
    except XenError as e:
        return fail(s, f"  Failed to obtain physinfo: {e.errno} - {strerror(e.errno)}")

    if s.physinfo.outstanding_pages != MB_PAGES(2):
        return fail(s, f"  Expected claim to be 2M, got {s.physinfo.outstanding_pages} pages")

    # Destroying the domain should release the outstanding 2M claim.
    error = None
    try:
        xc_domain_destroy(s.xch, s.domid)
    except XenError as e:
        error = e

    # Cancel the cleanup path, even in the case of an error.
    s.domid = DOMID_ANY

    if error is not None:
        return fail(s, f"  Failed to destroy domain: {error.errno} - {strerror(error.errno)}")

    try:
        s.physinfo = xc_physinfo(s.xch)
    except XenError as e:
        return fail(s, f"  Failed to obtain physinfo: {e.errno} - {strerror(e.errno)}")

    if s.physinfo.outstanding_pages:
        return fail(s, f"  Expected no outstanding claim, got {s.physinfo.outstanding_pages} pages")
    return None


def main(hv: hypervisor_model.Hypervisor, s: Statics | None = None) -> int:
    s = s if s is not None else Statics()
    print("Memory claims tests")

    s.xch = xc_interface_open(hv)  # cannot fail here: no err(1, "xc_interface_open")

    run_tests(s)

    if s.domid != DOMID_ANY:
        try:
            xc_domain_destroy(s.xch, s.domid)
        except XenError as e:
            fail(s, f"  Failed to destroy domain: {e.errno} - {strerror(e.errno)}")

    return int(bool(s.nr_failures))


# -- the tests --------------------------------------------------------------------------------

PRESETS = ["one-node", "two-nodes", "four-nodes-1tib"]
FREE_PAGES = {  # every node back to back from MFN 0, which the allocator never gets; dom0's
    # structure and shared-info pages are Xen's, and so are 4 pages of every node but the
    # first (init_node_heap)
    "one-node": 8192 * 256 - 1 - 2,
    "two-nodes": 2 * 4096 * 256 - 1 - 2 - 4,
    "four-nodes-1tib": 4 * 262144 * 256 - 1 - 2 - 3 * 4,
}


def domids(hv: hypervisor_model.Hypervisor) -> list[int]:
    with xc_interface_open(hv) as xch:
        return [info.domain for info in xc_domain_getinfolist(xch, 0, 16)]


@pytest.mark.parametrize("xen_host", PRESETS, indirect=True)
def test_run_tests(
    xen_host: hypervisor_model.Hypervisor,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """run_tests() passes, printing what the C prints, and leaves no domain behind."""
    s = Statics()
    s.xch = xc_interface_open(xen_host)
    run_tests(s)
    free = FREE_PAGES[request.node.callspec.params["xen_host"]]
    assert capsys.readouterr().out == f"Free pages: {free}, Oustanding claims: 0\n  Created d1\n"
    assert (s.nr_failures, s.domid) == (0, DOMID_ANY)
    assert domids(xen_host) == [0]


@pytest.mark.parametrize("xen_host", PRESETS, indirect=True)
def test_main(xen_host: hypervisor_model.Hypervisor) -> None:
    """The program's exit status on a quiescent host: 0."""
    assert main(xen_host) == 0


@pytest.mark.xen_host(nodes=[2])
def test_main_cleans_up_after_a_failed_claim(
    xen_host: hypervisor_model.Hypervisor, capsys: pytest.CaptureFixture[str]
) -> None:
    """2 MiB host: 512 pages less MFN 0 and dom0's two = 509 free, so claiming 1024 is ENOMEM
    (12); run_tests returns with d1 alive, and main() destroys it and exits 1."""
    s = Statics()
    assert main(xen_host, s) == 1
    assert capsys.readouterr().out == (
        "Memory claims tests\n"
        "Free pages: 509, Oustanding claims: 0\n"
        "  Created d1\n"
        f"  Failed to claim 4M of RAM: 12 - {strerror(12)}\n"
    )
    assert (s.nr_failures, domids(xen_host)) == (1, [0])


def test_run_tests_needs_a_quiescent_host(
    xen_host: hypervisor_model.Hypervisor, xch: xc_interface, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another domain's claim: run_tests stops before creating anything."""
    other = xc_domain_create(xch)
    xc_domain_setmaxmem(xch, other, -1)
    xc_domain_claim_pages(xch, other, 5)
    assert main(xen_host) == 1
    out = capsys.readouterr().out
    assert out.endswith("Oustanding claims: 5\n  Test needs running on a quiescent system\n")
    assert domids(xen_host) == [0, other]

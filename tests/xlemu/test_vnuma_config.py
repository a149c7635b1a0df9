"""vNUMA layouts as xl reads them (xl_parse.c parse_vnuma_config: each vnode's vcpus= and
vdistances=), as libxl checks them (libxl__vnuma_config_check) and gives them to Xen
(set_vnuma_info: XEN_DOMCTL_setvnumainfo), read back with XENMEM_get_vnumainfo and
Xen's 'u' dump. The default host has 2 nodes and 8 CPUs."""

from __future__ import annotations

import ctypes

import pytest
from xenhost.xenstore import XsHandle
from xl_helpers import Xl
from xlemu.create import create_domain
from xlemu.state import new_xenstore
from xlemu.toolstack import Toolstack, XlConf

from hypervisor_model import Hypervisor, make_host
from xenctrl import domain as xcd
from xenctrl import xen_vmemrange_t

TWO = 'vnuma = [ ["pnode=0", "size=512", "vcpus=0-1", "vdistances=10,20"],\n' + (
    '          ["pnode=1", "size=512", "vcpus=2-3", "vdistances=20,10"] ]\n'
)


def hvm(name: str, vnuma: str, *extra: str) -> str:
    return "\n".join([f'name = "{name}"', 'type = "hvm"', *extra, vnuma])


def test_the_layout_reaches_xen(xl: Xl) -> None:
    """Two vnodes of 512 MiB with vCPUs 0-1 and 2-3 (xl counts 4: the guest's vCPUs).
    vnuma_hvm: vnode 0 = 512 - 8 MiB video = [0, 0x1F800000), vnode 1 follows up to
    0x3F800000 (all below the MMIO hole). The 'u' dump shows it as Xen holds it."""
    xl.ok("create", "-q", xl.config("v.cfg", hvm("v", TWO)))
    assert xl.ok("list", "v").splitlines()[1].split()[3] == "4"
    xl.ok("debug-keys", "u")
    lines = [line.removeprefix("(XEN) ") for line in xl.ok("dmesg").splitlines()]
    at = lines.index("     2 vnodes, 4 vcpus, guest physical layout:")
    assert lines[at + 1 : at + 5] == [
        "         0: pnode   0, vcpus 0-1 ",
        "           0000000000000000 - 000000001f800000",
        "         1: pnode   1, vcpus 2-3",
        "           000000001f800000 - 000000003f800000",
    ]


def test_distances_and_vcpus_as_xen_returns_them() -> None:
    """XENMEMF_get_vnumainfo of the guest above: its ranges, its distances row by row, each
    vCPU's vnode; a vnode without vdistances= has distance 0 to every vnode (xl's calloc)."""
    hv = Hypervisor(make_host([4096, 4096], cpus_per_node=4, dom0_memory=512))
    ts = Toolstack(hv, XsHandle.local(new_xenstore()), XlConf())  # type: ignore[arg-type]
    one = 'vnuma = [ ["pnode=1", "size=512", "vcpus=0"], ["pnode=0", "size=512", "vcpus=1"] ]'
    for name, vnuma in (("v", TWO), ("w", one)):
        create_domain(ts, "/dev/null", [f'name="{name}"', 'type="hvm"', vnuma], paused=False)
    ranges = (xen_vmemrange_t * 2)()
    distances = (ctypes.c_uint * 4)()
    vcpus = (ctypes.c_uint * 4)()
    assert xcd.xc_domain_getvnuma(ts.xch, 1, 2, 2, 4, ranges, distances, vcpus) == (2, 2, 4)
    assert [(r.start, r.end, r.nid) for r in ranges] == [
        (0, 0x1F800000, 0),
        (0x1F800000, 0x3F800000, 1),
    ]
    assert (list(distances), list(vcpus)) == ([10, 20, 20, 10], [0, 0, 1, 1])
    assert xcd.xc_domain_getvnuma(ts.xch, 2, 2, 2, 4, ranges, distances, vcpus) == (2, 2, 2)
    assert (list(distances), list(vcpus[:2])) == ([0, 0, 0, 0], [0, 1])


@pytest.mark.parametrize(
    ("extra", "vnuma", "line"),
    [
        # parse_vnuma_config: maxvcpus= must be the vCPUs the vnodes name (4)
        (["maxvcpus = 2"], TWO, "xl: vnuma vcpus and maxvcpus= mismatch"),
        # without maxvcpus= they may not outnumber the host's 8 CPUs
        (
            [],
            'vnuma = [ ["pnode=0", "size=512", "vcpus=0-8"] ]',
            "xl: vnuma specifies more vcpus than pcpus, use maxvcpus= to override this check.",
        ),
        # parse_config_data: 4 named, vcpus = 6
        (["vcpus = 6"], TWO, "xl: maxvcpus < vcpus"),
        (
            [],
            'vnuma = [ ["pnode=0", "size=512", "vcpus=0", "vdistances=ten"] ]',
            'xl: failed to convert "ten" to number',
        ),
        # xl would ignore a malformed range (parse_range's result is unchecked); refused here
        (
            [],
            'vnuma = [ ["pnode=0", "size=512", "vcpus=3-1"] ]',
            "xl: vnuma: invalid vcpus range: '3-1'",
        ),
    ],
    ids=["maxvcpus-mismatch", "more-than-pcpus", "maxvcpus-below-vcpus", "distance", "range"],
)
def test_xl_refuses_before_making_a_domain(xl: Xl, extra: list[str], vnuma: str, line: str) -> None:
    run = xl("create", "-q", xl.config("v.cfg", hvm("v", vnuma, *extra)))
    assert (run.code, run.out, run.err_lines) == (1, "", [line])
    assert xl.ok("list").count("\n") == 2  # header and Domain-0


@pytest.mark.parametrize(
    ("extra", "vnuma", "line"),
    [
        # no vnode names vCPU 0: xl leaves the count to vcpus = 1 (default)
        ([], 'vnuma = [ ["pnode=0", "size=512"] ]', "Vcpu 0 is not assigned to any vnode"),
        (
            ["maxvcpus = 2"],
            'vnuma = [ ["pnode=0", "size=256", "vcpus=1"], ["pnode=1", "size=256", "vcpus=1"] ]',
            "Vcpu 1 assigned more than once",
        ),
        (
            [],
            'vnuma = [ ["pnode=0", "size=256", "vcpus=0", "vdistances=30,20"],'
            ' ["pnode=1", "size=256", "vcpus=1"] ]',
            "Distance from 0 to 1 smaller than 0's local distance",
        ),
    ],
    ids=["unassigned", "twice", "distance"],
)
def test_libxl_refuses_after_making_the_domain(
    xl: Xl, extra: list[str], vnuma: str, line: str
) -> None:
    """libxl__vnuma_config_check runs in libxl__build_hvm, once domain 1 exists: its line,
    then "cannot (re-)build domain: -20" (ERROR_VNUMA_CONFIG_INVALID), exit 3; domain 1 is
    destroyed and its domid used up."""
    run = xl("create", "-q", xl.config("v.cfg", hvm("v", vnuma, *extra)))
    assert (run.code, run.out, run.err_lines) == (
        3,
        "",
        [f"libxl: error: {line}", "libxl: error: Domain 1:cannot (re-)build domain: -20"],
    )
    xl.ok("create", "-q", xl.config("s.cfg", 'name = "s"\nmemory = 64\n'))
    assert xl.ok("domid", "s") == "2\n"

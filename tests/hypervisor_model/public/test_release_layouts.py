"""Every modelled layout and number, checked against Xen 4.17's public headers.

The table holds what 4.17.7's headers say (x86_64, gcc; the same as Debian's libxen-dev
4.17.5+72 under /usr/include/xen). Each row is checked against the layout a 4.17 host
decodes with: where the release module carries its own layout (createdomain) that one,
else the one master uses, which proves the two releases identical there. When gcc and
Debian's headers are installed, the table itself is checked against them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import construct
import pytest
from test_layouts import offset_of

from hypervisor_model.public import domctl, memory, releases, sysctl, version, xen
from hypervisor_model.public.releases import MASTER, XEN_4_17, Release

# (struct, 4.17 size, 4.17 offsets); master's own numbers are pinned in test_layouts.py.
ABI_4_17: list[tuple[str, int, dict[str, int]]] = [
    ("xen_domctl", 144, {"cmd": 0, "interface_version": 4, "domain": 8, "u": 16}),
    ("xen_arch_domainconfig", 8, {"emulation_flags": 0, "misc_flags": 4}),
    (
        "xen_domctl_createdomain",
        64,  # master: 68, with altp2m {opts, nr} at 48
        {
            "ssidref": 0,
            "handle": 4,
            "flags": 20,
            "iommu_opts": 24,
            "max_vcpus": 28,
            "max_evtchn_port": 32,
            "max_grant_frames": 36,
            "max_maptrack_frames": 40,
            "grant_opts": 44,
            "vmtrace_size": 48,
            "cpupool_id": 52,
            "arch.emulation_flags": 56,
            "arch.misc_flags": 60,
        },
    ),
    (
        "xen_domctl_getdomaininfo",
        112,
        {
            "domain": 0,
            "flags": 4,
            "tot_pages": 8,
            "outstanding_pages": 24,
            "shared_info_frame": 48,
            "nr_online_vcpus": 64,
            "max_vcpu_id": 68,
            "handle": 76,
            "cpupool": 92,
            "gpaddr_bits": 96,
            "arch_config": 104,
        },
    ),
    ("xen_domctl_max_mem", 8, {"max_memkb": 0}),
    (
        "xen_domctl_shadow_op",
        40,
        {"op": 0, "mode": 4, "mb": 8, "dirty_bitmap": 16, "pages": 24, "stats": 32},
    ),
    ("xen_domctl_paging_mempool", 8, {"size": 0}),
    ("xen_domctl_max_vcpus", 4, {"max": 0}),
    ("xen_domctl_address_size", 4, {"size": 0}),
    ("xenctl_bitmap", 16, {"bitmap": 0, "nr_bits": 8}),
    ("xen_domctl_nodeaffinity", 16, {"nodemap.bitmap": 0, "nodemap.nr_bits": 8}),
    ("xen_domctl_vnuma", 48, {"nr_vnodes": 0, "nr_vcpus": 8, "vdistance": 16, "vmemrange": 40}),
    ("xen_domctl_vcpucontext", 16, {"vcpu": 0, "ctxt": 8}),
    ("xen_domctl_getvcpuinfo", 24, {"vcpu": 0, "online": 4, "cpu_time": 8, "cpu": 16}),
    ("xen_domctl_hvmcontext", 16, {"size": 0, "buffer": 8}),
    ("xen_domctl_vcpuaffinity", 40, {"vcpu": 0, "flags": 4, "cpumap_hard": 8, "cpumap_soft": 24}),
    ("xen_sysctl", 136, {"cmd": 0, "interface_version": 4, "u": 8}),
    ("xen_sysctl_readconsole", 24, {"clear": 0, "index": 4, "buffer": 8, "count": 16}),
    (
        "xen_sysctl_physinfo",
        112,
        {"nr_cpus": 8, "max_node_id": 20, "capabilities": 28, "max_mfn": 72, "hw_cap": 80},
    ),
    ("xen_sysctl_sched_id", 4, {"sched_id": 0}),
    ("xen_sysctl_debug_keys", 16, {"keys": 0, "nr_keys": 8}),
    (
        "xen_sysctl_getdomaininfolist",
        24,
        {"first_domain": 0, "max_domains": 4, "buffer": 8, "num_domains": 16},
    ),
    ("xen_sysctl_availheap", 24, {"node": 8, "avail_bytes": 16}),
    ("xen_sysctl_page_offline_op", 24, {"cmd": 0, "end": 8, "status": 16}),
    ("xen_sysctl_cputopoinfo", 16, {"num_cpus": 0, "cputopo": 8}),
    ("xen_sysctl_cputopo", 12, {"core": 0, "socket": 4, "node": 8}),
    ("xen_sysctl_numainfo", 24, {"num_nodes": 0, "meminfo": 8, "distance": 16}),
    ("xen_sysctl_meminfo", 16, {"memsize": 0, "memfree": 8}),
    ("xen_sysctl_cpupool_op", 40, {"op": 0, "cpu": 16, "n_dom": 20, "cpumap": 24}),
    ("xen_sysctl_pcitopoinfo", 24, {"num_devs": 0, "devs": 8, "nodes": 16}),
    (
        "xen_memory_reservation",
        32,
        {"extent_start": 0, "nr_extents": 8, "extent_order": 16, "mem_flags": 20, "domid": 24},
    ),
    ("xen_memory_exchange", 72, {"out.extent_start": 32, "nr_exchanged": 64}),
    ("xen_memory_domain", 2, {"domid": 0}),
    ("xen_vmemrange", 24, {"start": 0, "end": 8, "flags": 16, "nid": 20}),
    (
        "xen_vnuma_topology_info",
        40,
        {
            "domid": 0,
            "pad": 2,
            "nr_vnodes": 4,
            "nr_vcpus": 8,
            "nr_vmemranges": 12,
            "vdistance": 16,
            "vcpu_to_vnode": 24,
            "vmemrange": 32,
        },
    ),
    ("xen_pod_target", 40, {"target_pages": 0, "pod_entries": 24, "domid": 32}),
    ("xen_compile_info", 144, {"compiler": 0, "compile_by": 64, "compile_date": 112}),
    ("xen_platform_parameters", 8, {"virt_start": 0}),
    ("xen_feature_info", 8, {"submap_idx": 0, "submap": 4}),
    ("xen_build_id", 4, {"len": 0}),  # master's xen_varbuf, the same bytes
    ("multicall_entry", 64, {"op": 0, "result": 8, "args": 16}),
]
# Public layouts a 4.17 host has no 4.17 counterpart for: get_domain_state does not exist
# in 4.17 (ENOSYS there), and the v7 claim set is the backported series' own.
NOT_IN_4_17 = {"xen_domctl_get_domain_state", "xen_memory_claim", "xen_domctl_claim_memory"}

MODULES = (domctl, sysctl, memory, version, xen)


def layout_of(release: Release, name: str) -> construct.Construct:
    """The layout a host of ``release`` decodes ``name`` with: the release's own where it
    has one, else the public one (as hypervisor_model does)."""
    own = getattr(release, name, None)
    if own is not None:
        return own
    return next(getattr(m, name) for m in MODULES if hasattr(m, name))


@pytest.mark.parametrize(("name", "size", "offsets"), ABI_4_17, ids=[r[0] for r in ABI_4_17])
def test_a_417_host_decodes_with_417s_layout(name: str, size: int, offsets: dict[str, int]) -> None:
    layout = layout_of(XEN_4_17, name)
    assert layout.sizeof() == size
    assert {path: offset_of(layout, path) for path in offsets} == offsets


def test_every_public_layout_is_checked_against_417() -> None:
    """A layout added to the public ABI must get a row here (or say why it has none)."""
    checked = {id(layout_of(XEN_4_17, n)) for n, _, _ in ABI_4_17}
    checked |= {id(layout_of(MASTER, n)) for n, _, _ in ABI_4_17}
    checked |= {id(layout_of(MASTER, n)) for n in NOT_IN_4_17}
    public = {
        name
        for module in MODULES
        for name, value in vars(module).items()
        if isinstance(value, construct.Struct) and id(value) not in checked
    }
    assert public == set()


def test_only_createdomain_differs_between_the_releases() -> None:
    differ = [n for n, _, _ in ABI_4_17 if layout_of(XEN_4_17, n) is not layout_of(MASTER, n)]
    assert differ == ["xen_domctl_createdomain"]
    assert layout_of(MASTER, "xen_domctl_createdomain").sizeof() == 68


# 4.17's numbers, from its headers: a 4.17 host and handle must use exactly these.
CONSTANTS_4_17: dict[str, int] = {
    "XEN_DOMCTL_INTERFACE_VERSION": 0x15,
    "XEN_SYSCTL_INTERFACE_VERSION": 0x15,
    "XEN_DOMCTL_createdomain": 1,
    "XEN_DOMCTL_destroydomain": 2,
    "XEN_DOMCTL_pausedomain": 3,
    "XEN_DOMCTL_unpausedomain": 4,
    "XEN_DOMCTL_getdomaininfo": 5,
    "XEN_DOMCTL_shadow_op": 10,
    "XEN_DOMCTL_SHADOW_OP_GET_ALLOCATION": 30,
    "XEN_DOMCTL_SHADOW_OP_SET_ALLOCATION": 31,
    "XEN_DOMCTL_max_mem": 11,
    "XEN_DOMCTL_setvcpucontext": 12,
    "XEN_DOMCTL_getvcpuinfo": 14,
    "XEN_DOMCTL_max_vcpus": 15,
    "XEN_DOMCTL_getvcpuaffinity": 25,
    "XEN_DOMCTL_gethvmcontext": 33,
    "XEN_DOMCTL_sethvmcontext": 34,
    "XEN_DOMCTL_set_address_size": 35,
    "XEN_DOMCTL_get_address_size": 36,
    "XEN_DOMCTL_setnodeaffinity": 68,
    "XEN_DOMCTL_getnodeaffinity": 69,
    "XEN_DOMCTL_setvnumainfo": 74,
    "XEN_DOMCTL_get_paging_mempool_size": 85,
    "XEN_DOMCTL_set_paging_mempool_size": 86,
    "XEN_X86_EMU_ALL": 0x7FF,
    "XEN_DOMINF_hap": 1 << 8,
    "XEN_DOMINF_xs_domain": 1 << 7,
    "XEN_DOMINF_shutdownshift": 16,
    "XEN_SYSCTL_readconsole": 1,
    "XEN_SYSCTL_physinfo": 3,
    "XEN_SYSCTL_sched_id": 4,
    "XEN_SYSCTL_getdomaininfolist": 6,
    "XEN_SYSCTL_debug_keys": 7,
    "XEN_SYSCTL_availheap": 9,
    "XEN_SYSCTL_page_offline_op": 14,
    "XEN_SYSCTL_cputopoinfo": 16,
    "XEN_SYSCTL_numainfo": 17,
    "XEN_SYSCTL_cpupool_op": 18,
    "XEN_SYSCTL_pcitopoinfo": 22,
    "XEN_SYSCTL_PHYSCAP_MAX": 1 << 9,
    "XENMEM_increase_reservation": 0,
    "XENMEM_decrease_reservation": 1,
    "XENMEM_maximum_ram_page": 2,
    "XENMEM_current_reservation": 3,
    "XENMEM_maximum_reservation": 4,
    "XENMEM_populate_physmap": 6,
    "XENMEM_exchange": 11,
    "XENMEM_maximum_gpfn": 14,
    "XENMEM_set_pod_target": 16,
    "XENMEM_get_pod_target": 17,
    "XENMEM_claim_pages": 24,
    "XENMEM_get_vnumainfo": 26,
    "XENMEMF_populate_on_demand": 1 << 16,
    "XENMEMF_exact_node_request": 1 << 17,
    "XENMEMF_vnode": 1 << 18,
    "XENVER_version": 0,
    "XENVER_extraversion": 1,
    "XENVER_compile_info": 2,
    "XENVER_capabilities": 3,
    "XENVER_changeset": 4,
    "XENVER_platform_parameters": 5,
    "XENVER_pagesize": 7,
    "XENVER_commandline": 9,
    "DOMID_FIRST_RESERVED": 0x7FF0,
    "DOMID_SELF": 0x7FF0,
    "DOMID_IO": 0x7FF1,
    "DOMID_XEN": 0x7FF2,
    "DOMID_COW": 0x7FF3,
    "DOMID_INVALID": 0x7FF4,
    "DOMID_IDLE": 0x7FFF,
    "DOMID_MASK": 0x7FFF,
    "XEN_DOMCTL_CDF_MAX": 1 << 7,  # master: 1 << 8, trap_unmapped_accesses
}


def used_on_417(name: str) -> int:
    """The number a 4.17 host or handle uses for ``name``."""
    if name.endswith("_INTERFACE_VERSION"):
        return getattr(XEN_4_17, name.split("_")[1].lower() + "_interface_version")
    return next(getattr(m, name) for m in MODULES if hasattr(m, name))


@pytest.mark.parametrize("name", [n for n in CONSTANTS_4_17 if n != "XEN_DOMCTL_CDF_MAX"])
def test_a_417_host_uses_417s_numbers(name: str) -> None:
    assert used_on_417(name) == CONSTANTS_4_17[name]


def test_what_4_17_lacks() -> None:
    """No DOMID_ANY (createdomain picks for 0 or a reserved id) and no stable domctl; bit 8
    of createdomain's flags is unknown to 4.17, but EINVAL on master's x86 too (Arm only),
    so both hosts refuse it alike and the model keeps one rule."""
    assert (XEN_4_17.has_domid_any, XEN_4_17.any_domid) == (False, 0)
    assert (MASTER.has_domid_any, MASTER.any_domid) == (True, xen.DOMID_ANY)
    assert XEN_4_17.stable_domctls == frozenset()
    assert CONSTANTS_4_17["XEN_DOMCTL_CDF_MAX"] == domctl.XEN_DOMCTL_CDF_MAX >> 1


# -- the table against the real headers, where they are installed ------------------------------

HEADERS = Path("/usr/include/xen/domctl.h")
REASON = (
    "needs gcc and Xen 4.17's headers: apt-get install -y --no-install-recommends gcc libxen-dev"
)


def _installed_417_headers() -> bool:
    return (
        shutil.which("gcc") is not None
        and HEADERS.exists()
        and "XEN_DOMCTL_INTERFACE_VERSION 0x00000015" in HEADERS.read_text(errors="replace")
    )


def _c_program() -> str:
    lines = []
    for name, _, offsets in ABI_4_17:
        lines.append(f'printf("{name} %zu\\n", sizeof(struct {name}));')
        for path in offsets:
            lines.append(f'printf("{name}.{path} %zu\\n", offsetof(struct {name}, {path}));')
    for name in CONSTANTS_4_17:
        lines.append(f'printf("{name} %lu\\n", (unsigned long)({name}));')
    lines.append('printf("DOMID_ANY %d\\n", defined_DOMID_ANY);')
    body = "\n    ".join(lines)
    return f"""#define __XEN_TOOLS__ 1
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <xen/xen.h>
#include <xen/domctl.h>
#include <xen/sysctl.h>
#include <xen/memory.h>
#include <xen/version.h>
#ifdef DOMID_ANY
#define defined_DOMID_ANY 1
#else
#define defined_DOMID_ANY 0
#endif
int main(void)
{{
    {body}
    return 0;
}}
"""


@pytest.mark.skipif(not _installed_417_headers(), reason=REASON)
def test_the_table_is_417s_own_headers(tmp_path: Path) -> None:
    source, binary = tmp_path / "abi.c", tmp_path / "abi"
    source.write_text(_c_program(), encoding="utf-8")
    subprocess.run(["gcc", "-o", str(binary), str(source)], check=True, capture_output=True)
    out = subprocess.run([str(binary)], check=True, capture_output=True, text=True).stdout
    got = dict(line.rsplit(" ", 1) for line in out.splitlines())
    expected = {}
    for name, size, offsets in ABI_4_17:
        expected[name] = str(size)
        expected.update({f"{name}.{path}": str(off) for path, off in offsets.items()})
    expected.update({name: str(value) for name, value in CONSTANTS_4_17.items()})
    expected["DOMID_ANY"] = "0"
    assert got == expected


def test_releases_module_names_each_release_once() -> None:
    assert list(releases.RELEASES) == ["master", "4.17"]
    assert [r.version for r in releases.RELEASES.values()] == ["4.23-unstable", "4.17.5"]

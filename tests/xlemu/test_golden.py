"""Golden tests: the exact stdout of ``info``, ``list``, ``claims`` on a fixed host after a
fixed sequence of commands, worked out by hand from xl's formats (xl_info.c: output_physinfo,
output_numainfo, output_topologyinfo, list_domains, main_claims) and Xen's accounting.

The host: ``xlemu host init --nodes 2 --node-memory 8192 --cpus 4 --dom0-memory 512``,
xl.conf ``claim_mode = 1`` (legacy claims, released at the end of every build). Then:

1. ``create web.cfg``: HVM, memory 2048, vcpus 2, automatic placement -> node 0 (both nodes
   have 8 of dom0's vCPUs; node 0 has more free memory: numa_cmpf in libxl_dom.c).
2. ``create db.cfg``: PV, memory 1024, vcpus 2, cpus "nodes:1" -> node affinity node 1.
3. ``create -p batch.cfg``: HVM, vcpus 2, vnuma [pnode 0 1024 MiB, pnode 1 1024 MiB], paused.
4. ``mem-max batch 3072``, ``claim-set batch node1=512M host=256M``.

Pages, by hand (4 KiB pages, 256 per MiB; nodes back to back from MFN 0):

* node 0: 8192 MiB = 2097152 pages, MFN 0 never free, dom0's structure and shared-info pages
  taken at boot (alloc_domain_struct, arch_domain_create) -> 2097149 free.
* node 1: 2097152 pages - 4 for its free lists (init_node_heap takes the head of a node's
  first range unless it starts 1 GiB-aligned and ends no less aligned) - dom0 512 MiB
  (131072 pages; dom0's first node-less extent goes to node 1) -> 1966076 free.
* Creating an HVM guest costs Xen 2 pages of node 0 (structure, shared info) and a 256-page
  HAP pool taken before any node affinity is set, round-robin from node 1: 128 + 128. libxl
  then grows the pool to shadow_memkb = 4 * (256 * 2 vCPUs + 2048 MiB) = 10240 KiB = 2560
  pages (2304 more), a PV guest costs the 2 pages only. After the build QEMU backs the
  8 MiB of video RAM: 2048 pages more for the guest.
* web: placed on node 0 (node 0: 2097149 - 130 = 2097019 free > node 1: 1965948), so its
  2304 pool pages come from node 0; (2048 - 8 video) MiB = 522240 pages - 32 (VGA hole) +
  8 special + 8 ioreq pages + 2048 video = 524272, all on node 0 -> node 0: 2097019 - 2304
  - 524272 = 1570443; node 1: 1965948.
* db: 2 pages of node 0 (1570441); 1024 MiB = 262144 pages on node 1 -> 1703804.
* batch (meminit_hvm, xg_dom_x86.c): 2 pages of node 0 and 128 + 128 of HAP pool; no
  node affinity (vNUMA), so its 2304 more pool pages alternate, 1152 + 1152. vnode 0 =
  (1024 - 8 video) MiB = 260096 pages at pfns 0..260095 on pnode 0, of which pfns 0..0x9F
  (160) are populated first without a node and 0xA0..0xBF (32) are the VGA hole:
  260096 - 160 - 32 = 259904 exact on node 0; vnode 1 = 262144 exact on node 1. The
  node-less pages alternate between the nodes (get_free_buddy cycles from
  last_alloc_node): the 160 low pages 80 + 80, the 16 special/ioreq pages 8 + 8, the 2048
  video pages 1024 + 1024. Node 0: 259904 + 80 + 8 + 1024 = 261016; node 1: 262144 + 80 +
  8 + 1024 = 263256; total 524272 (as web). Node 0: 1570441 - 130 - 1152 - 261016 =
  1308143; node 1: 1703804 - 128 - 1152 - 263256 = 1439268. free_pages = 2747411.
* batch's claim: node 1 512 MiB = 131072 pages + host 256 MiB = 65536 pages = 196608 pages
  (max_pages (3072+1) MiB = 786688 >= 196608 + tot_pages 524272 = 720880: accepted).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from xl_helpers import Xl

WEB = 'name = "web"\ntype = "hvm"\nmemory = 2048\nvcpus = 2\n'
DB = 'name = "db"\ntype = "pv"\nmemory = 1024\nvcpus = 2\ncpus = "nodes:1"\n'
BATCH = (
    'name = "batch"\ntype = "hvm"\nvcpus = 2\n'
    'vnuma = [ [ "pnode=0", "size=1024", "vcpus=0" ],\n'
    '          [ "pnode=1", "size=1024", "vcpus=1" ] ]\n'
)

# The emulated host's identity: uname of the emulated dom0 and the model's version strings
# (not arithmetic; pinned so that a change to them is a visible decision).
UNAME_LINES = """\
host                   : xenemu
release                : 6.1.0-xenemu-amd64
version                : #1 SMP PREEMPT_DYNAMIC xenemu
machine                : x86_64
"""
# nr_cpus 2 nodes x 4 = 8, max_cpu_id 8 - 1 = 7; one socket of 4 cores per node;
# cpu_mhz "%d.%03d" of cpu_khz 2000000; the model reports no hw_caps; virt_caps in xl's order.
CPU_LINES = """\
nr_cpus                : 8
max_cpu_id             : 7
nr_nodes               : 2
cores_per_socket       : 4
threads_per_core       : 1
cpu_mhz                : 2000.000
hw_caps                : 00000000:00000000:00000000:00000000:00000000:00000000:00000000:00000000
virt_caps              : pv hvm hap shadow gnttab-v1 gnttab-v2
"""
# total_memory 4194304 pages // 256 = 16384
# free_memory (free_pages - outstanding) // 256 = (2747411 - 196608) // 256 = 2550803 // 256
#             = 9964 (9964 * 256 = 2550784, 19 pages left over)
# outstanding_claims 196608 // 256 = 768; free_cpus: every CPU is in Pool-0 -> 0
MEMORY_LINES = """\
total_memory           : 16384
free_memory            : 9964
sharing_freed_memory   : 0
sharing_used_memory    : 0
outstanding_claims     : 768
free_cpus              : 0
"""
# Master c447b7308b13 is 4.23-unstable (xen/Makefile); init_xen_cap_info leaves a space after
# every word, the last one too, and xl prints the string as it is.
XEN_CAPS = "xen-3.0-x86_64 xen-3.0-x86_32p hvm-3.0-x86_32 hvm-3.0-x86_32p hvm-3.0-x86_64 "
XEN_LINES = f"""\
xen_major              : 4
xen_minor              : 23
xen_extra              : -unstable
xen_version            : 4.23-unstable
xen_caps               : {XEN_CAPS}
xen_scheduler          : credit2
xen_pagesize           : 4096
platform_params        : virt_start=0xffff800000000000
xen_changeset          : xenemu model of c447b7308b13
xen_commandline        : conring_size=1M
cc_compiler            : xenemu
cc_compile_by          : xenemu
cc_compile_domain      :\x20
cc_compile_date        : 2026-08-20
build_id               :\x20
xend_config_format     : 4
"""
# cpu rows "%3d:    %4d     %4d     %4d": CPU i is core i % 4 of socket (= node) i // 4.
# numa rows "%4d:    %6lu     %6lu      %d" + ",%d": memsize 2097152 pages >> 8 = 8192;
# memfree (claims not subtracted) node 0: 1308143 >> 8 = 5109 (5109 * 256 = 1307904),
# node 1: 1439268 >> 8 = 5622 (5622 * 256 = 1439232); distances 10 local, 20 remote.
NUMA_LINES = """\
cpu_topology           :
cpu:    core    socket     node
  0:       0        0        0
  1:       1        0        0
  2:       2        0        0
  3:       3        0        0
  4:       0        1        1
  5:       1        1        1
  6:       2        1        1
  7:       3        1        1
device topology        :
device           node
No device topology data available
numa_info              :
node:    memsize    memfree    distances
   0:      8192       5109      10,20
   1:      8192       5622      20,10
"""

# Rows "%-40s %5d %5lu %5d     %c%c%c%c%c%c  %8.1f"; Mem = (tot + outstanding) * 4 // 1024:
#   Domain-0 131072 * 4 // 1024 = 512, 8 vCPUs, running the toolstack: r-----
#   web      524272 * 4 // 1024 = 2097088 // 1024 = 2047 (2047 * 1024 = 2096128), -b----
#   db       262144 * 4 // 1024 = 1024, -b----
#   batch    (524272 + 196608) * 4 // 1024 = 2883520 // 1024 = 2815, paused: --p---;
#            VCPUs 1: the build's vcpu_hvm brought vCPU 0 up (its CPU record); never
#            unpaused, it has not run, so it is neither running nor blocked
LIST = """\
Name                                        ID   Mem VCPUs\tState\tTime(s)
Domain-0                                     0   512     8     r-----       0.0
web                                          1  2047     2     -b----       0.0
db                                           2  1024     2     -b----       0.0
batch                                        3  2815     1     --p---       0.0
"""
# " NODE Affinity": print_bitmap of each node affinity over nr_nodes 2: dom0 and the vNUMA
# guest (no nodemap: every node) "all", web placed on node 0 "0", db pinned to node 1 "1".
LIST_NUMA = """\
Name                                        ID   Mem VCPUs\tState\tTime(s) NODE Affinity
Domain-0                                     0   512     8     r-----       0.0 all
web                                          1  2047     2     -b----       0.0 0
db                                           2  1024     2     -b----       0.0 1
batch                                        3  2815     1     --p---       0.0 all
"""
# "  Claimed" and " %5lu" of outstanding_memkb / 1024: batch 196608 * 4 // 1024 = 768.
CLAIMS = """\
Name                                        ID   Mem VCPUs\tState\tTime(s)  Claimed
Domain-0                                     0   512     8     r-----       0.0     0
web                                          1  2047     2     -b----       0.0     0
db                                           2  1024     2     -b----       0.0     0
batch                                        3  2815     1     --p---       0.0   768
"""
# Each domain's claim set (XEN_DOMCTL_claim_memory GET) in MiB, "%-40s %5s %7s" + " %7s":
# batch host-wide 65536 >> 8 = 256, node 1 131072 >> 8 = 512.
CLAIMS_NODES = """\
Name                                        ID    Host   Node0   Node1
Domain-0                                     0       0       0       0
web                                          1       0       0       0
db                                           2       0       0       0
batch                                        3     256       0     512
"""


def build_golden(x: Xl, *init: str) -> Path:
    """Run the module's command sequence on ``x``'s state; ``init``: more host init options."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XLEMU_STATE", str(x.state))
        mp.setenv("XL_GLOBAL_CONFIG", str(x.xl_conf))
        x.claim_mode("1")
        out = x.ok(
            "host", "init", "--nodes", "2", "--node-memory", "8192", "--cpus", "4",
            "--dom0-memory", "512", *init,
        )  # fmt: skip
        assert out == f"new host: 2 nodes, state in {x.state}\n"
        for flags, name, text in (([], "web", WEB), ([], "db", DB), (["-p"], "batch", BATCH)):
            path = x.config(f"{name}.cfg", text)
            run = x("create", *flags, path)
            assert (run.code, run.out, run.err) == (0, "", f"Parsing config from {path}\n")
        for args in (
            ("mem-max", "batch", "3072"),
            ("claim-set", "batch", "node1=512M", "host=256M"),
        ):
            run = x(*args)
            assert (run.code, run.out, run.err) == (0, "", ""), args
    return x.state


@pytest.fixture(scope="module")
def golden_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The state file after the module's command sequence (built once)."""
    return build_golden(Xl(tmp_path_factory.mktemp("golden")))


@pytest.fixture
def golden(golden_state: Path, xl: Xl) -> Iterator[Xl]:
    """This test's own copy of the golden host."""
    shutil.copy(golden_state, xl.state)
    xl.claim_mode("1")
    yield xl


def test_info(golden: Xl) -> None:
    """xl info: print_info's order, names padded to 23 columns then ": "."""
    assert golden.ok("info") == UNAME_LINES + CPU_LINES + MEMORY_LINES + XEN_LINES


def test_info_numa(golden: Xl) -> None:
    """xl info -n: the CPU and device topology, then the NUMA table, before the Xen lines."""
    expected = UNAME_LINES + CPU_LINES + MEMORY_LINES + NUMA_LINES + XEN_LINES
    assert golden.ok("info", "-n") == expected
    assert golden.ok("info", "--numa") == expected


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("free_memory", "9964\n"),
        ("total_memory", "16384\n"),
        ("outstanding_claims", "768\n"),
        ("free", "9964\n0\n"),  # a prefix: free_memory and free_cpus (strncmp in maybe_printf)
        ("xen_version", "4.23-unstable\n"),
        ("nr_", "8\n2\n"),  # nr_cpus, nr_nodes
        ("nosuchfield", ""),  # nothing matches: nothing printed, still exit 0
    ],
    ids=lambda v: v if v and not v.endswith("\n") else None,
)
def test_info_field(golden: Xl, field: str, expected: str) -> None:
    """xl info FIELD prints the value part of every line starting with FIELD."""
    assert golden.ok("info", field) == expected


def test_info_numa_ignores_the_field(golden: Xl) -> None:
    """main_info filters only without -n: ``info -n FIELD`` prints everything."""
    assert golden.ok("info", "-n", "free_memory") == golden.ok("info", "-n")


def test_list(golden: Xl) -> None:
    """xl list: the header with its two TABs and one row per domain."""
    assert golden.ok("list") == LIST


def test_list_numa(golden: Xl) -> None:
    """xl list -n adds each domain's node affinity through print_bitmap."""
    assert golden.ok("list", "-n") == LIST_NUMA


@pytest.mark.parametrize("domain", ["batch", "3"], ids=["by-name", "by-domid"])
def test_list_one_domain(golden: Xl, domain: str) -> None:
    """xl list DOMAIN: the header and that domain's row only."""
    header, *rows = LIST.splitlines(keepends=True)
    assert golden.ok("list", domain) == header + rows[3]


def test_claims(golden: Xl) -> None:
    """xl claims: the list table plus "  Claimed"; Mem includes the claim."""
    run = golden("claims")
    assert (run.code, run.out, run.err) == (0, CLAIMS, "")


def test_claims_nodes(golden: Xl) -> None:
    """xlemu claims --nodes: each domain's claim set, host-wide and per node, in MiB."""
    assert golden.ok("claims", "--nodes") == CLAIMS_NODES


def test_claims_with_claim_mode_off_warns_and_continues(golden: Xl) -> None:
    """main_claims: claim_mode=0 prints a note on stderr and lists the claims anyway."""
    golden.claim_mode("0")
    run = golden("claims")
    assert (run.code, run.out, run.err) == (
        0,
        CLAIMS,
        "claim_mode not enabled (see man xl.conf).\n",
    )


def test_read_only_commands_leave_the_state_file_untouched(golden: Xl) -> None:
    """info, list and claims read the host; the state file's bytes do not change."""
    before = golden.state.read_bytes()
    for args in (["info", "-n"], ["list", "-n"], ["claims"], ["claims", "--nodes"]):
        golden.ok(*args)
    assert golden.state.read_bytes() == before


def test_destroy_returns_the_memory_and_the_claim(golden: Xl) -> None:
    """destroy drops batch's pages, what it cost Xen, and its claim (domain_kill releases
    claims)."""
    assert golden.ok("destroy", "batch") == ""
    header, *rows = LIST.splitlines(keepends=True)
    assert golden.ok("list") == header + "".join(rows[:3])
    # free_pages 2747411 + 524272 + 2 + 2560 (structure, shared info, paging pool) =
    # 3274245, no claims: 3274245 // 256 = 12790 (12790 * 256 = 3274240); outstanding 0
    assert golden.ok("info", "free_memory") == "12790\n"
    assert golden.ok("info", "outstanding_claims") == "0\n"
    # numa memfree: node 0 (1308143 + 261016 + 130 + 1152) >> 8 = 1570441 >> 8 = 6134
    # (6134 * 256 = 1570304); node 1 (1439268 + 263256 + 128 + 1152) >> 8 = 1703804 >> 8
    # = 6655 (6655 * 256 = 1703680)
    numa = golden.ok("info", "-n").split("numa_info              :\n")[1]
    assert numa.startswith(
        "node:    memsize    memfree    distances\n"
        "   0:      8192       6134      10,20\n"
        "   1:      8192       6655      20,10\n"
    )


def test_paused_domain_has_vcpu0_online(golden: Xl) -> None:
    """A domain built and left paused has vCPU 0 online (getdomaininfo in domctl.c counts
    vCPUs without VPF_down; the boot context cleared it for vCPU 0)."""
    row = golden.ok("list", "batch").splitlines()[1]
    assert row == "batch                                        3  2815     1     --p---       0.0"


# -- the same sequence on a Xen 4.17 host (Debian 12's) --------------------------------------

# Debian's 4.17.5+72 hypervisor: xen/Makefile at its commit says ".5"; compile_by/domain are
# the maintainer's address (Debian's version patch); a source package has no changeset.
XEN_LINES_4_17 = f"""\
xen_major              : 4
xen_minor              : 17
xen_extra              : .5
xen_version            : 4.17.5
xen_caps               : {XEN_CAPS}
xen_scheduler          : credit2
xen_pagesize           : 4096
platform_params        : virt_start=0xffff800000000000
xen_changeset          :\x20
xen_commandline        : conring_size=1M
cc_compiler            : x86_64-linux-gnu-gcc (Debian 12.2.0-14+deb12u1) 12.2.0
cc_compile_by          : pkg-xen-devel
cc_compile_domain      : lists.alioth.debian.org
cc_compile_date        : Sat Nov 29 13:52:25 UTC 2025
build_id               :\x20
xend_config_format     : 4
"""


@pytest.fixture(scope="module")
def golden_4_17_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_golden(Xl(tmp_path_factory.mktemp("golden-4.17")), "--xen", "4.17")


@pytest.fixture
def golden_4_17(golden_4_17_state: Path, xl: Xl) -> Iterator[Xl]:
    shutil.copy(golden_4_17_state, xl.state)
    xl.claim_mode("1")
    yield xl


def test_info_on_a_417_host(golden_4_17: Xl) -> None:
    """Every number as on master (the same builds, the same accounting); only the Xen lines
    differ, as xl 4.17's output_xeninfo prints them (the same format as master's)."""
    assert golden_4_17.ok("info") == UNAME_LINES + CPU_LINES + MEMORY_LINES + XEN_LINES_4_17
    assert golden_4_17.ok("info", "xen_version") == "4.17.5\n"


@pytest.mark.parametrize(
    ("args", "expected"),
    [(("list",), LIST), (("list", "-n"), LIST_NUMA), (("claims",), CLAIMS)],
    ids=["list", "list-n", "claims"],
)
def test_lists_on_a_417_host(golden_4_17: Xl, args: tuple[str, ...], expected: str) -> None:
    assert golden_4_17.ok(*args) == expected


def test_claim_sets_on_a_417_host(golden_4_17: Xl) -> None:
    """XEN_DOMCTL_claim_memory (v7) is there on 4.17, as a vendor backport has it."""
    assert golden_4_17.ok("claims", "--nodes") == CLAIMS_NODES

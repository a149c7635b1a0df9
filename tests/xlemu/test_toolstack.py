"""The toolstack library behind ``xlemu``, called directly: sizes, bitmaps, libxl's memory
estimate and NUMA placement, what create does with cpus= and vnuma=, the claim modes of
xl.conf, and the memory picture. Every number is worked out by hand in a comment.

Hosts are booted with ``make_host``; nodes lie back to back from MFN 0, so node 0 has one
free page less (MFN 0), and dom0's memory is one node-less extent that lands on node 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from xl_helpers import Xl, create, toolstack
from xlemu.devicemodel import video_ram_gfn
from xlemu.toolstack import (
    Toolstack,
    ToolstackError,
    need_memory_kb,
    parse_memory_kb,
    print_bitmap,
)
from xlemu.xlconf import read_xl_conf

from hypervisor_model.counters import Change
from xenctrl import XenError
from xenctrl import domain as xcd
from xenctrl.trace import CallRecord, HypercallRecord, Trace

GiB_KB = 1 << 20


def pages_on_nodes(ts: Toolstack, domid: int) -> list[int]:
    """The domain's pages per node, from Xen's 'u' dump (debug-keys u)."""
    return [node.domains.get(domid, 0) for node in ts.memory_picture().nodes]


def affinity(ts: Toolstack, domid: int) -> str:
    """The NODE Affinity column of ``xl list -n`` for one domain."""
    return ts.list_lines(str(domid), numa=True)[1].rsplit(" ", 1)[1]


# -- parse_memory_kb (parse_mem_size_kb in xl_parse.c) ----------------------------------------


@pytest.mark.parametrize(
    ("text", "kb"),
    [
        ("1", 1024),  # no suffix: MiB
        ("1m", 1024),
        ("1M", 1024),
        ("1k", 1),
        ("1K", 1),
        ("1g", 1 << 20),
        ("1G", 1 << 20),
        ("1t", 1 << 30),
        ("1T", 1 << 30),
        ("2048b", 2),  # bytes >> 10
        ("2047b", 1),
        ("1023B", 0),
        ("0", 0),
        ("007", 7 * 1024),  # strtoll base 10: leading zeros are decimal
        ("3072", 3 << 20),
    ],
)
def test_parse_memory_kb(text: str, kb: int) -> None:
    assert parse_memory_kb(text) == kb


@pytest.mark.parametrize(
    "text",
    ["5x", "1.5g", "5mb", "1gb", "0x10", "1e3", "12 ", "abc", "5 m"],
)
def test_parse_memory_kb_rejects(text: str) -> None:
    """More than one character after the number, or an unknown one: -1 in xl, an error here."""
    with pytest.raises(ToolstackError, match=f"^invalid memory size: {text}$") as e:
        parse_memory_kb(text)
    assert e.value.exit_code == 1


# -- print_bitmap (xl_utils.c) ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mask", "length", "text"),
    [
        (0b11, 2, "all"),  # one run from bit 0 to the end: "all"
        (0b00, 2, "none"),  # no bit set
        (0, 0, "none"),  # an empty map
        (0b1, 1, "all"),
        (0b01, 2, "0"),  # a run that ends before the end
        (0b10, 2, "1"),  # a run to the end not starting at 0: ranges, not "all"
        (0b1011, 4, "0-1,3"),
        (0b1101, 4, "0,2-3"),
        (0b1110, 4, "1-3"),
        (0b101010, 6, "1,3,5"),
        (0b0110_0110, 8, "1-2,5-6"),
        (0xFF, 8, "all"),
        (0xFF, 10, "0-7"),
        (0x0FF0, 16, "4-11"),  # a run across the byte boundary
        (0b1_0000_0001, 9, "0,8"),
        (0b111, 2, "all"),  # bits beyond the length are not looked at
    ],
)
def test_print_bitmap(mask: int, length: int, text: str) -> None:
    assert print_bitmap(mask, length) == text


# -- need_memory_kb (libxl__domain_need_memory_calculate) ---------------------------------------


@pytest.mark.parametrize(
    ("memory_mib", "maxmem_mib", "vcpus", "hvm", "kb"),
    [
        # target + shadow 4 * (256 * vcpus + maxmem MiB) (libxl__get_required_paging_memory,
        # HAP for HVM, log-dirty for PV) + 2048 (HVM) or 1024 (PV), up to a 2048 multiple.
        # 2097152 + 4 * (512 + 2048) = 10240 + 2048 = 2109440 = 1030 * 2048
        (2048, 2048, 2, True, 2109440),
        # 1048576 + 4 * (256 + 1024) = 5120 + 1024 = 1054720 = 515 * 2048
        (1024, 1024, 1, False, 1054720),
        # 4194304 + 4 * (1024 + 4096) = 20480 + 2048 = 4216832 = 2059 * 2048
        (4096, 4096, 4, True, 4216832),
        # 32768 + 4 * (256 + 32) = 1152 + 1024 = 34944 -> 18 * 2048 = 36864
        (32, 32, 1, False, 36864),
        # shadow follows maxmem: 1048576 + 4 * (256 + 2048) = 9216 + 2048 = 1059840 -> 1060864
        (1024, 2048, 1, True, 1060864),
        # 4174848 + 4 * (256 + 4077) = 17332 + 2048 = 4194228 -> 2048 * 2048 = 4194304
        (4077, 4077, 1, True, 4194304),
    ],
)
def test_need_memory_kb(memory_mib: int, maxmem_mib: int, vcpus: int, hvm: bool, kb: int) -> None:
    assert need_memory_kb(memory_mib << 10, maxmem_mib << 10, vcpus, hvm) == kb


# -- automatic placement (numa_place_domain, libxl__get_numa_candidate, numa_cmpf) -----------


@pytest.fixture
def three_nodes() -> Toolstack:
    """3 x 4096 MiB, 4 CPUs each (dom0: 12 vCPUs, affinity all: 12 on every node).
    Free KiB: node 0 (1048576 - 1 - 2) * 4 = 4194292 (MFN 0; dom0's structure and shared
    info), node 1 (1048576 - 4 - 131072) * 4 = 3670000 (its heap metadata; dom0's 512 MiB),
    node 2 (1048576 - 4) * 4 = 4194288."""
    return toolstack((4096, 4096, 4096))


@pytest.mark.parametrize(
    ("memkb", "vcpus", "nodes"),
    [
        (GiB_KB, 1, [0]),  # all fit, 12 vCPUs each: most free memory, node 0 (+4 KiB)
        (4194292, 1, [0]),  # only node 0 has 4194292 KiB
        # no single node: pairs {0,1} 7864292, {0,2} 8388580, {1,2} 7864288; 24 vCPUs each
        (4194293, 1, [0, 2]),
        (GiB_KB, 5, [0, 2]),  # 5 vCPUs > 4 CPUs per node: at least ceil(5 / 4) = 2 nodes
        (12058580, 1, [0, 1, 2]),  # 4194292 + 3670000 + 4194288 = everything free
        (12058581, 1, None),  # one KiB more than the host has free: no candidate
        (GiB_KB, 13, None),  # 13 vCPUs > 12 CPUs
    ],
)
def test_placement_fewest_nodes_then_vcpus_then_free_memory(
    three_nodes: Toolstack, memkb: int, vcpus: int, nodes: list[int] | None
) -> None:
    assert three_nodes.place(memkb, vcpus) == nodes


def test_placement_none_on_a_single_node_host() -> None:
    """libxl__get_numa_candidate does nothing when the host has one node."""
    assert toolstack((8192,)).place(GiB_KB, 1) is None


def test_placement_prefers_fewer_vcpus_over_more_free_memory() -> None:
    """numa_cmpf compares vCPUs first. Host 8192 + 4096 MiB; a paused 4-vCPU domain pinned
    to node 0 counts there (nr_vcpus_on_nodes counts every listed vCPU, paused or not):
    node 0 has 8 + 4 = 12 vCPUs and 8323068 KiB free, node 1 has 8 vCPUs and 3670016 KiB."""
    ts = toolstack((8192, 4096))
    create(ts, 'name="p"', "memory=64", "vcpus=4", 'cpus="nodes:0"', paused=True)
    assert ts.place(GiB_KB, 1) == [1]


def test_placement_counts_node_claims_as_taken() -> None:
    """Placement looks for unclaimed free memory. Host 2 x 4096 MiB; c (PV 64 MiB, node 1,
    1 vCPU) claims 1 GiB on node 0. Node 0: (1048576 - 1 - 2 - 2) * 4 - 1048576 = 3145708
    KiB unclaimed (MFN 0; dom0's and c's structure and shared info), 8 vCPUs; node 1:
    (1048576 - 4 - 131072 - 16384) * 4 = 3604464 KiB, 8 + 1 = 9 vCPUs."""
    ts = toolstack()
    c = create(ts, 'name="c"', "memory=64", 'cpus="nodes:1"')
    ts.mem_max("c", "4096")
    ts.claim_set("c", ["node0=1G"])
    assert ts.place(3145708, 1) == [0]  # fits node 0 exactly; fewer vCPUs there
    assert ts.place(3145709, 1) == [1]  # one KiB more: only node 1
    assert ts.place(3604465, 1) == [0, 1]  # neither alone
    assert c == 1


def test_placement_skips_a_domain_destroyed_while_it_looks() -> None:
    """A concurrent builder destroys its failed domain between placement's domain list and
    its questions about that domain: nr_vcpus_on_nodes skips a domain it can no longer ask
    about, and so do the claim reads. Domain 1 (4 vCPUs, node 0) goes after the list (the
    first hypercall), before the first question: only dom0's 8 vCPUs count on each node."""
    ts = toolstack()
    create(ts, 'name="gone"', "memory=64", "vcpus=4", 'cpus="nodes:0"')
    ts.hv.faults.before_hypercall(lambda: ts.destroy("1"), skip=1)
    assert ts._vcpus_on_nodes([0, 1]) == {0: 8, 1: 8}
    create(ts, 'name="gone"', "memory=64", "vcpus=4", 'cpus="nodes:0"')
    ts.hv.faults.before_hypercall(lambda: ts.destroy("2"), skip=1)
    assert [domid for domid, _ in ts.claims_by_node()] == [0]


def test_create_places_by_libxl_memory_estimate(three_nodes: Toolstack) -> None:
    """HVM 4075 MiB, 1 vCPU needs 4075 * 1024 + 4 * (256 + 4075) + 2048 = 4192172 KiB, in
    2 MiB steps 4192256 (libxl__domain_need_memory_calculate). When placement runs, the new
    domain has cost Xen its structure and shared info (node 0) and its 256-page HAP pool,
    round-robin from node 1: 86 + 85 + 85. Free KiB: node 0 (1048573 - 2 - 85) * 4 =
    4193944, node 1 (917500 - 86) * 4 = 3669656, node 2 (1048572 - 85) * 4 = 4193948.
    Nodes 0 and 2 hold it with 13 vCPUs each; node 2 has 4 KiB more free and wins, so the
    guest lands there alone: (4075 - 8) MiB = 1041152 pages - 32 + 16 + 2048 video =
    1043184."""
    domid = create(three_nodes, 'name="big"', 'type="hvm"', "memory=4075")
    assert affinity(three_nodes, domid) == "2"
    assert pages_on_nodes(three_nodes, domid) == [0, 0, 1043184]


def test_create_with_cpus_nodes_pins_affinity() -> None:
    """cpus="nodes:1": node affinity 1 and every page there, although node 0 has more free
    memory; PV 256 MiB = 65536 pages."""
    ts = toolstack()
    domid = create(ts, 'name="pinned"', "memory=256", 'cpus="nodes:1"')
    assert affinity(ts, domid) == "1"
    assert pages_on_nodes(ts, domid) == [0, 65536]


def test_create_with_cpus_range_still_places_on_one_node() -> None:
    """libxl__build_pre runs numa_place_domain for a cpus= string (xl only disables it for a
    list): candidates are the nodes of CPUs 2-5; both fit, 8 vCPUs each, node 0 has more
    free memory (4194300 vs 3670016 KiB) -> node affinity "0"."""
    ts = toolstack()
    domid = create(ts, 'name="wide"', "memory=64", 'cpus="2-5"')
    assert affinity(ts, domid) == "0"


def test_created_domain_record_is_named_and_listed() -> None:
    ts = toolstack()
    domid = create(ts, 'name="web"', 'type="hvm"', "memory=1024")
    assert ts.find_domain("web") == domid
    assert ts.name_if_exists(domid) == "web"
    # Mem: (1024 - 8) MiB = 260096 pages - 32 + 16 + 2048 video (QEMU) = 262128 pages
    # * 4 // 1024 = 1023
    assert ts.list_lines("web")[1].split()[:4] == ["web", "1", "1023", "1"]


# -- what libxl and the device model add -----------------------------------------------------


def test_create_sizes_the_paging_pool_as_libxl_does() -> None:
    """libxl__arch_domain_create sets shadow_memkb for HVM/PVH (libxl__get_required_paging_
    memory): 4 * (256 * 2 vCPUs + 2048 MiB) = 10240 KiB; a PV guest keeps none."""
    ts = toolstack()
    hvm = create(ts, 'name="h"', 'type="hvm"', "memory=2048", "vcpus=2")
    pv = create(ts, 'name="p"', "memory=64")
    assert xcd.xc_get_paging_mempool_size(ts.xch, hvm) == 10240 << 10
    with pytest.raises(XenError):
        xcd.xc_get_paging_mempool_size(ts.xch, pv)


@pytest.mark.parametrize(
    ("maxmem_mib", "gfn"),
    [
        # -m 1016 MiB: xen.ram is 260096 pages, already 64-page aligned
        (1024, 260096),
        # -m 4088 MiB >= 3840 MiB (HVM_BELOW_4G_RAM_END): xen.ram spans 4 GiB + 248 MiB
        (4096, 0x100000 + 248 * 256),
    ],
)
def test_video_ram_lands_after_qemus_ram_block(maxmem_mib: int, gfn: int) -> None:
    assert video_ram_gfn(maxmem_mib << 10, 8192) == gfn


def test_hvm_guests_own_their_video_ram() -> None:
    """QEMU backs 8 MiB of video RAM (xen_ram_alloc): 2048 pages at gfn 260096 for a
    1024 MiB guest; a PVH guest has no device model and no video RAM."""
    ts = toolstack()
    hvm = create(ts, 'name="h"', 'type="hvm"', "memory=1024")
    pvh = create(ts, 'name="p"', 'type="pvh"', "memory=1024")
    d = ts.hv.find_domain(hvm)
    assert d is not None and d.p2m.covered(260096, 260096 + 2048) == 2048
    # HVM: 1016 MiB - 32 + 16 + 2048; PVH: 1024 MiB + 8 special pages
    assert ts.api.domain_getinfo(hvm).tot_pages == 260096 - 32 + 16 + 2048
    assert ts.api.domain_getinfo(pvh).tot_pages == 262144 + 8


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        # HVM: target (1024 - 8) MiB = 260096 pages, the cache that less the 32-page VGA
        # hole = 260064; entries: every gfn of (2048 - 8) MiB = 522240 but the hole, 522208;
        # tot = cache + 16 special/ioreq pages + 2048 pages of video RAM = 262128
        ("hvm", (262128, 260064, 522208)),
        # PVH: no video RAM, no hole: cache 262144, entries 524288, tot + 8 special pages
        ("pvh", (262152, 262144, 524288)),
    ],
)
def test_memory_below_maxmem_builds_a_pod_guest(kind: str, expected: tuple[int, ...]) -> None:
    """libxl__build_hvm: total pages from maxmem, target from memory; meminit_hvm sets the
    PoD target and marks the RAM PoD. Xen's max is the target + 1 MiB (libxl__build_pre):
    (1024 + 1) MiB = 262400 pages; the paging pool follows maxmem: 4 * (256 + 2048) KiB."""
    ts = toolstack()
    domid = create(ts, 'name="p"', f'type="{kind}"', "memory=1024", "maxmem=2048")
    assert xcd.xc_domain_get_pod_target(ts.xch, domid) == expected
    assert ts.api.domain_getinfo(domid).max_pages == 262400
    assert xcd.xc_get_paging_mempool_size(ts.xch, domid) == 4 * (256 + 2048) << 10


def test_mem_set_moves_a_pod_guest_s_target() -> None:
    """libxl_set_memory_target also sets the PoD target, (target + 1 MiB) / 4 KiB pages.
    mem-set 1536: target 1536 MiB - 8 MiB video = 1564672 KiB -> (1564672 + 1024) / 4 =
    391424 pages; populated 262128 - 260064 = 2064, so the cache grows to 391424 - 2064 =
    389360 and tot_pages reaches 391424 (list: 391424 * 4 // 1024 = 1529 MiB). Lower
    again: Xen leaves the cache to the balloon driver."""
    ts = toolstack()
    domid = create(ts, 'name="p"', 'type="hvm"', "memory=1024", "maxmem=2048")
    ts.mem_set("p", "1536")
    assert xcd.xc_domain_get_pod_target(ts.xch, domid) == (391424, 389360, 522208)
    ts.mem_set("p", "512")
    assert xcd.xc_domain_get_pod_target(ts.xch, domid) == (391424, 389360, 522208)
    assert ts.list_lines("p")[1].split()[2] == "1529"


# -- vNUMA ------------------------------------------------------------------------------------

VNUMA = 'vnuma=[["pnode=0","size=512","vcpus=0"],["pnode=1","size=512","vcpus=1"]]'


@pytest.mark.parametrize(
    ("mode", "pages"),
    [
        # vnode 0: (512 - 8) MiB = 129024 pages at pfns 0..129023: 129024 - 160 low pages - 32
        # VGA hole = 128832 exact on node 0; vnode 1 131072 exact on node 1. The 160 low
        # pages have no node flag and alternate (80 + 80); the 16 special/ioreq pages after
        # meminit alternate too (8 + 8), and so do the 2048 pages of video RAM QEMU
        # populates (1024 + 1024). Total (1024 - 8) * 256 - 32 + 16 + 2048 = 262128.
        ("legacy", [128832 + 80 + 8 + 1024, 131072 + 80 + 8 + 1024]),
        ("off", [128832 + 80 + 8 + 1024, 131072 + 80 + 8 + 1024]),
        # the numa mode keeps the low pages on range 0's node: 128832 + 160 + 8 + 1024
        ("numa", [128832 + 160 + 8 + 1024, 131072 + 8 + 1024]),
    ],
)
def test_vnuma_puts_each_vnode_on_its_pnode(mode: str, pages: list[int]) -> None:
    ts = toolstack(mode=mode)
    domid = create(ts, 'name="v"', 'type="hvm"', "vcpus=2", VNUMA)
    assert pages_on_nodes(ts, domid) == pages
    assert affinity(ts, domid) == "all"  # vNUMA: no placement, no nodemap


def test_vnuma_sizes_become_maxmem() -> None:
    """parse_vnuma_config: the vnode sizes add up to maxmem (and the target without memory=):
    max_pages = target 1024 MiB + 1 MiB (LIBXL_MAXMEM_CONSTANT) = 262400 pages."""
    ts = toolstack()
    domid = create(ts, 'name="v"', 'type="hvm"', "vcpus=2", VNUMA)
    assert ts.api.domain_getinfo(domid).max_pages == 262400


def test_pv_vnuma_is_refused_before_a_domain_is_made() -> None:
    """initiate_domain_create: "PV vNUMA is not yet supported", ERROR_INVAL -> exit 6."""
    ts = toolstack()
    with pytest.raises(ToolstackError, match="PV vNUMA is not yet supported") as e:
        create(ts, 'name="v"', 'type="pv"', VNUMA)
    assert e.value.exit_code == 6
    assert [i.domain for i in ts.domain_infos()] == [0]


# -- claim modes (xl.conf claim_mode; xenguest meminit) --------------------------------------


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        (None, "legacy"),  # no xl.conf: xl's default claim_mode=1
        ("", "legacy"),
        ("claim_mode = 1\n", "legacy"),
        ("claim_mode = 0\n", "off"),
        ('claim_mode = "numa"\n', "numa"),
        ('claim_mode = "legacy"\n', "legacy"),
        ('claim_mode = "off"\n', "off"),
        ('claim_mode = "NUMA"\n', "numa"),
        ("autoballoon = 0\n", "legacy"),
    ],
)
def test_read_xl_conf(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str | None, mode: str
) -> None:
    conf = tmp_path / "xl.conf"
    if text is not None:
        conf.write_text(text)
    monkeypatch.setenv("XL_GLOBAL_CONFIG", str(conf))
    assert read_xl_conf(tmp_path / "host.json").claim_mode == mode


def test_xl_conf_beside_the_state_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XL_GLOBAL_CONFIG", raising=False)
    (tmp_path / "xl.conf").write_text("claim_mode = 0\n")
    assert read_xl_conf(tmp_path / "host.json").claim_mode == "off"


def _hypercalls(record: CallRecord) -> Iterator[HypercallRecord]:
    for child in record.children:
        if isinstance(child, HypercallRecord):
            yield child
        else:
            yield from _hypercalls(child)


def staked_claims(trace: Trace) -> list[dict[str, int]]:
    """The claim counters each claim-staking hypercall raised (as --trace shows them)."""

    def raised(c: Change) -> bool:
        return c.after > c.before and ("claim" in c.name or "outstanding" in c.name)

    found = []
    for record in trace.records:
        for call in _hypercalls(record):
            moved = {c.name: c.after - c.before for c in call.counters if raised(c)}
            if moved:
                found.append(moved)
    return found


@pytest.mark.parametrize(
    ("mode", "staked"),
    [
        # xc_domain_claim_pages(target - VGA hole) = (1024 - 8) * 256 - 32 = 260064 host-wide
        ("legacy", [{"outstanding_claims": 260064, "d1.outstanding_pages": 260064}]),
        # placed on node 0 alone: all 260064 claimed on node 0
        (
            "numa",
            [
                {
                    "outstanding_claims": 260064,
                    "node0.claimed_pages": 260064,
                    "d1.claims[0]": 260064,
                    "d1.outstanding_pages": 260064,
                }
            ],
        ),
        ("off", []),
    ],
)
def test_claim_mode_claims_during_the_build(mode: str, staked: list[dict[str, int]]) -> None:
    """HVM 1024 MiB, placed on node 0: what the build claims, by mode; none is left after."""
    ts = toolstack(mode=mode)
    with Trace() as trace:
        create(ts, 'name="a"', 'type="hvm"', "memory=1024")
    assert staked_claims(trace) == staked
    assert ts.claims_by_node() == [(0, {0x80000000: 0}), (1, {0x80000000: 0})]  # GET: HOST 0
    assert ts.api.physinfo().outstanding_pages == 0


def test_numa_mode_claims_each_pnode_of_a_vnuma_guest() -> None:
    """Node 0: vnode 0's 129024 pages less the 32-page VGA hole = 128992 (the 160 low pages
    come out of it); node 1: 131072. All released by the end of the build."""
    ts = toolstack(mode="numa")
    with Trace() as trace:
        create(ts, 'name="v"', 'type="hvm"', "vcpus=2", VNUMA)
    assert staked_claims(trace) == [
        {
            "outstanding_claims": 128992 + 131072,
            "node0.claimed_pages": 128992,
            "node1.claimed_pages": 131072,
            "d1.claims[0]": 128992,
            "d1.claims[1]": 131072,
            "d1.outstanding_pages": 128992 + 131072,
        }
    ]
    assert ts.api.physinfo().outstanding_pages == 0


@pytest.mark.parametrize(
    ("mode", "staked"),
    [
        ("numa", "outstanding_claims 0->260064 (+260064), node0.claimed_pages 0->260064 (+260064)"),
        ("1", "outstanding_claims 0->260064 (+260064), d1.outstanding_pages 0->260064 (+260064)"),
    ],
    ids=["numa", "legacy"],
)
def test_claims_seen_in_the_trace_are_gone_after_the_build(xl: Xl, mode: str, staked: str) -> None:
    """From the command line: --trace shows the claim the build stakes (numa: on node 0, where
    placement put the guest); ``claims --nodes`` afterwards shows every claim released."""
    xl.claim_mode(mode)
    xl.ok("host", "init", "--nodes", "2", "--node-memory", "4096", "--dom0-memory", "512")
    run = xl("--trace", "create", "-q", "/dev/null", 'name="a"', 'type="hvm"', "memory=1024")
    assert run.code == 0
    assert f"counters: {staked}" in run.err
    assert ("claimed_pages 0->" in run.err) == (mode == "numa")
    assert xl.ok("claims", "--nodes").splitlines()[1:] == [
        "Domain-0                                     0       0       0       0",
        "a                                            1       0       0       0",
    ]


# -- claim-set ----------------------------------------------------------------------------------


def test_claim_set_reads_back_and_clears() -> None:
    """SET replaces the whole set; GET lists host-wide first, then non-zero node claims."""
    ts = toolstack()
    domid = create(ts, 'name="c"', "memory=64")
    ts.mem_max("c", "2048")  # max_pages (2048 + 1) * 256 = 524544 >= 16384 owned + claims
    host = 0x80000000  # XEN_DOMCTL_CLAIM_MEMORY_HOST
    # node0=512M -> 131072 pages, host=256M -> 65536 pages
    assert ts.claim_set("c", ["node0=512M", "host=256M"]) == {host: 65536, 0: 131072}
    assert ts.api.physinfo().outstanding_pages == 196608
    assert ts.claim_set("c", ["node1=1M"]) == {host: 0, 1: 256}  # node 0's claim dropped
    assert ts.claim_set("c", [], clear=True) == {host: 0}
    assert ts.api.physinfo().outstanding_pages == 0
    assert domid == 1

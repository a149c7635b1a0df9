"""Pin the public ABI to Xen's: struct sizes, field offsets, wire bytes and constants.

Expected numbers come from Xen master's public headers (checked with gcc on x86_64)
and from the fact sheet (reference/xen-claims-facts.md, sections 1.1-1.6 and 2.9);
the claim-set layout is v7's. Wire bytes are written with the standard library's
``struct`` module, independently of the construct definitions under test.
"""

import importlib
import pkgutil
import struct as cstruct
from typing import Any

import construct
import pytest
from construct import Array, Bytes, Default, FixedSized, FormatField, Renamed, Struct

import hypervisor_model.public
from hypervisor_model import guest_memory
from hypervisor_model.public import (
    arch_x86,
    domctl,
    errno,
    hvm_save,
    memory,
    physdev,
    sysctl,
    xen,
)

# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def plain(obj: Any) -> Any:
    """A parsed construct object as dicts and lists, keeping ``_pad``-style names.

    construct's Container equality skips every key starting with "_", which would
    hide xen_domctl's ``_pad``; only the stream handle ``_io`` is dropped here.
    """
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items() if k != "_io"}
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    return obj


def check_layout(struct: construct.Construct, obj: dict[str, Any], data: bytes) -> None:
    """parse(data) == obj, build(obj) == data, sizeof == len(data), compiled form agrees."""
    assert plain(struct.parse(data)) == obj
    assert struct.build(obj) == data
    assert struct.sizeof() == len(data)
    compiled = struct.compile()
    assert plain(compiled.parse(data)) == obj
    assert compiled.build(obj) == data
    assert compiled.sizeof() == len(data)


def _bare(con: construct.Construct) -> construct.Construct:
    """The construct under any field name and build default."""
    while isinstance(con, Renamed | Default):
        con = con.subcon
    return con


def _zero(con: construct.Construct) -> Any:
    """An all-zero value for a layout built from this package's primitives."""
    con = _bare(con)
    if isinstance(con, Struct):
        return {sc.name: _zero(sc) for sc in con.subcons if sc.name is not None}
    if isinstance(con, Array):
        return [_zero(con.subcon) for _ in range(con.count)]
    if isinstance(con, Bytes):
        return bytes(con.length)
    if isinstance(con, FixedSized):
        return b""
    if isinstance(con, FormatField):
        return 0
    raise TypeError(f"expected a layout of this package, got {con!r}")


_MARK = b"\x31\x32\x33\x34\x35\x36\x37\x38"  # no byte has its top bit set: fits signed fields


def _marked(con: construct.Construct) -> tuple[Any, bytes]:
    """A value for ``con`` whose encoding starts with marker bytes, and those bytes."""
    con = _bare(con)
    if isinstance(con, FormatField):
        mark = _MARK[: con.length]
        return int.from_bytes(mark, "little"), mark
    if isinstance(con, Bytes):
        mark = _MARK[: con.length]
        return mark + bytes(con.length - len(mark)), mark
    if isinstance(con, FixedSized):
        return _MARK, _MARK
    if isinstance(con, Array):
        first, mark = _marked(con.subcon)
        return [first, *(_zero(con.subcon) for _ in range(con.count - 1))], mark
    if isinstance(con, Struct):
        head = next(sc for sc in con.subcons if sc.name is not None)
        value = _zero(con)
        value[head.name], mark = _marked(head)
        return value, mark
    raise TypeError(f"expected a layout of this package, got {con!r}")


def offset_of(struct: construct.Construct, path: str) -> int:
    """Where field ``path`` ("a.b" for nested) lands: build with a marker there, find it."""
    obj = _zero(struct)
    parent, con = obj, struct
    *outer, last = path.split(".")
    for name in outer:
        con = next(sc for sc in _bare(con).subcons if sc.name == name)
        parent = parent[name]
    field = next(sc for sc in _bare(con).subcons if sc.name == last)
    parent[last], mark = _marked(field)
    data = struct.build(obj)
    assert data.count(mark) == 1, f"expected the marker once in {data.hex()}"
    return data.index(mark)


# ---------------------------------------------------------------------------
# Sizes and offsets (x86_64 C layout)
# ---------------------------------------------------------------------------

LAYOUTS: list[tuple[str, construct.Construct, int, dict[str, int]]] = [
    (
        "xen_domctl",
        domctl.xen_domctl,
        144,
        {"cmd": 0, "interface_version": 4, "domain": 8, "_pad": 10, "u": 16},
    ),
    (
        "xen_arch_domainconfig",
        domctl.xen_arch_domainconfig,
        8,
        {"emulation_flags": 0, "misc_flags": 4},
    ),
    (
        "xen_domctl_createdomain",
        domctl.xen_domctl_createdomain,
        68,
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
            "altp2m.opts": 48,
            "altp2m.nr": 50,
            "vmtrace_size": 52,
            "cpupool_id": 56,
            "arch.emulation_flags": 60,
            "arch.misc_flags": 64,
        },
    ),
    (
        "xen_domctl_getdomaininfo",
        domctl.xen_domctl_getdomaininfo,
        112,
        {
            "domain": 0,
            "pad1": 2,
            "flags": 4,
            "tot_pages": 8,
            "max_pages": 16,
            "outstanding_pages": 24,
            "shr_pages": 32,
            "paged_pages": 40,
            "shared_info_frame": 48,
            "cpu_time": 56,
            "nr_online_vcpus": 64,
            "max_vcpu_id": 68,
            "ssidref": 72,
            "handle": 76,
            "cpupool": 92,
            "gpaddr_bits": 96,
            "pad2": 97,
            "arch_config": 104,
        },
    ),
    ("xen_domctl_max_mem", domctl.xen_domctl_max_mem, 8, {"max_memkb": 0}),
    ("xen_domctl_max_vcpus", domctl.xen_domctl_max_vcpus, 4, {"max": 0}),
    ("xen_domctl_vcpucontext", domctl.xen_domctl_vcpucontext, 16, {"vcpu": 0, "ctxt": 8}),
    (
        "xen_domctl_getvcpuinfo",
        domctl.xen_domctl_getvcpuinfo,
        24,
        {"vcpu": 0, "online": 4, "blocked": 5, "running": 6, "cpu_time": 8, "cpu": 16},
    ),
    ("xen_domctl_hvmcontext", domctl.xen_domctl_hvmcontext, 16, {"size": 0, "buffer": 8}),
    (
        "xen_domctl_vcpuaffinity",
        domctl.xen_domctl_vcpuaffinity,
        40,
        {"vcpu": 0, "flags": 4, "cpumap_hard.bitmap": 8, "cpumap_soft.nr_bits": 32},
    ),
    ("xenctl_bitmap", xen.xenctl_bitmap, 16, {"bitmap": 0, "nr_bits": 8}),
    (
        "xen_domctl_nodeaffinity",
        domctl.xen_domctl_nodeaffinity,
        16,
        {"nodemap.bitmap": 0, "nodemap.nr_bits": 8},
    ),
    (
        "xen_domctl_vnuma",
        domctl.xen_domctl_vnuma,
        48,
        {
            "nr_vnodes": 0,
            "nr_vmemranges": 4,
            "nr_vcpus": 8,
            "pad": 12,
            "vdistance": 16,
            "vcpu_to_vnode": 24,
            "vnode_to_pnode": 32,
            "vmemrange": 40,
        },
    ),
    (
        "xen_domctl_get_domain_state",
        domctl.xen_domctl_get_domain_state,
        16,
        {"state": 0, "caps": 2, "pad0": 4, "unique_id": 8},
    ),
    ("xen_memory_claim", domctl.xen_memory_claim, 16, {"pages": 0, "target": 8, "cmd": 12}),
    (
        "xen_domctl_claim_memory",
        domctl.xen_domctl_claim_memory,
        16,
        {"claim_set": 0, "nr_entries": 8, "mode": 12},
    ),
    (
        "xen_memory_reservation",
        memory.xen_memory_reservation,
        32,
        {"extent_start": 0, "nr_extents": 8, "extent_order": 16, "mem_flags": 20, "domid": 24},
    ),
    (
        "xen_memory_exchange",
        memory.xen_memory_exchange,
        72,
        {"in.extent_start": 0, "out.extent_start": 32, "out.domid": 56, "nr_exchanged": 64},
    ),
    ("xen_memory_domain", memory.xen_memory_domain, 2, {"domid": 0}),
    ("multicall_entry", xen.multicall_entry, 64, {"op": 0, "result": 8, "args": 16}),
    # x86 vCPU contexts and HVM save records: offsets from gcc on Xen's public headers
    (
        "cpu_user_regs",
        arch_x86.cpu_user_regs,
        200,
        {"rip": 128, "cs": 136, "rflags": 144, "rsp": 152, "ss": 160, "es": 168, "gs": 192},
    ),
    (
        "vcpu_guest_context",
        arch_x86.vcpu_guest_context,
        5168,
        {
            "flags": 512,
            "user_regs": 520,
            "trap_ctxt": 720,
            "ldt_base": 4816,
            "ldt_ents": 4824,
            "gdt_frames": 4832,
            "gdt_ents": 4960,
            "kernel_ss": 4968,
            "kernel_sp": 4976,
            "ctrlreg": 4984,
            "debugreg": 5048,
            "event_callback_eip": 5112,
            "failsafe_callback_eip": 5120,
            "syscall_callback_eip": 5128,
            "vm_assist": 5136,
            "fs_base": 5144,
            "gs_base_kernel": 5152,
            "gs_base_user": 5160,
        },
    ),
    (
        "compat_vcpu_guest_context",
        arch_x86.compat_vcpu_guest_context,
        2800,
        {
            "flags": 512,
            "user_regs": 516,
            "trap_ctxt": 584,
            "ldt_base": 2632,
            "ldt_ents": 2636,
            "gdt_frames": 2640,
            "gdt_ents": 2704,
            "kernel_ss": 2708,
            "kernel_sp": 2712,
            "ctrlreg": 2716,
            "debugreg": 2748,
            "event_callback_cs": 2780,
            "failsafe_callback_eip": 2792,
            "vm_assist": 2796,
        },
    ),
    ("hvm_save_descriptor", hvm_save.hvm_save_descriptor, 8, {"instance": 2, "length": 4}),
    ("hvm_save_header", hvm_save.hvm_save_header, 24, {"changeset": 8, "gtsc_khz": 20}),
    (
        "hvm_hw_cpu",
        hvm_save.hvm_hw_cpu,
        1032,
        {
            "rbx": 520,
            "rip": 640,
            "cr0": 656,
            "cr2": 664,
            "cr3": 672,
            "cr4": 680,
            "dr6": 720,
            "dr7": 728,
            "msr_efer": 992,
            "msr_tsc_aux": 1000,
            "flags": 1024,
            "pad0": 1028,
        },
    ),
    ("hvm_hw_mtrr", hvm_save.hvm_hw_mtrr, 240, {"msr_mtrr_cap": 224, "msr_mtrr_def_type": 232}),
    ("xen_vmemrange", memory.xen_vmemrange, 24, {"start": 0, "end": 8, "flags": 16, "nid": 20}),
    ("xen_sysctl", sysctl.xen_sysctl, 136, {"cmd": 0, "interface_version": 4, "u": 8}),
    (
        "xen_sysctl_readconsole",
        sysctl.xen_sysctl_readconsole,
        24,
        {
            "clear": 0,
            "incremental": 1,
            "pad0": 2,
            "pad1": 3,
            "index": 4,
            "buffer": 8,
            "count": 16,
        },
    ),
    (
        "xen_sysctl_physinfo",
        sysctl.xen_sysctl_physinfo,
        112,
        {
            "threads_per_core": 0,
            "cores_per_socket": 4,
            "nr_cpus": 8,
            "max_cpu_id": 12,
            "nr_nodes": 16,
            "max_node_id": 20,
            "cpu_khz": 24,
            "capabilities": 28,
            "arch_capabilities": 32,
            "pad": 36,
            "total_pages": 40,
            "free_pages": 48,
            "scrub_pages": 56,
            "outstanding_pages": 64,
            "max_mfn": 72,
            "hw_cap": 80,
        },
    ),
    (
        "xen_sysctl_getdomaininfolist",
        sysctl.xen_sysctl_getdomaininfolist,
        24,
        {"first_domain": 0, "max_domains": 4, "buffer": 8, "num_domains": 16},
    ),
    (
        "xen_sysctl_availheap",
        sysctl.xen_sysctl_availheap,
        24,
        {"min_bitwidth": 0, "max_bitwidth": 4, "node": 8, "avail_bytes": 16},
    ),
    (
        "xen_sysctl_page_offline_op",
        sysctl.xen_sysctl_page_offline_op,
        24,
        {"cmd": 0, "start": 4, "end": 8, "status": 16},
    ),
    ("xen_sysctl_cputopo", sysctl.xen_sysctl_cputopo, 12, {"core": 0, "socket": 4, "node": 8}),
    ("xen_sysctl_cputopoinfo", sysctl.xen_sysctl_cputopoinfo, 16, {"num_cpus": 0, "cputopo": 8}),
    ("xen_sysctl_meminfo", sysctl.xen_sysctl_meminfo, 16, {"memsize": 0, "memfree": 8}),
    (
        "xen_sysctl_cpupool_op",
        sysctl.xen_sysctl_cpupool_op,
        40,
        {
            "op": 0,
            "cpupool_id": 4,
            "sched_id": 8,
            "domid": 12,
            "cpu": 16,
            "n_dom": 20,
            "cpumap.bitmap": 24,
            "cpumap.nr_bits": 32,
        },
    ),
    (
        "xen_sysctl_pcitopoinfo",
        sysctl.xen_sysctl_pcitopoinfo,
        24,
        {"num_devs": 0, "devs": 8, "nodes": 16},
    ),
    ("physdev_pci_device", physdev.physdev_pci_device, 4, {"seg": 0, "bus": 2, "devfn": 3}),
    (
        "xen_sysctl_numainfo",
        sysctl.xen_sysctl_numainfo,
        24,
        {"num_nodes": 0, "meminfo": 8, "distance": 16},
    ),
]


@pytest.mark.parametrize(
    ("struct", "c_size", "offsets"),
    [layout[1:] for layout in LAYOUTS],
    ids=[layout[0] for layout in LAYOUTS],
)
def test_size_and_offsets_match_c(
    struct: construct.Construct, c_size: int, offsets: dict[str, int]
) -> None:
    assert struct.sizeof() == c_size
    assert len(struct.build(_zero(struct))) == c_size
    assert {path: offset_of(struct, path) for path in offsets} == offsets


@pytest.mark.parametrize(("name", "struct"), [(layout[0], layout[1]) for layout in LAYOUTS])
def test_every_layout_compiles_and_round_trips_zeroes(
    name: str, struct: construct.Construct
) -> None:
    obj = _zero(struct)
    if name in ("xen_domctl", "xen_sysctl"):
        obj["u"] = bytes(128)  # parse returns the full union
    check_layout(struct, obj, bytes(struct.sizeof()))


# ---------------------------------------------------------------------------
# Wire bytes of typical hypercall arguments
# ---------------------------------------------------------------------------


def test_domctl_max_mem_in_envelope() -> None:
    payload = cstruct.pack("<Q", 0x40000)
    check_layout(domctl.xen_domctl_max_mem, {"max_memkb": 0x40000}, payload)
    union = payload + bytes(120)
    obj = {"cmd": 11, "interface_version": 0x18, "domain": 7, "_pad": [0, 0, 0], "u": union}
    check_layout(domctl.xen_domctl, obj, cstruct.pack("<IIH6x", 11, 0x18, 7) + union)


def test_domctl_envelope_zero_fills_a_short_payload_and_rejects_a_long_one() -> None:
    short = {"cmd": 5, "interface_version": 0x18, "domain": 1, "u": b"\xaa\xbb"}
    data = domctl.xen_domctl.build(short)
    assert data == cstruct.pack("<IIH6x", 5, 0x18, 1) + b"\xaa\xbb" + bytes(126)
    assert domctl.xen_domctl.compile().build(short) == data
    with pytest.raises(construct.ConstructError):
        domctl.xen_domctl.build({**short, "u": bytes(129)})


def test_domctl_pad_is_a_named_field_visible_on_parse() -> None:
    data = cstruct.pack("<IIH3H", 1, 0x18, 0, 0x1111, 0x2222, 0x3333) + bytes(128)
    assert plain(domctl.xen_domctl.parse(data))["_pad"] == [0x1111, 0x2222, 0x3333]


def test_createdomain_hvm() -> None:
    handle = bytes(range(16))
    obj = {
        "ssidref": 0,
        "handle": handle,
        "flags": 1 | 2 | 32,  # hvm | hap | iommu
        "iommu_opts": 0,
        "max_vcpus": 4,
        "max_evtchn_port": 1023,
        "max_grant_frames": -1,
        "max_maptrack_frames": -1,
        "grant_opts": 2,
        "altp2m": {"opts": 0, "nr": 10},
        "vmtrace_size": 0,
        "cpupool_id": 0,
        "arch": {"emulation_flags": 0x7FF, "misc_flags": 1},
    }
    data = cstruct.pack(
        "<I16sIIIIiiIHHIIII", 0, handle, 35, 0, 4, 1023, -1, -1, 2, 0, 10, 0, 0, 0x7FF, 1
    )
    check_layout(domctl.xen_domctl_createdomain, obj, data)


def test_getdomaininfo_with_a_claim() -> None:
    handle = b"\x5a" * 16
    obj = {
        "domain": 3,
        "pad1": 0,
        "flags": 0xFFFF0000 | 1 << 3,  # never shut down (code ~0), paused
        "tot_pages": 512,
        "max_pages": 262144,
        "outstanding_pages": 1024,
        "shr_pages": 0,
        "paged_pages": 0,
        "shared_info_frame": 0xFEFFF,
        "cpu_time": 123456789,
        "nr_online_vcpus": 2,
        "max_vcpu_id": 1,
        "ssidref": 0,
        "handle": handle,
        "cpupool": 0,
        "gpaddr_bits": 52,
        "pad2": bytes(7),
        "arch_config": {"emulation_flags": 1, "misc_flags": 0},
    }
    data = (
        cstruct.pack("<HHI", 3, 0, 0xFFFF0008)
        + cstruct.pack("<7Q", 512, 262144, 1024, 0, 0, 0xFEFFF, 123456789)
        + cstruct.pack("<III16sI", 2, 1, 0, handle, 0)
        + cstruct.pack("<B7xII", 52, 1, 0)
    )
    check_layout(domctl.xen_domctl_getdomaininfo, obj, data)


def test_named_pad_fields_default_to_zero_on_build() -> None:
    info = _zero(domctl.xen_domctl_getdomaininfo)
    del info["pad1"], info["pad2"]
    assert domctl.xen_domctl_getdomaininfo.build(info) == bytes(112)
    assert domctl.xen_memory_claim.build({"pages": 1, "target": 0}) == cstruct.pack("<QII", 1, 0, 0)
    physinfo = _zero(sysctl.xen_sysctl_physinfo)
    del physinfo["pad"]
    assert sysctl.xen_sysctl_physinfo.build(physinfo) == bytes(112)


def test_nodeaffinity_hides_tail_padding() -> None:
    obj = {"nodemap": {"bitmap": 0x7F0000001000, "nr_bits": 64}}
    data = cstruct.pack("<QI4x", 0x7F0000001000, 64)
    check_layout(domctl.xen_domctl_nodeaffinity, obj, data)
    dirty = data[:12] + b"\xff" * 4
    assert plain(domctl.xen_domctl_nodeaffinity.parse(dirty)) == obj


def test_v7_claim_set_entries_and_payload() -> None:
    entries = [
        {"pages": 2048, "target": 0x80000000, "cmd": 0},  # host-wide
        {"pages": 1 << 40, "target": 1, "cmd": 0},  # node 1
    ]
    for entry in entries:
        data = cstruct.pack("<QII", entry["pages"], entry["target"], 0)
        check_layout(domctl.xen_memory_claim, entry, data)
    payload = {"claim_set": 0x7FFF12340000, "nr_entries": 2, "mode": 0}
    check_layout(
        domctl.xen_domctl_claim_memory, payload, cstruct.pack("<QII", 0x7FFF12340000, 2, 0)
    )


def test_reservation_for_populate_and_claim() -> None:
    populate = {
        "extent_start": 0x7F00DEAD0000,
        "nr_extents": 512,
        "extent_order": 9,
        "mem_flags": 0x20400,  # exact node 3
        "domid": 0x7FF0,
    }
    data = cstruct.pack("<QQIIH6x", 0x7F00DEAD0000, 512, 9, 0x20400, 0x7FF0)
    check_layout(memory.xen_memory_reservation, populate, data)
    claim = {"extent_start": 0, "nr_extents": 1024, "extent_order": 0, "mem_flags": 0, "domid": 5}
    check_layout(memory.xen_memory_reservation, claim, cstruct.pack("<QQIIH6x", 0, 1024, 0, 0, 5))
    dirty = data[:26] + b"\xee" * 6
    assert plain(memory.xen_memory_reservation.parse(dirty)) == populate


def test_memory_domain_and_vmemrange() -> None:
    check_layout(memory.xen_memory_domain, {"domid": 9}, cstruct.pack("<H", 9))
    rng = {"start": 0, "end": 1 << 32, "flags": 0, "nid": 1}
    check_layout(memory.xen_vmemrange, rng, cstruct.pack("<QQII", 0, 1 << 32, 0, 1))


def test_sysctl_physinfo_in_envelope() -> None:
    obj = {
        "threads_per_core": 2,
        "cores_per_socket": 8,
        "nr_cpus": 32,
        "max_cpu_id": 31,
        "nr_nodes": 2,
        "max_node_id": 63,
        "cpu_khz": 2_400_000,
        "capabilities": 1 | 2 | 8,
        "arch_capabilities": 0,
        "pad": 0,
        "total_pages": 1 << 25,
        "free_pages": 1 << 24,
        "scrub_pages": 0,
        "outstanding_pages": 4096,
        "max_mfn": (1 << 25) - 1,
        "hw_cap": [1, 2, 3, 4, 5, 6, 7, 8],
    }
    data = (
        cstruct.pack("<10I", 2, 8, 32, 31, 2, 63, 2_400_000, 11, 0, 0)
        + cstruct.pack("<5Q", 1 << 25, 1 << 24, 0, 4096, (1 << 25) - 1)
        + cstruct.pack("<8I", 1, 2, 3, 4, 5, 6, 7, 8)
    )
    check_layout(sysctl.xen_sysctl_physinfo, obj, data)
    union = data + bytes(16)
    envelope = {"cmd": 3, "interface_version": 0x16, "u": union}
    check_layout(sysctl.xen_sysctl, envelope, cstruct.pack("<II", 3, 0x16) + union)


def test_sysctl_numainfo_meminfo_and_availheap() -> None:
    numa = {"num_nodes": 2, "meminfo": 0x1000, "distance": 0x2000}
    check_layout(sysctl.xen_sysctl_numainfo, numa, cstruct.pack("<I4xQQ", 2, 0x1000, 0x2000))
    offline = {"memsize": 0xFFFFFFFF, "memfree": 0xFFFFFFFF}  # XEN_INVALID_MEM_SZ, widened
    check_layout(sysctl.xen_sysctl_meminfo, offline, b"\xff\xff\xff\xff\x00\x00\x00\x00" * 2)
    heap = {"min_bitwidth": 0, "max_bitwidth": 32, "node": -1, "avail_bytes": 1 << 30}
    check_layout(sysctl.xen_sysctl_availheap, heap, cstruct.pack("<IIi4xQ", 0, 32, -1, 1 << 30))


def test_sysctl_page_offline_domain_list_and_topology() -> None:
    op = {"cmd": 1, "start": 0x1000, "end": 0x10FF, "status": 0x7F0000000000}
    check_layout(
        sysctl.xen_sysctl_page_offline_op,
        op,
        cstruct.pack("<III4xQ", 1, 0x1000, 0x10FF, op["status"]),
    )
    lst = {"first_domain": 1, "max_domains": 64, "buffer": 0x3000, "num_domains": 3}
    check_layout(
        sysctl.xen_sysctl_getdomaininfolist, lst, cstruct.pack("<H2xIQI4x", 1, 64, 0x3000, 3)
    )
    topo = {"num_cpus": 4, "cputopo": 0x4000}
    check_layout(sysctl.xen_sysctl_cputopoinfo, topo, cstruct.pack("<I4xQ", 4, 0x4000))
    cpu = {"core": 0xFFFFFFFF, "socket": 0, "node": 1}
    check_layout(sysctl.xen_sysctl_cputopo, cpu, cstruct.pack("<III", 0xFFFFFFFF, 0, 1))
    console = {
        "clear": 0,
        "incremental": 1,
        "pad0": 0,
        "pad1": 0,
        "index": 77,
        "buffer": 0x5000,
        "count": 4096,
    }
    check_layout(
        sysctl.xen_sysctl_readconsole,
        console,
        cstruct.pack("<BBBBIQI4x", 0, 1, 0, 0, 77, 0x5000, 4096),
    )


# ---------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------


def test_primitive_widths() -> None:
    widths = {
        "uint8_t": 1,
        "uint16_t": 2,
        "uint32_t": 4,
        "int32_t": 4,
        "uint64_t": 8,
        "domid_t": 2,
        "xen_pfn_t": 8,
        "xen_ulong_t": 8,
        "uint64_aligned_t": 8,
        "guest_handle": 8,
        "xen_domain_handle_t": 16,
    }
    assert {name: getattr(xen, name).sizeof() for name in widths} == widths
    assert xen.int32_t.build(-1) == b"\xff" * 4
    assert xen.uint32_t.build(1) == b"\x01\x00\x00\x00"  # little-endian


def test_hypercall_numbers_domids_and_page_shift() -> None:
    assert (
        xen.HYPERVISOR_memory_op,
        xen.HYPERVISOR_multicall,
        xen.HYPERVISOR_sched_op,
        xen.HYPERVISOR_sysctl,
        xen.HYPERVISOR_domctl,
    ) == (12, 13, 29, 35, 36)
    assert (
        xen.DOMID_FIRST_RESERVED,
        xen.DOMID_SELF,
        xen.DOMID_IO,
        xen.DOMID_XEN,
        xen.DOMID_COW,
        xen.DOMID_INVALID,
        xen.DOMID_ANY,
        xen.DOMID_IDLE,
    ) == (0x7FF0, 0x7FF0, 0x7FF1, 0x7FF2, 0x7FF3, 0x7FF4, 0x7FF5, 0x7FFF)
    assert xen.XEN_PAGE_SHIFT == 12


# Every errno of Xen master's public/errno.h, with its value.
XEN_ERRNOS = {
    "EPERM": 1,
    "ENOENT": 2,
    "ESRCH": 3,
    "EINTR": 4,
    "EIO": 5,
    "ENXIO": 6,
    "E2BIG": 7,
    "ENOEXEC": 8,
    "EBADF": 9,
    "ECHILD": 10,
    "EAGAIN": 11,
    "EWOULDBLOCK": 11,
    "ENOMEM": 12,
    "EACCES": 13,
    "EFAULT": 14,
    "EBUSY": 16,
    "EEXIST": 17,
    "EXDEV": 18,
    "ENODEV": 19,
    "ENOTDIR": 20,
    "EISDIR": 21,
    "EINVAL": 22,
    "ENFILE": 23,
    "EMFILE": 24,
    "ENOSPC": 28,
    "EROFS": 30,
    "EMLINK": 31,
    "EDOM": 33,
    "ERANGE": 34,
    "EDEADLK": 35,
    "EDEADLOCK": 35,
    "ENAMETOOLONG": 36,
    "ENOLCK": 37,
    "ENOSYS": 38,
    "ENOTEMPTY": 39,
    "ENODATA": 61,
    "ETIME": 62,
    "EBADMSG": 74,
    "EOVERFLOW": 75,
    "EILSEQ": 84,
    "ERESTART": 85,
    "ENOTSOCK": 88,
    "EMSGSIZE": 90,
    "EOPNOTSUPP": 95,
    "EADDRINUSE": 98,
    "EADDRNOTAVAIL": 99,
    "ENOBUFS": 105,
    "EISCONN": 106,
    "ENOTCONN": 107,
    "ETIMEDOUT": 110,
    "ECONNREFUSED": 111,
}


def test_errno_values_are_xens_and_complete() -> None:
    defined = {name: value for name, value in vars(errno).items() if name[:1] == "E"}
    assert defined == XEN_ERRNOS


def test_errorcode_names_each_value_once_by_its_primary_name() -> None:
    assert errno.errorcode == {
        value: name
        for name, value in XEN_ERRNOS.items()
        if name not in ("EWOULDBLOCK", "EDEADLOCK")
    }
    assert (errno.errorcode[11], errno.errorcode[35], errno.errorcode[85]) == (
        "EAGAIN",
        "EDEADLK",
        "ERESTART",
    )


def test_domctl_version_commands_and_flags() -> None:
    assert domctl.XEN_DOMCTL_INTERFACE_VERSION == 0x00000018
    commands = {
        "createdomain": 1,
        "destroydomain": 2,
        "pausedomain": 3,
        "unpausedomain": 4,
        "getdomaininfo": 5,
        "max_mem": 11,
        "max_vcpus": 15,
        "setnodeaffinity": 68,
        "getnodeaffinity": 69,
        "setvnumainfo": 74,
        "get_domain_state": 90,
        "claim_memory": 91,
    }
    assert {c: getattr(domctl, f"XEN_DOMCTL_{c}") for c in commands} == commands
    cdf = ["hvm", "hap", "s3_integrity", "oos_off", "xs_domain", "iommu", "nested_virt", "vpmu"]
    cdf.append("trap_unmapped_accesses")
    assert [getattr(domctl, f"XEN_DOMCTL_CDF_{f}") for f in cdf] == [1 << i for i in range(9)]
    dominf = ["dying", "hvm_guest", "shutdown", "paused", "blocked", "running", "debugged"]
    dominf += ["xs_domain", "hap"]
    assert [getattr(domctl, f"XEN_DOMINF_{f}") for f in dominf] == [1 << i for i in range(9)]
    assert (domctl.XEN_DOMINF_shutdownmask, domctl.XEN_DOMINF_shutdownshift) == (255, 16)
    assert domctl.XEN_INVALID_MAX_VCPU_ID == 0xFFFFFFFF


def test_v7_claim_set_constants_and_aliases() -> None:
    assert domctl.XEN_DOMCTL_claim_memory == 91
    assert (domctl.XEN_DOMCTL_CLAIM_MEMORY_SET, domctl.XEN_DOMCTL_CLAIM_MEMORY_GET) == (0, 1)
    assert domctl.XEN_DOMCTL_CLAIM_MEMORY_HOST == 0x80000000
    assert domctl.XEN_DOMCTL_CLAIM_MEMORY_LEGACY == 0x40000000
    assert domctl.xen_memory_claim_t is domctl.xen_memory_claim
    assert domctl.memory_claim_t is domctl.xen_memory_claim


def test_memory_op_commands_and_continuation_encoding() -> None:
    commands = {
        "increase_reservation": 0,
        "decrease_reservation": 1,
        "maximum_ram_page": 2,
        "current_reservation": 3,
        "maximum_reservation": 4,
        "populate_physmap": 6,
        "exchange": 11,
        "maximum_gpfn": 14,
        "claim_pages": 24,
    }
    assert {c: getattr(memory, f"XENMEM_{c}") for c in commands} == commands
    assert (memory.MEMOP_EXTENT_SHIFT, memory.MEMOP_CMD_MASK) == (6, 0x3F)


def test_xenmemf_encodings() -> None:
    assert memory.XENMEMF_address_bits(32) == 32
    assert memory.XENMEMF_get_address_bits(0x20420) == 0x20
    assert memory.XENMEMF_node(0) == 0x100
    assert memory.XENMEMF_node(3) == 0x400
    assert memory.XENMEMF_get_node(0) == 0xFF  # no node given: NUMA_NO_NODE
    assert memory.XENMEMF_get_node(0x100) == 0
    assert memory.XENMEMF_get_node(0x20400) == 3
    assert memory.XENMEMF_populate_on_demand == 0x10000
    assert memory.XENMEMF_exact_node_request == 0x20000
    assert memory.XENMEMF_vnode == 0x40000
    assert memory.XENMEMF_exact_node(3) == 0x20400
    assert memory.XENMEMF_exact_node(0) == 0x20100


def test_sysctl_version_commands_and_capabilities() -> None:
    assert sysctl.XEN_SYSCTL_INTERFACE_VERSION == 0x00000016
    commands = {
        "readconsole": 1,
        "physinfo": 3,
        "getdomaininfolist": 6,
        "availheap": 9,
        "page_offline_op": 14,
        "cputopoinfo": 16,
        "numainfo": 17,
    }
    assert {c: getattr(sysctl, f"XEN_SYSCTL_{c}") for c in commands} == commands
    caps = ["hvm", "pv", "directio", "hap", "shadow", "iommu_hap_pt_share", "vmtrace", "vpmu"]
    caps += ["gnttab_v1", "gnttab_v2"]
    assert [getattr(sysctl, f"XEN_SYSCTL_PHYSCAP_{c}") for c in caps] == [1 << i for i in range(10)]
    assert sysctl.XEN_SYSCTL_PHYSCAP_MAX == 1 << 9


def test_numainfo_and_cputopo_invalid_markers_are_32_bit_all_ones() -> None:
    assert sysctl.XEN_INVALID_MEM_SZ == 0xFFFFFFFF
    assert sysctl.XEN_INVALID_NODE_DIST == 0xFFFFFFFF
    assert sysctl.XEN_INVALID_CORE_ID == 0xFFFFFFFF
    assert sysctl.XEN_INVALID_SOCKET_ID == 0xFFFFFFFF
    assert sysctl.XEN_INVALID_NODE_ID == 0xFFFFFFFF


def test_page_offline_commands_and_status_bits() -> None:
    assert (
        sysctl.sysctl_page_offline,
        sysctl.sysctl_page_online,
        sysctl.sysctl_query_page_offline,
    ) == (1, 2, 3)
    bits = {
        "PG_OFFLINE_STATUS_MASK": 0xFF,
        "PG_OFFLINE_INVALID": 0x1,
        "PG_OFFLINE_OFFLINED": 0x2,
        "PG_OFFLINE_PENDING": 0x4,
        "PG_OFFLINE_FAILED": 0x8,
        "PG_OFFLINE_AGAIN": 0x10,
        "PG_ONLINE_FAILED": 0x8,
        "PG_ONLINE_ONLINED": 0x2,
        "PG_OFFLINE_STATUS_OFFLINED": 0x2,
        "PG_OFFLINE_STATUS_ONLINE": 0x4,
        "PG_OFFLINE_STATUS_OFFLINE_PENDING": 0x8,
        "PG_OFFLINE_STATUS_BROKEN": 0x10,
        "PG_OFFLINE_MISC_MASK": 0xFF0,
        "PG_OFFLINE_XENPAGE": 0x100,
        "PG_OFFLINE_DOM0PAGE": 0x200,
        "PG_OFFLINE_ANONYMOUS": 0x400,
        "PG_OFFLINE_NOT_CONV_RAM": 0x800,
        "PG_OFFLINE_OWNED": 0x1000,
        "PG_OFFLINE_BROKEN": 0x2000,
        "PG_ONLINE_BROKEN": 0x2000,
        "PG_OFFLINE_OWNER_SHIFT": 16,
    }
    defined = {n: v for n, v in vars(sysctl).items() if n.startswith(("PG_OFFLINE", "PG_ONLINE"))}
    assert defined == bits


# ---------------------------------------------------------------------------
# Fields named like dict methods
# ---------------------------------------------------------------------------

DICT_ATTRIBUTES = {name for name in dir(dict) if not name.startswith("_")}
# readconsole's ``clear`` once decoded into a construct Container, where the attribute was
# dict.clear: every console read cleared the ring. Decoded records have plain attributes;
# this keeps it so for every field so named, in any layout, present or future.


def _public_layouts() -> dict[str, construct.Construct]:
    """Every layout of every module of the public package."""
    modules = [
        importlib.import_module(f"hypervisor_model.public.{info.name}")
        for info in pkgutil.iter_modules(hypervisor_model.public.__path__)
    ]
    return {
        name: value
        for module in modules
        for name, value in vars(module).items()
        if isinstance(_bare(value), Struct) and not name.endswith("_t")
    }


def _dict_named(layout: construct.Construct, path: str = "") -> list[str]:
    found = []
    for sub in _bare(layout).subcons:
        if sub.name is None:
            continue
        if sub.name in DICT_ATTRIBUTES:
            found.append(path + sub.name)
        if isinstance(_bare(sub), Struct):
            found += _dict_named(sub, f"{path}{sub.name}.")
    return found


def test_fields_named_like_dict_methods_decode_to_the_field() -> None:
    """Every field named like a dict method (readconsole's ``clear`` and debug_keys' ``keys``
    today) reads as its value, by attribute and by item."""
    layouts = _public_layouts()
    found = {(name, path) for name, layout in layouts.items() for path in _dict_named(layout)}
    assert {("xen_sysctl_readconsole", "clear"), ("xen_sysctl_debug_keys", "keys")} <= found
    for name, path in sorted(found):
        layout = layouts[name]
        offset = offset_of(layout, path)
        data = bytearray(layout.sizeof())
        data[offset : offset + 1] = b"\x07"
        record = guest_memory.parse(layout, bytes(data))
        *outer, field = path.split(".")
        for step in outer:
            record = getattr(record, step)
        assert getattr(record, field) == record[field] == 7, f"{name}.{path}"

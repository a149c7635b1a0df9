"""Random bytes at every hypercall entry: the model answers with a number, never an exception.

domctl, sysctl, memory_op and multicall get random command words, interface versions, domids and
payloads whose guest handles point into live hypercall buffers full of random bytes or at
garbage addresses (DESIGN.md: a bad handle is EFAULT, never a crash). After each call the
invariants hold; a negative result is a known errno; populate/increase/decrease never return
one (fact sheet §6.1); and a claim request that fails leaves every claim as it was (v7 notes
§2: domain_set_claim_entries is atomic; §1: the handler fails before touching anything).
"""

from __future__ import annotations

import re
import struct
import tracemalloc
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hypervisor_model
from hypervisor_model.guest_memory import ARENA_BASE, USER_LIMIT
from hypervisor_model.public import domctl, errno, memory, sysctl
from hypervisor_model.public.domctl import (
    XEN_DOMCTL_CLAIM_MEMORY_HOST as HOST,
)
from hypervisor_model.public.domctl import (
    XEN_DOMCTL_CLAIM_MEMORY_LEGACY as LEGACY,
)
from hypervisor_model.public.domctl import XEN_DOMCTL_max_vcpus, xen_domctl_max_vcpus
from hypervisor_model.public.xen import (
    DOMID_ANY,
    DOMID_SELF,
    HYPERVISOR_domctl,
    HYPERVISOR_memory_op,
    HYPERVISOR_multicall,
    HYPERVISOR_sysctl,
    HYPERVISOR_xen_version,
)
from hypervisor_model.snapshot import save_state

RANGES = [[(0, 320)], [(320, 640)], [(640, 768), (1024, 1216)]]  # as test_properties
ERRNOS = {v for k, v in vars(errno).items() if re.fullmatch(r"E[A-Z0-9]+", k)}
U32, U64 = 2**32 - 1, 2**64 - 1
Call = tuple[int, tuple[int, ...]]  # a hypercall number and its argument words


def commands(module: Any, prefix: str) -> list[int]:
    """Every command number a public ABI module names (lower-case names are commands)."""
    return sorted({v for k, v in vars(module).items() if re.match(prefix + "[a-z]", k)})


DOMCTLS = commands(domctl, "XEN_DOMCTL_")
SYSCTLS = commands(sysctl, "XEN_SYSCTL_")
MEMOPS = commands(memory, "XENMEM_")
RESERVATION_OPS = {
    memory.XENMEM_increase_reservation,
    memory.XENMEM_decrease_reservation,
    memory.XENMEM_populate_physmap,
}

fuzz_settings = settings(
    max_examples=50,  # each example boots a host and makes up to three calls
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def mostly(usual: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> Any:
    """A draw from ``usual`` three times in four, else from ``other``: random input that
    still gets past the first checks often enough to reach the deeper ones."""
    return st.integers(0, 3).flatmap(lambda i: other if i == 3 else usual)


# -- addresses ------------------------------------------------------------------------------

FREED = -1  # stands for the address of a buffer already freed
garbage_st = st.one_of(
    st.sampled_from([0, 1, 0xFFF, ARENA_BASE - 8, FREED, USER_LIMIT - 8, USER_LIMIT, U64]),
    st.integers(0, U64),
)
# A handle: into a live buffer of random bytes (at some offset, maybe its very end), or not.
handle_st = st.one_of(
    st.tuples(st.just("live"), st.binary(max_size=300), st.integers(0, 320)),
    st.tuples(st.just("garbage"), garbage_st),
)
u32_st = st.one_of(st.sampled_from([0, 1, 2, 3, 64, 65, 66, 2**31, U32]), st.integers(0, U32))
u64_st = st.one_of(
    st.sampled_from([0, 1, 2, 100, 959, 960, 2**31, U32, 2**32, U64]), st.integers(0, U64)
)


class Host:
    """A small 3-node host with two domUs holding memory (the HVM one also claims, has
    populate-on-demand entries and cache, and a vNUMA topology), plus the means to place
    bytes in its hypercall arena."""

    def __init__(self, client: type) -> None:
        self.hv = hypervisor_model.boot(ranges=RANGES)
        self.dom0 = client(self.hv)
        self.hvm = self.dom0.create(hvm=True, max_mib=1)  # 256 pages
        assert self.dom0.claim_set(self.hvm, [(HOST, 30), (0, 50)]) == 0
        assert self.dom0.populate(self.hvm, range(16)) == 16
        # populate-on-demand: 64 entries at gfn 64, a cache of 40 - 16 populated = 24
        assert self.dom0.populate(self.hvm, [64], 6, memory.XENMEMF_populate_on_demand) == 1
        assert self.dom0.pod_target(memory.XENMEM_set_pod_target, self.hvm, 40)[0] == 0
        vnuma = struct.pack(  # xen_domctl_vnuma: 2 vnodes, 2 ranges, its one vCPU
            "<IIII4Q",
            2,
            2,
            1,
            0,
            self.place(struct.pack("<4I", 10, 20, 20, 10)),
            self.place(struct.pack("<I", 1)),
            self.place(struct.pack("<2I", 1, 0)),
            self.place(struct.pack("<QQIIQQII", 0, 1 << 20, 0, 0, 1 << 20, 2 << 20, 0, 1)),
        )
        rc = self.call(
            HYPERVISOR_domctl,
            self.place(
                struct.pack(
                    "<IIH6s128s", domctl.XEN_DOMCTL_setvnumainfo, 0x18, self.hvm, bytes(6), vnuma
                )
            ),
        )
        assert rc == 0
        self.pv = self.dom0.create(hvm=False, max_mib=1)
        assert self.dom0.claim_pages(self.pv, 120) == 0
        assert self.dom0.populate(self.pv, range(8), 1) == 8
        assert self.dom0.claim_pages(self.pv, 0) == 0  # claimless: legacy claims can succeed
        for domid in (self.hvm, self.pv):  # one vCPU each, down
            vcpus = dict(max=1)
            assert (
                self.dom0.domctl(XEN_DOMCTL_max_vcpus, domid, xen_domctl_max_vcpus, vcpus)[0] == 0
            )
        self.domids = [0, self.hvm, self.pv]
        freed = self.hv.arena.alloc(64)
        freed.free()
        self.freed = freed.addr

    def place(self, data: bytes) -> int:
        buf = self.hv.arena.alloc(len(data))
        buf.mem[: len(data)] = data
        return buf.addr

    def handle(self, spec: tuple[Any, ...]) -> int:
        if spec[0] == "live":
            _, data, offset = spec
            return self.place(data) + min(offset, len(data))
        return self.freed if spec[1] == FREED else spec[1]

    def domid(self, choice: int) -> int:
        """A domain of this host, or any 16-bit value."""
        return self.domids[choice] if choice < len(self.domids) else choice & 0xFFFF

    def caller(self, choice: int) -> int:
        """Mostly dom0 (the toolstack); sometimes a domU, or a domain that does not exist."""
        return [0, 0, 0, self.hvm, self.pv, 77][choice]

    def claims(self) -> list[Any]:
        state = [self.dom0.claim_get(domid, 65) for domid in self.domids]
        return [*state, self.dom0.physinfo().outstanding_pages]

    def issue(self, call: Call, caller: int = 0) -> int:
        op, words = call
        return self.call(op, *words, caller=caller)

    def call(self, op: int, *words: int, caller: int = 0) -> int:
        rc = self.hv.hypercall(op, *words, caller=caller)
        assert type(rc) is int
        assert rc >= 0 or -rc in ERRNOS, rc
        self.hv.check_invariants()
        return rc


def with_handles(union: bytes, patches: list[tuple[int, int]]) -> bytes:
    """128 union bytes with guest handles written at the given offsets."""
    raw = bytearray(union.ljust(128, b"\0")[:128])
    for offset, handle in patches:
        raw[offset : offset + 8] = handle.to_bytes(8, "little")
    return bytes(raw)


def place_call(host: Host, raw: bytes, arg_kind: str, garbage: int) -> int:
    """The address of the struct: a live copy, a truncated copy, or garbage."""
    if arg_kind == "live":
        return host.place(raw)
    if arg_kind == "short":
        return host.place(raw[: len(raw) // 2])
    return host.freed if garbage == FREED else garbage


arg_kind_st = st.sampled_from(["live", "live", "live", "short", "garbage"])
patches_st = st.lists(st.tuples(st.sampled_from([0, 8, 16]), handle_st), max_size=3)
caller_st = mostly(st.just(0), st.integers(0, 5))
domain_st = mostly(st.integers(0, 2), st.integers(0, 2**16 + 2))

# -- domctl ---------------------------------------------------------------------------------

domctl_st = st.fixed_dictionaries(
    {
        "cmd": mostly(st.sampled_from(DOMCTLS), u32_st),
        "version": mostly(
            st.just(domctl.XEN_DOMCTL_INTERFACE_VERSION),
            st.one_of(st.sampled_from([0, 0x17, 0x19]), u32_st),
        ),
        "domain": st.one_of(
            st.integers(0, 2), st.sampled_from([DOMID_SELF, DOMID_ANY]), st.integers(0, 0xFFFF)
        ),
        "pad": mostly(st.just(bytes(6)), st.binary(min_size=6, max_size=6)),
        "union": st.binary(max_size=128),
        "patches": patches_st,
        "arg": arg_kind_st,
        "garbage": garbage_st,
        "caller": caller_st,
    }
)


def domctl_bytes(host: Host, c: dict[str, Any]) -> bytes:
    union = with_handles(c["union"], [(o, host.handle(h)) for o, h in c["patches"]])
    if c["cmd"] == domctl.XEN_DOMCTL_getnodeaffinity:
        # keep nr_bits small: see test_getnodeaffinity_does_not_allocate_the_guest_bitmap
        nr_bits = int.from_bytes(union[8:12], "little") % (1 << 16)
        union = union[:8] + nr_bits.to_bytes(4, "little") + union[12:]
    domain = c["domain"] if c["domain"] > 2 else host.domids[c["domain"]]
    return struct.pack(
        "<IIH6s128s", c["cmd"], c["version"], domain, c["pad"], union
    )  # xen_domctl: 16-byte header + 128-byte union


def domctl_call(host: Host, c: dict[str, Any]) -> Call:
    return HYPERVISOR_domctl, (place_call(host, domctl_bytes(host, c), c["arg"], c["garbage"]),)


@fuzz_settings
@given(calls=st.lists(domctl_st, min_size=1, max_size=3))
def test_domctl_random_bytes_get_a_number(guest_class: type, calls: list[dict[str, Any]]) -> None:
    host = Host(guest_class)
    for c in calls:
        host.issue(domctl_call(host, c), caller=host.caller(c["caller"]))


# -- claim sets (domctl) and legacy claims (memory_op) ----------------------------------------

claim_entry_st = st.tuples(
    st.one_of(st.integers(0, 400), u64_st),
    st.one_of(st.sampled_from([HOST, LEGACY, 0, 1, 2, 3, 63, 64]), u32_st),
    mostly(st.just(0), u32_st),
)
claim_call_st = st.fixed_dictionaries(
    {
        "entries": st.one_of(
            st.lists(claim_entry_st, max_size=4).map(
                lambda es: b"".join(struct.pack("<QII", *e) for e in es)
            ),
            st.binary(max_size=80),
        ),
        "nr_entries": st.one_of(st.none(), u32_st),  # None: the number of whole entries
        "mode": mostly(st.sampled_from([0, 0, 1]), u32_st),
        "handle": mostly(st.none(), st.tuples(st.just("garbage"), garbage_st)),
        "version": mostly(st.just(domctl.XEN_DOMCTL_INTERFACE_VERSION), u32_st),
        "domain": domain_st,
        "caller": caller_st,
    }
)


@fuzz_settings
@given(calls=st.lists(claim_call_st, min_size=1, max_size=3))
def test_failed_claim_set_changes_no_claim(guest_class: type, calls: list[dict[str, Any]]) -> None:
    """XEN_DOMCTL_claim_memory with random entries, counts, modes and handles: a negative
    result leaves every domain's claim set and the host total as they were."""
    host = Host(guest_class)
    for c in calls:
        entries = c["entries"]
        handle = host.place(entries) if c["handle"] is None else host.handle(c["handle"])
        nr = len(entries) // 16 if c["nr_entries"] is None else c["nr_entries"]
        union = struct.pack("<QII", handle, nr, c["mode"])  # xen_domctl_claim_memory
        raw = struct.pack(
            "<IIH6s128s",
            domctl.XEN_DOMCTL_claim_memory,
            c["version"],
            host.domid(c["domain"]),
            bytes(6),
            union,
        )
        before = host.claims()
        rc = host.call(HYPERVISOR_domctl, host.place(raw), caller=host.caller(c["caller"]))
        if rc < 0:
            assert host.claims() == before


legacy_call_st = st.fixed_dictionaries(
    {
        "reservation": st.one_of(
            st.tuples(
                mostly(st.just(0), garbage_st),
                st.one_of(st.integers(0, 1000), u64_st),
                mostly(st.just(0), u32_st),
                mostly(st.just(0), u32_st),
                domain_st,
            ),
            st.binary(min_size=32, max_size=32),
        ),
        "start_extent": mostly(st.just(0), st.integers(0, 2**58 - 1)),
        "arg": arg_kind_st,
        "garbage": garbage_st,
        "caller": caller_st,
    }
)


@fuzz_settings
@given(calls=st.lists(legacy_call_st, min_size=1, max_size=3))
def test_failed_legacy_claim_changes_no_claim(
    guest_class: type, calls: list[dict[str, Any]]
) -> None:
    """XENMEM_claim_pages with random reservations: a negative result changes no claim."""
    host = Host(guest_class)
    for c in calls:
        r = c["reservation"]
        if isinstance(r, tuple):
            start, nr, order, flags, domain = r
            start = host.freed if start == FREED else start
            r = struct.pack("<QQIIH6x", start, nr, order, flags, host.domid(domain))
        cmd = memory.XENMEM_claim_pages | c["start_extent"] << memory.MEMOP_EXTENT_SHIFT
        before = host.claims()
        arg = place_call(host, r, c["arg"], c["garbage"])
        rc = host.call(HYPERVISOR_memory_op, cmd, arg, caller=host.caller(c["caller"]))
        if rc < 0:
            assert host.claims() == before


# -- memory_op ------------------------------------------------------------------------------

memop_st = st.fixed_dictionaries(
    {
        "op": mostly(st.sampled_from(MEMOPS), st.integers(0, 63)),
        "start_extent": mostly(st.just(0), st.one_of(st.integers(0, 40), st.integers(0, 2**58))),
        "reservation": st.one_of(
            st.tuples(
                st.one_of(st.none(), handle_st),
                st.one_of(st.integers(0, 40), u64_st),
                st.one_of(st.integers(0, 20), u32_st),
                st.one_of(
                    st.builds(
                        lambda node, exact, pod, bits: (
                            memory.XENMEMF_node(node) * (node < 255)
                            | memory.XENMEMF_exact_node_request * exact
                            | memory.XENMEMF_populate_on_demand * pod
                            | bits
                        ),
                        st.integers(0, 255),
                        st.booleans(),
                        st.booleans(),
                        st.sampled_from([0, 0, 12, 13, 20, 32]),
                    ),
                    u32_st,
                ),
                domain_st,
            ),
            st.binary(min_size=32, max_size=32),
        ),
        "arg": arg_kind_st,
        "garbage": garbage_st,
        "caller": caller_st,
    }
)


@fuzz_settings
@given(calls=st.lists(memop_st, min_size=1, max_size=3))
def test_memory_op_random_bytes_get_a_number(
    guest_class: type, calls: list[dict[str, Any]]
) -> None:
    """Random memory_op words and reservations; the reservation ops only ever return a
    count of extents, never an errno (memory.c; fact sheet §6.1)."""
    host = Host(guest_class)
    for c in calls:
        caller = host.caller(c["caller"])
        rc = host.issue(memop_call(host, c), caller=caller)
        if c["op"] in RESERVATION_OPS and caller in host.domids:
            assert rc >= 0


def memop_call(host: Host, c: dict[str, Any]) -> Call:
    r = c["reservation"]
    if isinstance(r, tuple):
        handle, nr, order, flags, domain = r
        extent_start = 0 if handle is None else host.handle(handle)
        r = struct.pack("<QQIIH6x", extent_start, nr, order, flags, host.domid(domain))
    cmd = c["op"] | c["start_extent"] << memory.MEMOP_EXTENT_SHIFT
    return HYPERVISOR_memory_op, (cmd, place_call(host, r, c["arg"], c["garbage"]))


# -- populate-on-demand and the paging pool ---------------------------------------------------


def accounting(host: Host) -> Any:
    """Every domain and the heap as a saved state holds them."""
    doc = save_state(host.hv)
    return doc["domains"], doc["heap"]


pod_target_st = st.fixed_dictionaries(
    {
        "op": st.sampled_from([memory.XENMEM_set_pod_target, memory.XENMEM_get_pod_target]),
        "start_extent": mostly(st.just(0), st.integers(1, 2**58 - 1)),
        "target": st.one_of(st.integers(0, 300), u64_st),
        "domain": domain_st,
        "raw": mostly(st.none(), st.binary(min_size=40, max_size=40)),
        "arg": arg_kind_st,
        "garbage": garbage_st,
        "caller": caller_st,
    }
)
pool_call_st = st.fixed_dictionaries(
    {
        "cmd": st.sampled_from(
            [
                domctl.XEN_DOMCTL_shadow_op,
                domctl.XEN_DOMCTL_get_paging_mempool_size,
                domctl.XEN_DOMCTL_set_paging_mempool_size,
            ]
        ),
        "shadow_op": mostly(st.sampled_from([0, 1, 2, 11, 12, 30, 31, 32]), u32_st),
        "mode": mostly(st.just(0), u32_st),
        "mb": st.one_of(st.integers(0, 4), u32_st),
        "size": st.one_of(st.integers(0, 600).map(lambda p: p << 12), u64_st),
        "domain": domain_st,
        "arg": arg_kind_st,
        "garbage": garbage_st,
        "caller": caller_st,
    }
)


vnuma_call_st = st.fixed_dictionaries(
    {
        "vnuma": st.sampled_from(["set", "get"]),
        "counts": st.tuples(*[st.one_of(st.integers(0, 4), u32_st)] * 3),
        "pad": mostly(st.just(0), u32_st),
        "handles": st.lists(handle_st, min_size=4, max_size=4),
        "domain": domain_st,
        "arg": arg_kind_st,
        "garbage": garbage_st,
        "caller": caller_st,
    }
)


def vnuma_call(host: Host, c: dict[str, Any]) -> Call:
    """XEN_DOMCTL_setvnumainfo or XENMEM_get_vnumainfo with random counts and arrays."""
    a, b, n = c["counts"]
    handles = [host.handle(h) for h in c["handles"]]
    domid = host.domid(c["domain"])
    if c["vnuma"] == "set":
        union = struct.pack("<IIII4Q", a, b, n, c["pad"], *handles)  # xen_domctl_vnuma
        raw = struct.pack(
            "<IIH6s128s", domctl.XEN_DOMCTL_setvnumainfo, 0x18, domid, bytes(6), union
        )
        return HYPERVISOR_domctl, (place_call(host, raw, c["arg"], c["garbage"]),)
    raw = struct.pack("<HHIII3Q", domid, c["pad"] & 0xFFFF, a, b, n, *handles[:3])
    arg = place_call(host, raw, c["arg"], c["garbage"])
    return HYPERVISOR_memory_op, (memory.XENMEM_get_vnumainfo, arg)


@fuzz_settings
@given(
    calls=st.lists(st.one_of(pod_target_st, pool_call_st, vnuma_call_st), min_size=1, max_size=3)
)
def test_failed_pod_pool_and_vnuma_calls_change_nothing(
    guest_class: type, calls: list[dict[str, Any]]
) -> None:
    """XENMEM_{set,get}_pod_target, XEN_DOMCTL_shadow_op, the paging-mempool domctls and
    the vNUMA calls with random words, domains, callers and structures: a number always; a
    failure other than ENOMEM (which keeps what it got, as Xen does) leaves every domain
    and the heap as they were."""
    host = Host(guest_class)
    for c in calls:
        if "vnuma" in c:
            op, words = vnuma_call(host, c)
        elif "target" in c:
            raw = c["raw"] or struct.pack(
                "<QQQQH6x", c["target"], 0, 0, 0, host.domid(c["domain"])
            )  # xen_pod_target
            cmd = c["op"] | c["start_extent"] << memory.MEMOP_EXTENT_SHIFT
            words: tuple[int, ...] = (cmd, place_call(host, raw, c["arg"], c["garbage"]))
            op = HYPERVISOR_memory_op
        else:
            if c["cmd"] == domctl.XEN_DOMCTL_shadow_op:
                union = struct.pack("<IIIIQQII", c["shadow_op"], c["mode"], c["mb"], 0, 0, 0, 0, 0)
            else:
                union = struct.pack("<Q", c["size"])
            raw = struct.pack(
                "<IIH6s128s",
                c["cmd"],
                domctl.XEN_DOMCTL_INTERFACE_VERSION,
                host.domid(c["domain"]),
                bytes(6),
                union,
            )
            words, op = (place_call(host, raw, c["arg"], c["garbage"]),), HYPERVISOR_domctl
        before = accounting(host)
        rc = host.call(op, *words, caller=host.caller(c["caller"]))
        if rc < 0 and rc != -errno.ENOMEM:
            assert accounting(host) == before


# -- sysctl ---------------------------------------------------------------------------------

sysctl_st = st.fixed_dictionaries(
    {
        "cmd": mostly(st.sampled_from(SYSCTLS), u32_st),
        "version": mostly(
            st.just(sysctl.XEN_SYSCTL_INTERFACE_VERSION),
            st.one_of(st.sampled_from([0, 0x15, 0x17]), u32_st),
        ),
        "union": st.binary(max_size=128),
        "patches": patches_st,
        "offline_range": st.tuples(st.integers(0, 1300), st.integers(0, 40)),
        "offline_cmd": mostly(st.integers(1, 3), u32_st),
        "arg": arg_kind_st,
        "garbage": garbage_st,
        "caller": caller_st,
    }
)


@fuzz_settings
@given(calls=st.lists(sysctl_st, min_size=1, max_size=3))
def test_sysctl_random_bytes_get_a_number(guest_class: type, calls: list[dict[str, Any]]) -> None:
    host = Host(guest_class)
    for c in calls:
        host.issue(sysctl_call(host, c), caller=host.caller(c["caller"]))


def sysctl_call(host: Host, c: dict[str, Any]) -> Call:
    union = with_handles(c["union"], [(o, host.handle(h)) for o, h in c["patches"]])
    if c["cmd"] == sysctl.XEN_SYSCTL_page_offline_op:
        # A small range, or an end before the start; status handle from the patches.
        start, span = c["offline_range"]
        end = (start + span) if span < 35 else max(start - 1, 0)
        union = struct.pack("<III", c["offline_cmd"], start, end) + union[12:]
    raw = struct.pack("<II128s", c["cmd"], c["version"], union)  # xen_sysctl: 8 + 128
    return HYPERVISOR_sysctl, (place_call(host, raw, c["arg"], c["garbage"]),)


HUGE = 1 << 24  # more status words than fit in 64 MiB


@fuzz_settings
@given(start=st.integers(0, U32 - HUGE), extra=st.integers(0, U32), cmd=st.integers(1, 3))
def test_page_offline_refuses_huge_ranges_quickly(
    guest_class: type, start: int, extra: int, cmd: int
) -> None:
    """A status array above the model's 64 MiB xmalloc limit is ENOMEM before any work:
    end - start + 1 > 2^24 words of 4 bytes (sysctl.c, page_offline_op)."""
    host = Host(guest_class)
    end = start + HUGE + extra % (U32 - start - HUGE + 1)
    union = struct.pack("<IIIIQ", cmd, start, end, 0, host.place(bytes(64)))
    rc = host.call(HYPERVISOR_sysctl, host.place(struct.pack("<II128s", 14, 0x16, union)))
    assert rc == -errno.ENOMEM


# -- multicall -------------------------------------------------------------------------------

POISON = 0x5A5A_5A5A_5A5A_5A5A  # the result word as the caller leaves it
raw_entry_st = st.tuples(
    mostly(st.sampled_from([HYPERVISOR_multicall, HYPERVISOR_xen_version, 1000]), u64_st),
    st.lists(st.one_of(st.integers(0, 20), u64_st), min_size=6, max_size=6),
)
multicall_st = st.fixed_dictionaries(
    {
        "entries": st.lists(
            st.one_of(
                st.tuples(st.just(domctl_call), domctl_st),
                st.tuples(st.just(memop_call), memop_st),
                st.tuples(st.just(sysctl_call), sysctl_st),
                st.tuples(st.none(), raw_entry_st),
            ),
            max_size=4,
        ),
        "nr_calls": mostly(st.none(), st.one_of(st.integers(0, 6), u64_st)),
        "list": mostly(st.none(), garbage_st),
        "caller": caller_st,
    }
)


@fuzz_settings
@given(calls=st.lists(multicall_st, min_size=1, max_size=2))
def test_multicall_of_random_entries_gets_a_number_per_entry(
    guest_class: type, calls: list[dict[str, Any]]
) -> None:
    """Batches of the other tests' random calls, raw words (nested multicalls among them),
    random counts and lists: the multicall answers a number, every entry's result word is a
    number or untouched, and no other byte of the list changes (multicall.c)."""
    host = Host(guest_class)
    for c in calls:
        entries = [
            make(host, spec) if make is not None else (spec[0], tuple(spec[1]))
            for make, spec in c["entries"]
        ]
        raw = b"".join(
            struct.pack("<8Q", op, POISON, *[w % 2**64 for w in [*words, 0, 0, 0, 0, 0, 0][:6]])
            for op, words in entries  # an entry's words are 64 bits, as registers are
        )
        addr = host.place(raw) if c["list"] is None else c["list"]
        addr = host.freed if addr == FREED else addr
        nr = len(entries) if c["nr_calls"] is None else c["nr_calls"]
        rc = host.call(HYPERVISOR_multicall, addr, nr, caller=host.caller(c["caller"]))
        if c["list"] is not None:
            continue
        after = host.hv.arena.copy_from_guest(addr, len(raw))
        for i in range(len(entries)):
            entry, before = after[i * 64 : (i + 1) * 64], raw[i * 64 : (i + 1) * 64]
            assert entry[:8] + entry[16:] == before[:8] + before[16:]
            (result,) = struct.unpack_from("<q", entry, 8)
            assert result == POISON or result >= 0 or -result in ERRNOS, result
        if rc == 0 and nr <= len(entries):
            assert all(after[i * 64 + 8 : i * 64 + 16] != b"\x5a" * 8 for i in range(nr))


# -- vCPU contexts --------------------------------------------------------------------------

context_st = st.fixed_dictionaries(
    {
        "domain": st.sampled_from(["hvm", "pv"]),
        "vcpu": mostly(st.just(0), st.integers(0, 3)),
        # a zeroed context with some 8-byte words set (flags, CR3, DR6/7, vm_assist...),
        # or random bytes, or a NULL handle (reset), or a handle that faults
        "words": st.lists(
            st.tuples(
                st.sampled_from([512, 4984, 4992, 4984 + 24, 5096, 5104, 5136, 648, 4816]),
                st.one_of(st.sampled_from([0, 0x24, 0x20, 1 << 47, 1 << 32]), u64_st),
            ),
            max_size=4,
        ),
        "flags": mostly(st.sampled_from([0x24, 0x20, 0x4]), u64_st),  # VGCF_online|in_kernel
        "own_cr3": st.booleans(),  # CR3 names a frame the guest owns
        "kind": st.sampled_from(["words", "words", "random", "null", "fault"]),
        "noise": st.binary(min_size=64, max_size=64),
        "caller": caller_st,
    }
)


@fuzz_settings
@given(calls=st.lists(context_st, min_size=1, max_size=4))
def test_vcpu_contexts_change_only_what_succeeds(
    guest_class: type, calls: list[dict[str, Any]]
) -> None:
    """XEN_DOMCTL_setvcpucontext with random contexts: a failure leaves the vCPU as it
    was; a success leaves it up exactly when the context has VGCF_online (a NULL one:
    down)."""
    host = Host(guest_class)
    for c in calls:
        domid = host.hvm if c["domain"] == "hvm" else host.pv
        d = host.hv.find_domain(domid)
        assert d is not None
        ctxt = bytearray(5168)
        ctxt[512:520] = c["flags"].to_bytes(8, "little")
        if c["own_cr3"]:
            ctxt[5008:5016] = (next(iter(d.pages)).start << 12).to_bytes(8, "little")
        for offset, value in c["words"]:
            ctxt[offset : offset + 8] = value.to_bytes(8, "little")
        if c["kind"] == "random":
            ctxt = bytearray(c["noise"] * (5168 // 64) + c["noise"][: 5168 % 64])
        handle = {"null": 0, "fault": host.freed}.get(c["kind"])
        handle = host.place(bytes(ctxt)) if handle is None else handle
        union = struct.pack("<I4xQ", c["vcpu"], handle)  # xen_domctl_vcpucontext
        raw = struct.pack("<IIH6s128s", 12, 0x18, domid, bytes(6), union.ljust(128, b"\0"))
        before = d.vcpu_online
        rc = host.call(HYPERVISOR_domctl, host.place(raw), caller=host.caller(c["caller"]))
        if rc < 0:
            assert d.vcpu_online == before
        else:
            up = c["kind"] != "null" and bool(ctxt[512] & 0x20)  # flags & VGCF_online
            assert d.vcpu_online == (before & ~1) | up


HVM_HEADER = struct.pack("<HHI", 1, 0, 24) + struct.pack("<IIQII", 0x54381286, 1, 0, 0, 0)
record_st = st.one_of(
    st.tuples(st.just(2), mostly(st.just(0), st.integers(0, 3)), st.just("cpu")),
    st.tuples(st.just(14), mostly(st.just(0), st.integers(0, 3)), st.just("mtrr")),
    st.tuples(
        st.sampled_from([0, 1, 2, 3, 14, 20, 21, 0xFFFF]), st.integers(0, 3), st.binary(max_size=64)
    ),
)
stream_st = st.fixed_dictionaries(
    {
        "header": mostly(st.just(HVM_HEADER), st.binary(max_size=40)),
        "records": st.lists(record_st, max_size=4),
        "end": mostly(st.just(True), st.just(False)),
        "cut": mostly(st.none(), st.integers(0, 5000)),
        "cr0": mostly(st.just(0x11), st.sampled_from([0, 1, 0x10, 0x80000010, 0x111])),
    }
)


def _cpu_record(cr0: int) -> bytes:
    body = bytearray(1032)
    body[656:664] = cr0.to_bytes(8, "little")
    return bytes(body)


@fuzz_settings
@given(streams=st.lists(stream_st, min_size=1, max_size=3))
def test_hvm_context_loads_bring_up_exactly_the_vcpus_with_a_cpu_record(
    guest_class: type, streams: list[dict[str, Any]]
) -> None:
    """XEN_DOMCTL_sethvmcontext with random record streams (valid records among them, and
    records of kinds or lengths Xen refuses): on success the vCPUs up are exactly those
    with a CPU record; every answer is 0 or an errno hvm_load gives."""
    host = Host(guest_class)
    d = host.hv.find_domain(host.hvm)
    assert d is not None
    for c in streams:
        stream, cpus, ended = c["header"], 0, False
        for code, instance, body in c["records"]:
            if body == "cpu":
                body = _cpu_record(c["cr0"])
                cpus |= 0 if ended else 1 << instance
            elif body == "mtrr":
                body = bytes(240)
            ended = ended or code == 0  # an END record: what follows is never read
            stream += struct.pack("<HHI", code, instance, len(body)) + body
        stream += struct.pack("<HHI", 0, 0, 0) if c["end"] else b""
        stream = stream[: c["cut"]] if c["cut"] is not None else stream
        union = struct.pack("<I4xQ", len(stream), host.place(stream or b"\0"))
        raw = struct.pack("<IIH6s128s", 34, 0x18, host.hvm, bytes(6), union.ljust(128, b"\0"))
        rc = host.call(HYPERVISOR_domctl, host.place(raw))
        assert rc in (0, -errno.EINVAL, -errno.ENODATA), rc
        if rc == 0:
            assert d.vcpu_online == cpus


version_st = st.fixed_dictionaries(
    {
        "cmd": mostly(st.integers(0, 15), u32_st),
        "handle": st.one_of(st.just(("null",)), handle_st),
        "caller": caller_st,
    }
)


@fuzz_settings
@given(calls=st.lists(version_st, min_size=1, max_size=4))
def test_xen_version_random_commands_and_buffers_get_a_number(
    guest_class: type, calls: list[dict[str, Any]]
) -> None:
    host = Host(guest_class)
    for c in calls:
        arg = 0 if c["handle"] == ("null",) else host.handle(c["handle"])
        host.call(HYPERVISOR_xen_version, c["cmd"], arg, caller=host.caller(c["caller"]))


# -- the hypercall entry itself -------------------------------------------------------------


@fuzz_settings
@given(
    op=st.one_of(
        st.sampled_from(
            [HYPERVISOR_memory_op, HYPERVISOR_sysctl, HYPERVISOR_domctl, HYPERVISOR_multicall]
        ),
        st.integers(-(2**70), 2**70),
    ),
    words=st.lists(st.integers(-(2**65), 2**66), max_size=6),
    caller=st.one_of(st.integers(0, 2), st.integers(-5, 2**17)),
)
def test_random_hypercall_words_get_a_number(
    guest_class: type, op: int, words: list[int], caller: int
) -> None:
    host = Host(guest_class)
    host.call(op, *words, caller=caller)


def test_getnodeaffinity_does_not_allocate_the_guest_bitmap(guest_class: type) -> None:
    """nr_bits is the caller's claim about its buffer; a 2^27-bit map over an 8-byte
    buffer must not make the hypervisor allocate 16 MiB (the copy faults: EFAULT)."""
    host = Host(guest_class)
    nodemap = struct.pack("<QI4x", host.place(bytes(8)), 1 << 27)  # xenctl_bitmap
    raw = struct.pack(
        "<IIH6s128s", domctl.XEN_DOMCTL_getnodeaffinity, 0x18, host.hvm, bytes(6), nodemap
    )
    arg = host.place(raw)
    tracemalloc.start()
    try:
        rc = host.call(HYPERVISOR_domctl, arg)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rc == -errno.EFAULT
    assert peak < 1 << 20, f"peak {peak >> 20} MiB for an 8-byte guest buffer"


def test_page_offline_status_array_costs_what_xen_allocates(guest_class: type) -> None:
    """A 2^18-page range starting beyond max_page: Xen allocates 1 MiB of status words,
    fails the first MFN (EINVAL) and copies the array out (here the buffer is short:
    EFAULT). The model may use a few times that, not tens of MiB."""
    host = Host(guest_class)
    start = 1 << 20  # above this host's max_page (1216)
    union = struct.pack(
        "<IIIIQ", sysctl.sysctl_page_offline, start, start + (1 << 18) - 1, 0, host.place(bytes(64))
    )
    arg = host.place(struct.pack("<II128s", sysctl.XEN_SYSCTL_page_offline_op, 0x16, union))
    tracemalloc.start()
    try:
        rc = host.call(HYPERVISOR_sysctl, arg)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rc == -errno.EFAULT
    assert peak < 4 << 20, f"peak {peak >> 20} MiB for a 1 MiB status array"


# -- vCPU affinity --------------------------------------------------------------------------

affinity_st = st.fixed_dictionaries(
    {
        "domain": st.sampled_from(["hvm", "pv", "dom0"]),
        "vcpu": mostly(st.just(0), st.integers(0, 16)),
        "flags": mostly(st.sampled_from([1, 2, 3, 7]), u32_st),
        # each map: random bytes in a live buffer, a garbage address, or NULL
        "hard": st.one_of(handle_st, st.just(("garbage", 0))),
        "soft": st.one_of(handle_st, st.just(("garbage", 0))),
        "nr_bits": mostly(st.sampled_from([12, 16, 64]), u32_st),
        "caller": st.integers(0, 5),
    }
)


@fuzz_settings
@given(calls=st.lists(affinity_st, min_size=1, max_size=4))
def test_setvcpuaffinity_changes_only_what_succeeds(
    guest_class: type, calls: list[dict[str, Any]]
) -> None:
    """XEN_DOMCTL_setvcpuaffinity with random maps: any failure but EFAULT (which Xen may
    return after the new map is in force, when it cannot write it back) leaves every vCPU's
    affinity and the domain's node affinity as they were; a success leaves a hard map with
    a CPU in it, which getvcpuaffinity then reads (the invariants check the rest)."""
    host = Host(guest_class)
    for c in calls:
        domid = {"hvm": host.hvm, "pv": host.pv, "dom0": 0}[c["domain"]]
        d = host.hv.find_domain(domid)
        assert d is not None
        maps = [struct.pack("<QI4x", host.handle(c[k]), c["nr_bits"]) for k in ("hard", "soft")]
        union = struct.pack("<II", c["vcpu"], c["flags"] & U32) + b"".join(maps)
        raw = struct.pack("<IIH6s128s", 9, 0x18, domid, bytes(6), union.ljust(128, b"\0"))
        before = (dict(d.cpu_hard_affinity), dict(d.cpu_soft_affinity), d.node_affinity)
        rc = host.call(HYPERVISOR_domctl, host.place(raw), caller=host.caller(c["caller"]))
        if rc < 0 and rc != -errno.EFAULT:
            assert (d.cpu_hard_affinity, d.cpu_soft_affinity, d.node_affinity) == before
        if rc == 0:
            out = host.place(bytes(2))
            get = struct.pack("<IIQI4xQI4x", c["vcpu"], 1, out, 16, 0, 0)
            raw = struct.pack("<IIH6s128s", 25, 0x18, domid, bytes(6), get.ljust(128, b"\0"))
            assert host.call(HYPERVISOR_domctl, host.place(raw)) == 0
            assert host.hv.arena.copy_from_guest(out, 2) != bytes(2)

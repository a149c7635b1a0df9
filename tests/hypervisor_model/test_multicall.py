"""``__HYPERVISOR_multicall`` (xen/common/multicall.c do_multicall).

Each entry runs as its own hypercall, as the caller, with its result written back into the
entry's ``result`` word and nothing else of the entry touched (a release build; a debug Xen
scribbles 0xAA over the rest). Reentry is EINVAL in that entry's result; a call list that is
not a guest address, or a count whose byte size overflows, is EFAULT before any entry runs;
an unreadable entry stops the batch with EFAULT after the entries before it ran.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable, Sequence

import pytest
from hypercalls import Guest

import hypervisor_model
from hypervisor_model.guest_memory import PAGE_SIZE, USER_LIMIT, build
from hypervisor_model.public import domctl, memory, version
from hypervisor_model.public.errno import EFAULT, EINVAL, ENOSYS, EPERM, ESRCH
from hypervisor_model.public.xen import (
    DOMID_SELF,
    HYPERVISOR_domctl,
    HYPERVISOR_memory_op,
    HYPERVISOR_multicall,
    HYPERVISOR_xen_version,
)

Hypervisor = hypervisor_model.Hypervisor
ENTRY = struct.Struct("<8Q")  # op, result, args[6]: public/xen.h multicall_entry, 64 bytes
POISON = 0x5A5A_5A5A_5A5A_5A5A  # a result word the caller left; Xen overwrites it
U64 = 2**64


def long(value: int) -> int:
    """A result word as the signed long it holds."""
    return value - U64 if value >> 63 else value


class Batch:
    """A multicall list in a hypercall buffer, each entry's result pre-set to POISON."""

    def __init__(self, hv: Hypervisor, calls: Sequence[Sequence[int]]) -> None:
        self.hv = hv
        self.count = len(calls)
        self.buf = hv.arena.alloc(ENTRY.size * len(calls))
        for i, (op, *args) in enumerate(calls):
            words = [a % U64 for a in args] + [0] * (6 - len(args))
            self.buf.mem[i * ENTRY.size : (i + 1) * ENTRY.size] = ENTRY.pack(op, POISON, *words)
        self.before = bytes(self.buf.mem[: self.buf.size])

    def issue(self, caller: int = 0, nr_calls: int | None = None) -> int:
        count = self.count if nr_calls is None else nr_calls
        return self.hv.hypercall(HYPERVISOR_multicall, self.buf.addr, count, caller=caller)

    def entry(self, i: int) -> tuple[int, ...]:
        return ENTRY.unpack_from(self.buf.mem, i * ENTRY.size)

    def result(self, i: int) -> int:
        return long(self.entry(i)[1])

    def only_results_changed(self) -> bool:
        """Every byte but the result words is as the caller wrote it."""
        after = bytes(self.buf.mem[: self.buf.size])
        return all(
            after[i : i + 8] == self.before[i : i + 8]
            for i in range(0, len(after), 8)
            if i % ENTRY.size != 8
        )


def memory_domain(hv: Hypervisor, domid: int) -> int:
    """A xen_memory_domain argument in a buffer of its own (kept alive by the arena)."""
    buf = hv.arena.alloc(2)
    buf.mem[:2] = domid.to_bytes(2, "little")
    return buf.addr


# -- entries run as hypercalls ------------------------------------------------------------------


def test_one_memory_op_entry_gets_the_full_result_and_nothing_else_changes(
    host: Hypervisor,
) -> None:
    """XENMEM_maximum_ram_page of the 2 x 4096 MiB host: 2 * 4096 * 256 = 0x200000."""
    batch = Batch(host, [(HYPERVISOR_memory_op, memory.XENMEM_maximum_ram_page, 0)])
    assert batch.issue() == 0
    assert batch.result(0) == 0x200000
    assert batch.only_results_changed()


def test_a_result_beyond_32_bits_survives_in_the_entry() -> None:
    """Why libxenctrl uses multicall: a host whose RAM reaches MFN 2^32 answers
    maximum_ram_page 2^32 + 0x100, more than privcmd's int return could carry. (It needs
    some RAM inside the direct map too, where Xen keeps its own pages, dom0's included.)"""
    hv = hypervisor_model.boot(ranges=[[[0x1000, 0x2000], [1 << 32, (1 << 32) + 0x100]]])
    batch = Batch(hv, [(HYPERVISOR_memory_op, memory.XENMEM_maximum_ram_page, 0)])
    assert batch.issue() == 0
    assert batch.result(0) == (1 << 32) + 0x100


def test_entries_run_in_order_each_with_its_own_result(dom0: Guest) -> None:
    """Entry 0 raises d1's limit to 1 MiB (256 pages), entry 1 reads it back; entry 2 is an
    unassigned hypercall (ENOSYS), entry 3 a memory_op of a missing domain (ESRCH); the batch
    goes on past failures and returns 0."""
    hv = dom0.hv
    d1 = dom0.create()
    max_mem = hv.arena.alloc(144)
    raw = build(
        domctl.xen_domctl,
        dict(
            cmd=domctl.XEN_DOMCTL_max_mem,
            interface_version=domctl.XEN_DOMCTL_INTERFACE_VERSION,
            domain=d1,
            u=build(domctl.xen_domctl_max_mem, dict(max_memkb=1024)),
        ),
    )
    max_mem.mem[: len(raw)] = raw
    batch = Batch(
        hv,
        [
            (HYPERVISOR_domctl, max_mem.addr),
            (HYPERVISOR_memory_op, memory.XENMEM_maximum_reservation, memory_domain(hv, d1)),
            (1000, 0),
            (HYPERVISOR_memory_op, memory.XENMEM_maximum_reservation, memory_domain(hv, 42)),
        ],
    )
    assert batch.issue() == 0
    assert [batch.result(i) for i in range(4)] == [0, 256, -ENOSYS, -ESRCH]
    assert batch.only_results_changed()


def test_entries_run_as_the_caller(dom0: Guest) -> None:
    """A domU's batch: its own reservation (DOMID_SELF, 0 pages) is allowed, another domain's
    is EPERM (xsm_memory_stat_reservation), and xen_version answers anyone."""
    hv = dom0.hv
    d1 = dom0.create()
    batch = Batch(
        hv,
        [
            (
                HYPERVISOR_memory_op,
                memory.XENMEM_current_reservation,
                memory_domain(hv, DOMID_SELF),
            ),
            (HYPERVISOR_memory_op, memory.XENMEM_current_reservation, memory_domain(hv, 0)),
            (HYPERVISOR_xen_version, version.XENVER_pagesize, 0),
        ],
    )
    assert batch.issue(caller=d1) == 0
    assert [batch.result(i) for i in range(3)] == [0, -EPERM, PAGE_SIZE]


def test_only_five_argument_words_reach_the_hypercall(
    host: Hypervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """multicall_entry.args[5] is never read (public/xen.h: Xen keeps args[5] as ``unused``):
    the handler sees the first five words and a zero."""
    seen: list[tuple[int, ...]] = []

    def handler(hv: Hypervisor, current: object, *words: int) -> int:
        seen.append(words)
        return 0

    monkeypatch.setitem(host._handlers, HYPERVISOR_xen_version, handler)
    batch = Batch(host, [(HYPERVISOR_xen_version, 1, 2, 3, 4, 5, 6)])
    assert batch.issue() == 0
    assert seen == [(1, 2, 3, 4, 5, 0)]


def test_an_op_with_high_bits_is_no_hypercall(host: Hypervisor) -> None:
    """op is a whole xen_ulong_t: 12 + 2^32 is not memory_op (call_handlers: ENOSYS)."""
    batch = Batch(host, [((1 << 32) + HYPERVISOR_memory_op, memory.XENMEM_maximum_ram_page, 0)])
    assert batch.issue() == 0
    assert batch.result(0) == -ENOSYS


def test_an_empty_batch_does_nothing(host: Hypervisor) -> None:
    batch = Batch(host, [(HYPERVISOR_memory_op, memory.XENMEM_maximum_ram_page, 0)])
    assert batch.issue(nr_calls=0) == 0
    assert batch.result(0) == long(POISON)


# -- reentry, handles, counts ---------------------------------------------------------------------


def test_a_nested_multicall_is_einval_in_its_entry_and_the_batch_goes_on(host: Hypervisor) -> None:
    """Entry 1 is a multicall of entry 0's own list: refused (mc_state busy), entry 0 did not
    run again (its result is still the first run's), and entry 2 runs."""
    batch = Batch(host, [(HYPERVISOR_memory_op, memory.XENMEM_maximum_ram_page, 0)])
    inner = batch.buf.addr
    outer = Batch(
        host,
        [
            (HYPERVISOR_memory_op, memory.XENMEM_maximum_ram_page, 0),
            (HYPERVISOR_multicall, inner, 1),
            (HYPERVISOR_xen_version, version.XENVER_pagesize, 0),
        ],
    )
    assert outer.issue() == 0
    assert [outer.result(i) for i in range(3)] == [0x200000, -EINVAL, PAGE_SIZE]
    assert batch.result(0) == long(POISON)  # the nested list never ran


def test_after_a_refused_nesting_the_next_multicall_works(host: Hypervisor) -> None:
    """The busy flag is the outer call's and is cleared when it returns (mcs->flags = 0)."""
    nested = Batch(host, [(HYPERVISOR_multicall, 0, 0)])
    assert nested.issue() == 0
    assert nested.result(0) == -EINVAL
    assert nested.issue() == 0  # not left busy by the refused inner call


def _nowhere(hv: Hypervisor) -> int:
    return hv.arena.alloc(PAGE_SIZE).addr + PAGE_SIZE  # the guard page after a buffer


@pytest.mark.parametrize(
    ("where", "nr_calls"),
    [
        (lambda hv: 0, 1),
        (_nowhere, 1),
        (lambda hv: USER_LIMIT, 0),  # not a guest address: EFAULT even for no entries
        (lambda hv: 0xFFFF_8000_0000_0000, 0),  # Xen's own range
    ],
    ids=["NULL", "guard-page", "user-limit-empty", "xen-range-empty"],
)
def test_a_call_list_xen_cannot_read_is_efault(
    host: Hypervisor, where: Callable[[Hypervisor], int], nr_calls: int
) -> None:
    assert host.hypercall(HYPERVISOR_multicall, where(host), nr_calls) == -EFAULT


@pytest.mark.parametrize("nr_calls", [(1 << 58) - 1, 1 << 58, U64 - 1])
def test_a_count_whose_bytes_overflow_is_efault_before_any_entry(
    host: Hypervisor, nr_calls: int
) -> None:
    """array_access_ok: nr_calls must be below ~0UL / 64 = 2^58 - 1, or nothing runs."""
    batch = Batch(host, [(HYPERVISOR_memory_op, memory.XENMEM_maximum_ram_page, 0)])
    assert batch.issue(nr_calls=nr_calls) == -EFAULT
    assert batch.result(0) == long(POISON)


@pytest.mark.parametrize("nr_calls", [2, (1 << 58) - 2])
def test_a_list_shorter_than_its_count_runs_what_it_holds_then_efaults(
    host: Hypervisor, nr_calls: int
) -> None:
    """Only the start of the list is checked (array_access_ok); the arena maps exactly the
    one-entry buffer, so entry 0 runs and reading entry 1 faults."""
    batch = Batch(host, [(HYPERVISOR_memory_op, memory.XENMEM_maximum_ram_page, 0)])
    assert batch.issue(nr_calls=nr_calls) == -EFAULT
    assert batch.result(0) == 0x200000


def test_a_missing_caller_is_esrch_before_anything(host: Hypervisor) -> None:
    batch = Batch(host, [(HYPERVISOR_memory_op, memory.XENMEM_maximum_ram_page, 0)])
    assert batch.issue(caller=42) == -ESRCH
    assert batch.result(0) == long(POISON)


# -- preemption between entries -------------------------------------------------------------------


def test_other_hypercalls_run_between_entries(dom0: Guest, monkeypatch: pytest.MonkeyPatch) -> None:
    """At the continuation point between entries 0 and 1 another caller raises d1's limit to
    2 MiB (512 pages): entry 0 read 0 pages, entry 1 reads 512."""
    hv = dom0.hv
    d1 = dom0.create()
    points: list[int] = []

    def competitor() -> None:
        points.append(len(points))
        if len(points) == 1:
            assert dom0.max_mem(d1, 2048) == 0

    monkeypatch.setattr(hv, "preempt_check", competitor)
    arg = memory_domain(hv, d1)
    batch = Batch(hv, [(HYPERVISOR_memory_op, memory.XENMEM_maximum_reservation, arg)] * 3)
    assert batch.issue() == 0
    assert [batch.result(i) for i in range(3)] == [0, 512, 512]
    assert points == [0, 1]  # between entries only: not before the first, not after the last


def test_a_batch_in_another_thread_is_not_reentry(
    host: Hypervisor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The busy flag belongs to the vCPU (here the calling thread): a second thread's
    multicall, run while the first is between entries, is not refused."""
    other: list[int] = []

    def second_thread() -> None:
        batch = Batch(host, [(HYPERVISOR_xen_version, version.XENVER_pagesize, 0)])
        assert batch.issue() == 0
        other.append(batch.result(0))

    def between() -> None:
        t = threading.Thread(target=second_thread)
        t.start()
        t.join()

    monkeypatch.setattr(host, "preempt_check", between)
    batch = Batch(host, [(HYPERVISOR_xen_version, version.XENVER_pagesize, 0)] * 2)
    assert batch.issue() == 0
    assert other == [PAGE_SIZE]


def test_the_machine_reports_one_hypercall_for_a_batch(dom0: Guest) -> None:
    """Trace probes and the per-call invariant check see the multicall, not each entry."""
    hv = dom0.hv
    reports: list[object] = []
    hv.trace_hooks.append(reports.append)
    batch = Batch(hv, [(HYPERVISOR_xen_version, version.XENVER_pagesize, 0)] * 3)
    assert batch.issue() == 0
    assert len(reports) == 1

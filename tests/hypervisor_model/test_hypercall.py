"""The hypercall entry (Hypervisor.hypercall), guest handles and the hypercall-buffer arena.

Dispatch follows Xen: an unassigned hypercall slot is ENOSYS; do_domctl checks the interface
version, then looks the domain up, then asks XSM, then runs the command (arch_do_domctl's
default is ENOSYS); do_sysctl checks the version, then XSM (xen/common/domctl.c, sysctl.c,
memory.c). A handle that does not point into live hypercall memory is EFAULT, with nothing
changed (copy_from_guest fails before any state is touched).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypercalls import createdomain_payload

import hypervisor_model
from hypervisor_model import counters
from hypervisor_model.guest_memory import ARENA_BASE, PAGE_SIZE, GuestFault, build, parse
from hypervisor_model.public import domctl, memory, sysctl
from hypervisor_model.public.errno import EACCES, EFAULT, ENOSYS, EPERM, ESRCH
from hypervisor_model.public.xen import (
    DOMID_ANY,
    DOMID_SELF,
    HYPERVISOR_domctl,
    HYPERVISOR_memory_op,
    HYPERVISOR_sysctl,
)

Hypervisor = hypervisor_model.Hypervisor
Guest = Any  # the raw client of conftest.py, reached through the guest_class fixture
DOMCTL_SIZE = 144  # struct xen_domctl on x86_64
MAX_PAGE_2X4G = 2 * 4096 * 256  # maximum_ram_page of the 2 x 4096 MiB host: 0x200000


def domctl_bytes(
    cmd: int, domain: int = 0, version: int = domctl.XEN_DOMCTL_INTERFACE_VERSION
) -> bytes:
    return build(domctl.xen_domctl, dict(cmd=cmd, interface_version=version, domain=domain, u=b""))


def sysctl_bytes(cmd: int, version: int = sysctl.XEN_SYSCTL_INTERFACE_VERSION) -> bytes:
    return build(sysctl.xen_sysctl, dict(cmd=cmd, interface_version=version, u=b""))


def issue(hv: Hypervisor, op: int, raw: bytes, caller: int = 0) -> tuple[int, bytes]:
    """Put ``raw`` in a fresh buffer, pass its address, return the result and the bytes after."""
    with hv.arena.alloc(len(raw)) as buf:
        buf.mem[: len(raw)] = raw
        rc = hv.hypercall(op, buf.addr, caller=caller)
        return rc, bytes(buf.mem[: len(raw)])


def getdomaininfo_at(hv: Hypervisor, addr: int) -> int:
    return hv.hypercall(HYPERVISOR_domctl, addr)


# A valid HVM guest configuration: only the hypercall entry can stop it.
HVM_CONFIG = createdomain_payload(domctl.XEN_DOMCTL_CDF_hvm | domctl.XEN_DOMCTL_CDF_hap)


# -- unknown numbers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "op",
    [11, 43, 47, 56, 63, 64, 1000],
    ids=["gap-11", "after-hypfs-43", "gap-47", "after-arch-56", "63", "NR_hypercalls", "1000"],
)
def test_unassigned_hypercall_number_is_enosys(host: Hypervisor, op: int) -> None:
    """Slots public/xen.h leaves unassigned, and numbers past the 64-entry table."""
    assert host.hypercall(op, 0) == -ENOSYS


@pytest.mark.parametrize("cmd", [0, 7, 8, 26, 30, 999, 0xFFFFFFFF])
def test_unknown_domctl_cmd_is_enosys(host: Hypervisor, cmd: int) -> None:
    """Numbers public/domctl.h does not define reach arch_do_domctl's default."""
    rc, after = issue(host, HYPERVISOR_domctl, domctl_bytes(cmd, domain=0))
    assert rc == -ENOSYS
    assert after == domctl_bytes(cmd, domain=0)  # nothing copied back


def test_unknown_domctl_cmd_on_missing_domain_is_esrch(host: Hypervisor) -> None:
    """The domain lookup comes before the command switch (do_domctl)."""
    assert issue(host, HYPERVISOR_domctl, domctl_bytes(7, domain=42))[0] == -ESRCH


@pytest.mark.parametrize("domain", [0, 42], ids=["existing", "missing"])
def test_unknown_domctl_cmd_from_domu_is_eperm(dom0: Guest, domain: int) -> None:
    """A failed lookup is EPERM for a non-control caller; an existing target fails XSM."""
    domu = dom0.create()
    assert issue(dom0.hv, HYPERVISOR_domctl, domctl_bytes(7, domain), caller=domu)[0] == -EPERM


@pytest.mark.parametrize("cmd", [0, 13, 24, 25, 28, 31, 1000])
def test_unknown_sysctl_cmd_is_enosys(host: Hypervisor, cmd: int) -> None:
    rc, after = issue(host, HYPERVISOR_sysctl, sysctl_bytes(cmd))
    assert rc == -ENOSYS
    assert after == sysctl_bytes(cmd)


@pytest.mark.parametrize(
    "cmd",
    [8, 29, 40, 63, 8 | 5 << memory.MEMOP_EXTENT_SHIFT],
    ids=["8-removed", "29", "40", "63", "8-with-start_extent"],
)
def test_unknown_memory_op_is_enosys(host: Hypervisor, cmd: int) -> None:
    """arch_memory_op's default; the continuation bits above MEMOP_CMD_MASK do not matter."""
    assert host.hypercall(HYPERVISOR_memory_op, cmd, 0) == -ENOSYS


# -- interface versions -------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 0x17, 0x19, 0xFFFFFFFF])
def test_domctl_wrong_interface_version_is_eacces(host: Hypervisor, version: int) -> None:
    """Non-stable domctls need exactly 0x18; nothing is copied back."""
    raw = domctl_bytes(domctl.XEN_DOMCTL_getdomaininfo, 0, version)
    rc, after = issue(host, HYPERVISOR_domctl, raw)
    assert rc == -EACCES
    assert after == raw


def test_get_domain_state_needs_version_0_not_0x18(host: Hypervisor) -> None:
    """is_stable_domctl: cmd 90 is the one stable domctl; 0x18 is EACCES for it."""
    raw = domctl_bytes(domctl.XEN_DOMCTL_get_domain_state, 0, domctl.XEN_DOMCTL_INTERFACE_VERSION)
    assert issue(host, HYPERVISOR_domctl, raw)[0] == -EACCES


def test_domctl_version_is_checked_before_lookup_and_privilege(dom0: Guest) -> None:
    """EACCES wins over the ESRCH of a missing domain and over a domU caller's EPERM."""
    raw = domctl_bytes(domctl.XEN_DOMCTL_getdomaininfo, 42, version=0x17)
    assert issue(dom0.hv, HYPERVISOR_domctl, raw)[0] == -EACCES
    domu = dom0.create()
    assert issue(dom0.hv, HYPERVISOR_domctl, raw, caller=domu)[0] == -EACCES


@pytest.mark.parametrize("version", [0, 0x15, 0x17, 0x18])
def test_sysctl_wrong_interface_version_is_eacces(host: Hypervisor, version: int) -> None:
    raw = sysctl_bytes(sysctl.XEN_SYSCTL_physinfo, version)
    rc, after = issue(host, HYPERVISOR_sysctl, raw)
    assert rc == -EACCES
    assert after == raw


def test_sysctl_version_is_checked_before_privilege(dom0: Guest) -> None:
    domu = dom0.create()
    raw = sysctl_bytes(sysctl.XEN_SYSCTL_physinfo, version=0x15)
    assert issue(dom0.hv, HYPERVISOR_sysctl, raw, caller=domu)[0] == -EACCES


# -- guest handles ------------------------------------------------------------------------

BadHandle = Callable[[Hypervisor], int]


def _null(hv: Hypervisor) -> int:
    return 0


def _straddles_end(hv: Hypervisor) -> int:
    """A whole page, with the struct starting at its last byte."""
    buf = hv.arena.alloc(PAGE_SIZE)
    return buf.addr + PAGE_SIZE - 1


def _freed(hv: Hypervisor) -> int:
    buf = hv.arena.alloc(PAGE_SIZE)
    buf.free()
    return buf.addr


def _guard_page(hv: Hypervisor) -> int:
    buf = hv.arena.alloc(PAGE_SIZE)
    return buf.addr + PAGE_SIZE


def _xen_half(hv: Hypervisor) -> int:
    return 0xFFFF_8000_0000_0000  # above the canonical user half (access_ok)


BAD_HANDLES = pytest.mark.parametrize(
    "bad_handle",
    [_null, _straddles_end, _freed, _guard_page, _xen_half],
    ids=["NULL", "past-end", "freed", "guard-page", "xen-address"],
)


@BAD_HANDLES
def test_bad_domctl_handle_is_efault_and_creates_nothing(
    dom0: Guest, bad_handle: BadHandle
) -> None:
    """copy_from_guest of the domctl fails first: no domid is taken, so DOMID_ANY still
    gives 1 afterwards (domid_alloc starts after the last id it handed out, 0)."""
    hv = dom0.hv
    assert hv.hypercall(HYPERVISOR_domctl, bad_handle(hv)) == -EFAULT
    assert dom0.create() == 1


@BAD_HANDLES
def test_bad_sysctl_handle_is_efault(host: Hypervisor, bad_handle: BadHandle) -> None:
    assert host.hypercall(HYPERVISOR_sysctl, bad_handle(host)) == -EFAULT


def test_straddling_sysctl_leaves_the_buffer_unchanged(host: Hypervisor) -> None:
    """A physinfo struct crossing into the guard page: EFAULT, and its first bytes (which
    do lie in the buffer) are not written."""
    raw = sysctl_bytes(sysctl.XEN_SYSCTL_physinfo)
    buf = host.arena.alloc(PAGE_SIZE)
    addr = buf.addr + PAGE_SIZE - 64  # 64 of the 136 bytes inside
    buf.mem[PAGE_SIZE - 64 : PAGE_SIZE] = raw[:64]
    assert host.hypercall(HYPERVISOR_sysctl, addr) == -EFAULT
    assert bytes(buf.mem[PAGE_SIZE - 64 : PAGE_SIZE]) == raw[:64]


@BAD_HANDLES
def test_bad_memory_op_handle_is_efault(host: Hypervisor, bad_handle: BadHandle) -> None:
    """current_reservation copies its xen_memory_domain in (memory.c)."""
    op = memory.XENMEM_current_reservation
    assert host.hypercall(HYPERVISOR_memory_op, op, bad_handle(host)) == -EFAULT


def test_handle_inside_a_buffer_is_fine(host: Hypervisor) -> None:
    """A handle may point anywhere inside a live buffer: getdomaininfo at offset 1000."""
    raw = domctl_bytes(domctl.XEN_DOMCTL_getdomaininfo, 0)
    with host.arena.alloc(PAGE_SIZE) as buf:
        buf.mem[1000 : 1000 + DOMCTL_SIZE] = raw
        assert getdomaininfo_at(host, buf.addr + 1000) == 0
        after = parse(domctl.xen_domctl, bytes(buf.mem[1000 : 1000 + DOMCTL_SIZE]))
    assert parse(domctl.xen_domctl_getdomaininfo, after.u[:112]).domain == 0


def test_struct_ending_exactly_at_the_buffer_end_is_fine(host: Hypervisor) -> None:
    raw = domctl_bytes(domctl.XEN_DOMCTL_getdomaininfo, 0)
    with host.arena.alloc(PAGE_SIZE) as buf:
        buf.mem[PAGE_SIZE - DOMCTL_SIZE : PAGE_SIZE] = raw
        assert getdomaininfo_at(host, buf.addr + PAGE_SIZE - DOMCTL_SIZE) == 0


# -- the arena ----------------------------------------------------------------------------


def test_arena_buffers_are_zeroed_page_aligned_and_sized() -> None:
    arena = hypervisor_model.Arena()
    buf = arena.alloc(100)
    assert buf.addr >= ARENA_BASE
    assert buf.addr % PAGE_SIZE == 0
    assert buf.size == 100
    assert arena.copy_from_guest(buf.addr, 100) == bytes(100)


@pytest.mark.parametrize(
    ("size", "pages"),
    [(0, 1), (1, 1), (4096, 1), (4097, 2), (3 * 4096, 3)],
)
def test_arena_puts_a_guard_page_after_each_buffer(size: int, pages: int) -> None:
    """The next buffer starts after this one's pages plus one unmapped page."""
    arena = hypervisor_model.Arena()
    first = arena.alloc(size)
    second = arena.alloc(1)
    assert second.addr - first.addr == (pages + 1) * PAGE_SIZE


def test_arena_readable_counts_bytes_to_the_buffer_end() -> None:
    arena = hypervisor_model.Arena()
    buf = arena.alloc(100)
    assert arena.readable(buf.addr) == 100
    assert arena.readable(buf.addr + 40) == 60
    assert arena.readable(buf.addr + 100) == 0  # one past the end
    assert arena.readable(buf.addr + PAGE_SIZE) == 0  # the guard page
    assert arena.readable(ARENA_BASE - 1) == 0
    assert arena.readable(0) == 0
    buf.free()
    assert arena.readable(buf.addr) == 0


def test_arena_copy_of_zero_bytes_always_succeeds() -> None:
    arena = hypervisor_model.Arena()
    freed = arena.alloc(8)
    freed.free()
    for addr in (0, freed.addr, ARENA_BASE - 1, 0xFFFF_FFFF_FFFF_FFFF):
        assert arena.copy_from_guest(addr, 0) == b""
        arena.copy_to_guest(addr, b"")


@pytest.mark.parametrize(
    ("offset", "size"),
    [(0, 101), (100, 1), (99, 2), (PAGE_SIZE, 1)],
    ids=["longer-than-buffer", "at-end", "across-end", "guard-page"],
)
def test_arena_copies_past_the_end_fault(offset: int, size: int) -> None:
    arena = hypervisor_model.Arena()
    buf = arena.alloc(100)
    with pytest.raises(GuestFault):
        arena.copy_from_guest(buf.addr + offset, size)
    with pytest.raises(GuestFault):
        arena.copy_to_guest(buf.addr + offset, b"\xff" * size)
    assert arena.copy_from_guest(buf.addr, 100) == bytes(100)  # nothing written


def test_arena_empty_buffer_holds_no_bytes() -> None:
    arena = hypervisor_model.Arena()
    buf = arena.alloc(0)
    assert arena.readable(buf.addr) == 0
    with pytest.raises(GuestFault):
        arena.copy_from_guest(buf.addr, 1)


def test_arena_round_trips_bytes() -> None:
    arena = hypervisor_model.Arena()
    buf = arena.alloc(16)
    arena.copy_to_guest(buf.addr + 4, b"xen!")
    assert arena.copy_from_guest(buf.addr, 12) == bytes(4) + b"xen!" + bytes(4)
    assert bytes(buf.mem[4:8]) == b"xen!"


def test_arena_finds_an_address_in_any_page_of_a_buffer() -> None:
    """An address in a buffer's first page is found by its page, one further in by the
    search: both reach the same bytes, and both fault past the buffer's end."""
    arena = hypervisor_model.Arena()
    arena.alloc(8)
    buf = arena.alloc(3 * PAGE_SIZE - 8)  # three pages, the last one 8 bytes short
    arena.alloc(8)
    for offset in (8, PAGE_SIZE + 8, 2 * PAGE_SIZE + 8):
        arena.copy_to_guest(buf.addr + offset, b"xen!")
        assert bytes(buf.mem[offset : offset + 4]) == b"xen!"
        assert arena.copy_from_guest(buf.addr + offset, 4) == b"xen!"
        assert arena.readable(buf.addr + offset) == 3 * PAGE_SIZE - 8 - offset
    with pytest.raises(GuestFault):
        arena.copy_from_guest(buf.addr + 3 * PAGE_SIZE - 12, 5)  # 4 bytes left, 5 asked


def test_arena_addresses_are_never_reused() -> None:
    arena = hypervisor_model.Arena()
    first = arena.alloc(8)
    first.free()
    second = arena.alloc(8)
    assert second.addr > first.addr
    with pytest.raises(GuestFault):
        arena.copy_from_guest(first.addr, 1)


def test_arena_free_is_idempotent_and_the_context_manager_frees() -> None:
    arena = hypervisor_model.Arena()
    with arena.alloc(8) as buf:
        assert arena.live_buffers() == 1
    assert arena.live_buffers() == 0
    buf.free()  # a second free is harmless
    assert arena.live_buffers() == 0


def test_arena_refuses_a_negative_size() -> None:
    with pytest.raises(ValueError):
        hypervisor_model.Arena().alloc(-1)


# -- the caller and the argument words ------------------------------------------------------


@pytest.mark.parametrize("caller", [5, DOMID_SELF, 0xFFFF], ids=["unknown", "DOMID_SELF", "ffff"])
def test_caller_that_does_not_exist_is_esrch(
    dom0: Guest, guest_class: type[Guest], caller: int
) -> None:
    """Only an existing domain issues hypercalls; nothing runs (no domain is created)."""
    ghost = guest_class(dom0.hv, caller)
    create = domctl.XEN_DOMCTL_createdomain
    rc, _ = ghost.domctl(create, DOMID_ANY, domctl.xen_domctl_createdomain, HVM_CONFIG)
    assert rc == -ESRCH
    assert dom0.create() == 1


def test_destroyed_domain_cannot_issue_hypercalls(dom0: Guest) -> None:
    domu = dom0.create()
    assert dom0.destroy(domu) == 0
    memop = memory.XENMEM_maximum_ram_page
    assert dom0.hv.hypercall(HYPERVISOR_memory_op, memop, 0, caller=domu) == -ESRCH


def test_argument_words_are_masked_to_64_bits(host: Hypervisor) -> None:
    """A word is a register: bits above 63 are dropped, so 2**64 + addr is addr."""
    raw = domctl_bytes(domctl.XEN_DOMCTL_getdomaininfo, 0)
    with host.arena.alloc(DOMCTL_SIZE) as buf:
        buf.mem[:DOMCTL_SIZE] = raw
        assert host.hypercall(HYPERVISOR_domctl, buf.addr + (1 << 64)) == 0
    memop = memory.XENMEM_maximum_ram_page + (3 << 64)
    assert host.hypercall(HYPERVISOR_memory_op, memop, 0) == MAX_PAGE_2X4G


def test_negative_argument_word_is_all_ones(host: Hypervisor) -> None:
    """-1 becomes 0xFFFF_FFFF_FFFF_FFFF: no hypercall memory there (EFAULT); as a
    memory_op cmd it is op 63 (cmd & MEMOP_CMD_MASK), which does not exist (ENOSYS)."""
    assert host.hypercall(HYPERVISOR_domctl, -1) == -EFAULT
    assert host.hypercall(HYPERVISOR_memory_op, -1, 0) == -ENOSYS


def test_six_argument_words_are_accepted(host: Hypervisor) -> None:
    memop = memory.XENMEM_maximum_ram_page
    assert host.hypercall(HYPERVISOR_memory_op, memop, 0, 1, 2, 3, 4) == MAX_PAGE_2X4G


def test_seven_argument_words_are_a_type_error(host: Hypervisor) -> None:
    """x86_64 passes at most six argument registers."""
    with pytest.raises(TypeError):
        host.hypercall(HYPERVISOR_memory_op, 2, 0, 0, 0, 0, 0, 0)


def test_non_integer_argument_word_is_a_type_error(host: Hypervisor) -> None:
    with pytest.raises(TypeError):
        host.hypercall(HYPERVISOR_memory_op, 2, 1.5)  # type: ignore[arg-type]


def test_a_traced_hypercall_reads_only_the_domains_it_reaches(
    dom0: Guest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The machine's counter probe reads the host's counters and those of each domain the
    hypercall reaches (the caller, the target), not of every domain on the host: a claim of
    1000 pages on one of 20 guests reads two domains and reports exactly what moved."""
    guests = [dom0.create(max_mib=16) for _ in range(20)]
    read: list[int] = []
    real = counters.domain_counters
    monkeypatch.setattr(counters, "domain_counters", lambda d: read.append(d.domain_id) or real(d))
    reports: list[list[counters.Change]] = []
    dom0.hv.trace_hooks.append(reports.append)
    assert dom0.claim_pages(guests[7], 1000) == 0
    assert sorted(set(read)) == [0, guests[7]]
    name = f"d{guests[7]}.outstanding_pages"
    assert [str(c) for c in reports[0]] == [
        "outstanding_claims 0->1000 (+1000)",
        f"{name} 0->1000 (+1000)",
    ]

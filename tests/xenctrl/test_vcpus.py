"""xenctrl's vCPU calls (xc_domain.c): xc_vcpu_setcontext, xc_vcpu_getinfo,
xc_domain_hvm_getcontext, xc_domain_hvm_setcontext, against the default two-node host
(CPUs 0-3 on node 0, 4-7 on node 1)."""

from __future__ import annotations

import ctypes

import pytest

import xenctrl
from hypervisor_model.guest_memory import build, parse, sizeof
from hypervisor_model.public import arch_x86, domctl
from hypervisor_model.public.errno import EINVAL, ENOENT, ENOSPC
from xenctrl import XenError, xc_interface


def hvm_domain(xch: xc_interface, vcpus: int) -> int:
    domid = xenctrl.xc_domain_create(xch, config=xenctrl.default_createdomain(max_vcpus=vcpus))
    xenctrl.xc_domain_max_vcpus(xch, domid, vcpus)
    return domid


def online_context() -> bytes:
    c = parse(arch_x86.vcpu_guest_context, bytes(sizeof(arch_x86.vcpu_guest_context)))
    c["flags"] = arch_x86.VGCF_in_kernel | arch_x86.VGCF_online
    return build(arch_x86.vcpu_guest_context, c)


def test_xc_vcpuinfo_t_is_the_getvcpuinfo_layout() -> None:
    """24 bytes; the C padding after ``running`` and after ``cpu`` is where construct pads."""
    info = xenctrl.xc_vcpuinfo_t(vcpu=0x01020304, online=1, blocked=2, running=3)
    info.cpu_time, info.cpu = 0x1112131415161718, 0x21222324
    fields = dict(vcpu=0x01020304, online=1, blocked=2, running=3)
    fields |= dict(cpu_time=0x1112131415161718, cpu=0x21222324)
    assert ctypes.sizeof(info) == sizeof(domctl.xen_domctl_getvcpuinfo) == 24
    assert bytes(info) == build(domctl.xen_domctl_getvcpuinfo, fields)


def test_setcontext_brings_a_vcpu_up_getinfo_reads_it_none_resets_it(xch: xc_interface) -> None:
    domid = hvm_domain(xch, 2)
    info = xenctrl.xc_vcpu_getinfo(xch, domid, 1)
    assert (info.vcpu, info.online, info.blocked, info.running, info.cpu) == (1, 0, 0, 0, 1)
    xenctrl.xc_vcpu_setcontext(xch, domid, 1, online_context())
    assert xenctrl.xc_vcpu_getinfo(xch, domid, 1).online == 1
    assert xenctrl.xc_domain_getinfo_single(xch, domid).nr_online_vcpus == 1
    xenctrl.xc_vcpu_setcontext(xch, domid, 1, None)
    assert xenctrl.xc_vcpu_getinfo(xch, domid, 1).online == 0


def test_vcpu_calls_raise_xens_errno(xch: xc_interface) -> None:
    domid = hvm_domain(xch, 1)
    with pytest.raises(XenError) as e:
        xenctrl.xc_vcpu_getinfo(xch, domid, 1)
    assert e.value.errno == ENOENT
    with pytest.raises(XenError) as e:
        xenctrl.xc_vcpu_setcontext(xch, domid, 1, online_context())
    assert e.value.errno == EINVAL
    with pytest.raises(ValueError):
        xenctrl.xc_vcpu_setcontext(xch, domid, 0, bytes(5169))  # larger than any context


def test_hvm_context_size_then_contents_then_load(xch: xc_interface) -> None:
    """Two vCPUs: 32 + 2 x 1040 + 2 x 248 + 8 = 2616 bytes; a buffer one byte short is
    ENOSPC; loading the whole context brings both vCPUs up."""
    domid = hvm_domain(xch, 2)
    size = xenctrl.xc_domain_hvm_getcontext(xch, domid, None)
    assert size == 2616
    with pytest.raises(XenError) as e:
        xenctrl.xc_domain_hvm_getcontext(xch, domid, bytearray(size - 1))
    assert e.value.errno == ENOSPC
    full = bytearray(size)
    assert xenctrl.xc_domain_hvm_getcontext(xch, domid, full) == size
    xenctrl.xc_domain_hvm_setcontext(xch, domid, full)
    assert xenctrl.xc_domain_getinfo_single(xch, domid).nr_online_vcpus == 2


def test_failing_vcpu_calls_free_their_buffers(xch: xc_interface) -> None:
    domid = hvm_domain(xch, 1)
    for call in (
        lambda: xenctrl.xc_domain_hvm_getcontext(xch, domid, bytearray(8)),
        lambda: xenctrl.xc_domain_hvm_setcontext(xch, domid, b"garbage"),
        lambda: xenctrl.xc_vcpu_setcontext(xch, 0, 0, online_context()),
    ):
        with pytest.raises(XenError):
            call()
    assert xch.hv.arena.live_buffers() == 0


def test_setaffinity_overwrites_the_maps_with_what_xen_uses(xch: xc_interface) -> None:
    """8 CPUs, one byte each: hard {0, 1} stays 0x03; soft {1, 2} comes back within hard as
    0x02; get then reads the maps as set (hard 0x03, soft 0x06). An empty hard map is
    EINVAL and leaves both as they were."""
    domid = hvm_domain(xch, 1)
    both = xenctrl.XEN_VCPUAFFINITY_HARD | xenctrl.XEN_VCPUAFFINITY_SOFT
    hard, soft = bytearray(b"\x03"), bytearray(b"\x06")
    xenctrl.xc_vcpu_setaffinity(xch, domid, 0, hard, soft, both)
    assert (hard, soft) == (b"\x03", b"\x02")
    assert xenctrl.xc_vcpu_getaffinity(xch, domid, 0, both) == (b"\x03", b"\x06")
    with pytest.raises(XenError) as e:
        xenctrl.xc_vcpu_setaffinity(xch, domid, 0, bytearray(1), bytearray(b"\x01"), both)
    assert e.value.errno == EINVAL
    assert xenctrl.xc_vcpu_getaffinity(xch, domid, 0, both) == (b"\x03", b"\x06")
    assert xch.hv.arena.live_buffers() == 0


def test_getaffinity_reads_the_maps_asked_for(xch: xc_interface) -> None:
    """Every vCPU may run on every CPU of the 8: one 0xff byte (xc_get_cpumap_size 1)."""
    domid = hvm_domain(xch, 1)
    both = xenctrl.XEN_VCPUAFFINITY_HARD | xenctrl.XEN_VCPUAFFINITY_SOFT
    assert xenctrl.xc_vcpu_getaffinity(xch, domid, 0, both) == (b"\xff", b"\xff")
    assert xenctrl.xc_vcpu_getaffinity(xch, domid, 0, xenctrl.XEN_VCPUAFFINITY_SOFT) == (
        None,
        b"\xff",
    )
    with pytest.raises(XenError) as e:
        xenctrl.xc_vcpu_getaffinity(xch, domid, 0, 0)
    assert e.value.errno == EINVAL

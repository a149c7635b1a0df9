"""xc_dom_boot_image's vCPU hook (xg_dom_x86.c vcpu_x86_64, vcpu_x86_32, vcpu_hvm): after
meminit, the build loads vCPU 0's context and vCPU 0 is the one vCPU online; for PVH (no
device model) vcpu_hvm first loads write-back MTRRs into every vCPU."""

from __future__ import annotations

import pytest

import xenguest.boot
from hypervisor_model.guest_memory import parse
from hypervisor_model.public import arch_x86, hvm_save
from xenctrl.domain import (
    default_createdomain,
    xc_domain_create,
    xc_domain_getinfo_single,
    xc_domain_max_vcpus,
    xc_domain_setmaxmem,
)
from xenctrl.handle import xc_interface
from xenctrl.vcpu import xc_vcpu_getinfo
from xenguest import hvm_layout, xc_dom_allocate, xc_dom_boot_image, xc_dom_boot_mem_init


def new_domain(xch: xc_interface, max_kb: int, vcpus: int, hvm: bool = True) -> int:
    """A domain as libxl prepares it: ``vcpus`` vCPUs created, max_mem + 1 MiB."""
    domid = xc_domain_create(xch, config=default_createdomain(hvm, max_vcpus=vcpus))
    xc_domain_max_vcpus(xch, domid, vcpus)
    xc_domain_setmaxmem(xch, domid, max_kb + 1024)
    return domid


def online(xch: xc_interface, domid: int, vcpus: int) -> list[int]:
    return [xc_vcpu_getinfo(xch, domid, v).online for v in range(vcpus)]


@pytest.mark.parametrize("device_model", [True, False], ids=["hvm", "pvh"])
def test_hvm_and_pvh_builds_bring_vcpu_0_up(
    xch: xc_interface, monkeypatch: pytest.MonkeyPatch, device_model: bool
) -> None:
    """Three vCPUs: the CPU record of vCPU 0 is loaded last and alone; PVH first loads an
    MTRR record (default type write-back, enabled: 0x806) into each of the three."""
    domid = new_domain(xch, 64 << 10, 3)
    dom = xc_dom_allocate(xch, domid)
    dom.max_vcpus = 3
    hvm_layout(dom, 64 << 10, device_model=device_model)
    xc_dom_boot_mem_init(dom)
    loads: list[list[tuple[int, int]]] = []
    real = xenguest.boot.xc_domain_hvm_setcontext

    def spy(xch: xc_interface, domid: int, stream: bytes) -> None:
        records = xenguest.boot._records(stream)
        loads.append(sorted(records))
        for (code, _), body in records.items():
            if code == hvm_save.HVM_SAVE_CODE_MTRR:
                assert parse(hvm_save.hvm_hw_mtrr, body).msr_mtrr_def_type == 0x806
        real(xch, domid, stream)

    monkeypatch.setattr(xenguest.boot, "xc_domain_hvm_setcontext", spy)
    xc_dom_boot_image(dom)
    mtrrs = [] if device_model else [[(1, 0), (14, v)] for v in range(3)]
    assert loads == [*mtrrs, [(1, 0), (2, 0)]]
    assert online(xch, domid, 3) == [1, 0, 0]
    assert xc_domain_getinfo_single(xch, domid).nr_online_vcpus == 1


@pytest.mark.parametrize("guest_type", ["xen-3.0-x86_64", "xen-3.0-x86_32p"])
def test_pv_builds_bring_vcpu_0_up_with_the_first_page_as_cr3(
    xch: xc_interface, monkeypatch: pytest.MonkeyPatch, guest_type: str
) -> None:
    """vcpu_x86_64 / vcpu_x86_32: kernel mode and online, CR3 the frame of pfn 0 (the model
    lays out no image), the flat kernel selectors of the guest's width."""
    domid = new_domain(xch, 16 << 10, 2, hvm=False)
    dom = xc_dom_allocate(xch, domid, guest_type)
    dom.total_pages = dom.target_pages = 4096
    xc_dom_boot_mem_init(dom)
    sent: list[bytes] = []
    real = xenguest.boot.xc_vcpu_setcontext
    monkeypatch.setattr(
        xenguest.boot,
        "xc_vcpu_setcontext",
        lambda xch, domid, vcpu, ctxt: (sent.append(bytes(ctxt)), real(xch, domid, vcpu, ctxt)),
    )
    xc_dom_boot_image(dom)
    compat = guest_type.endswith("32p")
    layout = arch_x86.compat_vcpu_guest_context if compat else arch_x86.vcpu_guest_context
    (raw,) = sent
    c = parse(layout, raw)
    _, _, mfn = dom.pv_p2m[0]
    assert c.flags == arch_x86.VGCF_in_kernel | arch_x86.VGCF_online
    assert c.ctrlreg[3] == ((mfn << 12 | mfn >> 20) & 0xFFFFFFFF if compat else mfn << 12)
    assert (c.user_regs.cs, c.user_regs.ss) == ((0xE019, 0xE021) if compat else (0xE033, 0xE02B))
    assert online(xch, domid, 2) == [1, 0]

"""C's integer parameters (xenctrl/cints.py): what a C caller could pass is converted as C
converts it, the rest is refused by name instead of wrapped to something else."""

from __future__ import annotations

import pytest

import xenctrl
from xenctrl import xc_interface
from xenctrl.cints import CInt


@pytest.mark.parametrize(
    ("kind", "value", "converted"),
    [
        (CInt("uint8_t", 8), 255, 255),
        (CInt("uint8_t", 8), -1, 255),  # C: a negative value taken modulo 2^8
        (CInt("uint8_t", 8), -128, 128),
        (CInt("uint32_t", 32), 0xFFFFFFFF, 0xFFFFFFFF),
        (CInt("uint64_t", 64), -1, (1 << 64) - 1),  # xc_domain_setmaxmem(-1): unlimited
        (CInt("int32_t", 32, signed=True), 0xFFFFFFFF, -1),  # an unsigned pattern, read signed
        (CInt("int32_t", 32, signed=True), -(2**31), -(2**31)),
        (CInt("uint32_t", 32), True, 1),  # C's bool is an integer
    ],
)
def test_what_c_could_pass_is_converted_as_c_converts_it(
    kind: CInt, value: int, converted: int
) -> None:
    assert kind.convert(value, "f", "x") == converted


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        (CInt("uint8_t", 8), 256),
        (CInt("uint8_t", 8), -129),
        (CInt("uint64_t", 64), 2**64),
        (CInt("uint64_t", 64), 2**70),
        (CInt("int32_t", 32, signed=True), 2**32),
    ],
)
def test_what_no_c_integer_holds_is_refused(kind: CInt, value: int) -> None:
    with pytest.raises(OverflowError, match=f"f: x={value:#x} does not fit a {kind.name}"):
        kind.convert(value, "f", "x")


def test_setmaxmem_refuses_2_to_the_70_and_changes_nothing(xch: xc_interface) -> None:
    """It used to set max_mem to 0 (2^70 mod 2^64) without a word."""
    domid = xenctrl.xc_domain_create(xch)
    xenctrl.xc_domain_setmaxmem(xch, domid, 4096)  # 1024 pages
    with pytest.raises(OverflowError, match="xc_domain_setmaxmem: max_memkb=0x4000"):
        xenctrl.xc_domain_setmaxmem(xch, domid, 2**70)
    assert xenctrl.xc_domain_getinfo_single(xch, domid).max_pages == 1024
    xenctrl.xc_domain_setmaxmem(xch, domid, -1)  # all ones, as libxl passes "unlimited"
    assert xenctrl.xc_domain_getinfo_single(xch, domid).max_pages == 0xFFFFFFFF


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x: xenctrl.xc_domain_pause(x, 2**32), "xc_domain_pause: domid=0x100000000"),
        (lambda x: xenctrl.xc_domain_claim_pages(x, 0, 2**64), "nr_pages=0x10000000000000000"),
        (lambda x: xenctrl.xc_domain_max_vcpus(x, 0, max=2**33), "max=0x200000000"),
        (lambda x: xenctrl.xc_vcpu_getinfo(x, 0, -(2**40)), "vcpu=-0x10000000000"),
    ],
    ids=["domid", "nr_pages", "keyword", "vcpu"],
)
def test_every_call_names_the_argument_that_does_not_fit(
    xch: xc_interface, call: object, message: str
) -> None:
    with pytest.raises(OverflowError, match=message):
        call(xch)  # type: ignore[operator]


def test_a_float_is_not_an_integer(xch: xc_interface) -> None:
    with pytest.raises(TypeError, match="xc_domain_setmaxmem: max_memkb is a uint64_t, got float"):
        xenctrl.xc_domain_setmaxmem(xch, 0, 1.5)  # type: ignore[arg-type]

"""xenctrl's C-layout ctypes types are the public ABI's construct layouts, byte for byte.

Each ctypes type callers fill (as in C) must put every field where Xen reads it. For each
pair, one value set with a different value in every field (every byte of the structure
distinct and non-zero) is filled into the ctypes object and built with construct: the bytes
must be equal, and each side must read the other's bytes back as the same values. Sizes are
the C sizes of Xen master's headers on x86_64 (fact sheet section 1.3, 1.5; v7 claim entry
section 1.6).
"""

from __future__ import annotations

import ctypes
from typing import Any

import construct
import pytest
from construct import Array, Bytes, Default, FormatField, Renamed, Struct

from hypervisor_model.codec import plain
from hypervisor_model.guest_memory import build, parse
from hypervisor_model.public import domctl, memory, sysctl, xen
from xenctrl import types

# -- one helper: walk a construct layout and its ctypes twin side by side ------------------


def _bare(con: construct.Construct) -> construct.Construct:
    while isinstance(con, Renamed | Default):
        con = con.subcon
    return con


def _leaf(con: FormatField, counter: list[int]) -> int:
    """The next ``con.length`` bytes of the running sequence 1, 2, 3, ..., as an integer."""
    raw = bytes((counter[0] + i) % 255 + 1 for i in range(con.length))
    counter[0] += con.length
    signed = con.fmtstr[-1].islower()
    return int.from_bytes(raw, "little", signed=signed)


def distinct_values(con: construct.Construct, counter: list[int] | None = None) -> Any:
    """A value for ``con`` whose encoding is the byte sequence 1, 2, 3, ... (no byte 0)."""
    counter = counter if counter is not None else [0]
    con = _bare(con)
    if isinstance(con, Struct):
        if any(sc.name is None for sc in con.subcons):
            raise TypeError(f"expected only named fields, got {con.subcons}")
        return {sc.name: distinct_values(sc, counter) for sc in con.subcons}
    if isinstance(con, Array):
        return [distinct_values(con.subcon, counter) for _ in range(con.count)]
    if isinstance(con, Bytes):
        raw = bytes((counter[0] + i) % 255 + 1 for i in range(con.length))
        counter[0] += con.length
        return raw
    if isinstance(con, FormatField):
        return _leaf(con, counter)
    raise TypeError(f"expected a layout built from public/xen.py primitives, got {con!r}")


def field_names(ctype: type[ctypes.Structure]) -> list[Any]:
    """Field names of a ctypes structure, nested structures as ``(name, [names])``."""
    names: list[Any] = []
    for name, ftype, *_ in ctype._fields_:
        if isinstance(ftype, type) and issubclass(ftype, ctypes.Structure):
            names.append((name, field_names(ftype)))
        else:
            names.append(name)
    return names


def layout_names(con: construct.Construct) -> list[Any]:
    names: list[Any] = []
    for sc in _bare(con).subcons:
        inner = _bare(sc)
        names.append((sc.name, layout_names(inner)) if isinstance(inner, Struct) else sc.name)
    return names


def fill(cobj: Any, values: dict[str, Any]) -> None:
    """Set every field of a ctypes structure, as a C caller would."""
    for name, value in values.items():
        if isinstance(value, dict):
            fill(getattr(cobj, name), value)  # nested structures are returned by reference
        elif isinstance(value, bytes | list):
            getattr(cobj, name)[:] = list(value)
        else:
            setattr(cobj, name, value)


def read(cobj: Any, shape: dict[str, Any]) -> dict[str, Any]:
    """The fields of a ctypes structure, in the shape construct parses to."""
    out: dict[str, Any] = {}
    for name, like in shape.items():
        field = getattr(cobj, name)
        if isinstance(like, dict):
            out[name] = read(field, like)
        elif isinstance(like, bytes):
            out[name] = bytes(field)
        elif isinstance(like, list):
            out[name] = list(field)
        else:
            out[name] = field
    return out


def check_ctype(ctype: type[ctypes.Structure], layout: construct.Construct, size: int) -> None:
    """sizeof agrees, field names agree, bytes agree, and each side parses the other."""
    assert ctypes.sizeof(ctype) == layout.sizeof() == size
    assert field_names(ctype) == layout_names(layout)
    values = distinct_values(layout)
    cobj = ctype()
    fill(cobj, values)
    wire = build(layout, values)
    assert bytes(cobj) == wire == bytes(i % 255 + 1 for i in range(size))
    assert plain(parse(layout, bytes(cobj))) == values
    assert read(ctype.from_buffer_copy(wire), values) == values


# -- the table ---------------------------------------------------------------------------

CASES = [
    pytest.param(types.xc_physinfo_t, sysctl.xen_sysctl_physinfo, 112, id="xc_physinfo_t"),
    pytest.param(types.xc_domaininfo_t, domctl.xen_domctl_getdomaininfo, 112, id="xc_domaininfo_t"),
    pytest.param(types.xen_memory_claim_t, domctl.xen_memory_claim_t, 16, id="xen_memory_claim_t"),
    pytest.param(types.memory_claim_t, domctl.memory_claim_t, 16, id="memory_claim_t"),
    pytest.param(types.xc_meminfo_t, sysctl.xen_sysctl_meminfo, 16, id="xc_meminfo_t"),
    pytest.param(types.xen_vmemrange_t, memory.xen_vmemrange, 24, id="xen_vmemrange_t"),
    pytest.param(
        types.xen_domctl_createdomain,
        domctl.xen_domctl_createdomain,
        68,
        id="xen_domctl_createdomain",
    ),
]


@pytest.mark.parametrize(("ctype", "layout", "size"), CASES)
def test_ctype_matches_public_layout(
    ctype: type[ctypes.Structure], layout: construct.Construct, size: int
) -> None:
    check_ctype(ctype, layout, size)


def test_signed_fields_stay_signed() -> None:
    """max_grant_frames / max_maptrack_frames are int32_t: -1 asks Xen for its default."""
    config = types.xen_domctl_createdomain(max_grant_frames=-1, max_maptrack_frames=-2)
    fields = parse(domctl.xen_domctl_createdomain, bytes(config))
    assert (fields.max_grant_frames, fields.max_maptrack_frames) == (-1, -2)


def test_xen_pfn_t_is_an_unsigned_long() -> None:
    """xen_pfn_t is unsigned long on x86_64: 8 bytes, little-endian, as in the extent list."""
    frames = (types.xen_pfn_t * 2)(0x0102030405060708, 2**64 - 1)
    assert ctypes.sizeof(types.xen_pfn_t) == xen.xen_pfn_t.sizeof() == 8
    assert bytes(frames) == xen.xen_pfn_t.build(0x0102030405060708) + b"\xff" * 8


def test_array_stride_is_the_c_size() -> None:
    """numainfo and getinfolist lay records out back to back: arrays have no extra gaps."""
    assert ctypes.sizeof(types.xc_meminfo_t * 3) == 3 * 16
    assert ctypes.sizeof(types.xc_domaininfo_t * 2) == 2 * 112
    assert ctypes.sizeof(types.xen_memory_claim_t * 65) == 65 * 16

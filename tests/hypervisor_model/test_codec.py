"""The codecs derived from the public layouts are construct's, byte for byte.

For every Struct declared in ``hypervisor_model.public`` (found by walking the modules, so
layouts added later are covered too), random values build to the same bytes as construct
builds, random bytes parse to the same values, and the sizes agree. Values are drawn from
the construct tree itself, independently of the derivation under test.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import construct
import pytest
from construct import (
    Array,
    Bytes,
    Default,
    FixedSized,
    FormatField,
    Padded,
    Renamed,
    Struct,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hypervisor_model.public
from hypervisor_model import codec as codec_module
from hypervisor_model.codec import LayoutError, Record, codec, plain, replace
from hypervisor_model.guest_memory import build, parse, parse_array, sizeof
from hypervisor_model.public import domctl, sysctl


def public_layouts() -> list[tuple[str, construct.Construct]]:
    """Every Struct in the public ABI modules, also inside dicts, lists and tuples."""
    found: dict[int, tuple[str, construct.Construct]] = {}

    def visit(name: str, value: Any) -> None:
        if isinstance(value, Struct):
            found.setdefault(id(value), (name, value))
        elif isinstance(value, dict):
            for k, v in value.items():
                visit(f"{name}[{k!r}]", v)
        elif isinstance(value, list | tuple):
            for i, v in enumerate(value):
                visit(f"{name}[{i}]", v)

    package = hypervisor_model.public
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            visit(f"{info.name.rsplit('.', 1)[1]}.{name}", value)
    return sorted(found.values(), key=lambda entry: entry[0])


LAYOUTS = public_layouts()
IDS = [name for name, _ in LAYOUTS]


def _bare(con: construct.Construct) -> construct.Construct:
    while isinstance(con, Renamed | Default):
        con = con.subcon
    return con


LONG_ARRAY = 32


def values_of(con: construct.Construct) -> st.SearchStrategy[Any]:
    """Values construct accepts for ``con``; a Default field is sometimes left out (None)."""
    default = isinstance(con, Default) or (
        isinstance(con, Renamed) and isinstance(con.subcon, Default)
    )
    con = _bare(con)
    if isinstance(con, FormatField):
        code = con.fmtstr[1]
        bits = con.length * 8
        lo, hi = (-(1 << bits - 1), (1 << bits - 1) - 1) if code.islower() else (0, (1 << bits) - 1)
        strategy: st.SearchStrategy[Any] = st.integers(lo, hi)
    elif isinstance(con, Bytes):
        strategy = st.binary(min_size=con.length, max_size=con.length)
    elif isinstance(con, FixedSized):
        strategy = st.binary(max_size=con.length)
    elif isinstance(con, Array) and con.count > LONG_ARRAY:
        # a vCPU context's 256 trap entries: a few drawn, repeated, keep examples small
        count = con.count
        strategy = st.lists(values_of(con.subcon), min_size=1, max_size=3).map(
            lambda items: (items * count)[:count]
        )
    elif isinstance(con, Array):
        strategy = st.lists(values_of(con.subcon), min_size=con.count, max_size=con.count)
    elif isinstance(con, Struct):
        named = {sc.name: values_of(sc) for sc in con.subcons if sc.name is not None}
        strategy = st.fixed_dictionaries(named)
    else:
        raise TypeError(f"expected a layout of the public ABI, got {con!r}")
    return st.one_of(st.none(), strategy) if default else strategy


@pytest.mark.parametrize(("name", "layout"), LAYOUTS, ids=IDS)
def test_every_public_layout_has_a_derived_codec_of_the_same_size(
    name: str, layout: construct.Construct
) -> None:
    assert codec(layout).derived, f"{name} falls back to construct"
    assert sizeof(layout) == layout.sizeof()


@pytest.mark.parametrize(("name", "layout"), LAYOUTS, ids=IDS)
@settings(
    max_examples=40,
    deadline=None,
    # the vCPU contexts are 5 KiB: even their smallest example is large
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example],
)
@given(data=st.data())
def test_codec_is_byte_identical_to_construct(
    name: str, layout: construct.Construct, data: st.DataObject
) -> None:
    obj = data.draw(values_of(layout), label="values")
    wire = layout.build(obj)
    assert build(layout, obj) == wire  # encoding: the same bytes
    raw = data.draw(st.binary(min_size=len(wire), max_size=len(wire)), label="bytes")
    decoded = parse(layout, raw)
    assert plain(decoded) == plain(layout.parse(raw))  # decoding: the same values
    assert build(layout, decoded) == layout.build(layout.parse(raw))  # and back
    assert parse_array(layout, raw * 3) == [decoded] * 3  # one iter_unpack, same records
    fields = tuple(value for _, value in decoded)
    assert codec(layout).unpack_array(raw * 3) == [fields] * 3  # the same, as tuples
    into = bytearray(b"\xff" * (len(wire) + 5))  # flat values packed at an offset
    codec(layout).pack_into(into, 3, *codec(layout).values(decoded))
    assert into == b"\xff" * 3 + layout.build(layout.parse(raw)) + b"\xff" * 2
    flat = codec(layout).unpack_from(into, 3)  # and read back from the same offset
    assert codec(layout).make(flat) == parse(layout, layout.build(layout.parse(raw)))


def test_fields_named_like_dict_methods_are_fields() -> None:
    """readconsole has ``clear`` and debug_keys has ``keys``: on a record they are values."""
    req = parse(
        sysctl.xen_sysctl_readconsole,
        build(
            sysctl.xen_sysctl_readconsole,
            {
                "clear": 1,
                "incremental": 0,
                "index": 7,
                "buffer": 0x1000,
                "count": 9,
            },
        ),
    )
    assert (req.clear, req.index, req.count) == (1, 7, 9)
    keys = parse(sysctl.xen_sysctl_debug_keys, bytes(range(16)))
    assert keys.keys == 0x0706050403020100 and keys["keys"] == keys.keys
    assert not isinstance(keys, dict)


def test_a_record_builds_like_the_mapping_it_came_from() -> None:
    """dict(record, field=...) and replace() copy with a change; nested values stay records."""
    config = parse(domctl.xen_domctl_createdomain, bytes(range(68)))
    assert isinstance(config.arch, Record) and config.arch.misc_flags == 0x43424140
    changed = replace(config, flags=5)
    assert changed.flags == 5 and config.flags == 0x17161514
    assert build(domctl.xen_domctl_createdomain, dict(config, flags=5)) == build(
        domctl.xen_domctl_createdomain, changed
    )
    assert build(domctl.xen_domctl_createdomain, config) == bytes(range(68))


def test_bad_values_are_refused_as_construct_refuses_them() -> None:
    """Wrong lengths, out-of-range numbers, missing fields and short data all raise."""
    good = {"cmd": 1, "interface_version": 2, "domain": 3, "u": b""}
    cases: list[tuple[dict[str, Any], type[Exception]]] = [
        ({**good, "u": bytes(129)}, LayoutError),  # longer than the union
        ({**good, "cmd": -1}, LayoutError),  # uint32_t
        ({**good, "domain": 1 << 16}, LayoutError),  # domid_t
        ({**good, "_pad": [0, 0]}, LayoutError),  # three of them
        ({k: v for k, v in good.items() if k != "cmd"}, KeyError),
    ]
    for obj, error in cases:
        with pytest.raises(construct.ConstructError if error is LayoutError else KeyError):
            domctl.xen_domctl.build(obj)
        with pytest.raises(error):
            build(domctl.xen_domctl, obj)
    config = plain(parse(domctl.xen_domctl_createdomain, bytes(68)))
    with pytest.raises(LayoutError):
        build(domctl.xen_domctl_createdomain, {**config, "handle": bytes(15)})  # exactly 16
    with pytest.raises(LayoutError):
        parse(domctl.xen_memory_claim, bytes(15))
    with pytest.raises(LayoutError):
        parse_array(domctl.xen_memory_claim, bytes(17))


def test_a_layout_it_cannot_read_falls_back_to_construct() -> None:
    """An Enum is not among the constructs it translates: construct decodes it instead."""
    odd = Struct("kind" / construct.Enum(construct.Int8ul, a=1, b=2), Padded(3, construct.Pass))
    assert not codec(odd).derived
    assert parse(odd, b"\x02\0\0\0").kind == "b"
    assert build(odd, {"kind": "a"}) == b"\x01\0\0\0"
    assert sizeof(odd) == 4
    with pytest.raises(AttributeError):
        codec(odd).pack_into  # noqa: B018  # construct has no flat values to pack
    with pytest.raises(AttributeError):
        codec(odd).unpack_from  # noqa: B018  # nor to unpack
    assert parse(odd, b"\x01\0\0\0").kind == "a"


def test_codecs_are_derived_once() -> None:
    first = codec(domctl.xen_domctl)
    assert codec(domctl.xen_domctl) is first
    assert domctl.xen_domctl in codec_module._codecs

"""Fast codecs for the public ABI, derived once from its construct declarations.

construct stays the one declaration of every layout. This module reads a declaration's
tree once (Struct, little-endian integers, Bytes, Padding, Array, Default, FixedSized
bytes) and turns it into one ``struct.Struct`` and a few lines of generated code, so a
structure decodes with one ``unpack`` into a :class:`Record`: plain attributes in slots,
not a dict, so a field named ``keys`` or ``clear`` is always the field. A layout with
anything else falls back to construct itself. A test proves the codecs byte-identical to
construct for every public layout, both ways.
"""

from __future__ import annotations

import keyword
import struct
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from construct import (
    Array,
    Bytes,
    Construct,
    Default,
    FixedSized,
    FormatField,
    GreedyBytes,
    Padded,
    Pass,
    Renamed,
    Struct,
)


class LayoutError(ValueError):
    """A value that does not fit its layout, or bytes too short to decode."""


class Record:
    """A decoded structure: one slot per named field, in declaration order.

    It is no mapping (it has no ``keys``, ``items`` or ``get`` that a field could hide
    behind), but ``rec["name"]``, ``"name" in rec`` and ``dict(rec)`` work, so a record
    can be built wherever a mapping of fields can. Extra attributes may be attached (a
    domctl reply carries its decoded ``payload``).
    """

    __slots__ = ("__dict__",)
    _fields: tuple[str, ...] = ()

    if TYPE_CHECKING:  # fields are made per layout; to the type checker any name is one

        def __init__(self, *fields: Any, **named: Any) -> None: ...

        def __getattr__(self, name: str) -> Any: ...

        def __setattr__(self, name: str, value: Any) -> None: ...

    def __getitem__(self, name: str) -> Any:
        if name not in self._fields:
            raise KeyError(name)
        return getattr(self, name)

    def __setitem__(self, name: str, value: Any) -> None:
        if name not in self._fields:
            raise KeyError(name)
        setattr(self, name, value)

    def __contains__(self, name: object) -> bool:
        return name in self._fields

    def __iter__(self) -> Iterator[tuple[str, Any]]:
        """(name, value) pairs: ``dict(rec, field=new)`` is a copy with a change."""
        return ((name, getattr(self, name)) for name in self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self._fields)

    __hash__ = None  # type: ignore[assignment]  # mutable, like the C structure

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={v!r}" for n, v in self)
        return f"{type(self).__name__}({inner})"


def replace(record: Record, **changes: Any) -> Record:
    """A copy of ``record`` with some fields changed (nested records are shared)."""
    fields = dict(record)
    if unknown := changes.keys() - fields.keys():
        raise KeyError(f"expected fields of {type(record).__name__}, got {sorted(unknown)}")
    fields.update(changes)
    return type(record)(*fields.values())


def plain(obj: Any) -> Any:
    """A record (or a construct Container) as dicts and lists, recursively."""
    if isinstance(obj, Record):
        return {name: plain(value) for name, value in obj}
    if isinstance(obj, Mapping):
        return {k: plain(v) for k, v in obj.items() if k != "_io"}
    if isinstance(obj, list):
        return [plain(v) for v in obj]
    return obj


class Codec:
    """One layout's ``size`` and its functions: ``parse``, ``build``, ``parse_array`` (many
    structures back to back), ``unpack_array`` (the same, each a tuple of its fields,
    without a record) and, for a derived layout, ``pack_into`` (its flat values, as
    ``make`` takes them, written into a buffer at an offset, unchecked as struct packs)
    and ``unpack_from`` (the flat values read from a buffer at an offset).
    The functions are made on first use, so a process pays only for the layouts it
    decodes; ``sizeof`` needs none of them."""

    parse: Callable[[Any], Any]
    build: Callable[[Any], bytes]
    parse_array: Callable[[Any], list[Any]]
    unpack_array: Callable[[Any], list[tuple[Any, ...]]]
    pack_into: Callable[..., None]
    unpack_from: Callable[..., tuple[Any, ...]]
    # What a layout containing this one uses: the record class, the function making a
    # record from its flat values, and the one flattening a record or mapping into them.
    record: type[Record]
    make: Callable[[Sequence[Any]], Record]
    values: Callable[[Any], tuple[Any, ...]]

    def __init__(self, layout: Construct, size: int, shape: _Shape | None) -> None:
        self.layout, self.size, self.shape = layout, size, shape

    @property
    def derived(self) -> bool:
        """False when construct itself decodes this layout."""
        return self.shape is not None

    def __getattr__(self, attr: str) -> Any:
        """Called only until the functions exist: make them (once), then they are found
        as plain attributes."""
        if attr not in _MADE_ON_FIRST_USE:
            raise AttributeError(attr)
        made = vars(self)
        with _lock:
            if "parse" not in made:
                made.update(_generate(self) if self.shape is not None else _fallback(self))
        if attr not in made:
            raise AttributeError(f"{attr}: construct decodes this layout, it has no flat values")
        return made[attr]


_MADE_ON_FIRST_USE = frozenset(
    (
        "parse",
        "build",
        "parse_array",
        "unpack_array",
        "record",
        "make",
        "values",
        "pack_into",
        "unpack_from",
    )
)


# -- reading a construct tree --------------------------------------------------------------


class _Unsupported(Exception):
    """A construct this module does not translate: the layout falls back to construct."""


class _Node:
    """A member's struct codes and how many flat values they unpack to."""

    codes, count = "", 0


class _Scalar(_Node):
    def __init__(self, code: str) -> None:
        self.codes, self.count = code, 1


class _Raw(_Node):
    """Bytes(n) (exactly n to build) or FixedSized(n, GreedyBytes) (up to n, zero-filled)."""

    def __init__(self, length: int, exact: bool) -> None:
        self.codes, self.count, self.length, self.exact = f"{length}s", 1, length, exact


class _Pad(_Node):
    def __init__(self, length: int) -> None:
        self.codes = f"{length}x"


class _Array(_Node):
    def __init__(self, length: int, item: _Node) -> None:
        if isinstance(item, _Pad):
            raise _Unsupported("an array of padding")
        self.length, self.item = length, item
        self.codes, self.count = item.codes * length, item.count * length


class _Nested(_Node):
    """A Struct inside a Struct: it has a codec (and a record class) of its own."""

    def __init__(self, inner: Codec) -> None:
        if inner.shape is None:
            raise _Unsupported("a nested layout without a derived codec")
        self.inner, self.shape = inner, inner.shape
        self.codes, self.count = inner.shape.codes, inner.shape.count


class _Field:
    def __init__(self, name: str | None, node: _Node, default: Any) -> None:
        self.name, self.node, self.default = name, node, default


_NO_DEFAULT = object()


class _Shape:
    """A Struct's members in order, flattened into struct codes."""

    def __init__(self, layout: Struct) -> None:
        self.fields: list[_Field] = []
        for sub in layout.subcons:
            name, default = sub.name, _NO_DEFAULT
            while isinstance(sub, Renamed | Default):
                if _hooked(sub):
                    raise _Unsupported("a parse hook")
                if isinstance(sub, Default) and default is _NO_DEFAULT:
                    default = sub.value
                sub = sub.subcon
            if callable(default) or _hooked(sub):
                raise _Unsupported("a computed default or a parse hook")
            node = _node(sub)
            if (name is None) != isinstance(node, _Pad):
                raise _Unsupported("an unnamed member, or named padding")
            self.fields.append(_Field(name, node, default))
        self.names = tuple(f.name for f in self.fields if f.name is not None)
        if len(set(self.names)) != len(self.names):
            raise _Unsupported("repeated field names")
        self.codes = "".join(f.node.codes for f in self.fields)
        self.count = sum(f.node.count for f in self.fields)


def _hooked(con: Construct) -> bool:
    return getattr(con, "parsed", None) is not None


def _node(con: Construct) -> _Node:
    if isinstance(con, FormatField):
        if len(con.fmtstr) != 2 or con.fmtstr[0] != "<":
            raise _Unsupported(f"format {con.fmtstr!r}")
        return _Scalar(con.fmtstr[1])
    if isinstance(con, Bytes) and isinstance(con.length, int):
        return _Raw(con.length, exact=True)
    if isinstance(con, FixedSized) and con.subcon is GreedyBytes and isinstance(con.length, int):
        return _Raw(con.length, exact=False)
    if isinstance(con, Padded) and con.subcon is Pass and isinstance(con.length, int):
        if con.pattern != b"\0":
            raise _Unsupported("padding that is not zeros")
        return _Pad(con.length)
    if isinstance(con, Array) and isinstance(con.count, int) and not con.discard:
        return _Array(con.count, _node(con.subcon))
    if isinstance(con, Struct):
        return _Nested(codec(con))
    raise _Unsupported(type(con).__name__)


# -- generated code ------------------------------------------------------------------------


def _exact(value: Any, length: int) -> Any:
    if not isinstance(value, bytes | bytearray) or len(value) != length:
        raise LayoutError(f"expected {length} bytes, got {value!r:.40}")
    return value


def _up_to(value: Any, length: int) -> Any:
    if not isinstance(value, bytes | bytearray) or len(value) > length:
        raise LayoutError(f"expected at most {length} bytes, got {value!r:.40}")
    return value


def _items(value: Any, length: int) -> Any:
    if len(value) != length:
        raise LayoutError(f"expected {length} items, got {len(value)}")
    return value


def _attribute(obj: str, name: str, value: str | None = None) -> str:
    """Source reading (or with ``value``, setting) a field. Some of Xen's names are Python
    keywords (xen_memory_exchange's ``in``): those go through getattr / setattr."""
    if name.isidentifier() and not keyword.iskeyword(name):
        return f"{obj}.{name}" if value is None else f"{obj}.{name} = {value}"
    return f"getattr({obj}, {name!r})" if value is None else f"setattr({obj}, {name!r}, {value})"


class _Source:
    """The generated source of one layout and the names it refers to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.namespace: dict[str, Any] = {
            "Record": Record,
            "LayoutError": LayoutError,
            "_struct_error": struct.error,
            "_exact": _exact,
            "_up_to": _up_to,
            "_items": _items,
        }

    def refer(self, value: Any) -> str:
        """A name for ``value`` in the generated code."""
        name = f"_c{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def flatten(self, node: _Node, value: str) -> str:
        """An expression of the flat values ``node`` packs from ``value`` ("" for none)."""
        if isinstance(node, _Scalar):
            return value
        if isinstance(node, _Raw):
            return f"{'_exact' if node.exact else '_up_to'}({value}, {node.length})"
        if isinstance(node, _Pad):
            return ""
        if isinstance(node, _Nested):
            return f"*{self.refer(node.inner.values)}({value})"
        assert isinstance(node, _Array)
        if isinstance(node.item, _Scalar):
            return f"*_items({value}, {node.length})"
        each = self.flatten(node.item, "x")
        return f"*(v for x in _items({value}, {node.length}) for v in ({each},))"

    def unflatten(self, node: _Node, at: int) -> str:
        """An expression of ``node``'s value from the flat tuple ``v``, from index ``at``."""
        if isinstance(node, _Scalar | _Raw):
            return f"v[{at}]"
        if isinstance(node, _Nested):
            return f"{self.refer(node.inner.make)}(v[{at}:{at + node.count}])"
        assert isinstance(node, _Array)
        if isinstance(node.item, _Scalar | _Raw):
            return f"list(v[{at}:{at + node.count}])"
        step = node.item.count  # each item from its own slice, by a function of its own
        if isinstance(node.item, _Nested):
            item = self.refer(node.item.inner.make)
        else:
            item = self.refer(None)
            self.lines += [f"def {item}(v):", f"    return {self.unflatten(node.item, 0)}"]
        return f"[{item}(v[j:j + {step}]) for j in range({at}, {at + node.count}, {step})]"

    def record(self, shape: _Shape) -> str:
        """An expression of the layout's record from its flat tuple ``v``."""
        args, at = [], 0
        for f in shape.fields:
            if f.name is not None:
                args.append(self.unflatten(f.node, at))
            at += f.node.count
        return f"R({', '.join(args)})"


def _generate(c: Codec) -> dict[str, Any]:
    """The record class and the functions of a derived layout, from generated source."""
    shape = c.shape
    assert shape is not None
    fmt = struct.Struct("<" + shape.codes)
    size, names, name = fmt.size, shape.names, _public_name(c.layout)
    src = _Source()
    fields = [f for f in shape.fields if f.name is not None]
    reads = [_attribute("obj", n) for n in names]
    keys = [
        f"obj[{f.name!r}]" if f.default is _NO_DEFAULT else f"obj.get({f.name!r})" for f in fields
    ]
    defaults = [
        f"    if f{i} is None: f{i} = {src.refer(f.default)}"
        for i, f in enumerate(fields)
        if f.default is not _NO_DEFAULT
    ]
    flat = [src.flatten(f.node, f"f{i}") for i, f in enumerate(fields)]
    src.namespace.update(_unpack=fmt.unpack_from, _pack=fmt.pack, _iter=fmt.iter_unpack)
    top = src.record(shape)
    plain_values = len(fields) == shape.count  # one value per field, nothing nested
    # A record is made from its fields in order, or by name where the name can be one.
    params = [
        n if _attribute("x", n) == f"x.{n}" and n != "self" else f"f{i}"
        for i, n in enumerate(names)
    ]
    args = "".join(f", {p}" for p in params)
    whole = [  # an array's bytes are whole structures
        f"    if len(data) % {size}:",
        f"        raise LayoutError(f'expected a multiple of {size} bytes, got {{len(data)}}')",
    ]
    src.lines += [
        "class R(Record):",
        f"    __slots__ = _fields = {names!r}",
        f"    def __init__(self{args}):",
        *(f"        {_attribute('self', n, p)}" for n, p in zip(names, params, strict=True)),
        "        return",
        f"R.__name__ = R.__qualname__ = {name!r}",
        "def make(v):",
        f"    return {'R(*v)' if plain_values else top}",
        "def values(obj):",  # a record or a mapping -> the flat values to pack
        "    if isinstance(obj, Record):",
        *(f"        f{i} = {r}" for i, r in enumerate(reads)),
        "        pass",
        "    else:",
        *(f"        f{i} = {k}" for i, k in enumerate(keys)),
        "        pass",
        *defaults,
        f"    return ({''.join(p + ', ' for p in flat if p)})",
        "def parse(data):",
        "    try:",
        "        v = _unpack(data)",
        "    except _struct_error:",
        f"        raise LayoutError(f'expected {size} bytes, got {{len(data)}}') from None",
        f"    return {top}",
        "def build(obj):",
        "    try:",
        "        return _pack(*values(obj))",
        "    except _struct_error as e:",
        f"        raise LayoutError(f'{name}: {{e}}') from None",
        "def parse_array(data):",
        *whole,
        f"    return [{'R(*v)' if plain_values else top} for v in _iter(data)]",
        "def unpack_array(data):",
        *(  # the flat values are the fields when nothing is nested: no record needed
            [*whole, "    return list(_iter(data))"]
            if plain_values
            else [
                f"    return [({''.join(_attribute('x', n) + ', ' for n in names)}) "
                "for x in parse_array(data)]"
            ]
        ),
    ]
    ns = src.namespace
    exec("\n".join(src.lines), ns)  # our own source, generated from the declaration
    ns["pack_into"], ns["unpack_from"] = fmt.pack_into, fmt.unpack_from
    return {attr: ns["R" if attr == "record" else attr] for attr in _MADE_ON_FIRST_USE}


def _fallback(c: Codec) -> dict[str, Any]:
    """construct itself, compiled, for a layout this module cannot translate."""
    compiled = c.layout.compile()
    size = c.size

    def parse_array(data: Any) -> list[Any]:
        return [compiled.parse(data[i : i + size]) for i in range(0, len(data), size)]

    def build(obj: Any) -> bytes:
        return bytes(compiled.build(obj))

    return dict(parse=compiled.parse, build=build, parse_array=parse_array)


def _public_name(layout: Construct) -> str:
    """The layout's name in the public ABI modules (a record's type name), else "record"."""
    for module_name, module in list(sys.modules.items()):
        if module_name.startswith("hypervisor_model.public."):
            for name, value in vars(module).items():
                if value is layout:
                    return name
    return "record"


class _Codecs(dict[Construct, Codec]):
    """The codec of each layout met so far, by the layout itself (construct compares
    layouts by identity); a missing one is derived, once, on first use."""

    def __missing__(self, layout: Construct) -> Codec:
        with _lock:
            made = self.get(layout)
            if made is None:
                try:
                    if not isinstance(layout, Struct) or _hooked(layout):
                        raise _Unsupported("not a plain Struct")
                    shape: _Shape | None = _Shape(layout)
                    size = struct.calcsize("<" + shape.codes)  # type: ignore[union-attr]
                except _Unsupported:
                    shape, size = None, layout.sizeof()
                made = self[layout] = Codec(layout, size, shape)
        return made


_codecs = _Codecs()
_lock = threading.RLock()  # deriving a layout derives its nested layouts first

# The codec of ``layout``, derived on first use and kept for the process (a dict lookup,
# with no Python frame, once it is known).
codec: Callable[[Construct], Codec] = _codecs.__getitem__

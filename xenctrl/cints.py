"""C's integer parameters for the ``xc_*`` calls, as a C caller would pass them.

A parameter annotated with one of the types below (``max_memkb: uint64_t``) is converted
as C converts an integer argument to it: a value a C caller could pass in a signed or
unsigned integer of that width is taken modulo the width (``-1`` for a ``uint64_t`` is all
ones, as libxl passes it), and a value no C integer of that width can hold (``2**70``) is
refused with an OverflowError naming the call and the argument, rather than silently
wrapped to something else. Non-integers are a TypeError.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar, get_type_hints

from xenctrl import trace

F = TypeVar("F", bound=Callable[..., Any])


class CInt:
    """An integer type of C: its name, width in bits and signedness."""

    __slots__ = ("bits", "name", "signed", "top")

    def __init__(self, name: str, bits: int, signed: bool = False) -> None:
        self.name, self.bits, self.signed = name, bits, signed
        self.top = (1 << (bits - signed)) - 1  # the largest value kept as is

    def __repr__(self) -> str:
        return f"CInt(name={self.name!r}, bits={self.bits}, signed={self.signed})"

    def convert(self, value: Any, call: str, param: str) -> int:
        if type(value) is int and 0 <= value <= self.top:
            return value  # the usual case: the same number in C
        if not isinstance(value, int):
            raise TypeError(f"{call}: {param} is a {self.name}, got {type(value).__name__}")
        if not -(1 << (self.bits - 1)) <= value < 1 << self.bits:
            raise OverflowError(f"{call}: {param}={value:#x} does not fit a {self.name}")
        wrapped = value & ((1 << self.bits) - 1)
        if self.signed and wrapped >> (self.bits - 1):
            wrapped -= 1 << self.bits
        return wrapped


uint8_t = Annotated[int, CInt("uint8_t", 8)]
uint16_t = Annotated[int, CInt("uint16_t", 16)]
uint32_t = Annotated[int, CInt("uint32_t", 32)]
uint64_t = Annotated[int, CInt("uint64_t", 64)]
int32_t = Annotated[int, CInt("int32_t", 32, signed=True)]
int64_t = Annotated[int, CInt("int64_t", 64, signed=True)]
unsigned_int = Annotated[int, CInt("unsigned int", 32)]
unsigned_long = Annotated[int, CInt("unsigned long", 64)]  # x86_64 Linux: LP64
domid_t = Annotated[int, CInt("uint32_t", 32)]  # libxenctrl's calls take uint32_t domid


Conversion = Callable[[tuple[Any, ...], dict[str, Any]], tuple[Any, ...]]


def c_arguments(fn: Callable[..., Any]) -> Conversion:
    """The conversion of ``fn``'s C-integer parameters (see the module's docstring): given
    a call's positional and keyword arguments, it returns the positional ones converted and
    converts the keyword ones in place. The annotations are read at the first call, not at
    import: a process pays only for the calls it makes."""
    positions: list[tuple[int, str, CInt]] | None = None
    call = fn.__name__

    def convert(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
        nonlocal positions
        if positions is None:
            positions = _c_parameters(fn)
        changed = None
        for i, name, kind in positions:
            if i < len(args):
                value = args[i]
                if type(value) is int and 0 <= value <= kind.top:
                    continue  # the usual case, kept as is without a call
                changed = changed or list(args)
                changed[i] = kind.convert(value, call, name)
            elif name in kwargs:
                kwargs[name] = kind.convert(kwargs[name], call, name)
        return args if changed is None else tuple(changed)

    return convert


def _c_parameters(fn: Callable[..., Any]) -> list[tuple[int, str, CInt]]:
    """``fn``'s parameters annotated with a C integer type: position, name and type."""
    import inspect  # only for the first call of each function

    hints = get_type_hints(fn, include_extras=True)
    params = list(inspect.signature(fn).parameters)
    return [
        (params.index(name), name, meta)
        for name, hint in hints.items()
        for meta in getattr(hint, "__metadata__", ())
        if isinstance(meta, CInt)
    ]


def xenctrl_call(fn: F) -> F:
    """A libxenctrl call: its C integers converted, and traced as the xenctrl layer, in one
    wrapper."""
    return trace.traced("xenctrl", c_arguments(fn))(fn)

"""Watching a call travel down the layers: xenguest -> xenctrl -> hypercall -> counters.

Library functions are marked with :func:`traced`; while a :class:`Trace` is active (a context
manager, or ``XENEMU_TRACE=1`` / ``XENEMU_TRACE=path`` in the environment for scripts) every
marked call becomes a :class:`CallRecord` holding its arguments, the nested calls it made and
each hypercall: number, decoded structure, raw bytes, result or errno, and the accounting
counters that moved inside the hypervisor (reported by the machine, like Xen's xentrace).
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from construct import Construct

from hypervisor_model.codec import Record
from hypervisor_model.guest_memory import parse, sizeof
from hypervisor_model.public import domctl, memory, releases, sysctl, xen
from hypervisor_model.public.errno import errorcode
from hypervisor_model.public.xen import (
    HYPERVISOR_domctl,
    HYPERVISOR_memory_op,
    HYPERVISOR_multicall,
    HYPERVISOR_sysctl,
)

if TYPE_CHECKING:
    import inspect

    from hypervisor_model.counters import Change
    from xenctrl.handle import xc_interface

F = TypeVar("F", bound=Callable[..., Any])

HYPERCALL_NAMES = {
    HYPERVISOR_memory_op: "memory_op",
    HYPERVISOR_multicall: "multicall",
    HYPERVISOR_domctl: "domctl",
    HYPERVISOR_sysctl: "sysctl",
}


def _names(module: Any, prefix: str) -> dict[int, str]:
    # Commands are the lowercase names (XEN_DOMCTL_createdomain); flags such as
    # XEN_DOMCTL_CDF_hvm share their numbers and must not shadow them.
    return {
        v: k
        for k, v in vars(module).items()
        if k.startswith(prefix) and isinstance(v, int) and k[len(prefix) :][:1].islower()
    }


COMMAND_NAMES = {
    HYPERVISOR_domctl: _names(domctl, "XEN_DOMCTL_"),
    HYPERVISOR_sysctl: _names(sysctl, "XEN_SYSCTL_"),
    HYPERVISOR_memory_op: _names(memory, "XENMEM_"),
}


@dataclass
class HypercallRecord:
    """One hypercall as it crossed the boundary."""

    op: int
    args: tuple[int, ...]
    command: str
    structure: str
    decoded_in: dict[str, Any]
    decoded_out: dict[str, Any]
    raw_in: bytes
    raw_out: bytes
    result: int
    expected: str | None = None  # why this failure was asked for (a probe), if it was
    counters: list[Change] = field(default_factory=list)
    entries: list[HypercallRecord] = field(default_factory=list)  # a multicall's, as Xen ran them

    @property
    def errno(self) -> str | None:
        return errorcode.get(-self.result) if self.result < 0 else None


@dataclass
class CallRecord:
    """One library call (xenguest or xenctrl) and everything it caused beneath it."""

    layer: str
    function: str
    args: dict[str, Any]
    children: list[CallRecord | HypercallRecord] = field(default_factory=list)
    outcome: str = ""

    def hypercalls(self) -> Iterator[HypercallRecord]:
        for child in self.children:
            if isinstance(child, HypercallRecord):
                yield child
            else:
                yield from child.hypercalls()


class Trace:
    """Collects records of every traced call made while active (any thread)."""

    def __init__(self, sink: TextIO | None = None, *, raw_bytes: bool = True) -> None:
        self.records: list[CallRecord] = []
        self.sink = sink
        self.raw_bytes = raw_bytes
        self._lock = threading.Lock()

    def __enter__(self) -> Trace:
        with _state.lock:
            _state.traces.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        with _state.lock:
            _state.traces.remove(self)

    def add(self, record: CallRecord) -> None:
        with self._lock:
            self.records.append(record)
        if self.sink is not None:
            self.sink.write(render(record, raw_bytes=self.raw_bytes) + "\n")
            self.sink.flush()

    def text(self) -> str:
        return "\n".join(render(r, raw_bytes=self.raw_bytes) for r in self.records)

    __str__ = text  # print(trace) prints it


class _State(threading.local):
    stack: list[CallRecord]
    names: list[str]
    machine: list[Change] | None
    expected: list[tuple[int, str]]

    def __init__(self) -> None:
        self.stack = []
        self.names = []
        self.machine = None
        self.expected = []


class _Shared:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.traces: list[Trace] = []


_local = _State()
_state = _Shared()


def tracing() -> bool:
    return bool(_state.traces)


def current_call() -> str:
    """The innermost traced call running in this thread (names errors)."""
    return _local.names[-1] if _local.names else "hypercall"


def traced(
    layer: str, convert: Callable[[tuple[Any, ...], dict[str, Any]], tuple[Any, ...]] | None = None
) -> Callable[[F], F]:
    """Mark a library function so traces show it, with its arguments as the caller gave
    them, as one layer. ``convert`` (a call's C integers, see ``cints``) turns them into the
    arguments the function gets, in the same wrapper."""

    def decorate(fn: F) -> F:
        name = fn.__name__

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            _local.names.append(name)
            try:
                if _state.traces:
                    return _record(layer, fn, args, kwargs, convert)
                if convert is not None:
                    args = convert(args, kwargs)
                return fn(*args, **kwargs)
            finally:
                _local.names.pop()

        return wrapper  # type: ignore[return-value]

    return decorate


def _record(
    layer: str,
    fn: Callable[..., Any],
    args: Any,
    kwargs: Any,
    convert: Callable[[tuple[Any, ...], dict[str, Any]], tuple[Any, ...]] | None,
) -> Any:
    bound = _signature(fn).bind_partial(*args, **kwargs)
    record = CallRecord(layer, fn.__name__, {k: _short(v) for k, v in bound.arguments.items()})
    parent = _local.stack[-1] if _local.stack else None
    _local.stack.append(record)
    try:
        if convert is not None:
            args = convert(args, kwargs)
        result = fn(*args, **kwargs)
        record.outcome = f"-> {_short(result)}"
        return result
    except Exception as e:
        why = _expected(getattr(e, "errno", None))
        name = errorcode.get(getattr(e, "errno", None) or 0, "")
        record.outcome = f"-> {name} ({why})" if why else f"raised {type(e).__name__}: {e}"
        raise
    finally:
        _local.stack.pop()
        if parent is not None:
            parent.children.append(record)
        else:
            for t in list(_state.traces):
                t.add(record)


@contextmanager
def expecting(errno: int, why: str) -> Iterator[None]:
    """Calls in this block that fail with ``errno`` do so on purpose (a probe, such as a
    GET that learns the size of the buffer it needs): traces say so instead of "raised"."""
    _local.expected.append((errno, why))
    try:
        yield
    finally:
        _local.expected.pop()


def _expected(errno: int | None) -> str | None:
    return next((why for e, why in reversed(_local.expected) if e == errno), None)


@functools.cache
def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    """A traced function's signature, read when it is first traced (not at every import)."""
    import inspect  # only a trace needs it: not imported with xenctrl

    return inspect.signature(fn)


def machine_hook(changes: list[Change]) -> None:
    """Called by the hypervisor, in the calling thread, with the counters a call moved."""
    _local.machine = changes


def hypercall(
    xch: xc_interface,
    op: int,
    args: tuple[int, ...],
    envelope: Construct | None,
    payload: Construct | None,
    raw_in: bytes,
    raw_out: bytes,
    result: int,
    entries: list[HypercallRecord] | None = None,
) -> None:
    """Attach one hypercall, with the counters it moved and, for a multicall, the records of
    its ``entries``, to the innermost traced call (no-op unless tracing)."""
    changes, _local.machine = _local.machine, None
    record = subcall(op, args, envelope, payload, raw_in, raw_out, result)
    if record is None:
        return
    record.counters = changes or []
    record.entries = entries or []
    _local.stack[-1].children.append(record)


def subcall(
    op: int,
    args: tuple[int, ...],
    envelope: Construct | None,
    payload: Construct | None,
    raw_in: bytes,
    raw_out: bytes,
    result: int,
) -> HypercallRecord | None:
    """The record of one hypercall, decoded, attached to nothing: a multicall entry as Xen
    ran it, for :func:`hypercall`'s ``entries`` (None unless tracing)."""
    if not _state.traces or not _local.stack:
        return None
    decoded_in, decoded_out = (
        _decode(envelope, payload, raw_in),
        _decode(envelope, payload, raw_out),
    )
    if op == HYPERVISOR_memory_op:
        command = COMMAND_NAMES[op].get(args[0] & memory.MEMOP_CMD_MASK, str(args[0]))
    elif op == HYPERVISOR_multicall:
        command = f"{args[1]} {'entry' if args[1] == 1 else 'entries'}"
    else:
        cmd = int(decoded_in.get("cmd", -1))
        command = COMMAND_NAMES.get(op, {}).get(cmd, str(cmd))
    return HypercallRecord(
        op=op,
        args=args,
        command=command,
        structure=getattr(payload or envelope, "name", None) or _layout_name(payload, envelope),
        decoded_in=decoded_in,
        decoded_out=decoded_out,
        raw_in=raw_in,
        raw_out=raw_out,
        result=result,
        expected=_expected(-result) if result < 0 else None,
    )


_LAYOUT_MODULES = (domctl, sysctl, memory, xen, releases)


def _layout_name(payload: Construct | None, envelope: Construct | None) -> str:
    for module in _LAYOUT_MODULES:
        for name, value in vars(module).items():
            if value is payload and payload is not None:
                return name
    for module in _LAYOUT_MODULES:
        for name, value in vars(module).items():
            if value is envelope and envelope is not None:
                return name
    return "-"


def _decode(envelope: Construct | None, payload: Construct | None, raw: bytes) -> dict[str, Any]:
    if envelope is None or not raw:
        return {}
    outer = parse(envelope, raw)
    result = _plain(outer)
    if payload is not None and "u" in outer:
        result["u"] = _plain(parse(payload, outer.u[: sizeof(payload)]))
    return result


def _plain(obj: Any) -> Any:
    if isinstance(obj, Record):
        return {k: _plain(v) for k, v in obj if not k.startswith("_")}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


def _short(value: Any, limit: int = 100) -> str:
    """A value as the trace shows it: C structures and arrays by their fields and items
    (never ``<... object at 0x...>``), cut short at ``limit`` characters."""
    text = _show(value, limit)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _show(value: Any, budget: int) -> str:
    if isinstance(value, ctypes.Structure):
        fields = []
        for f in value._fields_:
            name = f[0]
            if name.startswith("pad"):
                continue
            fields.append(f"{name}={_show(getattr(value, name), budget)}")
            if sum(len(x) + 2 for x in fields) > budget:  # the rest would be cut anyway
                break
        return f"{type(value).__name__}{{{', '.join(fields)}}}"
    if isinstance(value, ctypes.Array):
        if isinstance(value[0] if len(value) else 0, int) and len(value) > 8:
            return f"<{len(value)} x {value._type_.__name__}>"
        return _items([value[i] for i in range(len(value))], budget)
    if isinstance(value, list):
        return _items(value, budget)
    if isinstance(value, tuple) and not hasattr(value, "_fields"):  # named tuples: repr
        return "(" + _items(list(value), budget)[1:-1] + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, bytes) and len(value) > 16:
        return f"<{len(value)} bytes>"
    return repr(value)


def _items(items: list[Any], budget: int) -> str:
    """A list shown item by item until the budget is spent, then how many there are."""
    shown: list[str] = []
    for item in items:
        if sum(len(x) + 2 for x in shown) > budget:
            break
        shown.append(_show(item, budget))
    rest = f", ... ({len(items)} items)" if len(shown) < len(items) else ""
    return f"[{', '.join(shown)}{rest}]"


# -- rendering ------------------------------------------------------------------------------


def _fields(obj: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_value(v)}" for k, v in obj.items())


def _value(v: Any) -> str:
    if isinstance(v, dict):
        return f"{{{_fields(v)}}}"
    if isinstance(v, list):
        return f"[{', '.join(_value(item) for item in v)}]"
    if isinstance(v, bytes):
        return f"<{len(v)} bytes>"
    if isinstance(v, int) and v > 9:
        return f"{v:#x}"
    return str(v)


def _hex(data: bytes, indent: str) -> list[str]:
    used = len(data.rstrip(b"\0")) or 1
    shown = data[: -(-used // 16) * 16]
    lines = [f"{indent}{i:04x}: {shown[i : i + 16].hex(' ')}" for i in range(0, len(shown), 16)]
    if len(shown) < len(data):
        lines.append(f"{indent}      ... {len(data) - len(shown)} zero bytes")
    return lines


def render(record: CallRecord, indent: str = "", *, raw_bytes: bool = True) -> str:
    """A readable block: the call, then each nested call or hypercall, indented."""
    args = ", ".join(f"{k}={v}" for k, v in record.args.items() if k not in ("xch", "dom"))
    lines = [f"{indent}{record.layer}: {record.function}({args}) {record.outcome}"]
    for child in record.children:
        if isinstance(child, CallRecord):
            lines.append(render(child, indent + "  ", raw_bytes=raw_bytes))
            continue
        lines.extend(_render_hypercall(child, f"{indent}  hypercall ", indent + "    ", raw_bytes))
        moved = ", ".join(str(c) for c in child.counters) or "no counters moved"
        lines.append(f"{indent}    counters: {moved}")
    return "\n".join(lines)


def _render_hypercall(hc: HypercallRecord, head: str, pad: str, raw_bytes: bool) -> list[str]:
    """One hypercall's line, structures and bytes, then each multicall entry inside it."""
    name = HYPERCALL_NAMES.get(hc.op, str(hc.op))
    why = f", expected: {hc.expected}" if hc.expected else ""
    result = f"{hc.result}" + (f" ({hc.errno}{why})" if hc.errno else "")
    lines = [f"{head}{name}({hc.op}) {hc.command}: {result}"]
    if hc.decoded_in:
        lines.append(f"{pad}{hc.structure} in:  {_fields(hc.decoded_in)}")
    if hc.decoded_out and hc.decoded_out != hc.decoded_in:
        lines.append(f"{pad}{hc.structure} out: {_fields(hc.decoded_out)}")
    if raw_bytes and hc.raw_in:
        lines.append(f"{pad}bytes in:")
        lines.extend(_hex(hc.raw_in, pad + "  "))
    for i, entry in enumerate(hc.entries):
        lines.extend(_render_hypercall(entry, f"{pad}entry {i}: ", pad + "  ", raw_bytes))
    return lines


def _from_environment() -> None:
    """XENEMU_TRACE=1 traces to stderr, XENEMU_TRACE=path appends to a file."""
    target = os.environ.get("XENEMU_TRACE")
    if not target or target == "0":
        return
    sink = sys.stderr if target == "1" else open(target, "a")  # noqa: SIM115
    Trace(sink).__enter__()


_from_environment()

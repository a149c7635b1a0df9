"""The xc_interface handle and the hypercall plumbing beneath every ``xc_*`` call.

As in libxenctrl, a call fills a structure in its own memory, bounces it into hypercall
buffers (allocated from the caller's arena, as libxencall allocates from its device), issues
the hypercall with the buffer's address, and bounces the result back. Nothing here reaches
into the hypervisor model: only hypercall numbers, argument words and bytes cross. The host
is in this process (a :class:`Hypervisor`) or held by a server (a :class:`RemoteHost`).

A real libxenctrl is built for one Xen release; a handle here speaks one release too (its
interface versions and layouts), learnt from the host when it is opened, or chosen.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import MutableSequence
from os import PathLike
from typing import Any, NamedTuple

from construct import Construct

from hypervisor_model import Hypervisor
from hypervisor_model.codec import Codec, Record, codec
from hypervisor_model.guest_memory import HypercallBuffer, build, parse, sizeof
from hypervisor_model.public import domctl, memory, sysctl, version, xen
from hypervisor_model.public.errno import EBADF
from hypervisor_model.public.releases import Release, release, release_of_version
from hypervisor_model.public.xen import (
    HYPERVISOR_domctl,
    HYPERVISOR_memory_op,
    HYPERVISOR_multicall,
    HYPERVISOR_sysctl,
    HYPERVISOR_xen_version,
)
from xenctrl import trace
from xenctrl.errors import XenError
from xenctrl.remote import Connection, RemoteHost

Host = Hypervisor | RemoteHost  # what a handle can be opened on
ENTRY = codec(xen.multicall_entry)  # packed and read as flat values: op, result, args[0..5]
ENTRY_SIZE = ENTRY.size
RESERVATION = codec(memory.xen_memory_reservation)
Buffer = bytes | bytearray | memoryview | ctypes.Array[Any] | ctypes.Structure


class xc_interface:
    """An open libxenctrl handle: hypercalls to one host, issued as one domain, in the
    interface of one Xen ``release`` (None: the host's, asked when first needed).

    On a :class:`RemoteHost` the handle opens its own connection, as ``xencall_open`` opens
    its own privcmd file: hypercall buffers live in this process and travel as bytes."""

    def __init__(self, hv: Host, domid: int = 0, release: Release | None = None) -> None:
        self.hv = hv
        self.domid = domid
        self._release = release
        self.closed = False
        self.link: Connection | None = None
        if isinstance(hv, RemoteHost):
            self.link = hv.connect(domid)
            self.arena = self.link.arena
        else:
            self.arena = hv.arena

    def __enter__(self) -> xc_interface:
        return self

    def __exit__(self, *exc: object) -> None:
        xc_interface_close(self)

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        xen = self._release.name if self._release else "not asked yet"
        return f"<xc_interface as d{self.domid}, Xen {xen}, {state}>"

    @property
    def release(self) -> Release:
        """The release this handle speaks; the host's is asked with XENVER_version, as a
        toolstack can, the first time it is needed."""
        if self._release is None:
            self._release = host_release(self)
        return self._release

    def hypercall(self, op: int, *args: int) -> int:
        """xencall: issue one hypercall, returning Xen's raw result."""
        if self.closed:
            raise XenError(EBADF, trace.current_call(), "the xc_interface is closed")
        if self.link is not None:
            return self.link.hypercall(op, *args)
        hv = self.hv
        assert isinstance(hv, Hypervisor)
        hooks = hv.trace_hooks  # the machine's counter probe, only while tracing
        if trace.tracing():
            if trace.machine_hook not in hooks:
                hooks.append(trace.machine_hook)
        elif hooks and trace.machine_hook in hooks:
            hooks.remove(trace.machine_hook)
        return hv.hypercall(op, *args, caller=self.domid)


def xc_interface_open(
    hv: Host | None = None,
    domid: int = 0,
    *,
    server: str | PathLike[str] | None = None,
    xen: str | None = None,
) -> xc_interface:
    """Open a handle on an emulated host, in this process or held by the server at the socket
    ``server``; hypercalls are issued as ``domid`` (dom0 default).

    The handle speaks the release the host reports (XENVER_version), or with ``xen`` the
    named release whatever the host runs, as a libxenctrl built for it would.
    """
    if (hv is None) == (server is None):
        raise TypeError("expected a host or a server socket, not both or neither")
    chosen = release(xen) if xen is not None else None
    xch = xc_interface(RemoteHost(server) if server is not None else hv, domid, chosen)  # type: ignore[arg-type]
    with contextlib.suppress(XenError):  # a caller that cannot ask yet asks later
        xch.release  # noqa: B018
    return xch


def host_release(xch: xc_interface) -> Release:
    """The release the host runs, asked as a toolstack can: XENVER_version's major.minor."""
    rc = xch.hypercall(HYPERVISOR_xen_version, version.XENVER_version, 0)
    ver = check(rc, "xc_interface_open: asking the host's Xen version")
    return release_of_version(ver >> 16, ver & 0xFFFF)


def xc_interface_close(xch: xc_interface | None) -> int:
    """Close a handle (NULL is fine, as in C). Later calls on it fail with EBADF."""
    if xch is not None:
        xch.closed = True
        if xch.link is not None:
            xch.link.close()
    return 0


# -- bouncing ------------------------------------------------------------------------------


class Bounce:
    """One user buffer bounced through a hypercall buffer (DECLARE_HYPERCALL_BOUNCE).

    ``direction`` is "in", "out" or "both", from the hypervisor's point of view. A ``None``
    buffer is not bounced and travels as a NULL handle.
    """

    def __init__(self, xch: xc_interface, user: Buffer | None, size: int, direction: str) -> None:
        self.xch, self.user, self.size, self.direction = xch, user, size, direction
        self.addr = 0
        self._hbuf: HypercallBuffer | None = None

    def __enter__(self) -> Bounce:
        if self.user is None:
            return self
        self._hbuf = self.xch.arena.alloc(self.size)
        self.addr = self._hbuf.addr
        if self.direction in ("in", "both") and self.size:
            self._hbuf.mem[: self.size] = memoryview(self.user).cast("B")[: self.size]
        return self

    def __exit__(self, *exc: object) -> None:
        if self._hbuf is None:
            return
        if self.direction in ("out", "both") and self.size:
            out = memoryview(self.user).cast("B")  # type: ignore[arg-type]
            out[: self.size] = memoryview(self._hbuf.mem)[: self.size]
        self._hbuf.free()


def _issue(
    xch: xc_interface,
    op: int,
    envelope: Construct,
    raw: bytes,
    word0: int | None,
    payload: Construct | None,
) -> tuple[int, bytes]:
    """Bounce ``raw`` both ways and issue ``op`` with its address (after ``word0`` if any)."""
    buf = xch.arena.alloc(len(raw))  # a bounce of bytes needs no user buffer
    try:
        buf.mem[: len(raw)] = raw
        args = (buf.addr,) if word0 is None else (word0, buf.addr)
        rc = xch.hypercall(op, *args)
        out = bytes(memoryview(buf.mem)[: len(raw)])
    finally:
        buf.free()
    if trace.tracing():
        trace.hypercall(xch, op, args, envelope, payload, raw, out, rc)
    return rc, out


class Tail(NamedTuple):
    """A user buffer bounced in a domctl's own hypercall buffer, right after the structure
    (as memory_op's extent list; libxenctrl gives it a buffer of its own): the payload's
    field ``handle`` gets its address, NULL for a None buffer. ``direction`` as Bounce's."""

    handle: str
    user: Buffer | None
    size: int
    direction: str


def do_domctl(
    xch: xc_interface,
    cmd: int,
    domid: int,
    layout: Construct | None = None,
    /,
    *,
    tail: Tail | None = None,
    **fields: Any,
) -> tuple[int, Record]:
    """do_domctl: the domctl with its payload as sent and as Xen left it (``.payload``);
    ``tail`` is bounced in the same hypercall buffer."""
    release = xch.release
    version = 0 if cmd in release.stable_domctls else release.domctl_interface_version
    envelope = codec(domctl.xen_domctl)
    payload = codec(layout) if layout is not None else None
    size = envelope.size
    user = tail.user if tail is not None else None
    extra = tail.size if tail is not None and user is not None else 0
    buf = xch.arena.alloc(size + extra)
    try:
        mem = buf.mem
        if tail is not None:
            fields[tail.handle] = buf.addr + size if user is not None else 0
            if user is not None and extra and tail.direction != "out":
                mem[size : size + extra] = bytes(user)[:extra]
        # xen_domctl's flat values: cmd, interface_version, domain (C narrows uint32_t domid
        # to domid_t), _pad[3], then the union
        union = payload.build(fields) if payload is not None else b""
        envelope.pack_into(mem, 0, cmd, version, domid & 0xFFFF, 0, 0, 0, union)
        raw = bytes(mem[:size]) if trace.tracing() else None
        rc = xch.hypercall(HYPERVISOR_domctl, buf.addr)
        out = mem[:size]
        if tail is not None and user is not None and extra and tail.direction != "in":
            memoryview(user).cast("B")[:extra] = mem[size : size + extra]
    finally:
        buf.free()
    if raw is not None and trace.tracing():
        args = (buf.addr,)
        trace.hypercall(
            xch, HYPERVISOR_domctl, args, domctl.xen_domctl, layout, raw, bytes(out), rc
        )
    reply = envelope.parse(out)
    reply.payload = payload.parse(reply.u) if payload is not None else None
    return rc, reply


def do_sysctl(
    xch: xc_interface, cmd: int, layout: Construct, /, **fields: Any
) -> tuple[int, Record]:
    """do_sysctl: returns the result and the payload as Xen left it."""
    raw = build(
        sysctl.xen_sysctl,
        dict(
            cmd=cmd,
            interface_version=xch.release.sysctl_interface_version,
            u=build(layout, fields) if fields else b"",
        ),
    )
    rc, out = _issue(xch, HYPERVISOR_sysctl, sysctl.xen_sysctl, raw, None, layout)
    return rc, parse(layout, parse(sysctl.xen_sysctl, out).u[: sizeof(layout)])


def xc_memory_op(xch: xc_interface, cmd: int, layout: Construct | None, /, **fields: Any) -> int:
    """xc_memory_op: the argument structure bounced both ways; the raw ``long`` result."""
    return memory_op_struct(xch, cmd, layout, **fields)[0]


def memory_op_struct(
    xch: xc_interface, cmd: int, layout: Construct | None, /, **fields: Any
) -> tuple[int, Record | None]:
    """xc_memory_op as libxenctrl issues it on Linux x86_64, also returning the argument
    structure as Xen left it: a one-entry multicall, whose entry brings back the whole
    64-bit result that privcmd's int return would truncate (xc_private.c xc_memory_op)."""
    if layout is None:
        return _memory_op(xch, cmd, None, fields, None, 0)[0], None
    rc, out = _memory_op(xch, cmd, codec(layout), fields, None, 0)
    return rc, parse(layout, out)


def _memory_op(
    xch: xc_interface,
    cmd: int,
    c: Codec | None,
    fields: dict[str, Any],
    frames: ctypes.Array[ctypes.c_uint64] | None,
    nr_frames: int,
) -> tuple[int, bytes]:
    """Issue the memory_op multicall; its result and the argument structure (laid out by
    ``c``, if any) as Xen left it. The structure, the entry and, for the reservation ops,
    ``nr_frames`` of ``frames`` as the extent list share one hypercall buffer (each bounced
    both ways, where libxenctrl bounces three): the structure first, the list last, so
    that the list ends where the buffer does."""
    size = c.size if c is not None else 0
    list_at = size + ENTRY_SIZE
    list_bytes = nr_frames * 8 if frames is not None else 0
    tracing = trace.tracing()
    with xch.arena.alloc(list_at + list_bytes) as buf:
        mem = buf.mem
        if frames is not None:
            fields["extent_start"] = buf.addr + list_at
            mem[list_at : list_at + list_bytes] = memoryview(frames).cast("B")[:list_bytes]
        raw = c.build(fields) if c is not None else b""
        mem[:size] = raw
        args = (cmd, buf.addr if c is not None else 0)
        ENTRY.pack_into(mem, size, HYPERVISOR_memory_op, 0, *args, 0, 0, 0, 0)
        entry_in = bytes(mem[size:list_at]) if tracing else None
        mc_args = (buf.addr + size, 1)
        rc = xch.hypercall(HYPERVISOR_multicall, *mc_args)
        out = bytes(mem[:size])
        result = ENTRY.unpack_from(mem, size)[1]
        entry_out = bytes(mem[size:list_at]) if entry_in is not None else None
        if frames is not None and list_bytes:
            memoryview(frames).cast("B")[:list_bytes] = mem[list_at : list_at + list_bytes]
    result -= (result >> 63) << 64  # the entry holds a long
    if entry_in is not None and entry_out is not None and trace.tracing():
        ran = None
        layout = c.layout if c is not None else None
        if not rc:
            ran = trace.subcall(HYPERVISOR_memory_op, args, layout, None, raw, out, result)
        trace.hypercall(
            xch,
            HYPERVISOR_multicall,
            mc_args,
            xen.multicall_entry,
            None,
            entry_in,
            entry_out,
            rc,
            entries=[ran] if ran is not None else None,
        )
    return rc or result, out


def reservation(
    xch: xc_interface,
    op: int,
    domid: int,
    nr_extents: int,
    extent_order: int,
    mem_flags: int,
    extent_start: Any,
) -> int:
    """The three reservation ops: the extent list is bounced both ways, NULL stays NULL."""
    frames = as_pfn_array(extent_start, nr_extents)
    fields = dict(
        nr_extents=nr_extents,
        extent_order=extent_order & 0xFFFFFFFF,
        mem_flags=mem_flags & 0xFFFFFFFF,
        domid=domid & 0xFFFF,
        extent_start=0,
    )
    rc, _ = _memory_op(xch, op, RESERVATION, fields, frames, nr_extents)
    if (
        frames is not None
        and frames is not extent_start
        and isinstance(extent_start, MutableSequence)
    ):
        # The bounce copies back nr_extents entries (xc_domain_populate_physmap); a read-only
        # sequence (tuple, range) gets nothing back, and the list keeps its length.
        extent_start[:nr_extents] = list(frames[:nr_extents])
    return rc


def as_pfn_array(extent_start: Any, nr_extents: int) -> ctypes.Array[ctypes.c_uint64] | None:
    """Accept a ctypes ``xen_pfn_t`` array (used in place) or any sequence of ints."""
    if extent_start is None:
        return None
    if isinstance(extent_start, ctypes.Array) and extent_start._type_ is ctypes.c_uint64:
        if len(extent_start) < nr_extents:
            raise ValueError(f"expected at least {nr_extents} extents, got {len(extent_start)}")
        return extent_start
    values = list(extent_start)
    if len(values) < nr_extents:
        raise ValueError(f"expected at least {nr_extents} extents, got {len(values)}")
    return (ctypes.c_uint64 * max(len(values), 1))(*values)


def check(
    rc: int,
    call: str | None = None,
    *,
    nr_entries: int | None = None,
    counts: tuple[int, int, int] | None = None,
) -> int:
    """Turn a negative hypercall result into XenError (privcmd gives -1 and errno), with
    what Xen reported back beside the errno (see XenError's attributes)."""
    if rc < 0:
        error = XenError(-rc, call or trace.current_call())
        error.nr_entries, error.counts = nr_entries, counts
        raise error
    return rc
